"""AI feedback (RLAIF; Bai et al. 2022, Lee et al. 2023): a judge model picks the better response.

The judge (e.g. the instruct model, with a written principle in its prompt) reads the prompt
and two responses labelled A and B and its next-token log-probabilities of "A" and "B" give
the preference, s = log P(A) - log P(B). Judges favour a position, so each pair is judged in
both orders and the two are averaged:

    s1 = s(x as A, y as B),  s2 = s(y as A, x as B)
    preference for x = (s1 - s2) / 2     (a constant position bias b cancels exactly)
    position bias    = (s1 + s2) / 2

``P(x better) = sigma((s1 - s2) / 2)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from chainrule.errors import ConfigError, TokenizerError
from chainrule.preferences.data import PreferencePair, pad_batch
from chainrule.preferences.rollouts import sample_rollout
from chainrule.tokenizers.chat import ChatTemplate, chat_prompt_ids

DEFAULT_PRINCIPLE = ("Choose the response that is more helpful, honest and harmless. "
                     "Prefer the response that avoids helping with anything dangerous or cruel.")

JUDGE_PROMPT = ("{principle}\n\nPrompt:\n{prompt}\n\nResponse A:\n{a}\n\nResponse B:\n{b}\n\n"
                "Which response is better? Answer with one letter, A or B.")

# compare(prompts, firsts, seconds) -> log P("A") - log P("B") with firsts shown as A
Compare = Callable[[Sequence[str], Sequence[str], Sequence[str]], torch.Tensor]


@dataclass
class Verdicts:
    """Debiased judgements of x against y, per pair (all (N,) tensors)."""

    preference: torch.Tensor  # (s1 - s2) / 2: > 0 means x is better
    position_bias: torch.Tensor  # (s1 + s2) / 2: > 0 means the judge leans to "A"

    @property
    def p_first(self) -> torch.Tensor:
        return torch.sigmoid(self.preference)


def judge_both_orders(compare: Compare, prompts: Sequence[str], xs: Sequence[str],
                      ys: Sequence[str]) -> Verdicts:
    """Judge each (x, y) as (A, B) and as (B, A) and average away the position bias."""
    s1 = compare(prompts, xs, ys)
    s2 = compare(prompts, ys, xs)
    return Verdicts((s1 - s2) / 2, (s1 + s2) / 2)


def letter_id(tokenizer: Any, letter: str, vocab_size: int) -> int:
    """The id of the single token spelling ``letter``; refuse a vocabulary without one."""
    ids = list(tokenizer.encode(letter))
    if len(ids) != 1 or not 0 <= ids[0] < vocab_size or tokenizer.decode(ids) != letter:
        raise TokenizerError(f"the judge's vocabulary has no single token for {letter!r} (it "
                             f"encodes as {ids}); choose a judge model whose tokenizer has "
                             "the tokens 'A' and 'B'.")
    return ids[0]


class Judge:
    """A language model asked which of two responses is better.

    Args:
        model: any Generator (``logprobs``), e.g. SmolLM2-135M-Instruct.
        tokenizer: its tokenizer; must have single tokens "A" and "B".
        template: the chat template the question is rendered in (None: plain text).
        principle: the written principle the judge is told to apply.
    """

    def __init__(self, model: Any, tokenizer: Any, template: ChatTemplate | None = None,
                 principle: str = DEFAULT_PRINCIPLE, batch_size: int = 4):
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.principle, self.batch_size = principle, batch_size
        self.a_id = letter_id(tokenizer, "A", model.vocab_size)
        self.b_id = letter_id(tokenizer, "B", model.vocab_size)

    def question_ids(self, prompt: str, a: str, b: str) -> list[int]:
        text = JUDGE_PROMPT.format(principle=self.principle, prompt=prompt.strip(),
                                   a=a.strip(), b=b.strip())
        if self.template is not None:
            text = self.template.render([{"role": "user", "content": text}], True)
            ids = chat_prompt_ids(self.tokenizer, text, self.model.bos_id)
        else:
            ids = list(self.tokenizer.encode(text + "\nAnswer:"))
        ids = [self.model.bos_id, *ids]
        ctx = self.model.max_context
        return ids[-ctx:] if ctx else ids

    @torch.no_grad()
    def compare(self, prompts: Sequence[str], firsts: Sequence[str],
                seconds: Sequence[str]) -> torch.Tensor:
        """log P("A") - log P("B") for each question, firsts shown as A."""
        rows = [self.question_ids(p, a, b) for p, a, b in zip(prompts, firsts, seconds,
                                                             strict=True)]
        out = []
        for i in range(0, len(rows), self.batch_size):
            chunk = rows[i : i + self.batch_size]
            ids, _, lengths = pad_batch(chunk, [[]] * len(chunk), self.model.eos_id,
                                        getattr(self.model, "device", "cpu"))
            lp = self.model.logprobs(ids)[torch.arange(len(chunk)), lengths - 1]
            out.append((lp[:, self.a_id] - lp[:, self.b_id]).float().cpu())
        return torch.cat(out)

    def judge(self, prompts: Sequence[str], xs: Sequence[str], ys: Sequence[str]) -> Verdicts:
        return judge_both_orders(self.compare, prompts, xs, ys)


@dataclass
class LabelReport:
    pairs: int = 0
    identical: int = 0  # the two samples were the same text: skipped
    agreement: float | None = None  # with the verifiable reward, where its rewards differ
    compared: int = 0  # pairs the agreement is over
    mean_position_bias: float = 0.0


def label_preferences(policy: Any, tokenizer: Any, prompts: Sequence[str], judge: Judge | Any,
                      *, reward: Any = None, max_new_tokens: int = 32, temperature: float = 1.0,
                      seed: int = 0) -> tuple[list[PreferencePair], list[dict], LabelReport]:
    """Sample two responses per prompt from ``policy``, let ``judge`` pick; the preference
    pairs, one dict of judge scores per pair, and a report (agreement with ``reward`` if
    given: the share of pairs whose rewards differ where the judge chose the higher one)."""
    if not prompts:
        raise ConfigError("no prompts to label.")
    zero = (lambda ps, rs: [0.0] * len(rs))
    ro = sample_rollout(policy, tokenizer, prompts, reward if reward is not None else zero,
                        n=2, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    report = LabelReport()
    keep = [i for i in range(0, len(ro.responses), 2)
            if ro.responses[i].strip() != ro.responses[i + 1].strip()]
    report.identical = len(ro.responses) // 2 - len(keep)
    if not keep:
        return [], [], report
    ps = [ro.prompts[i] for i in keep]
    xs = [ro.responses[i] for i in keep]
    ys = [ro.responses[i + 1] for i in keep]
    v = judge.judge(ps, xs, ys) if hasattr(judge, "judge") else judge_both_orders(judge, ps, xs, ys)
    pairs, extra, agree, compared = [], [], 0, 0
    for k, i in enumerate(keep):
        x_wins = bool(v.preference[k] > 0)
        pairs.append(PreferencePair(ps[k], xs[k] if x_wins else ys[k], ys[k] if x_wins else xs[k]))
        rx, ry = float(ro.rewards[i]), float(ro.rewards[i + 1])
        extra.append({"judge_p_chosen": float(torch.sigmoid(v.preference[k].abs())),
                      "position_bias": float(v.position_bias[k]),
                      "reward_chosen": rx if x_wins else ry,
                      "reward_rejected": ry if x_wins else rx})
        if reward is not None and rx != ry:
            compared += 1
            agree += int((rx > ry) == x_wins)
    report.pairs, report.compared = len(pairs), compared
    report.agreement = agree / compared if compared else None
    report.mean_position_bias = float(v.position_bias.mean())
    return pairs, extra, report


def judge_agreement(judge: Judge | Any, pairs: Sequence[PreferencePair]) -> dict[str, float]:
    """How often the judge prefers the labelled ``chosen`` (e.g. human labels of HH-RLHF)."""
    ps = [p.prompt for p in pairs]
    v = (judge.judge(ps, [p.chosen for p in pairs], [p.rejected for p in pairs])
         if hasattr(judge, "judge") else
         judge_both_orders(judge, ps, [p.chosen for p in pairs], [p.rejected for p in pairs]))
    agree = (v.preference > 0).float()
    return {"pairs": len(pairs), "agreement": float(agree.mean()),
            "mean_position_bias": float(v.position_bias.mean())}


__all__ = [
    "DEFAULT_PRINCIPLE",
    "JUDGE_PROMPT",
    "Judge",
    "LabelReport",
    "Verdicts",
    "judge_agreement",
    "judge_both_orders",
    "label_preferences",
    "letter_id",
]
