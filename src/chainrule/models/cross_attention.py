"""Attention over a source: what lets a decoder look past the encoder's fixed-size summary.

Two modules, both "a query from the decoder, keys and values from the encoder":

* :class:`SourceAttention` -- the RNN encoder-decoder's attention (one head). Its score
  function is chosen by name, as in the lecture:

      mlp     score(q, k) = u^T tanh(W_q q + W_k k)      (Bahdanau et al. 2015, "additive";
                                                          W [q; k] with W split in two)
      dot     score(q, k) = q^T k                         (Luong et al. 2015)
      scaled  score(q, k) = q^T k / sqrt(d)               (Vaswani et al. 2017)

  the weights are a = softmax_s score(q, k_s) over the real source positions, and the context
  is c = sum_s a_s v_s.
* :class:`CrossAttention` -- the transformer decoder's multi-head cross-attention (scaled dot
  products per head, queries from the decoder stream, keys and values from the encoder output).

Both take a key mask (B, S) (True = a real source position) so padding is never attended, and
both can return their weights (the source x target picture of Bahdanau et al.).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from chainrule.models.layers import _attention_weights, _explicit_attention, _short_bf16_on_cpu

ATTENTION_KINDS = ("none", "mlp", "dot", "scaled")


class SourceAttention(nn.Module):
    """One-head attention of decoder states over encoder states (see the module docstring).

    Args:
        kind: ``"mlp"``, ``"dot"`` or ``"scaled"``.
        query_dim: width of the decoder state q.
        key_dim: width of the encoder states k (and of the context).
        attn_dim: width of the MLP's hidden layer (``mlp`` only; 0: ``query_dim``).
    For ``dot``/``scaled`` with ``key_dim != query_dim`` the keys are first projected to the
    query's width (Luong's "general" score); the values are always the encoder states.
    """

    def __init__(self, kind: str, query_dim: int, key_dim: int, attn_dim: int = 0):
        super().__init__()
        if kind not in ATTENTION_KINDS[1:]:
            raise ValueError(f"unknown attention {kind!r}")
        self.kind = kind
        self.scale = 1.0 / math.sqrt(query_dim) if kind == "scaled" else 1.0
        if kind == "mlp":
            a = attn_dim or query_dim
            self.w_q = nn.Linear(query_dim, a, bias=False)
            self.w_k = nn.Linear(key_dim, a, bias=True)
            self.u = nn.Linear(a, 1, bias=False)
        elif key_dim != query_dim:
            self.w_k = nn.Linear(key_dim, query_dim, bias=False)
        else:
            self.w_k = None

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """The encoder states as keys, computed once per source: (B, S, K) -> (B, S, A)."""
        return memory if self.w_k is None else self.w_k(memory)

    def forward(self, q: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q (B, T, H), keys from :meth:`keys`, memory (B, S, K), mask (B, S) ->
        (context (B, T, K), weights (B, T, S), each row summing to 1 over real positions)."""
        if self.kind == "mlp":
            # u^T tanh(W_q q_t + W_k k_s) for every (t, s): (B, T, S)
            scores = self.u(torch.tanh(self.w_q(q)[:, :, None, :] + keys[:, None, :, :]))
            scores = scores.squeeze(-1)
        else:
            scores = torch.matmul(q, keys.transpose(1, 2)) * self.scale
        scores = scores.float().masked_fill(~mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.matmul(weights.to(memory.dtype), memory), weights


class CrossAttention(nn.Module):
    """Multi-head attention of the decoder stream over the encoder output (no mask on queries).

    Names follow :class:`chainrule.models.layers.CausalSelfAttention`: ``c_q`` projects the
    queries, ``c_kv`` the keys and values (one matmul), ``c_proj`` the heads' concatenation.
    Setting ``record = True`` keeps the last call's weights in ``weights`` (B, nh, T, S) (an
    explicit softmax instead of the fused kernel), for drawing them.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.n_head, self.head_dim, self.dropout = n_head, n_embd // n_head, dropout
        self.c_q = nn.Linear(n_embd, n_embd, bias=bias)
        self.c_kv = nn.Linear(n_embd, 2 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)
        self.record = False
        self.weights: torch.Tensor | None = None

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the encoder output, once per source: each (B, nh, S, hs)."""
        B, S, C = memory.shape
        k, v = self.c_kv(memory).split(C, dim=2)
        return tuple(t.view(B, S, self.n_head, self.head_dim).transpose(1, 2) for t in (k, v))

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor],
                mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, C), kv from :meth:`memory_kv`, mask (B, S) bool -> (B, T, C)."""
        B, T, C = x.shape
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k, v = kv
        m = mask[:, None, None, :]  # (B, 1, 1, S)
        if self.record:
            w = _attention_weights(q, k, mask=m)
            self.weights = w.detach()
            y = torch.matmul(w.to(v.dtype), v)
        else:
            p = self.dropout if self.training else 0.0
            if _short_bf16_on_cpu(q, k, m, p):  # PyTorch's bf16 CPU kernel is slow
                y = _explicit_attention(q, k, v, False, m, p)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=m, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


__all__ = ["ATTENTION_KINDS", "CrossAttention", "SourceAttention"]
