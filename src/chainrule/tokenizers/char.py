"""Character tokenizer: one token per Unicode code point; unseen characters become ``<unk>``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from chainrule.errors import TokenizerError
from chainrule.tokenizers.base import SPECIALS, UNK, Tokenizer, register_tokenizer, tiled


@register_tokenizer
class CharTokenizer(Tokenizer):
    """Ids 0-3 are ``<pad> <unk> <s> </s>``; then the characters in code-point order.

    Example:
        >>> tok = CharTokenizer(["a", "b", " "])
        >>> tok.encode("ab a")
        [4, 5, 6, 4]
    """

    kind = "char"

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise TokenizerError("a character tokenizer needs distinct single characters; the "
                                 "list given has a repeat or a longer string.")
        self.vocab = [*SPECIALS, *chars]
        self.special_tokens = {t: i for i, t in enumerate(SPECIALS)}
        self._ids = {c: i for i, c in enumerate(self.vocab) if i >= len(SPECIALS)}

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int | None = None, min_count: int = 1
    ) -> CharTokenizer:
        """Keep characters seen ``min_count`` times, the most frequent first up to ``vocab_size``."""
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(t)
        if not counts:
            raise TokenizerError("the corpus is empty; pass a text corpus with some characters.")
        kept = [c for c, n in counts.most_common() if n >= min_count]
        if vocab_size is not None:
            if vocab_size <= len(SPECIALS):
                raise TokenizerError(
                    f"a vocabulary of {vocab_size} has no room for characters after the "
                    f"{len(SPECIALS)} special tokens; use a vocabulary size of {len(SPECIALS) + 1} or more (vocab_size=, or --vocab-size)."
                )
            kept = kept[: vocab_size - len(SPECIALS)]
        return cls(sorted(kept))

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode_ordinary(self, text: str) -> list[int]:
        unk, ids = self.special_tokens[UNK], self._ids
        return [ids.get(c, unk) for c in text]

    def decode(self, ids: Iterable[int], *, skip_special: bool = False) -> str:
        n = len(SPECIALS) if skip_special else 0
        return "".join(self.vocab[i] for i in ids if i >= n)

    def decode_with_offsets(self, ids: Iterable[int]) -> tuple[str, list[tuple[int, int]]]:
        """``decode(ids)`` and each token's character span ``[start, end)`` in it (linear).

        Example: ``decode_with_offsets(encode("ab"))`` -> ``("ab", [(0, 1), (1, 2)])``.
        """
        return tiled([self.vocab[i] for i in ids])  # one character, or a special's spelling

    def id_to_token(self, idx: int) -> str:
        return self.vocab[idx]

    def token_to_id(self, token: str) -> int | None:
        i = self.special_tokens.get(token)
        return i if i is not None else self._ids.get(token)

    def to_dict(self) -> dict[str, Any]:
        return {"chars": self.vocab[len(SPECIALS) :], "special_tokens": self.special_tokens}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharTokenizer:
        return cls(data["chars"])
