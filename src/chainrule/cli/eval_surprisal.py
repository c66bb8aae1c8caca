"""CLI: ``chainrule eval surprisal MODEL_DIR --data FILE [--words] -o OUT.csv|OUT.jsonl``."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "surprisal",
        help="per-token or per-word surprisal (bits) of each sentence, as CSV or JSONL",
        description="Score each non-empty line of --data as one sentence (<s> ... </s>) and "
        "write its surprisals in bits. With --words, subword surprisals are summed into "
        "whitespace-separated words (see docs/evaluation.md for the rule); </s> is a separate "
        "row with is_eos=1.",
    )
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("--data", required=True, metavar="FILE", help="one sentence per line")
    p.add_argument("--words", action="store_true", help="one row per word instead of per token")
    p.add_argument("-o", "--output", required=True, metavar="OUT.csv|OUT.jsonl")
    p.add_argument("--no-eos", action="store_true", help="do not score </s>")
    p.add_argument("--refuse-unk", action="store_true",
                   help="stop at text that becomes <unk> instead of scoring <unk> (flagged)")
    p.add_argument("--scoring", choices=["pll", "pll-word-l2r"],
                   help="masked models (bert): pseudo-log-likelihood (pll, Salazar et al. 2020) "
                        "or its within-word left-to-right variant (pll-word-l2r, Kauf & Ivanova "
                        "2023); default: the model's own")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.evaluation.surprisal import (
        read_sentences,
        sentence_surprisals,
        write_surprisal,
    )
    from chainrule.evaluation.textscore import load_model_and_tokenizer, scoring_name

    model, tok = load_model_and_tokenizer(args.model, args.scoring)
    sentences = read_sentences(args.data)
    results = sentence_surprisals(model, tok, sentences, eos=not args.no_eos,
                                  allow_unk=not args.refuse_unk)
    write_surprisal(results, args.output, words=args.words)
    n_rows = sum(len(r.words if args.words else r.tokens) for r in results)
    total = sum(r.total_bits for r in results)
    n_words = sum(1 for r in results for w in r.words if not w.is_eos)
    summary = {
        "output": str(args.output), "sentences": len(results), "rows": n_rows,
        "words": n_words, "total_bits": total,
        "bits_per_word": total / n_words if n_words else None, "scoring": scoring_name(model),
    }
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {n_rows} {'word' if args.words else 'token'} rows for {len(results)} "
              f"sentences to {args.output} (mean {summary['bits_per_word'] or 0:.3f} bits per "
              "word, </s> included in the total)")
        if model.masked:
            print(f"a masked model: pseudo-surprisals from {summary['scoring']} "
                  "pseudo-log-likelihoods (each token given every other token)")
    return 0
