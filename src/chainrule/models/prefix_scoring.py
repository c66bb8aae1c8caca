"""Scoring many sequences that share prefixes, each shared prefix computed once.

Stimuli tables (items x conditions, minimal pairs) and multiple-choice prompts (one prompt,
many choices) are sets of sequences with long common beginnings. :func:`score_tree` gives the
same numbers as :func:`chainrule.models.scoring.score_sequences` (and ``score_with_mass``) but
feeds the model every *distinct* prefix once, through the incremental interface of a
:class:`~chainrule.models.base.Generator`:

1. every sequence is split into a **head** (``seq[:score_from]``, not scored: ``<s>`` alone,
   or ``<s>`` + a few-shot prompt) and a **tail** (scored);
2. the distinct heads of a batch are encoded by one ``start`` (right-padded, with lengths: a
   batched prefill, the prompt's KV cache);
3. the tails are walked as a prefix tree, breadth first: at depth d, one row per distinct
   prefix ``head + tail[:d+1]``; ``select_state`` picks the parent rows (a branch copies its
   parent's state) and one ``step`` feeds the d-th tokens. The distribution after a node
   scores its children.

The tree costs one model position per distinct prefix instead of one per token, and the
batched ``step`` works for every Generator (GPT's KV cache, an LSTM's (h, c)). Incremental
decoding equals the full pass (the conformance suite checks it), so the log-probabilities are
the full pass's within float32 rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from chainrule.models.base import Generator, Scorer

#: cap on rows x positions held in one batch's state (a GPT cache grows to 2x the prompt)
ROW_TOKENS = 8192
_MIN_POSITIONS = 64  # a GPT cache reserves at least this many positions per row


def can_share_prefixes(model: Scorer) -> bool:
    """True when :func:`score_tree` applies and pays: a neural left-to-right model (its cost
    per position is a network pass; an n-gram's lookups are cheaper than a ``step``)."""
    return (isinstance(model, Generator) and isinstance(model, torch.nn.Module)
            and not model.conditional and not model.masked)


def shared_fraction(sequences: Sequence[Sequence[int]]) -> float:
    """Distinct prefixes / tokens: the fraction of positions :func:`score_tree` computes."""
    seen: set = set()
    total = 0
    for s in sequences:
        node: tuple = ()
        for t in s:
            node = (hash(node), t)
            seen.add(node)
        total += len(s)
    return len(seen) / max(1, total)


@torch.no_grad()
def score_tree(
    model: Generator,
    sequences: Sequence[Sequence[int]],
    *,
    score_from: Sequence[int] | int = 1,
    mask: torch.Tensor | None = None,
    last_mass: bool = True,
    max_rows: int = 128,
    row_tokens: int = ROW_TOKENS,
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Log-probabilities of every scored token, each distinct prefix computed once.

    Args:
        model: a left-to-right Generator (:func:`can_share_prefixes`).
        sequences: id lists, each starting with ``bos``.
        score_from: per sequence (or one for all) the length ``h >= 1`` of its head: targets
            ``seq[h:]`` are scored; ``seq[:h]`` is context only.
        mask: BoolTensor (V,): also return ``mass[t] = log sum_{v in mask} P(v | seq[:t+1])``
            (as :func:`chainrule.models.scoring.score_with_mass`).
        last_mass: also compute ``mass`` after the last id (one more step for the leaves).
        max_rows, row_tokens: bound a batch's rows and rows x (head + tail) positions.
    Returns:
        for each sequence ``(lp, mass)``: ``lp`` of length ``len(seq) - 1`` with
        ``lp[t] = log P(seq[t+1] | seq[:t+1])`` for ``t >= h - 1`` (NaN before); ``mass`` of
        length ``len(seq)``, filled from ``h - 1`` on (NaN where not computed), or None.
    """
    n = len(sequences)
    starts = [score_from] * n if isinstance(score_from, int) else list(score_from)
    out: list = [None] * n
    heads = [tuple(sequences[i][: max(1, starts[i])]) for i in range(n)]
    order = sorted(range(n), key=lambda i: (heads[i], tuple(sequences[i])))
    # groups of consecutive sequences whose distinct heads are encoded by one ``start``
    group: list[int] = []
    n_heads, head_width = 0, 0
    for i in order:
        new_head = not group or heads[i] != heads[group[-1]]
        w = max(_MIN_POSITIONS, 2 * len(heads[i]))
        if new_head and group and (n_heads >= max_rows
                                   or (n_heads + 1) * max(head_width, w) > row_tokens):
            _score_group(model, sequences, heads, group, mask, last_mass, out, max_rows,
                         row_tokens)
            group, n_heads, head_width = [], 0, 0
        n_heads += new_head
        head_width = max(head_width, w)
        group.append(i)
    if group:
        _score_group(model, sequences, heads, group, mask, last_mass, out, max_rows,
                     row_tokens)
    return out


def _score_group(model, sequences, heads, group, mask, last_mass, out, max_rows,
                 row_tokens) -> None:
    """Encode the group's distinct heads once, then walk its tails in batches of rows."""
    device = model.device
    distinct = sorted({heads[i] for i in group})
    head_row = {h: r for r, h in enumerate(distinct)}
    T = max(len(h) for h in distinct)
    x = torch.full((len(distinct), T), model.eos_id, dtype=torch.long)
    for r, h in enumerate(distinct):
        x[r, : len(h)] = torch.tensor(h)
    lengths = torch.tensor([len(h) for h in distinct])
    lp, state = model.start(x.to(device), lengths.to(device))
    batches, batch, width = [], [], 0
    for i in group:
        w = max(_MIN_POSITIONS, 2 * len(sequences[i]))
        if batch and (len(batch) >= max_rows or (len(batch) + 1) * max(width, w) > row_tokens):
            batches.append(batch)
            batch, width = [], 0
        batch.append(i)
        width = max(width, w)
    batches.append(batch)
    for b in batches:
        rows = sorted({head_row[heads[i]] for i in b})
        if len(batches) == 1 and rows == list(range(len(distinct))):
            sub_lp, sub_state = lp, state  # the only walk: it may consume the state
        else:  # select_state copies: the heads' state stays intact for the next walk
            idx = torch.tensor(rows, device=device)
            sub_lp, sub_state = lp[idx], model.select_state(state, idx)
        at = {("head", r): j for j, r in enumerate(rows)}
        _walk(model, sequences, heads, b, head_row, sub_lp, sub_state, at, mask, last_mass,
              out)


def _walk(model, sequences, heads, batch, head_row, lp, state, rows, mask, last_mass,
          out) -> None:
    """Breadth-first over the tails of ``batch``: one ``step`` per depth, one row per node."""
    device = model.device
    maskf = None if mask is None else mask.to(device=device, dtype=torch.float32)
    res = {}
    for i in batch:
        L = len(sequences[i])
        res[i] = (np.full(L - 1, np.nan), np.full(L, np.nan) if mask is not None else None)
    # node = (parent node, token); a head's node is ("head", r); rows: node -> state row
    cur = {i: ("head", head_row[heads[i]]) for i in batch}
    if mask is not None:
        m = _mass(lp, maskf)
        for i in batch:
            res[i][1][len(heads[i]) - 1] = m[rows[cur[i]]]
    active = [i for i in batch if len(sequences[i]) > len(heads[i])]
    d = 0
    while active:
        # children at this depth: (parent, token), in first-seen order
        child_of = {}
        for i in active:
            key = (cur[i], sequences[i][len(heads[i]) + d])
            child_of.setdefault(key, len(child_of))
        keys = list(child_of)
        parents = torch.tensor([rows[p] for p, _ in keys], device=device)
        toks = torch.tensor([t for _, t in keys], device=device)
        got = lp[parents, toks].double().cpu().numpy()
        # which children are fed: those with a longer sequence below (or the mass after them)
        longer = set()
        for i in active:
            k = (cur[i], sequences[i][len(heads[i]) + d])
            if len(sequences[i]) > len(heads[i]) + d + 1 or (mask is not None and last_mass):
                longer.add(child_of[k])
            pos = len(heads[i]) + d - 1  # lp index of this target
            res[i][0][pos] = got[child_of[k]]
            cur[i] = k
        feed = sorted(longer)
        if feed:
            idx = parents[feed] if len(feed) < len(keys) else parents
            if not (len(idx) == lp.shape[0] and torch.equal(idx.cpu(), torch.arange(len(idx)))):
                state = model.select_state(state, idx)
            lp, state = model.step(state, toks[feed] if len(feed) < len(keys) else toks)
            rows = {keys[c]: r for r, c in enumerate(feed)}
            if mask is not None:
                m = _mass(lp, maskf)
                for i in active:
                    if cur[i] in rows:
                        res[i][1][len(heads[i]) + d] = m[rows[cur[i]]]
        active = [i for i in active if len(sequences[i]) > len(heads[i]) + d + 1]
        d += 1
    for i in batch:
        out[i] = res[i]


def _mass(lp: torch.Tensor, maskf: torch.Tensor) -> np.ndarray:
    """log of the total probability of the masked tokens per row (as ``score_with_mass``)."""
    return (lp.exp() @ maskf.to(lp.dtype)).clamp_min(1e-45).log().double().cpu().numpy()


#: a position fed by ``step`` costs about this many full-pass positions (batched steps of
#: SmolLM2-135M on one CPU thread: 128 rows per matmul instead of ~1,400)
STEP_COST = 2.5


def cached_pays(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> bool:
    """Whether :func:`score_continuations_cached` is expected to beat rescoring every
    ``<s> + prompt + continuation`` from scratch: distinct prompts once (a batched prefill)
    plus the continuations at :data:`STEP_COST` against every pair's whole length."""
    scratch = sum(1 + len(p) + len(c) for p, c in pairs)
    prompts = {tuple(p) for p, _ in pairs}
    cached = sum(1 + len(p) for p in prompts) + STEP_COST * sum(len(c) for _, c in pairs)
    return cached < scratch


def score_continuations_cached(
    model: Generator,
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    bos_id: int | None = None,
    max_rows: int = 128,
) -> list[float]:
    """Summed log-probability of each continuation given ``<s>`` + its prompt, with each
    distinct prompt encoded once (its state shared by all its continuations).

    Args:
        pairs: (prompt ids, continuation ids), both without BOS.
    Returns:
        one float per pair (0.0 for an empty continuation), as
        :func:`chainrule.decoding.scoring.score_continuations` computes from scratch.
    """
    bos = model.bos_id if bos_id is None else bos_id
    seqs = [[bos, *p, *c] for p, c in pairs]
    heads = [1 + len(p) for p, _ in pairs]
    scored = score_tree(model, seqs, score_from=heads, max_rows=max_rows)
    return [float(lp[h - 1:].sum()) if len(lp) >= h else 0.0
            for (lp, _), h in zip(scored, heads)]


__all__ = ["STEP_COST", "cached_pays", "can_share_prefixes", "score_continuations_cached", "score_tree", "shared_fraction"]
