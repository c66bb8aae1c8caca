"""``chainrule scale fit`` and ``scale predict``: every law fitted to a sweep, and the report.

:func:`fit_sweep` reads the runs' results, leaves out (and lists) runs that diverged, and fits

- Kaplan's L(N) (per N, the lowest final loss: the most-trained run) and L(D) (per D, the
  lower envelope of loss against tokens seen: the best model for that much data);
- Chinchilla's L(N, D) (approach 3) on every usable run;
- the compute-optimal frontier (approach 1) with a Kaplan power law L(C) = (C_c / C)^α_C and
  with an offset, E + (C_0 / C)^α; the IsoFLOP minima (approach 2) where a budget has >= 3 sizes;
- compute-optimal N(C) and D(C) from approaches 1, 2 and 3;
- bootstrap intervals (runs resampled with replacement) for every exponent;
- with ``holdout``: the largest budget's runs left out, their loss predicted from the rest.

The fit is saved in ``DIR/fit.json`` (with the bootstrap fits, for :func:`predict_loss`).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.errors import ChainruleError, ConfigError
from chainrule.fileio import read_json, write_json
from chainrule.scaling import fit as F
from chainrule.scaling.frontier import (
    frontier,
    holdout_split,
    isoflop_minima,
    lower_envelope,
)
from chainrule.scaling.sweep import load_results

log = logging.getLogger(__name__)
REFERENCE = {  # the published exponents, for comparison (the scale here is far smaller)
    "kaplan": {"alpha_N": 0.076, "alpha_D": 0.095, "alpha_C": 0.050},
    "chinchilla": {"alpha": 0.34, "beta": 0.28, "a": 0.5, "b": 0.5},
}


def usable_runs(results: list[dict[str, Any]]) -> tuple[list[dict], list[dict[str, str]]]:
    """(runs with a finite final loss, [{name, reason}] of the runs left out)."""
    ok, excluded = [], []
    for r in results:
        v = r.get("val_loss")
        if r.get("status") != "ok" or v is None or not math.isfinite(v):
            excluded.append({"name": r["name"], "reason": "diverged (NaN or infinite loss)"})
        else:
            ok.append(r)
    return ok, excluded


def kaplan_n(runs: list[dict]) -> F.PowerLaw:
    """L(N) on the lowest final loss of each N."""
    best: dict[int, float] = {}
    for r in runs:
        best[r["N"]] = min(best.get(r["N"], math.inf), r["val_loss"])
    n = sorted(best)
    return F.power_law(n, [best[k] for k in n], "model sizes N")


def kaplan_d(runs: list[dict]) -> tuple[F.PowerLaw, np.ndarray, np.ndarray]:
    """L(D) on the lowest loss reached with at most D tokens (the running minimum of the lower
    envelope of loss against tokens seen), at each run's final D."""
    curves = []
    for r in runs:
        pts = sorted((p["tokens"], p["val_loss"]) for p in r.get("curve", []) if p["tokens"] > 0)
        curves.append((np.array([p[0] for p in pts], float), np.array([p[1] for p in pts])))
    d = np.array(sorted({r["D"] for r in runs}), float)
    env, who = lower_envelope(curves, d)
    keep = who >= 0
    env[keep] = np.minimum.accumulate(env[keep])  # the best with at most D tokens
    return F.power_law(d[keep], env[keep], "token budgets D"), d[keep], env[keep]


def _primary_family(runs: list[dict]) -> str:
    counts = Counter(r["family"] for r in runs)
    return max(sorted(counts), key=lambda f: (counts[f], f == "gpt"))


def _try(fn, *args, **kw):
    """``fn(...)``, or the error that says why it could not be fitted."""
    try:
        return fn(*args, **kw)
    except ChainruleError as e:
        return e
    except (ArithmeticError, ValueError, np.linalg.LinAlgError) as e:  # a degenerate sample
        return ConfigError(f"the fit failed numerically ({e})")


def fit_sweep(sweep_dir: str | Path, *, holdout: bool = False, n_boot: int = 100,
              compute: str = "6nd", plot_dir: str | Path | None = None,
              family: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Fit every law to the sweep in ``sweep_dir``; write ``fit.json``; return the report."""
    sweep_dir = Path(sweep_dir)
    results = load_results(sweep_dir)
    if not results:
        raise ConfigError(f"{str(sweep_dir)!r} holds no finished runs; run `chainrule scale "
                          "sweep` into it first.")
    usable, excluded = usable_runs(results)
    fam = family or (_primary_family(usable) if usable else results[0]["family"])
    runs = [r for r in usable if r["family"] == fam]
    if len(runs) < 5:
        listed = f" ({len(excluded)} diverged: {', '.join(e['name'] for e in excluded)})" \
            if excluded else ""
        raise ConfigError(f"the sweep has {len(runs)} usable {fam} runs{listed}, fewer than the "
                          "5 parameters of L(N, D); add runs to the grid.")
    key = "C" if compute == "6nd" else "C_exact"
    report: dict[str, Any] = {
        "dir": str(sweep_dir), "family": fam, "compute": compute, "n_runs": len(runs),
        "excluded": excluded, "bytes_per_token": runs[0]["bytes_per_token"],
        "compute_decades": math.log10(max(r[key] for r in runs) / min(r[key] for r in runs)),
        "reference": REFERENCE,
        "runs": [{k: r.get(k) for k in ("name", "family", "N", "D", "C", "C_exact", "val_loss",
                                        "bpb", "budget", "learning_rate", "seconds")}
                 for r in results],
    }
    ln = _try(kaplan_n, runs)
    report["L_N"] = _law(ln)
    ld = _try(kaplan_d, runs)
    report["L_D"] = _law(ld if isinstance(ld, Exception) else ld[0])
    families = sorted({r["family"] for r in usable})
    if len(families) > 1:
        report["by_family"] = {f: {"L_N": _law(_try(kaplan_n, [r for r in usable
                                                                if r["family"] == f]))}
                               for f in families}
    ch = _chinchilla(runs)
    report["chinchilla"] = ch.to_dict() if isinstance(ch, F.Chinchilla) else {"skipped": str(ch)}
    fr = frontier(runs, compute)
    report["frontier"] = {**fr.to_dict(), "fit": F.power_law(fr.compute, fr.loss).to_dict()}
    off = _try(F.offset_power_law, fr.compute, fr.loss)
    report["frontier"]["offset_fit"] = _law(off)
    report["frontier"]["fit"]["alpha_C"] = report["frontier"]["fit"]["alpha"]
    report["isoflop"] = isoflop_minima(runs)
    report["optimal"] = _optimal(fr, report["isoflop"], ch, runs, key)
    boot = _bootstrap(runs, compute, ch, n_boot, seed) if n_boot > 0 else []
    report["intervals"] = _intervals(boot)
    if holdout:
        report["holdout"] = holdout_report(runs, compute)
    write_json(sweep_dir / "fit.json", {
        "report": {k: v for k, v in report.items() if k != "runs"},
        "chinchilla_bootstrap": [b["chinchilla"] for b in boot if "chinchilla" in b]})
    if plot_dir is not None:
        report["plots"] = _plots(results, usable, report, Path(plot_dir), compute)
    return report


def _law(fit) -> dict[str, Any]:
    return {"skipped": str(fit)} if isinstance(fit, Exception) else fit.to_dict()


def _chinchilla(runs, start=None, **kw):
    N = [r["N"] for r in runs]
    D = [r["D"] for r in runs]
    if len(set(D)) < 2 or len(set(N)) < 2:
        return ConfigError("every run has the same " + ("D" if len(set(D)) < 2 else "N")
                           + ", so L(N, D) cannot separate the two terms; not fitted")
    return _try(F.chinchilla, N, D, [r["val_loss"] for r in runs], start=start, **kw)


def _optimal(fr, iso, ch, runs, key) -> dict[str, Any]:
    """N_opt ∝ C^a from the frontier's runs (1), the IsoFLOP minima (2) and L(N, D) (3)."""
    out: dict[str, Any] = {}
    pts = sorted(set(zip(fr.compute.tolist(), fr.N.tolist())))
    if len({n for _, n in pts}) >= 2:
        a1 = F.power_law([c for c, _ in pts], [n for _, n in pts], "frontier runs")
        out["approach1"] = {"a": -a1.alpha, "note": "N of the run on the frontier"}
    if len(iso) >= 2:
        a2 = F.power_law([p["budget"] for p in iso], [p["N_opt"] for p in iso], "budgets")
        out["approach2"] = {"a": -a2.alpha, "minima": iso}
    if isinstance(ch, F.Chinchilla):
        a, b = ch.exponents
        top = max(r[key] for r in runs)
        table = []
        for c in (top / 10, top, top * 10, top * 100):
            n, d = ch.optimal(c)
            table.append({"C": c, "N_opt": float(n), "D_opt": float(d),
                          "loss": float(ch(n, d))})
        out["approach3"] = {"a": a, "b": b, "table": table}
    return out


def _bootstrap(runs, compute, ch, n_boot: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        sample = [runs[i] for i in rng.integers(0, len(runs), len(runs))]
        b: dict[str, Any] = {}
        for name, fn in (("alpha_N", lambda s: kaplan_n(s).alpha),
                         ("alpha_D", lambda s: kaplan_d(s)[0].alpha),
                         ("alpha_C", lambda s: F.power_law(*_fr(s, compute)).alpha)):
            v = _try(fn, sample)
            if not isinstance(v, Exception):
                b[name] = v
        if isinstance(ch, F.Chinchilla):
            cb = _chinchilla(sample, start=ch, refine=0, max_iter=100)
            if isinstance(cb, F.Chinchilla):
                b["chinchilla"] = [cb.E, cb.A, cb.B, cb.alpha, cb.beta]
        out.append(b)
    return out


def _fr(runs, compute):
    f = frontier(runs, compute)
    return f.compute, f.loss


def _intervals(boot: list[dict[str, Any]]) -> dict[str, list[float]]:
    """90% percentile intervals of every bootstrapped quantity."""
    out = {k: F.percentile_interval([b[k] for b in boot if k in b])
           for k in ("alpha_N", "alpha_D", "alpha_C") if any(k in b for b in boot)}
    ch = np.array([b["chinchilla"] for b in boot if "chinchilla" in b])
    if len(ch):
        for i, name in enumerate(("E", "A", "B", "alpha", "beta")):
            out[name] = F.percentile_interval(ch[:, i])
        s = ch[:, 3] + ch[:, 4]
        out["a"] = F.percentile_interval(ch[:, 4] / s)
        out["b"] = F.percentile_interval(ch[:, 3] / s)
    out["n_boot"] = len(boot)
    return out


def holdout_report(runs: list[dict], compute: str = "6nd") -> dict[str, Any]:
    """Leave out the largest budget; predict its best loss from the rest's frontier and L(N, D)."""
    rest, held = holdout_split(runs)
    key = "C" if compute == "6nd" else "C_exact"
    if len(rest) < 2:
        raise ConfigError(f"--holdout leaves {len(rest)} runs to fit, too few to predict the "
                          "largest budget; add smaller budgets to the grid.")
    best = min(held, key=lambda r: r["val_loss"])
    c_t, measured = best[key], best["val_loss"]
    fr = frontier(rest, compute)
    pl = F.power_law(fr.compute, fr.loss)
    out: dict[str, Any] = {
        "held_out": [r["name"] for r in held], "fitted_on": len(rest), "compute": c_t,
        "measured": measured, "best_run": best["name"],
        "extrapolation_decades": math.log10(c_t / max(r[key] for r in rest)),
        "frontier_power": {"predicted": float(pl(c_t)), "error": float(pl(c_t)) / measured - 1,
                           "r2": pl.r2, "alpha_C": pl.alpha},
    }
    off = _try(F.offset_power_law, fr.compute, fr.loss)
    if isinstance(off, F.OffsetPowerLaw):
        out["frontier_offset"] = {"predicted": float(off(c_t)),
                                  "error": float(off(c_t)) / measured - 1, "r2": off.r2}
    ch = _chinchilla(rest) if len(rest) >= 5 else ConfigError("fewer than 5 runs left")
    if isinstance(ch, F.Chinchilla):
        preds = [{"name": r["name"], "measured": r["val_loss"],
                  "predicted": float(ch(r["N"], r["D"])),
                  "error": float(ch(r["N"], r["D"])) / r["val_loss"] - 1} for r in held]
        out["chinchilla"] = {"runs": preds, "r2": ch.r2,
                             "best_predicted": min(p["predicted"] for p in preds),
                             "best_error": min(p["predicted"] for p in preds) / measured - 1}
    return out


def predict_loss(sweep_dir: str | Path, n: float, d: float, level: float = 0.9
                 ) -> dict[str, Any]:
    """L(N, D) from ``DIR/fit.json`` with the bootstrap's ``level`` interval."""
    if n <= 0 or d <= 0 or not (math.isfinite(n) and math.isfinite(d)):
        raise ConfigError(f"N and D must be positive numbers, not {n:g} and {d:g}.")
    path = Path(sweep_dir) / "fit.json"
    if not path.exists():
        raise ConfigError(f"{str(sweep_dir)!r} has no fit.json; run `chainrule scale fit "
                          f"{sweep_dir}` first.")
    saved = read_json(path, what="scaling fit")
    ch = saved["report"]["chinchilla"]
    if "skipped" in ch:
        raise ConfigError(f"this sweep's L(N, D) was not fitted ({ch['skipped']}); sweep more "
                          "sizes and token budgets.")
    fit = F.Chinchilla(ch["E"], ch["A"], ch["B"], ch["alpha"], ch["beta"])
    loss = float(fit(n, d))
    boots = [float(F.Chinchilla(*p)(n, d)) for p in saved.get("chinchilla_bootstrap", [])]
    interval = F.percentile_interval(boots, level) if boots else [math.nan, math.nan]
    bpt = saved["report"]["bytes_per_token"]
    return {"N": n, "D": d, "loss": loss, "interval": interval, "level": level,
            "bpb": loss / math.log(2) / bpt, "n_boot": len(boots)}


def _plots(results, usable, report, plot_dir: Path, compute: str) -> list[str]:
    from chainrule.evaluation.plots import have_matplotlib

    if not have_matplotlib():
        log.warning("note: matplotlib is not installed, so no plots were drawn "
                    "(pip install 'chainrule[plot]').")
        return []
    from chainrule.scaling import plots

    plot_dir.mkdir(parents=True, exist_ok=True)
    return [str(p) for p in plots.draw_all(results, usable, report, plot_dir, compute)]


__all__ = ["fit_sweep", "holdout_report", "kaplan_d", "kaplan_n", "predict_loss",
           "usable_runs"]
