"""Byte-pair encoding training as the lecture's loop: count pairs, merge the most frequent, repeat.

The readable reference for :meth:`chainrule.tokenizers.BPETokenizer.train`, whose fast path is
the compiled core (incremental pair counts in a priority queue). ``tests/test_lecture_reference.py``
checks that both learn the same merges, in the same order.

The slide: "Starting from a character-only vocabulary, we learn the vocabulary by progressively
merging frequent bigrams"::

    corpus                  vocabulary
    5  l o w _              _, d, e, i, l, n, o, r, s, t, w
    2  l o w e s t _
    6  n e w e r _          merge (e, r):  ... n e w er _    vocabulary + er
    3  w i d e r _          merge (er, _): ... n e w er_     vocabulary + er_
    2  n e w _              ...

Each word type is spelled as its characters followed by the end-of-word marker ``_`` and
weighted by its frequency. One round counts every adjacent pair of symbols over these words,
picks the most frequent pair, and rewrites every word with that pair merged into one symbol.

Ties (the project's rule, see :mod:`chainrule.tokenizers._merges`): among pairs with the same
count, the pair that occurs first in the corpus wins -- word types in order of their first
appearance, each read left to right. Python's dicts keep insertion order and ``max`` returns
the first of equal maxima, so counting in that order gives the rule for free.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

Word = tuple[str, ...]


def word_frequencies(words_or_text: str | Iterable[str] | Mapping[str, int],
                     end_of_word: str = "_") -> dict[Word, int]:
    """The slide's corpus column: each word type spelled out with ``_``, and its frequency.

    Accepts a text (split on whitespace), an iterable of texts, or a ``{word: frequency}``
    mapping; types keep the order of their first appearance.

    Example: ``word_frequencies("low low new")`` -> ``{('l','o','w','_'): 2, ('n','e','w','_'): 1}``.
    """
    if isinstance(words_or_text, Mapping):
        counts = Counter(words_or_text)
    else:
        texts = [words_or_text] if isinstance(words_or_text, str) else words_or_text
        counts = Counter(word for text in texts for word in text.split())
    return {(*word, end_of_word): freq for word, freq in counts.items()}


def count_pairs(vocab: Mapping[Word, int]) -> Counter[tuple[str, str]]:
    """How often each adjacent pair of symbols occurs, each word weighted by its frequency."""
    pairs: Counter[tuple[str, str]] = Counter()
    for word, freq in vocab.items():
        for pair in itertools.pairwise(word):
            pairs[pair] += freq
    return pairs


def merge_pair(word: Word, pair: tuple[str, str]) -> Word:
    """Replace each occurrence of ``pair`` in ``word`` by one symbol, left to right.

    Example: ``merge_pair(('n','e','w','e','r','_'), ('e','r'))`` -> ``('n','e','w','er','_')``.
    """
    if pair[0] not in word or pair[1] not in word:
        return word  # a shortcut: nothing to merge
    out, i = [], 0
    while i < len(word):
        if word[i : i + 2] == pair:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def learn_bpe(
    words_or_text: str | Iterable[str] | Mapping[str, int],
    num_merges: int,
    *,
    end_of_word: str = "_",
    min_count: int = 2,
) -> list[tuple[str, str]]:
    """Learn up to ``num_merges`` BPE merges, the lecture's loop written out.

    Args:
        words_or_text: a text, an iterable of texts (each split on whitespace), or a
            ``{word: frequency}`` mapping (the slide's corpus column).
        num_merges: how many merges to learn.
        end_of_word: the marker appended to every word (must not occur in the corpus).
        min_count: stop early once the most frequent pair occurs fewer times than this
            (``BPETokenizer.train``'s default, 2: a pair seen once teaches nothing).
    Returns:
        The merges ``(left, right)`` in the order learned; ``left + right`` is the new symbol.

    Example: on the slide's corpus the first merges are (e, r), (er, _), (n, e), (ne, w), ...
    """
    return [step.pair for step in bpe_steps(words_or_text, num_merges,
                                             end_of_word=end_of_word, min_count=min_count)]


@dataclass(frozen=True)
class MergeStep:
    """One round of the loop: the pair counts it saw, the pair it merged, the corpus after."""

    pair: tuple[str, str]  # the merged pair; ``pair[0] + pair[1]`` is the new symbol
    count: int  # how often it occurred (weighted by word frequency)
    pairs: Counter[tuple[str, str]]  # every pair's count before this merge
    corpus: dict[Word, int]  # the corpus column after this merge


def bpe_steps(
    words_or_text: str | Iterable[str] | Mapping[str, int],
    num_merges: int,
    *,
    end_of_word: str = "_",
    min_count: int = 2,
) -> Iterator[MergeStep]:
    """The lecture's loop, one :class:`MergeStep` per merge (arguments as :func:`learn_bpe`).

    Example: on the slide's corpus the first step merges ``('e', 'r')`` (count 9: newer x 6,
    wider x 3) and its corpus holds ``('n', 'e', 'w', 'er', '_'): 6``.
    """
    vocab = word_frequencies(words_or_text, end_of_word)
    for _ in range(num_merges):
        pairs = count_pairs(vocab)
        if not pairs:
            return  # every word is one symbol
        best = max(pairs, key=pairs.get)  # the first of equally frequent pairs
        if pairs[best] < min_count:
            return
        vocab = {merge_pair(word, best): freq for word, freq in vocab.items()}
        yield MergeStep(best, pairs[best], pairs, vocab)


def replay_merges(
    words_or_text: str | Iterable[str] | Mapping[str, int],
    merges: Iterable[tuple[str, str]],
    *,
    end_of_word: str = "_",
) -> Iterator[MergeStep]:
    """Learned merges (a tokenizer's, in its order) applied to a corpus, one step each.

    The same :class:`MergeStep` as :func:`bpe_steps` -- the pair, its count in this corpus, and
    the corpus after the merge -- but the pairs are given, not chosen; on the tokenizer's own
    training corpus the two agree. This is ``chainrule tokenizer inspect --trace``.
    """
    vocab = word_frequencies(words_or_text, end_of_word)
    for a, b in merges:
        pairs = count_pairs(vocab)
        vocab = {merge_pair(word, (a, b)): freq for word, freq in vocab.items()}
        yield MergeStep((a, b), pairs.get((a, b), 0), pairs, vocab)


def apply_merges(word: str, merges: Iterable[tuple[str, str]], end_of_word: str = "_"
                 ) -> list[Word]:
    """How a word splits: its spelling with ``_``, then after each merge that changed it.

    Example: ``apply_merges("lower", [("e", "r"), ("er", "_"), ("l", "o"), ("lo", "w")])`` ->
    ``[('l','o','w','e','r','_'), ('l','o','w','er','_'), ('l','o','w','er_'),
    ('lo','w','er_'), ('low','er_')]``; the last one is the word's tokens.
    """
    splits = [(*word, end_of_word)]
    for pair in merges:
        merged = merge_pair(splits[-1], pair)
        if merged != splits[-1]:
            splits.append(merged)
    return splits


__all__ = ["MergeStep", "apply_merges", "bpe_steps", "count_pairs", "learn_bpe", "merge_pair",
           "replay_merges", "word_frequencies"]
