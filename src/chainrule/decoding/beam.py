"""Beam search with length normalisation, returning the n best hypotheses with their scores.

Each prompt keeps ``K = num_beams`` live hypotheses. At every step all ``K x V`` one-token
extensions are ranked by their summed log-probability and the best ``2K`` are examined in
order: an extension ending in EOS (or completing a stop string) becomes a finished hypothesis
if it ranks among the first K, the others fill the K live beams. A finished hypothesis of
``L`` generated tokens (EOS included) scores ``sum_logprob / L ** length_penalty``. A prompt
is done, as in Hugging Face's default, once it has K finished hypotheses and the best live beam,
normalised at its current length, does not beat the worst of them. With one beam this is
exactly greedy decoding.
"""

from __future__ import annotations

from typing import Any

import torch

from chainrule.decoding.config import GenerationConfig
from chainrule.decoding.session import Completion, DecodingContext, Prefix, banned_ids
from chainrule.decoding.transforms import repetition_penalty
from chainrule.errors import ConfigError
from chainrule.models.base import LanguageModel

NEG_INF = float("-inf")


class _Hyp:
    __slots__ = ("logprob", "reason", "search", "text", "tokens")

    def __init__(self, tokens: list[int], search: float, logprob: float, reason: str | None,
                 text: str | None = None):
        self.tokens, self.search, self.logprob, self.reason, self.text = (
            tokens, search, logprob, reason, text)


def beam_search(
    model: LanguageModel,
    prompts: list[list[int]],
    cfg: GenerationConfig,
    *,
    tokenizer: Any = None,
    sources: list[list[int]] | None = None,
) -> list[list[Completion]]:
    """Beam search over BOS-prefixed prompt ids (see the module docstring); a conditional
    model searches argmax_y P(y | x) with one source id list per prompt in ``sources``.

    Returns:
        Per prompt, the ``cfg.n`` best completions, best first. ``score`` is the
        length-normalised search score, ``logprob`` the model's log-probability of the
        hypothesis (EOS included when it ended with EOS).
    """
    if cfg.stop and tokenizer is None:
        raise ConfigError("stop strings are checked on decoded text, so they need a tokenizer.")
    K, alpha, device = cfg.num_beams, cfg.length_penalty, model.device
    eos = None if cfg.ignore_eos else model.eos_id
    finished: list[list[_Hyp]] = [[] for _ in prompts]
    prefixes = [Prefix(tokenizer, p, model.bos_id) if tokenizer is not None else None
                for p in prompts]
    if cfg.max_new_tokens == 0:
        return [[_completion(_Hyp([], 0.0, 0.0, "length"), p, alpha, x)]
                for p, x in zip(prompts, prefixes)]

    ctx = DecodingContext(model, prompts, use_cache=cfg.use_cache, fast=cfg.fast_path,
                          sources=sources,
                          banned=banned_ids(model, tokenizer, cfg.allow_special, cfg.stop))
    lp = ctx.start()  # (P, V)
    V = lp.shape[-1]
    rep = [i for i in range(len(prompts)) for _ in range(K)]
    ctx.select(rep)
    lp = lp[torch.tensor(rep, device=lp.device)]  # (P*K, V)
    # only the first copy of each prompt is live at first, so step one picks K distinct tokens
    live: list[list[_Hyp]] = [
        [_Hyp([], 0.0 if k == 0 else NEG_INF, 0.0, None) for k in range(K)] for _ in prompts
    ]
    active = list(range(len(prompts)))  # prompts still searching, K rows each in ctx
    seen = None
    if cfg.repetition_penalty != 1:
        seen = torch.zeros(len(rep), V, dtype=torch.bool, device=device)
        for r, i in enumerate(rep):
            seen[r, torch.tensor(prompts[i][1:], dtype=torch.long, device=device)] = True

    for step in range(cfg.max_new_tokens):
        L = step + 1  # generated length of every extension considered now
        search_lp = lp.float()
        if seen is not None:
            search_lp = repetition_penalty(search_lp, seen, cfg.repetition_penalty)
            search_lp = search_lp.log_softmax(dim=-1)
        base = torch.tensor([h.search for a in active for h in live[a]], device=device)
        cand = (base[:, None] + search_lp).reshape(len(active), K * V)
        n_top = min(2 * K, K * V)
        # a stable sort breaks ties by lowest (beam, token), so one beam is exactly greedy
        top_vals, top_idx = cand.sort(dim=-1, descending=True, stable=True)
        top_vals, top_idx = top_vals[:, :n_top], top_idx[:, :n_top]
        # the model's own (unpenalised) log-probability of each examined extension
        top_raw = lp.float().reshape(len(active), K * V).gather(1, top_idx).tolist()
        top_vals, top_idx = top_vals.tolist(), top_idx.tolist()

        next_rows, next_tokens, still = [], [], []
        for ai, a in enumerate(active):
            new_live: list[_Hyp] = []
            rows: list[int] = []
            for rank, (val, flat) in enumerate(zip(top_vals[ai], top_idx[ai])):
                if val == NEG_INF:
                    break
                origin, tok = divmod(flat, V)
                parent = live[a][origin]
                logprob = parent.logprob + top_raw[ai][rank]
                if tok == eos:
                    if rank < K:
                        finished[a].append(_Hyp(parent.tokens, val, logprob, "eos"))
                    continue
                tokens = [*parent.tokens, tok]
                if cfg.stop:
                    text = prefixes[a].continuation(tokens)
                    cut = _first_stop(text, cfg.stop)
                    if cut is not None:
                        if rank < K:
                            finished[a].append(_Hyp(tokens, val, logprob, "stop", text[:cut]))
                        continue
                new_live.append(_Hyp(tokens, val, logprob, None))
                rows.append(ai * K + origin)
                if len(new_live) == K:
                    break
            if not new_live or _is_done(finished[a], new_live, K, L, alpha):
                live[a] = []  # this prompt is done; its live beams cannot win
                continue
            while len(new_live) < K:  # fewer than K finite extensions: pad with dead beams
                new_live.append(_Hyp(new_live[0].tokens, NEG_INF, NEG_INF, None))
                rows.append(rows[0])
            live[a] = new_live
            next_rows += rows
            next_tokens += [h.tokens[-1] for h in new_live]
            still.append(a)
        if step == cfg.max_new_tokens - 1 or not still:
            break
        ctx.select(next_rows)
        tok_t = torch.tensor(next_tokens, device=device)
        if seen is not None:
            seen = seen[torch.tensor(next_rows, device=device)]
            seen[torch.arange(len(next_rows), device=device), tok_t] = True
        active = still
        lp = ctx.step(tok_t, next_tokens)

    results = []
    for a, p in enumerate(prompts):
        hyps = finished[a] + [
            _Hyp(h.tokens, h.search, h.logprob, "length") for h in live[a] if h.search > NEG_INF
        ]
        hyps.sort(key=lambda h: _normalised(h, alpha), reverse=True)
        results.append([_completion(h, p, alpha, prefixes[a]) for h in hyps[: cfg.n]])
    return results


def _normalised(h: _Hyp, alpha: float) -> float:
    length = len(h.tokens) + (h.reason == "eos")
    return h.search / max(length, 1) ** alpha


def _is_done(finished: list[_Hyp], live: list[_Hyp], K: int, L: int, alpha: float) -> bool:
    if len(finished) < K:
        return False
    worst_kept = sorted((_normalised(h, alpha) for h in finished), reverse=True)[K - 1]
    best_live = max(h.search for h in live) / L**alpha
    return worst_kept >= best_live


def _first_stop(text: str, stop: tuple[str, ...]) -> int | None:
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return min(hits) if hits else None


def _completion(h: _Hyp, prompt: list[int], alpha: float, prefix: Prefix | None) -> Completion:
    text = h.text
    if text is None and prefix is not None:
        text = prefix.continuation(h.tokens)
    return Completion(text, list(h.tokens), h.logprob, _normalised(h, alpha), h.reason or "length",
                      prompt)


__all__ = ["beam_search"]
