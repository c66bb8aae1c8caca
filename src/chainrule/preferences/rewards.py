"""Rewards: built-in verifiable reward functions, named, and a trained reward model as a reward.

A verifiable reward is computed exactly from the response text, so every method (DPO, PPO,
GRPO, an AI judge) can be checked against ground truth. They are chosen by a name and an
argument -- never by running Python from a file:

    contains:WORD    1 if the response holds WORD as a whole word (any case), else 0
    shorter:N        1 if the response has fewer than N words, else 0
    sentiment        (#positive - #negative words) / sqrt(#words + 1), by a small built-in lexicon
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chainrule.errors import ConfigError

_WORD = re.compile(r"[A-Za-z']+")

# a small hand-made polarity lexicon (common English words; enough for a toy verifiable task)
POSITIVE = frozenset(
    [
        "good",
        "great",
        "love",
        "loved",
        "lovely",
        "happy",
        "joy",
        "joyful",
        "sweet",
        "kind",
        "gentle",
        "fair",
        "fine",
        "best",
        "better",
        "beautiful",
        "glad",
        "merry",
        "delight",
        "delightful",
        "pleasant",
        "wonderful",
        "excellent",
        "brave",
        "noble",
        "bright",
        "true",
        "honest",
        "warm",
        "friend",
        "friends",
        "peace",
        "smile",
        "laugh",
        "hope",
        "dear",
        "grace",
        "blessed",
        "bless",
        "win",
        "well",
        "nice",
        "calm",
        "free",
        "rich",
    ]
)
NEGATIVE = frozenset(
    [
        "bad",
        "evil",
        "hate",
        "hated",
        "sad",
        "sorrow",
        "grief",
        "cruel",
        "foul",
        "false",
        "dark",
        "death",
        "die",
        "dead",
        "kill",
        "poor",
        "ill",
        "worse",
        "worst",
        "ugly",
        "angry",
        "fear",
        "afraid",
        "pain",
        "weep",
        "tears",
        "curse",
        "cursed",
        "wicked",
        "vile",
        "terrible",
        "awful",
        "horrible",
        "enemy",
        "war",
        "blood",
        "shame",
        "sick",
        "wrong",
        "lose",
        "lost",
        "hurt",
        "harm",
    ]
)


def words(text: str) -> list[str]:
    """Lower-cased words: ``words("Don't go, Romeo!") == ["don't", "go", "romeo"]``."""
    return [w.lower() for w in _WORD.findall(text)]


@dataclass(frozen=True)
class VerifiableReward:
    """A named reward computed exactly from a response: ``reward(prompt, response) -> float``."""

    name: str
    fn: Callable[[str, str], float]

    def __call__(self, prompt: str, response: str) -> float:
        return float(self.fn(prompt, response))

    def batch(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return [self(p, r) for p, r in zip(prompts, responses, strict=True)]


def contains_word(word: str) -> VerifiableReward:
    target = word.lower()
    return VerifiableReward(f"contains:{word}", lambda _p, r: float(target in words(r)))


def shorter_than(n: int) -> VerifiableReward:
    return VerifiableReward(f"shorter:{n}", lambda _p, r: float(len(words(r)) < n))


def lexicon_sentiment(_p: str, response: str) -> float:
    ws = words(response)
    score = sum(w in POSITIVE for w in ws) - sum(w in NEGATIVE for w in ws)
    return score / math.sqrt(len(ws) + 1)


REWARD_HELP = "contains:WORD, shorter:N or sentiment"


def parse_reward(spec: str) -> VerifiableReward:
    """A built-in reward from its spec: ``contains:love``, ``shorter:8``, ``sentiment``."""
    name, _, arg = spec.partition(":")
    if name == "contains" and arg and " " not in arg.strip():
        return contains_word(arg.strip())
    if name == "shorter":
        try:
            n = int(arg)
        except ValueError:
            n = 0
        if n > 0:
            return shorter_than(n)
    if name == "sentiment" and not arg:
        return VerifiableReward("sentiment", lexicon_sentiment)
    raise ConfigError(
        f"unknown reward {spec!r}; the built-in rewards are {REWARD_HELP} (or "
        "pass a trained reward model)."
    )


__all__ = [
    "NEGATIVE",
    "POSITIVE",
    "REWARD_HELP",
    "VerifiableReward",
    "contains_word",
    "lexicon_sentiment",
    "parse_reward",
    "shorter_than",
    "words",
]
