"""The demo's time on a quiet 2-core box, projected from CPU-seconds per step (issue 14).

A loaded machine stretches wall time but much less the CPU time a step takes, so this measures
CPU-seconds per optimiser step for each neural rung of the demo's plan (one thread, the demo's
settings, a short run after a warm-up), then projects each lane of the two-process schedule
(:func:`chainrule.evaluation.ladder_lanes.plan_lanes`): planned steps x seconds per step. The
same run measures the LSTM without its reset at ``<s>``, the cost of the reset as a ratio.

    .venv/bin/python bench/bench_demo_lanes.py --steps 300            # ~2 CPU-minutes
    .venv/bin/python bench/bench_demo_lanes.py --steps 300 --json

CPU time is still inflated on a busy machine (shared caches, hyper-threads): compare with the
quiet-box rates in bench/RESULTS.md ("Demo"), and check with a real `chainrule demo` when the
box is quiet.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


def cpu_per_step(family: str, data, steps: int, work: Path, **extra) -> float:
    """CPU-seconds per step of ``steps`` demo training steps (after a 20-step warm-up)."""
    from chainrule.evaluation.ladder_rungs import _stream, _train_config
    from chainrule.training.loop import train

    ids = _stream(data.train_seqs)
    tag = family + "".join(f"_{k}{v}" for k, v in extra.items())
    for name, n in ((f"{tag}_warm", 20), (tag, steps)):
        d = work / name
        shutil.rmtree(d, ignore_errors=True)
        c = time.process_time()
        train(_train_config(family, data, n, max_iters=n, **extra), ids, None, d,
              tokenizer=data.tokenizer, progress=False, plot=False)
        cpu = time.process_time() - c
    return cpu / steps


def main() -> None:
    import torch

    from chainrule.evaluation.demo import DEMO_PLAN, demo_config
    from chainrule.evaluation.ladder import prepare
    from chainrule.evaluation.ladder_lanes import neural_costs, plan_lanes

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lanes", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = prepare(demo_config(str(work / "demo"), cap=0))
        plan = neural_costs(data)
        per_step = {f: cpu_per_step(f, data, args.steps, work) for f in plan}
        plain_lstm = cpu_per_step("lstm", data, args.steps, work, reset_at_bos=False)
    lanes = plan_lanes(plan, args.lanes)
    out = {
        "steps_measured": args.steps, "plan": {f: int(n) for f, n in plan.items()},
        "cpu_ms_per_step": {f: 1000 * s for f, s in per_step.items()},
        "lstm_reset_cost": per_step["lstm"] / plain_lstm if "lstm" in per_step else None,
        "lanes": [{"rungs": lane, "projected_s": sum(plan[f] * per_step[f] for f in lane)}
                  for lane in lanes],
        "one_lane_projected_s": sum(plan[f] * per_step[f] for f in plan),
    }
    assert set(plan) <= set(DEMO_PLAN)
    if args.json:
        print(json.dumps(out, indent=1))
        return
    for f, ms in out["cpu_ms_per_step"].items():
        print(f"{f:<5} {ms:6.1f} CPU-ms/step ({1000 / ms:4.1f} steps/s), plan {plan[f]:,.0f} steps")
    print(f"lstm reset at <s>: {out['lstm_reset_cost']:.2f}x the plain LSTM's step")
    for lane in out["lanes"]:
        print(f"lane {' -> '.join(lane['rungs'])}: {lane['projected_s']:.0f} s of training")
    print(f"one lane (one core): {out['one_lane_projected_s']:.0f} s")


if __name__ == "__main__":
    main()
