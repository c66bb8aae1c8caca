"""CLI: ``chainrule eval ppl|surprisal|pairs``; each evaluation registers from its own module."""

from __future__ import annotations

import importlib

EVAL_MODULES = ["eval_ppl", "eval_surprisal", "eval_pairs", "eval_bleu", "eval_suite",
                "eval_reading_times"]


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate models: perplexity, surprisal, minimal pairs")
    ev = p.add_subparsers(dest="eval_command", metavar="WHAT")
    for name in EVAL_MODULES:
        importlib.import_module(f"chainrule.cli.{name}").register(ev)
