"""Corpus readers. Every reader names the file and byte offset of bad input."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from chainrule.errors import DataError


def _decode(data: bytes, path: Path) -> str:
    if b"\x00" in data[:65536]:
        raise DataError(
            f"{str(path)!r} looks like a binary file (it contains NUL bytes); pass a text corpus."
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{str(path)!r} is not valid UTF-8 (byte offset {e.start}); convert it to UTF-8, "
            "for example with `iconv -f latin1 -t utf-8`."
        ) from None


def read_text(path: str | os.PathLike) -> str:
    """The whole text of one UTF-8 file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"corpus file {str(path)!r} does not exist; check the path.")
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a directory; pass the text files inside it.")
    return _decode(path.read_bytes(), path)


def iter_lines(paths: Iterable[str | os.PathLike]) -> Iterator[str]:
    """Lines (without their newline) of every file in ``paths``, in order."""
    for p in paths:
        yield from read_text(p).splitlines()
