"""The attention weights of every layer and head of a transformer, for looking at them.

The fast path (``F.scaled_dot_product_attention``) never materialises the weights, so they are
recomputed here from what each block receives: a forward pre-hook on every ``Block`` of
``model.transformer.h`` records its input (x, rope, mask) during one ordinary forward pass;
then, per block, the queries and keys come from the block's own projection (after its first
norm in a pre-norm block) and the weights are the lecture's
``softmax(Q K^T / sqrt(d_k))`` (:func:`chainrule.models.lecture_attention.attention_weights`),
masked as the block masks: causally in a decoder, by the given mask (padding) in an encoder.
Works for ``gpt`` (every shape: rotary, grouped-query) and ``bert``; the tests check that the
weights times the values give the block's own attention output.
"""

from __future__ import annotations

import torch

from chainrule.errors import ConfigError
from chainrule.models.lecture_attention import attention_weights, causal_mask


def transformer_blocks(model) -> list:
    """The model's transformer blocks, or a one-sentence error for a model without them."""
    blocks = getattr(getattr(model, "transformer", None), "h", None)
    if blocks is None or not all(hasattr(b, "attn") for b in blocks):
        raise ConfigError(f"attention maps need a transformer (gpt, bert); a "
                          f"{getattr(model, 'family', type(model).__name__)} model has no "
                          "attention layers.")
    return list(blocks)


def attention_maps(model, tokens: torch.Tensor) -> torch.Tensor:
    """Attention weights of one sequence: tokens (T,) -> float32 (n_layer, n_head, T, T).

    ``out[l, h, i, j]`` is how much position i attends to position j in head h of layer l;
    each row sums to one (zeros where the mask forbids, e.g. j > i in a decoder).
    """
    blocks = transformer_blocks(model)
    tokens = torch.as_tensor(tokens, dtype=torch.long).reshape(1, -1).to(model.device)
    seen: list[tuple] = []

    def record(block, args, kwargs):
        x = args[0]
        rope = args[1] if len(args) > 1 else kwargs.get("rope")
        mask = args[2] if len(args) > 2 else kwargs.get("mask")
        seen.append((block, x, rope, mask))

    hooks = [b.register_forward_pre_hook(record, with_kwargs=True) for b in blocks]
    try:
        with model.inference():
            model(tokens)
            maps = [_weights(*s) for s in seen]
    finally:
        for h in hooks:
            h.remove()
    return torch.cat(maps).float()  # (n_layer, nh, T, T)


def _weights(block, x, rope, mask) -> torch.Tensor:
    attn = block.attn
    h = x if getattr(block, "post_norm", False) else block.ln_1(x)
    q, k, _ = attn._qkv(h, rope)  # (1, nh, T, hs), (1, nkv, T, hs)
    if attn.n_kv_head != attn.n_head:  # grouped-query: each key head serves a group of queries
        k = k.repeat_interleave(attn.n_head // attn.n_kv_head, dim=1)
    T = x.shape[1]
    if mask is None and attn.causal:
        mask = causal_mask(T, x.device)
    return attention_weights(q.float(), k.float(), mask)


__all__ = ["attention_maps", "transformer_blocks"]
