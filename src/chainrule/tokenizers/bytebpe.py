"""Byte-level BPE, as GPT-2: pieces from GPT-2's pattern, merges over their UTF-8 bytes.

Every string is some sequence of bytes and all 256 bytes are in the base vocabulary, so every
Unicode string round-trips and nothing is ever ``<unk>``. Tokens are stored as strings through
GPT-2's byte-to-unicode table (a space is ``Ġ``), which is also how GPT-2's ``encoder.json`` and
``vocab.bpe`` spell them; :meth:`ByteBPETokenizer.from_gpt2_files` reads those and then encodes
exactly as ``tiktoken``'s ``gpt2`` encoding does.

Some vocabularies were learned on text whose digits were split apart first (SmolLM2, StarCoder:
Hugging Face's ``Digits(individual_digits=True)`` before ``ByteLevel``, llama.cpp's ``smollm``
pre-tokeniser). ``pretokenizer="gpt2-digits"`` reproduces that; it is stored in the saved JSON.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from chainrule.errors import TokenizerError
from chainrule.fileio import read_json, require_file
from chainrule.tokenizers._mergebase import MergeTokenizer
from chainrule.tokenizers._pretok import (
    GPT2_RE,
    bytes_to_unicode,
    digit_segments,
    unicode_to_bytes,
)
from chainrule.tokenizers.base import BOS, EOS, PAD, register_tokenizer

GPT2_EOT = "<|endoftext|>"

#: How byte-level BPE cuts text into pieces before merging (``ByteBPETokenizer(pretokenizer=)``).
PRETOKENIZERS = {
    "gpt2": "GPT-2's pattern (contractions, letter runs, number runs, other runs, spaces)",
    "gpt2-digits": "every numeric character (\\p{N}) a piece of its own, then GPT-2's pattern on "
                   "the text between (SmolLM2, StarCoder)",
}


@register_tokenizer
class ByteBPETokenizer(MergeTokenizer):
    """Byte-level BPE with GPT-2's pre-tokenisation (or another of :data:`PRETOKENIZERS`).

    Example:
        >>> tok = ByteBPETokenizer.train(["hello world, hello!"], vocab_size=270)
        >>> tok.decode(tok.encode("héllo ☃"))
        'héllo ☃'
    """

    kind = "bytebpe"
    mode = 1
    #: the Hugging Face pre-tokenizer steps before ``ByteLevel`` that each option reproduces
    HF_PRE_TOKENIZERS: ClassVar[dict[str, tuple[dict[str, Any], ...]]] = {
        "gpt2-digits": ({"type": "Digits", "individual_digits": True},),
    }

    def __init__(self, vocab: list[str], merges: Iterable[tuple[str, str]],
                 special_tokens: dict[str, int], *, pretokenizer: str = "gpt2", **kwargs: Any):
        if pretokenizer not in PRETOKENIZERS:
            raise TokenizerError(f"unknown byte-level pre-tokenisation {pretokenizer!r}; known: "
                                 f"{', '.join(PRETOKENIZERS)}.")
        self.pretokenizer = pretokenizer
        super().__init__(vocab, merges, special_tokens, **kwargs)

    def _base_map(self) -> dict[int, int]:
        # A vocabulary may lack a few byte symbols (SmolLM2 has no token for bytes 0x04, 0xF1,
        # ...); like Hugging Face's BPE and llama.cpp, those bytes are dropped before merging.
        base = {b: self._ids[c] for b, c in bytes_to_unicode().items() if c in self._ids}
        self._present = bytes(sorted(base)) if len(base) < 256 else None
        return base

    def _lacks_bytes(self, text: str) -> bool:
        """Whether ``text`` has a byte the vocabulary has no symbol for (only the Python
        path drops those exactly)."""
        return self._present is not None and bool(
            text.encode("utf-8", "surrogatepass").translate(None, self._present))

    def _pieces(self, text: str) -> Iterator[tuple[str, bool]]:
        segments = [text] if self.pretokenizer == "gpt2" else digit_segments(text)
        for segment in segments:
            for piece in GPT2_RE.findall(segment):
                yield piece, True

    def encode_ordinary(self, text: str) -> list[int]:
        if self._lacks_bytes(text):
            return self._encode_python(text)
        if self.pretokenizer == "gpt2":
            return super().encode_ordinary(text)
        # The compiled core splits with GPT-2's pattern only: cut the digits off here and let it
        # encode each run between them (GPT-2's pattern on a run alone is exactly this option).
        enc = self._encoder()
        if enc:
            out: list[int] = []
            try:
                for segment in digit_segments(text):
                    out.extend(enc.encode(segment).tolist())
                return out
            except UnicodeEncodeError:  # lone surrogates: only the Python path can carry them
                pass
        return self._encode_python(text)

    def encode_parallel(self, text: str, threads: int | None = None) -> np.ndarray:
        if self.pretokenizer == "gpt2" and not self._lacks_bytes(text):
            return super().encode_parallel(text, threads)
        return np.asarray(self.encode_ordinary(text), dtype=np.int32)

    def _extra_fields(self) -> dict[str, Any]:
        # GPT-2's (the default) is not written, so existing files and fingerprints stay as they are
        return {} if self.pretokenizer == "gpt2" else {"pretokenizer": self.pretokenizer}

    def _units(self, piece: str) -> list[int]:
        data = piece.encode("utf-8", "surrogatepass")
        if self._present is not None:
            return [b for b in data if b in self._base]
        return list(data)

    def token_bytes(self, idx: int) -> bytes:
        """The bytes of token ``idx`` (a special's spelling in UTF-8)."""
        tok = self.vocab[idx]
        if idx in self.special_tokens.values():
            return tok.encode("utf-8")
        table = unicode_to_bytes()
        return bytes(table[c] for c in tok)

    def decode(self, ids: Iterable[int], *, skip_special: bool = False) -> str:
        table = self._byte_table()
        specials = set(self.special_tokens.values()) if skip_special else ()
        data = b"".join(table[i] for i in ids if i not in specials)
        return data.decode("utf-8", "replace")

    def decode_with_offsets(self, ids: Iterable[int]) -> tuple[str, list[tuple[int, int]]]:
        """``decode(ids)`` and each token's character span ``[start, end)`` in it (linear).

        A token may end inside a multi-byte character. Its span then ends where the text
        decoded up to it stops agreeing with the whole text, so a character belongs to the
        token holding its last byte, and a token wholly inside one character gets an empty
        span: ``"aé"`` as the bytes ``a``, ``C3``, ``A9`` -> ``[(0, 1), (1, 1), (1, 2)]``. (The
        one exception follows from the same rule: a split U+FFFD, the character that a cut
        decodes to, goes to the token where the cut is.) Spans are monotone and tile the text.
        """
        ids = list(ids)
        table = self._byte_table()
        parts = [table[i] for i in ids]
        data = b"".join(parts)
        text = data.decode("utf-8", "replace")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:  # broken bytes: decode each prefix (slow, rare)
            return text, _spans_of_prefixes(parts, text)
        heads = self._heads()
        spans, start, chars, p, n = [], 0, 0, 0, len(data)
        for i, part in zip(ids, parts):
            p += len(part)
            chars += heads[i]  # characters begun so far
            if p < n and data[p] & 0xC0 == 0x80:  # the cut is inside a character
                s = p - 1
                while data[s] & 0xC0 == 0x80:
                    s -= 1
                k = chars - 1
                end = k + _agree(data[s:p].decode("utf-8", "replace"), text, k)
            else:
                end = chars
            end = max(end, start)
            spans.append((start, end))
            start = end
        return text, spans

    def _heads(self) -> list[int]:
        """For each id, how many of its bytes begin a UTF-8 character (are not 10xxxxxx)."""
        heads = getattr(self, "_head_counts", None)
        if heads is None:
            heads = self._head_counts = [sum(1 for b in t if b & 0xC0 != 0x80)
                                         for t in self._byte_table()]
        return heads

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        table = self._byte_table()
        return b"".join(table[i] for i in ids)

    def _byte_table(self) -> list[bytes]:
        table = getattr(self, "_bytes", None)
        if table is None:
            table = self._bytes = [self.token_bytes(i) for i in range(len(self.vocab))]
        return table

    # -- training ----------------------------------------------------------------------------
    @classmethod
    def _split_for_training(cls, text: str) -> Iterator[tuple[str, bool]]:
        for piece in GPT2_RE.findall(text):
            yield piece, True

    @classmethod
    def _units_of(cls, word: str) -> list[int]:
        return list(word.encode("utf-8", "surrogatepass"))

    @classmethod
    def _base_vocab(cls, units, spaces, options):
        b2u = bytes_to_unicode()
        vocab = [PAD, BOS, EOS] + [b2u[b] for b in range(256)]
        specials = {PAD: 0, BOS: 1, EOS: 2}
        base = {b: 3 + b for b in range(256)}
        spellings = {3 + b: bytes([b]) for b in range(256)}
        return vocab, specials, base, -1, spellings

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ByteBPETokenizer:
        args, kwargs = cls._from_dict_args(data)
        return cls(*args, pretokenizer=data.get("pretokenizer", "gpt2"), **kwargs)

    # -- GPT-2's own files --------------------------------------------------------------------
    @classmethod
    def from_gpt2_files(
        cls, encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike
    ) -> ByteBPETokenizer:
        """Load GPT-2's ``encoder.json`` (token -> id) and ``vocab.bpe`` (merges, in order).

        ``<|endoftext|>`` (id 50256) serves as both BOS and EOS, as in GPT-2.
        """
        encoder = read_json(encoder_json, what="GPT-2 encoder.json")
        if not isinstance(encoder, dict) or not all(isinstance(v, int) for v in encoder.values()):
            raise TokenizerError(
                f"{str(encoder_json)!r} is not GPT-2's encoder.json (a JSON object of token -> "
                "id); pass encoder.json first and vocab.bpe second."
            )
        path = require_file(vocab_bpe, "GPT-2 vocab.bpe")
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise TokenizerError(
                f"{str(path)!r} is not GPT-2's vocab.bpe (bad UTF-8 at byte {e.start})."
            ) from None
        merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#v")]
        if any(len(m) != 2 for m in merges):
            raise TokenizerError(
                f"{str(path)!r} is not GPT-2's vocab.bpe (each line should hold two tokens)."
            )
        vocab = [""] * len(encoder)
        for tok, i in encoder.items():
            if not 0 <= i < len(vocab) or vocab[i]:
                raise TokenizerError(f"{str(encoder_json)!r} has a gap or duplicate at id {i}.")
            vocab[i] = tok
        specials = {GPT2_EOT: encoder[GPT2_EOT]} if GPT2_EOT in encoder else {}
        try:
            return cls(vocab, merges, specials, bos_token=GPT2_EOT, eos_token=GPT2_EOT)
        except KeyError as e:
            raise TokenizerError(
                f"{str(path)!r} merges a token {e} that {str(encoder_json)!r} does not define; "
                "the two files are not from the same tokenizer."
            ) from None


def _agree(piece: str, text: str, at: int) -> int:
    """How many leading characters of ``piece`` equal ``text`` from ``at`` on."""
    k = 0
    while k < len(piece) and at + k < len(text) and piece[k] == text[at + k]:
        k += 1
    return k


def _spans_of_prefixes(parts: list[bytes], text: str) -> list[tuple[int, int]]:
    """Spans by decoding every prefix of the bytes (for bytes that are not valid UTF-8)."""
    spans, start, data = [], 0, b""
    for part in parts:
        data += part
        end = max(_agree(data.decode("utf-8", "replace"), text, 0), start)
        spans.append((start, end))
        start = end
    return spans
