"""``chainrule tokenizer inspect``: the vocabulary, the merges, how a word splits, and the
lecture's BPE slides for any corpus (``--trace N --corpus FILE``)."""

from __future__ import annotations

import argparse

from chainrule.cli._output import print_json
from chainrule.errors import ConfigError

#: word types shown per step of a trace (the slide shows five)
TRACE_TYPES = 12


def register(tsub) -> None:
    i = tsub.add_parser(
        "inspect",
        help="vocabulary, merges and how a word splits; the BPE merges step by step",
        description="Show a tokenizer's vocabulary, merges and word splits. With --trace N and "
        "--corpus FILE, replay its first N merges on FILE as the lecture's slides do: the pair, "
        "its count, and the corpus (word types with their counts) after the merge.",
    )
    i.add_argument("tokenizer", metavar="TOKENIZER.json")
    i.add_argument("--merges", type=int, metavar="N",
                   help="show the first N merges (default: 20 as text, all with --json)")
    i.add_argument("--word", metavar="W", help="show the pieces W is split into")
    i.add_argument("--vocab", action="store_true", help="list the whole vocabulary (id, token)")
    i.add_argument("--trace", type=int, metavar="N",
                   help="bpe: the first N merges step by step on --corpus")
    i.add_argument("--corpus", metavar="FILE", help="with --trace: the text to show them on")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    from chainrule.tokenizers import load_tokenizer

    tok = load_tokenizer(args.tokenizer)
    merges = [list(m) for m in getattr(tok, "merges", [])]
    n = args.merges if args.merges is not None else (None if args.json else 20)
    if n is not None and n < 0:
        raise ConfigError(f"--merges must be 0 or more, not {n}.")
    info = tokenizer_summary(tok, args.tokenizer)
    info["merges"] = merges[:n] if n is not None else merges
    if args.word is not None:
        ids = tok.encode(args.word)
        info["pieces"] = [tok.id_to_token(i) for i in ids]
        info["ids"] = ids
    if args.vocab:
        info["vocab"] = [tok.id_to_token(i) for i in range(tok.vocab_size)]
    steps = _trace(tok, args) if args.trace is not None else None
    if steps is not None:
        info["trace"] = [{"merge": k, "pair": list(s.pair), "count": s.count,
                          "corpus": [[" ".join(w), c] for w, c in s.corpus.items()]}
                         for k, s in enumerate(steps, 1)]
    if args.json:
        print_json(info)
        return 0
    print(f"{tok.kind} tokenizer, {tok.vocab_size} tokens, fingerprint {info['fingerprint']}")
    print("special tokens: " + ", ".join(f"{t}={i}" for t, i in tok.special_tokens.items())
          + f" (bos {tok.bos_id}, eos {tok.eos_id})")
    if args.vocab:
        print("vocabulary (id, token):")
        for i, t in enumerate(info["vocab"]):
            print(f"  {i:>6}  {repr(t)[1:-1]}")
    elif merges:
        print(f"merges ({len(merges)} learned; first {len(info['merges'])}):")
        for k, (a, b) in enumerate(info["merges"], 1):
            print(f"  {k:>5}  ({a}, {b}) -> {a + b}")
    else:
        shown = [tok.id_to_token(i) for i in range(min(tok.vocab_size, 40))]
        print("vocabulary: " + " ".join(repr(s)[1:-1] for s in shown)
              + (" ..." if tok.vocab_size > 40 else "") + "   (all of it: --vocab)")
    if steps is not None:
        _print_trace(steps)
    if args.word is not None:
        print(f"{args.word!r} -> " + " ".join(info["pieces"]) + f"   ids {info['ids']}")
    return 0


def tokenizer_summary(tok, path) -> dict:
    """What `tokenizer train` and `inspect` report about a tokenizer (also their --json)."""
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


def _trace(tok, args: argparse.Namespace) -> list:
    from chainrule.data import read_text
    from chainrule.tokenizers.bpe_lecture import replay_merges

    if tok.kind != "bpe":
        raise ConfigError(f"--trace replays character-level BPE merges (a --kind bpe tokenizer); "
                          f"this is a {tok.kind} tokenizer.")
    if args.trace < 0:
        raise ConfigError(f"--trace must be 0 or more, not {args.trace}.")
    if args.corpus is None:
        raise ConfigError("--trace needs --corpus FILE: a tokenizer does not keep its training "
                          "text, so name the text to show the merges on.")
    merges = [tuple(m) for m in tok.merges[: args.trace]]
    return list(replay_merges(read_text(args.corpus), merges, end_of_word=tok.end_of_word))


def _print_trace(steps) -> None:
    """The slide: the corpus column after each merge, word types in order of first appearance."""
    for k, s in enumerate(steps, 1):
        a, b = s.pair
        print(f"\nmerge {k}: ({a}, {b}) -> {a + b}   count {s.count:,}")
        items = list(s.corpus.items())
        width = max(len(f"{c:,}") for _, c in items[:TRACE_TYPES])
        for word, count in items[:TRACE_TYPES]:
            print(f"  {count:>{width},}  {' '.join(word)}")
        if len(items) > TRACE_TYPES:
            print(f"  ... {len(items) - TRACE_TYPES:,} more word types")
