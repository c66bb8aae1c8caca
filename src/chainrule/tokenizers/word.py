"""Word tokenizer: words and punctuation (a regex), or KenLM-style whitespace-separated tokens.

Modes:
    ``"regex"`` (default): runs of word characters, and each other non-space character on its
        own (``"Don't!"`` -> ``Don ' t !``); optional lowercasing.
    ``"whitespace"``: ``text.split()``: exactly what KenLM and ARPA files count as words (case
        kept, punctuation attached).

Words outside the vocabulary become ``<unk>``. ``decode`` joins words with single spaces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import regex

from chainrule.errors import TokenizerError
from chainrule.tokenizers.base import SPECIALS, UNK, Tokenizer, register_tokenizer, tiled

WORD_PATTERN = r"\w+|[^\w\s]"
_WORD_RE = regex.compile(WORD_PATTERN)
MODES = ("regex", "whitespace")


@register_tokenizer
class WordTokenizer(Tokenizer):
    """Ids 0-3 are ``<pad> <unk> <s> </s>``; then the words, most frequent first.

    Example:
        >>> tok = WordTokenizer.from_vocab(["the", "cat"], mode="whitespace")
        >>> tok.encode("the dog")
        [4, 1]
    """

    kind = "word"

    def __init__(self, words: Iterable[str], *, mode: str = "regex", lowercase: bool = False):
        if mode not in MODES:
            raise TokenizerError(f"unknown word mode {mode!r}; use one of {', '.join(MODES)}.")
        self.mode, self.lowercase = mode, bool(lowercase)
        self.special_tokens = {t: i for i, t in enumerate(SPECIALS)}
        seen = dict.fromkeys(SPECIALS)  # first occurrences in order; specials keep their ids
        seen.update(dict.fromkeys(words))
        self.vocab = list(seen)
        self._ids = dict(zip(self.vocab, range(len(self.vocab))))  # fast for 50k-word models

    @classmethod
    def from_vocab(
        cls, words: Iterable[str], *, mode: str = "whitespace", lowercase: bool = False
    ) -> WordTokenizer:
        """A tokenizer over an explicit word list (e.g. an ARPA file's unigrams), order kept.

        Special spellings in ``words`` (``<s>``, ``</s>``, ``<unk>``) map to the specials.
        """
        return cls(words, mode=mode, lowercase=lowercase)

    def split(self, text: str) -> list[str]:
        """The words of ``text`` (before vocabulary lookup)."""
        if self.lowercase:
            text = text.lower()
        return text.split() if self.mode == "whitespace" else _WORD_RE.findall(text)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int | None = None,
        min_count: int = 1,
        *,
        mode: str = "regex",
        lowercase: bool = False,
    ) -> WordTokenizer:
        """Keep words seen ``min_count`` times, most frequent first (ties: first seen)."""
        probe = cls([], mode=mode, lowercase=lowercase)
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(probe.split(t))
        if not counts:
            raise TokenizerError("the corpus is empty (it has no words); pass a text corpus.")
        kept = [w for w, n in counts.most_common() if n >= min_count and w not in SPECIALS]
        if vocab_size is not None:
            if vocab_size <= len(SPECIALS):
                raise TokenizerError(
                    f"a vocabulary of {vocab_size} has no room for words after the "
                    f"{len(SPECIALS)} special tokens; use a vocabulary size of {len(SPECIALS) + 1} or more (vocab_size=, or --vocab-size)."
                )
            kept = kept[: vocab_size - len(SPECIALS)]
        return cls(kept, mode=mode, lowercase=lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode_ordinary(self, text: str) -> list[int]:
        unk, ids = self.special_tokens[UNK], self._ids
        return [
            ids.get(w, unk) if w not in self.special_tokens else unk for w in self.split(text)
        ]

    def decode(self, ids: Iterable[int], *, skip_special: bool = False) -> str:
        n = len(SPECIALS)
        return " ".join(self.vocab[i] for i in ids if not (skip_special and i < n))

    def decode_with_offsets(self, ids: Iterable[int]) -> tuple[str, list[tuple[int, int]]]:
        """``decode(ids)`` and each token's character span ``[start, end)`` in it (linear).

        A word after the first also covers the single space ``decode`` puts before it, so the
        spans tile the decoded text: ``"the cat"`` -> ``[(0, 3), (3, 7)]``.
        """
        return tiled([(" " if k else "") + self.vocab[i] for k, i in enumerate(ids)])

    def id_to_token(self, idx: int) -> str:
        return self.vocab[idx]

    def token_to_id(self, token: str) -> int | None:
        return self._ids.get(token)

    def to_dict(self) -> dict[str, Any]:
        return {
            "words": self.vocab[len(SPECIALS) :],
            "mode": self.mode,
            "lowercase": self.lowercase,
            "special_tokens": self.special_tokens,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WordTokenizer:
        return cls(data["words"], mode=data.get("mode", "regex"), lowercase=data["lowercase"])
