"""Counting n-grams with numpy: sorted chunks that merge, so the corpus never has to fit in memory.

Like KenLM's ``lmplz``, chainrule counts only the highest order. Every sentence
``w1 ... wn`` is padded on the left with ``order - 1`` copies of ``<s>`` and closed with
``</s>``; one window of ``order`` ids ends at each real position::

    order 3, sentence "a b":   <s> <s> a  |  <s> a b  |  a b </s>

Windows are packed into one or two int64 keys (21 bits per id), sorted and counted chunk by
chunk, and each chunk's sorted run is merged into a running table. Memory therefore grows
with the number of *distinct* n-grams, not with the length of the corpus; every lower order is
later derived from that one table (:mod:`chainrule.models.ngram.estimate`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from chainrule.errors import ConfigError

ID_BITS = 21  # ids are packed 21 bits each: three per int64 key
MAX_VOCAB = 1 << ID_BITS
IDS_PER_KEY = 63 // ID_BITS
DEFAULT_CHUNK_TOKENS = 4_000_000


def pack(rows: np.ndarray) -> list[np.ndarray]:
    """Pack id rows (n, k) into ``ceil(k / 3)`` int64 keys, most significant first.

    Comparing the keys lexicographically compares the rows lexicographically.

    Example: ``pack(np.array([[1, 2]]))`` -> ``[array([(1 << 21) | 2])]``.
    """
    n, k = rows.shape
    keys = []
    for start in range(0, k, IDS_PER_KEY):
        key = np.zeros(n, dtype=np.int64)
        for j in range(start, min(k, start + IDS_PER_KEY)):
            key = (key << ID_BITS) | rows[:, j].astype(np.int64)
        keys.append(key)
    return keys


def unpack(keys: list[np.ndarray], k: int) -> np.ndarray:
    """Inverse of :func:`pack`: keys -> id rows (n, k) as int32."""
    n = keys[0].shape[0]
    rows = np.empty((n, k), dtype=np.int32)
    mask = np.int64(MAX_VOCAB - 1)
    for ki, start in enumerate(range(0, k, IDS_PER_KEY)):
        width = min(k, start + IDS_PER_KEY) - start
        key = keys[ki]
        for j in range(width - 1, -1, -1):
            rows[:, start + j] = key & mask
            key = key >> ID_BITS
    return rows


def _sort_order(keys: list[np.ndarray]) -> np.ndarray:
    if len(keys) == 1:
        return np.argsort(keys[0], kind="stable")
    return np.lexsort(keys[::-1])  # lexsort's last key is the primary one


def sort_unique(keys: list[np.ndarray], counts: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Sort packed keys and merge duplicates, summing their counts.

    Example: keys ``[[5, 3, 5]]`` with counts ``[1, 2, 4]`` -> keys ``[[3, 5]]``, counts ``[2, 5]``.
    """
    order = _sort_order(keys)
    keys = [k[order] for k in keys]
    counts = counts[order]
    if keys[0].size == 0:
        return keys, counts
    new = np.zeros(keys[0].size, dtype=bool)
    new[0] = True
    for k in keys:
        new[1:] |= k[1:] != k[:-1]
    starts = np.flatnonzero(new)
    return [k[starts] for k in keys], np.add.reduceat(counts, starts)


@dataclass
class NgramCounts:
    """Counts of the left-padded highest-order windows of a corpus.

    Attributes:
        order: n of the windows.
        rows: (n, order) int32 ids, sorted lexicographically, distinct.
        counts: (n,) int64 occurrence counts.
        tokens: number of ids counted (every word plus one ``</s>`` per sentence).
        sentences: number of sentences.
    """

    order: int
    rows: np.ndarray
    counts: np.ndarray
    tokens: int
    sentences: int


class ChunkedCounter:
    """Count padded n-gram windows of framed sentences in bounded-memory chunks.

    Feed sentences with :meth:`add`; every ``chunk_tokens`` ids the buffered chunk is turned
    into a sorted run and merged into the running table. :meth:`finish` returns the table.

    Args:
        order: n.
        bos_id / eos_id: ids of ``<s>`` / ``</s>``.
        vocab_limit: ids must be below this (at most 2**21).
        chunk_tokens: ids buffered before a chunk is counted.
    """

    def __init__(
        self,
        order: int,
        bos_id: int,
        eos_id: int,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    ):
        if order < 1:
            raise ConfigError(f"the n-gram order must be at least 1, got {order}.")
        self.order, self.bos_id, self.eos_id = order, bos_id, eos_id
        self.chunk_tokens = max(1, int(chunk_tokens))
        self._buf: list[np.ndarray] = []
        self._buf_tokens = 0
        self._keys: list[np.ndarray] | None = None
        self._counts = np.zeros(0, dtype=np.int64)
        self.tokens = 0
        self.sentences = 0
        self.chunks = 0

    def add(self, ids: Sequence[int] | np.ndarray) -> None:
        """Add one sentence given as its word ids, *without* ``<s>`` / ``</s>``."""
        arr = np.asarray(ids, dtype=np.int32)
        self._buf.append(arr)
        self._buf_tokens += arr.size + 1
        self.sentences += 1
        if self._buf_tokens >= self.chunk_tokens:
            self._flush()

    def add_many(self, sentences: Iterable[Sequence[int] | np.ndarray]) -> ChunkedCounter:
        for s in sentences:
            self.add(s)
        return self

    def _flush(self) -> None:
        if not self._buf:
            return
        n = self.order
        lengths = np.fromiter((a.size + 1 for a in self._buf), dtype=np.int64, count=len(self._buf))
        pad = np.full(n - 1, self.bos_id, dtype=np.int32)
        eos = np.array([self.eos_id], dtype=np.int32)
        parts = []
        for a in self._buf:
            parts += [pad, a, eos]
        stream = np.concatenate(parts)
        self._buf, self._buf_tokens = [], 0
        if stream.size and (stream.min() < 0 or stream.max() >= MAX_VOCAB):
            raise ConfigError(
                f"token ids must lie in [0, {MAX_VOCAB}); got {int(stream.min())}..{int(stream.max())}."
            )
        # real positions: skip the n-1 pads in front of each sentence
        seg = lengths + (n - 1)
        starts = np.concatenate([[0], np.cumsum(seg)[:-1]])
        real = np.ones(stream.size, dtype=bool)
        for j in range(n - 1):
            real[starts + j] = False
        ends = np.flatnonzero(real)  # window [e - n + 1, e]
        rows = np.empty((ends.size, n), dtype=np.int32)
        for j in range(n):
            rows[:, j] = stream[ends - (n - 1) + j]
        keys, counts = sort_unique(pack(rows), np.ones(ends.size, dtype=np.int64))
        self.tokens += int(ends.size)
        self.chunks += 1
        self._merge(keys, counts)

    def _merge(self, keys: list[np.ndarray], counts: np.ndarray) -> None:
        if self._keys is None:
            self._keys, self._counts = keys, counts
            return
        merged = [np.concatenate([a, b]) for a, b in zip(self._keys, keys)]
        self._keys, self._counts = sort_unique(merged, np.concatenate([self._counts, counts]))

    def finish(self) -> NgramCounts:
        self._flush()
        if self._keys is None:
            rows = np.zeros((0, self.order), dtype=np.int32)
        else:
            rows = unpack(self._keys, self.order)
        return NgramCounts(self.order, rows, self._counts, self.tokens, self.sentences)


def count_ngrams(
    sentences: Iterable[Sequence[int] | np.ndarray],
    order: int,
    bos_id: int,
    eos_id: int,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> NgramCounts:
    """Count the padded order-``order`` windows of ``sentences`` (word ids, no boundaries)."""
    return ChunkedCounter(order, bos_id, eos_id, chunk_tokens).add_many(sentences).finish()


__all__ = ["ChunkedCounter", "NgramCounts", "count_ngrams", "pack", "sort_unique", "unpack"]
