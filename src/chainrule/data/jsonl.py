"""JSONL corpora: one JSON object per line, the text in a named field (``--field``, default
``text``). Bad lines and records are reported with the file and line number."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from chainrule.errors import DataError

from .textfiles import _split_lines, iter_text_chunks

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")


def iter_jsonl_field(path: Path, field: str) -> Iterator[str]:
    """The string ``field`` of every record of a JSONL file (blank lines skipped)."""
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
