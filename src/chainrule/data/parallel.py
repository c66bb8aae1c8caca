"""Parallel corpora: sentence pairs (source, target) for translation.

Three layouts, each UTF-8 (``.gz`` is decompressed):

* two aligned files, line i of one translating line i of the other (``train.de`` /
  ``train.en``); files with different line counts are refused, naming both counts;
* one TSV file: ``source<TAB>target`` per line;
* one JSONL file: an object per line with two string fields (``source`` and ``target`` by
  default; ``fields=("de", "en")`` picks others).

An empty source or target line is refused with its line number (it would teach the model to
translate nothing into something). :func:`filter_by_length` drops pairs whose tokenised sides
are too long, the usual length filter before training.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from chainrule.data.textfiles import read_text
from chainrule.errors import DataError

Pair = tuple[str, str]


def read_lines(path: str | os.PathLike) -> list[str]:
    """Lines of a text file split at ``\\n`` only (so pairs stay aligned), without ``\\r``."""
    text = read_text(Path(path))
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _check_nonempty(pairs: list[Pair], where: Sequence[str]) -> None:
    for i, (s, t) in enumerate(pairs):
        for side, text, name in (("source", s, where[0]), ("target", t, where[-1])):
            if not text.strip():
                raise DataError(f"line {i + 1} of {name} has an empty {side} sentence; remove "
                                "the pair or fill it in (every source needs a translation).")


def read_parallel(source: str | os.PathLike, target: str | os.PathLike | None = None, *,
                  fields: tuple[str, str] = ("source", "target")) -> list[Pair]:
    """Sentence pairs from two aligned files, or from one TSV / JSONL file (``target=None``).

    Raises:
        DataError: misaligned files (with both line counts), a malformed TSV/JSONL line, an
            empty source or target sentence, or no pairs at all.
    """
    if target is not None:
        src, tgt = read_lines(source), read_lines(target)
        if len(src) != len(tgt):
            raise DataError(f"the source {str(source)!r} has {len(src)} lines but the target "
                            f"{str(target)!r} has {len(tgt)}; parallel files must be aligned "
                            "line by line.")
        pairs = [(s.strip(), t.strip()) for s, t in zip(src, tgt)]
        where = (repr(str(source)), repr(str(target)))
    else:
        name = str(source).removesuffix(".gz")
        pairs = (_read_jsonl(source, fields) if name.endswith((".jsonl", ".json"))
                 else _read_tsv(source))
        where = (repr(str(source)),)
    if not pairs:
        raise DataError(f"{where[0]} holds no sentence pairs; pass a non-empty parallel corpus.")
    _check_nonempty(pairs, where)
    return pairs


def _read_tsv(path: str | os.PathLike) -> list[Pair]:
    out = []
    for i, line in enumerate(read_lines(path)):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(f"line {i + 1} of {str(path)!r} has {len(parts)} tab-separated "
                            "fields; a TSV parallel corpus has two (source<TAB>target).")
        out.append((parts[0].strip(), parts[1].strip()))
    return out


def _read_jsonl(path: str | os.PathLike, fields: tuple[str, str]) -> list[Pair]:
    out = []
    for i, line in enumerate(read_lines(path)):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise DataError(f"line {i + 1} of {str(path)!r} is not valid JSON; a JSONL parallel "
                            "corpus has one object per line.") from None
        if not isinstance(obj, dict) or not all(isinstance(obj.get(f), str) for f in fields):
            raise DataError(f"line {i + 1} of {str(path)!r} lacks the string fields "
                            f"{fields[0]!r} and {fields[1]!r}; name the fields with "
                            "--fields SRC,TGT.")
        out.append((obj[fields[0]].strip(), obj[fields[1]].strip()))
    return out


def filter_by_length(pairs: Sequence[Pair], encode_source: Callable[[str], list[int]],
                     encode_target: Callable[[str], list[int]], max_source: int,
                     max_target: int) -> tuple[list[tuple[list[int], list[int]]], int]:
    """Encode both sides; keep pairs with at most ``max_source`` / ``max_target`` tokens.

    Returns the kept (source ids, target ids) pairs and how many were dropped.
    """
    kept, dropped = [], 0
    for s, t in pairs:
        a, b = encode_source(s), encode_target(t)
        if len(a) > max_source or len(b) > max_target:
            dropped += 1
        else:
            kept.append((a, b))
    return kept, dropped


__all__ = ["Pair", "filter_by_length", "read_lines", "read_parallel"]
