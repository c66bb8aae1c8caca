"""What classic BPE and byte-level BPE share: a vocabulary, ranked merges, training, encoding.

A merge tokenizer splits text into pieces (words), turns each piece into base symbols
(characters plus an end-of-word marker, or bytes), and applies the learned merges in the order
they were learned. Subclasses say how text becomes pieces and symbols, and how ids become text.
Encoding and training run in the compiled core when it is built (``chainrule._bpe_core``) and in
the pure-Python reference otherwise; both give the same ids and merges.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import numpy as np

from chainrule.errors import TokenizerError
from chainrule.tokenizers._merges import apply_merges, get_core, learn_merges_reference
from chainrule.tokenizers.base import BOS, EOS, Tokenizer

_CACHE_MAX = 1 << 18


class MergeTokenizer(Tokenizer):
    """Base of :class:`BPETokenizer` and :class:`ByteBPETokenizer`.

    Attributes:
        vocab: id -> token spelling (specials included, at their ids).
        merges: ``(left, right)`` spellings in learned order; ``left + right`` is in ``vocab``.
    """

    mode: ClassVar[int] = 0  # the compiled core's mode: 0 classic, 1 byte-level

    def __init__(
        self,
        vocab: list[str],
        merges: Iterable[tuple[str, str]],
        special_tokens: dict[str, int],
        *,
        bos_token: str = BOS,
        eos_token: str = EOS,
    ):
        self.vocab = list(vocab)
        self.merges = [(str(a), str(b)) for a, b in merges]
        self.special_tokens = {str(k): int(v) for k, v in special_tokens.items()}
        self.bos_token, self.eos_token = bos_token, eos_token
        special_ids = set(self.special_tokens.values())
        for t, i in self.special_tokens.items():
            if not 0 <= i < len(self.vocab) or self.vocab[i] != t:
                raise TokenizerError(f"special token {t!r} is not at id {i} of the vocabulary; the "
                                     "tokenizer file is corrupt or hand-edited.")
        self._ids = {t: i for i, t in enumerate(self.vocab) if i not in special_ids}
        if len(self._ids) != len(self.vocab) - len(special_ids):
            raise TokenizerError("the vocabulary spells two tokens the same; the tokenizer file is "
                                 "corrupt or hand-edited.")
        self._ranks: dict[tuple[int, int], tuple[int, int]] = {}
        for r, (a, b) in enumerate(self.merges):
            key = (self._ids[a], self._ids[b])
            self._ranks.setdefault(key, (r, self._ids[a + b]))
        self._base = self._base_map()
        self._cache: dict[str, list[int]] = {}
        self._core_encoder: Any = None

    # -- hooks for subclasses ------------------------------------------------------------------
    def _base_map(self) -> dict[int, int]:
        """unit (code point or byte) -> id of its base symbol."""
        raise NotImplementedError

    def _eow(self) -> int:
        return -1

    def _pieces(self, text: str) -> Iterator[tuple[str, bool]]:
        """``(piece, is_word)``; words get merged, other pieces become one token per unit."""
        raise NotImplementedError

    def _units(self, piece: str) -> list[int]:
        raise NotImplementedError

    def _extra_fields(self) -> dict[str, Any]:
        return {}

    # -- encoding --------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def id_to_token(self, idx: int) -> str:
        return self.vocab[idx]

    def token_to_id(self, token: str) -> int | None:
        i = self.special_tokens.get(token)
        return i if i is not None else self._ids.get(token)

    def _encoder(self):
        if self._core_encoder is None:
            core = get_core()
            if core is not None:
                merges = [(a, b, n) for (a, b), (_, n) in sorted(self._ranks.items(), key=_rank)]
                unk = self.unk_id if self.unk_id is not None else -1
                self._core_encoder = core.Encoder(self.mode, self._base, merges, self._eow(), unk)
            else:
                self._core_encoder = False
        return self._core_encoder

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` with every special spelling treated as plain text."""
        enc = self._encoder()
        if enc:
            try:
                return enc.encode(text).tolist()
            except UnicodeEncodeError:  # lone surrogates: only the Python path can carry them
                pass
        return self._encode_python(text)

    def encode_parallel(self, text: str, threads: int | None = None) -> np.ndarray:
        """Encode a whole corpus on every core: ids as an int32 array of shape ``(N,)``.

        The text is cut after newlines that are followed by a non-space, where no piece can
        span, so the result equals ``encode_ordinary(text)``.
        """
        enc = self._encoder()
        if not enc:
            return np.asarray(self._encode_python(text), dtype=np.int32)
        return enc.encode_parallel(text, threads or os.cpu_count() or 1)

    def _encode_python(self, text: str) -> list[int]:
        out: list[int] = []
        unk = self.unk_id if self.unk_id is not None else -1
        for piece, is_word in self._pieces(text):
            if not is_word:
                out.extend(self._base.get(u, unk) for u in self._units(piece))
                continue
            ids = self._cache.get(piece)
            if ids is None:
                symbols = [self._base.get(u, unk) for u in self._units(piece)]
                if self._eow() >= 0:
                    symbols.append(self._eow())
                ids = apply_merges(symbols, self._ranks)
                if len(self._cache) < _CACHE_MAX:
                    self._cache[piece] = ids
            out.extend(ids)
        return out

    def pieces(self, word: str) -> list[str]:
        """The token spellings ``word`` is split into (for ``inspect --word``)."""
        return [self.vocab[i] for i in self.encode(word)]

    # -- training --------------------------------------------------------------------------------
    @classmethod
    def _base_vocab(
        cls, units: dict[int, int], spaces: set[int], options: dict[str, Any]
    ) -> tuple[list[str], dict[str, int], dict[int, int], int, dict[int, bytes]]:
        """(vocab, specials, unit -> id, end-of-word id or -1, id -> spelling bytes)."""
        raise NotImplementedError

    @classmethod
    def _spelling_str(cls, spelling: bytes) -> str:
        raise NotImplementedError

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        *,
        min_count: int = 2,
        use_core: bool = True,
        **options: Any,
    ) -> MergeTokenizer:
        """Learn merges from ``texts`` until the vocabulary has ``vocab_size`` entries.

        Args:
            texts: the corpus (each string is split into pieces on its own).
            vocab_size: total size, specials and base alphabet included.
            min_count: stop early when the most frequent pair is rarer than this.
            use_core: use the compiled core when built (``False`` forces the Python reference).
        """
        core = get_core() if use_core else None
        if core is not None:
            counter = core.WordCounter(cls.mode)
            for t in texts:
                counter.add(t)
            n_words = len(counter)
            units, spaces = counter.units(), set(counter.spaces())
        else:
            counts: Counter[str] = Counter()
            spaces = set()
            for t in texts:
                for piece, is_word in cls._split_for_training(t):
                    if is_word:
                        counts[piece] += 1
                    else:
                        spaces.update(map(ord, piece))
            n_words = len(counts)
            units = Counter()
            for w, c in counts.items():
                for u in cls._units_of(w):
                    units[u] += c
        if n_words == 0:
            raise TokenizerError(
                "the corpus is empty (it has no words to learn from); pass a text corpus."
            )
        vocab, specials, base, eow, spellings = cls._base_vocab(dict(units), spaces, options)
        num_new = vocab_size - len(vocab)
        if num_new < 0:
            raise TokenizerError(
                f"a vocabulary of {vocab_size} is smaller than the base alphabet of this corpus "
                f"({len(vocab)} symbols, specials included); use a vocabulary size of {len(vocab)} or more (vocab_size=, or --vocab-size)."
            )
        if core is not None:
            triples = counter.learn(base, eow, spellings, num_new, min_count)
        else:
            words = []
            for w in counts:
                symbols = [base[u] for u in cls._units_of(w)]
                words.append(symbols + ([eow] if eow >= 0 else []))
            triples = learn_merges_reference(
                words, list(counts.values()), dict(spellings), num_new, min_count
            )
        merges = []
        for a, b, new in triples:
            if new == len(vocab):
                vocab.append(vocab[a] + vocab[b])
            merges.append((vocab[a], vocab[b]))
        return cls(vocab, merges, specials, **cls._init_options(options))

    @classmethod
    def _split_for_training(cls, text: str) -> Iterator[tuple[str, bool]]:
        raise NotImplementedError

    @classmethod
    def _units_of(cls, word: str) -> list[int]:
        raise NotImplementedError

    @classmethod
    def _init_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {}

    # -- save format -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "vocab": self.vocab,
            "merges": [list(m) for m in self.merges],
            "special_tokens": self.special_tokens,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            **self._extra_fields(),
        }

    @classmethod
    def _from_dict_args(cls, data: dict[str, Any]) -> tuple[list, dict[str, Any]]:
        args = [list(data["vocab"]), [tuple(m) for m in data["merges"]], data["special_tokens"]]
        kwargs = {"bos_token": data.get("bos_token", BOS), "eos_token": data.get("eos_token", EOS)}
        return args, kwargs


def _rank(item: tuple[tuple[int, int], tuple[int, int]]) -> int:
    return item[1][0]
