"""CLI: ``chainrule eval bleu MODEL_DIR --source F --reference F`` -- sacreBLEU BLEU and chrF."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    from chainrule.cli.translate import add_translation_options

    p = sub.add_parser(
        "bleu",
        help="BLEU and chrF (sacreBLEU) of a model's translations, or of a hypothesis file",
        description="Translate --source with MODEL_DIR (beam search by default) and score the "
        "translations against --reference with sacreBLEU (BLEU on detokenised, case-sensitive "
        "text with its 13a tokenisation, and chrF), printing both with their signatures. "
        "With --hypotheses FILE instead of a model, score that file.",
    )
    p.add_argument("model_dir", nargs="?", metavar="MODEL_DIR")
    p.add_argument("--source", metavar="FILE", help="source sentences, one per line")
    p.add_argument("--reference", required=True, metavar="FILE",
                   help="reference translations, one per source line")
    p.add_argument("--hypotheses", metavar="FILE",
                   help="score these translations (one per line) instead of a model's")
    p.add_argument("--output", metavar="FILE", help="also write the model's translations here")
    add_translation_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.cli.translate import read_sentences, run_translation
    from chainrule.errors import ConfigError
    from chainrule.evaluation.translation import corpus_scores, hypothesis_text
    from chainrule.fileio import atomic_write_text

    references = read_sentences(args.reference)
    if args.hypotheses:
        if args.model_dir or args.source:
            raise ConfigError("give either --hypotheses or a model with --source, not both.")
        hyps = read_sentences(args.hypotheses)
    else:
        if not args.model_dir or not args.source:
            raise ConfigError("give a MODEL_DIR and --source FILE to translate (or "
                              "--hypotheses FILE to score translations you have).")
        sources = read_sentences(args.source)
        if len(sources) != len(references):
            raise ConfigError(f"the source {args.source!r} has {len(sources)} lines but the "
                              f"reference {args.reference!r} has {len(references)}; they must "
                              "be aligned line by line.")
        _, outs = run_translation(args, sources)
        hyps = [hypothesis_text(c) for c in outs]
        if args.output:
            atomic_write_text(args.output, "".join(h + "\n" for h in hyps))
    scores = corpus_scores(hyps, references)
    if args.json:
        print_json({"model": args.model_dir, "strategy": args.strategy, "beams": args.beams,
                    **scores})
        return 0
    print(f"BLEU = {scores['bleu']:.2f}  ({scores['bleu_detail']})")
    print(f"  signature: {scores['bleu_signature']}")
    print(f"chrF = {scores['chrf']:.2f}")
    print(f"  signature: {scores['chrf_signature']}")
    print(f"{scores['sentences']} sentences")
    return 0


__all__ = ["register", "run"]
