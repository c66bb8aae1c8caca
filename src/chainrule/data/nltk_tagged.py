"""The NLTK tagged corpus format: ``word/TAG`` tokens, one sentence per line, read from a zip
(in place, not extracted), a directory or one file -- for example NLTK's Brown corpus."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

from chainrule.errors import DataError

from .textfiles import _decode_stream, _split_lines, iter_text_chunks, resolve_paths

# files in an NLTK corpus directory or zip that hold metadata, not text
_NLTK_METADATA = {"readme", "contents", "cats.txt", "cats.csv", "license", "fileids"}


def nltk_members(path: Path) -> Iterator[tuple[str, Iterator[str]]]:
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


def nltk_sentences(source: str, chunks: Iterator[str]) -> Iterator[list[str]]:
    """Words of each non-blank line of one member (``source`` names it in errors)."""
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
        for source, chunks in nltk_members(p):
            yield from nltk_sentences(source, chunks)
