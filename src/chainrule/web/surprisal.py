"""The surprisal view: every token's surprisal, probability, rank and top alternatives (GLTR's
rank buckets) and each word's surprisal, for several models on the same text.

Surprisals come from :func:`chainrule.evaluation.surprisal.sentence_surprisals` (the batched
scorer and the documented word rule); ranks and alternatives from the model's full next-token
distributions (``logprobs``), which a masked model does not have (its ranks are null).
Each non-empty line is one sentence, scored as ``<s> ... </s>``.
"""

from __future__ import annotations

import math

import torch

from chainrule.evaluation.surprisal import sentence_surprisals
from chainrule.evaluation.textscore import encode_text, frame
from chainrule.web.served import DEFAULT_LIMITS, CannotDo, Limits, ServedModel

#: GLTR's colour buckets: a token in the model's top 10, top 100, top 1000, or further down
RANK_BUCKETS = (10, 100, 1000)
_CHUNK = 512  # positions per logprobs call for a model that reads a bounded window
_BATCH_FLOATS = 16 * 2**20  # cap on one (B, T, V) log-prob tensor: 64 MB


def rank_bucket(rank: int | None) -> int | None:
    """0 (top 10), 1 (top 100), 2 (top 1000) or 3 (below); None without a rank."""
    if rank is None:
        return None
    return next((i for i, b in enumerate(RANK_BUCKETS) if rank <= b), len(RANK_BUCKETS))


def _distributions(model, seq: list[int]) -> torch.Tensor:
    """(len(seq) - 1, V) log-probabilities of each target given its left context."""
    x = torch.tensor([seq], dtype=torch.long, device=model.device)
    n = len(seq) - 1
    if not getattr(model, "markov_window", False) or n <= _CHUNK:
        return model.logprobs(x)[0, :n].float().cpu()
    # an n-gram reads only its last max_context tokens: exact in chunks, with bounded memory
    keep = int(model.max_context)
    parts = []
    for a in range(0, n, _CHUNK):
        lo = max(0, a - keep)
        parts.append(model.logprobs(x[:, lo : a + _CHUNK])[0, a - lo :].float().cpu())
    return torch.cat(parts)[:n]


def _ranks(model, seqs: list[list[int]], k: int) -> list[tuple[list[int], list]]:
    """For each framed sequence: the rank of every target in its next-token distribution and
    the ``k`` most probable tokens there. Sequences of similar length share one ``logprobs``
    call (right padding never changes a causal model's earlier positions)."""
    out: list = [None] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    budget = max(1, _BATCH_FLOATS // max(1, int(model.vocab_size)))  # B * T per call
    i = 0
    while i < len(order):
        T = len(seqs[order[i]])
        if T - 1 > _CHUNK:  # a long one alone, in chunks if the model allows
            rows = [order[i]]
        else:
            rows = []
            while i + len(rows) < len(order):
                nxt = order[i + len(rows)]
                if len(seqs[nxt]) - 1 > _CHUNK or (len(rows) + 1) * len(seqs[nxt]) > budget:
                    break
                rows.append(nxt)
            rows = rows or [order[i]]
        i += len(rows)
        if len(rows) == 1:
            lp = _distributions(model, seqs[rows[0]])[None]  # (1, T-1, V)
        else:
            width = max(len(seqs[r]) for r in rows)
            x = torch.full((len(rows), width), int(model.eos_id), dtype=torch.long)
            for j, r in enumerate(rows):
                x[j, : len(seqs[r])] = torch.tensor(seqs[r])
            lp = model.logprobs(x.to(model.device))[:, : width - 1].float().cpu()
        for j, r in enumerate(rows):
            n = len(seqs[r]) - 1
            row = lp[j, :n]
            gold = row.gather(-1, torch.tensor(seqs[r][1:], dtype=torch.long)[:, None])
            ranks = ((row > gold).sum(-1) + 1).tolist()
            top = row.topk(min(k, row.shape[-1]), dim=-1)
            out[r] = (ranks, [list(zip(a, b)) for a, b in
                              zip(top.indices.tolist(), top.values.tolist())])
    return out


def surprisal_view(sm: ServedModel, text: str, limits: Limits = DEFAULT_LIMITS, *,
                   ranks: bool = True) -> dict:
    """One model's surprisals of ``text`` (one sentence per non-empty line) and its totals;
    ``ranks=False`` leaves out the ranks and alternatives (one scoring pass instead of two)."""
    why = sm.can("surprisal")
    if why:
        raise CannotDo(why)
    model, tok = sm.model, sm.tokenizer
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    with sm.lock, torch.no_grad():
        scored = sentence_surprisals(model, tok, lines, eos=True, allow_unk=True)
        ranked = None
        if ranks and not getattr(model, "masked", False) and hasattr(model, "logprobs"):
            ranked = _ranks(model, [frame(model, encode_text(tok, t, allow_unk=True))
                                    for t in lines], limits.alternatives)
    sentences = []
    totals = {"bits": 0.0, "tokens": 0, "words": 0, "bytes": 0}
    for k, s in enumerate(scored):
        ranks, alts = ranked[k] if ranked else (None, None)
        tokens = []
        for i, t in enumerate(s.tokens):
            rank = None if ranks is None else int(ranks[i])
            tokens.append({
                "i": i, "token": t.token, "start": t.start, "end": t.end, "word": t.word_index,
                "bits": t.surprisal_bits, "p": 2.0 ** -t.surprisal_bits, "eos": t.is_eos,
                "rank": rank, "bucket": rank_bucket(rank),
                "top": None if alts is None else [
                    {"token": tok.decode([a]), "p": math.exp(v)}
                    for a, v in alts[i]],
            })
        words = [{"i": w.word_index, "word": w.word, "start": w.start, "end": w.end,
                  "bits": w.surprisal_bits, "n_tokens": w.n_tokens, "eos": w.is_eos,
                  "unk": w.has_unk} for w in s.words]
        sentences.append({"text": s.text, "bits": s.total_bits, "tokens": tokens,
                          "words": words})
        totals["bits"] += s.total_bits
        totals["tokens"] += len(s.tokens)
        totals["words"] += len(s.words)  # whitespace words plus one </s> per sentence
        totals["bytes"] += len(s.text.encode("utf-8")) + 1  # plus one newline per sentence
    for unit in ("tokens", "words", "bytes"):
        totals[f"bits_per_{unit[:-1]}"] = totals["bits"] / totals[unit] if totals[unit] else None
    return {"model": sm.name, "masked": bool(getattr(model, "masked", False)),
            "ranks": ranked is not None, "sentences": sentences, "totals": totals}


__all__ = ["RANK_BUCKETS", "rank_bucket", "surprisal_view"]
