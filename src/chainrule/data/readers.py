"""Corpus readers: plain text (file, directory, glob, ``.gz``), JSONL with a named field, and the
NLTK tagged format (``word/TAG``, e.g. the Brown corpus read straight from NLTK's zip).

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

import codecs
import glob
import gzip
import json
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, NamedTuple

from chainrule.errors import ConfigError, DataError

CHUNK_BYTES = 1 << 20  # bytes read (and decoded) at a time
CHUNK_CHARS = 1 << 20  # target size of the text chunks handed to tokenizers
FORMATS = ("auto", "text", "jsonl", "nltk")

# files in an NLTK corpus directory or zip that hold metadata, not text
_NLTK_METADATA = {"readme", "contents", "cats.txt", "cats.csv", "license", "fileids"}
_JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
_GLOB_CHARS = re.compile(r"[*?\[]")


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


# -- paths ---------------------------------------------------------------------------------------
def _is_binary_file(path: Path) -> bool:
    try:
        with _open_binary(path) as f:
            return b"\x00" in f.read(8192)
    except (OSError, EOFError, DataError):
        return True


def resolve_paths(patterns: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files, directories and glob patterns into a sorted, de-duplicated file list.

    A file is taken as given. A directory contributes every regular file below it (recursively,
    sorted by path, hidden files and binary-looking files skipped). A pattern with ``*``, ``?`` or
    ``[`` is globbed (``**`` recurses). Example: ``resolve_paths(["a.txt", "books/", "*.gz"])``.

    Raises:
        DataError: a path does not exist, a pattern matches nothing, or no file was found.
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    out: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)

    for pattern in patterns:
        path = Path(pattern)
        if path.is_file():
            add(path)
        elif path.is_dir():
            files = sorted(
                p for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            for p in files:
                if p.suffix == ".zip" or not _is_binary_file(p):
                    add(p)
        elif path.exists():
            raise DataError(f"{str(path)!r} is not a regular file or directory; pass text files.")
        elif _GLOB_CHARS.search(str(pattern)):
            matches = sorted(Path(m) for m in glob.glob(str(pattern), recursive=True))
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise DataError(f"the pattern {str(pattern)!r} matches no files; check it.")
            for p in matches:
                add(p)
        else:
            raise DataError(f"corpus file {str(path)!r} does not exist; check the path.")
    if not out:
        raise DataError("no corpus files were found; pass text files, directories or patterns.")
    return out


def detect_format(path: Path) -> str:
    """``"nltk"`` for a ``.zip``, ``"jsonl"`` for ``.jsonl``/``.ndjson`` (optionally ``.gz``),
    otherwise ``"text"``."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return "nltk"
    if name.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    return "text"


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise ConfigError(f"unknown corpus format {format!r}; use one of {', '.join(FORMATS)}.")


# -- decoding ------------------------------------------------------------------------------------
def _open_binary(path: Path) -> IO[bytes]:
    if not path.exists():
        raise DataError(f"corpus file {str(path)!r} does not exist; check the path.")
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a directory; pass the text files inside it.")
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _decode_stream(f: IO[bytes], name: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """Decode a binary stream as UTF-8, chunk by chunk, naming the byte offset of bad input."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0  # bytes of the stream handed to the decoder so far
    while True:
        try:
            data = f.read(chunk_bytes)
        except (OSError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(
                f"{name} cannot be read ({e}); the file is corrupt or truncated."
            ) from None
        if b"\x00" in data:
            raise DataError(
                f"{name} looks like a binary file (NUL byte at offset {offset + data.index(0)}); "
                "pass a text corpus."
            )
        pending = len(decoder.getstate()[0])
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError as e:
            raise DataError(
                f"{name} is not valid UTF-8 (byte offset {offset - pending + e.start}); convert "
                "it to UTF-8, for example with `iconv -f latin1 -t utf-8`."
            ) from None
        offset += len(data)
        if text:
            yield text
        if not data:
            return


def iter_text_chunks(path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """The decoded text of one file (``.gz`` decompressed) in pieces of about ``chunk_bytes``."""
    path = Path(path)
    with _open_binary(path) as f:
        yield from _decode_stream(f, repr(str(path)), chunk_bytes)


def read_text(path: str | os.PathLike) -> str:
    """The whole text of one UTF-8 file (``.gz`` is decompressed)."""
    return "".join(iter_text_chunks(path))


def _split_lines(chunks: Iterable[str], *, universal: bool = False) -> Iterator[str]:
    """Lines of a chunked text, without line ends.

    ``universal=False`` splits at ``"\\n"`` and drops one trailing ``"\\r"`` (like ``wc -l``);
    ``universal=True`` splits like ``str.splitlines`` (also at ``\\r``, ``\\x0c``, ``\\u2028``...).
    """
    carry = ""
    for chunk in chunks:
        buf = carry + chunk
        if universal:
            parts = buf.splitlines(keepends=True)
            carry = ""
            # keep an unterminated tail, or a tail "\r" that a following "\n" may complete
            if parts and (parts[-1].splitlines()[0] == parts[-1] or parts[-1].endswith("\r")):
                carry = parts.pop()
            for p in parts:
                yield p.splitlines()[0]
        else:
            parts = buf.split("\n")
            carry = parts.pop()
            for p in parts:
                yield p.removesuffix("\r")
    if carry:
        yield carry.splitlines()[0] if universal else carry.removesuffix("\r")


def iter_lines(paths: Iterable[str | os.PathLike]) -> Iterator[str]:
    """Lines (without their line ends) of every file in ``paths``, in order, blank ones included.

    Lines end as in ``str.splitlines``. Files are streamed, so they may exceed memory.
    """
    for p in paths:
        yield from _split_lines(iter_text_chunks(p), universal=True)


def _rechunk(chunks: Iterable[str], target: int) -> Iterator[str]:
    """Re-cut decoded text into pieces of about ``target`` characters at safe points.

    Preferred cut: after a newline followed by a non-space (no tokenizer here -- char, word, BPE
    over words, GPT-2 pre-tokenisation -- joins text across it); else, once 4x ``target`` has
    piled up, after a space followed by a non-space; a hard cut only at 8x ``target``.
    """
    buf = ""
    for chunk in chunks:
        buf += chunk
        while len(buf) >= target:
            cut = _last_cut(buf, target)
            if cut is None:
                break
            yield buf[:cut]
            buf = buf[cut:]
    if buf:
        yield buf


def _last_cut(buf: str, target: int) -> int | None:
    end = min(len(buf), 2 * target)  # cut in the first 2x target characters
    for sep, min_len in (("\n", 0), (" ", 4 * target)):
        if len(buf) < min_len:
            return None
        i = buf.rfind(sep, 0, end - 1)
        while i >= 0:
            if not buf[i + 1].isspace():
                return i + 1
            i = buf.rfind(sep, 0, i)
    return target if len(buf) >= 8 * target else None


# -- JSONL and NLTK ------------------------------------------------------------------------------
def _iter_jsonl(path: Path, field: str) -> Iterator[str]:
    for lineno, line in enumerate(_split_lines(iter_text_chunks(path)), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{str(path)!r} line {lineno} is not valid JSON ({e.msg}); fix or remove that line."
            ) from None
        if not isinstance(record, dict) or field not in record:
            have = ", ".join(map(repr, record)) if isinstance(record, dict) else type(record).__name__
            raise DataError(
                f"{str(path)!r} line {lineno} has no field {field!r} (it has: {have}); "
                "name the text field with --field."
            )
        value = record[field]
        if not isinstance(value, str):
            raise DataError(
                f"{str(path)!r} line {lineno}: field {field!r} is not a string (it is "
                f"{type(value).__name__}); name a text field with --field."
            )
        yield value


def _nltk_members(path: Path) -> Iterator[tuple[str, Iterator[str]]]:
    """(name, decoded chunks) of each text member of an NLTK corpus zip, directory or file."""

    def wanted(name: str) -> bool:
        base = name.rsplit("/", 1)[-1]
        return bool(base) and not base.startswith(".") and base.lower() not in _NLTK_METADATA

    if path.name.lower().endswith(".zip"):
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{str(path)!r} is not a readable zip archive ({e}).") from None
        with archive:
            infos = sorted((i for i in archive.infolist() if not i.is_dir()), key=lambda i: i.filename)
            for info in infos:
                if wanted(info.filename):
                    name = f"{str(path)!r} member {info.filename!r}"
                    with archive.open(info) as f:
                        yield f"{path}:{info.filename}", _decode_stream(f, name)
    elif wanted(path.name):
        yield str(path), iter_text_chunks(path)


def _nltk_sentences(source: str, chunks: Iterator[str]) -> Iterator[list[str]]:
    for lineno, line in enumerate(_split_lines(chunks), start=1):
        tokens = line.split()
        if not tokens:
            continue
        words = []
        for tok in tokens:
            word, slash, _tag = tok.rpartition("/")
            if not slash or not word:
                raise DataError(
                    f"{source!r} line {lineno}: token {tok!r} is not word/TAG; is this really the "
                    "NLTK tagged format (--format nltk)?"
                )
            words.append(word)
        yield words


def read_nltk_tagged(path: str | os.PathLike) -> Iterator[list[str]]:
    """Words of each sentence of an NLTK tagged corpus (``word/TAG`` tokens), tags dropped.

    ``path`` is a zip (read in place, not extracted), a directory or one file. Members are read
    in sorted order; metadata files (README, CONTENTS, cats.txt) are skipped. Every non-blank line
    is one sentence (blank lines separate paragraphs). A word keeps any ``/`` before the last one:
    ``"1/2/cd"`` -> ``"1/2"``.

    Example: ``"The/at jury/nn ./."`` -> ``["The", "jury", "."]``.
    """
    for p in resolve_paths([path]):
        for source, chunks in _nltk_members(p):
            yield from _nltk_sentences(source, chunks)


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
            for i, value in enumerate(_iter_jsonl(path, field)):
                yield f"{path}:{i + 1}", _rechunk([value], chunk_chars)
        else:
            for source, chunks in _nltk_members(path):
                lines = (" ".join(s) + "\n" for s in _nltk_sentences(source, chunks))
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
) -> Iterator[str]:
    """The non-blank lines of the corpus (NLTK: sentences, words joined by single spaces).

    Lines split at ``"\\n"`` (a trailing ``"\\r"`` is dropped). Streams line by line, reading
    ``chunk_chars`` bytes at a time.
    """
    files = resolve_paths(paths)
    _check_format(format)
    seen = False
    for path in files:
        fmt = detect_format(path) if format == "auto" else format
        if fmt == "nltk":
            lines: Iterable[str] = (" ".join(s) for s in read_nltk_tagged(path))
        elif fmt == "jsonl":
            lines = (line for value in _iter_jsonl(path, field) for line in value.split("\n"))
        else:
            if path.name.lower().endswith(".zip"):
                raise DataError(
                    f"{str(path)!r} is a zip archive; read an NLTK tagged corpus with --format nltk."
                )
            lines = _split_lines(iter_text_chunks(path, min(chunk_chars, CHUNK_BYTES)))
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
