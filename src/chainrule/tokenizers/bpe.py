"""Classic BPE (Sennrich et al. 2016): merges learned over words with an end-of-word marker.

A word (a run of non-whitespace) starts as its characters followed by the marker ``_``, so
``low`` is ``l o w _`` and the marker lets a token say "a word ends here" (``er_``). Between two
words, one plain space is implied by the marker and costs no token; any other whitespace
(newlines, double spaces, a leading space) is kept, one token per character, so that
``decode(encode(text)) == text`` for every text written in the training alphabet.

The marker must not occur in the corpus (it would be ambiguous); pick another with
``end_of_word=...`` if it does. Tie-breaking between equally frequent pairs is documented in
:mod:`chainrule.tokenizers._merges`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from chainrule.errors import TokenizerError
from chainrule.tokenizers._mergebase import MergeTokenizer
from chainrule.tokenizers.base import BOS, EOS, PAD, UNK, register_tokenizer, tiled

_PIECES = re.compile(r"\S+|\s+")  # re's \s on str is exactly str.isspace, as str.split() uses


@register_tokenizer
class BPETokenizer(MergeTokenizer):
    """Classic word-level BPE with an end-of-word marker (default ``_``).

    Example:
        >>> tok = BPETokenizer.train(["low low lowest newer"], vocab_size=30)
        >>> tok.decode(tok.encode("low newer"))
        'low newer'
    """

    kind = "bpe"
    mode = 0

    def __init__(
        self,
        vocab: list[str],
        merges: Iterable[tuple[str, str]],
        special_tokens: dict[str, int],
        *,
        end_of_word: str = "_",
        bos_token: str = BOS,
        eos_token: str = EOS,
    ):
        if not end_of_word:
            raise TokenizerError("the end-of-word marker must not be empty; use the default '_'.")
        self.end_of_word = end_of_word
        super().__init__(vocab, merges, special_tokens, bos_token=bos_token, eos_token=eos_token)

    def _base_map(self) -> dict[int, int]:
        return {ord(t): i for t, i in self._ids.items() if len(t) == 1 and t != self.end_of_word}

    def _eow(self) -> int:
        return self._ids[self.end_of_word]

    def _pieces(self, text: str) -> Iterator[tuple[str, bool]]:
        return _pieces_implied_space(text)

    def _units(self, piece: str) -> list[int]:
        return [ord(c) for c in piece]

    def _extra_fields(self) -> dict[str, Any]:
        return {"end_of_word": self.end_of_word}

    def decode(self, ids: Iterable[int], *, skip_special: bool = False) -> str:
        return "".join(self._decoded_pieces(ids, skip_special))

    def decode_with_offsets(self, ids: Iterable[int]) -> tuple[str, list[tuple[int, int]]]:
        """``decode(ids)`` and each token's character span ``[start, end)`` in it (linear).

        The space implied between two words belongs to the token after it, so the spans tile
        the decoded text: ``low_ new er_`` -> ``"low newer"``, ``[(0, 3), (3, 7), (7, 9)]``.
        """
        return tiled(self._decoded_pieces(ids, False))

    def _decoded_pieces(self, ids: Iterable[int], skip_special: bool) -> list[str]:
        """What each id adds to the decoded text (a pending space, then its characters)."""
        specials = {i: t for t, i in self.special_tokens.items()}
        eow, n = self.end_of_word, len(self.end_of_word)
        out: list[str] = []
        pending_space = False
        for i in ids:
            if i in specials:
                out.append("" if skip_special else specials[i])
                pending_space = False
                continue
            tok = self.vocab[i]
            if tok.isspace():
                out.append(tok)
                pending_space = False
                continue
            space = " " if pending_space else ""
            if tok.endswith(eow):
                out.append(space + tok[:-n])
                pending_space = True
            else:
                out.append(space + tok)
                pending_space = False
        return out

    # -- training ----------------------------------------------------------------------------
    @classmethod
    def _split_for_training(cls, text: str) -> Iterator[tuple[str, bool]]:
        for m in _PIECES.finditer(text):
            piece = m.group()
            yield piece, not piece[0].isspace()

    @classmethod
    def _units_of(cls, word: str) -> list[int]:
        return [ord(c) for c in word]

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, **kwargs: Any) -> BPETokenizer:
        """As :meth:`MergeTokenizer.train`; also takes ``end_of_word`` (default ``_``)."""
        texts = list(texts)
        eow = kwargs.get("end_of_word", "_")
        if any(eow in t for t in texts):
            raise TokenizerError(
                f"the corpus contains the end-of-word marker {eow!r}; choose another marker "
                "(end_of_word=... or --end-of-word, for example '</w>')."
            )
        return super().train(texts, vocab_size, **kwargs)  # type: ignore[return-value]

    @classmethod
    def _base_vocab(cls, units, spaces, options):
        eow = options.get("end_of_word", "_")
        vocab = [PAD, UNK, BOS, EOS, eow]
        vocab += [chr(u) for u in sorted(units)]
        vocab += [chr(u) for u in sorted(set(spaces) | {ord(c) for c in " \t\n\r"})]
        specials = {t: i for i, t in enumerate(vocab[:4])}
        base = {ord(t): i for i, t in enumerate(vocab) if i > 4}
        spellings = {i: t.encode("utf-8") for i, t in enumerate(vocab) if i >= 4}
        return vocab, specials, base, 4, spellings

    @classmethod
    def _init_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {"end_of_word": options.get("end_of_word", "_")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BPETokenizer:
        args, kwargs = cls._from_dict_args(data)
        return cls(*args, end_of_word=data.get("end_of_word", "_"), **kwargs)


def _pieces_implied_space(text: str) -> Iterator[tuple[str, bool]]:
    """Words and whitespace runs, dropping a single space between two words (the marker's)."""
    pieces = _PIECES.findall(text)
    prev_word = False
    for k, piece in enumerate(pieces):
        if not piece[0].isspace():
            prev_word = True
            yield piece, True
            continue
        if not (prev_word and piece == " " and k + 1 < len(pieces)):
            yield piece, False
        prev_word = False
