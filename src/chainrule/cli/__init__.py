"""The ``chainrule`` command. Thin: parse arguments, call the library, print.

Each subcommand group lives in its own module with a ``register(subparsers)`` function.
User errors (``ChainruleError``) print one sentence and exit 2; nothing prints a traceback
unless ``CHAINRULE_DEBUG=1`` is set.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from chainrule import __version__
from chainrule.errors import ChainruleError

# modules under chainrule.cli that each register one or more subcommands
SUBCOMMAND_MODULES = ["tokenizer", "corpus", "train", "eval", "ngram", "generate", "demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chainrule",
        description="Train, evaluate and explore language models, from n-grams to transformers.",
    )
    parser.add_argument("--version", action="version", version=f"chainrule {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"chainrule.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2 if args.command is None else 0
    try:
        return int(args.func(args) or 0)
    except ChainruleError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader (head, less) went away; silence the flush at exit too
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except MemoryError:
        print("error: out of memory; use a smaller corpus, model or batch.", file=sys.stderr)
        return 1
    except Exception as e:
        if os.environ.get("CHAINRULE_DEBUG"):
            raise
        print(
            f"error: internal error ({type(e).__name__}: {e}); this is a bug in chainrule. "
            "Rerun with CHAINRULE_DEBUG=1 for the traceback and report it.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
