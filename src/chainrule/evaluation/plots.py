"""Bar charts for the reports: minimal-pair accuracy and the perplexity ladder.

matplotlib is an optional extra (``pip install 'chainrule[plot]'``); without it these functions
raise one sentence saying so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chainrule.errors import ConfigError
from chainrule.fileio import atomic_open


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(
            "plotting needs matplotlib, which is not installed; install it with "
            "pip install 'chainrule[plot]'."
        ) from None
    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    return plt


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
    return path


def plot_pair_accuracy(
    models: dict[str, dict[str, Any]], path: str | os.PathLike, *, level: str = "UID"
) -> Path:
    """Grouped horizontal bars: accuracy per paradigm (or ``level``) for each model.

    Args:
        models: model name -> :func:`chainrule.evaluation.pairs.summarise` output.
        path: the PNG to write.
        level: ``"UID"``, ``"linguistics_term"`` or ``"field"``; an "overall" bar is added.
    """
    plt = _pyplot()
    names = sorted({k for s in models.values() for k in s[level]})
    groups = ["overall", *names]
    n_models = max(1, len(models))
    height = 0.8 / n_models
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.35 * len(groups) * max(1, n_models / 2)))
    for m, (model, summary) in enumerate(models.items()):
        acc = [summary["overall"]["accuracy"]] + [
            summary[level].get(g, {}).get("accuracy", 0.0) for g in names
        ]
        ys = [i + m * height for i in range(len(groups))]
        ax.barh(ys, [100 * a for a in acc], height=height, label=model)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(groups))])
    ax.set_yticklabels(groups, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(50, color="grey", linestyle="--", linewidth=1)  # chance
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy (%)  — dashed line: chance")
    ax.set_title(f"Minimal pairs: accuracy per {level}")
    if len(models) > 1:
        ax.legend(fontsize=8, loc="lower right")
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_perplexity_ladder(
    names: Sequence[str], perplexities: Sequence[float], path: str | os.PathLike, *,
    title: str = "Test perplexity per model", unit: str = "per token",
) -> Path:
    """One bar per rung on a linear axis from 0, each labelled with its perplexity (a log
    axis starting near the smallest bar hid the differences between the good rungs)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(names)), 4))
    bars = ax.bar(list(names), list(perplexities), color="#4c72b0")
    ax.set_ylim(0, 1.12 * max(perplexities, default=1.0))
    for b, v in zip(bars, perplexities):
        ax.annotate(f"{v:.1f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom",
                    fontsize=9)
    ax.set_ylabel(f"perplexity ({unit}; lower is better)")
    ax.set_title(title)
    out = _save(fig, path)
    plt.close(fig)
    return out


__all__ = ["have_matplotlib", "plot_pair_accuracy", "plot_perplexity_ladder"]
