"""Two toy families that prove interface v2 before the real ones arrive.

* ``toy-source-bigram`` -- a *conditional* generator, P(y_t | y_{t-1}, x):

      logits_t = A[y_{t-1}] + (1/|x|) sum_s S[x_s]

  a bigram table plus a bag of the source's tokens. It implements ``logprobs`` / ``start`` /
  ``step`` / ``select_state`` with a source, so decoding (greedy, sampling, beam) and
  perplexity run on it exactly as they will on an encoder-decoder.
* ``toy-masked`` -- a *masked* scorer, P(w_t | w_{t-1}, w_{t+1}): both neighbours, like a
  one-layer bidirectional model. It can only score (pseudo-log-likelihood), so it runs through
  perplexity and minimal pairs but not through decoding.

Both are tiny ``nn.Module`` s with safetensors weights, registered as families so that
``load_model`` and the command line load them; neither is meant for real use.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from chainrule.errors import ConfigError, ModelFormatError
from chainrule.fileio import read_safetensors, write_safetensors
from chainrule.models.base import Generator, Scorer, Source, register_family


@dataclass(frozen=True)
class ToyConfig:
    vocab_size: int
    bos_id: int = 0
    eos_id: int = 1
    source_vocab_size: int = 0  # 0: the target vocabulary's size
    source_pad_id: int = 0

    def __post_init__(self):
        if self.vocab_size < 2:
            raise ConfigError(f"vocab_size must be at least 2, got {self.vocab_size}.")


class _Toy(nn.Module):
    """Persistence shared by the toys: config fields + ``model.safetensors``."""

    def __init__(self, cfg: ToyConfig):
        nn.Module.__init__(self)
        self.cfg = cfg
        self.vocab_size, self.bos_id, self.eos_id = cfg.vocab_size, cfg.bos_id, cfg.eos_id

    def config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.cfg)

    def save_weights(self, directory: Path) -> None:
        write_safetensors(Path(directory) / "model.safetensors",
                          {k: v.contiguous() for k, v in self.state_dict().items()},
                          metadata={"format": "chainrule-model", "family": self.family})

    @classmethod
    def from_directory(cls, directory: Path, config: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(ToyConfig)}
        model = cls(ToyConfig(**{k: v for k, v in config.items() if k in names}))
        tensors = read_safetensors(Path(directory) / "model.safetensors")
        try:
            model.load_state_dict(tensors)
        except RuntimeError as e:
            raise ModelFormatError(f"{str(directory)!r}: weights do not match ({e}).") from None
        return model.eval()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class SourceBigramLM(_Toy, Generator):
    """P(y_t | y_{t-1}, x) = softmax(A[y_{t-1}] + mean_s S[x_s]) (see the module docstring)."""

    family = "toy-source-bigram"
    conditional = True

    def __init__(self, cfg: ToyConfig):
        super().__init__(cfg)
        self.source_pad_id = cfg.source_pad_id
        V, S = cfg.vocab_size, cfg.source_vocab_size or cfg.vocab_size
        self.A = nn.Parameter(torch.zeros(V, V))
        self.S = nn.Parameter(torch.zeros(S, V))

    def _bag(self, source: Source) -> torch.Tensor:
        """mean_s S[x_s] over each row's real source tokens: (B, V)."""
        ids, lengths = source
        real = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
        summed = (self.S[ids] * real[..., None]).sum(1)
        return summed / lengths.clamp(min=1)[:, None]

    def forward(self, idx: torch.Tensor, state: Any = None, source: Any = None):
        src = self._source(source, idx.shape[0])
        return self.A[idx] + self._bag(src)[:, None, :], None

    def logprobs(self, tokens, source=None):
        with torch.no_grad():
            logits, _ = self.forward(tokens.to(self.device), None, source)
            return torch.log_softmax(logits.float(), -1)

    def start(self, prompt, lengths=None, source=None):
        src = self._source(source, prompt.shape[0])
        prompt = prompt.to(self.device)
        B, T = prompt.shape
        lengths = torch.full((B,), T) if lengths is None else lengths
        last = prompt[torch.arange(B), lengths.to(self.device) - 1]
        with torch.no_grad():
            bag = self._bag(src)
        return torch.log_softmax(self.A[last].detach() + bag, -1), (last, bag)

    def step(self, state, token):
        _, bag = state
        token = token.to(self.device)
        return torch.log_softmax(self.A[token].detach() + bag, -1), (token, bag)

    def select_state(self, state, index):
        index = index.to(self.device)
        return tuple(s.index_select(0, index) for s in state)


class NeighbourMaskedLM(_Toy, Scorer):
    """P(w_t | w_{t-1}, w_{t+1}) = softmax(L[w_{t-1}] + R[w_{t+1}]); past the last real token
    the right neighbour is an "edge" row of R (so padding is never read)."""

    family = "toy-masked"
    masked = True

    def __init__(self, cfg: ToyConfig):
        super().__init__(cfg)
        V = cfg.vocab_size
        self.L = nn.Parameter(torch.zeros(V, V))
        self.R = nn.Parameter(torch.zeros(V + 1, V))  # row V: no right neighbour

    def forward(self, idx: torch.Tensor, state: Any = None, lengths: torch.Tensor | None = None):
        """Logits (B, T, V) for every position from its two neighbours (the masked-LM head)."""
        B, T = idx.shape
        edge = self.vocab_size
        left = torch.cat([torch.full((B, 1), self.bos_id, device=idx.device), idx[:, :-1]], 1)
        right = torch.cat([idx[:, 1:], torch.full((B, 1), edge, device=idx.device)], 1)
        if lengths is not None:
            pos = torch.arange(T, device=idx.device)[None, :]
            right = torch.where(pos >= lengths.to(idx.device)[:, None] - 1,
                                torch.full_like(right, edge), right)
        return self.L[left] + self.R[right], None

    def token_logprobs(self, tokens, lengths=None, source=None):
        self._source(source, tokens.shape[0])
        tokens = tokens.to(self.device)
        with torch.no_grad():
            logits, _ = self.forward(tokens, None, lengths)
            lp = torch.log_softmax(logits.float(), -1)[:, 1:]
            return lp.gather(-1, tokens[:, 1:, None]).squeeze(-1)


register_family(SourceBigramLM.family, SourceBigramLM, "toy conditional bigram (tests only)",
                config_class=ToyConfig)
register_family(NeighbourMaskedLM.family, NeighbourMaskedLM, "toy masked scorer (tests only)",
                config_class=ToyConfig)


def fit_toy(model: _Toy, sequences: list[list[int]], sources: list[list[int]] | None = None,
            steps: int = 60, lr: float = 0.3) -> _Toy:
    """Full-batch Adam on framed ``sequences`` (and their ``sources`` for the conditional toy)."""
    T = max(len(s) for s in sequences)
    x = torch.full((len(sequences), T), model.eos_id, dtype=torch.long)
    for i, s in enumerate(sequences):
        x[i, : len(s)] = torch.tensor(s)
    lengths = torch.tensor([len(s) for s in sequences])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    pos = torch.arange(T)[None, :]
    with torch.enable_grad():
        for _ in range(steps):
            if model.masked:
                logits, _ = model(x, None, lengths)
                targets = torch.where((pos >= 1) & (pos < lengths[:, None]), x, -100)
            else:
                logits, _ = model(x[:, :-1], None, source=sources)
                targets = torch.where(pos[:, 1:] < lengths[:, None], x[:, 1:], -100)
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                               ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


__all__ = ["NeighbourMaskedLM", "SourceBigramLM", "ToyConfig", "fit_toy"]
