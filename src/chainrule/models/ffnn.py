"""Bengio et al. (2003): a neural probabilistic language model over a fixed window.

To predict the token after position t the model looks at the n-1 tokens
w_{t-n+2} .. w_t (n = ``order``), like an n-gram model, but through a shared embedding C:

    x = [C(w_{t-n+2}); ...; C(w_t)]                  (n-1) * m features, oldest first
    y = b + W x + U tanh(d + H x)                     logits over the vocabulary
    P(w_{t+1} | context) = softmax(y)

W is the optional "direct connections" from the embeddings to the output. Similar words get
similar rows of C, so the model generalises to contexts it never saw, which counts cannot do.

Positions with fewer than n-1 previous tokens (the start of a sequence) see the window padded
on the left with ``bos``, the same convention an n-gram model uses for its first words. In
code, [U W] is one matrix applied to [tanh(d + H x); x].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from chainrule.models.neural import FFNNConfig, NeuralLM, register_neural_family


class FeedForwardLM(NeuralLM):
    """Bengio et al.'s feed-forward n-gram network, implementing the chainrule interface.

    Its ``start`` / ``step`` state is the window itself: the last n-1 token ids (B, n-1).
    """

    markov_window = True  # conditions on the last max_context tokens by definition

    family = "ffnn"
    config_class = FFNNConfig

    def __init__(self, cfg: FFNNConfig):
        super().__init__(cfg)
        self.window = cfg.order - 1
        self.max_context = self.window
        features = self.window * cfg.n_embd
        self.C = nn.Embedding(cfg.vocab_size, cfg.n_embd)  # shared word feature vectors
        self.H = nn.Linear(features, cfg.n_hidden)  # hidden layer (its bias is d)
        self.drop = nn.Dropout(cfg.dropout)
        # output layer over [tanh(d + Hx); x] when direct, i.e. U and W side by side (bias b)
        self.out = nn.Linear(cfg.n_hidden + (features if cfg.direct else 0), cfg.vocab_size)
        nn.init.normal_(self.C.weight, std=0.1)
        nn.init.zeros_(self.out.bias)

    def _features(self, windows: torch.Tensor) -> torch.Tensor:
        """Token windows (..., n-1) -> features [tanh(d + H x); x] (..., H')."""
        x = self.drop(self.C(windows).flatten(-2))  # (..., (n-1) * m)
        h = self.drop(torch.tanh(self.H(x)))  # (..., n_hidden)
        return torch.cat([h, x], dim=-1) if self.cfg.direct else h

    def _windows(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T, n-1): row t holds tokens t-n+2 .. t, bos where they do not exist."""
        padded = F.pad(idx, (self.window - 1, 0), value=self.bos_id)  # (B, T + n - 2)
        return padded.unfold(1, self.window, 1)

    def hidden(self, idx: torch.Tensor, state=None):
        """(B, T) -> ((B, T, H') features, None); the window never crosses the left edge."""
        return self._features(self._windows(idx)), None

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(h)

    def start(self, prompt: torch.Tensor, lengths: torch.Tensor | None = None, source=None):
        self._source(source, prompt.shape[0])
        with self.inference():
            prompt = self._to_device(prompt)
            B, T = prompt.shape
            if lengths is None:
                lengths = torch.full((B,), T, device=prompt.device)
            lengths = lengths.to(prompt.device, torch.long)
            # the n-1 positions ending at each row's last real token; before 0 means bos
            cols = lengths[:, None] - self.window + torch.arange(self.window, device=prompt.device)
            window = prompt.gather(1, cols.clamp(min=0))
            window = torch.where(cols >= 0, window, torch.full_like(window, self.bos_id))
            return self._last_logprobs(self._features(window)), window

    def step(self, state: torch.Tensor, token: torch.Tensor):
        with self.inference():
            window = torch.cat([state[:, 1:], self._to_device(token)[:, None]], dim=1)
            return self._last_logprobs(self._features(window)), window

    def select_state(self, state: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return state.index_select(0, index.to(state.device))


register_neural_family(FeedForwardLM, "Bengio et al. (2003) feed-forward n-gram network")

__all__ = ["FeedForwardLM"]
