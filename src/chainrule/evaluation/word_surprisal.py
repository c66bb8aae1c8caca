"""Word surprisal with the word-boundary correction, for stimuli with an optional context.

Tokenizers that mark a word boundary at the START of a word (byte-level BPE's ``Ġword``, a
character model's space token) make the naive sum of a word's token surprisals wrong in two
ways (Oh & Schuler 2024; Pimentel & Meister 2024): it charges the word for the boundary in
front of it -- which belongs to the previous word's ending -- and never charges it for its own
end. The correction applied here (Pimentel & Meister's, eq. "bow-fix") is

    s(w_t) = -log2 P(tokens of w_t | c)  -  log2 P(bow | c, w_t)  +  log2 P(bow | c)

where ``bow`` is the set of tokens that begin a new word -- every token whose text starts with
whitespace -- plus ``</s>`` (the end of the text also ends the word). The first word of a text
(right after ``<s>``) has no ``+ log2 P(bow | c)`` term: ``<s>`` itself announces a word. The
terms telescope, so the corrected word surprisals of a sentence plus its corrected ``</s>`` row
(``-log2 P(</s> | c) + log2 P(bow | c)``) still sum to ``-log2 P(sentence)``.

The correction needs the model's full next-token distribution, so it applies to left-to-right
models (``logprobs``) with a leading-boundary tokenizer (some token starts with whitespace).
Word-level tokenizers (every token is a word), classic BPE (end-of-word marker: the boundary is
already the last token of the word) and masked models are scored by the plain sum, and the
rows say so (``corrected`` is False).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from chainrule.evaluation.stimuli import Stimulus
from chainrule.evaluation.surprisal import assign_tokens_to_words, word_spans
from chainrule.evaluation.textscore import LOG2E, encode_text, frame, token_spans
from chainrule.models.base import Scorer
from chainrule.models.scoring import score_sequences, score_with_mass
from chainrule.tokenizers.base import EOS, Tokenizer

if TYPE_CHECKING:  # a count-based model (n-grams) scores words without torch
    import torch


@dataclass(frozen=True)
class Word:
    word_index: int  # among the stimulus's words (context words are not counted)
    word: str
    surprisal_bits: float
    n_tokens: int
    start: int  # character span in the stimulus text
    end: int
    has_unk: bool = False
    is_eos: bool = False
    corrected: bool = False  # the boundary correction was applied


def boundary_mask(tokenizer: Tokenizer, model: Scorer) -> torch.Tensor | None:
    """:func:`boundary_ids` as a bool tensor (imports torch), or None."""
    import torch

    ids = boundary_ids(tokenizer, model)
    return None if ids is None else torch.from_numpy(ids)


def boundary_ids(tokenizer: Tokenizer, model: Scorer) -> np.ndarray | None:
    """The tokens that begin a word (text starting with whitespace) plus ``</s>``, as a bool
    array (V,), or None when the correction does not apply (see the module doc)."""
    if model.masked or not hasattr(model, "logprobs"):
        return None
    if getattr(tokenizer, "kind", "") in ("bpe", "word"):
        return None
    mask = np.zeros(model.vocab_size, dtype=bool)
    specials = set(getattr(tokenizer, "special_tokens", {}).values())
    for i in range(min(tokenizer.vocab_size, model.vocab_size)):
        if i in specials:
            continue
        piece = tokenizer.decode([i])
        if piece[:1].isspace():
            mask[i] = True
    if not mask.any():
        return None
    mask[model.eos_id] = True
    return mask


def score_words(
    model: Scorer,
    tokenizer: Tokenizer,
    stimuli: Sequence[Stimulus],
    *,
    eos: bool = True,
    allow_unk: bool = True,
    correct: bool = True,
    mask: np.ndarray | torch.Tensor | None = None,
    on_scored=None,
    where: Sequence[str] | None = None,
) -> list[list[Word]]:
    """Word surprisals (bits) of each stimulus, conditioned on ``<s>`` and its context.

    Args:
        model, tokenizer: a model and the tokenizer it was trained with.
        stimuli: texts with optional contexts (the context is joined with one space).
        eos: also score ``</s>`` (a last row with ``is_eos``).
        allow_unk: score ``<unk>`` (flagged by ``has_unk``) instead of refusing.
        correct: apply the boundary correction where it applies.
        mask: a precomputed :func:`boundary_ids` or :func:`boundary_mask` (saves decoding
            the vocabulary again).
        on_scored: called with the number of stimuli just scored (progress).
        where: a phrase per stimulus naming it in errors (default: ``stimulus N`` and its
            ``item`` / ``condition`` fields when it has them).
    """
    fulls = [f"{s.context} {s.text}" if s.context else s.text for s in stimuli]
    where = list(where) if where is not None else [_where(i, s) for i, s in enumerate(stimuli)]
    ids = [encode_text(tokenizer, t, allow_unk=allow_unk, where=w)
           for w, t in zip(where, fulls)]
    framed = [frame(model, x, eos=eos) for x in ids]
    if correct and mask is None:
        mask = boundary_ids(tokenizer, model)
    if correct and mask is not None:
        scored = score_with_mass(model, framed, mask, on_scored=on_scored)
    else:
        scored = [(lp, None) for lp in score_sequences(model, framed, on_scored=on_scored)]
    rule = "previous" if getattr(tokenizer, "kind", "") == "bpe" else "next"
    unk = tokenizer.unk_id
    return [_words(s, full, x, lp, mass, tokenizer, rule, unk, eos)
            for s, full, x, (lp, mass) in zip(stimuli, fulls, ids, scored)]


def _where(i: int, stim: Stimulus) -> str:
    """``stimulus 3: item 2, condition 'ungrammatical'`` (the fields that name a stimulus)."""
    named = [f"{k} {stim.fields[k]!r}" if k == "condition" else f"{k} {stim.fields[k]}"
             for k in ("item", "condition") if k in stim.fields]
    return f"stimulus {i + 1}" + (": " + ", ".join(named) if named else "")


def _words(stim: Stimulus, full: str, x: list[int], lp: np.ndarray, mass, tokenizer,
           rule: str, unk, eos: bool) -> list[Word]:
    bits = -lp * LOG2E
    owner = assign_tokens_to_words(full, token_spans(tokenizer, full, x), whitespace_to=rule)
    spans = word_spans(full)
    n_ctx = len(word_spans(stim.context)) if stim.context else 0
    shift = len(full) - len(stim.text)
    by_word: dict[int, list[int]] = {}
    for i, w in enumerate(owner):
        by_word.setdefault(w, []).append(i)
    out = []
    for w in range(n_ctx, len(spans)):
        mine = by_word.get(w, [])
        s = float(sum(bits[i] for i in mine))
        if mass is not None and mine:
            s -= mass[mine[-1] + 1] * LOG2E
            if w > 0:
                s += mass[mine[0]] * LOG2E
        a, b = spans[w]
        out.append(Word(w - n_ctx, full[a:b], s, len(mine), a - shift, b - shift,
                        unk is not None and any(x[i] == unk for i in mine),
                        corrected=mass is not None))
    if eos:
        s = float(bits[-1])
        if mass is not None and x:
            s += mass[len(x)] * LOG2E
        n = len(stim.text)
        out.append(Word(len(spans) - n_ctx, EOS, s, 1, n, n, is_eos=True,
                        corrected=mass is not None))
    return out


__all__ = ["Word", "boundary_ids", "boundary_mask", "score_words"]
