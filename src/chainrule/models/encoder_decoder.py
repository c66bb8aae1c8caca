"""What the conditional neural families share: P(y_t | x, y_<t) from an encoder and a decoder.

    source x -> encode -> memory (the encoder states, their mask, whatever the decoder precomputes)
    target y -> decode(y, memory) -> features (B, T, H) -> head -> logits (B, T, V)

A source is cut to ``max_len - 1`` tokens (the command line warns first, or refuses with
``--no-truncate``) and the source tokenizer's end-of-sentence id is appended, so every source --
even an empty one -- has at least one position to attend to. Source padding never reaches the
decoder: recurrent encoders read packed sequences and every attention masks padded keys.

A subclass implements ``encode``, ``decode`` (the teacher-forced full pass), ``start_decoder``,
``step_decoder``, ``select_state`` and ``attention_weights``; this class turns them into the
chainrule interface (``forward`` for the training loop, ``logprobs``, ``token_logprobs``,
``start``, ``step``) and keeps the source tokenizer beside the model when it is saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from chainrule.errors import ConfigError
from chainrule.models.base import Source
from chainrule.models.configs import NeuralConfig
from chainrule.models.neural import NeuralLM


@dataclass(frozen=True)
class ConditionalConfig(NeuralConfig):
    """Fields every encoder-decoder has (the source side, lengths, training options)."""

    source_vocab_size: int = 0  # source-token ids (0: vocab_size; training sets it)
    source_pad_id: int = 0  # id that right-pads source batches (never attended)
    source_eos_id: int = 1  # end-of-sentence id appended to every source
    max_len: int = 128  # longest source and target in tokens (longer sources are cut)
    label_smoothing: float = 0.0  # training: cross-entropy against (1-e) one-hot + e uniform
    joint_vocab: bool = False  # training: one BPE for source and target (else one each)

    def _conditional_problems(self) -> list[str]:
        out = self._positive("max_len")
        if not (isinstance(self.source_vocab_size, int) and self.source_vocab_size >= 0):
            out.append(f"source_vocab_size must be 0 or positive, got {self.source_vocab_size!r}.")
        if not 0.0 <= self.label_smoothing < 1.0:
            out.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing}.")
        if isinstance(self.max_len, int) and self.max_len < 2:
            out.append(f"max_len must be at least 2 (a token and the end), got {self.max_len}.")
        return out

    @property
    def n_source(self) -> int:
        return self.source_vocab_size or self.vocab_size


class EncoderDecoder(NeuralLM):
    """Base of ``seq2seq`` and ``transformer-ed`` (see the module docstring)."""

    conditional = True

    def __init__(self, cfg: ConditionalConfig):
        super().__init__(cfg)
        self.source_pad_id = cfg.source_pad_id
        #: the source tokenizer, written as ``source_tokenizer.json`` by :meth:`save`
        self.source_tokenizer: Any = None

    # -- what a subclass implements ------------------------------------------------------------
    def encode(self, ids: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> Any:
        """Prepared source ids (B, S), lengths (B,), mask (B, S) -> the decoder's memory."""
        raise NotImplementedError

    def decode(self, tokens: torch.Tensor, memory: Any) -> torch.Tensor:
        """Teacher-forced features (B, T, H) of target inputs (B, T) given the memory."""
        raise NotImplementedError

    def start_decoder(self, prompt: torch.Tensor, lengths: torch.Tensor, memory: Any):
        """Features (B, H) after each row's last real prompt token, and the decoding state."""
        raise NotImplementedError

    def step_decoder(self, state: Any, token: torch.Tensor):
        """One token per row (B,) -> (features (B, H), new state)."""
        raise NotImplementedError

    def attention_weights(self, tokens: torch.Tensor, memory: Any) -> torch.Tensor:
        """Attention of every target position over the source: (layers, heads, B, T, S)."""
        raise NotImplementedError

    # -- the source ----------------------------------------------------------------------------
    def prepare_source(self, source: Any, batch: int):
        """Cut, append the end id, mask: -> (ids (B, S), lengths (B,), mask (B, S))."""
        src = self._source(source, batch)
        ids, lengths = src.ids, src.lengths.clamp(max=self.cfg.max_len - 1)
        keep = int(lengths.max()) if lengths.numel() else 0
        ids = ids[:, :keep]
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.cfg.n_source):
            real = torch.arange(keep, device=ids.device)[None, :] < lengths[:, None]
            bad = ids[real]
            if bad.numel() and (int(bad.min()) < 0 or int(bad.max()) >= self.cfg.n_source):
                raise ConfigError(f"a source token id is outside the source vocabulary of "
                                  f"{self.cfg.n_source}; encode sources with the model's "
                                  "source tokenizer.")
        B = ids.shape[0]
        out = torch.full((B, keep + 1), self.source_pad_id, dtype=torch.long, device=ids.device)
        pos = torch.arange(keep + 1, device=ids.device)[None, :]
        out[:, :keep] = torch.where(pos[:, :keep] < lengths[:, None], ids,
                                    torch.full_like(ids, self.source_pad_id))
        out[torch.arange(B, device=ids.device), lengths] = self.cfg.source_eos_id
        lengths = lengths + 1
        return out, lengths, pos < lengths[:, None]

    def memory(self, source: Any, batch: int) -> Any:
        return self.encode(*self.prepare_source(source, batch))

    def _check_target(self, T: int) -> None:
        if T > self.cfg.max_len:
            raise ConfigError(f"a target of {T} tokens is longer than max_len {self.cfg.max_len}; "
                              "cut it, or train a model with a larger max_len.")

    # -- the interface -------------------------------------------------------------------------
    def forward(self, idx: torch.Tensor, state: Any = None, source: Any = None, **_: Any):
        """Logits (B, T, V) of target inputs given ``source`` (the training loop's call)."""
        self._check_target(idx.shape[1])
        h = self.decode(idx, self.memory(source, idx.shape[0]))
        return self.head(h), None

    def logprobs(self, tokens: torch.Tensor, source: Source | torch.Tensor | None = None
                 ) -> torch.Tensor:
        tokens = self._to_device(tokens)
        with self.inference():
            mem = self.memory(source, tokens.shape[0])
            if tokens.shape[1] == 0:
                return torch.zeros(*tokens.shape, self.vocab_size, device=tokens.device)
            self._check_target(tokens.shape[1])
            return torch.log_softmax(self.head(self.decode(tokens, mem)).float(), dim=-1)

    def token_logprobs(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None,
                       source: Source | torch.Tensor | None = None) -> torch.Tensor:
        tokens = self._to_device(tokens)
        with self.inference():
            mem = self.memory(source, tokens.shape[0])
            if tokens.shape[1] <= 1:
                return torch.zeros(tokens.shape[0], 0, device=tokens.device)
            self._check_target(tokens.shape[1] - 1)
            logits = self.head(self.decode(tokens[:, :-1], mem)).float()
            gold = logits.gather(-1, tokens[:, 1:, None]).squeeze(-1)
            return gold - torch.logsumexp(logits, dim=-1)

    def start(self, prompt: torch.Tensor, lengths: torch.Tensor | None = None, source=None):
        prompt = self._to_device(prompt)
        B, T = prompt.shape
        with self.inference():
            mem = self.memory(source, B)
            if lengths is None:
                lengths = torch.full((B,), T, dtype=torch.long, device=prompt.device)
            lengths = lengths.to(prompt.device, torch.long)
            self._check_target(int(lengths.max()))
            h, state = self.start_decoder(prompt, lengths, mem)
            return self._last_logprobs(h), state

    def step(self, state: Any, token: torch.Tensor):
        with self.inference():
            h, state = self.step_decoder(state, self._to_device(token))
            return self._last_logprobs(h), state

    def attention(self, tokens: torch.Tensor, source: Any) -> torch.Tensor:
        """Source attention of target inputs (B, T): float (layers, heads, B, T, S+1), the last
        column being the appended end of the source; each row sums to 1."""
        tokens = self._to_device(tokens)
        with self.inference():
            return self.attention_weights(tokens, self.memory(source, tokens.shape[0]))

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory):
        directory = super().save(directory)
        if self.source_tokenizer is not None:
            self.source_tokenizer.save(Path(directory) / "source_tokenizer.json")
        return directory


__all__ = ["ConditionalConfig", "EncoderDecoder"]
