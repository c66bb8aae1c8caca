"""Prompting tasks as instruction-tuning tables (issue 18): the bridge from a task's examples
to the ``task``/``input``/``output`` rows that :mod:`chainrule.data.instructions` turns into
chats with several phrasings per task and a held-in / held-out split by task.

A row's ``input`` is the value of the task's single template slot (``Athens`` for ``{x} →``);
a template with several slots gives the rendered template instead. Its ``output`` is the
task's gold answer. :func:`harness_phrasing` is the phrasing the prompting harness's zero-shot
chat format uses (the task's instruction, a blank line, then the template), written with an
``{input}`` slot, so a tuned model meets the evaluation's form on the tasks it was tuned on.

>>> from chainrule.prompting.tasks import Task
>>> t = Task(name="past", kind="generation", template="{x} →", answer="y",
...          instruction="Give the past tense.", examples="past.jsonl")
>>> task_rows(t, [{"x": "walk", "y": "walked"}])
[{'task': 'past', 'input': 'walk', 'output': 'walked'}]
>>> harness_phrasing(t)
'Give the past tense.\\n\\n{input} →'
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from typing import Any

from chainrule.errors import ConfigError
from chainrule.prompting.harness import split_examples
from chainrule.prompting.tasks import Task, render, template_fields

SPLITS = ("pool", "test", "all")


def task_rows(task: Task, examples: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """``{"task", "input", "output"}`` rows of the examples (see the module docstring)."""
    fields = template_fields(task.template)
    rows = []
    for ex in examples:
        text = str(ex[fields[0]]) if len(fields) == 1 else render(task.template, ex, "a row")
        rows.append({"task": task.name, "input": text, "output": task.gold(ex)})
    return rows


def split_rows(task: Task, examples: Sequence[Mapping[str, Any]], split: str = "pool"
               ) -> list[dict[str, str]]:
    """Rows of one side of the harness's split: ``pool`` (the demonstration pool, never tested
    on), ``test`` (the harness's test set) or ``all``."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose {', '.join(SPLITS)}.")
    if split == "all":
        return task_rows(task, examples)
    pool, test = split_examples(task, examples)
    return task_rows(task, pool if split == "pool" else test)


def harness_phrasing(task: Task) -> str:
    """The zero-shot chat prompt of the harness as a phrasing with an ``{input}`` slot."""
    fields = template_fields(task.template)
    body = render(task.template, {fields[0]: "{input}"}) if len(fields) == 1 else "{input}"
    return f"{task.instruction}\n\n{body}" if task.instruction else body


def tasks_table(names: Sequence[str], *, split: str = "pool", per_task: int | None = None,
                root: str | os.PathLike | None = None, seed: int = 0,
                phrasings: Mapping[str, Sequence[str]] | None = None,
                ) -> tuple[list[dict[str, str]], dict[str, list[str]]]:
    """Rows and phrasings of shipped (or described) tasks, ready for
    :func:`chainrule.data.instructions.build_instruction_data`.

    Each task's phrasings are the harness's zero-shot chat form followed by any given in
    ``phrasings``; ``per_task`` keeps a seeded random subset of each task's rows.
    """
    from chainrule.prompting.evaluate import task_examples
    from chainrule.prompting.tasks import load_task

    if per_task is not None and per_task < 1:
        raise ConfigError(f"the rows kept per task must be at least 1, got {per_task}.")
    rows: list[dict[str, str]] = []
    out: dict[str, list[str]] = {}
    for name in names:
        task = load_task(name)
        r = split_rows(task, task_examples(task, root), split)
        if per_task is not None and per_task < len(r):
            r = random.Random(seed).sample(r, per_task)
        rows += r
        out[task.name] = [harness_phrasing(task), *(phrasings or {}).get(task.name, [])]
    return rows, out


__all__ = ["SPLITS", "harness_phrasing", "split_rows", "task_rows", "tasks_table"]
