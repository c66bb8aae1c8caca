"""Prompting tasks: a JSONL file of examples plus a small TOML description.

A description says how one example becomes a prompt and what counts as its answer::

    name = "capital-common-countries"
    kind = "generation"            # or "multiple_choice"
    template = "{x} →"             # {field} slots, filled from the example (never evaluated)
    answer = "y"                   # the example's field holding the answer
    target_delimiter = " "         # between the prompt and its answer
    separator = "\\n"               # between demonstrations (each: prompt + delimiter + answer)
    stop = ["\\n"]                  # generation ends at the first stop string
    metric = "exact_match"         # exact_match, f1, chrf or rouge_l (generation)
    instruction = "Name the country whose capital is given."   # the chat format's request
    builder = "analogy"            # how the examples are built from ../shared/data ...
    [builder_args]
    section = "capital-common-countries"

or ``examples = "file.jsonl"`` (relative to the description) instead of ``builder``. A
multiple-choice task names its choices: ``choices = [...]`` (the same for every example) or
``choices_field = "options"`` (a list per example); ``answer`` is then the field holding the
correct choice (its text, or its index).

Templates are plain text with ``{name}`` slots (``{{`` and ``}}`` for literal braces). They are
filled by a regular expression, not by ``str.format``: no attribute access, no indexing, no
format specs, so a description can never run code or reach into Python objects.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from chainrule.errors import ConfigError, DataError

KINDS = ("generation", "multiple_choice")
METRICS = ("exact_match", "f1", "chrf", "rouge_l")
_SLOT = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")


def template_fields(template: str) -> list[str]:
    """The slot names of a template, in order (a malformed brace raises).

    >>> template_fields("Q: {question}\\nA:")
    ['question']
    """
    out = []
    for m in _SLOT.finditer(template):
        tok = m.group(0)
        if tok in ("{{", "}}"):
            continue
        if m.group(1) is None:
            raise ConfigError(f"template {template!r} has a lone {tok!r}; write a slot as "
                              "{field} and a literal brace as {{ or }}.")
        out.append(m.group(1))
    return out


def render(template: str, example: Mapping[str, Any], where: str = "the example") -> str:
    """Fill ``{field}`` slots with the example's values (as text).

    >>> render("{x} → {{y}}", {"x": "Athens"})
    'Athens → {y}'
    """
    def fill(m: re.Match) -> str:
        tok = m.group(0)
        if tok == "{{":
            return "{"
        if tok == "}}":
            return "}"
        name = m.group(1)
        if name is None:
            raise ConfigError(f"template {template!r} has a lone {tok!r}; write a slot as "
                              "{field} and a literal brace as {{ or }}.")
        if name not in example:
            have = ", ".join(sorted(example)) or "none"
            raise ConfigError(f"the template names field {name!r}, which {where} lacks (its "
                              f"fields: {have}); fix the template or the examples.")
        return str(example[name])

    return _SLOT.sub(fill, template)


@dataclass(frozen=True)
class Task:
    """One task description (see the module docstring for the keys)."""

    name: str
    kind: str
    template: str
    answer: str
    description: str = ""
    separator: str = "\n"
    target_delimiter: str = " "
    stop: tuple[str, ...] = ("\n",)
    metric: str = "exact_match"
    max_new_tokens: int = 16
    instruction: str = ""
    choices: tuple[str, ...] = ()
    choices_field: str = ""
    examples: str = ""
    builder: str = ""
    builder_args: dict = field(default_factory=dict)
    test_size: int = 0  # examples held out for testing (0: half of them, at most 500)
    path: str = ""  # where the description was read from

    def __post_init__(self):
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "generation" and self.metric not in METRICS:
            problems.append(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.kind == "multiple_choice" and not (self.choices or self.choices_field):
            problems.append("a multiple-choice task needs choices = [...] or choices_field")
        if not self.answer:
            problems.append("answer (the field holding the answer) is missing")
        if bool(self.examples) == bool(self.builder):
            problems.append("give exactly one of examples = FILE.jsonl or builder = NAME")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            problems.append("max_new_tokens must be a positive integer")
        try:
            template_fields(self.template)
        except ConfigError as e:
            problems.append(str(e).rstrip("."))
        if problems:
            raise ConfigError(f"task {self.name!r}: " + "; ".join(problems) + ".")

    def fields(self) -> list[str]:
        """Fields every example must have."""
        need = [*template_fields(self.template), self.answer]
        return need + ([self.choices_field] if self.choices_field else [])

    def choices_of(self, example: Mapping[str, Any]) -> list[str]:
        """The choices of one example (multiple choice)."""
        if self.choices_field:
            return [str(c) for c in example[self.choices_field]]
        return list(self.choices)

    def gold(self, example: Mapping[str, Any]) -> str:
        """The answer text of one example (for multiple choice: the correct choice)."""
        value = example[self.answer]
        if self.kind == "multiple_choice" and isinstance(value, int) \
                and not isinstance(value, bool):
            return self.choices_of(example)[value]
        return str(value)

    def check_examples(self, examples: Sequence[Mapping[str, Any]], where: str) -> None:
        """One sentence for the first example that lacks a field the task needs."""
        if not examples:
            raise DataError(f"{where} holds no examples.")
        need = self.fields()
        for i, ex in enumerate(examples):
            missing = [f for f in need if f not in ex]
            if missing:
                slot = "template" if missing[0] in template_fields(self.template) else "task"
                raise ConfigError(
                    f"task {self.name!r}: the {slot} names field {missing[0]!r} but example "
                    f"{i + 1} of {where} lacks it (its fields: {', '.join(sorted(ex))}); fix "
                    "the description or the examples.")
            if self.kind == "multiple_choice" and self.gold(ex) not in self.choices_of(ex):
                raise DataError(f"task {self.name!r}: example {i + 1} of {where} has answer "
                                f"{self.gold(ex)!r}, which is not one of its choices.")


def _task_from_dict(raw: Mapping[str, Any], path: str) -> Task:
    known = set(Task.__dataclass_fields__) - {"path"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; the keys are "
                          f"{', '.join(sorted(known))}.")
    kw = dict(raw)
    for key in ("stop", "choices"):
        if key in kw:
            value = kw[key]
            kw[key] = (value,) if isinstance(value, str) else tuple(str(v) for v in value)
    kw.setdefault("name", Path(path).stem)
    return Task(**kw, path=str(path))


def read_task(path: str | os.PathLike) -> Task:
    """A task description from a ``.toml`` or ``.json`` file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"task file {str(p)!r} does not exist.")
    try:
        text = p.read_text("utf-8")
        raw = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{str(p)!r} is not a valid task description ({e}).") from None
    return _task_from_dict(raw, str(p))


def shipped_task_names() -> list[str]:
    """Names of the task descriptions that come with chainrule."""
    root = resources.files("chainrule") / "prompting" / "tasks"
    return sorted(e.name[:-5] for e in root.iterdir() if e.name.endswith(".toml"))


def load_task(name_or_path: str | os.PathLike) -> Task:
    """A shipped task by name, or a description file by path."""
    text = str(name_or_path)
    if text.endswith((".toml", ".json")) or os.sep in text:
        return read_task(text)
    names = shipped_task_names()
    if text not in names:
        raise ConfigError(f"unknown task {text!r}; `chainrule prompt tasks` lists the "
                          f"{len(names)} shipped tasks, or pass a description file (.toml).")
    res = resources.files("chainrule") / "prompting" / "tasks" / f"{text}.toml"
    return _task_from_dict(tomllib.loads(res.read_text("utf-8")), f"{text}.toml")


def read_examples(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Examples from a JSONL file (one JSON object a line; blank lines skipped)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"examples file {str(p)!r} does not exist.")
    out = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise DataError(f"{p}:{n} is not valid JSON.") from None
            if not isinstance(obj, dict):
                raise DataError(f"{p}:{n} is not a JSON object.")
            out.append(obj)
    return out


__all__ = ["KINDS", "METRICS", "Task", "load_task", "read_examples", "read_task", "render",
           "shipped_task_names", "template_fields"]
