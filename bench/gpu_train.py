"""GPU training benchmark (an H100 or H200), one short script, well under 8 minutes.

1. ``shakespeare-char`` (nanoGPT's 10.7M character GPT) for 5,000 iterations, compiled, bf16:
   wall time including compilation and evaluations, ms/iter, tokens/s, best validation loss
   (target <= 1.47; nanoGPT on an H200: 14.0 ms/iter, 1.17 M tokens/s, 1.464, 161 s).
2. The GPT-2 124M shape (12 layers, 12 heads, width 768, context 1,024, batch 12, bf16, compiled):
   step time of forward + backward + AdamW over ``--steps`` steps after warm-up, chainrule's GPT
   vs a ``transformers`` GPT2LMHeadModel trained by the same engine (nanoGPT on an H200:
   26.9 ms/step, about 456 k tokens/s).

    python bench/gpu_train.py                       # both parts, on cuda
    python bench/gpu_train.py --skip-shakespeare    # only the 124M timing
    python bench/gpu_train.py --device cpu --tiny   # a seconds-long CPU check of the script

Every number comes from chainrule's own training loop (``chainrule.training.train``): the ms/iter
of each interval of ``log_interval`` steps is read back from ``metrics.jsonl``; the first
interval (compilation) is dropped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_cpu import DATA, char_ids, hf_factory

from chainrule.training import make_config, train
from chainrule.training.metrics import read_metrics


def steady_ms(metrics_path: Path) -> float:
    """Median ms/iter over the logged intervals, without the first (it holds compilation)."""
    rows = [r["ms_per_iter"] for r in read_metrics(metrics_path) if "ms_per_iter" in r]
    rows = rows[1:] if len(rows) > 1 else rows
    return statistics.median(rows)


def shakespeare(args) -> dict:
    train_ids, val_ids, vocab = char_ids(args.data)
    over = [f"device={args.device}", f"compile={str(args.compile).lower()}"]
    if args.tiny:
        over += ["max_iters=30", "lr_decay_iters=30", "eval_interval=15", "eval_iters=2",
                 "n_layer=1", "n_embd=48", "n_head=2", "block_size=32", "batch_size=4"]
    cfg = make_config("gpt", "shakespeare-char", over)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = train(cfg, train_ids, val_ids, Path(tmp) / "sc", vocab_size=vocab, progress=False,
                  plot=False)
        wall = time.perf_counter() - t0
        ms = steady_ms(Path(tmp) / "sc" / "metrics.jsonl")
    return {"part": "shakespeare-char", "iters": s["steps"], "wall_s": round(wall, 1),
            "ms_per_iter": round(ms, 2), "tokens_per_s": round(cfg.tokens_per_step / ms * 1000),
            "best_val_loss": s["best_val_loss"], "best_step": s["best_step"]}


def gpt2_shape(args, name: str, factory) -> dict:
    vocab = 50304  # GPT-2's 50,257 padded to a multiple of 64, as nanoGPT does
    shape = ["n_layer=12", "n_head=12", "n_embd=768", "block_size=1024", "batch_size=12"]
    if args.tiny:
        shape = ["n_layer=1", "n_head=2", "n_embd=32", "block_size=64", "batch_size=2"]
        vocab = 512
    steps = args.steps + args.warmup
    cfg = make_config("gpt", None, [
        *shape, "dropout=0", "bias=true", f"max_iters={steps}", f"lr_decay_iters={steps}",
        f"log_interval={args.warmup}", f"eval_interval={steps}", "eval_iters=1",
        "learning_rate=6e-4", "beta2=0.95", f"device={args.device}",
        f"compile={str(args.compile).lower()}"])
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab, size=2_000_000 if not args.tiny else 20_000, dtype=np.int32)
    with tempfile.TemporaryDirectory() as tmp:
        s = train(cfg, ids, None, Path(tmp) / name, vocab_size=vocab, model_factory=factory,
                  progress=False, plot=False)
        ms = steady_ms(Path(tmp) / name / "metrics.jsonl")
    return {"part": "gpt2-124M-shape", "model": name, "parameters": s["parameters"],
            "ms_per_step": round(ms, 2), "tokens_per_s": round(cfg.tokens_per_step / ms * 1000)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--steps", type=int, default=30, help="timed 124M steps after warm-up")
    ap.add_argument("--warmup", type=int, default=10, help="124M steps before timing")
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes: check the script on CPU")
    ap.add_argument("--skip-shakespeare", action="store_true")
    ap.add_argument("--skip-peer", action="store_true")
    args = ap.parse_args()
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            print("no CUDA device; use --device cpu --tiny to check the script", file=sys.stderr)
            return 2
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    t0 = time.perf_counter()
    results = []
    if not args.skip_shakespeare:
        results.append(shakespeare(args))
        print(json.dumps(results[-1]), flush=True)
    results.append(gpt2_shape(args, "chainrule", None))
    print(json.dumps(results[-1]), flush=True)
    if not args.skip_peer:
        results.append(gpt2_shape(args, "hf-gpt2", hf_factory))
        print(json.dumps(results[-1]), flush=True)
    print(f"\nsummary ({time.perf_counter() - t0:.0f} s in all)")
    for r in results:
        if r["part"] == "shakespeare-char":
            print(f"  shakespeare-char: {r['iters']} iters in {r['wall_s']} s, "
                  f"{r['ms_per_iter']} ms/iter, {r['tokens_per_s']:,} tok/s "
                  f"({r['tokens_per_s'] / 1.17e6:.2f}x nanoGPT H200), best val "
                  f"{r['best_val_loss']:.4f} at step {r['best_step']} (target <= 1.47)")
        else:
            print(f"  124M shape, {r['model']}: {r['ms_per_step']} ms/step, "
                  f"{r['tokens_per_s']:,} tok/s ({r['tokens_per_s'] / 456e3:.2f}x nanoGPT H200)")
    gpt2 = {r["model"]: r for r in results if r["part"] == "gpt2-124M-shape"}
    if len(gpt2) == 2:
        ratio = gpt2["chainrule"]["tokens_per_s"] / gpt2["hf-gpt2"]["tokens_per_s"]
        print(f"  chainrule / transformers at the 124M shape: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
