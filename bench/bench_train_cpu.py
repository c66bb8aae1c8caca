"""CPU training benchmark: chainrule's GPT vs a transformers GPT-2 of the same shape, same loop.

Both models are trained by chainrule's one training engine with the ``shakespeare-char-cpu``
preset (nanoGPT's CPU configuration: 4 layers, 4 heads, width 128, context 64, batch 12) on Tiny
Shakespeare at character level, split 90/10 as nanoGPT does. Reported: ms per iteration and
tokens/s (evaluation excluded), and the validation loss at the last step.

    .venv/bin/python bench/bench_train_cpu.py                  # 200 iterations each (timing)
    .venv/bin/python bench/bench_train_cpu.py --iters 2000     # the full run (loss target <= 1.89)
    .venv/bin/python bench/bench_train_cpu.py --skip-peer      # chainrule only

The peer here is the ``transformers`` model, run in the same process; the comparison with
nanoGPT itself (its own ``train.py``, run side by side) is ``bench/bench_train_nanogpt.py``. The
machine is shared, so the load average before and after is printed with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


class HFGPT2Peer(nn.Module):
    """A ``transformers`` GPT2LMHeadModel behind chainrule's training contract (the peer)."""

    family = "gpt"

    def __init__(self, vocab_size: int, n_layer: int, n_head: int, n_embd: int,
                 block_size: int, dropout: float):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(vocab_size=vocab_size, n_positions=block_size, n_embd=n_embd,
                         n_layer=n_layer, n_head=n_head, resid_pdrop=dropout,
                         embd_pdrop=dropout, attn_pdrop=dropout, use_cache=False,
                         bos_token_id=None, eos_token_id=None)
        self.hf = GPT2LMHeadModel(cfg)

    def forward(self, idx: torch.Tensor, state=None):
        return self.hf(input_ids=idx).logits, None

    def optim_groups(self, weight_decay: float):
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]

    def save(self, directory) -> None:
        from chainrule.fileio import write_json, write_safetensors

        state = {k: v for k, v in self.state_dict().items() if k != "hf.lm_head.weight"}
        write_safetensors(Path(directory) / "model.safetensors", state)
        write_json(Path(directory) / "config.json", {"peer": "transformers GPT2LMHeadModel"})


def hf_factory(cfg, vocab_size, bos, eos):
    return HFGPT2Peer(vocab_size, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size,
                      cfg.dropout)


def char_ids(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """nanoGPT's shakespeare_char data: sorted characters, first 90% train, last 10% val."""
    text = path.read_text(encoding="utf-8")
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.fromiter((stoi[c] for c in text), dtype=np.int32, count=len(text))
    n = int(0.9 * len(ids))
    return ids[:n], ids[n:], len(chars)


def run_one(name: str, factory, overrides: list[str], train_ids, val_ids, vocab: int) -> dict:
    from chainrule.training import make_config, train

    cfg = make_config("gpt", "shakespeare-char-cpu", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = train(cfg, train_ids, val_ids, Path(tmp) / name, vocab_size=vocab,
                  model_factory=factory, progress=False, plot=False)
        wall = time.perf_counter() - t0
    return {"name": name, "ms_per_iter": s["ms_per_iter"], "tokens_per_s": s["tokens_per_s"],
            "val_loss": s["final_val_loss"], "best_val_loss": s["best_val_loss"],
            "steps": s["steps"], "parameters": s["parameters"], "wall_s": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=200, help="iterations per model (2000: full)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.data.exists():
        print(f"Tiny Shakespeare not found at {args.data}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    train_ids, val_ids, vocab = char_ids(args.data)
    # evaluation (20 batches per split, every 250 steps) is excluded from the timings
    overrides = [f"max_iters={args.iters}", f"lr_decay_iters={max(args.iters, 2000)}",
                 "device=cpu"]
    load_before = os.getloadavg()
    rows = [run_one("chainrule", None, overrides, train_ids, val_ids, vocab)]
    if not args.skip_peer:
        rows.append(run_one("hf-gpt2", hf_factory, overrides, train_ids, val_ids, vocab))
    load_after = os.getloadavg()
    result = {"iters": args.iters, "threads": torch.get_num_threads(), "rows": rows,
              "load_before": load_before, "load_after": load_after}
    if len(rows) == 2:
        result["speedup_vs_hf"] = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.iters} iterations, {result['threads']} threads, load average "
          f"{load_before[0]:.1f} before / {load_after[0]:.1f} after")
    print(f"{'model':<10} {'params':>9} {'ms/iter':>8} {'tokens/s':>9} {'val loss':>9}")
    for r in rows:
        print(f"{r['name']:<10} {r['parameters']:>9,} {r['ms_per_iter']:>8.1f} "
              f"{r['tokens_per_s']:>9,.0f} {r['val_loss']:>9.4f}")
    if "speedup_vs_hf" in result:
        print(f"chainrule / transformers tokens/s: {result['speedup_vs_hf']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
