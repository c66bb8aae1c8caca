"""Byte-level BPE, as GPT-2: pieces from GPT-2's pattern, merges over their UTF-8 bytes.

Every string is some sequence of bytes and all 256 bytes are in the base vocabulary, so every
Unicode string round-trips and nothing is ever ``<unk>``. Tokens are stored as strings through
GPT-2's byte-to-unicode table (a space is ``Ġ``), which is also how GPT-2's ``encoder.json`` and
``vocab.bpe`` spell them; :meth:`ByteBPETokenizer.from_gpt2_files` reads those and then encodes
exactly as ``tiktoken``'s ``gpt2`` encoding does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from chainrule.errors import TokenizerError
from chainrule.fileio import read_json, require_file
from chainrule.tokenizers._mergebase import MergeTokenizer
from chainrule.tokenizers._pretok import GPT2_RE, bytes_to_unicode, unicode_to_bytes
from chainrule.tokenizers.base import BOS, EOS, PAD, register_tokenizer

GPT2_EOT = "<|endoftext|>"


@register_tokenizer
class ByteBPETokenizer(MergeTokenizer):
    """Byte-level BPE with GPT-2's pre-tokenisation.

    Example:
        >>> tok = ByteBPETokenizer.train(["hello world, hello!"], vocab_size=270)
        >>> tok.decode(tok.encode("héllo ☃"))
        'héllo ☃'
    """

    kind = "bytebpe"
    mode = 1

    def _base_map(self) -> dict[int, int]:
        return {b: self._ids[c] for b, c in bytes_to_unicode().items()}

    def _pieces(self, text: str) -> Iterator[tuple[str, bool]]:
        for piece in GPT2_RE.findall(text):
            yield piece, True

    def _units(self, piece: str) -> list[int]:
        return list(piece.encode("utf-8", "surrogatepass"))

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
        return cls(*args, **kwargs)

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
