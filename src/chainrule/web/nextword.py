"""The next-word and generate views: a model's next-token distribution, reshaped by the decoding
package's transforms, and the same prompt decoded by several strategies, streamed."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from chainrule.decoding.config import GenerationConfig
from chainrule.decoding.generate import stream
from chainrule.decoding.session import encode_sources, prepare_prompts, resolve_seed
from chainrule.decoding.transforms import sampling_transform
from chainrule.web.served import DEFAULT_LIMITS, CannotDo, Limits, ServedModel


def _require(sm: ServedModel, view: str) -> None:
    why = sm.can(view)
    if why:
        raise CannotDo(why)


def _bits_entropy(logp: torch.Tensor) -> float:
    """Entropy in bits of the distribution ``exp(logp)`` (-inf entries contribute nothing)."""
    p = logp.exp()
    terms = torch.where(p > 0, -p * logp, torch.zeros_like(p))
    return float(terms.sum()) / math.log(2)


def next_word(sm: ServedModel, context: str, *, temperature: float = 1.0, top_k: int | None = None,
              top_p: float = 1.0, min_p: float = 0.0, source: str | None = None,
              limits: Limits = DEFAULT_LIMITS) -> dict:
    """The top candidates for the token after ``context``, before and after the transforms.

    The raw distribution is ``model.start(<s> + context)``; the reshaped one applies
    :func:`chainrule.decoding.transforms.sampling_transform` (temperature -> top-k -> top-p ->
    min-p, as sampling does) and renormalises. Candidates are ranked by the reshaped
    probability; ``append`` is the text that clicking a candidate adds to the context.
    """
    _require(sm, "next-word")
    model, tok = sm.model, sm.tokenizer
    warp = sampling_transform(temperature, top_k, top_p, min_p)  # checks the settings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = prepare_prompts(model, [context], tok, truncate=True)[0]
    src = encode_sources(model, None if source is None else [source], 1,
                         sm.source_tokenizer or tok)
    x = torch.tensor([ids], dtype=torch.long, device=model.device)
    with sm.lock, torch.no_grad():
        lp, _ = model.start(x, torch.tensor([len(ids)], device=model.device), src)
    raw = lp[0].float().cpu().log_softmax(-1)  # (V,)
    shaped = warp(raw[None])[0].log_softmax(-1)
    n = min(limits.top_n, int(torch.isfinite(shaped).sum()))
    order = torch.argsort(shaped, descending=True, stable=True)[:n]
    ranks = (raw[None, :] > raw[order][:, None]).sum(-1) + 1
    ctx_ids = ids[1:] if ids and ids[0] == model.bos_id else ids
    ctx_text = tok.decode(ctx_ids)
    specials = {int(i) for i in getattr(tok, "special_tokens", {}).values()}
    candidates = []
    for t, r in zip(order.tolist(), ranks.tolist()):
        piece = tok.decode([t])
        special = t in specials or t == model.eos_id
        full = "" if special else tok.decode([*ctx_ids, t])
        append = full[len(ctx_text):] if full.startswith(ctx_text) else " " + piece
        candidates.append({
            "id": t, "token": piece, "special": special, "append": "" if special else append,
            "p": float(shaped[t].exp()), "p_model": float(raw[t].exp()),
            "logprob_model": float(raw[t]), "rank_model": int(r),
        })
    return {
        "model": sm.name,
        "context_tokens": len(ctx_ids),
        "truncated": any("truncat" in str(w.message).lower() for w in caught),
        "entropy_bits_model": _bits_entropy(raw),
        "entropy_bits": _bits_entropy(shaped),
        "kept": int(torch.isfinite(shaped).sum()),
        "vocab_size": int(model.vocab_size),
        "settings": {"temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p},
        "candidates": candidates,
    }


@dataclass(frozen=True)
class Column:
    """One decoding strategy of the generate view."""

    name: str
    config: GenerationConfig

    def describe(self) -> dict:
        c = self.config
        out = {"column": self.name, "strategy": c.strategy, "max_new_tokens": c.max_new_tokens}
        if c.strategy == "sample":
            out.update(temperature=c.temperature, top_p=c.top_p, seed=c.seed)
        if c.strategy == "beam":
            out.update(num_beams=c.num_beams, length_penalty=c.length_penalty)
        return out


def columns(*, max_new_tokens: int = 40, temperature: float = 1.0, top_p: float = 0.9,
            num_beams: int = 4, seed: int | None = None) -> list[Column]:
    """Greedy, sampling, top-p sampling and beam search with the given settings; one seed
    (drawn when not given, and reported) drives both sampling columns."""
    seed = resolve_seed(seed)
    common = {"max_new_tokens": max_new_tokens}
    return [
        Column("greedy", GenerationConfig(strategy="greedy", **common)),
        Column("sample", GenerationConfig(strategy="sample", temperature=temperature, seed=seed,
                                          **common)),
        Column("top-p", GenerationConfig(strategy="sample", temperature=temperature,
                                         top_p=top_p, seed=seed, **common)),
        Column("beam", GenerationConfig(strategy="beam", num_beams=num_beams, **common)),
    ]


def generate_events(sm: ServedModel, prompt: str, cols: list[Column], *,
                    source: str | None = None) -> Iterator[dict]:
    """The columns decoded side by side: their token events interleaved round-robin, then one
    ``done`` event per column with the whole completion (text, log-probability, why it
    stopped). Holds the model's lock throughout."""
    _require(sm, "generate")
    tok = sm.tokenizer
    sources = None if source is None else [source]
    with sm.lock:
        results = {c.name: [] for c in cols}
        runs = {c.name: stream(sm.model, [prompt], c.config, tokenizer=tok, sources=sources,
                               source_tokenizer=sm.source_tokenizer, results=results[c.name])
                for c in cols}
        while runs:
            for name in list(runs):
                try:
                    ev = next(runs[name])
                except StopIteration:
                    del runs[name]
                    [[done]] = results[name]
                    yield {"event": "done", "model": sm.name, "column": name,
                           "text": done.text, "logprob": done.logprob,
                           "finish_reason": done.finish_reason, "tokens": len(done.token_ids)}
                    continue
                if ev.token_id is not None or ev.text:
                    yield {"event": "token", "model": sm.name, "column": name,
                           "text": ev.text, "token_id": ev.token_id}


__all__ = ["Column", "columns", "generate_events", "next_word"]
