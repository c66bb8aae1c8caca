"""Logit transforms: small pure functions ``(B, V) -> (B, V)`` that compose.

Each takes a batch of scores (log-probabilities or any logits; softmax is shift-invariant) and
returns new scores; a token a transform rules out gets ``-inf``. None of them modifies its
input. The sampling strategy is "apply the transforms, then draw from ``softmax``":

    warp = compose(partial(temperature, t=0.7), partial(top_k, k=40), partial(top_p, p=0.9))
    probs = warp(logprobs).softmax(-1)

Worked example (one row, probabilities ``[0.5, 0.3, 0.15, 0.05]``):

    top_k(k=2)      keeps [0.5, 0.3]              -> renormalised [0.625, 0.375, 0, 0]
    top_p(p=0.8)    keeps [0.5, 0.3] (0.5 < 0.8, 0.5 + 0.3 >= 0.8)
    top_p(p=0.81)   keeps [0.5, 0.3, 0.15]
    min_p(p=0.2)    keeps tokens with prob >= 0.2 * 0.5 = 0.1 -> [0.5, 0.3, 0.15]
    temperature(t=0) keeps only the arg-max 0.5 (greedy)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce

import torch

from chainrule.errors import ConfigError

Transform = Callable[[torch.Tensor], torch.Tensor]

NEG_INF = float("-inf")


def compose(*transforms: Transform) -> Transform:
    """Chain transforms left to right: ``compose(f, g)(x) == g(f(x))``."""
    if not transforms:
        return lambda x: x
    return lambda x: reduce(lambda acc, f: f(acc), transforms, x)


def temperature(logits: torch.Tensor, t: float) -> torch.Tensor:
    """Divide scores by ``t`` (> 1 flattens, < 1 sharpens); ``t == 0`` keeps only the arg-max.

    Args:
        logits: (B, V) scores.
        t: temperature >= 0.
    Returns:
        (B, V) scores; at ``t == 0`` every token but the first arg-max of each row is ``-inf``.
    """
    if t < 0:
        raise ConfigError(f"temperature must be >= 0, got {t}; use 0 for greedy decoding.")
    if t == 0:
        # the limit t -> 0 of softmax(x / t) puts all mass on the arg-max
        return greedy_mask(logits)
    if t == 1:
        return logits
    return logits / t


def greedy_mask(logits: torch.Tensor) -> torch.Tensor:
    """Keep only the first arg-max of each row: (B, V) -> (B, V) with one finite entry."""
    out = torch.full_like(logits, NEG_INF)
    best = logits.argmax(dim=-1, keepdim=True)
    return out.scatter(-1, best, logits.gather(-1, best))


def top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` highest-scoring tokens of each row (ties at the k-th score are all kept).

    Args:
        logits: (B, V) scores.
        k: number of tokens to keep, >= 1; ``k >= V`` keeps everything.
    """
    if k < 1:
        raise ConfigError(f"top_k must be at least 1, got {k}.")
    if k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]  # (B, 1) the k-th best score
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most probable tokens whose mass reaches ``p``.

    A token is kept when the probability mass of the tokens ranked above it is still below
    ``p``; so the most probable token is always kept and the kept mass is >= ``p``.

    Args:
        logits: (B, V) scores.
        p: in (0, 1]; ``p == 1`` keeps everything.
    """
    if not 0 < p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {p}; 1 keeps every token.")
    if p == 1:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.double().softmax(dim=-1)  # double: the boundary test is a sum
    mass_before = probs.cumsum(dim=-1) - probs  # (B, V) mass strictly above each rank
    drop_sorted = mass_before >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, NEG_INF)


def min_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep tokens whose probability is at least ``p`` times the most probable token's.

    Args:
        logits: (B, V) scores.
        p: in [0, 1]; ``0`` keeps everything, ``1`` keeps only the arg-max (and its ties).
    """
    if not 0 <= p <= 1:
        raise ConfigError(f"min_p must be in [0, 1], got {p}; 0 keeps every token.")
    if p == 0:
        return logits
    logp = logits.float().log_softmax(dim=-1)
    threshold = logp.max(dim=-1, keepdim=True).values + torch.log(torch.tensor(p))
    return logits.masked_fill(logp < threshold, NEG_INF)


def repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Make tokens that already occurred less likely (the CTRL paper's rule).

    A seen token's positive score is divided by ``penalty`` and a negative one multiplied by
    it. chainrule models return log-probabilities (all <= 0), so on them this multiplies the
    log-probability of every seen token by ``penalty``: with ``penalty = 1.2`` a token of
    probability 0.5 drops to 0.5 ** 1.2 ~ 0.435 before renormalisation.

    Args:
        logits: (B, V) scores.
        seen: (B, V) bool, True where the token occurred in the row's prompt or output.
        penalty: > 0; 1 is no penalty, > 1 discourages repeats, < 1 encourages them.
    """
    if penalty <= 0:
        raise ConfigError(f"repetition_penalty must be > 0, got {penalty}; 1 turns it off.")
    if penalty == 1:
        return logits
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def sampling_transform(
    t: float = 1.0, k: int | None = None, p: float = 1.0, minp: float = 0.0
) -> Transform:
    """The standard pipeline, in the order Hugging Face and llama.cpp use:
    temperature -> top-k -> top-p -> min-p. Neutral settings are skipped."""
    parts: list[Transform] = []
    if t != 1:
        parts.append(lambda x: temperature(x, t))
    if k is not None:
        parts.append(lambda x: top_k(x, k))
    if p < 1:
        parts.append(lambda x: top_p(x, p))
    if minp > 0:
        parts.append(lambda x: min_p(x, minp))
    return compose(*parts)


__all__ = [
    "Transform",
    "compose",
    "greedy_mask",
    "min_p",
    "repetition_penalty",
    "sampling_transform",
    "temperature",
    "top_k",
    "top_p",
]
