"""The n-gram tables every estimator produces and the model, ARPA reader and writer share.

An n-gram of order k is stored in table k under one int64 key in *suffix encoding*::

    key(w1 .. wk) = index_in_table_{k-1}(w2 .. wk) * V + w1        (table 1 is just the ids)

so the key of every n-gram points at its suffix, sorting the keys groups n-grams by suffix,
and scoring a stream looks each order up with one vectorised ``searchsorted``. Each entry
holds a log10 probability and a log10 backoff weight, exactly the two numbers of an ARPA line.
A backoff model scores ``log10 P(w | h) = prob(h w)`` if the n-gram ``h w`` is stored, and
``backoff(h) + log10 P(w | h[1:])`` otherwise (``backoff`` is 0 for an absent context).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chainrule.errors import ModelFormatError


def lookup(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index of each ``query`` in the sorted ``keys``, or -1 where it is absent.

    Example: ``lookup(np.array([2, 5, 9]), np.array([5, 6]))`` -> ``[1, -1]``.
    """
    if keys.size == 0:
        return np.full(query.shape, -1, dtype=np.int64)
    pos = np.searchsorted(keys, query)
    pos_c = np.minimum(pos, keys.size - 1)
    return np.where(keys[pos_c] == query, pos_c, -1)


@dataclass
class NgramTables:
    """Per-order sorted keys with log10 probabilities and backoffs.

    Attributes:
        vocab_size: V, the number of ids (the radix of the keys).
        keys: ``keys[k - 1]`` (n_k,) int64 sorted keys of order k; ``keys[0]`` is ``arange(V)``.
        prob: ``prob[k - 1]`` (n_k,) float32 log10 probabilities (``-inf`` for zero).
        backoff: ``backoff[k - 1]`` (n_k,) float32 log10 backoff weights (0 at the top order).
        raw_counts: ``raw_counts[k - 1]`` (n_k,) int64 corpus counts of each entry (``None`` for
            models read from ARPA files, which carry no counts).
    """

    vocab_size: int
    keys: list[np.ndarray]
    prob: list[np.ndarray]
    backoff: list[np.ndarray]
    raw_counts: list[np.ndarray] | None = None
    _derived: dict = field(default_factory=dict, repr=False)

    @property
    def order(self) -> int:
        return len(self.keys)

    def counts(self) -> list[int]:
        return [int(k.size) for k in self.keys]

    # -- structure derived from the keys (cached) ---------------------------------------------
    def parent(self, k: int) -> np.ndarray:
        """Index in table k-1 of each order-k entry's suffix (k >= 2)."""
        return self._get(("parent", k), lambda: self.keys[k - 1] // self.vocab_size)

    def first(self, k: int) -> np.ndarray:
        """First word of each order-k entry."""
        if k == 1:
            return self.keys[0]
        return self._get(("first", k), lambda: self.keys[k - 1] % self.vocab_size)

    def last(self, k: int) -> np.ndarray:
        """Last word of each order-k entry."""
        if k == 1:
            return self.keys[0]
        return self._get(("last", k), lambda: self.last(k - 1)[self.parent(k)])

    def context(self, k: int) -> np.ndarray:
        """Index in table k-1 of each order-k entry's context ``w1 .. w_{k-1}`` (k >= 2)."""

        def make() -> np.ndarray:
            if k == 2:
                return self.first(2)
            q = self.context(k - 1)[self.parent(k)] * self.vocab_size + self.first(k)
            idx = lookup(self.keys[k - 2], q)
            if (idx < 0).any():
                raise ModelFormatError(
                    f"the {k}-gram table holds n-grams whose {k - 1}-word context is missing; "
                    "the model is corrupt."
                )
            return idx

        return self._get(("context", k), make)

    def by_context(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Order-k entries grouped by context: (entry order, start offsets (n_{k-1} + 1,))."""

        def make():
            ctx = self.context(k)
            order = np.argsort(ctx, kind="stable")
            starts = np.searchsorted(ctx[order], np.arange(self.keys[k - 2].size + 1))
            return order, starts

        return self._get(("by_context", k), make)

    def words(self, k: int) -> np.ndarray:
        """The ids of every order-k entry as rows (n_k, k), left to right."""
        cols = [self.first(k)]
        idx = None
        for j in range(k, 1, -1):
            idx = self.parent(j) if idx is None else self.parent(j)[idx]
            cols.append(self.first(j - 1)[idx])
        return np.stack(cols, axis=1) if cols else np.zeros((0, k), dtype=np.int64)

    def _get(self, name, make):
        if name not in self._derived:
            self._derived[name] = make()
        return self._derived[name]

    def validate(self) -> None:
        """Raise ModelFormatError if the arrays are inconsistent (corrupt file)."""
        V = self.vocab_size
        if not self.keys or self.keys[0].size != V:
            raise ModelFormatError("the unigram table does not cover the vocabulary; corrupt model.")
        for k, (key, p, b) in enumerate(zip(self.keys, self.prob, self.backoff), start=1):
            if not (key.shape == p.shape == b.shape) or key.ndim != 1:
                raise ModelFormatError(f"the {k}-gram arrays have different lengths; corrupt model.")
            if key.size > 1 and not (key[1:] > key[:-1]).all():
                raise ModelFormatError(f"the {k}-gram keys are not sorted; corrupt model.")
            if k > 1 and key.size and (key.min() < 0 or key.max() // V >= self.keys[k - 2].size):
                raise ModelFormatError(f"the {k}-gram keys point outside table {k - 1}; corrupt model.")


__all__ = ["NgramTables", "lookup"]
