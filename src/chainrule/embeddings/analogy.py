"""Analogies by vector arithmetic: a is to b as c is to ?  (king - man + woman = queen).

With cosines taken between unit vectors and the query words a, b, c never allowed as answers:

- 3CosAdd (Mikolov et al. 2013): argmax_x  cos(x, b) - cos(x, a) + cos(x, c)
- 3CosMul (Levy & Goldberg 2014): argmax_x  cos'(x, b) cos'(x, c) / (cos'(x, a) + 0.001), with
  cos' = (cos + 1) / 2 shifted into [0, 1] so the product is meaningful.

A question with a word outside the vocabulary is "not covered": it is left out of the accuracy
and counted in the coverage, never an error.
"""

from __future__ import annotations

import numpy as np

from chainrule.embeddings.vectors import WordVectors
from chainrule.errors import ConfigError

METHODS = ("add", "mul")
EPS = 0.001


class Lookup:
    """Word -> row, exactly or (with ``case_insensitive``) by lower case, where a folded form
    maps to the first row that has it (the most frequent when the vocabulary is sorted so)."""

    def __init__(self, vectors: WordVectors, case_insensitive: bool = True):
        self.vectors, self.fold = vectors, case_insensitive
        self.folded: dict[str, int] = {}
        if case_insensitive:
            for i, w in enumerate(vectors.words):
                self.folded.setdefault(w.lower(), i)

    def __call__(self, word: str) -> int | None:
        if self.fold:
            return self.folded.get(word.lower())
        return self.vectors.index.get(word)


def _scores(unit: np.ndarray, ia, ib, ic, method: str) -> np.ndarray:
    """(Q, V) scores for index arrays ia, ib, ic of Q questions."""
    sa, sb, sc = unit[ia] @ unit.T, unit[ib] @ unit.T, unit[ic] @ unit.T
    if method == "add":
        return sb - sa + sc
    sa, sb, sc = (sa + 1) / 2, (sb + 1) / 2, (sc + 1) / 2
    return sb * sc / (sa + EPS)


def _check(method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown analogy method {method!r}; use 'add' (3CosAdd) or 'mul' "
                          "(3CosMul).")


def analogy(vectors: WordVectors, a: str, b: str, c: str, method: str = "add", k: int = 1,
            case_insensitive: bool = False) -> list[tuple[str, float]] | None:
    """The ``k`` best answers to a : b :: c : ?, or None when a query word is not covered."""
    _check(method)
    look = Lookup(vectors, case_insensitive)
    ia, ib, ic = look(a), look(b), look(c)
    if None in (ia, ib, ic):
        return None
    s = _scores(vectors.unit, [ia], [ib], [ic], method)[0]
    s[[ia, ib, ic]] = -np.inf  # the query words are never answers
    top = np.argsort(-s, kind="stable")[:k]
    return [(vectors.words[i], float(s[i])) for i in top if np.isfinite(s[i])]


def read_analogies(path) -> list[tuple[str, tuple[str, str, str, str]]]:
    """(section, (a, b, c, d)) from Google's questions-words.txt (``: section`` headers)."""
    from chainrule.fileio import require_file

    out, section = [], "all"
    for lineno, line in enumerate(require_file(path, "analogy file").read_text("utf-8")
                                  .splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith(":"):
            section = line[1:].strip()
            continue
        parts = line.split()
        if len(parts) != 4:
            from chainrule.errors import DataError

            raise DataError(f"{str(path)!r} line {lineno} has {len(parts)} words; an analogy "
                            "line needs four (a b c d).")
        out.append((section, tuple(parts)))
    return out


def evaluate_analogies(vectors: WordVectors, questions, method: str = "add",
                       case_insensitive: bool = True, batch: int = 256) -> dict:
    """Accuracy on the covered questions, per section and overall, with coverage.

    Returns {"overall": {...}, "sections": {name: {"correct", "covered", "total", "accuracy",
    "coverage"}}}. Sections whose name starts with "gram" are syntactic, the rest semantic (the
    Google set's convention); "semantic" and "syntactic" totals are included."""
    _check(method)
    look = Lookup(vectors, case_insensitive)
    rows, secs = [], []
    totals: dict[str, list[int]] = {}
    for section, words in questions:
        t = totals.setdefault(section, [0, 0, 0])  # correct, covered, total
        t[2] += 1
        idx = [look(w) for w in words]
        if None not in idx:
            rows.append(idx)
            secs.append(section)
            t[1] += 1
    unit = vectors.unit
    if rows:
        q = np.array(rows)
        for s in range(0, len(q), batch):
            part = q[s:s + batch]
            scores = _scores(unit, part[:, 0], part[:, 1], part[:, 2], method)
            r = np.arange(len(part))
            for j in range(3):
                scores[r, part[:, j]] = -np.inf
            best = scores.argmax(1)
            for sec, ok in zip(secs[s:s + batch], best == part[:, 3], strict=True):
                totals[sec][0] += int(ok)

    def entry(c, cov, tot):
        return {"correct": c, "covered": cov, "total": tot,
                "accuracy": c / cov if cov else None, "coverage": cov / tot if tot else None}

    groups = {"semantic": [0, 0, 0], "syntactic": [0, 0, 0], "overall": [0, 0, 0]}
    for sec, t in totals.items():
        for g in ("syntactic" if sec.startswith("gram") else "semantic", "overall"):
            groups[g] = [x + y for x, y in zip(groups[g], t, strict=True)]
    return {**{g: entry(*t) for g, t in groups.items()},
            "method": method, "sections": {s: entry(*t) for s, t in totals.items()}}


__all__ = ["METHODS", "Lookup", "analogy", "evaluate_analogies", "read_analogies"]
