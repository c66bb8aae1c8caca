"""The compute-optimal frontier (Hoffmann et al. 2022, approach 1) and IsoFLOP minima (approach 2).

Each run gives a curve of validation loss against the compute spent so far (its evaluations
along training). :func:`lower_envelope` is the lowest of those curves at each compute C
(curves interpolated linearly in log C, each defined from its first evaluation to its last).
The frontier is its running minimum: the lowest loss any run reached with *at most* C FLOPs
(Kaplan's C_min(L) read the other way), sampled on a log-spaced grid from the smallest run's
final compute to the largest's.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule.errors import ConfigError

Curve = tuple[np.ndarray, np.ndarray]  # (compute, loss), compute increasing


def run_curve(result: dict[str, Any], compute: str = "6nd") -> Curve:
    """(C, L) of a run's evaluations after step 0 (``compute``: ``6nd`` or ``exact``)."""
    key = "compute" if compute == "6nd" else "compute_exact"
    pts = [(p[key], p["val_loss"]) for p in result.get("curve", [])
           if p.get(key, 0) > 0 and p.get("val_loss") is not None
           and math.isfinite(p["val_loss"])]
    pts.sort()
    c = np.array([p[0] for p in pts], float)
    loss = np.array([p[1] for p in pts], float)
    return c, loss


def lower_envelope(curves: list[Curve], grid) -> tuple[np.ndarray, np.ndarray]:
    """The lowest loss over ``curves`` at each compute of ``grid``, and which curve gave it.

    A curve counts at c only within its own range [first C, last C]; where no curve reaches
    c, the envelope is NaN and the index -1.

    >>> a = (np.array([1.0, 100.0]), np.array([3.0, 1.0]))
    >>> b = (np.array([1.0, 100.0]), np.array([2.0, 1.5]))
    >>> env, who = lower_envelope([a, b], [1.0, 100.0])
    >>> env.tolist(), who.tolist()
    ([2.0, 1.0], [1, 0])
    """
    grid = np.asarray(grid, float)
    best = np.full(len(grid), np.inf)
    who = np.full(len(grid), -1)
    for i, (c, loss) in enumerate(curves):
        if len(c) == 0:
            continue
        inside = (grid >= c[0] * (1 - 1e-9)) & (grid <= c[-1] * (1 + 1e-9))
        if len(c) == 1:
            vals = np.full(len(grid), loss[0])
        else:
            vals = np.interp(np.log(grid), np.log(c), loss)
        better = inside & (vals < best)
        best[better], who[better] = vals[better], i
    best[who < 0] = np.nan
    return best, who


@dataclass
class Frontier:
    """The lower envelope sampled at ``compute``; ``runs`` names the run on it at each point."""

    compute: np.ndarray
    loss: np.ndarray
    runs: list[str]
    N: np.ndarray
    D: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"compute": self.compute.tolist(), "loss": self.loss.tolist(), "runs": self.runs,
                "N": self.N.tolist(), "D": self.D.tolist()}


def frontier(results: list[dict[str, Any]], compute: str = "6nd", n_points: int = 24,
             c_range: tuple[float, float] | None = None) -> Frontier:
    """The frontier of ``results`` (usable runs only) between the smallest and largest final C:
    the running minimum of the lower envelope."""
    curves = [run_curve(r, compute) for r in results]
    finals = [c[-1] for c, _ in curves if len(c)]
    if len(finals) < 2:
        raise ConfigError(f"a compute frontier needs at least 2 runs with validation losses, "
                          f"got {len(finals)}; add runs to the grid.")
    lo, hi = c_range or (min(finals), max(finals))
    grid = np.logspace(math.log10(lo), math.log10(hi), n_points)
    env, who = lower_envelope(curves, grid)
    keep = who >= 0
    grid, env, who = grid[keep], env[keep], who[keep]
    for i in range(1, len(env)):  # with at most C FLOPs: a run that ended earlier still counts
        if env[i] > env[i - 1]:
            env[i], who[i] = env[i - 1], who[i - 1]
    key = "C" if compute == "6nd" else "C_exact"
    n = np.array([results[i]["N"] for i in who], float)
    # tokens the run on the frontier had seen there
    d = np.array([min(g / results[i][key], 1.0) * results[i]["D"] for g, i in zip(grid, who)],
                 float)
    return Frontier(grid, env, [results[i]["name"] for i in who], n, d)


def isoflop_groups(results: list[dict[str, Any]]) -> dict[float, list[dict[str, Any]]]:
    """Runs grouped by their planned budget; without budgets, by final C within 10%."""
    groups: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(results, key=lambda r: r["C"]):
        b = r.get("budget") or 0.0
        if not b:
            near = [g for g in groups if abs(math.log(r["C"] / g)) < math.log(1.1)]
            b = near[0] if near else r["C"]
        groups[b].append(r)
    return dict(groups)


def isoflop_minima(results: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Approach 2: per budget with >= 3 model sizes, the parabola in log N through the losses
    and the N at its minimum (kept only when the minimum lies inside the sizes tried)."""
    out = []
    for budget, runs in sorted(isoflop_groups(results).items()):
        if len({r["N"] for r in runs}) < 3:
            continue
        x = np.log([r["N"] for r in runs])
        y = np.array([r["val_loss"] for r in runs])
        a, b, c = np.polyfit(x, y, 2)
        if a <= 0:
            continue
        x_opt = -b / (2 * a)
        if not x.min() <= x_opt <= x.max():
            continue
        out.append({"budget": budget, "N_opt": math.exp(x_opt),
                    "loss": float(a * x_opt ** 2 + b * x_opt + c), "parabola": [a, b, c]})
    return out


def holdout_split(results: list[dict[str, Any]]) -> tuple[list, list]:
    """(rest, held out): the held-out runs are the largest compute budget's (IsoFLOP group)."""
    groups = isoflop_groups(results)
    top = max(groups)
    held = groups[top]
    names = {r["name"] for r in held}
    return [r for r in results if r["name"] not in names], held


__all__ = ["Frontier", "frontier", "holdout_split", "isoflop_groups", "isoflop_minima",
           "lower_envelope", "run_curve"]
