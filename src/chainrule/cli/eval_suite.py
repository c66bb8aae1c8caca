"""CLI: ``chainrule eval suite MODEL_DIR... --suite FILE.json... [--items OUT.csv] [--plot]``."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    from chainrule.evaluation.stimuli import add_unk_arguments

    p = sub.add_parser(
        "suite",
        help="SyntaxGym test suites: prediction accuracy per suite and circuit",
        description="Read SyntaxGym JSON suites, compute region surprisals (bits; word "
        "surprisals with the boundary correction, summed or averaged per region by the "
        "suite's meta.metric) under every model, and check each prediction formula per item.",
    )
    p.add_argument("models", nargs="+", metavar="MODEL_DIR")
    p.add_argument("--suite", nargs="+", required=True, metavar="FILE.json")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="the model's name in tables, once per model (default: basename)")
    p.add_argument("--items", metavar="OUT.csv", help="write region surprisals per item")
    p.add_argument("--plot", metavar="OUT.png", help="bar charts per suite and per circuit")
    p.add_argument("--no-boundary-correction", action="store_true",
                   help="plain sums of token surprisals per word")
    add_unk_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json, print_table
    from chainrule.evaluation.stimuli import load_named_models, unk_policy, unk_sentence
    from chainrule.evaluation.syntaxgym import read_suite
    from chainrule.evaluation.syntaxgym_report import evaluate_suites, write_suite_items

    policy = unk_policy(args.unk)
    if args.plot:
        from chainrule.evaluation.plots import _pyplot

        _pyplot()
    for path in args.suite:  # malformed suites fail before the models load
        read_suite(path)
    loaded = load_named_models(args.models, args.name)
    names = [n for n, _, _ in loaded]
    report = evaluate_suites(loaded, args.suite, allow_unk=policy == "score",
                             correct_boundary=not args.no_boundary_correction)
    summary = report.summary()
    if args.items:
        write_suite_items(report, args.items)
    if args.plot:
        from chainrule.evaluation.psych_plots import plot_suite_accuracy

        plot_suite_accuracy(summary, args.plot)
    if args.json:
        print_json({"models": summary, "unk_policy": policy, "items": args.items,
                    "plot": args.plot})
        return 0
    first = summary[names[0]]
    rows = []
    for s in first["suites"]:
        row = {"suite": s, "circuit": first["suites"][s]["circuit"],
               "items": first["suites"][s]["items"]}
        row.update({n: f"{100 * summary[n]['suites'][s]['accuracy']:.1f}" for n in names})
        rows.append(row)
    for c in first["circuits"]:
        row = {"suite": f"[circuit] {c}", "circuit": "", "items": ""}
        row.update({n: f"{100 * summary[n]['circuits'][c]:.1f}" for n in names})
        rows.append(row)
    row = {"suite": "OVERALL (mean over suites)", "circuit": "", "items": ""}
    row.update({n: f"{100 * summary[n]['overall']:.1f}" for n in names})
    rows.append(row)
    print("SyntaxGym accuracy (%): a prediction holds when its formula is true")
    print_table(rows)
    print(unk_sentence(policy, {n: summary[n]["unk_words"] for n in names}))
    if args.items:
        print(f"region surprisals per item written to {args.items}")
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0
