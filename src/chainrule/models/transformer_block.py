"""The transformer block of chainrule's transformers: ``gpt`` stacks it, and ``bert`` and
``transformer-ed`` build their stacks from it too. :mod:`chainrule.models.gpt` re-exports it.
"""

from __future__ import annotations

import torch
from torch import nn

from chainrule.models.layers import MLP, CausalSelfAttention, Rope, make_norm
from chainrule.models.neural import GPTConfig


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + MLP(norm(x)).

    A config with ``post_norm = True`` (BERT, the original transformer) puts each norm after its
    residual sum instead: norm(x + attn(x)), then norm(x + MLP(x)).
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        C = cfg.n_embd
        self.post_norm = bool(getattr(cfg, "post_norm", False))
        self.ln_1 = make_norm(cfg.norm, C, cfg.layer_norm_eps, cfg.bias)
        self.attn = CausalSelfAttention(C, cfg.n_head, cfg.dropout, cfg.bias, cfg.n_kv_head)
        # mlp="none": an attention-only block (no second norm, no MLP)
        self.has_mlp = cfg.mlp != "none"
        if self.has_mlp:
            self.ln_2 = make_norm(cfg.norm, C, cfg.layer_norm_eps, cfg.bias)
            self.mlp = MLP(C, cfg.dropout, cfg.bias, cfg.mlp, cfg.n_inner)

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP half of the block (the identity in an attention-only block)."""
        if not self.has_mlp:
            return x
        if self.post_norm:
            return self.ln_2(x + self.mlp(x))
        return x + self.mlp(self.ln_2(x))

    def forward(self, x: torch.Tensor, rope: Rope | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.post_norm:
            return self._ffn(self.ln_1(x + self.attn(x, rope, mask)))
        return self._ffn(x + self.attn(self.ln_1(x), rope, mask))

    def prefill(self, x: torch.Tensor, rope: Rope | None):
        """Like forward, also returning this layer's keys and values (each (B, nh, T, hs))."""
        y, kv = self.attn.attend(self.ln_1(x), rope)
        return self._ffn(x + y), kv

    def decode(self, x, rope, k_cache, v_cache, pos, mask) -> torch.Tensor:
        """One token per row (B, 1, C) against this layer's cache (see CausalSelfAttention)."""
        return self._ffn(x + self.attn.decode(self.ln_1(x), rope, k_cache, v_cache, pos, mask))


__all__ = ["Block"]
