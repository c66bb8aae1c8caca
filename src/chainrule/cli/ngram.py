"""CLI: ``chainrule ngram table | export-arpa | import-arpa | binarize``."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("ngram", help="n-gram tools: lecture tables, ARPA export and import")
    ng = p.add_subparsers(dest="ngram_command", metavar="WHAT")

    t = ng.add_parser("table", help="bigram counts (or probabilities) for a word list, "
                                     "laid out like the lecture's slide")
    t.add_argument("model", metavar="MODEL_DIR")
    t.add_argument("--words", nargs="+", required=True, metavar="W")
    t.add_argument("--probabilities", action="store_true",
                   help="P(column word | row word) instead of counts c(row word, column word)")
    t.add_argument("--json", action="store_true")
    t.add_argument("--csv", action="store_true", help="print the table as CSV (full precision)")
    t.set_defaults(func=run_table)

    e = ng.add_parser("export-arpa", help="write an n-gram model as an ARPA file")
    e.add_argument("model", metavar="MODEL_DIR")
    e.add_argument("-o", "--output", required=True, metavar="FILE.arpa",
                   help="output file (.gz compresses)")
    e.set_defaults(func=run_export)

    i = ng.add_parser("import-arpa", help="read an ARPA file (KenLM, SRILM) into a model directory")
    i.add_argument("arpa", metavar="FILE.arpa")
    i.add_argument("-o", "--output", required=True, metavar="MODEL_DIR")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=run_import)

    b = ng.add_parser("binarize", help="write an n-gram model (directory or ARPA file) as one "
                                       "binary file that loads in milliseconds")
    b.add_argument("source", metavar="MODEL_DIR|FILE.arpa")
    b.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="the binary file to write (e.g. brown5.ngram); usable wherever a model "
                        "directory is (eval ppl, generate, ngram table)")
    b.add_argument("--no-index", action="store_true",
                   help="leave out the query hash index (a smaller file; built on first use)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=run_binarize)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_table(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.models.ngram.lecture import bigram_table, format_table
    from chainrule.models.ngram.train import load_ngram

    model, tok = load_ngram(args.model)
    table = bigram_table(model, tok, args.words, probabilities=args.probabilities)
    if args.json:
        backed = None if table.backed_off is None else table.backed_off.tolist()
        print_json({"words": list(args.words), "kind": table.kind, "rows": table.values.tolist(),
                    "backed_off": backed})
    elif args.csv:
        import csv
        import sys

        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["", *table.words])
        for word, row in zip(table.words, table.values.tolist()):
            w.writerow([word, *row])
    else:
        print(format_table(table).rstrip("\n"))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from chainrule.models.ngram.train import export_arpa

    path = export_arpa(args.model, args.output)
    print(f"wrote {path}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.models.ngram.train import import_arpa

    model = import_arpa(args.arpa, args.output)
    info = {"output": str(args.output), "order": model.order, "ngrams": model.tables.counts(),
            "vocab_size": model.vocab_size}
    if args.json:
        print_json(info)
    else:
        print(f"imported an order-{model.order} model ({info['ngrams']} n-grams) to {args.output}")
    return 0


def run_binarize(args: argparse.Namespace) -> int:
    import os

    from chainrule.cli._output import print_json
    from chainrule.models.ngram.convert import binarize

    model = binarize(args.source, args.output, index=not args.no_index)
    info = {"output": str(args.output), "order": model.order, "ngrams": model.tables.counts(),
            "bytes": os.path.getsize(args.output)}
    if args.json:
        print_json(info)
    else:
        print(f"wrote an order-{model.order} model ({sum(info['ngrams']):,} n-grams, "
              f"{info['bytes'] / 2**20:.1f} MiB) to {args.output}")
    return 0
