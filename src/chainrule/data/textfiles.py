"""Plain-text corpus files: paths (files, directories, globs), ``.gz``, streamed UTF-8 decoding,
line splitting and re-cutting text at points no tokenizer joins across.

Files are decoded in chunks of :data:`CHUNK_BYTES`, so a file larger than memory can be read.
Bad input is reported in one sentence that names the file and the byte offset.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import os
import re
import stat
import sys
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from chainrule.errors import DataError

CHUNK_BYTES = 1 << 20  # bytes read (and decoded) at a time
CHUNK_CHARS = 1 << 20  # target size of the text chunks handed to tokenizers
_GLOB_CHARS = re.compile(r"[*?\[]")


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
        if str(pattern) == "-":
            raise DataError("standard input ('-') cannot be a corpus here, since a corpus is read "
                            "more than once; save the text to a file first and pass that.")
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
            if stat.S_ISFIFO(path.stat().st_mode) or stat.S_ISCHR(path.stat().st_mode):
                raise DataError(f"{str(path)!r} is a pipe or a device, and a corpus is read more "
                                "than once; save the text to a file first and pass that.")
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


# -- decoding ------------------------------------------------------------------------------------
def _open_binary(path: Path) -> IO[bytes]:
    if str(path) == "-":  # standard input, read once (a second pass would find it empty)
        return os.fdopen(os.dup(sys.stdin.fileno()), "rb")
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
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
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


def iter_text_pieces(path: str | os.PathLike, chunk_chars: int = CHUNK_CHARS) -> Iterator[str]:
    """The text of one file (``.gz`` decompressed) in pieces of about ``chunk_chars`` characters,
    cut only where no tokenizer here joins text across (see :func:`_rechunk`), so counting the
    characters or words of each piece adds up to the counts of the whole file."""
    return _rechunk(iter_text_chunks(path, min(chunk_chars, CHUNK_BYTES)), chunk_chars)


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

