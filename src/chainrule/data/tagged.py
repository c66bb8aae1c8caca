"""Tagged sentences (``word/TAG`` tokens, one sentence per line) with their tags and files.

:mod:`chainrule.data.nltk_tagged` reads the words for language modelling; this reads the tags
too, for probing and tagging, and keeps each sentence's file so a corpus can be split by file.

Brown's tags carry suffixes (``nn-tl`` in a title, ``vbd-hl`` in a headline, ``fw-`` foreign
words); ``coarse=True`` keeps the part before the first ``-`` (``nn-tl`` -> ``nn``; ``--``, the
dash's own tag, stays), the usual reduction to Brown's 80-odd base tags.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chainrule.data.nltk_tagged import nltk_members
from chainrule.data.textfiles import _split_lines, resolve_paths
from chainrule.errors import DataError


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence: its ``words``, their ``tags``, and the ``file`` it comes from."""

    words: tuple[str, ...]
    tags: tuple[str, ...]
    file: str


def coarse_tag(tag: str) -> str:
    """``"nn-tl"`` -> ``"nn"``; ``"--"`` -> ``"--"``; ``"fw-in"`` -> ``"fw"``."""
    return tag.split("-")[0] or tag


def read_tagged(path: str | os.PathLike, *, coarse: bool = True,
                limit: int | None = None) -> list[TaggedSentence]:
    """Tagged sentences of an NLTK corpus zip, a directory or files (at most ``limit``).

    Raises:
        DataError: a token without ``/TAG`` (one sentence naming the file and line), or no
            sentence at all.
    """
    out: list[TaggedSentence] = []
    for p in resolve_paths([path]):
        for source, chunks in nltk_members(Path(p)):
            for sent in _sentences(source, chunks, coarse):
                out.append(sent)
                if limit is not None and len(out) >= limit:
                    return out
    if not out:
        raise DataError(f"{str(path)!r} holds no tagged sentence; pass a corpus of word/TAG "
                        "tokens, one sentence per line.")
    return out


def _sentences(source: str, chunks: Iterator[str], coarse: bool) -> Iterator[TaggedSentence]:
    for lineno, line in enumerate(_split_lines(chunks), start=1):
        words, tags = [], []
        for tok in line.split():
            word, slash, tag = tok.rpartition("/")
            if not slash or not word or not tag:
                raise DataError(f"{source} line {lineno}: token {tok!r} has no /TAG; a tagged "
                                "corpus writes every token as word/TAG.")
            words.append(word)
            tags.append(coarse_tag(tag) if coarse else tag)
        if words:
            yield TaggedSentence(tuple(words), tuple(tags), source)


def split_by_file(sentences: list[TaggedSentence], every: int = 10
                  ) -> tuple[list[TaggedSentence], list[TaggedSentence]]:
    """(train, test): the sentences of every ``every``-th file (in sorted order) are the test."""
    files = sorted({s.file for s in sentences})
    test_files = set(files[every - 1 :: every]) or {files[-1]}
    if len(files) < 2:
        raise DataError("splitting by file needs a corpus of at least two files.")
    return ([s for s in sentences if s.file not in test_files],
            [s for s in sentences if s.file in test_files])


__all__ = ["TaggedSentence", "coarse_tag", "read_tagged", "split_by_file"]
