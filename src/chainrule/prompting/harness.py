"""The in-context learning harness: demonstrations, prompts, batched scoring and generation.

For each test example and each number of shots k, k demonstrations are drawn from a separate
pool (never the test set, and never an example with the same input as the test example) by a
generator seeded with ``(seed, example index)``, so the same seed always gives the same
demonstrations and each example gets its own draw. Two prompt formats:

``plain`` -- completion, as in GPT-2/GPT-3 (Radford et al. 2019, Brown et al. 2020)::

    Athens → Greece          <- demonstration: template + delimiter + answer
    Berlin → Germany         <- (separator "\\n" between them)
    Paris →                  <- the test example's template; the model continues

``chat`` -- the model's chat template (:mod:`chainrule.tokenizers.chat`): the task's instruction
and each demonstration's prompt as user turns, its answer as the assistant's turn, then the test
prompt as the last user turn and the start of the assistant's answer.

Multiple-choice tasks score every choice's log-probability after the prompt in one batched call:
with a neural left-to-right model each distinct prompt is encoded once and its choices are fed
as continuations of its cached state (:func:`chainrule.models.prefix_scoring.
score_continuations_cached`), otherwise prompt + choice is rescored from scratch
(:func:`chainrule.decoding.scoring.score_continuations`, the one batched scorer); generation tasks decode greedily in batches (:func:`chainrule.decoding.generate`) until a stop
string or the end token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from chainrule.decoding import GenerationConfig, generate, score_continuations
from chainrule.errors import ConfigError
from chainrule.models.prefix_scoring import (
    cached_pays,
    can_share_prefixes,
    score_continuations_cached,
)
from chainrule.prompting.metrics import generation_score, normalise, pick
from chainrule.prompting.tasks import Task, render

FORMATS = ("plain", "chat")
Example = Mapping[str, Any]


def split_examples(task: Task, examples: Sequence[Example], seed: int = 0
                   ) -> tuple[list[Example], list[Example]]:
    """(demonstration pool, test set). Examples marked ``"split": "pool"/"test"`` keep their
    side; otherwise a fixed shuffle (``seed``) puts ``task.test_size`` (default: half, at most
    500) in the test set and the rest in the pool."""
    if any("split" in ex for ex in examples):
        pool = [ex for ex in examples if ex.get("split") == "pool"]
        test = [ex for ex in examples if ex.get("split") == "test"]
    else:
        order = np.random.Generator(np.random.PCG64([seed, 17])).permutation(len(examples))
        n_test = task.test_size or min(500, len(examples) // 2)
        test = [examples[i] for i in sorted(order[:n_test])]
        pool = [examples[i] for i in sorted(order[n_test:])]
    if not test or not pool:
        raise ConfigError(f"task {task.name!r} needs examples both to test on and to draw "
                          f"demonstrations from; it has {len(test)} test and {len(pool)} pool "
                          "examples.")
    return pool, test


def _key(task: Task, ex: Example) -> str:
    return render(task.template, ex)


def sample_demos(task: Task, pool: Sequence[Example], example: Example, k: int, seed: int,
                 index: int) -> list[Example]:
    """``k`` demonstrations for test example number ``index``: drawn without replacement from
    the pool minus any example whose prompt equals the test example's, by a generator seeded
    with ``(seed, index)``."""
    if k == 0:
        return []
    key = _key(task, example)
    candidates = [ex for ex in pool if _key(task, ex) != key]
    if k > len(candidates):
        raise ConfigError(f"{k} demonstrations were asked for but the pool of task "
                          f"{task.name!r} holds only {len(candidates)} usable examples; ask "
                          "for fewer shots.")
    rng = np.random.Generator(np.random.PCG64([seed, index, 29]))
    return [candidates[i] for i in rng.choice(len(candidates), size=k, replace=False)]


def plain_prompt(task: Task, demos: Sequence[Example], example: Example) -> str:
    """The completion prompt: demonstrations with answers, then the test example's template."""
    parts = [render(task.template, d) + task.target_delimiter + task.gold(d) for d in demos]
    return task.separator.join([*parts, render(task.template, example, "the test example")])


def chat_messages(task: Task, demos: Sequence[Example], example: Example) -> list[dict[str, str]]:
    """The conversation of the chat format (the instruction opens the first user turn)."""
    msgs: list[dict[str, str]] = []
    turns = [*demos, example]
    for i, d in enumerate(turns):
        text = render(task.template, d, "the test example" if i == len(demos) else "a demo")
        if i == 0 and task.instruction:
            text = f"{task.instruction}\n\n{text}"
        msgs.append({"role": "user", "content": text})
        if i < len(demos):
            msgs.append({"role": "assistant", "content": task.gold(d)})
    return msgs


@dataclass
class PromptBuilder:
    """Turns (demonstrations, example) into prompt text and ids for one model and format."""

    task: Task
    tokenizer: Any
    fmt: str = "plain"
    template: Any = None  # a ChatTemplate for fmt="chat"
    bos_id: int | None = None

    def __post_init__(self):
        if self.fmt not in FORMATS:
            raise ConfigError(f"unknown prompt format {self.fmt!r}; choose {' or '.join(FORMATS)}.")
        if self.fmt == "chat" and self.template is None:
            raise ConfigError("the chat format needs the model's chat template.")

    def text(self, demos: Sequence[Example], example: Example) -> str:
        if self.fmt == "plain":
            return plain_prompt(self.task, demos, example)
        return self.template.render(chat_messages(self.task, demos, example))

    def encode(self, text: str) -> list[int]:
        if self.fmt == "chat":
            ids = list(self.tokenizer.encode(text, allow_special=True))
            return ids[1:] if self.bos_id is not None and ids[:1] == [self.bos_id] else ids
        return list(self.tokenizer.encode(text))

    @property
    def delimiter(self) -> str:
        return self.task.target_delimiter if self.fmt == "plain" else ""

    @property
    def stop(self) -> tuple[str, ...]:
        return tuple(self.task.stop) + (tuple(self.template.stop) if self.fmt == "chat" else ())

    def answer(self, text: str) -> str:
        """The answer in generated text: the chat turn's content; in the plain format the text
        after the delimiter the demonstrations put before each answer (" ", " = ", ...)."""
        if self.fmt == "chat":
            return self.template.answer(text).strip()
        text = text.lstrip()
        delimiter = self.task.target_delimiter.strip()
        return text[len(delimiter):].strip() if delimiter and text.startswith(delimiter) \
            else text.strip()

    def continuation(self, prompt: str, choice: str) -> tuple[list[int], list[int]]:
        """Prompt ids and choice ids as tokenised together (split where the prompt ends)."""
        p = self.encode(prompt)
        whole = self.encode(prompt + self.delimiter + choice)
        if whole[: len(p)] == p and len(whole) > len(p):
            return p, whole[len(p):]
        return p, self.encode(self.delimiter + choice)


@dataclass
class Record:
    """One test example answered once (a row of the JSONL)."""

    model: str
    task: str
    format: str
    shots: int
    seed: int
    index: int
    prompt: str
    gold: str
    prediction: str
    correct: bool | None = None  # exact match (generation) or acc (multiple choice)
    correct_norm: bool | None = None  # acc_norm (multiple choice)
    choice_logprobs: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mc(model, builder: PromptBuilder, prompts: list[str], items: list[Example],
        max_tokens: int | None, prefix_cache: bool | None = None
        ) -> list[tuple[list[float], int, int]]:
    task = builder.task
    pairs, owners = [], []
    for r, (prompt, ex) in enumerate(zip(prompts, items)):
        for c in task.choices_of(ex):
            pairs.append(builder.continuation(prompt, c))
            owners.append(r)
    if prefix_cache is None:  # auto: the prompt's state shared by its choices when that pays
        prefix_cache = can_share_prefixes(model) and cached_pays(pairs)
    scores = (score_continuations_cached(model, pairs) if prefix_cache
              else score_continuations(model, pairs, max_tokens=max_tokens))
    out = []
    at = 0
    for ex in items:
        n = len(task.choices_of(ex))
        lp = scores[at : at + n]
        at += n
        out.append((lp, *pick(lp, task.choices_of(ex))))
    return out


def _generate(model, builder: PromptBuilder, prompts: list[str], batch_size: int) -> list[str]:
    task = builder.task
    stop = builder.stop
    if not stop and getattr(model, "eos_id", None) is None:
        raise ConfigError(f"task {task.name!r} has no stop string and the model has no end "
                          "token, so an answer would never end; add stop = [...] to the task.")
    cfg = GenerationConfig(strategy="greedy", max_new_tokens=task.max_new_tokens, stop=stop)
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        ids = [builder.encode(p) for p in prompts[i : i + batch_size]]
        for [c] in generate(model, ids, cfg, tokenizer=builder.tokenizer):
            out.append(builder.answer(c.text or ""))
    return out


def run_condition(model, builder: PromptBuilder, pool: Sequence[Example],
                  test: Sequence[Example], shots: int, seed: int, *, model_name: str = "model",
                  batch_size: int = 16, max_tokens: int | None = None,
                  prefix_cache: bool | None = None) -> list[Record]:
    """Answer every test example with ``shots`` demonstrations drawn with ``seed``.

    ``prefix_cache`` (multiple choice): encode each prompt once and score its choices as
    continuations of its cached state (True), rescore prompt + choice from scratch (False),
    or choose by the estimated cost (None)."""
    task = builder.task
    demos = [sample_demos(task, pool, ex, shots, seed, i) for i, ex in enumerate(test)]
    prompts = [builder.text(d, ex) for d, ex in zip(demos, test)]
    golds = [task.gold(ex) for ex in test]
    base = {"model": model_name, "task": task.name, "format": builder.fmt, "shots": shots,
            "seed": seed}
    if task.kind == "multiple_choice":
        res = _mc(model, builder, prompts, list(test), max_tokens, prefix_cache)
        return [Record(**base, index=i, prompt=p, gold=g,
                       prediction=task.choices_of(ex)[a], correct=task.choices_of(ex)[a] == g,
                       correct_norm=task.choices_of(ex)[an] == g, choice_logprobs=lp)
                for i, (p, g, ex, (lp, a, an)) in enumerate(zip(prompts, golds, test, res))]
    preds = _generate(model, builder, prompts, batch_size)
    return [Record(**base, index=i, prompt=p, gold=g, prediction=y,
                   correct=normalise(y) == normalise(g))
            for i, (p, g, y) in enumerate(zip(prompts, golds, preds))]


def condition_scores(task: Task, records: Sequence[Record]) -> dict[str, float]:
    """The task's scores of one (model, format, shots, seed) condition."""
    if task.kind == "multiple_choice":
        return {"acc": float(np.mean([r.correct for r in records])),
                "acc_norm": float(np.mean([r.correct_norm for r in records]))}
    score = generation_score(task.metric, [r.prediction for r in records],
                             [r.gold for r in records])
    return {task.metric: score}


def parse_shots(text: str) -> list[int]:
    """``"0,1,2,4,8"`` -> [0, 1, 2, 4, 8] (one sentence for anything else)."""
    try:
        shots = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        shots = []
    if not shots or any(s < 0 for s in shots):
        raise ConfigError(f"--shots takes comma-separated non-negative counts like 0,1,2,4,8; "
                          f"got {text!r}.")
    return sorted(set(shots))


__all__ = ["FORMATS", "PromptBuilder", "Record", "chat_messages", "condition_scores",
           "parse_shots", "plain_prompt", "run_condition", "sample_demos", "split_examples"]
