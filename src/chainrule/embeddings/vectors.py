"""A table of word vectors, and the files it lives in.

:class:`WordVectors` is a vocabulary (words in a fixed order) and a float32 matrix, one row per
word. It reads and writes three formats, chosen by the file name unless ``format`` says:

- ``*.txt`` / ``*.vec`` -- word2vec's text format: a header line ``V D``, then one line per word,
  the word and its D numbers separated by spaces (what gensim's ``save_word2vec_format`` and
  fastText's ``.vec`` files hold). A file without the header is read too (GloVe's layout).
- ``*.bin`` -- word2vec's binary format: the same header line, then per word its UTF-8 bytes, a
  space, D little-endian float32s (and, as the original tool writes, a newline).
- ``*.safetensors`` -- the matrix as tensor ``vectors``, the words as JSON in the metadata.

A file whose rows disagree on the width is refused with the line (or entry) that breaks it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chainrule.errors import ConfigError, DataError
from chainrule.fileio import atomic_open, read_safetensors, require_file, write_safetensors

FORMATS = ("text", "binary", "safetensors")


def guess_format(path: str | os.PathLike) -> str:
    name = str(path).lower()
    if name.endswith(".bin"):
        return "binary"
    if name.endswith(".safetensors"):
        return "safetensors"
    return "text"


@dataclass
class WordVectors:
    """Words and their vectors: ``matrix[i]`` is the vector of ``words[i]``."""

    words: list[str]
    matrix: np.ndarray
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.matrix = np.ascontiguousarray(self.matrix, dtype=np.float32)
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.words):
            raise ConfigError(f"{len(self.words)} words need a ({len(self.words)}, D) matrix, "
                              f"got shape {tuple(self.matrix.shape)}.")
        self.index = {}
        for i, w in enumerate(self.words):
            self.index.setdefault(w, i)  # a repeated word keeps its first vector
        self._unit = None

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def vector(self, word: str) -> np.ndarray:
        if word not in self.index:
            raise ConfigError(f"{word!r} is not in the vocabulary of these vectors.")
        return self.matrix[self.index[word]]

    @property
    def unit(self) -> np.ndarray:
        """Rows scaled to length 1 (a zero row stays zero), computed once."""
        if self._unit is None:
            norms = np.linalg.norm(self.matrix, axis=1, keepdims=True)
            self._unit = self.matrix / np.maximum(norms, 1e-12)
        return self._unit

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words' vectors."""
        return float(self.unit[self.index[a]] @ self.unit[self.index[b]]) if (
            a in self and b in self) else self._missing([a, b])

    def _missing(self, words: Sequence[str]):
        absent = [w for w in words if w not in self]
        raise ConfigError(f"not in the vocabulary: {', '.join(map(repr, absent))}.")

    def neighbours(self, word_or_vector, k: int = 10,
                   exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """The ``k`` words nearest by cosine to a word (itself left out) or to a vector."""
        if isinstance(word_or_vector, str):
            if word_or_vector not in self:
                self._missing([word_or_vector])
            query = self.unit[self.index[word_or_vector]]
            exclude = {word_or_vector, *exclude}
        else:
            q = np.asarray(word_or_vector, dtype=np.float32)
            query = q / max(float(np.linalg.norm(q)), 1e-12)
        sims = self.unit @ query
        for w in exclude:
            if w in self.index:
                sims[self.index[w]] = -np.inf
        k = min(k, len(self.words))
        top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(self.words[i], float(sims[i])) for i in top if np.isfinite(sims[i])]

    def restrict(self, words: Iterable[str]) -> WordVectors:
        keep = [w for w in dict.fromkeys(words) if w in self.index]
        return WordVectors(keep, self.matrix[[self.index[w] for w in keep]])

    # ---- files -------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, format: str | None = None) -> Path:
        """Write in ``format`` (default: from the name, see the module docs), atomically."""
        format = format or guess_format(path)
        _check_format(format)
        path = Path(path)
        if format == "safetensors":
            import torch

            write_safetensors(path, {"vectors": torch.from_numpy(self.matrix)},
                              {"format": "chainrule-word-vectors", "words": json.dumps(self.words)})
            return path
        for w in self.words:
            if not w or any(c.isspace() for c in w):
                raise ConfigError(f"the word {w!r} is empty or contains white space, which the "
                                  f"word2vec {format} format cannot hold; save as .safetensors.")
        header = f"{len(self.words)} {self.dim}\n".encode()
        with atomic_open(path, "wb") as f:
            f.write(header)
            if format == "binary":
                data = self.matrix.astype("<f4")
                for w, row in zip(self.words, data, strict=True):
                    f.write(w.encode("utf-8") + b" " + row.tobytes() + b"\n")
            else:
                for w, row in zip(self.words, self.matrix, strict=True):
                    f.write((w + " " + " ".join(f"{x:.6g}" for x in row) + "\n").encode("utf-8"))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, format: str | None = None) -> WordVectors:
        """Read a vectors file (see the module docs for the formats)."""
        path = require_file(path, "vectors file")
        format = format or guess_format(path)
        _check_format(format)
        if format == "safetensors":
            return _load_safetensors(path)
        if format == "binary":
            return _load_binary(path)
        return _load_text(path)


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise ConfigError(f"unknown vectors format {format!r}; use one of {', '.join(FORMATS)}.")


def _load_text(path: Path) -> WordVectors:
    words, rows, dim, declared = [], [], None, None
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise DataError(f"{str(path)!r} line {lineno} is not UTF-8; is it a binary "
                                "word2vec file (name it .bin or pass --format binary)?") from None
            parts = line.rstrip().split(" ")
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                declared = (int(parts[0]), int(parts[1]))
                dim = declared[1]
                continue
            if not line.strip():
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise DataError(f"{str(path)!r} line {lineno} has {len(parts) - 1} numbers where "
                                f"the file's vectors have {dim}; the file is inconsistent or "
                                "truncated.")
            try:
                rows.append(np.array(parts[1:], dtype=np.float32))
            except ValueError:
                raise DataError(f"{str(path)!r} line {lineno} has a value that is not a number; "
                                "each line must be a word and its numbers.") from None
            words.append(parts[0])
    if not words:
        raise DataError(f"{str(path)!r} holds no vectors.")
    if declared and declared[0] != len(words):
        raise DataError(f"{str(path)!r} declares {declared[0]} words in its header but holds "
                        f"{len(words)}; the file is truncated or inconsistent.")
    return WordVectors(words, np.stack(rows))


def _load_binary(path: Path) -> WordVectors:
    data = path.read_bytes()
    end = data.find(b"\n")
    try:
        n, dim = (int(x) for x in data[:end].split())
    except ValueError:
        raise DataError(f"{str(path)!r} does not start with a 'V D' header line; it is not a "
                        "word2vec binary file.") from None
    words, rows, pos, width = [], np.empty((n, dim), np.float32), end + 1, 4 * dim
    for i in range(n):
        while pos < len(data) and data[pos:pos + 1] in (b"\n", b" "):
            pos += 1
        space = data.find(b" ", pos)
        if space < 0 or space + 1 + width > len(data):
            raise DataError(f"{str(path)!r} entry {i + 1} (after the header) is cut short: the "
                            f"header promises {n} vectors of {dim} floats; the file is truncated "
                            "or its dimensions are inconsistent.")
        word = data[pos:space].decode("utf-8", errors="replace")
        rows[i] = np.frombuffer(data, "<f4", dim, space + 1)
        words.append(word)
        pos = space + 1 + width
    if data[pos:].strip():
        raise DataError(f"{str(path)!r} has bytes left after the {n} vectors its header "
                        f"declares (entry {n + 1}); its dimensions are inconsistent.")
    return WordVectors(words, rows)


def _load_safetensors(path: Path) -> WordVectors:
    from safetensors import safe_open

    tensors = read_safetensors(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "vectors" not in tensors or "words" not in meta:
        raise DataError(f"{str(path)!r} is a safetensors file but not chainrule word vectors "
                        "(it needs a 'vectors' tensor and 'words' metadata).")
    words = json.loads(meta["words"])
    matrix = tensors["vectors"].float().numpy()
    if matrix.ndim != 2 or len(words) != matrix.shape[0]:
        raise DataError(f"{str(path)!r} holds {len(words)} words but a matrix of shape "
                        f"{tuple(matrix.shape)}; the file is inconsistent.")
    return WordVectors(words, matrix)


__all__ = ["FORMATS", "WordVectors", "guess_format"]
