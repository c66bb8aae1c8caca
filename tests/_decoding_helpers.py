"""Shared fixtures of the decoding tests: fitted tiny models of every family, a letter
tokenizer for the tiny task, a chi-square test written from the regularised gamma, and the
one-beam-is-greedy check of the conditional models."""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

from chainrule.testing.conformance import TinyTask
from chainrule.testing.families import FAMILY_SPECS
from chainrule.tokenizers.base import BOS, EOS, Tokenizer, register_tokenizer

TASK = TinyTask(seed=0)
FAMILIES = sorted(n for n, spec in FAMILY_SPECS.items() if spec.plain_generator)


@functools.cache
def fitted(name: str):
    torch.manual_seed(0)
    model = FAMILY_SPECS[name].make(TASK)
    if hasattr(model, "eval"):
        model.eval()
    return model


@register_tokenizer
class LetterTokenizer(Tokenizer):
    """The tiny task's vocabulary as text: id 2 -> 'a', 3 -> 'b', ...; 0/1 are <s>/</s>."""

    kind = "test-letters"

    def __init__(self, vocab_size: int = TASK.vocab_size):
        self._v = vocab_size
        self.special_tokens = {BOS: 0, EOS: 1}

    @property
    def vocab_size(self) -> int:
        return self._v

    def encode(self, text: str, *, allow_special: bool = False) -> list[int]:
        return [ord(c) - ord("a") + 2 for c in text]

    def decode(self, ids) -> str:
        return "".join(chr(ord("a") + i - 2) for i in ids if i >= 2)

    def id_to_token(self, idx: int) -> str:
        return {0: BOS, 1: EOS}.get(idx) or chr(ord("a") + idx - 2)

    def token_to_id(self, token: str) -> int | None:
        ids = self.encode(token)
        return ids[0] if len(ids) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        return {"vocab_size": self._v}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LetterTokenizer:
        return cls(int(data["vocab_size"]))


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X ~ chi-square(df): the regularised upper incomplete gamma Q(df/2, x/2)."""
    return float(torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64),
                                         torch.tensor(x / 2, dtype=torch.float64)))


def chi_square_pvalue(counts: torch.Tensor, probs: torch.Tensor, min_expected: float = 5.0):
    """Pearson's goodness-of-fit p-value of ``counts`` (V,) against ``probs`` (V,).

    Tokens the model gives probability 0 must never be drawn (checked by the caller); the rest
    are sorted by expected count and the smallest merged until each bin expects >= 5.
    """
    n = counts.sum().item()
    probs = probs.double() / probs.double().sum()
    keep = probs > 0
    exp, obs = (probs[keep] * n), counts[keep].double()
    order = exp.argsort()
    exp, obs = exp[order].tolist(), obs[order].tolist()
    bins_e, bins_o, acc_e, acc_o = [], [], 0.0, 0.0
    for e, o in zip(exp, obs):
        acc_e, acc_o = acc_e + e, acc_o + o
        if acc_e >= min_expected:
            bins_e.append(acc_e)
            bins_o.append(acc_o)
            acc_e, acc_o = 0.0, 0.0
    if acc_e > 0 and bins_e:
        bins_e[-1] += acc_e
        bins_o[-1] += acc_o
    if len(bins_e) < 2:
        return 1.0  # a (near-)deterministic distribution: nothing to test
    stat = sum((o - e) ** 2 / e for o, e in zip(bins_o, bins_e))
    return chi2_sf(stat, len(bins_e) - 1)


def assert_one_beam_is_greedy(model, sources: list[list[int]], max_new_tokens: int) -> None:
    """Beam search with one beam gives greedy decoding's tokens and log-probabilities, given
    each source (empty prompts)."""
    from chainrule.decoding import GenerationConfig, generate

    prompts = [[] for _ in sources]
    greedy = generate(model, prompts, GenerationConfig(strategy="greedy",
                                                       max_new_tokens=max_new_tokens),
                      sources=sources)
    beam = generate(model, prompts, GenerationConfig(strategy="beam", num_beams=1,
                                                     max_new_tokens=max_new_tokens),
                    sources=sources)
    for [g], [b] in zip(greedy, beam, strict=True):
        assert g.token_ids == b.token_ids
        assert math.isclose(g.logprob, b.logprob, abs_tol=1e-4)
