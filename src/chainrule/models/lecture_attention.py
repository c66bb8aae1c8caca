"""Scaled dot-product and multi-head attention written out as on the lecture's slides.

This is the readable reference for :class:`chainrule.models.layers.CausalSelfAttention`, the
fast path (one fused q/k/v matmul and ``F.scaled_dot_product_attention``). Nothing here is used
for training; ``tests/test_lecture_reference.py`` checks that both compute the same numbers.

The slides, in the row-vector convention of "Multi-head attention" (X holds one x_i per row):

    q_i = W^Q x_i      k_i = W^K x_i      v_i = W^V x_i          (Q = X W^Q, and so on)
    a(q, k) = q^T k / sqrt(d_k)                                    (scaled dot product)
    e_ij = a(q_i, k_j)                     (the slide's score(x_j, x_i) = k_j^T q_i / sqrt(d_k))
    alpha_ij = exp(e_ij) / sum_j' exp(e_ij')                       (softmax over j)
    h = softmax(Q K^T / sqrt(d_k)) V                               (one head)
    Y = [h_1; h_2; ...; h_k] W^O                                   (concatenate, project)

A decoder-only ("causal") language model lets position i attend only to positions j <= i.
Shapes: T positions, d model width, d_k the width of one head (d = n_head * d_k); every
function also takes leading batch dimensions (B, ..., T, width).
"""

from __future__ import annotations

import math

import torch


def softmax(e: torch.Tensor) -> torch.Tensor:
    """alpha_ij = exp(e_ij) / sum_j' exp(e_ij'), over the last axis (the keys j).

    The row maximum is subtracted first; that changes no value (it cancels in the ratio) but
    keeps exp from overflowing. A score of ``-inf`` (a masked key) gets weight exactly 0.
    """
    e = e - e.amax(dim=-1, keepdim=True)
    exp_e = torch.exp(e)
    return exp_e / exp_e.sum(dim=-1, keepdim=True)


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(T, T) booleans, True where query i may attend to key j, i.e. j <= i (lower triangle)."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def attention_weights(
    Q: torch.Tensor, K: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """alpha = softmax(Q K^T / sqrt(d_k)): (..., T_q, d_k), (..., T_k, d_k) -> (..., T_q, T_k).

    Row i holds how much query i attends to each key j; ``mask`` (broadcastable to
    (..., T_q, T_k), True = allowed) removes keys by giving them the score -inf.
    """
    d_k = Q.shape[-1]
    scores = Q @ K.transpose(-2, -1) / math.sqrt(d_k)  # e_ij = q_i . k_j / sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return softmax(scores)


def attention(
    Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V.

    Args:
        Q: (..., T_q, d_k) queries, one per row.
        K: (..., T_k, d_k) keys.
        V: (..., T_k, d_v) values.
        mask: optional booleans broadcastable to (..., T_q, T_k), True where attending is
            allowed (as ``torch.nn.functional.scaled_dot_product_attention``'s boolean mask).
    Returns:
        (..., T_q, d_v): each output row is the alpha-weighted average of the value rows.
    """
    return attention_weights(Q, K, mask) @ V


def multi_head_attention(
    x: torch.Tensor,
    W_q: torch.Tensor,
    W_k: torch.Tensor,
    W_v: torch.Tensor,
    W_o: torch.Tensor,
    n_head: int,
    causal: bool = True,
    *,
    b_q: torch.Tensor | None = None,
    b_k: torch.Tensor | None = None,
    b_v: torch.Tensor | None = None,
    b_o: torch.Tensor | None = None,
) -> torch.Tensor:
    """Self-attention with ``n_head`` heads: Y = [h_1; ...; h_k] W^O.

    Head i uses columns i*d_k .. (i+1)*d_k of the projections, which is the slide's
    Q_i = X W^{Q_i}, K_i = X W^{K_i}, V_i = X W^{V_i} with the k heads' matrices side by side::

        h_i = softmax(Q_i K_i^T / sqrt(d_k)) V_i

    Args:
        x: (..., T, d) the inputs x_1 .. x_T, one per row.
        W_q, W_k, W_v: (d, d) projections, so that Q = X W^Q (+ b_q).
        W_o: (d, d) output projection W^O.
        n_head: number of heads k; d must be a multiple of it.
        causal: position i attends only to positions j <= i (a decoder / language model).
        b_q, b_k, b_v, b_o: optional biases (GPT-2 has them; the slides do not).
    Returns:
        (..., T, d).
    """
    d = x.shape[-1]
    if d % n_head:
        raise ValueError(f"the width {d} is not a multiple of n_head={n_head}")
    d_k = d // n_head
    Q, K, V = x @ W_q, x @ W_k, x @ W_v
    if b_q is not None:
        Q, K, V = Q + b_q, K + b_k, V + b_v
    mask = causal_mask(x.shape[-2], x.device) if causal else None
    heads = []
    for i in range(n_head):
        cols = slice(i * d_k, (i + 1) * d_k)
        heads.append(attention(Q[..., cols], K[..., cols], V[..., cols], mask))
    Y = torch.cat(heads, dim=-1) @ W_o  # [h_1; h_2; ...; h_k] W^O
    return Y if b_o is None else Y + b_o


def lecture_weights(module: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    """The slide's matrices inside a :class:`~chainrule.models.layers.CausalSelfAttention`.

    ``c_attn`` is one ``nn.Linear(d, 3d)``; it computes x c_attn.weight^T + bias, and its
    output holds q, k, v side by side, so W^Q is the transpose of the first d rows of
    ``c_attn.weight`` (W^K the next d, W^V the last d); ``c_proj`` likewise holds W^O.
    The result can be passed as keyword arguments to :func:`multi_head_attention`.
    """
    W = module.c_attn.weight
    d = W.shape[1]
    W_q, W_k, W_v = (W[j * d : (j + 1) * d].T for j in range(3))
    b = module.c_attn.bias
    b_q, b_k, b_v = (None, None, None) if b is None else (b[:d], b[d : 2 * d], b[2 * d :])
    return {"W_q": W_q, "W_k": W_k, "W_v": W_v, "W_o": module.c_proj.weight.T,
            "b_q": b_q, "b_k": b_k, "b_v": b_v, "b_o": module.c_proj.bias}


__all__ = [
    "attention",
    "attention_weights",
    "causal_mask",
    "lecture_weights",
    "multi_head_attention",
    "softmax",
]
