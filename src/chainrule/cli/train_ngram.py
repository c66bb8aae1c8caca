"""``chainrule train --family ngram``: parse the n-gram flags, train, save, print a summary."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from chainrule.errors import ConfigError


def parse_prune(text: str | None) -> list[int] | None:
    """``"0,1,1"`` -> ``[0, 1, 1]`` (spaces also separate)."""
    if not text:
        return None
    try:
        return [int(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(
            f"--prune takes whole-number counts per order separated by commas (e.g. 0,1,1); "
            f"got {text!r}."
        ) from None


def train(args: argparse.Namespace) -> int:
    """Run ``chainrule train --family ngram`` from parsed arguments; returns the exit code."""
    from chainrule.cli._output import print_json
    from chainrule.models.ngram.train import save_ngram, train_ngram

    corpus = list(args.args or [])
    overrides = [a for a in corpus if "=" in a and not os.path.exists(a)]
    if overrides:
        raise ConfigError(
            f"{overrides[0]!r} looks like a KEY=VALUE override, which only neural families take; "
            "n-gram options are flags (--order, --smoothing, --k, --prune, --vocab)."
        )
    if not corpus:
        raise ConfigError("no corpus given; pass one or more text files, one sentence per line.")
    from chainrule.data import resolve_paths

    resolve_paths(corpus)  # a missing file, a pipe (read more than once) is named before any work
    smoothing = args.smoothing or "mkn"
    if args.k is not None and smoothing != "addk":
        raise ConfigError(f"--k applies to --smoothing addk, not to {smoothing}.")
    order = 3 if args.order is None else args.order
    result = train_ngram(
        corpus,
        order=order,
        smoothing=smoothing,
        k=1.0 if args.k is None else args.k,
        prune=parse_prune(args.prune),
        vocab=args.vocab,
        tokenizer=args.tokenizer,
        memory=getattr(args, "memory", None),
        temp_dir=getattr(args, "temp_dir", None),
    )
    for message in result.warnings:
        print(f"warning: {message}", file=sys.stderr)
    notes = save_ngram(result.model, result.tokenizer, Path(args.output))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    model = result.model
    summary = {
        "family": "ngram",
        "output": str(args.output),
        "order": model.order,
        "smoothing": model.smoothing,
        "vocab_size": model.vocab_size,
        "ngrams": model.tables.counts(),
        "discounts": model.discounts_,
        "tokens": result.tokens,
        "sentences": result.sentences,
        "seconds": round(result.seconds, 3),
        "warnings": result.warnings,
    }
    if args.json:
        print_json(summary)
    else:
        counts = " ".join(f"{k}:{n}" for k, n in enumerate(summary["ngrams"], start=1))
        print(f"trained an order-{model.order} {smoothing} n-gram model on {result.tokens} tokens "
              f"({result.sentences} sentences) in {result.seconds:.2f} s")
        print(f"n-grams  {counts}")
        for k, d in enumerate(model.discounts_, start=1):
            print(f"discounts order {k}: " + " ".join(f"{x:.6g}" for x in d))
        print(f"saved to {args.output}")
    return 0


__all__ = ["parse_prune", "train"]
