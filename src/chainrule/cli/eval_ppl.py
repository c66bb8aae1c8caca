"""CLI: `chainrule eval ppl` (being built)."""

from __future__ import annotations


def register(sub) -> None:
    pass
