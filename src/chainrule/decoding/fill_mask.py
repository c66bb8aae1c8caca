"""Fill in the blanks with a masked model: ``"The [MASK] sat on the mat."`` -> ranked fillers.

The text is split at each ``[MASK]``; the pieces are encoded with the model's tokenizer and
joined with the model's mask id between them, inside ``<s> ... </s>`` (how sentences are scored
everywhere). Each ``[MASK]`` stands for one token; all of them are predicted at once, each from
the rest of the sentence. Special tokens are not offered as fillers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from chainrule.errors import ConfigError

MASK = "[MASK]"


@dataclass(frozen=True)
class Filler:
    """One candidate for one ``[MASK]``: its token, id and probability."""

    token: str
    id: int
    prob: float


def encode_masked(model, tokenizer, text: str) -> tuple[list[int], list[int]]:
    """``text`` with ``[MASK]`` slots -> (framed ids, the positions of the slots).

    Example: ``"the [MASK] sat"`` with a word tokenizer -> ``([bos, the, MASK, sat, eos], [2])``.
    """
    parts = text.split(MASK)
    if len(parts) == 1:
        raise ConfigError(f"the sentence has no {MASK}; mark the token to fill in, e.g. "
                          f'"The {MASK} sat on the mat."')
    ids, slots = [model.bos_id], []
    for i, part in enumerate(parts):
        if i:
            slots.append(len(ids))
            ids.append(model.mask_id)
        ids.extend(tokenizer.encode(part))
    ids.append(model.eos_id)
    return ids, slots


def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> list[list[Filler]]:
    """The ``top_k`` most probable fillers of each ``[MASK]`` in ``text``, best first.

    Args:
        model: a masked model (``masked = True``, e.g. ``bert``).
        tokenizer: the model's tokenizer.
        text: a sentence with one or more ``[MASK]``.
        top_k: fillers per slot.
    Raises:
        ConfigError: a left-to-right model, no ``[MASK]`` in the text, top_k < 1, or a sentence
            longer than the model's positions.
    """
    if not getattr(model, "masked", False):
        raise ConfigError(f"fill-mask needs a masked model (bert); a {model.family} model "
                          "predicts left to right: use `chainrule generate`.")
    if top_k < 1:
        raise ConfigError(f"top_k must be at least 1, got {top_k}.")
    ids, slots = encode_masked(model, tokenizer, text)
    limit = getattr(model.cfg, "block_size", len(ids))
    if len(ids) > limit:
        raise ConfigError(f"the sentence is {len(ids)} tokens long; this model reads at most "
                          f"{limit}; shorten it.")
    specials = set(tokenizer.special_tokens.values()) | {model.mask_id, model.bos_id,
                                                         model.eos_id}
    with model.inference():
        x = torch.tensor([ids], device=model.device)
        logits, _ = model(x)
        probs = torch.softmax(logits[0, slots].float(), dim=-1)  # (slots, V)
    probs[:, sorted(i for i in specials if i < probs.shape[1])] = -1.0  # never offered
    k = min(top_k, probs.shape[1] - len(specials))
    best = probs.topk(max(k, 1), dim=-1)
    return [[Filler(tokenizer.decode([int(i)]), int(i), float(p))
             for p, i in zip(vals.tolist(), idx.tolist())]
            for vals, idx in zip(best.values, best.indices)]


__all__ = ["MASK", "Filler", "encode_masked", "fill_mask"]
