"""The Elman and LSTM cells written out as the lecture's equations, one time step at a time.

The readable reference for the recurrent families :class:`chainrule.models.rnn.ElmanRNN` and
:class:`chainrule.models.lstm.LSTM`, whose fast path is ``torch.nn.RNN`` / ``torch.nn.LSTM``
(fused cuDNN / oneDNN kernels). ``tests/test_lecture_reference.py`` checks that running these
cells with a model's own weights reproduces the model's hidden states.

Simple recurrent network (the slide's h_t = U i_t + W h_{t-1}, with a bias and a tanh)::

    h_t = tanh(U i_t + W h_{t-1} + b)

LSTM (the slide's z_t = concat(D_{t-1}, x_t), writing h for its D)::

    z_t = [h_{t-1}; x_t]
    i_t = sigma(W_i z_t + b_i)          input gate
    f_t = sigma(W_f z_t + b_f)          forget gate
    o_t = sigma(W_o z_t + b_o)          output gate
    g_t = tanh(W_g z_t + b_g)           candidate
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)

Stacked RNNs feed each layer's h_t to the layer above as its input at time t.

Vectors are rows here, so that a batch (B, n) goes through unchanged: :func:`mv` writes the
slide's matrix-vector product ``M v`` as ``v @ M.T``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import nn


def mv(M: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The product M v for a vector v, or for every row of a batch v (..., n) -> (..., m)."""
    return v @ M.T


# -- Elman ---------------------------------------------------------------------------------------
class ElmanLayer(NamedTuple):
    """One Elman layer: U (H, n_in) reads the input, W (H, H) the previous state, b (H,)."""

    U: torch.Tensor
    W: torch.Tensor
    b: torch.Tensor


def elman_cell(
    i_t: torch.Tensor,
    h_prev: torch.Tensor,
    U: torch.Tensor,
    W: torch.Tensor,
    b: torch.Tensor,
    nonlinearity: Callable[[torch.Tensor], torch.Tensor] = torch.tanh,
) -> torch.Tensor:
    """h_t = tanh(U i_t + W h_{t-1} + b).   i_t (..., n_in), h_prev (..., H) -> (..., H)."""
    return nonlinearity(mv(U, i_t) + mv(W, h_prev) + b)


def run_elman(
    inputs: torch.Tensor,
    layers: Sequence[ElmanLayer],
    h0: torch.Tensor | None = None,
    nonlinearity: Callable[[torch.Tensor], torch.Tensor] = torch.tanh,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unroll a stack of Elman layers over time.

    Args:
        inputs: (B, T, n_in) the inputs i_1 .. i_T.
        layers: bottom layer first (see :func:`elman_layers`).
        h0: (n_layer, B, H) the states before t = 1 (zeros if None).
    Returns:
        (B, T, H) the top layer's h_t at every t, and (n_layer, B, H) every layer's last h_t --
        the same two things ``torch.nn.RNN(..., batch_first=True)`` returns.
    """
    B, T, _ = inputs.shape
    H = layers[0].W.shape[0]
    h = list(h0) if h0 is not None else [inputs.new_zeros(B, H) for _ in layers]
    outputs = []
    for t in range(T):
        x = inputs[:, t]
        for layer, (U, W, b) in enumerate(layers):
            h[layer] = elman_cell(x, h[layer], U, W, b, nonlinearity)
            x = h[layer]  # the input of the layer above
        outputs.append(x)
    return torch.stack(outputs, dim=1), torch.stack(h)


def elman_layers(rnn: nn.RNN) -> list[ElmanLayer]:
    """The lecture's U, W, b for each layer of a ``torch.nn.RNN``.

    PyTorch computes tanh(x weight_ih^T + bias_ih + h weight_hh^T + bias_hh): U is
    ``weight_ih_l{k}``, W is ``weight_hh_l{k}`` and the two biases add up to b.
    """
    layers = []
    for k in range(rnn.num_layers):
        U, W = getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}")
        b = _bias(rnn, k, W.shape[0])
        layers.append(ElmanLayer(U, W, b))
    return layers


# -- LSTM ----------------------------------------------------------------------------------------
class LSTMLayer(NamedTuple):
    """One LSTM layer: each W_* is (H, H + n_in) and reads z_t = [h_{t-1}; x_t]; each b_* (H,)."""

    W_i: torch.Tensor
    W_f: torch.Tensor
    W_g: torch.Tensor
    W_o: torch.Tensor
    b_i: torch.Tensor
    b_f: torch.Tensor
    b_g: torch.Tensor
    b_o: torch.Tensor


def lstm_cell(
    x_t: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor],
    weights: LSTMLayer,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step, the slide line by line.   x_t (..., n_in), state (h, c) each (..., H).

    Returns the new state (h_t, c_t).
    """
    h_prev, c_prev = state
    W_i, W_f, W_g, W_o, b_i, b_f, b_g, b_o = weights
    z_t = torch.cat([h_prev, x_t], dim=-1)  # z_t = concat(h_{t-1}, x_t)
    i_t = torch.sigmoid(mv(W_i, z_t) + b_i)  # input gate
    f_t = torch.sigmoid(mv(W_f, z_t) + b_f)  # forget gate
    o_t = torch.sigmoid(mv(W_o, z_t) + b_o)  # output gate
    g_t = torch.tanh(mv(W_g, z_t) + b_g)  # candidate
    c_t = f_t * c_prev + i_t * g_t
    h_t = o_t * torch.tanh(c_t)
    return h_t, c_t


def run_lstm(
    inputs: torch.Tensor,
    layers: Sequence[LSTMLayer],
    state: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Unroll a stack of LSTM layers over time.

    Args:
        inputs: (B, T, n_in) the inputs x_1 .. x_T.
        layers: bottom layer first (see :func:`lstm_layers`).
        state: (h0, c0), each (n_layer, B, H); zeros if None.
    Returns:
        (B, T, H) the top layer's h_t at every t, and the last (h, c), each (n_layer, B, H) --
        what ``torch.nn.LSTM(..., batch_first=True)`` returns.
    """
    B, T, _ = inputs.shape
    H = layers[0].b_i.shape[0]
    if state is None:
        state = (inputs.new_zeros(len(layers), B, H), inputs.new_zeros(len(layers), B, H))
    h, c = list(state[0]), list(state[1])
    outputs = []
    for t in range(T):
        x = inputs[:, t]
        for layer, weights in enumerate(layers):
            h[layer], c[layer] = lstm_cell(x, (h[layer], c[layer]), weights)
            x = h[layer]  # the input of the layer above
        outputs.append(x)
    return torch.stack(outputs, dim=1), (torch.stack(h), torch.stack(c))


def lstm_layers(lstm: nn.LSTM) -> list[LSTMLayer]:
    """The lecture's W_i, W_f, W_g, W_o and biases for each layer of a ``torch.nn.LSTM``.

    PyTorch stacks the four gates' rows as i, f, g, o in ``weight_ih_l{k}`` (4H, n_in) and
    ``weight_hh_l{k}`` (4H, H), and adds two biases. Since z_t = [h_{t-1}; x_t], the slide's
    W_i is [weight_hh rows of i | weight_ih rows of i], and b_i = bias_ih + bias_hh (rows of i).
    """
    layers = []
    for k in range(lstm.num_layers):
        W_ih, W_hh = getattr(lstm, f"weight_ih_l{k}"), getattr(lstm, f"weight_hh_l{k}")
        H = W_hh.shape[1]
        W = torch.cat([W_hh, W_ih], dim=1)  # (4H, H + n_in): columns for h_{t-1}, then x_t
        b = _bias(lstm, k, 4 * H)
        W_i, W_f, W_g, W_o = W.split(H, dim=0)
        b_i, b_f, b_g, b_o = b.split(H, dim=0)
        layers.append(LSTMLayer(W_i, W_f, W_g, W_o, b_i, b_f, b_g, b_o))
    return layers


def _bias(module: nn.RNNBase, k: int, rows: int) -> torch.Tensor:
    """bias_ih_l{k} + bias_hh_l{k}, or zeros for a module built with ``bias=False``."""
    if not module.bias:
        return getattr(module, f"weight_hh_l{k}").new_zeros(rows)
    return getattr(module, f"bias_ih_l{k}") + getattr(module, f"bias_hh_l{k}")


__all__ = [
    "ElmanLayer",
    "LSTMLayer",
    "elman_cell",
    "elman_layers",
    "lstm_cell",
    "lstm_layers",
    "mv",
    "run_elman",
    "run_lstm",
]
