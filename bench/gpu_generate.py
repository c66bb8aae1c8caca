"""GPU benchmark: greedy generation of the GPT-2 124M shape in bf16, chainrule vs transformers.

Both models hold the same random weights (chainrule's GPT copied into a
``transformers.GPT2LMHeadModel``); each generates ``--new`` tokens greedily after an 8-token
prompt, EOS ignored, at batch 1 and 16, after one warm-up call each (chainrule's warm-up
captures its CUDA graph for that batch size). Targets from issue 5: >= 5x transformers at
batch 1 and >= 1.5x at batch 16. Runs in well under a minute on an H100/H200.

    python bench/gpu_generate.py                      # on a CUDA machine
    python bench/gpu_generate.py --tiny --device cpu  # smoke test anywhere
    python bench/gpu_generate.py --family lstm        # issue 21: the recurrent fast path

``--family rnn|lstm`` times a recurrent model instead (default: the ``brown-lstm`` shape, 2 x 256,
word vocabulary 13,977, float32): its fast decoder (``decode_step`` replayed as a CUDA graph)
against its plain ``model.step``, greedy, at batch 1 and 16. Target (issue 21): >= 10x the 19
tok/s that plain stepping reached at batch 1, i.e. >= 190 tok/s.
"""

from __future__ import annotations

import argparse
import time

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device):
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


def check_fast_path(model, g: torch.Generator, device: torch.device, steps: int = 24) -> None:
    """The fast decoder (CUDA graph on GPU) must give the model's own step's log-probabilities."""
    fast = model.fast_decoder()
    if fast is None:
        print("no fast decoder on this device (the model's own step is the only path)")
        return
    x = torch.randint(2, model.vocab_size, (4, steps + 4), generator=g).to(device)
    lengths = torch.tensor([4, 2, 3, 4], device=device)
    worst = 0.0
    with torch.no_grad():
        lp_a, st_a = model.start(x[:, :4], lengths)
        lp_b, st_b = fast.start(x[:, :4], lengths)
        for t in range(4, steps + 4):
            worst = max(worst, (lp_a - lp_b).abs().max().item())
            lp_a, st_a = model.step(st_a, x[:, t])
            lp_b, st_b = fast.step(st_b, x[:, t])
    kind = "CUDA graph" if getattr(fast, "graphs", False) else "eager"
    verdict = "ok" if worst < 0.1 else "MISMATCH: do not trust the timings"
    print(f"fast path ({kind}) vs model.step: max |delta log-prob| = {worst:.2e} ({verdict})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, choices=["bfloat16", "float16", "float32"],
                    help="default: bfloat16 (gpt), float32 (rnn, lstm)")
    ap.add_argument("--family", default="gpt", choices=["gpt", "rnn", "lstm"])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeats", type=int, default=3, help="best of N timed runs")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (smoke test)")
    args = ap.parse_args()
    if args.family != "gpt":
        return recurrent(args)
    args.dtype = args.dtype or "bfloat16"
    if args.tiny:
        args.layers, args.heads, args.width, args.vocab, args.block, args.new = 2, 2, 64, 300, 128, 24
        args.repeats = 1
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)

    import transformers

    from chainrule.decoding import GenerationConfig, generate
    from chainrule.models.gpt import to_hf_gpt2
    from chainrule.models.neural import build_neural_model

    torch.manual_seed(0)
    model = build_neural_model(
        "gpt", vocab_size=args.vocab, bos_id=0, eos_id=1, block_size=args.block,
        n_layer=args.layers, n_head=args.heads, n_embd=args.width, dropout=0.0,
    ).eval()
    hf = to_hf_gpt2(model).to(device, dtype).eval()
    model = model.to(device, dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}; torch {torch.__version__}, transformers {transformers.__version__}; GPT "
          f"{args.layers}x{args.width} vocab {args.vocab} {args.dtype}; {args.new} new tokens")

    def ours(prompts, new, fast=True):
        cfg = GenerationConfig(strategy="greedy", max_new_tokens=new, ignore_eos=True,
                               fast_path=fast)
        return [o[0].token_ids for o in generate(model, prompts, cfg)]

    def theirs(prompts, new):
        ids = torch.tensor([[0, *p] for p in prompts], device=device)
        with torch.no_grad():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                              min_new_tokens=new, do_sample=False, pad_token_id=0)
        return out[:, ids.shape[1]:].tolist()

    g = torch.Generator().manual_seed(1)
    check_fast_path(model, g, device)
    rows = []
    for B in args.batches:
        prompts = torch.randint(2, args.vocab, (B, 8), generator=g).tolist()
        ours(prompts, args.new)  # warm-up (captures the CUDA graph for batch B)
        theirs(prompts, 8)
        t_ours, a = min((timed(lambda p=prompts: ours(p, args.new), device)
                         for _ in range(args.repeats)), key=lambda r: r[0])
        t_hf, b = min((timed(lambda p=prompts: theirs(p, args.new), device)
                       for _ in range(args.repeats)), key=lambda r: r[0])
        t_eager, c = timed(lambda p=prompts: ours(p, args.new, fast=False), device)
        n = B * args.new
        same_hf = sum(x == y for ra, rb in zip(a, b) for x, y in zip(ra, rb)) / n
        same_eager = sum(x == y for ra, rc in zip(a, c) for x, y in zip(ra, rc)) / n
        rows.append((B, n / t_ours, n / t_eager, n / t_hf, same_hf, same_eager))

    print(f"{'batch':>5} {'chainrule':>10} {'(no fast)':>10} {'transformers':>13} {'ratio':>6} "
          f"{'target':>6} {'same as hf':>10} {'fast=slow':>9}   (tokens/s)")
    for B, a, e, h, s_hf, s_e in rows:
        target = 5.0 if B == 1 else 1.5
        print(f"{B:>5} {a:>10.0f} {e:>10.0f} {h:>13.0f} {a / h:>6.2f} {target:>5.1f}x "
              f"{s_hf:>10.1%} {s_e:>9.1%}")


def recurrent(args) -> None:
    """An rnn/lstm's fast decoder against its own ``step`` (no transformers peer exists)."""
    from chainrule.decoding import GenerationConfig, generate
    from chainrule.models.neural import build_neural_model

    if args.layers == 12 and args.width == 768:  # the GPT defaults: use brown-lstm's shape
        args.layers, args.width, args.vocab = 2, 256, 13977
    if args.tiny:
        args.layers, args.width, args.vocab, args.new, args.repeats = 2, 32, 300, 24, 1
    device, dtype = torch.device(args.device), getattr(torch, args.dtype or "float32")
    torch.manual_seed(0)
    model = build_neural_model(args.family, vocab_size=args.vocab, bos_id=0, eos_id=1,
                               n_layer=args.layers, n_embd=args.width, n_hidden=args.width,
                               dropout=0.0).eval().to(device, dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}; torch {torch.__version__}; {args.family} {args.layers}x{args.width} vocab "
          f"{args.vocab} {dtype}; {args.new} new tokens, greedy")
    g = torch.Generator().manual_seed(1)
    check_fast_path(model, g, device)

    def ours(prompts, new, fast):
        cfg = GenerationConfig(strategy="greedy", max_new_tokens=new, ignore_eos=True,
                               fast_path=fast)
        return [o[0].token_ids for o in generate(model, prompts, cfg)]

    print(f"{'batch':>5} {'fast':>9} {'plain step':>11} {'fast/plain':>10} {'vs 19 tok/s':>11} "
          f"{'same':>6}   (tokens/s; target >= 190 at batch 1)")
    for B in args.batches:
        prompts = torch.randint(2, args.vocab, (B, 8), generator=g).tolist()
        ours(prompts, 8, True)  # warm-up: captures the graph for batch B
        ours(prompts, 8, False)
        t_fast, a = min((timed(lambda p=prompts: ours(p, args.new, True), device)
                         for _ in range(args.repeats)), key=lambda r: r[0])
        t_plain, b = min((timed(lambda p=prompts: ours(p, args.new, False), device)
                          for _ in range(args.repeats)), key=lambda r: r[0])
        n = B * args.new
        same = sum(x == y for ra, rb in zip(a, b) for x, y in zip(ra, rb)) / n
        print(f"{B:>5} {n / t_fast:>9.0f} {n / t_plain:>11.0f} {t_plain / t_fast:>10.2f} "
              f"{n / t_fast / 19:>10.1f}x {same:>6.1%}")


if __name__ == "__main__":
    main()
