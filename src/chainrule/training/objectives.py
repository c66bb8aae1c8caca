"""Training objectives: what the loop minimises, as objects with one method, ``loss(model, batch)``.

The loop draws batches and steps the optimiser; it never looks at a family's name or at what the
loss is. An objective reads what it needs from a :class:`TrainBatch` -- inputs and targets, an
optional loss mask (completion-only fine-tuning), a source (conditional models), pairs of
chosen/rejected sequences (preference learning) -- and returns a :class:`LossOutput`: the scalar
loss, and the recurrent state to carry to the next batch (truncated BPTT).

    NextTokenCE      -(1/N) sum_t log P(y_t | x_<=t [, source])     language modelling
    CompletionCE     the same over the positions where loss_mask is True (SFT on answers only)
    MaskedLMLoss     BERT's masked-LM loss: corrupt 15% of the tokens, predict the originals

Objectives for preference learning (DPO, PPO) take ``chosen`` / ``rejected`` from the batch
and are added the same way: a class with ``loss``; nothing in the loop changes.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from chainrule.errors import ConfigError

IGNORE = -100  # target id that cross-entropy skips


@dataclass
class TrainBatch:
    """One micro-batch.

    Attributes:
        x: inputs (B, T).
        y: next-token targets (B, T); ``IGNORE`` (-100) where nothing is to be predicted.
        reset: a carried recurrent state must start afresh (the streams wrapped round).
        loss_mask: (B, T) bool, True where the target counts (None: wherever y is not IGNORE).
        source: a conditional model's source batch (ids (B, S) or a ``Source``).
        state: the recurrent state carried in from the previous batch (set by the loop).
        chosen, rejected: (B, T) preferred and dispreferred sequences (preference objectives).
        attn_mask: (B, 1, T, T) bool, True = may attend, replacing the causal mask (packed
            examples: :func:`chainrule.models.layers.document_mask`); passed to the model.
        positions: (B, T) position of each input (restarting at 0 per packed example).
    """

    x: torch.Tensor
    y: torch.Tensor
    reset: bool = False
    loss_mask: torch.Tensor | None = None
    source: Any = None
    state: Any = None
    chosen: torch.Tensor | None = None
    rejected: torch.Tensor | None = None
    attn_mask: torch.Tensor | None = None
    positions: torch.Tensor | None = None

    def with_state(self, state: Any) -> TrainBatch:
        return replace(self, state=state)


@dataclass
class LossOutput:
    """A scalar ``loss`` and the ``state`` to carry to the next batch (None if stateless)."""

    loss: torch.Tensor
    state: Any = None


class Objective(abc.ABC):
    """A training objective. Subclasses implement :meth:`compute`."""

    name: str = ""

    @abc.abstractmethod
    def compute(self, model: torch.nn.Module, batch: TrainBatch) -> LossOutput:
        """The loss on ``batch`` (with gradients) and the state to carry."""

    def loss(self, model: torch.nn.Module, batch: TrainBatch) -> torch.Tensor:
        """The scalar loss on ``batch``."""
        return self.compute(model, batch).loss

    def check(self, model: Any) -> None:
        """Refuse a model this objective cannot train, with a sentence (called once)."""


def _forward(model: torch.nn.Module, batch: TrainBatch):
    """``model(x, state[, source=...])`` -> (logits, state); the source, the attention mask and
    positions only when the batch has them."""
    extra: dict[str, Any] = {}
    if batch.source is not None:
        extra["source"] = batch.source
    if batch.attn_mask is not None:
        extra["attn_mask"] = batch.attn_mask
    if batch.positions is not None:
        extra["positions"] = batch.positions
    return model(batch.x, batch.state, **extra)


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                           ignore_index=IGNORE)


class NextTokenCE(Objective):
    """Next-token cross-entropy, the language-modelling loss: mean of -log P(y_t | x_<=t).

    Positions whose target is ``IGNORE``, or where ``loss_mask`` is False, do not count.
    """

    name = "next-token"

    def check(self, model: Any) -> None:
        if getattr(model, "masked", False):
            raise ConfigError("next-token cross-entropy trains left-to-right models; a masked "
                              "model trains with the masked-LM objective.")

    def compute(self, model, batch):
        logits, state = _forward(model, batch)
        y = batch.y
        if batch.loss_mask is not None:
            y = torch.where(batch.loss_mask, y, torch.full_like(y, IGNORE))
        return LossOutput(_cross_entropy(logits, y), state)


class CompletionCE(NextTokenCE):
    """Cross-entropy on the completion only (supervised fine-tuning): the batch must say, in
    ``loss_mask``, which targets belong to the answer; the prompt's tokens are context."""

    name = "completion"

    def compute(self, model, batch):
        if batch.loss_mask is None:
            raise ConfigError("completion-only loss needs a loss mask (which tokens are the "
                              "answer); build batches with prompt/completion pairs.")
        if not bool(batch.loss_mask.any()):
            raise ConfigError("this batch has no completion tokens to learn from (every "
                              "target is masked); check the prompt/completion split.")
        return super().compute(model, batch)


class MaskedLMLoss(Objective):
    """BERT's masked-LM objective (Devlin et al. 2019).

    Each real token is chosen with probability ``rate``; a chosen token is replaced by
    ``mask_id`` 80% of the time, by a random token 10%, and kept 10%; the loss is the
    cross-entropy of the original tokens at the chosen positions. The model is called as
    ``model(corrupted, None)`` and returns ``(logits[B, T, V], None)`` over all positions.

    Args:
        mask_id: id of the ``[MASK]`` token.
        vocab_size: ids drawn for the random replacements are in ``[first_random, vocab_size)``.
        rate: probability a token is chosen (0.15).
        first_random: the first id that is an ordinary token (specials come first).
        generator: a ``torch.Generator`` for the corruption (reproducible batches).
        never: ids never chosen and never drawn as random replacements (the specials:
            ``bos``, ``eos``, ``[MASK]``).
        word_ids: whole-word masking: a function (B, T) ids -> (B, T) word index of each token
            (1, 2, ... along a row, e.g. ``BERT.word_ids``); a word is chosen with probability
            ``rate`` and all its tokens with it (the 80/10/10 split stays per token).
    """

    name = "masked-lm"

    def __init__(self, mask_id: int, vocab_size: int, rate: float = 0.15,
                 first_random: int = 0, generator: torch.Generator | None = None,
                 never: tuple[int, ...] = (), word_ids: Any = None):
        if not 0 < rate < 1:
            raise ConfigError(f"the masking rate must be in (0, 1), got {rate}.")
        self.mask_id, self.vocab_size, self.rate = mask_id, vocab_size, rate
        self.first_random, self.generator = first_random, generator
        self.never = tuple(sorted({int(i) for i in never}))
        allowed = [i for i in range(first_random, vocab_size) if i not in self.never]
        if not allowed:
            raise ConfigError("no ordinary token is left to draw random replacements from; "
                              "check first_random and never.")
        self._allowed = torch.tensor(allowed, dtype=torch.long)
        self.word_ids = word_ids

    def check(self, model: Any) -> None:
        if not getattr(model, "masked", False):
            raise ConfigError("the masked-LM objective trains a masked (bidirectional) model; "
                              "a left-to-right model trains with next-token cross-entropy.")
        if self.word_ids is not None:  # refuse missing word boundaries before training
            self.word_ids(torch.zeros(1, 1, dtype=torch.long))

    def corrupt(self, tokens: torch.Tensor, real: torch.Tensor | None = None):
        """(corrupted tokens, targets with IGNORE where not chosen)."""
        g, dev = self.generator, tokens.device
        real = torch.ones_like(tokens, dtype=torch.bool) if real is None else real
        if self.never:
            real = real & ~torch.isin(tokens, torch.tensor(self.never, device=dev))

        def uniform() -> torch.Tensor:
            return torch.rand(tokens.shape, generator=g).to(dev)

        draw, words = uniform(), None
        if self.word_ids is not None:  # whole words: each token takes its word's draw
            words = self.word_ids(tokens).to(dev)
            draw = draw.gather(1, (words - 1).clamp(0, tokens.shape[1] - 1))
        chosen = (draw < self.rate) & real
        if not bool(chosen.any()):  # at least one target per batch
            first = real.flatten().nonzero()[:1]
            chosen.view(-1)[first] = True
            if words is not None and len(first):
                b, t = divmod(int(first), tokens.shape[1])
                chosen[b] |= real[b] & (words[b] == words[b, t])
        roll = uniform()
        random_ids = self._allowed[torch.randint(len(self._allowed), tokens.shape,
                                                 generator=g)].to(dev)
        out = torch.where(chosen & (roll < 0.8), torch.full_like(tokens, self.mask_id), tokens)
        out = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), random_ids, out)
        return out, torch.where(chosen, tokens, torch.full_like(tokens, IGNORE))

    def compute(self, model, batch):
        real = batch.loss_mask if batch.loss_mask is not None else None
        corrupted, targets = self.corrupt(batch.x, real)
        logits, _ = model(corrupted, None)
        return LossOutput(_cross_entropy(logits, targets), None)


OBJECTIVES: dict[str, type[Objective]] = {
    "next-token": NextTokenCE,
    "completion": CompletionCE,
}


def default_objective(model: Any) -> Objective:
    """Next-token cross-entropy for left-to-right models; for a masked model (``masked =
    True``), the masked-LM loss with its ``mask_id``, never choosing ``bos``/``eos``/``[MASK]``,
    choosing whole words when the model's ``whole_word_masking`` is set."""
    if getattr(model, "masked", False):
        never = (model.bos_id, model.eos_id, model.mask_id)
        word_ids = model.word_ids if getattr(model, "whole_word_masking", False) else None
        return MaskedLMLoss(model.mask_id, model.vocab_size, never=never, word_ids=word_ids)
    return NextTokenCE()


__all__ = [
    "IGNORE",
    "OBJECTIVES",
    "CompletionCE",
    "LossOutput",
    "MaskedLMLoss",
    "NextTokenCE",
    "Objective",
    "TrainBatch",
    "default_objective",
]
