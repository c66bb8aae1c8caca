"""CPU benchmark: pseudo-log-likelihood scoring, chainrule's ``bert`` vs transformers'
``BertForMaskedLM`` with the same shape and weights (copied across; logits checked equal).

Both score the first ``--lines`` sentences of ``brown/test.txt`` (``[bos] + words + [eos]``,
a word tokenizer trained on ``brown/train.txt``) by PLL (Salazar et al. 2020). chainrule goes
through ``score_sequences`` (what ``eval ppl/pairs`` use: sentences packed into padded batches,
n masked copies per sentence, rows chunked); the peer runs the usual loop, one sentence's n
masked copies per forward pass, and gathers the masked positions' log-probabilities. Peers in
the same run, same threads, best of ``--repeats``, interleaved; the summed PLLs must agree.

    .venv/bin/python bench/bench_bert.py --threads 2
    .venv/bin/python bench/bench_bert.py --lines 200 --n-layer 4 --n-embd 256
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BROWN = ROOT.parent / "shared" / "data" / "brown"


def hf_pll(hf, seqs: list[list[int]], mask_id: int) -> float:
    """The textbook loop: each sentence as one batch of its masked copies."""
    total = 0.0
    with torch.inference_mode():
        for s in seqs:
            x = torch.tensor(s)
            n = len(s) - 1  # positions 1..n are scored
            copies = x.repeat(n, 1)
            pos = torch.arange(1, n + 1)
            copies[torch.arange(n), pos] = mask_id
            logits = hf(input_ids=copies).logits[torch.arange(n), pos]
            total += float(torch.log_softmax(logits.float(), -1)[torch.arange(n), x[1:]].sum())
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=100)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from chainrule.models.bert import BERT, BertConfig, to_hf_bert
    from chainrule.models.scoring import score_sequences
    from chainrule.tokenizers import train_tokenizer

    tok = train_tokenizer("word", [BROWN / "train.txt"], vocab_size=args.vocab)
    lines = (BROWN / "test.txt").read_text().splitlines()[: args.lines]
    seqs = [[tok.bos_id, *tok.encode(line)[:100], tok.eos_id] for line in lines]
    torch.manual_seed(0)
    model = BERT(BertConfig(vocab_size=tok.vocab_size, bos_id=tok.bos_id, eos_id=tok.eos_id,
                            mask_id=tok.pad_id, block_size=128, n_layer=args.n_layer,
                            n_head=args.n_head, n_embd=args.n_embd, dropout=0.0)).eval()
    hf = to_hf_bert(model)
    x = torch.tensor([seqs[0]])
    with torch.no_grad():
        diff = (model(x)[0] - hf(input_ids=x).logits).abs().max().item()
    tokens = sum(len(s) - 1 for s in seqs)
    print(f"BERT {args.n_layer}x{args.n_embd}, vocab {tok.vocab_size}, "
          f"{model.num_parameters():,} parameters; {len(seqs)} sentences, {tokens} scored tokens; "
          f"max |logit difference| {diff:.1e}; {args.threads} threads")
    best = {"chainrule": float("inf"), "transformers": float("inf")}
    sums = {}
    for _ in range(args.repeats):
        t = time.perf_counter()
        sums["chainrule"] = float(sum(s.sum() for s in score_sequences(model, seqs)))
        best["chainrule"] = min(best["chainrule"], time.perf_counter() - t)
        t = time.perf_counter()
        sums["transformers"] = hf_pll(hf, seqs, model.mask_id)
        best["transformers"] = min(best["transformers"], time.perf_counter() - t)
    for name, seconds in best.items():
        print(f"{name:13} {len(seqs) / seconds:8.1f} sentences/s  {tokens / seconds:9.1f} "
              f"tokens/s  ({seconds:.2f} s)  PLL sum {sums[name]:.3f}")
    print(f"ratio chainrule/transformers (sentences/s): "
          f"{best['transformers'] / best['chainrule']:.2f}x")
    assert abs(sums["chainrule"] - sums["transformers"]) < 1e-3 * abs(sums["transformers"])


if __name__ == "__main__":
    main()
