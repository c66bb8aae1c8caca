"""``generate`` and ``stream``: decoding written once over the ``LanguageModel`` interface.

Every family is decoded the same way: ``start`` on the (BOS-prefixed) prompts, then one
``step`` per generated token through the family's own state (a key/value cache, a recurrent
hidden state, an n-gram context), ``select_state`` to drop finished rows or reorder beams.

    >>> from chainrule.decoding import GenerationConfig, generate
    >>> cfg = GenerationConfig(strategy="sample", temperature=0.8, top_p=0.95, seed=1)
    >>> [[out]] = generate(model, ["To be"], cfg, tokenizer=tok)   # doctest: +SKIP
    >>> out.text, out.logprob, out.finish_reason                    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from chainrule.decoding.config import GenerationConfig
from chainrule.decoding.session import (
    Completion,
    DecodingContext,
    OutputRow,
    Prompt,
    banned_ids,
    encode_sources,
    prepare_prompts,
    resolve_seed,
    row_seed,
)
from chainrule.decoding.transforms import repetition_penalty, sampling_transform
from chainrule.errors import ConfigError
from chainrule.models.base import LanguageModel, require_generator


@dataclass(frozen=True)
class StreamEvent:
    """One piece of a streamed output.

    Attributes:
        prompt: index of the prompt in the batch.
        sample: which of its ``n`` outputs.
        text: newly released text ("" while a piece is held back: half a UTF-8 character or
            the possible start of a stop string; always "" without a tokenizer).
        token_id: the id just generated (None on beam search's final events).
        finish_reason: set on the last event of an output.
    """

    prompt: int
    sample: int
    text: str
    token_id: int | None
    finish_reason: str | None = None


def stream(
    model: LanguageModel,
    prompts: Sequence[Prompt] | str,
    config: GenerationConfig | None = None,
    *,
    tokenizer: Any = None,
    results: list[list[Completion]] | None = None,
    sources: Sequence[str | Sequence[int]] | None = None,
    source_tokenizer: Any = None,
    check_memory: bool = True,
) -> Iterator[StreamEvent]:
    """Generate and yield text pieces as the tokens are produced.

    Greedy and sampled outputs stream token by token (rows of a batch interleave); beam search
    only knows its best hypotheses at the end, so each of its outputs arrives as one event.

    Args:
        model: any ``LanguageModel``.
        prompts: texts (need ``tokenizer``) or lists of token ids, without BOS (it is added).
        config: decoding settings (default ``GenerationConfig()``).
        tokenizer: turns text prompts into ids and outputs into text.
        results: if given, the finished completions are appended here (one list per prompt).
        sources: for a conditional model, one source per prompt (text or ids).
        source_tokenizer: encodes text sources (default: ``tokenizer``).
        check_memory: refuse a batch whose distributions cannot fit (False: try anyway).
    """
    config = config or GenerationConfig()
    model = require_generator(model, "generation")
    rows = prepare_prompts(model, prompts, tokenizer, truncate=config.truncate)
    if check_memory:
        check_batch_memory(model, len(rows), config)
    src = encode_sources(model, sources, len(rows), source_tokenizer or tokenizer)
    with torch.no_grad():
        if config.strategy == "beam":
            from chainrule.decoding.beam import beam_search

            done = beam_search(model, rows, config, tokenizer=tokenizer, sources=src)
            for i, outs in enumerate(done):
                for j, c in enumerate(outs):
                    yield StreamEvent(i, j, c.text or "", None, c.finish_reason)
        else:
            done = yield from _sample(model, rows, config, tokenizer, track_text=True,
                                      sources=src)
    if results is not None:
        results.extend(done)


def generate(
    model: LanguageModel,
    prompts: Sequence[Prompt] | str,
    config: GenerationConfig | None = None,
    *,
    tokenizer: Any = None,
    sources: Sequence[str | Sequence[int]] | None = None,
    source_tokenizer: Any = None,
    check_memory: bool = True,
    on_token: Callable[[], None] | None = None,
) -> list[list[Completion]]:
    """Generate ``config.n`` outputs for each prompt.

    Args:
        model: any ``LanguageModel``.
        prompts: texts (need ``tokenizer``) or lists of token ids, without BOS (it is added).
            An empty prompt starts from BOS alone.
        config: decoding settings (default ``GenerationConfig()``: sampling at temperature 1).
        tokenizer: turns text prompts into ids and outputs into text (``Completion.text``).
        sources: for a conditional model (P(y | x)), one source per prompt, as text (encoded
            with ``source_tokenizer``, default ``tokenizer``) or ids.
        source_tokenizer: the conditional model's source tokenizer.
        check_memory: refuse, before any work, a batch (prompts x ``n`` or beams) whose
            next-token distributions cannot fit in memory (False: try anyway).
        on_token: called after every generated token of any row (greedy and sampling; beam
            search finishes its hypotheses together), e.g. to drive a progress bar.
    Returns:
        One list per prompt of ``config.n`` completions (beam search: best first).
    """
    config = config or GenerationConfig()
    model = require_generator(model, "generation")
    rows = prepare_prompts(model, prompts, tokenizer, truncate=config.truncate)
    if check_memory:
        check_batch_memory(model, len(rows), config)
    src = encode_sources(model, sources, len(rows), source_tokenizer or tokenizer)
    with torch.no_grad():
        if config.strategy == "beam":
            from chainrule.decoding.beam import beam_search

            return beam_search(model, rows, config, tokenizer=tokenizer, sources=src)
        track = bool(config.stop)  # stop strings need the text at every step; else decode once
        gen = _sample(model, rows, config, tokenizer, track_text=track, sources=src)
        while True:
            try:
                next(gen)
            except StopIteration as e:
                return e.value
            if on_token is not None:
                on_token()


#: refuse a decoding batch whose per-step distributions alone would need more than this
MAX_BATCH_BYTES = 8 * 2**30


def check_batch_memory(model: LanguageModel, prompts: int, cfg: GenerationConfig) -> None:
    """Refuse, before any work, a batch (prompts x outputs or beams) whose next-token
    distributions (a few float32 copies of rows x vocabulary per step) cannot fit in memory."""
    per_prompt = cfg.num_beams if cfg.strategy == "beam" else cfg.n
    rows = prompts * per_prompt
    need = rows * model.vocab_size * 4 * 4  # log-probs, scores, the warped copy, the draw
    if need > MAX_BATCH_BYTES:
        what = "beams" if cfg.strategy == "beam" else "outputs per prompt"
        raise ConfigError(
            f"{prompts} prompt(s) x {per_prompt:,} {what} = {rows:,} rows at once would need "
            f"about {need / 2**30:,.0f} GB for the next-token distributions alone; lower the "
            f"number of {what} or of prompts (or generate in several calls), or try anyway with "
            "check_memory=False (--force on the command line).")


def _sample(
    model: LanguageModel,
    prompts: list[list[int]],
    cfg: GenerationConfig,
    tokenizer: Any,
    track_text: bool,
    sources: list[list[int]] | None = None,
):
    """Greedy decoding and ancestral sampling. Yields StreamEvents; returns the completions."""
    n, device = cfg.n, model.device
    greedy = cfg.strategy == "greedy"
    if cfg.stop and tokenizer is None:
        raise ConfigError("stop strings are checked on decoded text, so they need a tokenizer.")
    outs = [
        OutputRow(p, model.bos_id, model.eos_id, tokenizer, cfg.stop, cfg.ignore_eos, track_text)
        for p in prompts
        for _ in range(n)
    ]
    if cfg.max_new_tokens == 0:
        for k, o in enumerate(outs):
            yield StreamEvent(k // n, k % n, o.finish("length"), None, "length")
        return _group(outs, n)

    ctx = DecodingContext(model, prompts, use_cache=cfg.use_cache, fast=cfg.fast_path,
                          sources=sources,
                          banned=banned_ids(model, tokenizer, cfg.allow_special, cfg.stop))
    lp = ctx.start()  # (P, V)
    if n > 1:  # one pass over each prompt, then n copies of its state
        rep = [i for i in range(len(prompts)) for _ in range(n)]
        ctx.select(rep)
        lp = lp[torch.tensor(rep, device=lp.device)]
    active = list(range(len(outs)))
    generators = None
    if not greedy:
        seed = resolve_seed(cfg.seed)
        generators = [
            torch.Generator().manual_seed(row_seed(seed, _seed_key(o.prompt_ids, sources, k // n),
                                                   k % n))
            for k, o in enumerate(outs)
        ]
    warp = sampling_transform(cfg.temperature, cfg.top_k, cfg.top_p, cfg.min_p)
    seen = None
    if cfg.repetition_penalty != 1:
        seen = torch.zeros(len(outs), model.vocab_size, dtype=torch.bool, device=device)
        for k, o in enumerate(outs):
            seen[k, torch.tensor(o.prompt_ids[1:], dtype=torch.long, device=device)] = True

    for step in range(cfg.max_new_tokens):
        scores = lp.float()
        if seen is not None:
            scores = repetition_penalty(scores, seen, cfg.repetition_penalty)
        if greedy:
            tok = scores.argmax(dim=-1)
        else:
            tok = draw(warp(scores), [generators[k] for k in active])
        # one device -> host copy per step: the ids and their log-probabilities together
        chosen = lp.gather(-1, tok[:, None]).squeeze(-1).double()
        host = torch.stack([tok.double(), chosen]).cpu()
        tok_list, chosen = [int(t) for t in host[0].tolist()], host[1].tolist()
        for k, t, c in zip(active, tok_list, chosen):
            o = outs[k]
            if o.finish_reason is not None:  # rides along in a static batch; ignored
                continue
            piece = o.push(t, c)
            yield StreamEvent(k // n, k % n, piece, t, o.finish_reason)
        if step == cfg.max_new_tokens - 1:
            break
        keep = [i for i, k in enumerate(active) if outs[k].finish_reason is None]
        if not keep:
            break
        if len(keep) < len(active) and not ctx.static_batch:  # finished rows cost nothing more
            ctx.select(keep)
            idx = torch.tensor(keep, device=tok.device)
            tok, active = tok[idx], [active[i] for i in keep]
            tok_list = [tok_list[i] for i in keep]
            if seen is not None:
                seen = seen[idx]
        if seen is not None:
            seen[torch.arange(len(active), device=device), tok] = True
        lp = ctx.step(tok, tok_list)

    for k, o in enumerate(outs):
        if o.finish_reason is None:
            yield StreamEvent(k // n, k % n, o.finish("length"), None, "length")
    return _group(outs, n)


def _seed_key(prompt: list[int], sources: list[list[int]] | None, i: int) -> list[int]:
    """What a row's seed depends on: its prompt, and its source when there is one."""
    return prompt if sources is None else [*prompt, -1, *sources[i]]


def draw(scores: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Sample one token per row from ``softmax(scores)``, row b using ``generators[b]``.

    Inverse-CDF sampling with one uniform per row, so each row's draws depend only on its own
    generator (batching never changes a sample).

    Args:
        scores: (B, V) logits; ``-inf`` marks excluded tokens.
        generators: B CPU generators.
    Returns:
        (B,) LongTensor of token ids.
    """
    probs = scores.double().softmax(dim=-1)
    cdf = probs.cumsum(dim=-1)
    u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators])
    x = u.to(scores.device) * cdf[:, -1]
    idx = (cdf <= x[:, None]).sum(dim=-1)
    # guard against rounding at the top end: never return a zero-probability token
    V = scores.shape[-1]
    last_possible = V - 1 - (probs > 0).flip(-1).to(torch.int8).argmax(dim=-1)
    return torch.minimum(idx, last_possible)


def _group(outs: list[OutputRow], n: int) -> list[list[Completion]]:
    return [[o.completion() for o in outs[i : i + n]] for i in range(0, len(outs), n)]


__all__ = ["StreamEvent", "draw", "generate", "stream"]
