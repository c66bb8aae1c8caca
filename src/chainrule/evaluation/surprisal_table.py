"""Many models over one stimuli file: a long (tidy) or wide table of word or token surprisals.

Long table: one row per (stimulus, word, model) -- the carried input columns first, then
``sentence_id`` (0-based stimulus number), ``word_index``, ``word``, ``model``,
``surprisal_bits``, ``n_tokens``,
``has_unk``, ``is_eos``, ``corrected``. Wide table (``wide=True``): one row per (stimulus, word)
and one ``surprisal_bits`` column per model, named by the model. Token rows (``words=False``)
use the token columns of :mod:`chainrule.evaluation.surprisal` with the same carried columns and
``model``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainrule.errors import ConfigError
from chainrule.evaluation.stimuli import Stimulus
from chainrule.fileio import atomic_open

WORD_FIELDS = ["sentence_id", "word_index", "word", "model", "surprisal_bits", "n_tokens",
               "has_unk", "is_eos", "corrected"]
TOKEN_FIELDS = ["sentence_id", "token_index", "token", "word_index", "model", "surprisal_bits",
                "is_eos"]


@dataclass
class SurprisalTable:
    rows: list[dict[str, Any]] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)  # input columns carried through
    models: list[str] = field(default_factory=list)
    unk_words: dict[str, int] = field(default_factory=dict)  # per model
    corrected: dict[str, bool] = field(default_factory=dict)  # boundary correction applied


def surprisal_table(
    models: Sequence[tuple[str, Any, Any]],
    stimuli: Sequence[Stimulus],
    *,
    words: bool = True,
    eos: bool = True,
    allow_unk: bool = False,
    correct: bool = True,
    on_scored=None,
) -> SurprisalTable:
    """Score ``stimuli`` with each ``(name, model, tokenizer)`` and collect long rows
    (``on_scored``: called with the number of stimuli just scored by a model: progress)."""
    from chainrule.evaluation.surprisal import sentence_surprisals
    from chainrule.evaluation.word_surprisal import score_words

    reserved = set(WORD_FIELDS) | set(TOKEN_FIELDS)
    stimuli = [Stimulus(s.text, s.context, {(f"input_{k}" if k in reserved else k): v
                                            for k, v in s.fields.items()}) for s in stimuli]
    carried: list[str] = []  # input columns named like an output column get an input_ prefix
    for s in stimuli:
        carried += [k for k in s.fields if k not in carried]
    table = SurprisalTable(carried=carried, models=[m[0] for m in models])
    for name, model, tok in models:
        if words:
            scored = score_words(model, tok, stimuli, eos=eos, allow_unk=allow_unk,
                                 correct=correct, on_scored=on_scored)
            table.unk_words[name] = sum(w.has_unk for ws in scored for w in ws)
            table.corrected[name] = any(w.corrected for ws in scored for w in ws)
            for k, (s, ws) in enumerate(zip(stimuli, scored)):
                base = {c: s.fields.get(c, "") for c in carried}
                for w in ws:
                    table.rows.append({**base, "sentence_id": k, "word_index": w.word_index,
                                       "word": w.word, "model": name,
                                       "surprisal_bits": w.surprisal_bits,
                                       "n_tokens": w.n_tokens, "has_unk": int(w.has_unk),
                                       "is_eos": int(w.is_eos), "corrected": int(w.corrected)})
        else:
            if any(s.context for s in stimuli):
                raise ConfigError("token rows (without --words) do not take a context column; "
                                  "add --words, or drop --context-column.")
            res = sentence_surprisals(model, tok, [s.text for s in stimuli], eos=eos,
                                      allow_unk=allow_unk, on_scored=on_scored)
            table.unk_words[name] = sum(w.has_unk for r in res for w in r.words)
            table.corrected[name] = False
            for k, (s, r) in enumerate(zip(stimuli, res)):
                base = {c: s.fields.get(c, "") for c in carried}
                for t in r.tokens:
                    table.rows.append({**base, "sentence_id": k, "token_index": t.token_index,
                                       "token": t.token, "word_index": t.word_index,
                                       "model": name, "surprisal_bits": t.surprisal_bits,
                                       "is_eos": int(t.is_eos)})
    return table


def wide_rows(table: SurprisalTable) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per (stimulus, word) and a surprisal column per model."""
    keys = ["sentence_id", "word_index"]
    out: dict[tuple, dict[str, Any]] = {}
    for r in table.rows:
        k = (r["sentence_id"], r["word_index"])
        if k not in out:
            out[k] = {c: r[c] for c in table.carried + keys + ["word", "is_eos"]}
        out[k][r["model"]] = r["surprisal_bits"]
        out[k]["has_unk"] = max(int(out[k].get("has_unk", 0)), r["has_unk"])
    cols = table.carried + keys + ["word", *table.models, "has_unk", "is_eos"]
    return list(out.values()), cols


def write_table(table: SurprisalTable, path: str | os.PathLike, *, words: bool = True,
                wide: bool = False) -> Path:
    """Write CSV, TSV or JSONL (by the suffix), atomically."""
    path = Path(path)
    fmt = path.suffix.lower()
    if fmt not in (".csv", ".tsv", ".jsonl"):
        raise ConfigError(f"cannot tell the output format of {str(path)!r}; name the file "
                          "*.csv, *.tsv or *.jsonl.")
    if wide:
        if not words:
            raise ConfigError("--wide needs --words (a token's segmentation differs between "
                              "models, so token rows cannot be lined up).")
        rows, cols = wide_rows(table)
        numeric = set(table.models)
    else:
        rows = table.rows
        cols = table.carried + (WORD_FIELDS if words else TOKEN_FIELDS)
        numeric = {"surprisal_bits"}
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        if fmt == ".jsonl":
            for r in rows:
                f.write(json.dumps({c: r.get(c) for c in cols}, ensure_ascii=False) + "\n")
        else:
            w = csv.writer(f, delimiter="," if fmt == ".csv" else "\t", lineterminator="\n")
            w.writerow(cols)
            for r in rows:
                w.writerow([f"{r[c]:.6f}" if c in numeric and r.get(c) is not None
                            else r.get(c, "") for c in cols])
    return path


__all__ = ["SurprisalTable", "surprisal_table", "wide_rows", "write_table"]
