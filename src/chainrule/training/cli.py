"""``chainrule train --family {ffnn,rnn,lstm,gpt}``: the command-line face of the engine.

Thin: turn flags, the preset and ``KEY=VALUE`` overrides into a :class:`TrainConfig`, get a
tokenizer (given, resumed, or trained), turn the corpus into ids, call :func:`train`, print.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from chainrule.errors import ConfigError, TokenizerError
from chainrule.training.checkpoint import find_checkpoint, read_train_state
from chainrule.training.config import FIELD_TYPES, TrainConfig, make_config
from chainrule.training.data import encode_text, read_corpus, split_text


def split_args(items: list[str]) -> tuple[list[str], list[str]]:
    """Separate corpus files from ``KEY=VALUE`` overrides (a file named like one still counts).

    >>> split_args(["input.txt", "max_iters=10"])
    (['input.txt'], ['max_iters=10'])
    """
    files, overrides = [], []
    for item in items:
        key = item.partition("=")[0]
        if "=" in item and not os.path.exists(item) and os.sep not in key:
            overrides.append(item)
        else:
            files.append(item)
    return files, overrides


def build_config(args: argparse.Namespace, overrides: list[str]) -> TrainConfig:
    """The run's configuration; a resumed run starts from the configuration it saved."""
    base: dict[str, Any] | None = None
    out = Path(args.output)
    if args.resume:
        found = find_checkpoint(out)
        if found is None:
            raise ConfigError(f"--resume was given but {str(out)!r} holds no training "
                              "checkpoint; drop --resume to start a new run.")
        saved = read_train_state(found, args.family).get("config", {})
        base = {k: v for k, v in saved.items() if k in FIELD_TYPES}
    extra = list(overrides)
    if args.device:
        extra.append(f"device={args.device}")
    if args.compile:
        extra.append("compile=true")
    return make_config(args.family, args.preset, extra, base=base)


def get_tokenizer(args: argparse.Namespace, cfg: TrainConfig, files: list[str]):
    """``--tokenizer``, else the resumed run's, else one trained on the corpus files."""
    from chainrule.tokenizers import load_tokenizer

    if args.tokenizer:
        return load_tokenizer(args.tokenizer)
    if args.resume:
        found = find_checkpoint(Path(args.output))
        if found is not None and (found / "tokenizer.json").exists():
            return load_tokenizer(found / "tokenizer.json")
    kind = args.kind or cfg.tokenizer_kind
    try:
        from chainrule.tokenizers import train_tokenizer
    except ImportError:
        raise TokenizerError("this chainrule cannot train tokenizers yet; pass a trained one "
                             "with --tokenizer TOK.json.") from None
    kwargs: dict[str, Any] = {}
    if cfg.vocab_size:
        kwargs["vocab_size"] = cfg.vocab_size
    if cfg.min_count and kind == "word":
        kwargs["min_count"] = cfg.min_count
    return train_tokenizer(kind, [Path(f) for f in files], **kwargs)


def corpus_ids(cfg: TrainConfig, files: list[str], tokenizer):
    """(train ids, validation ids or None): split off ``val_fraction`` unless ``val_data``."""
    text = read_corpus(files)
    if cfg.val_data:
        train_text, val_text = text, read_corpus([cfg.val_data])
    else:
        train_text, val_text = split_text(text, cfg.val_fraction, cfg.boundaries)
    train_ids = encode_text(train_text, tokenizer, cfg.boundaries)
    val_ids = encode_text(val_text, tokenizer, cfg.boundaries) if val_text else None
    return train_ids, val_ids


def train(args: argparse.Namespace) -> int:
    """Run ``chainrule train`` for a neural family; return the exit code."""
    from chainrule.training.loop import train as run_training

    files, overrides = split_args(args.args)
    if not files:
        raise ConfigError("no corpus file given; pass one or more text files to train on.")
    cfg = build_config(args, overrides)
    from chainrule.training.loop import resolve_device

    resolve_device(cfg.device)  # refuse a missing GPU before any work
    tokenizer = get_tokenizer(args, cfg, files)
    train_ids, val_ids = corpus_ids(cfg, files, tokenizer)
    summary = run_training(cfg, train_ids, val_ids, args.output, tokenizer=tokenizer,
                           resume=args.resume, progress=not args.json)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    summary["train_tokens"] = len(train_ids)
    summary["val_tokens"] = len(val_ids) if val_ids is not None else 0
    if args.json:
        from chainrule.cli._output import print_json

        print_json(summary)
    else:
        best = summary["best_val_loss"]
        print(f"trained {cfg.family} ({summary['parameters']:,} parameters) for "
              f"{summary['steps']} steps at {summary['tokens_per_s']:,.0f} tokens/s "
              f"({summary['ms_per_iter']:.1f} ms/iter)", file=sys.stdout)
        if best is not None:
            print(f"best validation loss {best:.4f} nats/token at step {summary['best_step']}")
        print(f"saved to {args.output}")
    return 0


__all__ = ["build_config", "corpus_ids", "get_tokenizer", "split_args", "train"]
