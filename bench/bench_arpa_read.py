"""Reading an ARPA file, against ``kenlm.Model`` loading the same file in the same run (issue 21).

    nice -n 10 .venv/bin/python bench/bench_arpa_read.py --rounds 3
    nice -n 10 .venv/bin/python bench/bench_arpa_read.py --arpa FILE.arpa[.gz] --python
    nice -n 10 .venv/bin/python bench/bench_arpa_read.py --layouts --rounds 3

Each measurement is a fresh process that times only the load call (imports excluded), as wall
time and as CPU time of the process (less sensitive to a busy machine). Rows, alternated per
round so that every row sees the same load:

* ``ours``: :func:`chainrule.models.ngram.train.read_arpa_model` (what ``ngram import-arpa``,
  ``ngram binarize`` and loading an ARPA file run): the compiled reader when it is built;
* ``ours-python`` (``--python``): the same with the compiled reader switched off (the fallback);
* ``kenlm``: ``kenlm.Model(path)`` (the ``kenlm`` Python module, probing hash tables).

The default file is KenLM's order-5 Brown model from the shared data, read both gzipped (as
stored) and decompressed into a temporary file. ``--layouts`` adds the same model in layouts
other than the one KenLM writes, both of which ``kenlm.Model`` also reads: ``shuffled`` (every
section's lines in random order) and ``srilm-crlf`` (shuffled, lines whose backoff is 0 without
one, as SRILM writes them, and CRLF line ends). Prints one JSON object: medians per row and file,
and the per-round ratios ours / kenlm.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "kenlm-reference" / "brown-train.o5.arpa.gz"

CHILD = r"""
import json, sys, time
kind, path = sys.argv[1], sys.argv[2]
if kind == "kenlm":
    import kenlm
    load = lambda: kenlm.Model(path)
else:
    from chainrule.models.ngram import arpa_fast
    from chainrule.models.ngram.train import read_arpa_model
    if kind == "ours-python":
        arpa_fast.core = lambda: None
    load = lambda: read_arpa_model(path)
w0, c0 = time.perf_counter(), time.process_time()
model = load()
w1, c1 = time.perf_counter(), time.process_time()
print(json.dumps({"wall_s": w1 - w0, "cpu_s": c1 - c0}))
"""


def measure(kind: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(path)], capture_output=True,
                         text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def relayout(plain: Path, dst: Path, srilm_crlf: bool) -> Path:
    """``plain`` (an ARPA file in KenLM's layout) with every section's lines shuffled; with
    ``srilm_crlf`` also zero backoffs left out and CRLF line ends."""
    rng = random.Random(0)
    out: list[bytes] = []
    section: list[bytes] | None = None
    for line in plain.read_bytes().split(b"\n"):
        if section is not None and line == b"":
            rng.shuffle(section)
            out += section
            section = None
        if section is not None:
            if srilm_crlf and line.endswith(b"\t0"):
                line = line[:-2]
            section.append(line)
        else:
            out.append(line)
        if line.endswith(b"-grams:"):
            section = []
    dst.write_bytes((b"\r\n" if srilm_crlf else b"\n").join(out))
    return dst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arpa", type=Path, default=DEFAULT)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--python", action="store_true", help="also time the Python fallback")
    ap.add_argument("--layouts", action="store_true",
                    help="also the file shuffled, and shuffled in SRILM's style with CRLF")
    args = ap.parse_args()
    try:
        import kenlm  # noqa: F401
    except ImportError:
        print("the kenlm module is not installed (pip install '.[bench]'); nothing to compare.")
        return 1
    if not args.arpa.exists():
        print(f"{args.arpa} is absent (the shared data); pass --arpa FILE.")
        return 1
    kinds = ["ours", "kenlm"] + (["ours-python"] if args.python else [])
    result: dict = {"load": os.getloadavg(), "files": {}}
    with tempfile.TemporaryDirectory() as tmp:
        files = [args.arpa]
        if args.arpa.suffix == ".gz":
            plain = Path(tmp) / args.arpa.stem
            with gzip.open(args.arpa, "rb") as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst)
            files.append(plain)
        if args.layouts:
            plain = files[-1]
            files += [relayout(plain, Path(tmp) / f"{plain.stem}.shuffled.arpa", False),
                      relayout(plain, Path(tmp) / f"{plain.stem}.srilm-crlf.arpa", True)]
        for f in files:
            rows: dict[str, list[dict]] = {k: [] for k in kinds}
            for r in range(args.rounds):
                for kind in kinds if r % 2 == 0 else kinds[::-1]:
                    rows[kind].append(measure(kind, f))
            name = f.name
            res = {k: {m: statistics.median(x[m] for x in v) for m in ("wall_s", "cpu_s")}
                   for k, v in rows.items()}
            for m in ("wall_s", "cpu_s"):
                res[f"ours/kenlm {m} per round"] = [
                    round(a[m] / b[m], 3) for a, b in zip(rows["ours"], rows["kenlm"])]
            result["files"][name] = res
            print(json.dumps({name: res}), file=sys.stderr, flush=True)
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
