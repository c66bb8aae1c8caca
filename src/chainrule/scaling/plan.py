"""Plan a sweep from a corpus and a time budget alone (``chainrule scale sweep --time-budget``).

1. Measure: train two probe models (the smallest shape of the ladder and a larger one) for a
   few dozen steps and fit seconds per step = overhead + FLOPs per step / speed.
2. Choose: ``n_budgets`` compute budgets C, evenly spaced in log over ``decades``; for each, the
   model sizes of the shape ladder nearest N_opt / 3, N_opt and 3 N_opt, where
   N_opt = sqrt(C / (6 r)) is Chinchilla's allocation at r tokens per parameter (r = 20), and
   D = C / (6 N) tokens each (an IsoFLOP grid: every budget gives one IsoFLOP curve).
3. Fit the budget: the largest top budget whose predicted time (training plus evaluations,
   shared over ``jobs`` processes) fits in ``safety`` x the time budget, found by bisection.
   If even a plan whose smallest run is ``min_steps`` steps of the smallest model does not
   fit, the budget is too small and that is said in one sentence.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chainrule.errors import ConfigError
from chainrule.scaling.grid import EVALS_PER_RUN, SweepPoint, point_config

log = logging.getLogger(__name__)

#: (depth, width) from small to large, aspect ratio width / depth between ~16 and ~64
LADDER = [(1, 32), (2, 32), (2, 48), (2, 64), (3, 64), (3, 96), (4, 96), (4, 128), (5, 160),
          (6, 192), (6, 256), (8, 256), (8, 384), (12, 384), (12, 512), (12, 768), (24, 1024)]


@dataclass(frozen=True)
class Throughput:
    """Seconds per optimiser step = ``overhead`` + ``seconds_per_flop`` x FLOPs per step."""

    overhead: float
    seconds_per_flop: float

    def step_seconds(self, flops_per_step: float) -> float:
        return self.overhead + self.seconds_per_flop * flops_per_step


def measure_throughput(data, family: str = "gpt", base: dict[str, Any] | None = None,
                       device: str = "auto", steps: int = 30) -> Throughput:
    """Time ``steps`` steps of two probe shapes (the ladder's 1st and 4th) on ``data``."""
    from chainrule.training.loop import train

    probes = []
    for depth, width in (LADDER[0], LADDER[3]):
        pt = SweepPoint(family, depth, width, 1)
        cfg, size = point_config(pt, data.vocab_size, base, device=device)
        cfg = cfg.replace(max_iters=steps, eval_interval=steps, eval_iters=1,
                          log_interval=max(1, steps // 3), warmup_iters=1, lr_decay_iters=steps)
        with tempfile.TemporaryDirectory() as tmp:
            s = train(cfg, data.train, data.val, Path(tmp), tokenizer=data.tokenizer,
                      progress=False, plot=False)
        probes.append((size.train_flops * cfg.tokens_per_step, s["ms_per_iter"] / 1000))
    (f1, t1), (f2, t2) = probes
    per_flop = max((t2 - t1) / (f2 - f1), 1e-15)
    overhead = max(t1 - per_flop * f1, 0.0)
    log.info(f"throughput: {t1 * 1000:.1f} ms/step at {f1:.3g} FLOPs/step, "
             f"{t2 * 1000:.1f} ms/step at {f2:.3g}; about {1 / per_flop / 1e9:.1f} GFLOP/s")
    return Throughput(overhead, per_flop)


def _ladder_sizes(family: str, vocab_size: int, base) -> list[tuple[int, int, Any, Any]]:
    out = []
    for depth, width in LADDER:
        cfg, size = point_config(SweepPoint(family, depth, width, 1), vocab_size, base,
                                 device="cpu")
        out.append((depth, width, cfg, size))
    return out


def plan_for_top(top: float, ladder, n_budgets: int, decades: float, tokens_per_param: float,
                 min_steps: int, family: str) -> list[SweepPoint]:
    """The IsoFLOP grid whose largest budget is ``top`` FLOPs (6ND)."""
    points: list[SweepPoint] = []
    for k in range(n_budgets):
        c = top / 10 ** (decades * (n_budgets - 1 - k) / max(n_budgets - 1, 1))
        n_opt = math.sqrt(c / (6 * tokens_per_param))
        chosen: list[int] = []
        for target in (n_opt / 3, n_opt, n_opt * 3):
            order = sorted(range(len(ladder)),
                           key=lambda i: abs(math.log(ladder[i][3].non_embedding / target)))
            for i in order:
                depth, width, cfg, size = ladder[i]
                tokens = int(c / (6 * size.non_embedding))
                if i not in chosen and tokens >= min_steps * cfg.tokens_per_step:
                    chosen.append(i)
                    break
        for i in sorted(chosen):
            depth, width, cfg, size = ladder[i]
            points.append(SweepPoint(family, depth, width, int(c / (6 * size.non_embedding)),
                                     budget=c))
    return points


def predicted_seconds(points: list[SweepPoint], ladder, speed: Throughput) -> list[float]:
    """Each point's predicted time: its steps plus its evaluations (forward = 1/3 of a step)."""
    by_shape = {(d, w): (cfg, size) for d, w, cfg, size in ladder}
    out = []
    for p in points:
        cfg, size = by_shape[(p.n_layer, p.n_embd)]
        per_step = cfg.tokens_per_step * size.train_flops
        steps = math.ceil(p.tokens / cfg.tokens_per_step)
        evals = (EVALS_PER_RUN + 1) * 2 * cfg.eval_iters
        out.append(steps * speed.step_seconds(per_step)
                   + evals * speed.step_seconds(per_step / 3))
    return out


def _total(seconds: list[float], jobs: int) -> float:
    """Wall time of runs shared greedily (longest first) over ``jobs`` processes."""
    lanes = [0.0] * max(jobs, 1)
    for s in sorted(seconds, reverse=True):
        lanes[lanes.index(min(lanes))] += s
    return max(lanes)


def plan_sweep(data, seconds: float, *, family: str = "gpt", base: dict[str, Any] | None = None,
               device: str = "auto", jobs: int = 1, n_budgets: int = 5, decades: float = 1.5,
               tokens_per_param: float = 20.0, min_steps: int = 60, safety: float = 0.7,
               speed: Throughput | None = None) -> tuple[list[SweepPoint], dict[str, Any]]:
    """A grid that fits in ``seconds`` of wall time; returns (points, the plan's record)."""
    if seconds <= 0:
        raise ConfigError(f"--time-budget must be a positive number of seconds, not {seconds}.")
    speed = speed or measure_throughput(data, family, base, device)
    ladder = _ladder_sizes(family, data.vocab_size, base)
    cfg0, size0 = ladder[0][2], ladder[0][3]
    low = 6 * size0.non_embedding * min_steps * cfg0.tokens_per_step * 10 ** decades

    def cost(top: float) -> float:
        pts = plan_for_top(top, ladder, n_budgets, decades, tokens_per_param, min_steps, family)
        return _total(predicted_seconds(pts, ladder, speed), jobs)

    allowed = safety * seconds
    if cost(low) > allowed:
        raise ConfigError(
            f"a time budget of {seconds:g} s is too small: the smallest sensible sweep "
            f"({n_budgets} budgets over {decades:g} decades, {min_steps} steps of the smallest "
            f"model at least) needs about {cost(low) / safety:.0f} s here; raise --time-budget "
            "or give fewer --budgets.")
    lo, hi = math.log(low), math.log(low) + 1.0
    while cost(math.exp(hi)) <= allowed and hi < math.log(low) + 40:
        lo, hi = hi, hi + 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cost(math.exp(mid)) <= allowed else (lo, mid)
    top = math.exp(lo)
    points = plan_for_top(top, ladder, n_budgets, decades, tokens_per_param, min_steps, family)
    secs = predicted_seconds(points, ladder, speed)
    record = {"time_budget_s": seconds, "predicted_s": _total(secs, jobs), "jobs": jobs,
              "top_budget": top, "decades": decades, "n_budgets": n_budgets,
              "tokens_per_param": tokens_per_param, "overhead_s": speed.overhead,
              "gflops_per_s": 1e-9 / speed.seconds_per_flop}
    log.info(f"plan: {len(points)} runs, budgets {top / 10 ** decades:.3g} .. {top:.3g} FLOPs, "
             f"predicted {record['predicted_s']:.0f} s of {seconds:g} s")
    return points, record


__all__ = ["LADDER", "Throughput", "measure_throughput", "plan_for_top", "plan_sweep",
           "predicted_seconds"]
