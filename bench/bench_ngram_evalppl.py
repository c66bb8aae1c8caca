"""``chainrule eval ppl`` end to end on an n-gram model vs KenLM's ``query``, same run (issue 21).

    .venv/bin/python bench/bench_ngram_evalppl.py --models /tmp/brown5 /tmp/brown5.ngram \
        --query /work/peers/kenlm/build/bin/query --kenlm-model /tmp/kenlm5.bin --rounds 5

Wall time of whole processes (start-up, imports, load, scoring, report) on brown/test.txt:
``chainrule eval ppl MODEL --data test.txt --json`` for each model (a ``train --family ngram``
directory, a ``ngram binarize`` file) against ``query -v summary KENLM_MODEL < test.txt``.
Rounds alternate the commands so all see the same load; the median round is printed, with
whether the chainrule process imported torch (it should not, for an n-gram model).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "brown" / "test.txt"
CHECK = ("import sys; from chainrule.cli import "
         "main; rc = main(sys.argv[1:]); sys.stderr.write('TORCH=%d\\n' % ('torch' in "
         "sys.modules)); sys.exit(rc)")


def _wall(cmd: list[str], stdin=None) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, check=True)
    return time.perf_counter() - t, out.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", required=True, help="n-gram model dirs / .ngram files")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--query", help="KenLM's query binary (built from source, outside the repo)")
    ap.add_argument("--kenlm-model", help="ARPA or build_binary file for --query")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    times: dict[str, list[float]] = {m: [] for m in args.models}
    torch_seen: dict[str, bool] = {}
    kenlm: list[float] = []
    if not (args.query and args.kenlm_model and os.access(args.query, os.X_OK)):
        print("KenLM query: skipped (pass --query and --kenlm-model)")
    for _ in range(args.rounds):
        for m in args.models:
            dt, err = _wall([sys.executable, "-c", CHECK, "eval", "ppl", m, "--data", args.data,
                             "--json"])
            times[m].append(dt)
            torch_seen[m] = "TORCH=1" in err
        if args.query and args.kenlm_model:
            with open(args.data, "rb") as f:
                kenlm.append(_wall([args.query, "-v", "summary", args.kenlm_model], stdin=f)[0])
    load = os.getloadavg()[0]
    for m, ts in times.items():
        med = statistics.median(ts)
        ratio = f", {med / statistics.median(kenlm):.1f}× query" if kenlm else ""
        print(f"eval ppl {m}: median {med:.2f} s (min {min(ts):.2f}; torch imported: "
              f"{torch_seen[m]}){ratio}")
    if kenlm:
        print(f"KenLM query -v summary: median {statistics.median(kenlm):.3f} s "
              f"(min {min(kenlm):.3f})")
    print(f"load average at the end: {load:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
