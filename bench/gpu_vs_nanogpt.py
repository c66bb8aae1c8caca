"""GPU training against nanoGPT itself, both run by this script on the same device (issue 21,
target 4): the GPT-2 124M shape's tokens/s, then Tiny Shakespeare (characters) to a validation
loss <= 1.47, wall time.

1. **124M shape** (12 layers, 12 heads, width 768, context 1,024, batch 12, no biases, dropout 0,
   vocabulary 50,304, bf16 autocast, ``torch.compile``, AdamW lr 6e-4 betas (0.9, 0.95), weight
   decay 0.1, gradient clipping 1.0; nanoGPT's ``train.py`` defaults). nanoGPT's ``train.py``
   and chainrule's training loop each train ``--warmup + --steps`` steps on the same random
   uint16 token file; the steady ms/iter is the median after the warm-up (which holds
   compilation). Target: chainrule >= 1.2x nanoGPT's tokens/s.
2. **shakespeare-char** (nanoGPT's ``config/train_shakespeare_char.py``; chainrule's
   ``--preset shakespeare-char`` is the same run as data): each side is started as a process,
   its evaluation lines are read as they come, and the wall time from start to the first
   validation loss <= ``--target`` is taken (start-up, data preparation and compilation
   included); the process is then stopped. Target: chainrule faster.

nanoGPT is not part of this project: pass a checkout of its public source (karpathy/nanoGPT)
with ``--nanogpt PATH``. Its files are copied to a temporary directory and run there on data
this script writes in nanoGPT's format (uint16 ``train.bin`` / ``val.bin``, ``meta.pkl``) from
the same Tiny Shakespeare text chainrule ships, so nothing is downloaded. On the GPU machine,
carry the checkout in a git-ignored folder::

    cp -r /work/peers/nanoGPT bench/out/nanoGPT              # bench/out/ is git-ignored
    python bench/gpu_vs_nanogpt.py --nanogpt bench/out/nanoGPT          # on a CUDA machine
    .venv/bin/python bench/gpu_vs_nanogpt.py --nanogpt /work/peers/nanoGPT --smoke  # CPU check

``--smoke`` shrinks both parts (a 2-layer width-64 model, a 1-layer width-32 one trained to a
validation loss of 2.9) and runs on the CPU in a few minutes: it proves the script, not speed.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TEXT = ROOT / "src" / "chainrule" / "resources" / "tinyshakespeare.txt"
NANO_FILES = ("train.py", "model.py", "configurator.py")

# the GPT-2 124M shape as nanoGPT's train.py trains it (its command-line names)
SHAPE_124M = {"n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024, "batch_size": 12}
SHAPE_SMOKE = {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 64, "batch_size": 4}
# shakespeare-char overrides for the smoke run (both sides get the same ones)
CHAR_SMOKE = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32, "batch_size": 16,
              "eval_interval": 25, "eval_iters": 5, "max_iters": 400, "lr_decay_iters": 400,
              "warmup_iters": 10, "log_interval": 25}
VOCAB_124M = 50304  # nanoGPT's default: GPT-2's 50,257 padded to a multiple of 64


def env() -> dict[str, str]:
    e = dict(os.environ, PYTHONUNBUFFERED="1")
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), e.get("PYTHONPATH", "")])
    return e


def nano_workdir(nanogpt: Path, tmp: Path) -> Path:
    """nanoGPT's three files in a scratch directory, with its two datasets in its format."""
    work = tmp / "nanogpt"
    work.mkdir()
    for name in NANO_FILES:
        shutil.copy(nanogpt / name, work / name)
    shutil.copytree(nanogpt / "config", work / "config")
    # shakespeare_char as nanoGPT's prepare.py lays it out (sorted characters, first 90% train)
    text = TEXT.read_text("utf-8")
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    cut = int(0.9 * len(ids))
    d = work / "data" / "shakespeare_char"
    d.mkdir(parents=True)
    ids[:cut].tofile(d / "train.bin")
    ids[cut:].tofile(d / "val.bin")
    with open(d / "meta.pkl", "wb") as f:  # nanoGPT reads its vocabulary from this pickle
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)
    # random tokens for the throughput part (both sides read this same file)
    d = work / "data" / "random"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rng.integers(0, VOCAB_124M, 4_000_000, dtype=np.uint16).tofile(d / "train.bin")
    rng.integers(0, VOCAB_124M, 200_000, dtype=np.uint16).tofile(d / "val.bin")
    return work


def nano_flags(values: dict) -> list[str]:
    return [f"--{k}={v}" for k, v in values.items()]


def ours_flags(values: dict) -> list[str]:
    return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items()]


# -- part 1: the 124M shape's step time --------------------------------------------------------
def nano_throughput(work: Path, args, shape: dict) -> dict:
    steps = args.warmup + args.steps
    flags = nano_flags({**shape, "dataset": "random", "gradient_accumulation_steps": 1,
                        "dropout": 0.0, "bias": False, "max_iters": steps,
                        "lr_decay_iters": steps, "warmup_iters": 0, "eval_interval": steps + 10,
                        "eval_iters": 1, "log_interval": 1, "device": args.device,
                        "dtype": args.dtype, "compile": args.compile,
                        "out_dir": str(work / "out-124m"), "always_save_checkpoint": False})
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "train.py", *flags], cwd=work, env=env(),
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"nanoGPT train.py failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
    ms = [float(m.group(2)) for m in re.finditer(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms",
                                                 out.stdout) if int(m.group(1)) >= args.warmup]
    tokens = shape["batch_size"] * shape["block_size"]
    med = statistics.median(ms)
    return {"side": "nanoGPT", "ms_per_iter": round(med, 2),
            "tokens_per_s": round(tokens / med * 1000), "steps_timed": len(ms),
            "wall_s": round(time.perf_counter() - t0, 1)}


def ours_throughput(work: Path, args, shape: dict) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(ROOT / "bench"))
    from gpu_train import steady_ms

    from chainrule.training import make_config, train

    steps = args.warmup + args.steps
    cfg = make_config("gpt", None, ours_flags({
        **shape, "gradient_accumulation_steps": 1, "dropout": 0.0, "bias": False,
        "max_iters": steps, "lr_decay_iters": steps, "warmup_iters": 0, "learning_rate": 6e-4,
        "min_lr": 6e-5, "beta2": 0.95, "weight_decay": 0.1, "grad_clip": 1.0,
        "eval_interval": steps, "eval_iters": 1, "log_interval": args.warmup,
        "device": args.device, "compile": args.compile,
        "dtype": "auto" if args.dtype == "bfloat16" else args.dtype}))
    ids = np.memmap(work / "data" / "random" / "train.bin", dtype=np.uint16, mode="r")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, ids, None, Path(tmp) / "run", vocab_size=VOCAB_124M, progress=False,
              plot=False)
        ms = steady_ms(Path(tmp) / "run" / "metrics.jsonl")
    return {"side": "chainrule", "ms_per_iter": round(ms, 2),
            "tokens_per_s": round(cfg.tokens_per_step / ms * 1000),
            "wall_s": round(time.perf_counter() - t0, 1)}


# -- part 2: shakespeare-char to a validation loss ---------------------------------------------
def race(cmd: list[str], cwd: Path, pattern: str, target: float, limit: float) -> dict:
    """Run ``cmd``; return the wall time of the first evaluation line whose validation loss is
    <= target (then stop the process), or the best loss seen when it never gets there."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    best, reached, tail = float("inf"), None, []
    try:
        for line in proc.stdout:
            tail = (tail + [line])[-20:]
            m = re.search(pattern, line)
            if m:
                step, val = int(m.group(1)), float(m.group(2))
                best = min(best, val)
                if val <= target:
                    reached = {"step": step, "val_loss": val,
                               "wall_s": round(time.perf_counter() - t0, 1)}
                    break
            if time.perf_counter() - t0 > limit:
                break
    finally:
        proc.kill()
        proc.wait()
    if reached is None and proc.returncode not in (0, -9) and best == float("inf"):
        raise SystemExit(f"{cmd[1]} failed:\n{''.join(tail)}")
    return reached or {"step": None, "val_loss": best, "wall_s": None}


def nano_shakespeare(work: Path, args, extra: dict) -> dict:
    flags = nano_flags({**extra, "device": args.device, "dtype": args.dtype,
                        "compile": args.compile, "out_dir": str(work / "out-char"),
                        "always_save_checkpoint": False})
    r = race([sys.executable, "train.py", "config/train_shakespeare_char.py", *flags], work,
             r"step (\d+): train loss [\d.]+, val loss ([\d.]+)", args.target, args.limit)
    return {"side": "nanoGPT", **r}


def ours_shakespeare(tmp: Path, args, extra: dict) -> dict:
    cmd = [sys.executable, "-m", "chainrule.cli", "train", "--family", "gpt", "--preset",
           "shakespeare-char", str(TEXT), "-o", str(tmp / "ours-char"), "--device",
           args.device, *ours_flags({**extra, **({} if args.dtype == "bfloat16" else
                                                 {"dtype": args.dtype})})]
    if args.compile:
        cmd.append("--compile")
    r = race(cmd, tmp, r"step (\d+): train [\d.]+, val ([\d.]+)", args.target, args.limit)
    return {"side": "chainrule", **r}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nanogpt", type=Path, required=True, help="a checkout of karpathy/nanoGPT")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=30, help="timed 124M steps after warm-up")
    ap.add_argument("--warmup", type=int, default=10, help="124M steps before timing")
    ap.add_argument("--target", type=float, default=None,
                    help="shakespeare-char val loss to reach (default 1.47; --smoke: 2.9)")
    ap.add_argument("--limit", type=float, default=300, help="seconds per shakespeare race")
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--skip-124m", action="store_true")
    ap.add_argument("--skip-shakespeare", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU (a check)")
    args = ap.parse_args()
    if not (args.nanogpt / "train.py").exists() or not (args.nanogpt / "model.py").exists():
        print(f"skipped: {args.nanogpt} is not a nanoGPT checkout (no train.py / model.py); "
              "pass --nanogpt PATH", file=sys.stderr)
        return 2
    if args.smoke:
        args.device, args.compile, args.steps, args.warmup = "cpu", False, 6, 3
        args.limit = 600
    if args.target is None:
        args.target = 2.9 if args.smoke else 1.47
    args.dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    import torch

    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            print("no CUDA device here; --smoke checks the script on the CPU", file=sys.stderr)
            return 2
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    else:
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # both sides, a fair share of a busy CPU
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    shape = SHAPE_SMOKE if args.smoke else SHAPE_124M
    extra = CHAR_SMOKE if args.smoke else {}
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = nano_workdir(args.nanogpt, Path(tmp))
        if not args.skip_shakespeare:  # processes first; the in-process 124M run comes last
            for fn in (nano_shakespeare, ours_shakespeare):
                rows.append({"part": "shakespeare-char", **fn(work if fn is nano_shakespeare
                                                              else Path(tmp), args, extra)})
                print(json.dumps(rows[-1]), flush=True)
        if not args.skip_124m:
            for fn in (nano_throughput, ours_throughput):
                rows.append({"part": "124M-shape" if not args.smoke else "smoke-shape",
                             **fn(work, args, shape)})
                print(json.dumps(rows[-1]), flush=True)
    print(f"\nsummary ({time.perf_counter() - t0:.0f} s in all; device {args.device}, compile "
          f"{args.compile}, {args.dtype})")
    by = {(r["part"], r["side"]): r for r in rows}
    for part in ("124M-shape", "smoke-shape"):
        a, b = by.get((part, "chainrule")), by.get((part, "nanoGPT"))
        if a and b:
            print(f"  {part}: chainrule {a['ms_per_iter']} ms/iter ({a['tokens_per_s']:,} tok/s), "
                  f"nanoGPT {b['ms_per_iter']} ms/iter ({b['tokens_per_s']:,} tok/s): "
                  f"ratio {a['tokens_per_s'] / b['tokens_per_s']:.2f}x (target >= 1.2x)")
    a, b = by.get(("shakespeare-char", "chainrule")), by.get(("shakespeare-char", "nanoGPT"))
    if a and b:
        def say(r):
            return (f"{r['wall_s']} s (step {r['step']}, val {r['val_loss']:.4f})" if r["wall_s"]
                    else f"not reached (best val {r['val_loss']:.4f})")
        ratio = (f"; nanoGPT / chainrule wall time {b['wall_s'] / a['wall_s']:.2f}x"
                 if a["wall_s"] and b["wall_s"] else "")
        print(f"  shakespeare-char to val <= {args.target}: chainrule {say(a)}, nanoGPT "
              f"{say(b)}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
