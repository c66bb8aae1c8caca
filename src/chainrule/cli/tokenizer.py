"""CLI: ``chainrule tokenizer train|encode|decode|inspect|import|export-hf``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chainrule.cli._output import print_json
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

    i = tsub.add_parser(
        "inspect",
        help="vocabulary, merges and how a word splits",
        description="Show a tokenizer's vocabulary, merges and word splits.",
    )
    i.add_argument("tokenizer", metavar="TOKENIZER.json")
    i.add_argument(
        "--merges",
        type=int,
        metavar="N",
        help="show the first N merges (default: 20 as text, all with --json)",
    )
    i.add_argument("--word", metavar="W", help="show the pieces W is split into")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=run_inspect)

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


def _summary(tok, path) -> dict:
    return {
        "path": str(path),
        "kind": tok.kind,
        "vocab_size": tok.vocab_size,
        "special_tokens": tok.special_tokens,
        "bos_id": tok.bos_id,
        "eos_id": tok.eos_id,
        "num_merges": len(getattr(tok, "merges", [])),
        "fingerprint": tok.fingerprint(),
    }


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
    summary = _summary(tok, args.output)
    if args.json:
        print_json(summary)
    else:
        print(
            f"trained a {tok.kind} tokenizer: {tok.vocab_size} tokens"
            + (f", {summary['num_merges']} merges" if summary["num_merges"] else "")
            + f" -> {args.output}"
        )
    return 0


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


def run_inspect(args: argparse.Namespace) -> int:
    tok = _load(args.tokenizer)
    merges = [list(m) for m in getattr(tok, "merges", [])]
    n = args.merges if args.merges is not None else (None if args.json else 20)
    if n is not None and n < 0:
        raise ConfigError(f"--merges must be 0 or more, not {n}.")
    info = _summary(tok, args.tokenizer)
    info["merges"] = merges[:n] if n is not None else merges
    if args.word is not None:
        ids = tok.encode(args.word)
        info["pieces"] = [tok.id_to_token(i) for i in ids]
        info["ids"] = ids
    if args.json:
        print_json(info)
        return 0
    print(f"{tok.kind} tokenizer, {tok.vocab_size} tokens, fingerprint {info['fingerprint']}")
    print(
        "special tokens: "
        + ", ".join(f"{t}={i}" for t, i in tok.special_tokens.items())
        + f" (bos {tok.bos_id}, eos {tok.eos_id})"
    )
    if merges:
        print(f"merges ({len(merges)} learned; first {len(info['merges'])}):")
        for k, (a, b) in enumerate(info["merges"], 1):
            print(f"  {k:>5}  ({a}, {b}) -> {a + b}")
    else:
        shown = [tok.id_to_token(i) for i in range(min(tok.vocab_size, 40))]
        print(
            "vocabulary: "
            + " ".join(repr(s)[1:-1] for s in shown)
            + (" ..." if tok.vocab_size > 40 else "")
        )
    if args.word is not None:
        print(f"{args.word!r} -> " + " ".join(info["pieces"]) + f"   ids {info['ids']}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from chainrule.tokenizers import ByteBPETokenizer

    tok = ByteBPETokenizer.from_gpt2_files(*args.files)
    tok.save(args.output)
    if args.json:
        print_json(_summary(tok, args.output))
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
