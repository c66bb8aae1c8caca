"""Prompting and in-context learning: tasks (JSONL + a TOML description), zero- and few-shot
evaluation in plain and chat formats, and a model trained from scratch that learns to copy
from its context (induction heads). See docs/prompting.md."""

from chainrule.prompting.evaluate import (
    ModelEntry,
    PromptReport,
    evaluate_task,
    format_table,
    task_examples,
    write_report,
)
from chainrule.prompting.harness import (
    FORMATS,
    PromptBuilder,
    Record,
    chat_messages,
    parse_shots,
    plain_prompt,
    run_condition,
    sample_demos,
    split_examples,
)
from chainrule.prompting.metrics import choice_length, pick
from chainrule.prompting.tasks import (
    Task,
    load_task,
    read_examples,
    read_task,
    render,
    shipped_task_names,
    template_fields,
)

__all__ = [
    "FORMATS",
    "ModelEntry",
    "PromptBuilder",
    "PromptReport",
    "Record",
    "Task",
    "chat_messages",
    "choice_length",
    "evaluate_task",
    "format_table",
    "load_task",
    "parse_shots",
    "pick",
    "plain_prompt",
    "read_examples",
    "read_task",
    "render",
    "run_condition",
    "sample_demos",
    "shipped_task_names",
    "split_examples",
    "task_examples",
    "template_fields",
    "write_report",
]
