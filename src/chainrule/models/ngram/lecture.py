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
    #: ``backed_off[i, j]``: the bigram was never seen, so its probability comes from the lower
    #: order (backing off / interpolation); None for counts and unigram models
    backed_off: np.ndarray | None = None


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
        seen = None
        if model.order >= 2:
            prev, nxt = np.meshgrid(ids, ids, indexing="ij")
            seen = lookup(t.keys[1], nxt.ravel() * t.vocab_size + prev.ravel()) >= 0
            seen = seen.reshape(ids.size, ids.size)
        probs = np.power(10.0, dist[:, ids])
        return BigramTable(list(words), probs, "probabilities",
                           None if seen is None else ~seen & (probs > 0))
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
    """The slide's table, columns aligned; one number format per table.

    Counts are integers. Probabilities share one number of decimals, enough for the smallest
    non-zero one to show two significant digits (0.00092 -> 5 decimals), at most 6; below
    that the whole table is in scientific notation. A ``*`` marks a probability that comes
    from backing off (the bigram was never seen), and a footnote says so.
    """
    vals = table.values
    if table.kind == "counts":
        cells = [[f"{int(x):,}" for x in row] for row in vals]
    else:
        nz = vals[vals > 0]
        places = 2 if nz.size == 0 else int(-np.floor(np.log10(nz.min()))) + 1
        fmt = "{:.1e}" if places > 6 else f"{{:.{max(places, 2)}f}}"
        cells = [[fmt.format(x) for x in row] for row in vals]
        if table.backed_off is not None:
            cells = [[c + ("*" if b else " ") for c, b in zip(row, brow)]
                     for row, brow in zip(cells, table.backed_off)]
    first = max(len(w) for w in table.words)
    widths = [max(len(w), *(len(r[j]) for r in cells)) for j, w in enumerate(table.words)]
    lines = [" " * first + "".join(f"  {w:>{n}}" for w, n in zip(table.words, widths))]
    for w, row in zip(table.words, cells):
        lines.append(f"{w:<{first}}" + "".join(f"  {c:>{n}}" for c, n in zip(row, widths)))
    if table.kind == "counts":
        lines.append("c(row word, column word): how often the column word follows the row word.")
    else:
        lines.append("P(column word | row word)"
                     + ("; * = never seen together: the probability comes from backing off to "
                        "the shorter context." if table.backed_off is not None and
                        table.backed_off.any() else "."))
    return "\n".join(lines)


__all__ = ["BigramTable", "bigram_table", "format_table"]
