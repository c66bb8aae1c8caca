"""Instruction-tuning data from prompt/completion tables: several phrasings per task, and a
held-in / held-out split by *task* (Sanh et al. 2022: does tuning on some tasks help on tasks
never seen?).

A table row is ``{"task": ..., "input": ..., "output": ...}`` (JSONL, or CSV/TSV with those
columns). Each task has instruction phrasings with an ``{input}`` slot, e.g.

    {"reverse": ["Reverse the word {input}.", "Write {input} backwards.", "{input} reversed:"]}

and every row becomes one chat -- a user turn (a phrasing drawn with a seeded generator, filled
with the input) and an assistant turn (the output) -- tagged with its task. Whole tasks are held
out, never single examples, so the held-out chats test instructions the model was not tuned on.

>>> rows = [{"task": "upper", "input": "a", "output": "A"},
...         {"task": "copy", "input": "b", "output": "b"}]
>>> held_in, held_out, _ = build_instruction_data(
...     rows, {"upper": ["Uppercase: {input}"], "copy": ["Repeat {input}"]},
...     held_out_tasks=["copy"])
>>> held_in[0]["messages"][0]["content"], held_out[0]["task"]
('Uppercase: a', 'copy')
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chainrule.errors import DataError

COLUMNS = ("task", "input", "output")


def read_table(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a JSONL, CSV or TSV table with columns task, input, output."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot read {str(path)!r} ({e.strerror}); check the path.") from None
    if path.suffix in (".jsonl", ".ndjson"):
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{str(path)!r} line {n} is not valid JSON ({e.msg}).") \
                        from None
    else:
        rows = list(csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix == ".tsv"
                                   else ","))
    for n, r in enumerate(rows, start=1):
        if not isinstance(r, Mapping) or any(not isinstance(r.get(c), str) for c in COLUMNS):
            raise DataError(f"{str(path)!r} row {n} lacks one of the string columns "
                            f"{', '.join(COLUMNS)}; every row needs all three.")
    if not rows:
        raise DataError(f"{str(path)!r} has no rows.")
    return [{c: r[c] for c in COLUMNS} for r in rows]


def read_phrasings(path: str | os.PathLike) -> dict[str, list[str]]:
    """``{task: [phrasing with {input}, ...]}`` from a JSON file."""
    from chainrule.fileio import read_json

    data: Any = read_json(Path(path), what="instruction phrasings")
    if not isinstance(data, dict) or not all(
            isinstance(v, list) and v and all(isinstance(p, str) for p in v)
            for v in data.values()):
        raise DataError(f"{str(path)!r} must map each task to a non-empty list of phrasings.")
    return data


def build_instruction_data(
    rows: Sequence[Mapping[str, str]],
    phrasings: Mapping[str, Sequence[str]],
    *,
    held_out_tasks: Sequence[str] | None = None,
    held_out_fraction: float = 0.25,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Chats for the held-in and the held-out tasks, and a report (tasks, counts per task).

    Args:
        rows: ``{"task", "input", "output"}`` mappings.
        phrasings: each task's instruction phrasings (``{input}`` is replaced by the input;
            a phrasing without it gets the input on a new line after it).
        held_out_tasks: the tasks to hold out; None draws ``held_out_fraction`` of the tasks
            (at least one) with ``seed``.
        seed: seeds the phrasing drawn for each row and the drawn held-out tasks.
    """
    tasks = sorted({r["task"] for r in rows})
    missing = [t for t in tasks if t not in phrasings]
    if missing:
        raise DataError(f"tasks {', '.join(missing)} have no instruction phrasings; add them "
                        "to the phrasings file.")
    rng = random.Random(seed)
    if held_out_tasks is None:
        k = max(1, round(held_out_fraction * len(tasks)))
        held_out_tasks = sorted(rng.sample(tasks, k)) if len(tasks) > 1 else []
    unknown = [t for t in held_out_tasks if t not in tasks]
    if unknown:
        raise DataError(f"held-out tasks {', '.join(unknown)} are not in the table; its tasks "
                        f"are {', '.join(tasks)}.")
    if len(tasks) > 1 and set(held_out_tasks) == set(tasks):
        raise DataError("every task is held out, so nothing is left to tune on; hold out fewer.")
    held_in, held_out = [], []
    for r in rows:
        p = rng.choice(list(phrasings[r["task"]]))
        prompt = p.replace("{input}", r["input"]) if "{input}" in p else f"{p}\n{r['input']}"
        chat = {"task": r["task"], "messages": [{"role": "user", "content": prompt},
                                                {"role": "assistant", "content": r["output"]}]}
        (held_out if r["task"] in held_out_tasks else held_in).append(chat)
    counts = Counter(r["task"] for r in rows)
    report = {"held_in_tasks": [t for t in tasks if t not in held_out_tasks],
              "held_out_tasks": sorted(held_out_tasks), "examples": dict(sorted(counts.items())),
              "phrasings": {t: len(phrasings[t]) for t in tasks}}
    return held_in, held_out, report


def write_chats(path: str | os.PathLike, chats: Sequence[Mapping[str, Any]]) -> Path:
    """One chat per line (the format ``chainrule sft --data`` reads)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in chats),
                    encoding="utf-8")
    return path


__all__ = ["build_instruction_data", "read_phrasings", "read_table", "write_chats"]
