"""One call for a whole sweep: corpus -> grid (given, saved, or planned from a time budget) ->
runs -> results. What ``chainrule scale sweep`` calls."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from chainrule.errors import ConfigError
from chainrule.scaling.grid import SweepPoint
from chainrule.scaling.sweep import (
    load_results,
    prepare_corpus,
    read_manifest,
    run_sweep,
    write_manifest,
)

log = logging.getLogger(__name__)


def sweep_corpus(
    corpus: list[Path],
    out_dir: str | Path,
    points: list[SweepPoint] | None = None,
    *,
    time_budget: float | None = None,
    family: str = "gpt",
    kind: str = "char",
    vocab_size: int | None = None,
    settings: dict[str, Any] | None = None,
    lr_scale: float = 1.0,
    device: str = "auto",
    jobs: int = 1,
    threads: int | None = None,
    plan_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run (or finish) the sweep in ``out_dir``; return every run's result.

    Args:
        corpus: text files (the last 10% of the tokens is the validation text).
        out_dir: the sweep directory (see :mod:`chainrule.scaling.sweep`).
        points: the grid; None reuses the one ``out_dir/sweep.json`` saved, or plans one
            with ``time_budget``.
        time_budget: seconds of wall time to plan a grid within (used when no grid is saved).
        family / kind / vocab_size: the family the planner sizes, the tokenizer trained once.
        settings: KEY=VALUE settings shared by every run (batch_size, block_size, ...).
        lr_scale: multiplies the size rule's learning rate.
        jobs / threads: processes that run points at once, and CPU threads in each.
    """
    out_dir = Path(out_dir)
    saved = read_manifest(out_dir) if (out_dir / "sweep.json").exists() else None
    if saved is not None:
        corpus = corpus or [Path(c) for c in saved["corpus"]]
        kind = saved["tokenizer_kind"]
        settings = {**saved.get("settings", {}), **(settings or {})}
        lr_scale = saved.get("lr_scale", lr_scale)
    if not corpus:
        raise ConfigError("no corpus file given; pass one or more text files to sweep on.")
    settings = dict(settings or {})
    data = prepare_corpus(corpus, out_dir, kind, vocab_size)
    plan = None
    if points is None and saved is not None:
        points = []  # the saved grid, resumed
    elif points is None:
        if time_budget is None:
            raise ConfigError("no grid given: pass --widths/--depths/--tokens, --grid FILE, "
                              "or --time-budget SECONDS to let the sweep choose one.")
        from chainrule.scaling.plan import plan_sweep

        points, plan = plan_sweep(data, time_budget, family=family, base=settings,
                                  device=device, jobs=jobs, **(plan_options or {}))
    all_points = write_manifest(out_dir, points, corpus, kind=kind, settings=settings,
                                lr_scale=lr_scale, plan=plan)
    if not all_points:
        raise ConfigError(f"{str(out_dir)!r} holds no grid to run; give one.")
    run_sweep(all_points, data, out_dir, base=settings, lr_scale=lr_scale, device=device,
              jobs=jobs, threads=threads)
    return load_results(out_dir, all_points)


__all__ = ["sweep_corpus"]
