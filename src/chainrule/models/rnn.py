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
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

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
        out, state = self._recur(x, idx, state)  # (B, T, n_hidden)
        out = self.drop(out)
        return (self.proj(out) if self.proj is not None else out), state

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(h)

    # -- reset at <s> (cfg.reset_at_bos) -----------------------------------------------------
    @property
    def _resets(self) -> bool:
        return bool(getattr(self.cfg, "reset_at_bos", False))

    def _recur(self, x: torch.Tensor, idx: torch.Tensor, state: State):
        """The cell over (B, T). With ``reset_at_bos`` a row's state is zeroed just before each
        ``<s>`` it reads, so a sentence inside a training stream starts from the zero state it
        is scored from: each row is cut before every ``<s>`` into pieces, and all the pieces go
        through the cell in one packed call (:func:`_run_pieces`).
        """
        if not self._resets:
            return self.cell(x, state)
        at_bos = idx == self.bos_id  # (B, T)
        if not bool(at_bos[:, 1:].any()):  # at most a reset before the first column
            if state is not None and bool(at_bos[:, 0].any()):
                state = _keep_rows(state, ~at_bos[:, 0])
            return self.cell(x, state)
        if state is None:
            state = self.init_state(idx.shape[0], x.device)
        return _run_pieces(self.cell, x, at_bos, state)

    def _after_last_bos(self, prompt: torch.Tensor, lengths: torch.Tensor | None):
        """With ``reset_at_bos`` a row's state depends only on its tokens from its last ``<s>``
        on: each row cut there, left-aligned and padded, with its new lengths."""
        B, T = prompt.shape
        lengths = (torch.full((B,), T, dtype=torch.long) if lengths is None
                   else lengths.to("cpu", torch.long))
        cols = torch.arange(T)
        at_bos = (prompt.cpu() == self.bos_id) & (cols[None] < lengths[:, None])
        last = torch.where(at_bos, cols[None], torch.zeros_like(cols)[None]).max(1).values
        if not bool((last > 0).any()):
            return prompt, lengths
        new_len = lengths - last
        width = int(new_len.max())
        src = (last[:, None] + torch.arange(width)[None]).clamp(max=T - 1)
        cut = prompt.gather(1, src.to(prompt.device))
        return cut, new_len

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
            if self._resets:  # the state after the last <s> forgets what came before it
                prompt, lengths = self._after_last_bos(prompt, lengths)
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
            token = self._to_device(token)
            if self._resets:
                state = _keep_rows(state, token != self.bos_id)
            x = self.embedding(token)[:, None]  # (B, 1, n_embd)
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
        if self._resets:  # in place, no data-dependent Python: a CUDA graph replays it
            keep = (token != self.bos_id).to(self.embedding.weight.dtype)[:, None]
            for s in state if isinstance(state, tuple) else (state,):
                s.mul_(keep)
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


def _run_pieces(cell: nn.Module, x: torch.Tensor, at_bos: torch.Tensor, state: State):
    """Run ``cell`` over (B, T, E) inputs with each row's state zeroed before every ``<s>``.

    Each row is cut into pieces that start at column 0 and at every ``<s>``; the pieces are
    left-aligned, padded and packed, so one cell call runs them all: a piece that starts with
    ``<s>`` from the zero state, a row's first piece otherwise from the row's ``state``. The
    outputs go back to their (row, column) places; the state returned is each row's last
    piece's. Example: rows ``a <s> b c`` and ``d e <s> f`` are the pieces ``a``, ``<s> b c``,
    ``d e``, ``<s> f``.
    """
    T = at_bos.shape[1]
    starts = at_bos.clone()
    starts[:, 0] = True
    rows, cols = torch.nonzero(starts, as_tuple=True)  # row by row: the pieces in order
    per_row = starts.sum(1)
    piece = starts.long().cumsum(1) - 1 + (per_row.cumsum(0) - per_row)[:, None]  # (B, T)
    pos = torch.arange(T, device=x.device)[None] - cols[piece]  # column within the piece
    lengths = torch.bincount(piece.flatten(), minlength=rows.numel())
    padded = x.new_zeros(rows.numel(), int(lengths.max()), x.shape[-1]).index_put((piece, pos), x)
    first = _keep_rows(_pick_rows(state, rows), ~at_bos[rows, cols])
    packed = pack_padded_sequence(padded, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, last = cell(packed, first)
    out, _ = pad_packed_sequence(out, batch_first=True)
    return out[piece, pos], _pick_rows(last, piece[:, -1])


def _pick_rows(state: State, index: torch.Tensor) -> State:
    """The rows ``index`` of a state (n_layer, B, H) (or of each tensor of a tuple)."""
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)
    return state.index_select(1, index)


def _keep_rows(state: State, keep: torch.Tensor) -> State:
    """``state`` with the rows where ``keep`` (B,) is False set to zero (differentiably)."""
    if isinstance(state, tuple):
        return tuple(_keep_rows(s, keep) for s in state)
    return state * keep.to(state.dtype)[None, :, None]


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
