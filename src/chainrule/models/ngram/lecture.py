"""The lecture's bigram tables: counts ``c(v w)`` and probabilities ``P(w | v)`` for a word list.

Rows are the previous word ``v``, columns the next word ``w``, as on the slide ("Corpus
counts", after Jurafsky & Martin's Berkeley Restaurant Project table). Counts are the corpus
counts stored with the model; probabilities are the model's own ``P(w | v)`` with one word of
context -- for an order-2 ``mle`` model exactly ``c(v w) / c(v)``, the slide's second table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chainrule.errors import ConfigError
from chainrule.models.ngram.model import NgramModel
from chainrule.models.ngram.tables import lookup
from chainrule.tokenizers.base import Tokenizer


@dataclass
class BigramTable:
    """``values[i, j]``: count of, or probability of, ``words[j]`` right after ``words[i]``."""

    words: list[str]
    values: np.ndarray
    kind: str  # "counts" or "probabilities"


def _ids(tokenizer: Tokenizer, words: Sequence[str]) -> np.ndarray:
    ids = []
    for w in words:
        i = tokenizer.token_to_id(w)
        if i is None:
            raise ConfigError(f"the word {w!r} is not in the model's vocabulary; pick words the "
                              "training corpus contains.")
        ids.append(i)
    return np.asarray(ids, dtype=np.int64)


def bigram_table(
    model: NgramModel, tokenizer: Tokenizer, words: Sequence[str], *, probabilities: bool = False
) -> BigramTable:
    """The slide's table for ``words``.

    Raises:
        ConfigError: a word outside the vocabulary, counts asked of a unigram model or of a
            model imported from ARPA (which stores no counts).
    """
    ids = _ids(tokenizer, words)
    t = model.tables
    if probabilities:
        W = max(1, model.order - 1)
        ctx = np.full((ids.size, W), -1, dtype=np.int64)
        ctx[:, -1] = ids
        dist = model._distributions(ctx)  # (n, V) log10
        return BigramTable(list(words), np.power(10.0, dist[:, ids]), "probabilities")
    if model.order < 2:
        raise ConfigError("a unigram model has no bigram counts; train with --order 2 or more.")
    if t.raw_counts is None:
        raise ConfigError("this model stores no counts (it was imported from an ARPA file); "
                          "pass --probabilities.")
    V = t.vocab_size
    prev, nxt = np.meshgrid(ids, ids, indexing="ij")
    idx = lookup(t.keys[1], nxt.ravel() * V + prev.ravel())  # key = suffix (w) * V + first (v)
    counts = np.where(idx >= 0, t.raw_counts[1][np.maximum(idx, 0)], 0)
    return BigramTable(list(words), counts.reshape(ids.size, ids.size), "counts")


def format_table(table: BigramTable) -> str:
    """Tab-separated like the slide; probabilities to two significant digits (0.33, 0.0036)."""

    def cell(x) -> str:
        if table.kind == "counts":
            return str(int(x))
        return "0" if x == 0 else f"{x:.2g}"

    lines = ["\t" + "\t".join(table.words)]
    for w, row in zip(table.words, table.values):
        lines.append(w + "\t" + "\t".join(cell(x) for x in row))
    return "\n".join(lines)


__all__ = ["BigramTable", "bigram_table", "format_table"]
