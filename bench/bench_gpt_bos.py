"""What a char GPT learns about sentence starts, and what the per-sentence scorer asks of it.

Trains three tiny char GPTs on Tiny Shakespeare at the same steps and seed (one thread):
``boundaries=none`` (one stream, nanoGPT's), ``boundaries=lines`` (``<s> line </s>`` per line,
random windows), and ``lines`` with ``mask_at_bos`` (every sentence of a window read from its
own ``<s>``, training/data.py ``bos_segments``). Each is scored as every evaluator scores:
test line by line, ``<s> chars </s>``. Printed per model: the mean log-prob (nats) of the first
character (after ``<s>``), of the others, of ``</s>``, the per-token perplexity, what the
training windows contain (the share that start at ``<s>``), and training CPU-seconds. For the
stream model also the same lines framed by its own newline (``\\n chars \\n``).

    .venv/bin/python bench/bench_gpt_bos.py --iters 800 --seed 1     # ~1.5 CPU-minutes
    .venv/bin/python bench/bench_gpt_bos.py --json

The first 90% of the lines train; the non-blank lines after them are cut in half: validation,
then the test lines (1,580).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare" / "input.txt"


def run(iters: int, seed: int, data: Path, work: Path) -> dict:
    import numpy as np
    import torch

    from chainrule.models.scoring import score_sequences
    from chainrule.tokenizers import train_tokenizer
    from chainrule.training.config import make_config
    from chainrule.training.data import WindowSampler, encode_text
    from chainrule.training.loop import train

    torch.set_num_threads(1)
    lines = data.read_text().splitlines()
    cut = int(0.9 * len(lines))
    held = [ln for ln in lines[cut:] if ln.strip()]
    train_text = "\n".join(lines[:cut]) + "\n"
    val_text, test = "\n".join(held[: len(held) // 2]) + "\n", held[len(held) // 2:]
    tok = train_tokenizer("char", [train_text])
    seqs = [[tok.bos_id, *tok.encode(ln), tok.eos_id] for ln in test]
    out = {}
    for name, bnd, mask in [("none", "none", False), ("lines", "lines", False),
                            ("lines+mask_at_bos", "lines", True)]:
        ids, vids = encode_text(train_text, tok, bnd), encode_text(val_text, tok, bnd)
        cfg = make_config("gpt", overrides={
            "n_layer": 2, "n_head": 4, "n_embd": 64, "dropout": 0.0, "block_size": 64,
            "batch_size": 16, "max_iters": iters, "lr_decay_iters": iters,
            "warmup_iters": min(50, iters // 4), "learning_rate": 3e-3, "eval_interval": iters,
            "eval_iters": 20, "log_interval": iters, "boundaries": bnd, "mask_at_bos": mask,
            "device": "cpu", "seed": seed})
        sampler = WindowSampler(ids, cfg.batch_size, cfg.block_size, seed, torch.device("cpu"))
        at_bos = np.mean([float((sampler.batch(s, 0).x[:, 0] == tok.bos_id).float().mean())
                          for s in range(100)])
        t0 = time.process_time()
        summary = train(cfg, ids, vids, work / name, tokenizer=tok, progress=False, plot=False,
                        overwrite=True)
        cpu = time.process_time() - t0
        model = summary.model.eval()
        lp = score_sequences(model, seqs)
        row = {"lp_first": float(np.mean([a[0] for a in lp])),
               "lp_rest": float(np.concatenate([a[1:-1] for a in lp]).mean()),
               "lp_eos": float(np.mean([a[-1] for a in lp])),
               "ppl": float(np.exp(-np.concatenate(lp).mean())),
               "windows_at_bos": float(at_bos), "train_cpu_s": round(cpu, 1),
               "val_loss": summary["final_val_loss"]}
        if bnd == "none":
            nl = tok.encode("\n")[0]
            lp2 = score_sequences(model, [[nl, *s[1:-1], nl] for s in seqs])
            row["newline_framed"] = {"lp_first": float(np.mean([a[0] for a in lp2])),
                                     "lp_end": float(np.mean([a[-1] for a in lp2])),
                                     "ppl": float(np.exp(-np.concatenate(lp2).mean()))}
        out[name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=800)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"skipped: {args.data} is absent (Tiny Shakespeare, /work/shared/data).")
    with tempfile.TemporaryDirectory() as tmp:
        res = run(args.iters, args.seed, args.data, Path(tmp))
    if args.json:
        print(json.dumps(res, indent=1))
        return
    print(f"{'model':20} {'first':>7} {'rest':>7} {'</s>':>7} {'ppl':>7} {'@<s>':>6} {'cpu s':>6}")
    for name, r in res.items():
        print(f"{name:20} {r['lp_first']:7.3f} {r['lp_rest']:7.3f} {r['lp_eos']:7.3f} "
              f"{r['ppl']:7.3f} {r['windows_at_bos']:6.3f} {r['train_cpu_s']:6.1f}")
        if "newline_framed" in r:
            n, label = r["newline_framed"], "  framed by newline"
            print(f"{label:20} {n['lp_first']:7.3f} {'':>7} {n['lp_end']:7.3f} {n['ppl']:7.3f}")


if __name__ == "__main__":
    main()
