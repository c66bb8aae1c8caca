"""CLI: `chainrule eval pairs` (being built)."""

from __future__ import annotations


def register(sub) -> None:
    pass
