"""Corpora as word ids, and the vocabulary the count and word2vec methods share.

A corpus is text with one sentence per line, words separated by white space (as
``../shared/data/brown/*.txt``). Words seen fewer than ``min_count`` times are dropped before
windows are taken (as word2vec does), so a window reaches past them.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from chainrule.data.textfiles import iter_lines, resolve_paths
from chainrule.errors import ConfigError, DataError


def read_sentences(paths: str | os.PathLike | Sequence[str | os.PathLike],
                   lowercase: bool = False) -> list[list[str]]:
    """Sentences (lists of words) from text files, one sentence per non-blank line."""
    out = []
    for line in iter_lines(resolve_paths(paths)):
        words = (line.lower() if lowercase else line).split()
        if words:
            out.append(words)
    if not out:
        raise DataError(f"the corpus {paths!s} holds no words.")
    return out


@dataclass
class EncodedCorpus:
    """Words of frequency >= min_count, most frequent first; the corpus as ids in one array
    with sentence offsets (``ids[starts[s]:starts[s+1]]`` is sentence s)."""

    words: list[str]
    counts: np.ndarray  # (V,) int64
    ids: np.ndarray  # (N,) int32
    starts: np.ndarray  # (S + 1,) int64


def encode(sentences: Iterable[Sequence[str]], min_count: int = 5,
           max_vocab: int | None = None) -> EncodedCorpus:
    if min_count < 1:
        raise ConfigError(f"min_count must be at least 1, got {min_count}.")
    sentences = list(sentences)
    counter = Counter(w for s in sentences for w in s)
    vocab = sorted((w for w, c in counter.items() if c >= min_count),
                   key=lambda w: (-counter[w], w))
    if max_vocab:
        vocab = vocab[:max_vocab]
    if not vocab:
        raise DataError(f"no word occurs {min_count} times or more; lower --min-count.")
    index = {w: i for i, w in enumerate(vocab)}
    ids, starts = [], [0]
    for s in sentences:
        ids.extend(index[w] for w in s if w in index)
        starts.append(len(ids))
    return EncodedCorpus(vocab, np.array([counter[w] for w in vocab], np.int64),
                         np.array(ids, np.int32), np.array(starts, np.int64))


__all__ = ["EncodedCorpus", "encode", "read_sentences"]
