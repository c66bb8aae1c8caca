"""Printing helpers shared by the subcommands."""

from __future__ import annotations

import functools
import json
import math
import sys
from typing import Any


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout (the ``--json`` contract). Strict JSON: a NaN or an
    infinity (an undefined figure, such as the perplexity of nothing) is written as null."""
    sys.stdout.write(json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False) + "\n")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def print_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    """A plain aligned text table."""
    if not rows:
        return
    columns = columns or list(rows[0])
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.0f}"
    return str(v)


def one_writer(attr: str):
    """Run a subcommand while it is the only chainrule process writing into the directory
    ``args.<attr>`` (an advisory lock, :func:`chainrule.fileio.hold_directory`): a second run
    into the same directory is refused at once with a sentence naming the first."""
    def wrap(run):
        @functools.wraps(run)
        def locked(args):
            from chainrule.fileio import hold_directory

            with hold_directory(getattr(args, attr)):
                return run(args)
        return locked
    return wrap

