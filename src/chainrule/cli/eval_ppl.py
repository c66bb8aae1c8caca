"""CLI: ``chainrule eval ppl MODEL_DIR... --data FILE [--json]`` -- perplexity like KenLM's query."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "ppl",
        help="perplexity of one or more models on a text file (one sentence per line)",
        description="Perplexity per token (including and excluding OOVs, like KenLM's query), "
        "per word and bits per byte, so models with different tokenizers compare.",
    )
    p.add_argument("models", nargs="+", metavar="MODEL_DIR")
    p.add_argument("--data", required=True, metavar="FILE", help="text, one sentence per line")
    p.add_argument("--source", metavar="FILE",
                   help="conditional models: the source sentences, one per line of --data")
    p.add_argument("--scoring", choices=["pll", "pll-word-l2r"],
                   help="masked models (bert): pseudo-log-likelihood (pll, Salazar et al. 2020) "
                        "or its within-word left-to-right variant (pll-word-l2r, Kauf & Ivanova "
                        "2023); default: the model's own")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="cpu", help="where neural models run: cpu, cuda, cuda:N")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json, print_table
    from chainrule.evaluation.perplexity import OOV_POLICY, evaluate_perplexity

    # the device is resolved (torch imported, CUDA checked) only if a neural model is loaded
    reports = evaluate_perplexity(args.models, args.data, device=args.device,
                                  source=args.source, scoring=args.scoring)
    if args.json:
        print_json({"data": str(args.data), "oov_policy": OOV_POLICY,
                    "models": [r.to_dict() for r in reports]})
        return 0
    rows = [
        {
            "model": r.model,
            "ppl": r.perplexity,
            "ppl_excl_oov": r.perplexity_excl_oov,
            "tokens": r.tokens,
            "oov": r.oov,
            "ppl_per_word": r.perplexity_per_word,
            "bits_per_byte": r.bits_per_byte,
        }
        for r in reports
    ]
    print_table(rows)
    r0 = reports[0]
    print(f"\n{r0.sentences} sentences, {r0.words} words (with one end per sentence), "
          f"{r0.bytes} bytes (with one newline per sentence).")
    print(f"OOV policy: {OOV_POLICY}.")
    for r in reports:
        if r.pseudo:
            print(f"{r.model}: pseudo-perplexity (a masked model scored by {r.scoring} "
                  "pseudo-log-likelihoods; not comparable to a left-to-right perplexity).")
    return 0
