"""CLI: ``chainrule tokenizer train|encode|decode|inspect|import|export-hf``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chainrule.cli._output import print_json
from chainrule.cli.tokenizer_inspect import tokenizer_summary
from chainrule.errors import ConfigError, DataError, TokenizerError

KIND_CHOICES = ["char", "word", "bpe", "bytebpe"]


def register(sub) -> None:
    p = sub.add_parser(
        "tokenizer",
        help="train, apply, inspect, import and export tokenizers",
        description="Train, apply, inspect, import and export tokenizers.",
    )
    tsub = p.add_subparsers(dest="tokenizer_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    t = tsub.add_parser(
        "train",
        help="train a tokenizer on corpus files",
        description="Train a tokenizer on CORPUS files and save it to -o.",
    )
    t.add_argument("--kind", required=True, choices=KIND_CHOICES)
    t.add_argument(
        "--vocab-size",
        type=int,
        metavar="N",
        help="total vocabulary size, specials included (required for bpe/bytebpe)",
    )
    t.add_argument(
        "--min-count",
        type=int,
        metavar="K",
        help="char/word: drop entries seen fewer than K times; bpe/bytebpe: stop "
        "merging when the best pair is rarer than K (default 2)",
    )
    t.add_argument("corpus", nargs="+", metavar="CORPUS", help="UTF-8 text files")
    t.add_argument("-o", "--output", required=True, metavar="TOKENIZER.json")
    t.add_argument("--lowercase", action="store_true", help="word: lowercase the text first")
    t.add_argument(
        "--word-mode",
        choices=["regex", "whitespace"],
        default=None,
        help="word: split words and punctuation (regex, default) or on whitespace",
    )
    t.add_argument("--end-of-word", metavar="MARKER", help="bpe: end-of-word marker (default _)")
    t.add_argument("--json", action="store_true", help="print a JSON summary")
    t.set_defaults(func=run_train)

    e = tsub.add_parser(
        "encode",
        help="text -> ids (separated by spaces)",
        description="Encode TEXT (or the exact contents of --file) to ids.",
    )
    e.add_argument("tokenizer", metavar="TOKENIZER.json")
    e.add_argument("text", nargs="?", metavar="TEXT")
    e.add_argument("--file", metavar="F", help="encode this file's exact contents")
    e.add_argument(
        "--allow-special",
        action="store_true",
        help="read special-token spellings in the text (e.g. <s>) as those tokens",
    )
    e.add_argument("--json", action="store_true", help='print {"ids": [...]}')
    e.set_defaults(func=run_encode)

    d = tsub.add_parser(
        "decode",
        help="ids -> text",
        description="Decode IDs (or the whitespace-separated ids in --file).",
    )
    d.add_argument("tokenizer", metavar="TOKENIZER.json")
    d.add_argument("ids", nargs="*", metavar="ID")
    d.add_argument("--file", metavar="F", help="a file of whitespace-separated ids")
    d.add_argument("--skip-special", action="store_true", help="drop special tokens")
    d.add_argument("--json", action="store_true", help='print {"text": "..."}')
    d.set_defaults(func=run_decode)

    from chainrule.cli.tokenizer_inspect import register as register_inspect

    register_inspect(tsub)

    m = tsub.add_parser(
        "import",
        help="import another tool's tokenizer files",
        description="Import GPT-2's encoder.json + vocab.bpe as a bytebpe tokenizer.",
    )
    m.add_argument("--format", required=True, choices=["gpt2"])
    m.add_argument("files", nargs=2, metavar="FILE", help="ENCODER.json VOCAB.bpe")
    m.add_argument("-o", "--output", required=True, metavar="TOKENIZER.json")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=run_import)

    x = tsub.add_parser(
        "export-hf",
        help="write a Hugging Face tokenizer.json",
        description="Write a tokenizer.json the `tokenizers` library loads.",
    )
    x.add_argument("tokenizer", metavar="TOKENIZER.json")
    x.add_argument("-o", "--output", required=True, metavar="tokenizer.json")
    x.set_defaults(func=run_export)


def run_train(args: argparse.Namespace) -> int:
    from chainrule.tokenizers import train_tokenizer

    options = {}
    if args.kind == "word":
        options["lowercase"] = args.lowercase
        if args.word_mode:
            options["mode"] = args.word_mode
    elif args.lowercase or args.word_mode:
        raise ConfigError(f"--lowercase and --word-mode apply to --kind word, not {args.kind}.")
    if args.end_of_word is not None:
        if args.kind != "bpe":
            raise ConfigError(f"--end-of-word applies to --kind bpe, not {args.kind}.")
        options["end_of_word"] = args.end_of_word
    paths = [Path(c) for c in args.corpus]
    tok = train_tokenizer(args.kind, paths, args.vocab_size, args.min_count, **options)
    tok.save(args.output)
    summary = tokenizer_summary(tok, args.output)
    summary["stopped_because"] = _stop_reason(tok, args)
    if args.json:
        print_json(summary)
    else:
        print(
            f"trained a {tok.kind} tokenizer: {tok.vocab_size} tokens"
            + (f", {summary['num_merges']} merges" if summary["num_merges"] else "")
            + f" -> {args.output}"
        )
        if summary["stopped_because"]:
            print(f"stopped before --vocab-size {args.vocab_size}: {summary['stopped_because']}")
    return 0


def _stop_reason(tok, args: argparse.Namespace) -> str | None:
    """Why a merge tokenizer has fewer tokens than asked for (None when it has them all)."""
    if args.kind not in ("bpe", "bytebpe") or not args.vocab_size:
        return None
    if tok.vocab_size >= args.vocab_size:
        return None
    k = 2 if args.min_count is None else args.min_count
    n = f"after {len(tok.merges)} merges"
    if k <= 1:
        return f"every word is one token {n} (no pair is left to merge); give more text."
    return (f"no pair of symbols occurs {k} times or more (--min-count {k}), or no pair is left, "
            f"{n}; lower --min-count or give more text for more merges.")


def _load(path: str):
    from chainrule.tokenizers import load_tokenizer

    return load_tokenizer(path)


def run_encode(args: argparse.Namespace) -> int:
    from chainrule.data.readers import read_text

    if (args.text is None) == (args.file is None):
        raise ConfigError("give the text to encode either as TEXT or with --file F (one of them).")
    tok = _load(args.tokenizer)
    text = read_text(args.file) if args.file is not None else args.text
    ids = tok.encode(text, allow_special=args.allow_special)
    if args.json:
        print_json({"ids": ids})
    else:
        print(" ".join(map(str, ids)))
    return 0


def _parse_ids(words: list[str], where: str, vocab_size: int) -> list[int]:
    ids = []
    for w in words:
        try:
            i = int(w)
        except ValueError:
            raise DataError(
                f"{where} holds {w!r}, which is not a token id; pass integers."
            ) from None
        if not 0 <= i < vocab_size:
            raise TokenizerError(
                f"id {i} in {where} is outside the vocabulary (0..{vocab_size - 1}); "
                "was it made with another tokenizer?"
            )
        ids.append(i)
    return ids


def run_decode(args: argparse.Namespace) -> int:
    from chainrule.data.readers import read_text

    if args.ids and args.file is not None:
        raise ConfigError("give the ids either as arguments or with --file F, not both.")
    tok = _load(args.tokenizer)
    if args.file is not None:
        ids = _parse_ids(read_text(args.file).split(), repr(args.file), tok.vocab_size)
    else:
        ids = _parse_ids(args.ids, "the arguments", tok.vocab_size)
    text = tok.decode(ids, skip_special=args.skip_special)
    if args.json:
        print_json({"text": text})
    else:
        sys.stdout.write(text + "\n")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from chainrule.tokenizers import ByteBPETokenizer

    tok = ByteBPETokenizer.from_gpt2_files(*args.files)
    tok.save(args.output)
    if args.json:
        print_json(tokenizer_summary(tok, args.output))
    else:
        print(
            f"imported GPT-2's tokenizer: {tok.vocab_size} tokens, {len(tok.merges)} merges "
            f"-> {args.output}"
        )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from chainrule.tokenizers import export_hf

    tok = _load(args.tokenizer)
    export_hf(tok, args.output)
    print(f"wrote {args.output} (Hugging Face tokenizers format)")
    return 0
