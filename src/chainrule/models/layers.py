"""Neural blocks shared by the families: causal self-attention (multi-head or grouped-query),
the MLP (GPT-2's GELU or Llama's SwiGLU), LayerNorm or RMSNorm, rotary positions.

Names follow GPT-2 / nanoGPT (``c_attn``, ``c_proj``, ``c_fc``) so that weights map one to one
onto ``transformers``' ``GPT2LMHeadModel`` (see :func:`chainrule.models.gpt.gpt_to_hf_state_dict`);
Llama's separate q/k/v and gate/up matrices are stacked into ``c_attn`` and ``c_fc``.
Shape comments use B batch, T time, C width, nh heads, nkv key/value heads (nh for multi-head
attention, fewer for grouped-query attention), hs head width (C = nh * hs), L cache length.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

Rope = tuple[torch.Tensor, torch.Tensor]  # (cos, sin), each broadcastable to (B, nh, T, hs / 2)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al. 2021), half-split ("GPT-NeoX") layout.

    Channel pair (i, i + hs/2) of a query or key at position p is rotated by the angle
    p * theta^(-2i / hs), so the dot product of a query and a key depends only on their distance.
    The tables are buffers that are not saved: they are a function of the config.
    """

    def __init__(self, head_dim: int, max_positions: int, theta: float = 10000.0):
        super().__init__()
        inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        angles = torch.outer(torch.arange(max_positions, dtype=torch.float64), inv_freq)
        self.register_buffer("cos", angles.cos().float(), persistent=False)  # (P, hs/2)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def tables(self, T: int) -> Rope:
        """(cos, sin) for positions 0..T-1, each (T, hs/2)."""
        return self.cos[:T], self.sin[:T]

    def at_positions(self, pos: torch.Tensor) -> Rope:
        """(cos, sin) for positions (B, T) -> each (B, 1, T, hs/2) (packed examples)."""
        return self.cos[pos][:, None], self.sin[pos][:, None]

    def at(self, pos: torch.Tensor) -> Rope:
        """(cos, sin) for one position per row: pos (B,) -> each (B, 1, 1, hs/2)."""
        return self.cos[pos][:, None, None], self.sin[pos][:, None, None]


def apply_rotary(x: torch.Tensor, rope: Rope) -> torch.Tensor:
    """Rotate queries or keys x (B, nh, T, hs) by the angles in ``rope``."""
    cos, sin = (r.to(x.dtype) for r in rope)  # keep bf16 under autocast
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def make_norm(kind: str, n_embd: int, eps: float, bias: bool) -> nn.Module:
    """``"layernorm"`` (GPT-2) or ``"rmsnorm"`` (Llama: x / rms(x) * g, no mean, no bias)."""
    if kind == "rmsnorm":
        return nn.RMSNorm(n_embd, eps=eps)
    return nn.LayerNorm(n_embd, eps=eps, bias=bias)


_EXPLICIT_MAX_T = 256  # explicit attention up to this length (its T x T scores are kept)
_TORCH_SDPA = F.scaled_dot_product_attention


def _short_bf16_on_cpu(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None,
                       dropout_p: float) -> bool:
    """Whether :func:`_explicit_attention` replaces SDPA: bf16 on CPU, short, and no mask or a
    boolean one.

    PyTorch's CPU flash-attention kernel in bf16 is slow, its backward above all (~13 ms a
    layer at 12 x 4 heads x 64 x 32, against ~2 ms in float32; bench/RESULTS.md, issue 21),
    while two bf16 batched products and a softmax take a fraction of that at short lengths.
    Not while SDPA is replaced (e.g. by :func:`chainrule.models.attention_capture`'s spy).
    """
    return (q.device.type == "cpu" and q.dtype == torch.bfloat16
            and (mask is None or mask.dtype == torch.bool)
            and F.scaled_dot_product_attention is _TORCH_SDPA and q.shape[1] == k.shape[1]
            and max(q.shape[2], k.shape[2]) <= _EXPLICIT_MAX_T)


def _attention_weights(q: torch.Tensor, k: torch.Tensor, causal: bool = False,
                       mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs) [+ causal mask | + mask]) in float32: q (B, nh, T, hs), k
    (B, nh, S, hs) -> (B, nh, T, S); as SDPA's default scale, ``is_causal`` (position t attends
    to positions <= t) and boolean ``attn_mask`` (True = may attend, broadcastable to
    (B, nh, T, S); a row with nothing to attend to gets zeros, as SDPA)."""
    T, S = q.shape[-2], k.shape[-2]
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))  # (B, nh, T, S)
    if causal:
        future = torch.ones(T, S, dtype=torch.bool, device=q.device).triu(S - T + 1)
        att = att.masked_fill(future, float("-inf"))
    att = att.float()
    if mask is None:
        return torch.softmax(att, dim=-1)
    att = att.masked_fill(~mask, float("-inf"))
    return torch.softmax(att, dim=-1).nan_to_num(0.0)  # a row with no key: zeros


def _explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool,
                        mask: torch.Tensor | None = None, dropout_p: float = 0.0) -> torch.Tensor:
    """SDPA written out: :func:`_attention_weights` (float32), ``dropout_p`` dropout on them,
    cast back to v's dtype, times v (B, nh, S, hs) -> y (B, nh, T, hs)."""
    w = _attention_weights(q, k, causal, mask)
    if dropout_p > 0.0:
        w = F.dropout(w, dropout_p)
    return w.to(v.dtype) @ v


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused q/k/v projection.

    With ``n_kv_head < n_head`` it is grouped-query attention (Ainslie et al. 2023): every
    ``n_head / n_kv_head`` query heads share one key/value head, so the cache is that much
    smaller. ``forward`` is the training / full pass (``is_causal`` lets SDPA pick a fused
    kernel); ``attend`` also returns the keys and values for a cache; ``decode`` attends one new
    token per row to a key/value cache in which each row has its own length.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True,
                 n_kv_head: int | None = None):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.n_kv_head = n_kv_head or n_head
        self.head_dim = n_embd // n_head
        kv = self.n_kv_head * self.head_dim
        self.c_attn = nn.Linear(n_embd, n_embd + 2 * kv, bias=bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)
        self.gqa = self.n_kv_head != n_head
        #: False for an encoder (BERT, the encoder of an encoder-decoder): every position
        #: attends to every other unless a mask says otherwise
        self.causal = True

    def _qkv(self, x: torch.Tensor, rope: Rope | None):
        B, T, C = x.shape
        hs, kv = self.head_dim, self.n_kv_head * self.head_dim
        q, k, v = self.c_attn(x).split([C, kv, kv], dim=2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k, v = (t.view(B, T, self.n_kv_head, hs).transpose(1, 2) for t in (k, v))  # nkv heads
        if rope is not None:
            q, k = apply_rotary(q, rope), apply_rotary(k, rope)
        return q, k, v

    def _out(self, y: torch.Tensor) -> torch.Tensor:
        B, _, T, hs = y.shape
        y = y.transpose(1, 2).contiguous().view(B, T, self.n_head * hs)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def attend(self, x: torch.Tensor, rope: Rope | None = None,
               mask: torch.Tensor | None = None):
        """x (B, T, C) -> (y (B, T, C), (k, v) each (B, nkv, T, hs)).

        ``mask`` (bool, True = may attend, broadcastable to (B, nh, T, T)) replaces the causal
        mask when given: the caller builds it whole (e.g. :func:`document_mask`, which is causal
        within each packed document, or a padding mask for an encoder).
        """
        q, k, v = self._qkv(x, rope)
        p = self.dropout if self.training else 0.0
        causal = self.causal and mask is None
        if _short_bf16_on_cpu(q, k, mask, p):
            return self._out(_explicit_attention(q, k, v, causal, mask, p)), (k, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p,
                                           is_causal=causal, enable_gqa=self.gqa)
        return self._out(y), (k, v)

    def forward(self, x: torch.Tensor, rope: Rope | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C), position t attending to positions <= t (or per ``mask``)."""
        return self.attend(x, rope, mask)[0]

    def decode(
        self,
        x: torch.Tensor,
        rope: Rope | None,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        pos: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """Attend one new token per row to the cache, writing its key and value in place.

        Args:
            x: (B, 1, C) the new tokens' inputs.
            rope: rotary tables at each row's position, or None.
            k_cache, v_cache: (B, nkv, L, hs); row b holds ``pos[b]`` valid entries.
            pos: (B,) where each row's new key/value goes (= its number of cached tokens).
            mask: (B, 1, 1, K) True where row b may attend to cache slot k (k <= pos[b]);
                slots from K on are skipped, so K is any host-known bound of max(pos) + 1.
        Returns:
            (B, 1, C).
        """
        q, k, v = self._qkv(x, rope)  # (B, nh, 1, hs)
        rows = torch.arange(x.shape[0], device=x.device)
        k_cache[rows, :, pos] = k[:, :, 0]
        v_cache[rows, :, pos] = v[:, :, 0]
        K = mask.shape[-1]
        y = F.scaled_dot_product_attention(q, k_cache[:, :, :K], v_cache[:, :, :K], attn_mask=mask,
                                           enable_gqa=self.gqa)
        return self._out(y)


def document_mask(doc: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """Attention mask (B, 1, T, T) for sequences packed from several documents.

    ``doc`` (B, T) numbers each position's document; position t may attend to position s when
    both are in the same document (and s <= t if ``causal``), so packed examples never see each
    other and each scores as if alone.
    """
    same = doc[:, :, None] == doc[:, None, :]
    if causal:
        T = doc.shape[1]
        same = same & torch.ones(T, T, dtype=torch.bool, device=doc.device).tril()
    return same[:, None]


class MLP(nn.Module):
    """Position-wise feed-forward layer, C -> inner -> C.

    ``kind="gelu"`` (GPT-2): c_proj(GELU(c_fc(x))), GELU with the tanh approximation (GPT-2's
    ``gelu_new``), inner = 4C by default. ``kind="swiglu"`` (Llama, Shazeer 2020):
    c_proj(SiLU(gate(x)) * up(x)), with gate and up stacked in ``c_fc`` (gate rows first).
    """

    def __init__(self, n_embd: int, dropout: float = 0.0, bias: bool = True, kind: str = "gelu",
                 inner: int = 0):
        super().__init__()
        self.kind = kind
        inner = inner or 4 * n_embd
        self.c_fc = nn.Linear(n_embd, 2 * inner if kind == "swiglu" else inner, bias=bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(inner, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)
        if self.kind == "swiglu":
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = self.gelu(h)
        return self.dropout(self.c_proj(h))


__all__ = [
    "MLP",
    "CausalSelfAttention",
    "Rope",
    "RotaryEmbedding",
    "apply_rotary",
    "document_mask",
    "make_norm",
]
