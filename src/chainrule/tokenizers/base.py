"""The tokenizer interface, its versioned JSON save format, and loading by kind.

Every tokenizer maps text to ids and back. Special tokens (BOS, EOS, PAD, UNK and any the user
adds) have fixed ids, are never split, and are only recognised inside ordinary text when the
caller asks for it (``allow_special=True``); otherwise their spelling is encoded as plain text.

On disk a tokenizer is one JSON object::

    {"format": "chainrule-tokenizer", "version": 1, "kind": "bpe", ...kind-specific fields}
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from chainrule.errors import TokenizerError
from chainrule.fileio import read_json, write_json

TOKENIZER_FORMAT = "chainrule-tokenizer"
TOKENIZER_FORMAT_VERSION = 1

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
#: ids 0-3 of the char and word tokenizers, in this order
SPECIALS = (PAD, UNK, BOS, EOS)


class Tokenizer(abc.ABC):
    """Base class. Subclasses set ``kind`` and implement the abstract methods.

    Attributes:
        special_tokens: spelling -> id of every special token.
        bos_id / eos_id / pad_id / unk_id: ids of the standard specials (``None`` if absent).
    """

    kind: ClassVar[str] = ""
    special_tokens: dict[str, int]
    # which special spells BOS / EOS (GPT-2 uses "<|endoftext|>" for both)
    bos_token: str = BOS
    eos_token: str = EOS

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int: ...

    def __call__(self, text: str, *, allow_special: bool = False) -> list[int]:
        """``tokenizer(text)`` is ``tokenizer.encode(text)``, as in the ecosystem."""
        return self.encode(text, allow_special=allow_special)

    def encode(self, text: str, *, allow_special: bool = False) -> list[int]:
        """Text -> ids. With ``allow_special``, special-token spellings in ``text`` map to them."""
        out: list[int] = []
        for segment, sid in self.split_specials(text, allow_special):
            if sid is not None:
                out.append(sid)
            else:
                out.extend(self.encode_ordinary(segment))
        return out

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` with every special spelling treated as plain text (each kind's own)."""
        raise NotImplementedError(f"{type(self).__name__} must implement encode_ordinary")

    @abc.abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; ``decode(encode(t)) == t`` whenever no token is ``<unk>``."""

    @abc.abstractmethod
    def id_to_token(self, idx: int) -> str:
        """The vocabulary entry of ``idx`` (its internal spelling)."""

    @abc.abstractmethod
    def token_to_id(self, token: str) -> int | None: ...

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Kind-specific fields of the save format (without format/version/kind)."""

    @classmethod
    @abc.abstractmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer: ...

    # -- shared behaviour --------------------------------------------------------------------
    def encode_batch(self, texts: Sequence[str], **kwargs: Any) -> list[list[int]]:
        return [self.encode(t, **kwargs) for t in texts]

    @property
    def bos_id(self) -> int | None:
        return self.special_tokens.get(self.bos_token)

    @property
    def eos_id(self) -> int | None:
        return self.special_tokens.get(self.eos_token)

    @property
    def pad_id(self) -> int | None:
        return self.special_tokens.get(PAD)

    @property
    def unk_id(self) -> int | None:
        return self.special_tokens.get(UNK)

    def split_specials(self, text: str, allow_special: bool) -> list[tuple[str, int | None]]:
        """``text`` as ``(segment, None)`` and ``(spelling, id)`` parts, longest special first.

        Without ``allow_special`` the whole text is one ordinary segment.
        Example: ``"a<s>b"`` -> ``[("a", None), ("<s>", 2), ("b", None)]``.
        """
        if not allow_special or not self.special_tokens:
            return [(text, None)]
        alternatives = sorted(self.special_tokens, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(t) for t in alternatives))
        parts: list[tuple[str, int | None]] = []
        pos = 0
        for m in pattern.finditer(text):
            if m.start() > pos:
                parts.append((text[pos : m.start()], None))
            parts.append((m.group(), self.special_tokens[m.group()]))
            pos = m.end()
        if pos < len(text):
            parts.append((text[pos:], None))
        return parts

    def serialise(self) -> dict[str, Any]:
        return {
            "format": TOKENIZER_FORMAT,
            "version": TOKENIZER_FORMAT_VERSION,
            "kind": self.kind,
            **self.to_dict(),
        }

    def fingerprint(self) -> str:
        """A hash of the tokenizer's content: equal fingerprints encode identically."""
        blob = json.dumps(self.serialise(), sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        write_json(path, self.serialise(), indent=None)
        return path


_KINDS: dict[str, type[Tokenizer]] = {}


def tiled(pieces: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """``("".join(pieces), spans)``: each piece's character span ``[start, end)`` in the joined
    text, back to back (what ``decode_with_offsets`` returns when every token adds one piece).

    Example: ``tiled(["low", " new", "er"])`` -> ``("low newer", [(0, 3), (3, 7), (7, 9)])``.
    """
    spans, pos = [], 0
    for piece in pieces:
        spans.append((pos, pos + len(piece)))
        pos += len(piece)
    return "".join(pieces), spans


def unencodable(tokenizer: Tokenizer, text: str) -> tuple[list[str], list[str]]:
    """The whitespace words of ``text`` that become ``<unk>``, and (for char tokenizers) the
    characters that do. Both lists are in order of first appearance, without repeats."""
    unk = tokenizer.unk_id
    if unk is None:
        return [], []
    words = list(dict.fromkeys(w for w in text.split() if unk in tokenizer.encode(w)))
    chars: list[str] = []
    if getattr(tokenizer, "kind", "") == "char":
        chars = list(dict.fromkeys(c for c in text if unk in tokenizer.encode(c)))
    return words, chars


def register_tokenizer(cls: type[Tokenizer]) -> type[Tokenizer]:
    """Class decorator: make :func:`load_tokenizer` able to read files of ``cls.kind``."""
    _KINDS[cls.kind] = cls
    return cls


def tokenizer_from_dict(data: Any, *, source: str = "tokenizer") -> Tokenizer:
    """Rebuild a tokenizer from its save-format dict, checking format, version and kind."""
    import chainrule.tokenizers  # noqa: F401  (registers the built-in kinds)

    if not isinstance(data, dict) or data.get("format") != TOKENIZER_FORMAT:
        hint = ""
        if isinstance(data, dict) and "model" in data and "pre_tokenizer" in data:
            hint = " It looks like a Hugging Face tokenizer.json; chainrule writes those with "
            hint += "`export-hf` but does not read them."
        raise TokenizerError(
            f"{source} is not a chainrule tokenizer file.{hint} Train one with "
            "`chainrule tokenizer train` or import GPT-2's files with `chainrule tokenizer import`."
        )
    version = data.get("version")
    if version != TOKENIZER_FORMAT_VERSION:
        raise TokenizerError(
            f"{source} has tokenizer format version {version!r}, but this chainrule reads version "
            f"{TOKENIZER_FORMAT_VERSION}; upgrade chainrule or retrain the tokenizer."
        )
    kind = data.get("kind")
    if kind not in _KINDS:
        raise TokenizerError(
            f"{source} is a tokenizer of unknown kind {kind!r}; known kinds: "
            f"{', '.join(sorted(_KINDS))}."
        )
    try:
        return _KINDS[kind].from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        raise TokenizerError(f"{source} is corrupt ({type(e).__name__}: {e}); retrain it.") from None


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load a tokenizer saved by :meth:`Tokenizer.save` (or a model directory holding one, or a
    one-file model such as ``chainrule ngram binarize`` writes, which stores it in its header)."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(9)
        if len(head) == 9 and head[8:] == b"{" and head[:1] != b"{":  # a safetensors header
            from chainrule.fileio import read_safetensors_header

            try:
                data = json.loads(read_safetensors_header(path)[0].get("tokenizer", ""))
            except ValueError:
                data = None
            return tokenizer_from_dict(data, source=f"the tokenizer stored in {str(path)!r}")
    data = read_json(path, what="tokenizer file")
    return tokenizer_from_dict(data, source=f"{str(path)!r}")


__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "SPECIALS",
    "UNK",
    "Tokenizer",
    "load_tokenizer",
    "register_tokenizer",
    "tiled",
    "tokenizer_from_dict",
    "unencodable",
]
