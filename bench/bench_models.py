"""Training-step throughput of chainrule's GPT against transformers' GPT2LMHeadModel.

Both models have the same shape and the same weights (copied with ``to_hf_gpt2``) and run the
same step: forward, cross-entropy, backward, AdamW (fused where available). Tokens/s counted
as batch * context per step. Run by hand, never from tests:

    .venv/bin/python bench/bench_models.py                      # CPU: shakespeare-char-cpu shape
    .venv/bin/python bench/bench_models.py --shape gpt2 --device cuda --bf16 --compile
    .venv/bin/python bench/bench_models.py --steps 3 --warmup 1 # smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F

from chainrule.models.gpt import to_hf_gpt2
from chainrule.models.neural import build_neural_model

SHAPES = {  # name: (model config, batch size)
    "shakespeare-char-cpu": ({"vocab_size": 65, "block_size": 64, "n_layer": 4, "n_head": 4,
                              "n_embd": 128}, 12),
    "shakespeare-char": ({"vocab_size": 65, "block_size": 256, "n_layer": 6, "n_head": 6,
                          "n_embd": 384}, 64),
    "gpt2": ({"vocab_size": 50257, "block_size": 1024, "n_layer": 12, "n_head": 12,
              "n_embd": 768}, 12),
}


def time_steps(model, logits_of, x, y, steps, warmup, autocast, sync) -> float:
    """Seconds per forward+backward+AdamW step (median of ``steps`` timed steps)."""
    opt_kw = {"fused": True} if x.is_cuda else {"foreach": True}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, **opt_kw)
    model.train()
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        with autocast():
            logits = logits_of(model, x)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="shakespeare-char-cpu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast")
    ap.add_argument("--compile", action="store_true", help="torch.compile both models")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()

    cfg, batch = SHAPES[args.shape]
    device = torch.device(args.device)
    torch.manual_seed(0)
    ours = build_neural_model("gpt", **cfg).to(device)
    theirs = to_hf_gpt2(ours).to(device)  # same weights (copied, not shared)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, cfg["vocab_size"], (batch, cfg["block_size"]), generator=g).to(device)
    y = torch.randint(0, cfg["vocab_size"], (batch, cfg["block_size"]), generator=g).to(device)
    with torch.no_grad():
        diff = (ours.eval()(x)[0] - theirs.eval()(x).logits).abs().max().item()

    def autocast():
        if args.bf16:
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    run_ours, run_theirs = ours, theirs
    if args.compile:
        run_ours, run_theirs = torch.compile(ours), torch.compile(theirs)
    tokens = batch * cfg["block_size"]
    results = {}
    for name, model, logits_of in [
        ("chainrule", run_ours, lambda m, x: m(x)[0]),
        ("transformers", run_theirs, lambda m, x: m(x).logits),
    ]:
        sec = time_steps(model, logits_of, x, y, args.steps, args.warmup, autocast, sync)
        results[name] = sec
        print(f"{name:>12}: {sec * 1e3:8.2f} ms/step  {tokens / sec:12,.0f} tokens/s")
    print(f"shape {args.shape}, batch {batch}, device {device}, bf16 {args.bf16}, "
          f"compile {args.compile}, threads {torch.get_num_threads()}, "
          f"max |logit diff| at init {diff:.1e}")
    print(f"ratio (transformers time / chainrule time): "
          f"{results['transformers'] / results['chainrule']:.2f}x")


if __name__ == "__main__":
    main()
