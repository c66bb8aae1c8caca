"""``chainrule train --family {seq2seq,transformer-ed} --source SRC --target TGT -o DIR``.

Thin: read the parallel corpus (:mod:`chainrule.data.parallel`), build the configuration (the
preset and KEY=VALUE overrides, as for every neural family), get the tokenizers (given, resumed
or trained), and call :func:`chainrule.training.translation.train_translation`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from chainrule.errors import ConfigError


def _pairs(source, target, fields: str, what: str):
    from chainrule.data.parallel import read_parallel

    names = tuple(f.strip() for f in fields.split(","))
    if len(names) != 2 or not all(names):
        raise ConfigError(f"--fields takes two field names separated by a comma, not {fields!r}.")
    if source is None:
        raise ConfigError(f"no {what} source given; pass --source FILE (with --target FILE, or "
                          "a TSV/JSONL file of pairs).")
    return read_parallel(source, target, fields=names)


def _tokenizers(args: argparse.Namespace):
    """(source tokenizer, target tokenizer) given or resumed; (None, None) to train them."""
    from chainrule.tokenizers import load_tokenizer
    from chainrule.training.checkpoint import find_checkpoint

    if args.tokenizer:
        tok = load_tokenizer(args.tokenizer)
        return (load_tokenizer(args.source_tokenizer) if args.source_tokenizer else tok), tok
    if args.source_tokenizer:
        raise ConfigError("--source-tokenizer needs --tokenizer for the target side too.")
    found = find_checkpoint(Path(args.output)) if args.resume else None
    src_path = Path(args.output) / "source_tokenizer.json"
    if found is not None and (found / "tokenizer.json").exists() and src_path.exists():
        return load_tokenizer(src_path), load_tokenizer(found / "tokenizer.json")
    return None, None


def train(args: argparse.Namespace) -> int:
    from chainrule.cli.train_neural import build_config, split_args
    from chainrule.training.checkpoint import find_checkpoint
    from chainrule.training.loop import resolve_device
    from chainrule.training.translation import train_translation

    files, overrides = split_args(args.args)
    if files:
        raise ConfigError(f"{files[0]!r}: a {args.family} model trains on --source/--target "
                          "files, not on corpus files; pass --source SRC --target TGT.")
    if args.val_target and not args.val_source:
        raise ConfigError("--val-target needs --val-source (the sentences it translates).")
    if args.kind:
        overrides.append(f"tokenizer_kind={args.kind}")
    if args.preset is None and not any(o.startswith("tokenizer_kind=") for o in overrides):
        overrides.append("tokenizer_kind=bytebpe")
    cfg = build_config(args, overrides)
    resolve_device(cfg.device)
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run in MODEL_DIR and --overwrite starts it "
                          "over; choose one.")
    if not (args.resume or args.overwrite) and find_checkpoint(Path(args.output)) is not None:
        raise ConfigError(f"{args.output!r} already holds a training run; pass --resume "
                          "to continue it, --overwrite to start over, or choose another -o.")
    train_pairs = _pairs(args.source, args.target, args.fields, "training")
    val_pairs = (_pairs(args.val_source, args.val_target, args.fields, "validation")
                 if args.val_source else None)
    source_tok, tok = _tokenizers(args)
    quiet = args.json or int(os.environ.get("RANK", "0")) != 0
    if not quiet:
        import logging

        from chainrule.training.config import schedule_text

        logging.getLogger("chainrule").info(schedule_text(cfg))
    summary = train_translation(cfg, train_pairs, val_pairs, args.output, tokenizer=tok,
                                source_tokenizer=source_tok, resume=args.resume,
                                overwrite=args.overwrite, progress=not args.json)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if args.json:
        from chainrule.cli._output import print_json

        print_json(summary)
        return 0
    print(f"trained {cfg.family} ({summary['parameters']:,} parameters) on "
          f"{summary['train_pairs']:,} sentence pairs ({summary['filtered_pairs']:,} longer than "
          f"max_len dropped) for {summary['steps']} steps at "
          f"{summary['target_tokens_per_s']:,.0f} target tokens/s", file=sys.stdout)
    if summary["best_val_loss"] is not None:
        print(f"best validation loss {summary['best_val_loss']:.4f} nats/token at step "
              f"{summary['best_step']}")
    print(f"saved to {args.output}")
    return 0


__all__ = ["train"]
