"""CLI: ``chainrule probe MODEL_DIR --task tag --data CORPUS [-o layers.png] [--json]``."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "probe",
        help="linear probes on every layer of a model's hidden states (with a control task)",
        description="Train a linear classifier on the frozen hidden states of every layer to "
        "predict each word's tag (word/TAG corpus: NLTK zip, directory or files; split by file, "
        "every 10th file held out), and the control task of Hewitt & Liang (2019): random tags "
        "per word type. Prints accuracy, control accuracy and selectivity per layer.",
    )
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("--task", choices=["tag"], default="tag")
    p.add_argument("--data", required=True, metavar="CORPUS",
                   help="word/TAG sentences, e.g. ../shared/data/brown/nltk-brown.zip")
    p.add_argument("--max-sentences", type=int, default=3000,
                   help="read at most this many sentences (default 3000)")
    p.add_argument("--steps", type=int, default=200, help="probe training steps (full batch)")
    p.add_argument("-o", "--output", metavar="OUT.png", help="plot accuracy per layer")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json, print_table
    from chainrule.data.tagged import read_tagged, split_by_file
    from chainrule.errors import ConfigError
    from chainrule.evaluation.probe import check_probeable, probe_model
    from chainrule.evaluation.textscore import load_model_and_tokenizer

    if args.max_sentences < 2:
        raise ConfigError("--max-sentences must be at least 2 (a training and a test part).")
    model, tok = load_model_and_tokenizer(args.model)
    check_probeable(model)  # refuse a model without layers to probe, before reading data
    train, test = split_by_file(read_tagged(args.data, limit=args.max_sentences))
    report = probe_model(model, tok, train, test, steps=args.steps)
    if args.output:
        from chainrule.evaluation.probe import plot_probe

        plot_probe(report, args.output)
        report["plot"] = args.output
    if args.json:
        print_json(report)
        return 0
    print(f"{report['family']}: {report['train_words']} training words, {report['test_words']} "
          f"held-out words, {report['tags']} tags; most-frequent-tag baseline "
          f"{report['majority_baseline']:.3f}")
    print_table(report["layers"])
    return 0
