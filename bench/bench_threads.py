"""Small-op cost by thread count and OpenMP wait policy: why chainrule's thread policy is what
it is (docs/training.md, "CPU threads on a busy machine").

Each setting runs in a fresh process (OpenMP reads its wait policy once, when torch loads it)
and times the operations of one ``shakespeare-char-cpu`` layer (a 768×128 by 128×512 matrix
product, GELU on 768×512, LayerNorm on 768×128): the minimum over the repetitions (what the
op costs when nothing interrupts it) and the median (what it costs on this machine now).
``--busy`` adds one CPU-bound process of our own for the whole run.

    .venv/bin/python bench/bench_threads.py
    .venv/bin/python bench/bench_threads.py --busy --reps 300
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys

SETTINGS = [  # label, torch threads, environment added (OpenMP's own default: spin a while)
    ("1 thread", 1, {}),
    ("2 threads, OpenMP default (spin)", 2, {}),
    ("2 threads, OMP_WAIT_POLICY=PASSIVE", 2, {"OMP_WAIT_POLICY": "PASSIVE"}),
]
CLEARED = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_NUM_THREADS")

WORKER = r"""
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
reps = int(sys.argv[2])
x, w = torch.randn(768, 128), torch.randn(128, 512)
h = torch.randn(768, 512)
ops = {"matmul 768x128x512": lambda: x @ w, "gelu 768x512": lambda: torch.nn.functional.gelu(h),
       "layer_norm 768x128": lambda: torch.nn.functional.layer_norm(x, (128,))}
out = {}
for name, f in ops.items():
    for _ in range(5):
        f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    ts.sort()
    out[name] = {"min_us": ts[0] * 1e6, "median_us": ts[len(ts) // 2] * 1e6}
print(json.dumps(out))
"""


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:4])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--busy", action="store_true", help="run one CPU-bound process alongside")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    spin = (subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy
            else None)
    rows = {}
    try:
        before = loadavg()
        for label, n, extra in SETTINGS:
            env = {k: v for k, v in os.environ.items() if k not in CLEARED}
            env.update(extra)
            p = subprocess.run([sys.executable, "-c", WORKER, str(n), str(args.reps)], env=env,
                               capture_output=True, text=True, check=True)
            rows[label] = json.loads(p.stdout)
        after = loadavg()
    finally:
        if spin:
            spin.kill()
            spin.wait()
    if args.json:
        print(json.dumps({"loadavg": [before, after], "busy": args.busy, "rows": rows}))
        return 0
    print(f"nproc {os.cpu_count()}, loadavg {before} -> {after}"
          + (", plus one spinner of ours" if args.busy else ""))
    ops = list(next(iter(rows.values())))
    print(f"{'setting':<36}" + "".join(f"{op:>26}" for op in ops))
    for label, r in rows.items():
        print(f"{label:<36}" + "".join(
            f"{r[op]['min_us']:>11.0f} / {r[op]['median_us']:>8.0f} us" for op in ops))
    print("(each cell: minimum / median over the repetitions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
