"""Synthetic SFT data, self-instruct style (Wang et al. 2023), at small scale.

An instruct model is shown a few seed instructions and asked for a new one; then it answers
each new instruction. Candidates are filtered, and every drop is counted by reason:

    empty        the instruction or the answer is blank
    unfinished   generation hit the token limit before the end of the turn (for an
                 instruction: before the end of its first line)
    too_long     an instruction of more than ``max_words`` words
    duplicate    the instruction repeats a seed or an earlier one (normalised text), or shares
                 more than ``overlap`` of its word set with one (Jaccard)

What is kept is written as chats for ``chainrule sft``.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chainrule.decoding.config import GenerationConfig
from chainrule.decoding.generate import generate
from chainrule.errors import DataError
from chainrule.tokenizers.chat import ChatTemplate, chat_prompt_ids

ASK = ("Here are some example tasks:\n{examples}\n"
       "Write one new task instruction, different from these. Reply with the instruction only.")


@dataclass
class SynthReport:
    """How many candidates were asked for, kept, and dropped (by reason)."""

    asked: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"asked": self.asked, "kept": self.kept, "dropped": dict(self.dropped)}


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def is_duplicate(candidate: str, seen: Sequence[str], overlap: float = 0.7) -> bool:
    """Same normalised text as one of ``seen``, or a word-set Jaccard above ``overlap``.

    >>> is_duplicate("Name a colour.", ["name a  colour"]), is_duplicate("Add 2 and 3.", ["Hi"])
    (True, False)
    """
    norm = " ".join(re.findall(r"\w+", candidate.lower()))
    w = _words(candidate)
    for s in seen:
        if norm == " ".join(re.findall(r"\w+", s.lower())):
            return True
        v = _words(s)
        if w and v and len(w & v) / len(w | v) > overlap:
            return True
    return False


def _pick(c: Any, template: ChatTemplate, seen: list[str], max_words: int,
          overlap: float) -> tuple[str, str | None]:
    """The first line of the reply that is a usable new instruction, or why there is none.

    Small models often answer with a numbered list that repeats the examples; each line is a
    candidate (numbering and quotes stripped). A last line cut by the token limit is not used.
    """
    lines = template.answer(c.text or "").splitlines()
    if c.finish_reason == "length" and lines:
        lines = lines[:-1]
    if not lines:
        return "", "unfinished" if c.finish_reason == "length" else "empty"
    reasons = []
    for line in lines:
        q = re.sub(r"^\s*\d+[.)]\s*", "", line).strip().strip('"').strip()
        if not q:
            continue
        reason = ("too_long" if len(q.split()) > max_words
                  else "duplicate" if is_duplicate(q, seen, overlap) else None)
        if reason is None:
            return q, None
        reasons.append(reason)
    return "", reasons[0] if reasons else "empty"


def self_instruct(model: Any, tokenizer: Any, template: ChatTemplate, seeds: Sequence[str], *,
                  n: int = 20, examples: int = 3, temperature: float = 0.8, top_p: float = 0.95,
                  max_tokens: int = 96, max_words: int = 60, overlap: float = 0.7,
                  seed: int = 0) -> tuple[list[dict[str, Any]], SynthReport]:
    """Ask for ``n`` new instructions (``examples`` seeds shown each time), answer them, filter.

    Returns the kept chats (``{"messages": [user, assistant], "source": "self-instruct"}``)
    and the :class:`SynthReport`.
    """
    seeds = [s.strip() for s in seeds if s.strip()]
    if not seeds:
        raise DataError("self-instruct needs at least one seed instruction.")
    rng = random.Random(seed)
    report = SynthReport(asked=n)
    asks = []
    for _ in range(n):
        shown = rng.sample(seeds, min(examples, len(seeds)))
        text = ASK.format(examples="\n".join(f"{i + 1}. {s}" for i, s in enumerate(shown)))
        asks.append(chat_prompt_ids(tokenizer, template.render([{"role": "user",
                                                                  "content": text}]),
                                    model.bos_id))
    cfg = GenerationConfig(strategy="sample", temperature=temperature, top_p=top_p,
                           max_new_tokens=max_tokens, stop=template.stop, seed=seed)
    seen, candidates = list(seeds), []
    for out in generate(model, asks, cfg, tokenizer=tokenizer):
        instruction, reason = _pick(out[0], template, seen, max_words, overlap)
        if reason:
            report.dropped[reason] += 1
            continue
        seen.append(instruction)
        candidates.append(instruction)
    if candidates:
        prompts = [chat_prompt_ids(tokenizer, template.render([{"role": "user", "content": q}]),
                                   model.bos_id) for q in candidates]
        answers = generate(model, prompts, cfg, tokenizer=tokenizer)
    else:
        answers = []
    chats = []
    for q, out in zip(candidates, answers):
        c = out[0]
        answer = template.answer(c.text or "")
        reason = "empty" if not answer else "unfinished" if c.finish_reason == "length" else None
        if reason:
            report.dropped[reason] += 1
            continue
        chats.append({"messages": [{"role": "user", "content": q},
                                   {"role": "assistant", "content": answer}],
                      "source": "self-instruct"})
    report.kept = len(chats)
    return chats, report


__all__ = ["SynthReport", "is_duplicate", "self_instruct"]
