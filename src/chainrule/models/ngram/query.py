"""Scoring token ids with an n-gram backoff model: the numpy reference and the compiled query.

Both compute, for every position t >= 1 of every row of a (B, T) id array,
``log10 P(x[t] | x[:t]) = prob(longest stored x[t-m+1 .. t]) + sum of backoff(x[t-j .. t-1])``
over the stored contexts of length ``j >= m`` (``j < n``), the rule of KenLM's ``query``.

* :func:`reference_log10probs` is the readable version: one vectorised ``searchsorted`` per order
  over the whole batch (the suffix chain of :mod:`.tables`).
* The compiled kernel ``chainrule._ngram_query_core`` (``src/chainrule/_ngram_query/core.cpp``)
  walks each row once, looking every order up in an open-addressing hash table and carrying the
  backoffs of the previous position's contexts, the way KenLM's query carries its state. Its
  index is built on first use (about 0.1-0.3 s for a 2.4M-entry order-5 model) and cached on the
  tables, or read ready-made from a binary model file (:mod:`.binary`).

The two give bit-identical float64 results (tested), so which one runs never changes a score.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from chainrule.models.ngram.tables import NgramTables, lookup

_INDEX = "query_index"  # the key of the cached compiled index in NgramTables._derived


def compiled_core() -> ModuleType | None:
    """The compiled query module, or None when it was not built (numpy is used instead)."""
    try:
        from chainrule import _ngram_query_core
    except ImportError:
        return None
    return _ngram_query_core


def suffix_chain(tables: NgramTables, x: np.ndarray) -> list[np.ndarray]:
    """``out[k-1][b, t]``: table-k row of ``x[b, t-k+1 .. t]`` or -1. x: (B, T)."""
    V = tables.vocab_size
    chain = [x]
    for k in range(2, tables.order + 1):
        prev = chain[-1][:, k - 1 :]
        res = np.full(x.shape, -1, dtype=np.int64)
        ok = prev >= 0
        q = prev[ok] * V + x[:, : x.shape[1] - k + 1][ok]
        sub = res[:, k - 1 :]
        sub[ok] = lookup(tables.keys[k - 1], q)
        chain.append(res)
    return chain


def reference_log10probs(tables: NgramTables, x: np.ndarray, bos_id: int) -> np.ndarray:
    """log10 P(x[b, t+1] | x[b, :t+1]) as float64 (B, T - 1), with numpy; ``<s>`` gets -inf."""
    t = tables
    chain = suffix_chain(t, x)
    target = x[:, 1:]
    out = t.prob[0].astype(np.float64)[target]
    matched = np.ones(target.shape, dtype=np.int64)
    for k in range(2, t.order + 1):
        if t.keys[k - 1].size == 0:  # no n-gram of this order (or higher) was seen
            break
        idx = chain[k - 1][:, 1:]
        hit = idx >= 0
        out = np.where(hit, t.prob[k - 1][np.maximum(idx, 0)], out)
        matched = np.where(hit, k, matched)
    for j in range(1, t.order):
        ctx = chain[j - 1][:, :-1]
        use = (ctx >= 0) & (matched <= j)
        out = out + np.where(use, t.backoff[j - 1][np.maximum(ctx, 0)], 0.0)
    out[target == bos_id] = -np.inf
    return out


def query_index(tables: NgramTables, bos_id: int) -> Any | None:
    """The compiled index of ``tables`` (built once and cached), or None without the kernel."""
    core = compiled_core()
    if core is None or tables.order > core.MAX_ORDER:
        return None
    cached = tables._derived.get(_INDEX)
    if cached is None or cached[0] != bos_id:
        index = core.Index.build(tables.vocab_size, bos_id, tables.keys, tables.prob,
                                 tables.backoff)
        cached = tables._derived[_INDEX] = (bos_id, index)
    return cached[1]


def attach_index(tables: NgramTables, bos_id: int, index: Any) -> None:
    """Cache a ready-made compiled index (read from a binary model file) on ``tables``."""
    tables._derived[_INDEX] = (bos_id, index)


def token_log10probs(tables: NgramTables, x: np.ndarray, bos_id: int,
                     lengths: np.ndarray | None = None, *, compiled: bool = True) -> np.ndarray:
    """log10 P(x[b, t+1] | x[b, :t+1]) as float64 (B, T - 1): the compiled query when it is
    built (``compiled=False`` forces the numpy reference), identical results either way.
    With ``lengths`` (B,), the compiled query skips the padding (its entries are then 0.0).

    Example: for a bigram model, row ``[<s>, a]`` gives ``[[prob(<s> a)]]`` if that bigram is
    stored, else ``[[backoff(<s>) + prob(a)]]``.
    """
    x = np.ascontiguousarray(x, dtype=np.int64)
    index = query_index(tables, bos_id) if compiled else None
    if index is None:
        return reference_log10probs(tables, x, bos_id)
    if lengths is not None:
        lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    return index.score(x, lengths)


__all__ = [
    "attach_index",
    "compiled_core",
    "query_index",
    "reference_log10probs",
    "suffix_chain",
    "token_log10probs",
]
