"""Stimuli in: plain text, CSV/TSV (with a column and an optional context column), JSONL.

A stimulus is the text to score, an optional preceding context (conditioned on, never scored)
and every other input column, carried through to the output table unchanged.

Formats, by suffix (``.txt`` and anything else: plain text):

* text: one stimulus a non-empty line; the carried column is ``line`` (1-based);
* ``.csv`` / ``.tsv``: a header row; ``column`` names the text (default ``sentence``, else the
  only column), ``context_column`` the context. Quoting follows RFC 4180 (Python's ``csv``);
* ``.jsonl``: one JSON object a line; ``field`` names the text (default ``sentence``),
  ``context_column`` the context; other scalar fields are carried.

Also here: the naming of models in tables (``--name`` or the directory's basename, and
:func:`load_named_models`, which loads them so named) and the one ``<unk>`` policy of every
evaluation command (:data:`UNK_POLICIES`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainrule.errors import ConfigError, DataError

# The one out-of-vocabulary policy of every evaluation command: "refuse" (default) stops at
# the first text that maps to <unk>, naming it; "score" scores <unk> as an ordinary token and
# flags the words that contain it. Every report states the policy and the number of <unk> words.
UNK_POLICIES = ("refuse", "score")
DEFAULT_UNK = "refuse"


@dataclass(frozen=True)
class Stimulus:
    text: str
    context: str = ""
    fields: dict[str, str] = field(default_factory=dict)  # carried input columns, in order


def read_stimuli(
    path: str | os.PathLike,
    *,
    column: str | None = None,
    context_column: str | None = None,
) -> list[Stimulus]:
    """Read stimuli from a text, CSV, TSV or JSONL file (by suffix; see the module doc).

    Raises:
        DataError: the file is missing, or a named column/field is absent (one sentence).
    """
    from chainrule.data.readers import read_text

    path = Path(path)
    text = read_text(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _read_table(text, path, "," if suffix == ".csv" else "\t", column, context_column)
    if suffix == ".jsonl":
        return _read_jsonl(text, path, column, context_column)
    if column or context_column:
        raise ConfigError(f"{path.name} is read as plain text (one stimulus a line), so "
                          "--column/--context-column do not apply; name it *.csv, *.tsv or "
                          "*.jsonl to read columns.")
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            out.append(Stimulus(line.strip(), "", {"line": str(i)}))
    return out


def _pick(names: Sequence[str], wanted: str | None, path: Path, what: str) -> str:
    if wanted is not None:
        if wanted not in names:
            raise DataError(f"{path.name} has no {what} {wanted!r} (it has "
                            f"{', '.join(map(repr, names))}); name one of those with --column.")
        return wanted
    if "sentence" in names:
        return "sentence"
    if len(names) == 1:
        return names[0]
    raise DataError(f"{path.name} has several columns ({', '.join(map(repr, names))}) and none "
                    "is called 'sentence'; name the text column with --column.")


def _read_table(text: str, path: Path, delimiter: str, column: str | None,
                context_column: str | None) -> list[Stimulus]:
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path.name} is empty; it needs a header row and one row a stimulus.")
    header = [h.strip() for h in rows[0]]
    col = _pick(header, column, path, "column")
    ctx = _pick(header, context_column, path, "context column") if context_column else None
    out = []
    for n, row in enumerate(rows[1:], 2):
        if len(row) != len(header):
            raise DataError(f"{path.name} row {n} has {len(row)} cells but the header has "
                            f"{len(header)}; quote cells that contain the delimiter.")
        rec = dict(zip(header, row))
        carried = {k: v for k, v in rec.items() if k not in (col, ctx)}
        out.append(Stimulus(rec[col].strip(), rec[ctx].strip() if ctx else "", carried))
    return out


def _read_jsonl(text: str, path: Path, column: str | None,
                context_column: str | None) -> list[Stimulus]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path.name} line {n} is not JSON ({e.msg}).") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path.name} line {n} is not a JSON object.")
        col = _pick(list(obj), column, path, "field")
        ctx = _pick(list(obj), context_column, path, "field") if context_column else None
        if not isinstance(obj[col], str):
            raise DataError(f"{path.name} line {n}: field {col!r} is not a string.")
        carried = {k: v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()
                   if k not in (col, ctx)}
        out.append(Stimulus(obj[col].strip(), str(obj[ctx]).strip() if ctx else "", carried))
    return out


def model_names(paths: Sequence[str | os.PathLike], names: Sequence[str] | None = None
                ) -> list[str]:
    """Short names of models for tables and plots: ``names`` (one per model) when given, else
    each directory's basename, made unique with ``-2``, ``-3`` ..."""
    if names:
        if len(names) != len(paths):
            raise ConfigError(f"--name was given {len(names)} times for {len(paths)} models; "
                              "give one name per model, in the same order.")
        if len(set(names)) != len(names):
            raise ConfigError("--name values must differ from each other.")
        return list(names)
    out: list[str] = []
    for p in paths:
        base = Path(p).resolve().name or str(p)
        name, k = base, 2
        while name in out:
            name, k = f"{base}-{k}", k + 1
        out.append(name)
    return out


def load_named_models(paths: Sequence[str | os.PathLike], names: Sequence[str] | None = None,
                      scoring: str | None = None) -> list[tuple[str, Any, Any]]:
    """``(name, model, tokenizer)`` of every model directory, named by :func:`model_names`
    (checked before any model loads); ``scoring`` as in
    :func:`chainrule.evaluation.textscore.load_model_and_tokenizer`."""
    from chainrule.evaluation.textscore import load_model_and_tokenizer

    named = model_names(paths, names)
    return [(n, *load_model_and_tokenizer(p, scoring)) for n, p in zip(named, paths)]


def unk_policy(policy: str | None) -> str:
    """Validate a policy name (None: the default, ``refuse``)."""
    policy = policy or DEFAULT_UNK
    if policy not in UNK_POLICIES:
        raise ConfigError(f"unknown <unk> policy {policy!r}; choose one of "
                          f"{', '.join(UNK_POLICIES)}.")
    return policy


def unk_sentence(policy: str, counts: dict[str, int], unit: str = "words with <unk>") -> str:
    """The line every report prints: the policy and each model's number of ``<unk>`` words."""
    how = ("<unk> scored as a token and flagged" if policy == "score"
           else "text with <unk> refused")
    return f"<unk> policy: {how}; {unit}: " + ", ".join(
        f"{m} {n}" for m, n in counts.items())


def add_unk_arguments(p) -> None:
    """The ``--unk`` option shared by every evaluation command."""
    p.add_argument("--unk", choices=UNK_POLICIES, default=None,
                   help="out-of-vocabulary policy of every evaluation command: stop at text "
                        "that becomes <unk> (refuse, the default) or score <unk> as a token "
                        "and flag it (score)")
    p.add_argument("--allow-unk", dest="unk", action="store_const", const="score",
                   help="the same as --unk score")
    p.add_argument("--refuse-unk", dest="unk", action="store_const", const="refuse",
                   help="the same as --unk refuse")


__all__ = [
    "DEFAULT_UNK",
    "UNK_POLICIES",
    "Stimulus",
    "add_unk_arguments",
    "load_named_models",
    "model_names",
    "read_stimuli",
    "unk_policy",
    "unk_sentence",
]
