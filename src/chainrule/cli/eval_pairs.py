"""CLI: ``chainrule eval pairs MODEL_DIR... --data FILE.jsonl... [--method full|prefix]``."""

from __future__ import annotations

import argparse
import contextlib

PROGRESS_FROM = 2_000  # sentences to score (over all models) before a progress bar shows


def register(sub) -> None:
    from chainrule.evaluation.stimuli import add_unk_arguments

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
    add_unk_arguments(p)
    p.add_argument("--name", action="append", metavar="NAME",
                   help="the model's name in tables, once per model (default: the "
                        "directory's basename)")
    p.add_argument("--items", metavar="OUT.csv",
                   help="write every pair's log-probabilities (bits) per model")
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
    from chainrule.cli._progress import counter
    from chainrule.evaluation.pairs import evaluate_pairs, write_pair_items
    from chainrule.evaluation.stimuli import model_names, unk_policy, unk_sentence

    if args.plot:
        from chainrule.evaluation.plots import _pyplot

        _pyplot()  # fail before the (slow) scoring if matplotlib is missing
    policy = unk_policy(args.unk)
    with contextlib.ExitStack() as stack:
        bar: list = []  # opened once the pairs are read and counted

        def on_read(n_pairs: int) -> None:
            bar.append(stack.enter_context(counter(
                2 * n_pairs * len(args.models), "scoring pairs", unit="sentences",
                min_total=PROGRESS_FROM)))

        def on_scored(n: int) -> None:
            if bar and bar[0] is not None:
                bar[0](n)

        report = evaluate_pairs(args.models, args.data, method=args.method,
                                include_eos=not args.no_eos, allow_unk=policy == "score",
                                scoring=args.scoring, names=model_names(args.models, args.name),
                                on_read=on_read, on_scored=on_scored)
    if args.items:
        write_pair_items(report, args.items)
    if args.plot:
        from chainrule.evaluation.plots import plot_pair_accuracy

        plot_pair_accuracy(report.models, args.plot, level=args.by)
    if args.json:
        out = report.to_json()
        if args.plot:
            out["plot"] = args.plot
        out["unk_policy"] = policy
        if args.items:
            out["items"] = args.items
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
    ties_row = {args.by: "ties (counted wrong)", "n": ""}
    for m in names:
        overall[m] = f"{100 * report.models[m]['overall']['accuracy']:.1f}"
        ties_row[m] = str(report.models[m].get("ties", 0))
    rows += [overall, ties_row]
    print(f"minimal-pair accuracy (%), method {args.method}; ties count wrong")
    print_table(rows)
    print(unk_sentence(policy, {m: report.models[m]["unk_tokens"] for m in names},
                       unit="<unk> tokens"))
    masked = {m: s["scoring"] for m, s in report.models.items()
              if s.get("scoring", "left-to-right") != "left-to-right"}
    if masked:
        print("pseudo-log-likelihoods (masked models): "
              + ", ".join(f"{m} {how}" for m, how in masked.items()))
    if args.items:
        print(f"per-pair log-probabilities (bits) written to {args.items}")
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0
