"""Neural blocks shared by the families: causal self-attention, the GELU MLP, rotary positions.

Names follow GPT-2 / nanoGPT (``c_attn``, ``c_proj``, ``c_fc``) so that weights map one to one
onto ``transformers``' ``GPT2LMHeadModel`` (see :func:`chainrule.models.gpt.gpt_to_hf_state_dict`).
Shape comments use B batch, T time, C width, nh heads, hs head width (C = nh * hs), L cache length.
"""

from __future__ import annotations

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

    def at(self, pos: torch.Tensor) -> Rope:
        """(cos, sin) for one position per row: pos (B,) -> each (B, 1, 1, hs/2)."""
        return self.cos[pos][:, None, None], self.sin[pos][:, None, None]


def apply_rotary(x: torch.Tensor, rope: Rope) -> torch.Tensor:
    """Rotate queries or keys x (B, nh, T, hs) by the angles in ``rope``."""
    cos, sin = (r.to(x.dtype) for r in rope)  # keep bf16 under autocast
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused q/k/v projection.

    ``forward`` is the training / full pass (``is_causal`` lets SDPA pick a fused kernel);
    ``attend`` also returns the keys and values for a cache; ``decode`` attends one new token
    per row to a key/value cache in which each row has its own length.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def _qkv(self, x: torch.Tensor, rope: Rope | None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if rope is not None:  # (B, nh, T, hs)
            q, k = apply_rotary(q, rope), apply_rotary(k, rope)
        return q, k, v

    def _out(self, y: torch.Tensor) -> torch.Tensor:
        B, _, T, hs = y.shape
        y = y.transpose(1, 2).contiguous().view(B, T, self.n_head * hs)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def attend(self, x: torch.Tensor, rope: Rope | None = None):
        """x (B, T, C) -> (y (B, T, C), (k, v) each (B, nh, T, hs))."""
        q, k, v = self._qkv(x, rope)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return self._out(y), (k, v)

    def forward(self, x: torch.Tensor, rope: Rope | None = None) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C), position t attending to positions <= t."""
        return self.attend(x, rope)[0]

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
            k_cache, v_cache: (B, nh, L, hs); row b holds ``pos[b]`` valid entries.
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
        y = F.scaled_dot_product_attention(q, k_cache[:, :, :K], v_cache[:, :, :K], attn_mask=mask)
        return self._out(y)


class MLP(nn.Module):
    """Position-wise feed-forward layer: C -> 4C -> GELU -> C.

    GELU uses the tanh approximation, which is GPT-2's ``gelu_new``.
    """

    def __init__(self, n_embd: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


__all__ = ["MLP", "CausalSelfAttention", "Rope", "RotaryEmbedding", "apply_rotary"]
