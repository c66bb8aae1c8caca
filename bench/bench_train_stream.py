"""Peak memory of ``chainrule train`` on a corpus of about 1 GB: ids streamed from the token cache.

Builds a text corpus of ``--gb`` gigabytes in a temporary directory (the lines of Tiny
Shakespeare and of the Brown training text, shuffled afresh for every block of a few MB, so the
corpus is not one short text repeated), pre-trains a character tokenizer on those two files,
and runs ``chainrule train --family gpt`` (``shakespeare-char-cpu``, ``max_iters`` iterations) in
a subprocess, measuring the subprocess's peak resident memory (``os.wait4``: that process only)
and its wall time:

1. cold: the corpus is tokenised into the cache (``--cache DIR``), then the model trains;
2. warm: a second run with the same ``--cache DIR`` reuses it (cold - warm = tokenising time),
   and a longer warm run (``--long-iters``) shows that the resident size does not creep up as
   more random windows of ``tokens.bin`` are read;
3. the same two runs' peer in the same run: the old in-memory path (``read_corpus`` ->
   ``split_text`` -> ``encode_text`` -> ``train``, what ``chainrule train`` did before the cache)
   and the cache path on a smaller corpus of ``--small-mb`` MB, since the old path needs several
   times the corpus in memory (a Python list of ids) and would not fit 1 GB on a small machine;
4. with ``--train-tokenizer``: a cold run on the big corpus without ``--tokenizer``, so the
   character tokenizer is trained on the 1 GB too (read piece by piece).

Everything is written under a temporary directory (``--tmp``, default the system's) and
deleted at the end. Run by hand (not from the tests)::

    .venv/bin/python bench/bench_train_stream.py [--gb 1] [--small-mb 100] [--iters 20] \
        [--long-iters 300] [--train-tokenizer]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SOURCES = [DATA / "tinyshakespeare" / "input.txt", DATA / "brown" / "train.txt"]
TRAIN_KEYS = ["device=cpu", "eval_interval=1000", "eval_iters=5", "log_interval=10"]

OLD_PATH = """
import json, sys, torch
torch.set_num_threads(1)
from chainrule.tokenizers import load_tokenizer
from chainrule.training import make_config, train
from chainrule.data import split_text
from chainrule.training.data import encode_text, read_corpus
tok_path, corpus, out, *overrides = sys.argv[1:]
tok = load_tokenizer(tok_path)
cfg = make_config("gpt", "shakespeare-char-cpu", overrides)
text = read_corpus([corpus])  # what chainrule train did before the token cache
by = "lines" if cfg.boundaries == "lines" else "chars"
train_text, val_text = split_text(text, [1 - cfg.val_fraction, cfg.val_fraction], by=by)
train_ids = encode_text(train_text, tok, cfg.boundaries)
val_ids = encode_text(val_text, tok, cfg.boundaries)
summary = train(cfg, train_ids, val_ids, out, tokenizer=tok, progress=False, plot=False)
print(json.dumps({"steps": summary["steps"], "train_tokens": len(train_ids)}))
"""


def make_corpus(path: Path, size: int, seed: int = 0) -> int:
    """Write about ``size`` bytes of shuffled source lines to ``path``; return the bytes written."""
    lines = [line for src in SOURCES
             for line in src.read_text(encoding="utf-8").splitlines(keepends=True) if line.strip()]
    rng = random.Random(seed)
    written = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        while written < size:
            rng.shuffle(lines)
            block = "".join(lines).encode("utf-8")[: size - written]
            cut = block.rfind(b"\n") + 1 or len(block)  # whole lines only
            f.write(block[:cut].decode("utf-8"))
            written += cut
    return written


def measure(argv: list[str], env: dict[str, str]) -> dict:
    """Run ``argv``; return wall seconds, peak RSS (MB) of that process alone, and its stdout."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{stderr}")
    rss_mb = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20
    return {"wall_s": wall, "rss_mb": rss_mb, "stdout": stdout}


def chainrule_train(corpus: Path, out: Path, cache: Path, iters: int, tok: Path | None) -> list[str]:
    argv = [sys.executable, "-m", "chainrule.cli", "--threads", "1", "train", "--family", "gpt",
            "--preset", "shakespeare-char-cpu", "-o", str(out), "--cache", str(cache), "--json"]
    if tok is not None:
        argv += ["--tokenizer", str(tok)]
    return [*argv, f"max_iters={iters}", *TRAIN_KEYS, str(corpus)]


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"nproc {os.cpu_count()}, {model}, load average {load}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=1.0, help="size of the big corpus (GB, 10^9 bytes)")
    p.add_argument("--small-mb", type=float, default=100.0,
                   help="corpus size for the comparison with the old in-memory path (MB)")
    p.add_argument("--iters", type=int, default=20, help="max_iters of each training run")
    p.add_argument("--long-iters", type=int, default=300, help="max_iters of the long warm run")
    p.add_argument("--train-tokenizer", action="store_true",
                   help="also run cold on the big corpus without --tokenizer")
    p.add_argument("--tmp", default=None, help="where the temporary files go")
    args = p.parse_args()

    from chainrule.tokenizers import train_tokenizer

    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    print(f"machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="chainrule-bench-", dir=args.tmp) as tmp:
        tmp = Path(tmp)
        tok = tmp / "char.json"
        train_tokenizer("char", SOURCES).save(tok)
        for name, size in (("big", int(args.gb * 1e9)), ("small", int(args.small_mb * 1e6))):
            t = time.perf_counter()
            n = make_corpus(tmp / f"{name}.txt", size)
            print(f"{name} corpus: {n:,} bytes written in {time.perf_counter() - t:.1f} s")

        def run(label: str, corpus: str, argv: list[str]) -> dict:
            r = measure(argv, env)
            summary = json.loads(r["stdout"].strip().splitlines()[-1])
            row = {"run": label, "corpus": corpus, "wall_s": round(r["wall_s"], 1),
                   "peak_rss_mb": round(r["rss_mb"]), "train_tokens": summary["train_tokens"]}
            print(json.dumps(row), flush=True)
            rows.append(row)
            return row

        it = args.iters
        big, small = tmp / "big.txt", tmp / "small.txt"
        cold = run("cache, cold (tokenise + train)", "big",
                   chainrule_train(big, tmp / "m1", tmp / "cache-big", it, tok))
        warm = run("cache, warm (reused)", "big",
                   chainrule_train(big, tmp / "m2", tmp / "cache-big", it, tok))
        run(f"cache, warm, {args.long_iters} iterations", "big",
            chainrule_train(big, tmp / "m2b", tmp / "cache-big", args.long_iters, tok))
        print(f"tokenising {big.stat().st_size / 1e9:.2f} GB: about "
              f"{cold['wall_s'] - warm['wall_s']:.0f} s (cold - warm); tokens.bin "
              f"{(tmp / 'cache-big' / 'train' / 'tokens.bin').stat().st_size / 1e9:.2f} GB")
        shutil.rmtree(tmp / "cache-big")
        new_small = run("cache, cold (tokenise + train)", "small",
                        chainrule_train(small, tmp / "m3", tmp / "cache-small", it, tok))
        old_small = run("old in-memory path", "small",
                        [sys.executable, "-c", OLD_PATH, str(tok), str(small), str(tmp / "m4"),
                         f"max_iters={it}", *TRAIN_KEYS])
        print(f"small corpus: old / cache peak RSS = "
              f"{old_small['peak_rss_mb'] / new_small['peak_rss_mb']:.1f}x")
        if args.train_tokenizer:
            run("cache, cold, char tokenizer trained on the corpus", "big",
                chainrule_train(big, tmp / "m5", tmp / "cache-big2", it, None))
        print(f"machine after: {machine()}")
    print("\n| run | corpus | wall s | peak RSS MB | train tokens |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['corpus']} | {r['wall_s']} | {r['peak_rss_mb']} | "
              f"{r['train_tokens']:,} |")


if __name__ == "__main__":
    main()
