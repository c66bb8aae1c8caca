"""The ladder's neural rungs in parallel lanes: one process per lane, one thread each.

A small model trained on one thread leaves the other cores of a laptop idle, and the demo's
neural rungs are most of its time. So the neural rungs are dealt into ``lanes`` (at most one
per usable CPU): :func:`plan_lanes` puts the rung with the most planned steps first on the
least loaded lane and keeps the ladder's order inside each lane (the demo on 2 cores:
``ffnn -> lstm`` in one process, ``gpt`` in the other). The n-gram rungs run before them in
this process.

What stays as it was:

* the figures: each rung is trained and scored by the same code (``ladder._run_rung``) with
  the same seed and thread count, whichever process runs it, so parallel and sequential give
  the same numbers (a test checks it);
* the safety cap: a shared cap (``neural_cap_shared``) is wall time, so every lane gets all of
  it, shared among the lane's rungs in proportion to their planned steps, time one rung did not
  use going to the next (one lane: the sequential rule);
* the output: the lanes' log records and progress lines come back to this process through one
  queue and are printed here as whole lines, each naming its rung.

Lanes are started with ``spawn`` (not ``fork``: a forked copy of a process that already ran
PyTorch's thread pool can hang), so a script that calls :func:`run_lanes` (or a ladder with
``neural_workers > 1``) needs the usual ``if __name__ == "__main__":`` guard; the
``chainrule`` command has it.
"""

from __future__ import annotations

import dataclasses
import logging
import logging.handlers
import multiprocessing as mp
import queue as queue_mod
import time
import traceback
from collections.abc import Callable, Sequence

from chainrule.evaluation.ladder_config import LadderData, RungResult

POLL_SECONDS = 0.5  # how often the parent looks for a lane that died without a word


def plan_lanes(costs: dict[str, float], lanes: int) -> list[list[str]]:
    """Deal rungs (in the ladder's order, with their costs) into at most ``lanes`` lanes.

    The costliest rung goes first onto the least loaded lane (ties: the earlier rung, the
    lower lane); each lane then lists its rungs in the ladder's order. Empty lanes are dropped.

    >>> plan_lanes({"ffnn": 4000, "lstm": 4000, "gpt": 8000}, 2)
    [['gpt'], ['ffnn', 'lstm']]
    >>> plan_lanes({"ffnn": 4000, "lstm": 4000, "gpt": 8000}, 1)
    [['ffnn', 'lstm', 'gpt']]
    """
    order = list(costs)
    lanes = max(1, min(lanes, len(order)))
    load = [0.0] * lanes
    members: list[list[str]] = [[] for _ in range(lanes)]
    for rung in sorted(order, key=lambda r: (-costs[r], order.index(r))):
        lane = min(range(lanes), key=lambda i: (load[i], i))
        load[lane] += costs[rung]
        members[lane].append(rung)
    return [sorted(m, key=order.index) for m in members if m]


def neural_costs(data: LadderData) -> dict[str, float]:
    """The ladder's neural rungs with their planned steps (the cost :func:`plan_lanes` uses)."""
    from chainrule.evaluation.ladder_rungs import NEURAL_DEFAULTS, _train_config

    cfg = data.config
    return {r: float(_train_config(r, data, cfg.neural_iters).max_iters)
            for r in cfg.rungs if r in NEURAL_DEFAULTS}


def lane_count(data: LadderData) -> int:
    """How many lanes the ladder runs: ``neural_workers``, or with 0 (auto) one per usable CPU
    for a step plan on one thread per rung; 1 (sequential) otherwise."""
    cfg = data.config
    if cfg.neural_workers:
        return cfg.neural_workers
    if cfg.neural_seconds or cfg.neural_threads != 1:
        return 1
    from chainrule.threads import usable_cpus

    return usable_cpus()


def lane_data(data: LadderData, lane: Sequence[str]) -> LadderData:
    """The ladder's data for one lane: its config lists only the lane's rungs, so a shared cap
    is split among them (``ladder_rungs._cap_share``)."""
    return dataclasses.replace(data, config=dataclasses.replace(data.config, rungs=tuple(lane)))


def run_lanes(data: LadderData, lanes: Sequence[Sequence[str]], pairs,
              log: Callable[[str], None], run_rung: Callable[..., RungResult]
              ) -> dict[str, RungResult]:
    """Run each lane's rungs in its own process; return every rung's result.

    ``run_rung(rung, data, pairs, log)`` trains and scores one rung (the ladder's own
    ``_run_rung``, passed in: a module-level function, so the lane process can import it).

    Log records and progress lines are re-emitted here as they arrive. A rung that fails with a
    ``ChainruleError`` is a skipped row, as in a sequential ladder; any other error in a lane
    stops the others and is raised here with the lane's traceback.
    """
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    level = logging.getLogger("chainrule").getEffectiveLevel()
    procs = []
    for i, lane in enumerate(lanes):
        procs.append(ctx.Process(target=_lane_main, name=f"ladder-lane-{i}", daemon=True,
                                 args=(i, lane_data(data, lane), pairs, messages, level,
                                       run_rung)))
    results: dict[str, RungResult] = {}
    pending, silent = set(range(len(procs))), dict.fromkeys(range(len(procs)), 0)
    try:
        for p in procs:
            p.start()
        while pending:
            try:
                kind, i, payload = messages.get(timeout=POLL_SECONDS)
            except queue_mod.Empty:
                _check_alive(procs, lanes, pending, silent, results)
                continue
            if kind == "record":
                logging.getLogger(payload.name).handle(payload)
            elif kind == "line":
                log(payload)
            elif kind == "done":
                results.update((r.rung, r) for r in payload)
                pending.discard(i)
            else:  # "error"
                raise RuntimeError(f"the ladder's lane {', '.join(lanes[i])} failed:\n{payload}")
    finally:
        for p in procs:
            if p.is_alive() and p.pid is not None and pending:
                p.terminate()
            if p.pid is not None:
                p.join()
    return results


def _check_alive(procs, lanes, pending: set[int], silent: dict[int, int],
                 results: dict[str, RungResult]) -> None:
    """A lane that ended without its results (killed, out of memory): its rungs are skipped.
    It must be seen dead twice, so a last message still in the queue is read first."""
    for i in sorted(pending):
        if procs[i].is_alive():
            continue
        silent[i] += 1
        if silent[i] < 2:
            continue
        pending.discard(i)
        for rung in lanes[i]:
            results[rung] = RungResult(rung, status="skipped", reason=(
                f"failed: its training process ended with exit code {procs[i].exitcode} "
                "before it finished (out of memory or killed?)"))


def _lane_main(index: int, data: LadderData, pairs, messages, level: int,
               run_rung: Callable[..., RungResult]) -> None:
    """A lane process: train and score its rungs in order, send everything to the parent."""
    import torch

    logger = logging.getLogger("chainrule")
    logger.handlers[:] = [_Forward(messages, index)]
    logger.setLevel(level)
    logger.propagate = False
    torch.set_num_threads(data.config.neural_threads or 1)
    data.neural_started = time.perf_counter()  # this lane's share of a cap counts from here
    try:
        out = []
        for rung in data.config.rungs:
            out.append(run_rung(rung, data, pairs,
                                lambda s: messages.put(("line", index, s))))
        messages.put(("done", index, out))
    except BaseException:  # noqa: BLE001 - any failure goes to the parent, with its traceback
        messages.put(("error", index, traceback.format_exc()))
        raise SystemExit(1) from None


class _Forward(logging.handlers.QueueHandler):
    """Log records to the parent as ``("record", lane, record)`` (formatted, picklable)."""

    def __init__(self, messages, index: int):
        super().__init__(messages)
        self.index = index

    def enqueue(self, record: logging.LogRecord) -> None:
        self.queue.put(("record", self.index, record))


def run_neural(data: LadderData, rungs: Sequence[str], pairs, log: Callable[[str], None],
               run_one: Callable[..., RungResult], run_rung: Callable[..., RungResult]
               ) -> dict[str, RungResult]:
    """The neural rungs: in lanes when more than one is planned (each lane calls ``run_rung``,
    see :func:`run_lanes`), else here one by one with ``run_one``."""
    lanes = plan_lanes({r: c for r, c in neural_costs(data).items() if r in rungs},
                       lane_count(data))
    if len(lanes) > 1:
        log(f"  training in {len(lanes)} processes at once: "
            + " | ".join(" -> ".join(lane) for lane in lanes))
        return run_lanes(data, lanes, pairs, log, run_rung)
    data.neural_started = time.perf_counter()
    return {r: run_one(r, data, pairs, log) for r in rungs}


__all__ = ["lane_count", "lane_data", "neural_costs", "plan_lanes", "run_lanes", "run_neural"]
