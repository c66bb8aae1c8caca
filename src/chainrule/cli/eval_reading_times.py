"""CLI: ``chainrule eval reading-times MODEL_DIR... --data DIR|TABLE [--freq-corpus FILE]``."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    from chainrule.evaluation.stimuli import add_unk_arguments

    p = sub.add_parser(
        "reading-times",
        help="how well each model's surprisal predicts human reading times (ΔLL per word)",
        description="Score every story as one text under each model, then regress reading "
        "time on word length and log frequency (baseline, with spillover) with and without "
        "surprisal; report the cross-validated gain in log-likelihood per word (ΔLL, nats) "
        "with its standard error. --data: the Natural Stories directory, or a TSV/CSV with "
        "word, document, position and reading-time columns.",
    )
    p.add_argument("models", nargs="+", metavar="MODEL_DIR")
    p.add_argument("--data", required=True, metavar="DIR|TABLE")
    p.add_argument("--story", metavar="TABLE", help="the text (word/document/position rows), "
                   "when it is not the reading-time table itself")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="the model's name in tables, once per model (default: basename)")
    p.add_argument("--word-column", default="word")
    p.add_argument("--doc-column", default="item")
    p.add_argument("--position-column", default="zone")
    p.add_argument("--rt-column", default="meanItemRT")
    p.add_argument("--freq-corpus", metavar="FILE",
                   help="text corpus for the log unigram frequency predictor (without it, the "
                        "baseline has word length only)")
    p.add_argument("--spillover", type=int, default=1, metavar="K",
                   help="also use the predictors of the K previous words (default 1)")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--rt-min", type=float, default=100.0)
    p.add_argument("--rt-max", type=float, default=3000.0)
    p.add_argument("--split-punctuation", action="store_true",
                   help="score a word's leading/trailing punctuation as separate words (for "
                        "word-level models trained on tokenised text) and sum them")
    p.add_argument("--items", metavar="OUT.csv", help="write every word's surprisal per model")
    p.add_argument("--plot", metavar="OUT.png",
                   help="binned reading time against surprisal per model")
    add_unk_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json, print_table
    from chainrule.evaluation.reading_times import analyse, read_reading_times, unigram_log2
    from chainrule.evaluation.stimuli import load_named_models, unk_policy, unk_sentence

    policy = unk_policy(args.unk)
    if args.plot:
        from chainrule.evaluation.plots import _pyplot

        _pyplot()
    words = read_reading_times(args.data, story=args.story, word=args.word_column,
                               doc=args.doc_column, position=args.position_column,
                               rt=args.rt_column)
    freq = unigram_log2(args.freq_corpus) if args.freq_corpus else None
    loaded = load_named_models(args.models, args.name)
    res = analyse(loaded, words, freq=freq, spillover=args.spillover, folds=args.folds,
                  split_punctuation=args.split_punctuation, allow_unk=policy == "score",
                  rt_min=args.rt_min, rt_max=args.rt_max)
    if args.items:
        _write_items(res, words, args.items)
    if args.plot:
        from chainrule.evaluation.psych_plots import plot_rt_vs_surprisal

        plot_rt_vs_surprisal(res.curves, args.plot)
    if args.json:
        print_json({**res.to_json(), "unk_policy": policy, "items": args.items,
                    "plot": args.plot})
        return 0
    print(f"reading times: {res.n_words} words with a time, {res.n_used} in the regression; "
          f"baseline: {', '.join(res.predictors)}")
    rows = [{"model": m, "ΔLL/word (nats)": f"{d.delta_ll:.5f}", "SE": f"{d.se:.5f}",
             "words": d.n} for m, d in res.delta.items()]
    print_table(rows)
    print(f"ΔLL: held-out Gaussian log-likelihood gain of adding surprisal (t..t-"
          f"{args.spillover}), {args.folds}-fold cross-validation; SE over folds")
    print(unk_sentence(policy, res.unk_words))
    if args.items:
        print(f"word surprisals written to {args.items}")
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


def _write_items(res, words, path) -> None:
    from chainrule.fileio import write_delimited

    write_delimited(path, ["doc", "position", "word", "rt", "model", "surprisal_bits"],
                    ([w.doc, w.position, w.word, "" if w.rt is None else w.rt, m, f"{v:.6f}"]
                     for m, s in res.surprisal.items() for w, v in zip(words, s)))
