"""The one sliding-window rule for inputs longer than what a model (or one call) takes.

Positions 0..n-1 are covered by windows of at most ``size`` positions. The first window is
``[0, size)``; each next one begins ``keep`` positions before the previous one ended, and
contributes only the positions the previous window did not cover. So every position after the
first window sees at least ``keep`` positions of context inside its window.

GPT scores past ``block_size`` with it (``size = block_size``, ``keep = block_size - stride``),
and the batched scorer (:mod:`chainrule.models.scoring`) cuts very long sequences with it.
"""

from __future__ import annotations


def window_spans(n: int, size: int, keep: int) -> list[tuple[int, int, int]]:
    """``(begin, end, first)`` of each window: it reads ``[begin, end)`` and its outputs for
    positions ``[first, end)`` are used.

    >>> window_spans(10, 4, 2)
    [(0, 4, 0), (2, 6, 4), (4, 8, 6), (6, 10, 8)]
    >>> window_spans(3, 4, 2)
    [(0, 3, 0)]
    """
    if size < 1 or not 0 <= keep < size:
        raise ValueError(f"window_spans needs size >= 1 and 0 <= keep < size, got {size}, {keep}")
    spans = [(0, min(n, size), 0)]
    while spans[-1][1] < n:
        end = spans[-1][1]
        begin = end - keep
        spans.append((begin, min(n, begin + size), end))
    return spans


__all__ = ["window_spans"]
