"""A character n-gram model of spellings: P_spell(w) for any string w.

It spells a word one byte at a time and then an end-of-word symbol; each step's distribution is
Witten-Bell interpolated from order ``order`` down to a uniform distribution over the alphabet
plus the end symbol, so every conditional distribution sums to one and every string has a
positive probability. The probabilities of all finite strings then sum to one (the end symbol
has probability at least 1 / (|alphabet| + 1) times the product of the interpolation weights at
every step, so the chance of never ending is zero).

Used by :mod:`chainrule.embeddings.openvocab` to give words outside an LM's closed vocabulary a
probability. Saved as JSON (counts only; nothing is executed when loading).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from chainrule.errors import ConfigError

END = -1


class SpellingModel:
    def __init__(self, order: int = 4, alphabet: bytes | None = None):
        if order < 1:
            raise ConfigError(f"the spelling model's order must be at least 1, got {order}.")
        self.order = order
        self.alphabet = sorted(set(alphabet)) if alphabet is not None else list(range(256))
        self.allowed = set(self.alphabet)
        # context (tuple of previous symbols, most recent last) -> symbol -> count
        self.counts: dict[tuple, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.n_words = 0

    def _symbols(self, word: str) -> list[int]:
        return [*word.encode("utf-8"), END]

    def fit(self, words: Iterable[str]) -> SpellingModel:
        for w in words:
            syms = self._symbols(w)
            if any(s != END and s not in self.allowed for s in syms):
                continue  # outside the alphabet: counting it would break normalisation
            for i, s in enumerate(syms):
                for k in range(self.order):  # contexts of length 0 .. order-1
                    if i - k < 0:
                        break
                    self.counts[tuple(syms[i - k:i])][s] += 1
            self.n_words += 1
        return self

    def prob(self, context: tuple, symbol: int) -> float:
        """P(symbol | context), Witten-Bell interpolated down to uniform."""
        p = 1.0 / (len(self.alphabet) + 1) if (symbol == END or symbol in self.allowed) else 0.0
        for k in range(min(len(context), self.order - 1) + 1):
            c = self.counts.get(context[len(context) - k:] if k else ())
            if not c:
                break
            total, types = sum(c.values()), len(c)
            lam = total / (total + types)
            p = lam * c.get(symbol, 0) / total + (1 - lam) * p
        return p

    def logprob(self, word: str) -> float:
        """Natural log of P_spell(word) (the end symbol included)."""
        syms = self._symbols(word)
        out = 0.0
        for i, s in enumerate(syms):
            p = self.prob(tuple(syms[max(0, i - self.order + 1):i]), s)
            if p <= 0:
                return -math.inf
            out += math.log(p)
        return out

    def to_dict(self) -> dict:
        return {"format": "chainrule-spelling-model", "order": self.order,
                "alphabet": self.alphabet, "n_words": self.n_words,
                "counts": [[list(ctx), [[s, n] for s, n in c.items()]]
                           for ctx, c in self.counts.items()]}

    @classmethod
    def from_dict(cls, d: dict) -> SpellingModel:
        if d.get("format") != "chainrule-spelling-model":
            raise ConfigError("not a chainrule spelling model (format field missing).")
        m = cls(d["order"], bytes(d["alphabet"]))
        m.n_words = d["n_words"]
        for ctx, items in d["counts"]:
            for s, n in items:
                m.counts[tuple(ctx)][s] = n
        return m


__all__ = ["END", "SpellingModel"]
