"""A neural rung trained by a step plan: the same numbers on every run, whatever the machine.

A time budget (:func:`chainrule.evaluation.ladder_rungs.train_within`) buys a different number
of steps, hence a different learning-rate schedule, on every run and every machine. A step plan
fixes the steps (and the schedule: warm-up, then a cosine decay that ends with the plan) and the
thread count, so with the same seed a rung gives the same model on every run:

* the run is cut into ``checks`` equal chunks; each chunk resumes the checkpoint of the one
  before exactly (the training loop's resume), so the chunks change nothing in the result;
* after each chunk the model is scored on the validation lines (at most ``CHECK_LINES`` of them,
  with the same evaluator as the test) and the best checkpoint so far is kept: the rung keeps the
  best validation checkpoint, not the last (a rung that starts to overfit loses nothing);
* a wall-time ``cap`` is only a safety net: when the next chunk would end past it, the rung stops
  there and says so (``PlanOutcome.cut_short``), keeping the best checkpoint it reached.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
CHECK_LINES = 1000  # validation lines scored at each check (the first ones; all if fewer)
BEST_DIR = "best_valid"  # where a rung keeps its best checkpoint's model files while training


@dataclass
class PlanOutcome:
    """What a planned rung did."""

    planned: int  # the steps of the plan
    steps: int = 0  # the steps taken (fewer than planned only when the cap cut the run)
    best_step: int = 0  # the step of the checkpoint kept
    best_valid_ppl: float = math.inf  # its perplexity on the checked validation lines
    cut_short: bool = False
    seconds: float = 0.0
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, validation ppl)

    def note(self, cap: float) -> str:
        """A sentence for the report ('' when the plan ran as planned)."""
        if not self.cut_short:
            return ""
        return (f"cut short by the {_seconds(cap)} s safety cap at step {self.steps:,} of the "
                f"{self.planned:,} planned (a slow or busy machine), so the learning rate had "
                "not decayed and this figure is worse than the plan's; the best checkpoint "
                f"(step {self.best_step:,}) is kept")


def check_points(total: int, checks: int) -> list[int]:
    """The steps at which a plan of ``total`` steps is checked: ``checks`` even chunks.

    >>> check_points(1000, 4)
    [250, 500, 750, 1000]
    >>> check_points(3, 8)
    [1, 2, 3]
    """
    checks = max(1, min(checks, total))
    return [round(total * (i + 1) / checks) for i in range(checks)]


def train_planned(family: str, data, train_ids: np.ndarray, val_ids: np.ndarray | None,
                  directory: Path, config_until: Callable[[int], Any], total: int, *,
                  checks: int, cap: float = 0.0) -> PlanOutcome:
    """Train ``total`` steps in ``checks`` chunks, keep the best validation checkpoint.

    ``config_until(step)`` is the rung's training configuration for the plan of ``total``
    steps, stopping at ``step`` (its schedule planned for ``total``). The model files at the
    top of ``directory`` are the kept checkpoint's when it returns (the last one when there are
    no validation lines). ``cap`` (seconds, 0: none) stops the run after the chunk that would
    otherwise end past it.
    """
    from chainrule.evaluation.perplexity import perplexity
    from chainrule.models.base import load_model
    from chainrule.training.checkpoint import publish_best
    from chainrule.training.loop import train

    t0 = time.perf_counter()
    out = PlanOutcome(planned=total)
    lines = data.eval_lines(data.valid_lines)[:CHECK_LINES] if data.valid_lines else []
    best_dir = directory / BEST_DIR
    done, last_chunk = 0, 0.0
    for step in check_points(total, checks):
        if cap and done and time.perf_counter() - t0 + last_chunk > cap:
            out.cut_short = True
            log.warning(f"{family}: stopped at step {done:,} of {total:,}: the next chunk "
                        f"would pass the {_seconds(cap)} s cap")
            break
        t = time.perf_counter()
        train(config_until(step), train_ids, val_ids, directory, tokenizer=data.tokenizer,
              resume=done > 0, progress=False, plot=False)
        done = out.steps = step
        if lines:
            model = load_model(directory / "last").eval()
            ppl = perplexity(model, data.tokenizer, lines).perplexity
            out.curve.append((step, ppl))
            better = ppl < out.best_valid_ppl
            if better:
                out.best_valid_ppl, out.best_step = ppl, step
                _keep(directory / "last", best_dir)
            log.info(f"  {family} step {step:,}/{total:,}: validation perplexity {ppl:.2f}"
                     + (" (best so far)" if better else "")
                     + f", {time.perf_counter() - t0:.0f} s")
        last_chunk = time.perf_counter() - t
    if out.best_step:
        publish_best(directory, best_dir)
        shutil.rmtree(best_dir, ignore_errors=True)
    else:  # no validation lines: the last checkpoint
        out.best_step = out.steps
        publish_best(directory, directory / "last")
    out.seconds = time.perf_counter() - t0
    return out


def _seconds(cap: float) -> str:
    """A cap for a message: whole seconds (``39.6589`` -> ``40``), tiny test caps as they are."""
    return f"{cap:.0f}" if cap >= 1 else f"{cap:g}"


def _keep(ckpt: Path, best_dir: Path) -> None:
    """Copy a checkpoint's model files to ``best_dir`` (replacing what was there)."""
    tmp = best_dir.with_name(best_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        if (ckpt / name).exists():
            shutil.copyfile(ckpt / name, tmp / name)
    shutil.rmtree(best_dir, ignore_errors=True)
    tmp.rename(best_dir)


__all__ = ["CHECK_LINES", "PlanOutcome", "check_points", "train_planned"]
