"""CLI: ``chainrule eval pairs MODEL_DIR... --data FILE.jsonl... [--method full|prefix]``."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "pairs",
        help="minimal-pair accuracy on BLiMP-format JSONL files",
        description="A pair is right when the good sentence gets the strictly higher "
        "log-probability (ties count wrong). --method prefix compares only the differing word "
        "after a shared prefix (BLiMP's one-prefix method; needs one_prefix_* fields).",
    )
    p.add_argument("models", nargs="+", metavar="MODEL_DIR")
    p.add_argument("--data", nargs="+", required=True, metavar="FILE.jsonl")
    p.add_argument("--method", choices=["full", "prefix"], default="full")
    p.add_argument("--no-eos", action="store_true",
                   help="(full method) leave </s> out of the sentence log-probability")
    p.add_argument("--allow-unk", action="store_true",
                   help="score text that becomes <unk> instead of refusing it")
    p.add_argument("--by", choices=["UID", "linguistics_term", "field"], default="UID",
                   help="grouping of the printed table and the plot (default: paradigm)")
    p.add_argument("--plot", metavar="OUT.png", help="write a bar chart of the accuracies")
    p.add_argument("--scoring", choices=["pll", "pll-word-l2r"],
                   help="masked models (bert): pseudo-log-likelihood (pll, Salazar et al. 2020) "
                        "or its within-word left-to-right variant (pll-word-l2r, Kauf & Ivanova "
                        "2023); default: the model's own")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json, print_table
    from chainrule.evaluation.pairs import evaluate_pairs

    if args.plot:
        from chainrule.evaluation.plots import _pyplot

        _pyplot()  # fail before the (slow) scoring if matplotlib is missing
    report = evaluate_pairs(args.models, args.data, method=args.method,
                            include_eos=not args.no_eos, allow_unk=args.allow_unk,
                            scoring=args.scoring)
    if args.plot:
        from chainrule.evaluation.plots import plot_pair_accuracy

        plot_pair_accuracy(report.models, args.plot, level=args.by)
    if args.json:
        out = report.to_json()
        if args.plot:
            out["plot"] = args.plot
        print_json(out)
        return 0
    names = list(report.models)
    groups = sorted({g for s in report.models.values() for g in s[args.by]})
    rows = []
    for g in groups:
        row = {args.by: g, "n": next(s[args.by][g]["n"] for s in report.models.values())}
        for m in names:
            row[m] = f"{100 * report.models[m][args.by][g]['accuracy']:.1f}"
        rows.append(row)
    overall = {args.by: "OVERALL", "n": report.models[names[0]]["overall"]["n"]}
    for m in names:
        overall[m] = f"{100 * report.models[m]['overall']['accuracy']:.1f}"
    rows.append(overall)
    print(f"minimal-pair accuracy (%), method {args.method}; ties count wrong")
    print_table(rows)
    masked = {m: s["scoring"] for m, s in report.models.items()
              if s.get("scoring", "left-to-right") != "left-to-right"}
    if masked:
        print("pseudo-log-likelihoods (masked models): "
              + ", ".join(f"{m} {how}" for m, how in masked.items()))
    ties = {m: report.models[m].get("ties", 0) for m in names}
    if any(ties.values()):
        print("ties (counted wrong): " + ", ".join(f"{m} {t}" for m, t in ties.items())
              + "; usually both sentences reduce to the same <unk>s")
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0
