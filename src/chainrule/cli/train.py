"""CLI: ``chainrule train`` -- one command for every family.

The n-gram family and the neural families share the command; flags that a family does not
use are rejected with a message rather than silently ignored.
"""

from __future__ import annotations

import argparse

from chainrule.errors import ConfigError


def _trainable() -> dict[str, str]:
    """family -> trainer, from the one registry (``chainrule.models.base``)."""
    from chainrule.models.base import families

    return {f.name: f.trainer for f in families() if f.trainer is not None}


class _TrainableFamilies:
    """``--family``'s choices, looked up only when asked: checking ``ngram`` imports the n-gram
    family alone, and building the parser imports none (``chainrule --help`` stays fast)."""

    def __contains__(self, name: object) -> bool:
        from chainrule.models.base import get_family, known_families

        return (isinstance(name, str) and name in known_families()
                and get_family(name).trainer is not None)

    def __iter__(self):
        return iter(sorted(_trainable()))


def _lazy_epilog(parser: argparse.ArgumentParser, make) -> None:
    """Compute ``parser``'s epilog when its help is printed, not when the parser is built."""
    format_help = parser.format_help

    def with_epilog() -> str:
        if parser.epilog is None:
            parser.epilog = make()
        return format_help()

    parser.format_help = with_epilog


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a language model on a corpus",
        description="Train a language model of any family on CORPUS files and save it to -o.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _lazy_epilog(p, _neural_keys_help)
    p.add_argument("--family", required=True, choices=_TrainableFamilies(), metavar="FAMILY",
                   help="the model family: ngram, or one of the neural families listed below")
    p.add_argument("args", nargs="*", metavar="CORPUS|KEY=VALUE",
                   help="corpus files (text; one sentence per line for n-grams) and, for neural "
                        "families, KEY=VALUE overrides of the preset")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR")
    p.add_argument("--tokenizer", metavar="TOK.json",
                   help="a trained chainrule tokenizer (default: whitespace words for n-grams)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--overwrite", action="store_true",
                   help="replace what MODEL_DIR holds: a model of another kind, or (neural) "
                        "a run to start over instead of --resume")
    g = p.add_argument_group("n-gram options")
    g.add_argument("--order", type=int)
    g.add_argument("--smoothing", choices=["mle", "addk", "kn", "mkn"])
    g.add_argument("--k", type=float, help="add-k constant (default 1: Laplace)")
    g.add_argument("--prune", type=str, metavar="C1,C2,...",
                   help="per-order count thresholds: drop n-grams of order i seen <= Ci times")
    g.add_argument("--vocab", metavar="FILE", help="closed vocabulary: one word per line")
    g.add_argument("--memory", metavar="SIZE",
                   help="memory for the whole n-gram training, like lmplz -S (e.g. 500M, 2G): "
                        "sorted runs and every order's table go to --temp-dir and Kneser-Ney "
                        "is estimated from there (default: everything in memory)")
    g.add_argument("--temp-dir", metavar="DIR",
                   help="where spilled runs and the tables go with --memory (default: the "
                        "system's temporary directory)")
    g = p.add_argument_group("neural options")
    g.add_argument("--preset")
    g.add_argument("--kind", choices=["char", "word", "bpe", "bytebpe"],
                   help="train a tokenizer of this kind first (when --tokenizer is not given)")
    g.add_argument("--resume", action="store_true")
    g.add_argument("--cache", metavar="DIR",
                   help="where the tokenised corpus (token ids, memory-mapped) is kept and "
                        "reused (default: MODEL_DIR/data)")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if present)")
    g.add_argument("--compile", action="store_true", help="use torch.compile")
    g.add_argument("--strategy", choices=["ddp", "fsdp"],
                   help="under torchrun: ddp copies the whole model to every process (default), "
                        "fsdp shards weights, gradients and optimizer state across them "
                        "(docs/distributed.md)")
    g = p.add_argument_group("translation options (conditional families: seq2seq, "
                             "transformer-ed)")
    g.add_argument("--source", metavar="SRC",
                   help="source sentences, one per line (aligned with --target), or a TSV/JSONL "
                        "file of pairs")
    g.add_argument("--target", metavar="TGT", help="target sentences, one per line")
    g.add_argument("--val-source", metavar="F", help="validation source sentences")
    g.add_argument("--val-target", metavar="F", help="validation target sentences")
    g.add_argument("--fields", metavar="SRC,TGT", default="source,target",
                   help="the two fields of a JSONL file of pairs (default: source,target)")
    g.add_argument("--source-tokenizer", metavar="TOK.json",
                   help="a trained tokenizer for the source side (with --tokenizer)")
    p.set_defaults(func=run)


def _neural_keys_help() -> str:
    from chainrule.training.config import describe_keys, preset_names

    return ("neural families take KEY=VALUE overrides of these keys (nanoGPT's names):\n"
            + describe_keys() + "\n\npresets (--preset): " + ", ".join(preset_names()))


def run(args: argparse.Namespace) -> int:
    import contextlib
    import os

    from chainrule.fileio import hold_directory

    # one writer per output directory; under torchrun the ranks of one run share it (rank 0
    # writes, the others wait for it at barriers)
    first_rank = os.environ.get("RANK", "0") == "0"
    with hold_directory(args.output) if first_rank else contextlib.nullcontext():
        if first_rank:
            _refuse_other_kind(args)
        return _run(args)


def _refuse_other_kind(args: argparse.Namespace) -> None:
    """A directory holding another family's model (or a neural run, for n-grams) is not
    overwritten without --overwrite."""
    import json
    from pathlib import Path

    out = Path(args.output)
    try:
        held = json.loads((out / "config.json").read_text("utf-8")).get("family")
    except (OSError, ValueError, AttributeError):
        held = None
    run_dir = (out / "train_state.json").exists() or (out / "last").exists()
    other = held is not None and held != args.family
    if args.family == "ngram" and run_dir:
        other, held = True, held or "neural training run"
    if other and not args.overwrite:
        raise ConfigError(f"{str(out)!r} holds a {held} model; pass --overwrite to replace it "
                          f"with a {args.family} model, or choose another -o.")


def _run(args: argparse.Namespace) -> int:
    from chainrule.models.base import get_family

    if get_family(args.family).trainer == "ngram":
        neural_only = [f for f in ("preset", "kind", "device", "cache", "strategy")
                       if getattr(args, f)]
        neural_only += [f for f in ("resume", "compile") if getattr(args, f)]
        if neural_only:
            raise ConfigError(
                f"--{neural_only[0]} applies to neural families, not to --family {args.family}."
            )
        from chainrule.cli.train_ngram import train as train_ngram

        return train_ngram(args)
    ngram_only = [f for f in ("order", "smoothing", "k", "prune", "vocab", "memory", "temp_dir")
                  if getattr(args, f)]
    if ngram_only:
        raise ConfigError(f"--{ngram_only[0].replace('_', '-')} applies to --family ngram, not "
                          f"to {args.family}.")

    if get_family(args.family).conditional:
        from chainrule.cli.train_translate import train as train_translate

        return train_translate(args)
    mt_only = [f for f in ("source", "target", "val_source", "val_target", "source_tokenizer")
               if getattr(args, f, None)]
    if mt_only:
        raise ConfigError(f"--{mt_only[0].replace('_', '-')} applies to conditional families "
                          f"(seq2seq, transformer-ed), not to {args.family}.")
    from chainrule.cli.train_neural import train as train_neural

    return train_neural(args)
