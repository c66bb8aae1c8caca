"""Plots for the psycholinguistic evaluations: SyntaxGym accuracy, reading time vs surprisal,
and delta log-likelihood against perplexity. matplotlib is the optional ``plot`` extra."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.evaluation.plots import _pyplot, _save


def plot_suite_accuracy(summary: dict[str, Any], path: str | os.PathLike) -> Path:
    """Two panels of grouped bars: accuracy per suite and per circuit, one bar per model."""
    plt = _pyplot()
    models = list(summary)
    suites = sorted({s for v in summary.values() for s in v["suites"]})
    circuits = sorted({c for v in summary.values() for c in v["circuits"]})
    fig, axes = plt.subplots(1, 2, figsize=(14, 1.5 + 0.35 * max(len(suites), 4) *
                                            max(1, len(models) / 2)))
    fig.subplots_adjust(wspace=0.55)  # room for the circuit names
    for ax, groups, key, title in ((axes[0], ["overall", *suites], "suites", "suite"),
                                   (axes[1], circuits, "circuits", "circuit")):
        h = 0.8 / max(1, len(models))
        for k, m in enumerate(models):
            vals = []
            for g in groups:
                if g == "overall":
                    vals.append(summary[m]["overall"])
                elif key == "suites":
                    vals.append(summary[m]["suites"].get(g, {}).get("accuracy", 0.0))
                else:
                    vals.append(summary[m]["circuits"].get(g, 0.0))
            ax.barh([i + k * h for i in range(len(groups))], [100 * v for v in vals],
                    height=h, label=m)
        ax.set_yticks([i + 0.4 - h / 2 for i in range(len(groups))])
        ax.set_yticklabels(groups, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("accuracy (%)")
        ax.set_title(f"SyntaxGym accuracy per {title}")
    if len(models) > 1:
        axes[1].legend(fontsize=8, loc="lower right")
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_rt_vs_surprisal(curves: dict[str, dict[str, np.ndarray]], path: str | os.PathLike
                         ) -> Path:
    """Binned mean reading time (with 95% confidence bands) against surprisal, per model.

    ``curves``: model -> ``{"x": bin mean surprisal, "y": mean RT, "se": standard error}``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, c in curves.items():
        ax.plot(c["x"], c["y"], marker="o", markersize=3, label=m)
        ax.fill_between(c["x"], c["y"] - 1.96 * c["se"], c["y"] + 1.96 * c["se"], alpha=0.2)
    ax.set_xlabel("surprisal (bits)")
    ax.set_ylabel("reading time (ms), binned mean")
    ax.set_title("Reading time against surprisal (95% bands)")
    ax.legend(fontsize=8)
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_dll_vs_ppl(names: Sequence[str], ppl: Sequence[float], dll: Sequence[float],
                    se: Sequence[float], path: str | os.PathLike, *,
                    xlabel: str = "test perplexity (log scale)",
                    groups: Sequence[str] | None = None) -> Path:
    """Delta log-likelihood per word (with 1.96 SE bars) against test perplexity (log x);
    ``groups`` (one label per model, e.g. its family) colours the points, with a legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = list(groups) if groups is not None else [""] * len(names)
    for g in dict.fromkeys(labels):
        k = [i for i, lab in enumerate(labels) if lab == g]
        ax.errorbar([ppl[i] for i in k], [dll[i] for i in k],
                    yerr=1.96 * np.asarray([se[i] for i in k]), fmt="o", capsize=3,
                    label=g or None)
    for n, x, y in zip(names, ppl, dll):
        ax.annotate(n, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if groups is not None:
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ΔLL per word (nats)")
    ax.set_title("Predictive power for reading times against perplexity")
    out = _save(fig, path)
    plt.close(fig)
    return out


__all__ = ["plot_dll_vs_ppl", "plot_rt_vs_surprisal", "plot_suite_accuracy"]
