"""The ``chainrule`` command. Thin: parse arguments, call the library, print.

Each subcommand group lives in its own module with a ``register(subparsers)`` function.
``--threads N`` belongs to every command (before or after the subcommand's name); it and its
default (:func:`chainrule.threads.default_threads`) are applied just before the command runs.
User errors (``ChainruleError``) print one sentence and exit 2; nothing prints a traceback
unless ``CHAINRULE_DEBUG=1`` is set.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

from chainrule import __version__
from chainrule.errors import ChainruleError

# modules under chainrule.cli that each register one or more subcommands
SUBCOMMAND_MODULES = ["tokenizer", "corpus", "train", "eval", "ngram", "generate", "chat", "importing",
                      "export", "pretrained", "demo", "fill_mask", "sft", "lora",
                      "attention", "probe", "finetune", "serve", "scale", "translate",
                      "preferences", "embed", "prompt"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chainrule",
        description="Train, evaluate and explore language models, from n-grams to transformers.",
    )
    parser.add_argument("--version", action="version", version=f"chainrule {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"chainrule.cli.{name}").register(sub)
    _add_threads_option(parser)
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print only warnings and errors (no evaluation lines)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print debugging lines")
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    """The ``chainrule`` logger writes plain lines to stderr: progress of long jobs (evaluation
    lines of a training run, ...) whether or not stderr is a terminal."""
    level = (logging.WARNING if getattr(args, "quiet", False) else
             logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    logger = logging.getLogger("chainrule")
    logger.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged (not the one at set-up)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler sets it in __init__; the property wins
        pass


THREADS_HELP = ("CPU threads for PyTorch (default: CHAINRULE_THREADS or OMP_NUM_THREADS if set, "
                "else the physical cores, at most 8, fewer when the machine is busy)")


def _add_threads_option(parser: argparse.ArgumentParser, top: bool = True) -> None:
    """``--threads N`` on ``parser`` and on every subcommand below it (checked in :func:`main`,
    so a bad value is one sentence; SUPPRESS keeps a subcommand from resetting the top one)."""
    parser.add_argument("--threads", metavar="N", help=THREADS_HELP,
                        default=None if top else argparse.SUPPRESS)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                _add_threads_option(child, top=False)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse ends a positional list at the first option: `train CORPUS -o D KEY=VALUE`
        # leaves KEY=VALUE over. Commands with a list of positionals (`args`) take them back.
        if isinstance(getattr(args, "args", None), list) and not any(
                e.startswith("-") and e != "-" for e in extra):
            args.args.extend(extra)
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2 if args.command is None else 0
    _configure_logging(args)
    try:
        _apply_threads(args.threads)
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
    except OSError as e:  # the file system said no: full, read-only, not permitted, a directory
        if os.environ.get("CHAINRULE_DEBUG"):
            raise
        print(f"error: {_os_error(e)}", file=sys.stderr)
        return 1
    except RuntimeError as e:
        if "allocat" not in str(e) or os.environ.get("CHAINRULE_DEBUG"):
            return _internal(e)
        print("error: out of memory (PyTorch could not allocate a tensor); use a smaller model, "
              "batch, beam count or number of outputs.", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001  (anything else is a bug: say so, in one line)
        return _internal(e)


def _apply_threads(value: str | None) -> None:
    """``--threads`` (or its default) for PyTorch, set when torch is imported: commands that need
    no torch (n-grams, tokenizers, corpus statistics) never import it. A bad value is refused
    now, before any work."""
    from chainrule.threads import parse_threads, prepare_openmp, set_threads

    n = None if value is None else parse_threads(value)
    prepare_openmp()  # OpenMP's idle threads sleep: read when torch loads, so before that
    if "torch" in sys.modules:
        set_threads(n)
        return
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AfterImport)]
    sys.meta_path.insert(0, _AfterImport("torch", lambda: set_threads(n)))


class _AfterImport:
    """A one-shot import hook: runs ``then()`` right after module ``name`` is first imported."""

    def __init__(self, name: str, then):
        self.name, self.then = name, then

    def find_spec(self, name, path=None, target=None):
        if name != self.name:
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then(module) -> None:
            exec_module(module)
            self.then()

        spec.loader.exec_module = exec_then
        return spec


_OS_HINTS = {
    errno.ENOSPC: "the disk is full; free space or write elsewhere",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.EACCES: "permission denied; write elsewhere or change the permissions",
    errno.EPERM: "permission denied; write elsewhere or change the permissions",
    errno.ENOTDIR: "a part of the path is a file, not a directory; choose another path",
    errno.EISDIR: "it is a directory; give a file name",
    errno.ENOENT: "it does not exist; check the path",
    errno.EEXIST: "it already exists; remove it or choose another path",
}


def _os_error(e: OSError) -> str:
    """One sentence for a file-system error: the path, what happened, what to do."""
    where = f"{e.filename!r}: " if e.filename else ""
    hint = _OS_HINTS.get(e.errno or -1, "check the path and the disk")
    if e.errno == errno.EEXIST and e.filename and os.path.isfile(e.filename):
        # mkdir(parents=True) met a file where a directory of the output path should be
        hint = "it is a file, not a directory, so nothing can be written under it; choose another path"
    return f"{where}{e.strerror or e} ({hint})."


def _internal(e: Exception) -> int:
    if os.environ.get("CHAINRULE_DEBUG"):
        raise e
    print(
        f"error: internal error ({type(e).__name__}: {e}); this is a bug in chainrule. "
        "Rerun with CHAINRULE_DEBUG=1 for the traceback and report it.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
