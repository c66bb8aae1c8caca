"""Evaluate models on a task over numbers of demonstrations and seeds; write the report.

:func:`evaluate_task` runs every (model, format, shots, seed) condition and returns a
:class:`PromptReport`: one summary row per (model, format, shots) -- the score's mean and
standard deviation over seeds -- and every prompt with its answer. :func:`write_report`
writes ``results.md`` (the table), ``results.json``, ``prompts.jsonl`` and ``shots.png``
(score against shots, one line per model and format, error bars over seeds).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.errors import ConfigError
from chainrule.fileio import atomic_open, write_json
from chainrule.prompting.builders import build, data_root
from chainrule.prompting.harness import (
    PromptBuilder,
    Record,
    condition_scores,
    plain_prompt,
    run_condition,
    split_examples,
)
from chainrule.prompting.tasks import Task, read_examples


def task_examples(task: Task, root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The task's examples: built from the shared data, or read from its JSONL file."""
    if task.builder:
        examples = build(task.builder, data_root(root), dict(task.builder_args))
        where = f"the {task.builder!r} builder's output"
    else:
        path = Path(task.examples)
        if not path.is_absolute() and task.path:
            path = Path(task.path).parent / path
        examples = read_examples(path)
        where = str(path)
    task.check_examples(examples, where)
    return examples


def subsample(test: Sequence[Any], limit: int | None, seed: int = 0) -> list[Any]:
    """At most ``limit`` test examples, a fixed random subset kept in order."""
    if not limit or limit >= len(test):
        return list(test)
    pick = np.random.Generator(np.random.PCG64([seed, 31])).permutation(len(test))[:limit]
    return [test[i] for i in sorted(pick)]


class ChatUnknownWarning(UserWarning):
    """The chat format's own text is not in a model's vocabulary and became ``<unk>``."""


def _warn_chat_unknown(entry: ModelEntry, builder: PromptBuilder, example) -> None:
    """Warn when the chat format adds ``<unk>`` that the plain prompt does not have (a
    character vocabulary without ``U``, ``:``... turns the ``User:``/``Assistant:`` fallback
    into ``<unk>``)."""
    unk = getattr(entry.tokenizer, "unk_id", None)
    if unk is None:
        return
    text = builder.text([], example)
    plain = list(entry.tokenizer.encode(plain_prompt(builder.task, [], example)))
    if builder.encode(text).count(unk) <= plain.count(unk):
        return
    from chainrule.tokenizers.base import unencodable

    words, chars = unencodable(entry.tokenizer, text)
    shown = ", ".join(repr(c) for c in (chars or words)[:8]) or "part of it"
    warnings.warn(f"model {entry.name!r}: the chat format's own text ({shown}) is not in the "
                  "model's vocabulary and becomes <unk>, so its chat-format scores mean little; "
                  "use --format plain for this model.", ChatUnknownWarning, stacklevel=3)


@dataclass
class ModelEntry:
    """A model to evaluate: the model, its tokenizer and (for the chat format) its template."""

    name: str
    model: Any
    tokenizer: Any
    chat_template: Any = None


@dataclass
class PromptReport:
    task: Task
    rows: list[dict[str, Any]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    n_test: int = 0
    n_pool: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        if self.task.kind == "multiple_choice":
            return ["acc", "acc_norm"]
        return [self.task.metric]

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task.name, "kind": self.task.kind, "metrics": self.metrics,
                "n_test": self.n_test, "n_pool": self.n_pool, "rows": self.rows,
                "seconds": self.seconds}


def evaluate_task(models: Sequence[ModelEntry], task: Task, examples: Sequence[dict[str, Any]],
                  shots: Sequence[int] = (0, 1, 2, 4, 8), seeds: int = 3,
                  formats: Sequence[str] = ("plain",), *, limit: int | None = None,
                  batch_size: int = 16, progress=None) -> PromptReport:
    """Run every condition. 0 shots has no demonstrations to draw, so it runs once (seed 0)."""
    pool, test = split_examples(task, examples)
    test = subsample(test, limit)
    if max(shots, default=0) > len(pool):
        raise ConfigError(f"{max(shots)} demonstrations were asked for but the pool of task "
                          f"{task.name!r} holds only {len(pool)} examples; ask for fewer shots.")
    report = PromptReport(task, n_test=len(test), n_pool=len(pool))
    for entry in models:
        t0 = time.perf_counter()
        for fmt in formats:
            builder = PromptBuilder(task, entry.tokenizer, fmt, entry.chat_template,
                                    getattr(entry.model, "bos_id", None))
            if fmt == "chat" and test:
                _warn_chat_unknown(entry, builder, test[0])
            for k in shots:
                per_seed = []
                for seed in range(1 if k == 0 else seeds):
                    recs = run_condition(entry.model, builder, pool, test, k, seed,
                                         model_name=entry.name, batch_size=batch_size)
                    report.records += recs
                    per_seed.append(condition_scores(task, recs))
                    if progress is not None:
                        progress(entry.name, fmt, k, seed, per_seed[-1])
                row: dict[str, Any] = {"model": entry.name, "format": fmt, "shots": k,
                                       "seeds": len(per_seed), "n": len(test)}
                for m in per_seed[0]:
                    vals = np.array([s[m] for s in per_seed])
                    row[m] = float(vals.mean())
                    row[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
                report.rows.append(row)
        report.seconds[entry.name] = time.perf_counter() - t0
    return report


def format_table(report: PromptReport) -> str:
    """A Markdown table: one row per model and format, one column per number of shots."""
    shots = sorted({r["shots"] for r in report.rows})
    lines = []
    for m in report.metrics:
        lines += [(f"{report.task.name} — {m} (mean ± sd over seeds; {report.n_test} test "
                   "examples)"), "",
                  "| model | format | " + " | ".join(f"{k}-shot" for k in shots) + " |",
                  "|---|---|" + "---|" * len(shots)]
        keys = list(dict.fromkeys((r["model"], r["format"]) for r in report.rows))
        for model, fmt in keys:
            cells = []
            for k in shots:
                r = next((r for r in report.rows if (r["model"], r["format"], r["shots"])
                          == (model, fmt, k)), None)
                cells.append("" if r is None else f"{r[m]:.3g} ± {r[m + '_std']:.2g}")
            lines.append(f"| {model} | {fmt} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_report(report: PromptReport, out_dir: str | os.PathLike, *, plot: bool = True
                 ) -> dict[str, Path]:
    """Write results.md, results.json, prompts.jsonl and (with matplotlib) shots.png."""
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / "results.md", "json": out / "results.json",
             "prompts": out / "prompts.jsonl"}
    with atomic_open(paths["table"], "w", encoding="utf-8") as f:
        f.write(format_table(report))
    write_json(paths["json"], report.to_json())
    with atomic_open(paths["prompts"], "w", encoding="utf-8") as f:
        for r in report.records:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    if plot:
        from chainrule.evaluation.plots import have_matplotlib
        from chainrule.prompting.plots import plot_shots

        if have_matplotlib():
            paths["plot"] = plot_shots(report.rows, report.metrics[-1], out / "shots.png",
                                       title=report.task.name)
    return paths


def summary_by(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[tuple, float]:
    """{(model, format, shots): mean score}."""
    return {(r["model"], r["format"], r["shots"]): r[metric] for r in rows}


__all__ = ["ModelEntry", "PromptReport", "evaluate_task", "format_table", "subsample",
           "summary_by", "task_examples", "write_report"]
