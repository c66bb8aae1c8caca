"""Plots of the prompting reports (matplotlib, the ``plot`` extra; see evaluation/plots.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chainrule.evaluation.plots import _pyplot, _save


def plot_shots(rows: Sequence[Mapping[str, Any]], metric: str, path: str | os.PathLike, *,
               title: str = "") -> Path:
    """Score against the number of demonstrations: one line per (model, format), error bars =
    standard deviation over seeds; the x axis is symbolic (0, 1, 2, 4, 8 evenly spaced)."""
    plt = _pyplot()
    shots = sorted({r["shots"] for r in rows})
    fig, ax = plt.subplots(figsize=(6, 4))
    keys = list(dict.fromkeys((r["model"], r["format"]) for r in rows))
    for model, fmt in keys:
        mine = sorted((r for r in rows if (r["model"], r["format"]) == (model, fmt)),
                      key=lambda r: r["shots"])
        xs = [shots.index(r["shots"]) for r in mine]
        label = model if len({f for _, f in keys}) == 1 else f"{model} ({fmt})"
        ax.errorbar(xs, [r[metric] for r in mine], yerr=[r[f"{metric}_std"] for r in mine],
                    marker="o", capsize=3, label=label)
    ax.set_xticks(range(len(shots)))
    ax.set_xticklabels([str(k) for k in shots])
    ax.set_xlabel("demonstrations in the prompt (shots)")
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} against shots")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_induction(curves: Mapping[str, Mapping[str, Sequence[float]]], attention,
                   head: str, path: str | os.PathLike) -> Path:
    """(a) loss on repeated and on fresh tokens over training, per model; (b) the attention
    pattern of the best prefix-matching head on a repeated random sequence.

    Args:
        curves: model name -> {"step": [...], "repeated": [...], "fresh": [...]}.
        attention: (T, T) array of the head's attention weights.
        head: its label ("layer 1 head 2, prefix-matching 0.93").
    """
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (name, c) in enumerate(curves.items()):
        color = f"C{i}"
        a.plot(c["step"], c["repeated"], color=color, label=f"{name}: repeated tokens")
        a.plot(c["step"], c["fresh"], color=color, linestyle="--",
               label=f"{name}: first occurrence")
    a.set_xlabel("training step")
    a.set_ylabel("loss (nats per token)")
    a.set_title("(a) loss on repeated vs non-repeated tokens")
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    im = b.imshow(attention, cmap="viridis", aspect="auto")
    b.set_title(f"(b) {head}")
    b.set_xlabel("key position")
    b.set_ylabel("query position")
    fig.colorbar(im, ax=b)
    out = _save(fig, path)
    plt.close(fig)
    return out


__all__ = ["plot_induction", "plot_shots"]
