"""CLI: ``chainrule eval surprisal MODEL_DIR... --data FILE [--words] [--wide] -o OUT``."""

from __future__ import annotations

import argparse

PROGRESS_FROM = 2_000  # sentences to score (over all models) before a progress bar shows


def register(sub) -> None:
    from chainrule.evaluation.stimuli import add_unk_arguments

    p = sub.add_parser(
        "surprisal",
        help="per-token or per-word surprisal (bits) of stimuli under one or more models",
        description="Score each stimulus (a line of a text file, or a row of a CSV/TSV/JSONL "
        "file) as one sentence (<s> [context] text </s>) under every model, and write one "
        "long table (a row per word and model; --wide: a column per model). With --words, a "
        "word's surprisal is the sum over its tokens with the word-boundary correction for "
        "leading-space tokenizers (docs/psycholinguistics.md); </s> is a separate row with "
        "is_eos=1.",
    )
    p.add_argument("models", nargs="+", metavar="MODEL_DIR")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="the model's name in the table, once per model (default: the "
                        "directory's basename)")
    p.add_argument("--data", required=True, metavar="FILE",
                   help="stimuli: .txt (one a line), .csv/.tsv (header row) or .jsonl")
    p.add_argument("--column", "--field", dest="column", metavar="NAME",
                   help="CSV/TSV column or JSONL field with the text (default: 'sentence')")
    p.add_argument("--context-column", metavar="NAME",
                   help="column with a preceding context: conditioned on, not scored")
    p.add_argument("--words", action="store_true", help="one row per word instead of per token")
    p.add_argument("--wide", action="store_true", help="a surprisal column per model (--words)")
    p.add_argument("--no-boundary-correction", action="store_true",
                   help="plain sum of token surprisals per word (no leading-space correction)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.csv|OUT.tsv|OUT.jsonl")
    p.add_argument("--no-eos", action="store_true", help="do not score </s>")
    add_unk_arguments(p)
    p.add_argument("--scoring", choices=["pll", "pll-word-l2r"],
                   help="masked models (bert): pseudo-log-likelihood (pll, Salazar et al. 2020) "
                        "or its within-word left-to-right variant (pll-word-l2r, Kauf & Ivanova "
                        "2023); default: the model's own")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.cli._progress import counter
    from chainrule.evaluation.stimuli import (
        load_named_models,
        model_names,
        read_stimuli,
        unk_policy,
        unk_sentence,
    )
    from chainrule.evaluation.surprisal_table import surprisal_table, write_table
    from chainrule.evaluation.textscore import scoring_name

    policy = unk_policy(args.unk)
    names = model_names(args.models, args.name)
    if args.wide and not args.words:
        from chainrule.errors import ConfigError

        raise ConfigError("--wide needs --words (token segmentations differ between models).")
    stimuli = read_stimuli(args.data, column=args.column, context_column=args.context_column)
    loaded = load_named_models(args.models, names, args.scoring)
    with counter(len(stimuli) * len(loaded), "scoring", unit="sentences",
                 min_total=PROGRESS_FROM) as tick:
        table = surprisal_table(loaded, stimuli, words=args.words, eos=not args.no_eos,
                                allow_unk=policy == "score",
                                correct=not args.no_boundary_correction, on_scored=tick)
    write_table(table, args.output, words=args.words, wide=args.wide)
    per_model = {}
    for n, model, _ in loaded:
        rows = [r for r in table.rows if r["model"] == n]
        words = [r for r in rows if not r["is_eos"]] if args.words else []
        total = sum(r["surprisal_bits"] for r in rows)
        per_model[n] = {"rows": len(rows), "total_bits": total,
                        "bits_per_word": total / len(words) if words else None,
                        "unk_words": table.unk_words[n],
                        "boundary_correction": table.corrected[n],
                        "scoring": scoring_name(model)}
    summary = {"output": str(args.output), "stimuli": len(stimuli), "rows": len(table.rows),
               "unk_policy": policy, "models": per_model}
    if args.json:
        print_json(summary)
        return 0
    what = "word" if args.words else "token"
    print(f"wrote {len(table.rows)} {what} rows ({len(stimuli)} stimuli x {len(names)} "
          f"models) to {args.output}")
    for n, s in per_model.items():
        bpw = f"mean {s['bits_per_word']:.3f} bits per word, " if s["bits_per_word"] else ""
        fix = ("boundary correction applied" if s["boundary_correction"]
               else "plain token sums" if args.words else "token rows")
        print(f"  {n}: {bpw}{fix}, scoring {s['scoring']}")
    print(unk_sentence(policy, table.unk_words))
    return 0
