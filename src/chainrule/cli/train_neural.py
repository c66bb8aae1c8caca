"""``chainrule train --family {ffnn,rnn,lstm,gpt}``: the command-line face of the engine.

Thin: turn flags, the preset and ``KEY=VALUE`` overrides into a :class:`TrainConfig`, get a
tokenizer (given, resumed, or trained), tokenise the corpus into the token cache
(``MODEL_DIR/data`` or ``--cache DIR``; :func:`chainrule.training.data.corpus_ids`), call
:func:`train` on the memory-mapped ids, print.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from chainrule.data import resolve_paths
from chainrule.errors import ConfigError
from chainrule.training.checkpoint import find_checkpoint, read_train_state
from chainrule.training.config import TrainConfig, make_config
from chainrule.training.data import CorpusIds, corpus_ids

log = logging.getLogger(__name__)


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
        base = saved  # training keys and the saved model settings ("model")
    extra = list(overrides)
    if args.device:
        extra.append(f"device={args.device}")
    if args.compile:
        extra.append("compile=true")
    if getattr(args, "strategy", None):
        extra.append(f"strategy={args.strategy}")
    return make_config(args.family, args.preset, extra, base=base)


def get_tokenizer(args: argparse.Namespace, cfg: TrainConfig, files: list[Path]):
    """``--tokenizer``, else the resumed run's, else one trained on the corpus files."""
    from chainrule.tokenizers import load_tokenizer

    if args.tokenizer:
        return load_tokenizer(args.tokenizer)
    if args.resume:
        found = find_checkpoint(Path(args.output))
        if found is not None and (found / "tokenizer.json").exists():
            return load_tokenizer(found / "tokenizer.json")
    from chainrule.tokenizers import train_tokenizer

    kind = args.kind or cfg.tokenizer_kind
    kwargs: dict[str, Any] = {}
    if cfg.vocab_size:
        kwargs["vocab_size"] = cfg.vocab_size
    if cfg.min_count and kind == "word":
        kwargs["min_count"] = cfg.min_count
    return train_tokenizer(kind, [Path(f) for f in files], **kwargs)


def load_corpus(args: argparse.Namespace, cfg: TrainConfig, files: list[Path],
                tokenizer) -> CorpusIds:
    """The run's ids from the token cache (``--cache DIR``, default ``MODEL_DIR/data``)."""
    cache = Path(args.cache) if args.cache else Path(args.output) / "data"
    if args.resume:
        _same_corpus(cache / "train" / "tokens.json", files)
    data = corpus_ids(files, tokenizer, cache, boundaries=cfg.boundaries,
                      val_fraction=cfg.val_fraction, val_data=cfg.val_data)
    if not args.json and int(os.environ.get("RANK", "0")) == 0:
        for c in data.caches:
            how = "reused" if c.reused else "tokenised into"
            log.info(f"corpus: {c.count:,} tokens, {how} {c.directory}")
    return data


def _same_corpus(header_path: Path, files: list[Path]) -> None:
    """A resumed run must train on the corpus it started on (the files' paths and sizes)."""
    import json

    try:
        old = json.loads(header_path.read_text("utf-8"))["corpus"]["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no cache to compare with: it is rebuilt from the files given
    from chainrule.data import corpus_fingerprint

    was = sorted((e["path"], e["size"]) for e in old)
    now = sorted((e["path"], e["size"]) for e in corpus_fingerprint(files)["files"])
    if was != now:
        raise ConfigError(f"--resume was given a different corpus than the run started on "
                          f"({len(now)} file(s) now, {len(was)} then, or changed sizes); resume "
                          "with the same files, or start a new run with another -o.")


def train(args: argparse.Namespace) -> int:
    """Run ``chainrule train`` for a neural family; return the exit code."""
    from chainrule.training.loop import train as run_training

    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run in MODEL_DIR and --overwrite starts it "
                          "over; choose one.")
    names, overrides = split_args(args.args)
    if not names:
        raise ConfigError("no corpus file given; pass one or more text files to train on.")
    cfg = build_config(args, overrides)
    from chainrule.training.loop import resolve_device

    resolve_device(cfg.device)  # refuse a missing GPU before any work
    if not args.json and int(os.environ.get("RANK", "0")) == 0:
        from chainrule.training.config import schedule_text

        log.info(schedule_text(cfg))
    if not (args.resume or args.overwrite) and find_checkpoint(Path(args.output)) is not None:
        raise ConfigError(f"{args.output!r} already holds a training run; pass --resume "
                          "to continue it, --overwrite to start over, or choose another -o.")
    files = resolve_paths(names)  # directories and patterns -> files; a missing one is named
    tokenizer = get_tokenizer(args, cfg, files)
    data = load_corpus(args, cfg, files, tokenizer)
    summary = run_training(cfg, data.train, data.val, args.output, tokenizer=tokenizer,
                           resume=args.resume, progress=not args.json,
                           overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    summary["train_tokens"] = len(data.train)
    summary["val_tokens"] = len(data.val) if data.val is not None else 0
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


__all__ = ["build_config", "get_tokenizer", "load_corpus", "split_args", "train"]
