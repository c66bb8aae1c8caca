"""n-gram estimation end to end through the CLI against KenLM's ``lmplz``, in the same run.

    .venv/bin/python bench/bench_ngram_estimate.py --lmplz /work/peers/kenlm/build/bin/lmplz
    .venv/bin/python bench/bench_ngram_estimate.py --big 20 --memory 200M   # out of core

* estimation: ``chainrule train --family ngram --order N brown/train.txt -o DIR`` (start-up,
  reading, counting, discounts, model.safetensors, tokenizer.json and model.arpa) against
  ``lmplz -o N -S 1G --text brown/train.txt --arpa FILE``, each a child process, alternated
  ``--repeats`` times; wall time and the child's own peak RSS (``os.wait4``). The ratio uses
  the median of each side.
* start-up: ``chainrule --help`` and ``python -c "import chainrule.cli"`` (best of 5), and
  whether an n-gram command imported torch.
* ``--big K``: a corpus of K copies of Brown train, copy i with one word dropped from every
  sentence (at position i + line mod length), so that it holds new n-grams and its counts
  are not all multiples of K; ours with ``--memory`` (counting spills sorted runs to disk)
  against ``lmplz -S`` of the same size, both with a temporary directory on disk.

KenLM is not on PyPI: build it from https://github.com/kpu/kenlm outside this repository and
pass ``--lmplz``; without it the peer is skipped with a reason.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "brown"
_SCRIPT = Path(sys.executable).with_name("chainrule")  # the console script, as a user runs it
CHAINRULE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "chainrule.cli"]
DEFAULT_LMPLZ = Path("/work/peers/kenlm/build/bin/lmplz")


# children run as an installed package does: with byte-compiled modules (this environment sets
# PYTHONDONTWRITEBYTECODE, which would recompile every module of every run)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_child(cmd: list[str]) -> dict:
    """Wall seconds, peak RSS (MB) and CPU seconds of one child process (and its children)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return {"wall_s": wall, "peak_mb": usage.ru_maxrss / 1024,
            "cpu_s": usage.ru_utime + usage.ru_stime}


def ours_cmd(order: int, corpus: Path, out: Path, memory: str | None, tmp: Path) -> list[str]:
    cmd = [*CHAINRULE, "train", "--family", "ngram", "--order", str(order), str(corpus),
           "-o", str(out), "--overwrite"]
    if memory:
        cmd += ["--memory", memory, "--temp-dir", str(tmp)]
    return cmd


def lmplz_cmd(lmplz: Path, order: int, corpus: Path, arpa: Path, memory: str, tmp: Path,
              fallback: bool = False) -> list[str]:
    cmd = [str(lmplz), "-o", str(order), "-S", memory, "-T", str(tmp), "--text", str(corpus),
           "--arpa", str(arpa)]
    return cmd + (["--discount_fallback"] if fallback else [])


def summary(runs: list[dict]) -> dict:
    return {"wall_s": statistics.median(r["wall_s"] for r in runs),
            "wall_min_s": min(r["wall_s"] for r in runs),
            "peak_mb": max(r["peak_mb"] for r in runs),
            "cpu_s": statistics.median(r["cpu_s"] for r in runs)}


def compare(order: int, corpus: Path, lmplz: Path | None, repeats: int, memory: str | None,
            lmplz_memory: str, work: Path, fallback: bool = False) -> dict:
    ours, peer = [], []
    for _ in range(repeats):
        ours.append(run_child(ours_cmd(order, corpus, work / f"ours{order}", memory, work)))
        if lmplz is not None:
            peer.append(run_child(lmplz_cmd(lmplz, order, corpus, work / f"lmplz{order}.arpa",
                                            lmplz_memory, work, fallback)))
    row = {"order": order, "corpus": str(corpus), "memory": memory, "ours": summary(ours)}
    o = row["ours"]
    line = (f"order {order}: chainrule {o['wall_s']:.2f} s wall (min {o['wall_min_s']:.2f}, cpu "
            f"{o['cpu_s']:.2f} s), peak {o['peak_mb']:.0f} MB")
    if peer:
        p = row["lmplz"] = summary(peer)
        row["wall_ratio"] = o["wall_s"] / p["wall_s"]
        row["memory_ratio"] = o["peak_mb"] / p["peak_mb"]
        line += (f" | lmplz -S {lmplz_memory}: {p['wall_s']:.2f} s wall (min "
                 f"{p['wall_min_s']:.2f}, cpu {p['cpu_s']:.2f} s), peak {p['peak_mb']:.0f} MB | "
                 f"ratio wall {row['wall_ratio']:.2f}x, memory {row['memory_ratio']:.2f}x")
    print(line, flush=True)
    return row


def startup() -> dict:
    def best(cmd: list[str]) -> float:
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=ENV)
            times.append(time.perf_counter() - t0)
        return min(times)

    out = {"help_s": best([*CHAINRULE, "--help"]),
           "help_cpu_s": min(run_child([*CHAINRULE, "--help"])["cpu_s"] for _ in range(5)),
           "import_cli_s": best([sys.executable, "-c", "import chainrule.cli"]),
           "python_s": best([sys.executable, "-c", "pass"])}
    probe = "import sys, chainrule.cli, chainrule.models.ngram.train; print('torch' in sys.modules)"
    out["ngram_imports_torch"] = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.strip() == "True"
    print(f"start-up: `chainrule --help` {out['help_s']:.3f} s (cpu {out['help_cpu_s']:.3f} s), "
          f"`import chainrule.cli` "
          f"{out['import_cli_s']:.3f} s (bare python {out['python_s']:.3f} s); the n-gram "
          f"trainer imports torch: {out['ngram_imports_torch']}", flush=True)
    return out


def big_corpus(copies: int, path: Path) -> Path:
    lines = (DATA / "train.txt").read_text(encoding="utf-8").splitlines()
    with open(path, "w", encoding="utf-8") as f:
        for i in range(copies):
            for j, line in enumerate(lines):
                words = line.split()
                if i and words:
                    del words[(i + j) % len(words)]
                f.write(" ".join(words) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lmplz", type=Path, default=DEFAULT_LMPLZ if DEFAULT_LMPLZ.exists() else None)
    ap.add_argument("--orders", default="3,5")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lmplz-memory", default="1G", help="lmplz -S for the Brown runs")
    ap.add_argument("--big", type=int, default=0, metavar="K", help="also K x Brown, out of core")
    ap.add_argument("--memory", default="200M", help="--memory (ours) and -S (lmplz) with --big")
    ap.add_argument("--temp-dir", default=None, help="scratch directory (default: system temp)")
    ap.add_argument("--skip-brown", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"needs {DATA} (the shared Brown data)")
    if args.lmplz is None or not Path(args.lmplz).exists():
        print("lmplz: skipped (pass --lmplz PATH to a KenLM build; it is not on PyPI)")
        args.lmplz = None
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs", flush=True)
    subprocess.run([*CHAINRULE, "--help"], check=True, capture_output=True, env=ENV)
    result: dict = {"load": os.getloadavg()[0], "startup": startup(), "rows": []}
    work = Path(tempfile.mkdtemp(prefix="bench-ngram-", dir=args.temp_dir))
    subprocess.run([*CHAINRULE, "train", "--family", "ngram", "--order", "2",
                    str(DATA / "valid.txt"), "-o", str(work / "warm-up")], check=True,
                   capture_output=True, env=ENV)  # writes the byte code once
    try:
        if not args.skip_brown:
            for order in (int(x) for x in args.orders.split(",")):
                result["rows"].append(compare(order, DATA / "train.txt", args.lmplz,
                                              args.repeats, None, args.lmplz_memory, work))
        if args.big:
            corpus = big_corpus(args.big, work / f"brown-x{args.big}.txt")
            print(f"{args.big} x Brown: {corpus.stat().st_size / 1e6:.0f} MB, --memory "
                  f"{args.memory}", flush=True)
            for order in (int(x) for x in args.orders.split(",")):
                row = compare(order, corpus, args.lmplz, args.repeats, args.memory, args.memory,
                              work)
                with open(work / f"ours{order}" / "config.json", encoding="utf-8") as f:
                    row["ngrams"] = json.load(f)["ngram_counts"]
                result["rows"].append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_after"] = os.getloadavg()[0]
    print(f"load average after: {result['load_after']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
