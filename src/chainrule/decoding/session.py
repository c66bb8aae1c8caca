"""Plumbing shared by the strategies: prompts -> ids, the model's rolling state, output rows.

``DecodingContext`` owns the token history of every row and the model's incremental state.
Sequences longer than ``model.max_context`` are the model's business: each family's ``step``
and ``logprobs`` define what it sees then (a GPT slides its window, an n-gram or feed-forward
model only ever reads its last few tokens), and decoding never second-guesses that.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from chainrule.errors import ConfigError
from chainrule.models.base import LanguageModel, Source, as_source


class PromptTruncatedWarning(UserWarning):
    """A prompt longer than the model's context was cut from the left."""


Prompt = str | Sequence[int]


def prepare_prompts(
    model: LanguageModel, prompts: Sequence[Prompt], tokenizer: Any = None, truncate: bool = True
) -> list[list[int]]:
    """Encode prompts, put BOS in front and fit them into the model's context.

    Args:
        prompts: texts (need ``tokenizer``) or lists of token ids (without BOS).
        truncate: cut over-long prompts from the left with a warning; False refuses them.
    Returns:
        One id list per prompt, each starting with ``model.bos_id`` unless it was truncated.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if len(prompts) == 0:
        raise ConfigError("no prompts were given; pass at least one (an empty string is fine).")
    out, cut = [], []
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            if tokenizer is None:
                raise ConfigError("text prompts need a tokenizer; pass tokenizer= or token ids.")
            ids = list(tokenizer.encode(p))
            _warn_unknown(tokenizer, p, ids, i)
        else:
            ids = [int(t) for t in p]
        bad = [t for t in ids if not 0 <= t < model.vocab_size]
        if bad:
            raise ConfigError(
                f"prompt {i} holds token id {bad[0]}, outside the model's vocabulary of "
                f"{model.vocab_size}; was it encoded with this model's tokenizer?"
            )
        ids = [model.bos_id, *ids]
        # every model needs one token to start from, even one that ignores all context
        ctx = None if model.max_context is None else max(int(model.max_context), 1)
        if ctx is not None and len(ids) > ctx:
            if model.markov_window:  # the model never sees further back: nothing is lost
                out.append(ids[-ctx:])
                continue
            if not truncate:
                raise ConfigError(
                    f"prompt {i} is {len(ids)} tokens (with BOS) but the model reads at most "
                    f"{ctx}; shorten it or allow truncation."
                )
            cut.append(i)
            ids = ids[-ctx:]
        out.append(ids)
    if cut:
        which = f"prompt {cut[0]} is" if len(cut) == 1 else f"{len(cut)} prompts are"
        warnings.warn(
            f"{which} longer than the {ctx} tokens (with BOS) the model conditions "
            f"on; generating from the last {ctx}.",
            PromptTruncatedWarning,
            stacklevel=3,
        )
    return out


class UnknownPromptWarning(UserWarning):
    """Part of a prompt is not in the model's vocabulary and became ``<unk>``."""


def _warn_unknown(tokenizer: Any, text: str, ids: list[int], i: int) -> None:
    unk = getattr(tokenizer, "unk_id", None)
    if unk is None or unk not in ids:
        return
    from chainrule.tokenizers.base import unencodable

    words, _ = unencodable(tokenizer, text)
    shown = ", ".join(repr(w) for w in words[:8]) or "part of it"
    warnings.warn(f"prompt {i}: {shown} not in the model's vocabulary, so the model sees <unk> "
                  "there.", UnknownPromptWarning, stacklevel=4)


def row_seed(seed: int, prompt: Sequence[int], sample: int) -> int:
    """A 63-bit seed for one output row from (seed, the prompt's ids, the sample number).

    Rows depend on their own prompt, not on their position in the batch, so a prompt gets
    the same samples alone or inside any batch.
    """
    key = f"{seed}|{sample}|{','.join(map(str, prompt))}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def pad_rows(rows: Sequence[Sequence[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists into (B, T) with their lengths (B,)."""
    lengths = [len(r) for r in rows]
    x = torch.full((len(rows), max(lengths)), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        x[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
    return x.to(device), torch.tensor(lengths, device=device)


class DecodingContext:
    """Token histories of a batch of rows and the model state that continues them.

    Args:
        model: any ``Generator``.
        rows: id lists, each of length >= 1.
        use_cache: step through the model's state; False recomputes ``logprobs`` on every
            row's whole history at each step (slow; the reference the cache must equal).
        sources: for a conditional model, one source id list per row (kept aligned with the
            rows through ``select``).
    """

    def __init__(self, model: LanguageModel, rows: Sequence[Sequence[int]], use_cache: bool = True,
                 fast: bool = True, sources: Sequence[Sequence[int]] | None = None,
                 banned: Sequence[int] = ()):
        model.check_source(sources is not None)
        #: ids never generated: their log-probabilities come back as -inf (the others keep the
        #: model's values, so reported log-probabilities are the model's own)
        self.banned = sorted(set(banned))
        self.model = model
        self.rows = [list(r) for r in rows]
        self.sources = None if sources is None else [list(x) for x in sources]
        self.use_cache = use_cache
        self.device = model.device
        self.state: Any = None
        self.impl: Any = model
        if use_cache and fast:
            self.impl = model.fast_decoder() or model
        #: True when dropping finished rows would cost more than decoding them (CUDA graphs)
        self.static_batch = bool(getattr(self.impl, "static_batch", False))

    def start(self) -> torch.Tensor:
        """Log-probabilities (B, V) of the token after each row."""
        x, lengths = pad_rows(self.rows, self.model.eos_id, self.device)
        source = self._source()
        if self.use_cache:
            lp, self.state = self.impl.start(x, lengths, source)
            return self._ban(lp)
        lp = self.model.logprobs(x, source)
        return self._ban(lp[torch.arange(len(self.rows), device=lp.device),
                            lengths.to(lp.device) - 1])

    def _ban(self, lp: torch.Tensor) -> torch.Tensor:
        if not self.banned:
            return lp
        lp = lp.clone()
        lp[:, self.banned] = -float("inf")
        return lp

    def step(self, tokens: torch.Tensor, token_list: list[int] | None = None) -> torch.Tensor:
        """Append one token per row (B,) and return the next log-probabilities (B, V)."""
        token_list = tokens.tolist() if token_list is None else token_list
        for r, t in zip(self.rows, token_list):
            r.append(t)
        if not self.use_cache:
            return self.start()
        lp, self.state = self.impl.step(self.state, tokens)
        return self._ban(lp)

    def select(self, index: list[int]) -> None:
        """Keep rows ``index`` in that order (a row may repeat: beams, n samples)."""
        self.rows = [list(self.rows[i]) for i in index]
        if self.sources is not None:
            self.sources = [self.sources[i] for i in index]
        if self.use_cache:
            idx = torch.tensor(index, dtype=torch.long, device=self.device)
            self.state = self.impl.select_state(self.state, idx)


    def _source(self) -> Source | None:
        if self.sources is None:
            return None
        return as_source(self.sources, getattr(self.model, "source_pad_id", 0), self.device)


def banned_ids(model: LanguageModel, tokenizer: Any, allow_special: bool,
               stop: Sequence[str] = ()) -> list[int]:
    """Special ids that never belong in generated text: BOS and the tokenizer's other specials
    (``<pad>``, ``<unk>``, ...). EOS stays (it ends an output), and so does a special spelled
    like a stop string (a chat template's end-of-turn marker). Without a tokenizer nothing is
    banned: decoding ids, the model's distribution is sampled as it is."""
    specials = getattr(tokenizer, "special_tokens", None)
    if allow_special or not specials:
        return []
    ids = {model.bos_id}
    ids.update(int(i) for t, i in specials.items()
               if 0 <= int(i) < model.vocab_size and t not in stop)
    ids.discard(model.eos_id)
    return sorted(ids)


def encode_sources(model: LanguageModel, sources: Sequence[str | Sequence[int]] | None,
                   n_prompts: int, tokenizer: Any = None) -> list[list[int]] | None:
    """One source id list per prompt (texts are encoded with ``tokenizer``), or None."""
    model.check_source(sources is not None)
    if sources is None:
        return None
    if isinstance(sources, str):
        sources = [sources]
    if len(sources) != n_prompts:
        raise ConfigError(f"{len(sources)} sources for {n_prompts} prompts; give one source "
                          "per prompt.")
    out = []
    for x in sources:
        if isinstance(x, str):
            if tokenizer is None:
                raise ConfigError("text sources need a source tokenizer; pass "
                                  "source_tokenizer= or token ids.")
            out.append(list(tokenizer.encode(x)))
        else:
            out.append([int(t) for t in x])
    return out


@dataclass
class Completion:
    """One generated output.

    Attributes:
        text: the decoded output (None without a tokenizer); a stop string is cut off.
        token_ids: the generated ids, without EOS (they may spell a trailing stop string).
        logprob: the model's log-probability of the generated ids given the prompt, plus that
            of EOS when ``finish_reason == "eos"``.
        score: what the strategy ranked by: ``logprob`` for greedy and sampling; for beam
            search the length-normalised search score.
        finish_reason: ``"eos"``, ``"stop"`` (a stop string) or ``"length"`` (max_new_tokens).
        prompt_ids: the ids the model was conditioned on (BOS + prompt, after truncation).
    """

    text: str | None
    token_ids: list[int]
    logprob: float
    score: float
    finish_reason: str
    prompt_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "token_ids": self.token_ids,
            "logprob": self.logprob,
            "score": self.score,
            "finish_reason": self.finish_reason,
        }


class OutputRow:
    """An output being generated: its ids, running log-probability, text and stop checks."""

    def __init__(self, prompt_ids: list[int], bos_id: int, eos_id: int, tokenizer: Any,
                 stop: Sequence[str], ignore_eos: bool, track_text: bool):
        self.prompt_ids = prompt_ids
        self.eos_id, self.tokenizer, self.stop = eos_id, tokenizer, tuple(stop)
        self.ignore_eos = ignore_eos
        self.track_text = track_text and tokenizer is not None
        self.prefix = Prefix(tokenizer, prompt_ids, bos_id) if tokenizer is not None else None
        self.tokens: list[int] = []
        self.logprob = 0.0
        self.text = ""
        self.emitted = 0
        self.finish_reason: str | None = None

    def push(self, token: int, logprob: float) -> str:
        """Add a token; return the text that can be released to a stream now."""
        self.logprob += logprob
        if token == self.eos_id and not self.ignore_eos:
            return self.finish("eos")
        self.tokens.append(token)
        if not self.track_text:
            return ""
        text = self.prefix.continuation(self.tokens)
        for s in self.stop:
            at = text.find(s)
            if at >= 0:
                self.text = text[:at]
                return self.finish("stop")
        self.text = text
        return self._release(hold=_held_back(text, self.stop))

    def finish(self, reason: str) -> str:
        self.finish_reason = reason
        if self.prefix is not None and not self.track_text:
            self.text = self.prefix.continuation(self.tokens)
        return self._release(hold=0)

    def _release(self, hold: int) -> str:
        end = len(self.text) - hold
        if end <= self.emitted:
            return ""
        piece = self.text[self.emitted : end]
        self.emitted = end
        return piece

    def completion(self, score: float | None = None) -> Completion:
        return Completion(
            text=self.text if self.tokenizer is not None else None,
            token_ids=list(self.tokens),
            logprob=self.logprob,
            score=self.logprob if score is None else score,
            finish_reason=self.finish_reason or "length",
            prompt_ids=self.prompt_ids,
        )


class Prefix:
    """Decodes generated ids as a continuation of the prompt.

    Word-level tokenizers put spaces between tokens and byte-level ones may join bytes across
    the boundary, so the continuation's text is ``decode(prompt + new)`` minus
    ``decode(prompt)`` (falling back to ``decode(new)`` when the first is not a prefix).
    """

    def __init__(self, tokenizer: Any, prompt_ids: Sequence[int], bos_id: int):
        self.tokenizer = tokenizer
        self.ids = [t for t in prompt_ids[1:]] if prompt_ids[:1] == [bos_id] else list(prompt_ids)
        self.text = tokenizer.decode(self.ids) if self.ids else ""

    def continuation(self, tokens: Sequence[int]) -> str:
        if not self.ids:
            return self.tokenizer.decode(tokens)
        whole = self.tokenizer.decode([*self.ids, *tokens])
        if whole.startswith(self.text):
            return whole[len(self.text) :]
        return self.tokenizer.decode(tokens)


def _held_back(text: str, stop: Sequence[str]) -> int:
    """How many trailing characters a stream must hold: a half-decoded character (U+FFFD from
    an incomplete UTF-8 sequence) or the start of a stop string."""
    hold = 0
    if text.endswith("\ufffd"):
        hold = len(text) - len(text.rstrip("\ufffd"))
    for s in stop:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                hold = max(hold, k)
                break
    return hold


def resolve_seed(seed: int | None) -> int:
    """The seed to use: the given one, or a fresh random one (reported back to the user)."""
    if seed is not None:
        return int(seed)
    import secrets

    return secrets.randbits(63)


__all__ = [
    "Completion",
    "DecodingContext",
    "OutputRow",
    "Prefix",
    "PromptTruncatedWarning",
    "prepare_prompts",
    "resolve_seed",
    "row_seed",
]
