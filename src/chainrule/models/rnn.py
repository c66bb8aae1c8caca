"""Elman recurrent network language model, and the recurrent base that the LSTM shares.

The lecture's simple recurrent network is h_t = U i_t + W h_{t-1}; with a nonlinearity and
biases, ``torch.nn.RNN`` computes exactly

    h_t = tanh(U i_t + b_U + W h_{t-1} + b_W)      (U = weight_ih_l0, W = weight_hh_l0)

and stacks layers by feeding each layer's h_t to the next as its input. The model is

    token -> embedding i_t -> dropout -> stacked recurrence -> dropout -> [projection] -> logits

Unlike the feed-forward model the whole left context reaches the prediction through h_t, so
there is no context limit (``max_context = None``). The recurrent state (h, or (h, c) for the
LSTM) is what ``start`` / ``step`` carry and what truncated BPTT passes from batch to batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from chainrule.models.neural import NeuralLM, RNNConfig, register_neural_family

State = Any  # a tensor (n_layer, B, H), or a tuple of them (the LSTM's (h, c))


class RecurrentLM(NeuralLM):
    """Embedding -> ``self.cell`` (an ``nn.RNN`` / ``nn.LSTM``) -> linear head.

    Subclasses build ``self.cell`` with ``batch_first=True``; everything else is shared.
    """

    recurrent = True  # truncated BPTT carries the hidden state from one batch to the next

    def _build(self, cfg, cell: nn.Module) -> None:
        self.max_context = None
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.cell = cell
        out_width = cfg.n_hidden
        self.proj = None
        self.tied_parameters = ()
        if cfg.tie_weights and cfg.n_hidden != cfg.n_embd:
            # tying needs the output layer's input to have the embedding's width
            self.proj = nn.Linear(cfg.n_hidden, cfg.n_embd, bias=False)
            out_width = cfg.n_embd
        self.decoder = nn.Linear(out_width, cfg.vocab_size)
        if cfg.tie_weights:
            self.decoder.weight = self.embedding.weight
            self.tied_parameters = (("decoder.weight", "embedding.weight"),)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)  # Zaremba et al. (2014); N(0, 1)
        # would give huge logits through a tied output layer
        nn.init.zeros_(self.decoder.bias)

    # -- training contract -------------------------------------------------------------------
    def _zero_state(self, batch_size: int, device) -> State:
        n, H = self.cfg.n_layer, self.cfg.n_hidden
        dtype = self.embedding.weight.dtype
        return torch.zeros(n, batch_size, H, device=device, dtype=dtype)

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """Zero hidden state for ``batch_size`` rows (what ``forward(idx, None)`` starts from)."""
        return self._zero_state(batch_size, device if device is not None else self.device)

    def hidden(self, idx: torch.Tensor, state: State = None):
        """(B, T) -> ((B, T, H') top-layer outputs, state after the last position)."""
        x = self.drop(self.embedding(idx))  # (B, T, n_embd)
        out, state = self.cell(x, state)  # (B, T, n_hidden)
        out = self.drop(out)
        return (self.proj(out) if self.proj is not None else out), state

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(h)

    def layer_outputs(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """(B, T) -> n_layer + 1 tensors (B, T, ·): the input embeddings, then each layer's h_t
        (for probing; no dropout). Layer l is run on its own by a one-layer cell that borrows
        the stacked cell's ``*_l{l}`` weights, so the last entry equals ``hidden``'s output
        before the projection."""
        cell = self.cell
        kw = {"nonlinearity": cell.nonlinearity} if isinstance(cell, nn.RNN) else {}
        x = self.embedding(idx)
        outs = [x]
        for layer in range(cell.num_layers):
            one = type(cell)(x.shape[-1], cell.hidden_size, num_layers=1, bias=cell.bias,
                             batch_first=True, device="meta", **kw)
            params = {name: getattr(cell, f"{name[:-1]}{layer}")
                      for name, _ in one.named_parameters()}  # weight_ih_l0 <- weight_ih_l{l}
            x, _ = torch.func.functional_call(one, params, (x,))
            outs.append(x)
        return outs

    # -- incremental decoding ----------------------------------------------------------------
    def _top(self, state: State) -> torch.Tensor:
        """The top layer's h (B, H) from a state (for the LSTM, the h of (h, c))."""
        h = state[0] if isinstance(state, tuple) else state
        return h[-1]

    def _logprobs_from_state(self, state: State) -> torch.Tensor:
        h = self._top(state)
        return self._last_logprobs(self.proj(h) if self.proj is not None else h)

    def start(self, prompt: torch.Tensor, lengths: torch.Tensor | None = None, source=None):
        self._source(source, prompt.shape[0])
        with self.inference():
            prompt = self._to_device(prompt)
            x = self.embedding(prompt)  # (B, T, n_embd)
            if lengths is not None and bool((lengths < prompt.shape[1]).any()):
                # packing stops each row at its own length, so the state is the one after
                # the row's last real token, not after its padding
                x = pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                         enforce_sorted=False)
            _, state = self.cell(x)
            return self._logprobs_from_state(state), state

    def step(self, state: State, token: torch.Tensor):
        with self.inference():
            x = self.embedding(self._to_device(token))[:, None]  # (B, 1, n_embd)
            _, state = self.cell(x, state)
            return self._logprobs_from_state(state), state

    def select_state(self, state: State, index: torch.Tensor) -> State:
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index.to(s.device)) for s in state)
        return state.index_select(1, index.to(state.device))

    # -- the lean step (fast decoding: chainrule.models.rnn_graphs) ---------------------------
    def _layer_weights(self, layer: int) -> tuple:
        """(W_ih, W_hh, b_ih, b_hh) of one layer, read from the cell (biases may be None)."""
        c = self.cell
        return tuple(getattr(c, f"{name}_l{layer}", None)
                     for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def _cell_step(self, layer: int, x: torch.Tensor, state: State) -> torch.Tensor:
        """One layer, one time step: input (B, in) -> h_t (B, H); ``state`` updated in place."""
        raise NotImplementedError

    def decode_step(self, state: State, token: torch.Tensor) -> torch.Tensor:
        """One token per row (B,) -> float32 log-probabilities (B, V), the state overwritten.

        The cell's equations written out on its own weights, layer by layer (``_cell_step``),
        with no Python work that depends on the data and no host synchronisation, so a CUDA
        graph can replay it (:mod:`chainrule.models.rnn_graphs`). It equals :meth:`step`, which
        runs ``nn.RNN`` / ``nn.LSTM``; unlike it, it writes the new state into ``state``'s own
        tensors. Call in eval mode without gradients.
        """
        x = self.embedding(token)  # (B, n_embd)
        for layer in range(self.cfg.n_layer):
            x = self._cell_step(layer, x, state)  # (B, n_hidden)
        return self._logprobs_from_state(state)

    def fast_decoder(self):
        """A decoder that runs :meth:`decode_step` (replayed as a CUDA graph on CUDA); None for
        a subclass whose cell has no written-out step."""
        if type(self)._cell_step is RecurrentLM._cell_step:
            return None
        from chainrule.models.rnn_graphs import recurrent_decoder

        return recurrent_decoder(self)


class ElmanRNN(RecurrentLM):
    """Elman (simple recurrent) network language model, ``n_layer`` layers deep."""

    family = "rnn"
    config_class = RNNConfig

    def __init__(self, cfg: RNNConfig):
        super().__init__(cfg)
        cell = nn.RNN(cfg.n_embd, cfg.n_hidden, num_layers=cfg.n_layer,
                      nonlinearity=cfg.nonlinearity, batch_first=True,
                      dropout=cfg.dropout if cfg.n_layer > 1 else 0.0)
        self._build(cfg, cell)

    def _cell_step(self, layer: int, x: torch.Tensor, state: State) -> torch.Tensor:
        # h_t = tanh(U i_t + b_U + W h_{t-1} + b_W)  (or relu)
        w_ih, w_hh, b_ih, b_hh = self._layer_weights(layer)
        pre = F.linear(x, w_ih, b_ih) + F.linear(state[layer], w_hh, b_hh)
        h = torch.tanh(pre) if self.cell.nonlinearity == "tanh" else torch.relu(pre)
        state[layer].copy_(h)
        return h


register_neural_family(ElmanRNN, "Elman recurrent network (stackable)")

__all__ = ["ElmanRNN", "RecurrentLM"]
