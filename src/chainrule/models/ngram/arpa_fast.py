"""The compiled ARPA reader (``chainrule._arpa_core``, ``src/chainrule/_arpa/core.cpp``).

It parses the n-gram sections of an ARPA file in any layout the Python reader reads (KenLM's
``prob<TAB>w1 .. wk[<TAB>backoff]``, SRILM's lines without a backoff, CRLF line ends, runs of
spaces and tabs, n-grams in any order, text before ``\\data\\``) straight from the bytes: numbers
with ``std::from_chars`` (correctly rounded like Python's ``float``, then to float32 like
numpy), every word as the index of its unigram line. Where a file has anything
:func:`.arpa.read_arpa` would refuse or read differently (a number out of range or spelled in a
way ``from_chars`` does not read, a word without a unigram line, a missing suffix, bytes that are
not UTF-8), :func:`parse` returns None and the Python reader reads the file instead, so results
and error messages never depend on which reader ran (tested, including files written by
:func:`.arpa.write_arpa`, rewritten in other layouts and randomly damaged, under hypothesis).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np


def core() -> ModuleType | None:
    """The compiled module, or None when it was not built (the Python reader is used)."""
    try:
        from chainrule import _arpa_core
    except ImportError:
        return None
    return _arpa_core


@dataclass(frozen=True)
class ParsedArpa:
    """The sections of an ARPA file, words as unigram line indices.

    Attributes:
        unigrams: the words of the unigram lines, in file order.
        probs / backs: per order, float32 log10 probabilities and backoffs (0 where absent).
        rows: per order, (n, k) int64: row j's words as indices into ``unigrams`` (the first
            line of a word spelled twice).
        suffix: per order k >= 3, (n,) int64: the row in order k - 1 of each row's last k - 1
            words (None below order 3).
    """

    unigrams: list[str]
    probs: list[np.ndarray]
    backs: list[np.ndarray]
    rows: list[np.ndarray]
    suffix: list[np.ndarray | None]


def parse(data: bytes) -> ParsedArpa | None:
    """The file's contents parsed by the compiled reader, or None (not built, or a file the
    Python reader must read: another layout, or something it would refuse)."""
    mod = core()
    if mod is None:
        return None
    res = mod.parse(data)
    if res is None:
        return None
    unigrams, sections, start, end = res
    try:  # the Python reader decodes the whole file (the parser saw only ASCII in between)
        data[:start].decode("utf-8")
        data[end:].decode("utf-8")
    except UnicodeDecodeError:
        return None
    probs, backs, rows, suffix = (list(x) for x in zip(*sections))
    for p, b in zip(probs, backs):
        if not (p <= 0).all() or not np.isfinite(b).all():
            return None  # the Python reader names the line
    return ParsedArpa(unigrams, probs, backs, rows, suffix)


def argsort(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` of non-negative int64 keys: the same permutation, by a
    compiled radix sort when the module is built and the keys are far from sorted (numpy's
    timsort is slow on the keys of a shuffled section)."""
    mod = core()
    # timsort is fast on runs (KenLM's sections are sorted by suffix): radix only when shuffled
    if mod is None or keys.size < 1024 or np.count_nonzero(np.diff(keys) < 0) < keys.size // 64:
        return np.argsort(keys, kind="stable")
    return mod.argsort(keys)


__all__ = ["ParsedArpa", "argsort", "core", "parse"]
