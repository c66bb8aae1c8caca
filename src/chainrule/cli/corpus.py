"""CLI: ``chainrule corpus stats | split | tokenize`` -- thin wrappers over ``chainrule.data``."""

from __future__ import annotations

import argparse

from chainrule.cli._output import print_json, print_table

FORMAT_HELP = "corpus format (default auto: .zip is nltk, .jsonl is jsonl, else text)"


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="auto", choices=["auto", "text", "jsonl", "nltk"],
                   help=FORMAT_HELP)
    p.add_argument("--field", default="text", help="JSONL field holding the text (default text)")


def register(sub) -> None:
    p = sub.add_parser(
        "corpus",
        help="inspect, split and tokenise corpora",
        description="Corpus tools. A corpus is files, directories (read recursively), glob "
                    "patterns or .gz files of text; JSONL with a text field; or an NLTK tagged "
                    "corpus (word/TAG) such as the Brown zip, read in place.",
    )
    csub = p.add_subparsers(dest="corpus_command", metavar="COMMAND")

    s = csub.add_parser("stats", help="count files, lines, words, characters",
                        description="Count files, documents, non-blank lines (sentences), "
                                    "words, characters, bytes and distinct characters.")
    s.add_argument("paths", nargs="+", metavar="PATH")
    _add_input_options(s)
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=run_stats)

    sp = csub.add_parser(
        "split", help="write train/valid/test splits",
        description="Split a corpus into contiguous parts written as OUTDIR/<name>.txt. "
                    "--words N... cuts whole sentences by word count (a sentence stays in a split "
                    "while the split holds fewer than N words before it; the last split takes "
                    "the rest). --fractions F... cuts by characters (nanoGPT style, the default "
                    "for text) or by whole sentences (--by lines|words, the default for nltk).")
    sp.add_argument("paths", nargs="+", metavar="INPUT")
    how = sp.add_mutually_exclusive_group(required=True)
    how.add_argument("--fractions", type=float, nargs="+", metavar="F",
                     help="fractions adding up to 1, e.g. 0.9 0.1 or 0.8 0.1 0.1")
    how.add_argument("--words", type=int, nargs="+", metavar="N",
                     help="word counts of the first splits, e.g. 800000 200000 (Bengio's Brown)")
    sp.add_argument("--by", choices=["chars", "lines", "words"],
                    help="unit of --fractions (default: words for nltk, chars otherwise)")
    sp.add_argument("--names", nargs="+", metavar="NAME",
                    help="split names (default train valid test)")
    _add_input_options(sp)
    sp.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    sp.add_argument("--json", action="store_true", help="print one JSON object")
    sp.set_defaults(func=run_split)

    t = csub.add_parser(
        "tokenize", help="tokenise a corpus into a reusable id cache",
        description="Tokenise a corpus into CACHE_DIR/tokens.bin (ids, memory-mappable) and "
                    "tokens.json (header). An existing cache is reused while the corpus and the "
                    "tokenizer are unchanged.")
    t.add_argument("paths", nargs="+", metavar="PATH")
    t.add_argument("--tokenizer", required=True, metavar="TOK.json")
    t.add_argument("-o", "--output", required=True, metavar="CACHE_DIR")
    _add_input_options(t)
    t.add_argument("--frame", default="lines", choices=["lines", "documents", "stream"],
                   help="unit framed by --bos/--eos and indexed by the document offsets "
                        "(default lines)")
    t.add_argument("--bos", action="store_true", help="put <s> before each unit")
    t.add_argument("--eos", action="store_true", help="put </s> after each unit")
    t.add_argument("--workers", type=int, default=1,
                   help="processes that encode (0: one per CPU; default 1)")
    t.add_argument("--content-hash", action="store_true",
                   help="recognise unchanged files by content, not size and modification time")
    t.add_argument("--force", action="store_true", help="rebuild even if the cache is valid")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=run_tokenize)

    p.set_defaults(func=lambda args: p.print_help() or 2)


def run_stats(args: argparse.Namespace) -> int:
    from chainrule.data import corpus_stats

    stats = corpus_stats(args.paths, args.format, args.field).as_dict()
    if args.json:
        print_json(stats)
    else:
        print_table([{"statistic": k, "value": v} for k, v in stats.items()])
    return 0


def run_split(args: argparse.Namespace) -> int:
    from chainrule.data import write_splits
    from chainrule.fileio import hold_directory

    with hold_directory(args.output):  # a second split into the same directory is refused
        out = write_splits(args.paths, args.output, fractions=args.fractions, words=args.words,
                           by=args.by, format=args.format, field=args.field, names=args.names)
    if args.json:
        print_json(out)
    else:
        print(f"split by {out['by']}:")
        print_table([{"split": k, **v} for k, v in out["splits"].items()],
                    ["split", "lines", "words", "characters", "path"])
    return 0


def run_tokenize(args: argparse.Namespace) -> int:
    from chainrule.data import tokenize_corpus
    from chainrule.tokenizers import load_tokenizer

    tok = load_tokenizer(args.tokenizer)
    corpus = tokenize_corpus(args.paths, tok, args.output, format=args.format, field=args.field,
                             frame=args.frame, bos=args.bos, eos=args.eos, workers=args.workers,
                             content_hash=args.content_hash, force=args.force)
    summary = {
        "directory": str(corpus.directory),
        "reused": corpus.reused,
        "rebuilt_because": corpus.rebuilt_because,
        "tokens": corpus.count,
        "documents": corpus.n_documents,
        "dtype": corpus.dtype.name,
        "vocab_size": corpus.header["vocab_size"],
        "tokenizer_fingerprint": corpus.header["tokenizer"]["fingerprint"],
    }
    if args.json:
        print_json(summary)
    else:
        state = "reused the cache" if corpus.reused else f"built ({corpus.rebuilt_because})"
        unit = {"lines": "line", "documents": "document", "stream": "file"}[args.frame]
        n = corpus.n_documents
        print(f"{corpus.directory}: {state}; {corpus.count:,} tokens ({corpus.dtype.name}) in "
              f"{n:,} {unit}{'' if n == 1 else 's'}")
    return 0
