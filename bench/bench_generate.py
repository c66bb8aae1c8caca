"""CPU benchmark: greedy generation, chainrule vs transformers ``generate``, same weights.

A small GPT (chainrule.models.gpt) is built with random weights, copied into a
``transformers.GPT2LMHeadModel``, and both generate ``--new`` tokens greedily (EOS ignored)
after the same prompt, at batch 1 and batch 16. Prints tokens/s and the ratio.

    .venv/bin/python bench/bench_generate.py   # the shakespeare-char-cpu shape: 4 x 128, 65 chars
    .venv/bin/python bench/bench_generate.py --layers 6 --heads 6 --width 384 --vocab 50257
    .venv/bin/python bench/bench_generate.py --tiny        # seconds-long smoke run
    .venv/bin/python bench/bench_generate.py --family lstm --threads 1   # recurrent: fast vs step

``--family rnn|lstm`` builds that recurrent model instead (``--layers`` x ``--width``, tied
embeddings) and times its fast decoder (``fast_decoder()``: the lean ``decode_step``) against
its plain ``step`` in the same run (transformers has no recurrent LM to compare with).

The default is the project's CPU model (``shakespeare-char-cpu``: 4 layers, 4 heads, width 128,
character vocabulary) with a 512-token context so that 256 new tokens fit without sliding
(transformers' GPT-2 cannot slide). With a 50k vocabulary on CPU both sides are bound by
reading the weights (the output layer alone is 77 MB in fp32), so the ratio tends to 1.
"""

from __future__ import annotations

import argparse
import time

import torch


def build(args):
    from chainrule.models.gpt import to_hf_gpt2
    from chainrule.models.neural import build_neural_model

    torch.manual_seed(0)
    model = build_neural_model(
        "gpt", vocab_size=args.vocab, bos_id=0, eos_id=1, block_size=args.block,
        n_layer=args.layers, n_head=args.heads, n_embd=args.width, dropout=0.0,
    ).eval()
    return model, to_hf_gpt2(model)


def run_chainrule(model, prompts, new, fast=True):
    from chainrule.decoding import GenerationConfig, generate

    cfg = GenerationConfig(strategy="greedy", max_new_tokens=new, ignore_eos=True,
                           fast_path=fast)
    t = time.perf_counter()
    out = generate(model, prompts, cfg)
    dt = time.perf_counter() - t
    return dt, [o[0].token_ids for o in out]


def run_hf(hf, prompts, new, bos):
    ids = torch.tensor([[bos, *p] for p in prompts])  # prompts of equal length: no padding
    t = time.perf_counter()
    with torch.no_grad():
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                          min_new_tokens=new, do_sample=False, pad_token_id=bos)
    dt = time.perf_counter() - t
    return dt, out[:, ids.shape[1]:].tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--block", type=int, default=512)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeats", type=int, default=2, help="best of N runs")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes for a smoke test")
    ap.add_argument("--family", default="gpt", choices=["gpt", "rnn", "lstm"],
                    help="rnn/lstm: the recurrent fast path against the plain step")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.tiny:
        args.layers, args.heads, args.width, args.vocab, args.block, args.new = 2, 2, 32, 100, 64, 16
        args.repeats = 1
    if args.family != "gpt":
        return recurrent(args)
    import transformers

    model, hf = build(args)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"threads {torch.get_num_threads()}; GPT {args.layers}x{args.width}, vocab {args.vocab}, "
          f"{args.new} new tokens, greedy")
    g = torch.Generator().manual_seed(1)
    rows = []
    for B in args.batches:
        prompts = torch.randint(2, args.vocab, (B, 8), generator=g).tolist()
        run_chainrule(model, prompts, 4)  # warm-up both
        run_hf(hf, prompts, 4, model.bos_id)
        # interleave the two so a noisy machine slows both alike; keep each one's best run
        ours, theirs = float("inf"), float("inf")
        for _ in range(args.repeats):
            t, a = run_chainrule(model, prompts, args.new)
            ours = min(ours, t)
            t, b = run_hf(hf, prompts, args.new, model.bos_id)
            theirs = min(theirs, t)
        agree = sum(x == y for ra, rb in zip(a, b) for x, y in zip(ra, rb)) / (B * args.new)
        tps_ours, tps_hf = B * args.new / ours, B * args.new / theirs
        rows.append((B, tps_ours, tps_hf, tps_ours / tps_hf, agree))
    print(f"{'batch':>5} {'chainrule tok/s':>16} {'transformers tok/s':>19} {'ratio':>6} "
          f"{'same tokens':>11}")
    for B, a, b, r, agree in rows:
        print(f"{B:>5} {a:>16.1f} {b:>19.1f} {r:>6.2f} {agree:>11.1%}")


def recurrent(args) -> None:
    """A recurrent family's fast decoder against its own ``step``, interleaved, best of N."""
    from chainrule.models.neural import build_neural_model

    torch.manual_seed(0)
    model = build_neural_model(args.family, vocab_size=args.vocab, bos_id=0, eos_id=1,
                               n_layer=args.layers, n_embd=args.width, n_hidden=args.width,
                               dropout=0.0).eval()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; {args.family} "
          f"{args.layers}x{args.width}, vocab {args.vocab}, {args.new} new tokens, greedy")
    g = torch.Generator().manual_seed(1)
    print(f"{'batch':>5} {'fast tok/s':>11} {'step tok/s':>11} {'ratio':>6} {'same tokens':>11}")
    for B in args.batches:
        prompts = torch.randint(2, args.vocab, (B, 8), generator=g).tolist()
        run_chainrule(model, prompts, 4)  # warm-up both paths
        run_chainrule(model, prompts, 4, fast=False)
        fast, plain = float("inf"), float("inf")
        for _ in range(args.repeats):
            t, a = run_chainrule(model, prompts, args.new)
            fast = min(fast, t)
            t, b = run_chainrule(model, prompts, args.new, fast=False)
            plain = min(plain, t)
        agree = sum(x == y for ra, rb in zip(a, b) for x, y in zip(ra, rb)) / (B * args.new)
        n = B * args.new
        print(f"{B:>5} {n / fast:>11.1f} {n / plain:>11.1f} {plain / fast:>6.2f} {agree:>11.1%}")


if __name__ == "__main__":
    main()
