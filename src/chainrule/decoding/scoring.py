"""Scoring helpers shared by decoding and evaluation.

    score_tokens(model, [ids, ...])                 per-token log P of each sequence (after BOS)
    continuation_logprob(model, prompt, cont)      log P(cont | BOS + prompt), summed
    score_continuations(model, [(prompt, cont)])   the same for a batch of pairs
    score_text(model, tokenizer, text)             ids, token strings and log-probs of a text

All log-probabilities are natural logs. Every sequence is scored after ``model.bos_id``, the
convention every family shares; ``add_eos=True`` also scores the end of the sequence. Sequences
longer than ``model.max_context`` are scored as the model's own ``token_logprobs`` defines
(a GPT slides its window; an n-gram model reads its last n-1 tokens anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from chainrule.models.base import Scorer
from chainrule.models.scoring import score_sequences


def score_tokens(
    model: Scorer,
    sequences: Sequence[Sequence[int]],
    *,
    add_bos: bool = True,
    add_eos: bool = False,
    max_tokens: int | None = None,
    sources: Sequence[Sequence[int]] | None = None,
) -> list[torch.Tensor]:
    """Log-probability of every token of every sequence given the tokens before it.

    A thin framing layer over :func:`chainrule.models.scoring.score_sequences`, the one
    batched scorer that evaluation uses too.

    Args:
        model: any ``Scorer``.
        sequences: id lists (without BOS / EOS).
        add_bos: condition the first token on BOS (True); False scores from the second token
            (the first id is then the context, e.g. when the caller framed the sequence).
        add_eos: also score EOS after the last token.
        max_tokens: cap on batch x length per forward pass (default: sized to the vocabulary).
        sources: for a conditional model, one source id list per sequence.
    Returns:
        One float32 CPU tensor per sequence of length ``len(seq) (+1 with EOS) (-1 without BOS)``.
    """
    bos = [model.bos_id] if add_bos else []
    eos = [model.eos_id] if add_eos else []
    framed = [bos + [int(t) for t in s] + eos for s in sequences]
    scores = score_sequences(model, framed, max_tokens=max_tokens, sources=sources)
    return [torch.from_numpy(a).float() for a in scores]


def continuation_logprob(
    model: Scorer, prompt: Sequence[int], continuation: Sequence[int]
) -> float:
    """log P(continuation | BOS + prompt), the sum over the continuation's tokens."""
    return score_continuations(model, [(prompt, continuation)])[0]


def score_continuations(
    model: Scorer,
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    max_tokens: int | None = None,
) -> list[float]:
    """Summed log-probability of each continuation given BOS + its prompt.

    Args:
        pairs: (prompt ids, continuation ids), both without BOS.
    Returns:
        One float per pair (0.0 for an empty continuation).
    """
    seqs = [list(p) + list(c) for p, c in pairs]
    scores = score_tokens(model, seqs, max_tokens=max_tokens)
    return [float(s[len(p) :].double().sum()) for s, (p, _) in zip(scores, pairs)]


@dataclass(frozen=True)
class TextScore:
    """Per-token scores of a text.

    Attributes:
        ids: the text's token ids (without BOS; with EOS last if it was scored).
        tokens: each id's vocabulary entry.
        logprobs: (len(ids),) natural-log probability of each id given the ones before it.
    """

    ids: list[int]
    tokens: list[str]
    logprobs: torch.Tensor

    @property
    def total(self) -> float:
        return float(self.logprobs.double().sum())


def score_text(model: Scorer, tokenizer: Any, text: str, *, add_eos: bool = False) -> TextScore:
    """Encode ``text`` and score every token after BOS (and EOS if ``add_eos``)."""
    ids = list(tokenizer.encode(text))
    [lp] = score_tokens(model, [ids], add_eos=add_eos)
    if add_eos:
        ids = ids + [model.eos_id]
    return TextScore(ids, [tokenizer.id_to_token(i) for i in ids], lp)


def split_continuation(tokenizer: Any, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of ``prompt`` and of ``continuation`` as they are tokenised together.

    Subword tokenizers may merge across the boundary (``"hel" + "lo"``), so the pair is
    encoded as one text and split where the prompt's own encoding ends when that is a prefix;
    otherwise each part is encoded alone (the convention of lm-evaluation-harness).
    """
    p = list(tokenizer.encode(prompt)) if prompt else []
    whole = list(tokenizer.encode(prompt + continuation))
    if whole[: len(p)] == p:
        return p, whole[len(p) :]
    return p, list(tokenizer.encode(continuation))


def text_continuation_logprob(model: Scorer, tokenizer: Any, prompt: str, continuation: str) -> float:
    """log P(continuation | BOS + prompt) for texts (see :func:`split_continuation`)."""
    p, c = split_continuation(tokenizer, prompt, continuation)
    return continuation_logprob(model, p, c)


__all__ = [
    "TextScore",
    "continuation_logprob",
    "score_continuations",
    "score_text",
    "score_tokens",
    "split_continuation",
    "text_continuation_logprob",
]
