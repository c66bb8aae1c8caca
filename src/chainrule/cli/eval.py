"""CLI: ``chainrule eval ppl|surprisal|pairs``."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate models: perplexity, surprisal, minimal pairs")
    ev = p.add_subparsers(dest="eval_command", metavar="WHAT")
    ppl = ev.add_parser("ppl", help="perplexity of one or more models on a text file")
    ppl.add_argument("models", nargs="+", metavar="MODEL_DIR")
    ppl.add_argument("--data", required=True, metavar="FILE")
    ppl.add_argument("--json", action="store_true")
    ppl.set_defaults(func=run_ppl)


def run_ppl(args) -> int:
    from chainrule.evaluation.cli import run_ppl as impl

    return impl(args)
