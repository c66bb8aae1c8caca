"""Corpus readers: plain text (file, directory, glob, ``.gz``), JSONL with a named field, and the
NLTK tagged format (``word/TAG``, e.g. the Brown corpus read straight from NLTK's zip).

This module holds the three views of a corpus over every format; the formats themselves live in
:mod:`.textfiles` (paths, decoding, lines), :mod:`.jsonl` and :mod:`.nltk_tagged`, and their
public names are re-exported here.

Everything streams: files are decoded in chunks of :data:`CHUNK_BYTES`, so a corpus larger than
memory can be read. Every reader names the file (and byte offset or line) of bad input.

Three views of a corpus, all in corpus order:

* **documents** -- a text file, one JSONL record, or one NLTK member file (``ca01``);
* **sentences** -- the non-blank lines of the documents (NLTK: one sentence per non-blank line,
  its words joined by single spaces, tags dropped);
* **stream text** -- the documents concatenated, each followed by ``"\\n"`` unless it already
  ends with one (for one text file that ends in a newline: exactly the file's contents).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from chainrule.errors import ConfigError, DataError

from .jsonl import JSONL_SUFFIXES, iter_jsonl_field
from .nltk_tagged import nltk_members, nltk_sentences, read_nltk_tagged
from .textfiles import (
    CHUNK_BYTES,
    CHUNK_CHARS,
    _decode_stream,  # noqa: F401  (re-exported: tests and callers import it from here)
    _rechunk,
    _split_lines,
    iter_lines,
    iter_text_chunks,
    iter_text_pieces,
    read_text,
    resolve_paths,
)

FORMATS = ("auto", "text", "jsonl", "nltk")


class Chunk(NamedTuple):
    """A piece of one document.

    Attributes:
        doc: running index of the document in the corpus (0, 1, ...).
        source: where it comes from (``path``, ``path:member`` or ``path:line``).
        text: the text; documents are cut only where tokenizers cannot join across.
        last: whether this is the document's final chunk.
    """

    doc: int
    source: str
    text: str
    last: bool


def detect_format(path: Path) -> str:
    """``"nltk"`` for a ``.zip``, ``"jsonl"`` for ``.jsonl``/``.ndjson`` (optionally ``.gz``),
    otherwise ``"text"``."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return "nltk"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    return "text"


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise ConfigError(f"unknown corpus format {format!r}; use one of {', '.join(FORMATS)}.")


# -- the three views -----------------------------------------------------------------------------
def _raw_documents(
    paths: list[Path], format: str, field: str, chunk_chars: int
) -> Iterator[tuple[str, Iterator[str]]]:
    """(source, text pieces) of each document, in corpus order."""
    _check_format(format)
    for path in paths:
        fmt = detect_format(path) if format == "auto" else format
        if fmt != "nltk" and path.name.lower().endswith(".zip"):
            raise DataError(
                f"{str(path)!r} is a zip archive; read an NLTK tagged corpus with --format nltk."
            )
        if fmt == "text":
            yield str(path), _rechunk(iter_text_chunks(path, min(chunk_chars, CHUNK_BYTES)), chunk_chars)
        elif fmt == "jsonl":
            for i, value in enumerate(iter_jsonl_field(path, field)):
                yield f"{path}:{i + 1}", _rechunk([value], chunk_chars)
        else:
            for source, chunks in nltk_members(path):
                lines = (" ".join(s) + "\n" for s in nltk_sentences(source, chunks))
                yield source, _rechunk(lines, chunk_chars)


def _empty_corpus(paths: list[Path]) -> DataError:
    names = ", ".join(repr(str(p)) for p in paths[:3]) + (" ..." if len(paths) > 3 else "")
    return DataError(f"the corpus ({names}) is empty; pass files that contain text.")


def iter_chunks(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    format: str = "auto",
    field: str = "text",
    *,
    chunk_chars: int = CHUNK_CHARS,
) -> Iterator[Chunk]:
    """Every document of the corpus as a sequence of :class:`Chunk` (bounded memory).

    An empty document yields one chunk with empty text, so every document is seen.

    Raises:
        DataError: bad paths, files, encoding, JSONL records, or a corpus without any text.
    """
    files = resolve_paths(paths)
    has_text = False
    documents = _raw_documents(files, format, field, chunk_chars)
    for doc, (source, pieces) in enumerate(documents):
        prev = None
        for piece in pieces:
            if prev is not None:
                yield Chunk(doc, source, prev, False)
            prev = piece
            if not has_text and piece.strip():
                has_text = True
        yield Chunk(doc, source, prev or "", True)
    if not has_text:
        raise _empty_corpus(files)


def iter_documents(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    format: str = "auto",
    field: str = "text",
) -> Iterator[str]:
    """The text of each document: a text file, a JSONL record's ``field``, or an NLTK file
    (one sentence per line, words separated by spaces). Each document is held in memory whole;
    use :func:`iter_chunks` for documents larger than memory."""
    parts: list[str] = []
    for chunk in iter_chunks(paths, format, field):
        parts.append(chunk.text)
        if chunk.last:
            yield "".join(parts)
            parts = []


def iter_sentences(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    format: str = "auto",
    field: str = "text",
    *,
    chunk_chars: int = CHUNK_CHARS,
    universal: bool = False,
) -> Iterator[str]:
    """The non-blank lines of the corpus (NLTK: sentences, words joined by single spaces).

    Lines split at ``"\\n"`` (a trailing ``"\\r"`` is dropped), or with ``universal=True`` at
    every line boundary of ``str.splitlines`` (also ``\\r``, ``\\x0c``, ``\\u2028``, ...), as
    the neural models' ``boundaries=lines`` does. Streams line by line, reading ``chunk_chars``
    bytes at a time.
    """
    files = resolve_paths(paths)
    _check_format(format)
    seen = False
    for path in files:
        fmt = detect_format(path) if format == "auto" else format
        if fmt == "nltk":
            lines: Iterable[str] = (" ".join(s) for s in read_nltk_tagged(path))
        elif fmt == "jsonl":
            lines = (line for value in iter_jsonl_field(path, field)
                     for line in (value.splitlines() if universal else value.split("\n")))
        else:
            if path.name.lower().endswith(".zip"):
                raise DataError(
                    f"{str(path)!r} is a zip archive; read an NLTK tagged corpus with --format nltk."
                )
            lines = _split_lines(iter_text_chunks(path, min(chunk_chars, CHUNK_BYTES)),
                                 universal=universal)
        for line in lines:
            if line.strip():
                seen = True
                yield line.removesuffix("\r")
    if not seen:
        raise _empty_corpus(files)


def iter_stream_text(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    format: str = "auto",
    field: str = "text",
    *,
    chunk_chars: int = CHUNK_CHARS,
) -> Iterator[str]:
    """The corpus as one text, in pieces: documents concatenated, each followed by ``"\\n"``
    unless it already ends with one."""
    for chunk in iter_chunks(paths, format, field, chunk_chars=chunk_chars):
        text = chunk.text
        if chunk.last and not text.endswith("\n"):
            text += "\n"
        yield text


__all__ = [
    "CHUNK_BYTES",
    "CHUNK_CHARS",
    "FORMATS",
    "Chunk",
    "detect_format",
    "iter_chunks",
    "iter_documents",
    "iter_lines",
    "iter_sentences",
    "iter_stream_text",
    "iter_text_chunks",
    "iter_text_pieces",
    "read_nltk_tagged",
    "read_text",
    "resolve_paths",
]
