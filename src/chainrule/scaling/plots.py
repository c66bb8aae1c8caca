"""The plots of a scaling fit (matplotlib, the ``plot`` extra), as PNG files.

- ``loss_vs_compute.png``: every run's validation curve against compute, the frontier (lower
  envelope) and its power-law fit, extended past the largest run;
- ``loss_vs_n.png`` / ``loss_vs_d.png``: final loss against N and against D, log-log, with
  Kaplan's L(N) / L(D) fits (one L(N) per family when the sweep has several);
- ``isoflop.png``: loss against N for each compute budget, with the parabola of approach 2.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.evaluation.plots import _pyplot, _save
from chainrule.scaling.fit import PowerLaw
from chainrule.scaling.frontier import isoflop_groups, run_curve


def _log_axes(ax) -> None:
    """Log-log axes with plain loss numbers on y and no crowded minor labels on x."""
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))


def _colors(plt, values):
    lo, hi = math.log(min(values)), math.log(max(values))
    cmap = plt.get_cmap("viridis")
    return {v: cmap(0.0 if hi == lo else (math.log(v) - lo) / (hi - lo)) for v in values}


def loss_vs_compute(runs, report, path: Path, compute: str = "6nd") -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = _colors(plt, sorted({r["N"] for r in runs}))
    for r in runs:
        c, loss = run_curve(r, compute)
        ax.plot(c, loss, "-", color=colors[r["N"]], lw=0.8, alpha=0.7)
        if len(c):
            ax.plot(c[-1], loss[-1], "o", color=colors[r["N"]], ms=3)
    fr = report["frontier"]
    ax.plot(fr["compute"], fr["loss"], "k-", lw=2.2, label="frontier (lowest loss with ≤ C)")
    fit = fr["fit"]
    hi = max(fr["compute"]) * 10
    xs = np.logspace(math.log10(min(fr["compute"])), math.log10(hi), 50)
    ax.plot(xs, (fit["x_c"] / xs) ** fit["alpha"], "r--", lw=1.2,
            label=f"L = (C_c/C)^{fit['alpha']:.3f}, R² {fit['r2']:.3f}")
    ho = report.get("holdout")
    if ho:
        ax.plot(ho["compute"], ho["measured"], "r*", ms=12, label="held-out budget (measured)")
        ax.plot(ho["compute"], ho["frontier_power"]["predicted"], "bx", ms=10,
                label=f"predicted from the rest ({100 * ho['frontier_power']['error']:+.1f}%)")
    _log_axes(ax)
    ax.set_xlabel("training compute C (FLOPs, " + ("6ND" if compute == "6nd" else "counted")
                  + ")")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(f"{report['family']}: loss vs compute ({report['n_runs']} runs; colour: N)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _fit_line(ax, fit: dict[str, Any], xs, style: str, label: str, color=None) -> None:
    if "skipped" in fit:
        return
    law = PowerLaw(fit["alpha"], fit["x_c"], fit["r2"], [])
    kw = {"color": color} if color is not None else {}
    ax.plot(xs, law(xs), style, lw=1.2, label=f"{label}: α = {fit['alpha']:.3f}, "
            f"R² {fit['r2']:.2f}", **kw)


def loss_vs_n(runs, report, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    fams = sorted({r["family"] for r in runs})
    xs = np.logspace(math.log10(min(r["N"] for r in runs)),
                     math.log10(max(r["N"] for r in runs)), 30)
    if len(fams) > 1:
        for i, fam in enumerate(fams):
            rs = [r for r in runs if r["family"] == fam]
            color = f"C{i}"
            ax.plot([r["N"] for r in rs], [r["val_loss"] for r in rs], "o", color=color,
                    label=fam)
            _fit_line(ax, report["by_family"][fam]["L_N"], xs, "--", f"{fam} L(N)", color)
        ax.set_title("transformer vs LSTM at equal N (same D)")
    else:
        colors = _colors(plt, sorted({r["D"] for r in runs}))
        for r in runs:
            ax.plot(r["N"], r["val_loss"], "o", color=colors[r["D"]])
        _fit_line(ax, report["L_N"], xs, "r--", "L(N)")
        ax.set_title("final loss vs N (colour: D)")
    _log_axes(ax)
    ax.set_xlabel("non-embedding parameters N")
    ax.set_ylabel("validation loss (nats/token)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def loss_vs_d(runs, report, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    colors = _colors(plt, sorted({r["N"] for r in runs}))
    for r in runs:
        ax.plot(r["D"], r["val_loss"], "o", color=colors[r["N"]])
    xs = np.logspace(math.log10(min(r["D"] for r in runs)),
                     math.log10(max(r["D"] for r in runs)), 30)
    _fit_line(ax, report["L_D"], xs, "r--", "L(D), lower envelope")
    _log_axes(ax)
    ax.set_xlabel("training tokens D")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("final loss vs D (colour: N)")
    if "skipped" not in report["L_D"]:
        ax.legend(fontsize=8)
    return _save(fig, path)


def isoflop(runs, report, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    minima = {round(m["budget"]): m for m in report.get("isoflop", [])}
    groups = isoflop_groups(runs)
    colors = _colors(plt, sorted(groups))
    for budget, rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["N"])
        ax.plot([r["N"] for r in rs], [r["val_loss"] for r in rs], "o-", color=colors[budget],
                lw=0.8, label=f"C = {budget:.2g}")
        m = minima.get(round(budget))
        if m:
            a, b, c = m["parabola"]
            xs = np.linspace(math.log(rs[0]["N"]), math.log(rs[-1]["N"]), 30)
            ax.plot(np.exp(xs), a * xs ** 2 + b * xs + c, ":", color=colors[budget])
            ax.plot(m["N_opt"], m["loss"], "kx")
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("non-embedding parameters N")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("IsoFLOP curves (x: minimum of the parabola)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def draw_all(results, usable, report, plot_dir: Path, compute: str = "6nd") -> list[Path]:
    """Every plot of the fit into ``plot_dir``."""
    fam_runs = [r for r in usable if r["family"] == report["family"]]
    out = [loss_vs_compute(fam_runs, report, plot_dir / "loss_vs_compute.png", compute),
           loss_vs_n(usable if "by_family" in report else fam_runs, report,
                     plot_dir / "loss_vs_n.png"),
           loss_vs_d(fam_runs, report, plot_dir / "loss_vs_d.png")]
    if len(isoflop_groups(fam_runs)) < len(fam_runs):
        out.append(isoflop(fam_runs, report, plot_dir / "isoflop.png"))
    return out


__all__ = ["draw_all", "isoflop", "loss_vs_compute", "loss_vs_d", "loss_vs_n"]
