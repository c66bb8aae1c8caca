"""Attention weights of any transformer, grouped by kind (self-attention, cross-attention, ...).

:func:`attention_groups` answers "what does each head attend to" for whatever transformer a
model directory holds, trying three sources in turn:

1. the family's own hook: a method ``attention_maps(tokens, source=None)`` that returns
   ``{name: (n_layer, n_head, T_q, T_k) tensor}`` (an encoder-decoder names its groups, e.g.
   ``"encoder"``, ``"decoder"``, ``"cross"``);
2. the blocks of ``model.transformer.h`` (``gpt``, ``bert``), read by
   :func:`chainrule.models.attention_maps.attention_maps`;
3. a generic capture: during one ordinary forward pass every call of
   ``F.scaled_dot_product_attention`` (the fused kernel every transformer here calls) is
   recorded with the module that made it, and its weights are recomputed from the queries and
   keys it was given, ``softmax(Q K^T * scale)`` under the same mask. Calls are grouped by the
   module's path with layer numbers removed (``decoder.layers.3.cross_attn`` ->
   ``decoder.layers.*.cross_attn``), so an encoder-decoder written later shows its
   encoder self-attention, decoder self-attention and cross-attention with no change here.

A model none of them applies to (an n-gram, an LSTM) gets one sentence saying it has no
attention.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from chainrule.errors import ConfigError
from chainrule.models.lecture_attention import causal_mask, softmax

_CAPTURE_LOCK = threading.Lock()  # one capture at a time patches the kernel


@dataclass(frozen=True)
class AttentionGroup:
    """The weights of one kind of attention.

    Attributes:
        name: "self-attention" (gpt, bert), a family's own name, or a module path pattern.
        weights: float32 (n_layer, n_head, T_q, T_k); each row sums to one (0 where masked).
        query: "target" or "source": which sequence the rows belong to.
        key: "target" or "source": which sequence the columns belong to.
    """

    name: str
    weights: torch.Tensor
    query: str = "target"
    key: str = "target"


def attention_groups(model, tokens, source=None) -> list[AttentionGroup]:
    """Every attention group of a transformer for one sequence (and its source).

    Args:
        model: any model; one without attention raises ``ConfigError``.
        tokens: (T,) ids, framed as the model expects (``<s> ... </s>``).
        source: for a conditional model, (S,) source ids.
    Returns:
        the groups, each labelled with the sequences its rows and columns belong to.
    """
    tokens = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
    src = None if source is None else torch.as_tensor(source, dtype=torch.long).reshape(-1)
    own = getattr(model, "attention_maps", None)
    if callable(own):
        maps = own(tokens, source=src)
        return [_label(name, w.float(), tokens, src) for name, w in maps.items()]
    if hasattr(getattr(model, "transformer", None), "h"):
        from chainrule.models.attention_maps import attention_maps

        return [AttentionGroup("self-attention", attention_maps(model, tokens))]
    groups = capture_attention(lambda: _forward(model, tokens, src), model)
    if not groups:
        raise ConfigError(f"no attention weights can be read from a "
                          f"{getattr(model, 'family', type(model).__name__)} model: it has no "
                          "transformer attention (a family can show its own by defining "
                          "attention_maps(tokens, source)); choose a transformer (gpt, bert, "
                          "transformer-ed).")
    return [_label(name, w, tokens, src) for name, w in groups.items()]


def _forward(model, tokens: torch.Tensor, src: torch.Tensor | None) -> None:
    x = tokens[None].to(model.device)
    source = None if src is None else [src.tolist()]
    if hasattr(model, "logprobs") and not getattr(model, "masked", False):
        model.logprobs(x, source=source)
    else:
        model.token_logprobs(x, None, source)


def _label(name: str, w: torch.Tensor, tokens: torch.Tensor, src) -> AttentionGroup:
    """Name a captured group and say which sequence its rows and columns belong to: by the
    module's name (``cross``, ``enc``, ``dec``), else by the lengths."""
    low = name.lower()
    if src is None:
        return AttentionGroup(name, w)
    if "cross" in low:
        return AttentionGroup("cross-attention", w, "target", "source")
    if "enc" in low:
        return AttentionGroup("encoder self-attention", w, "source", "source")
    if "dec" in low:
        return AttentionGroup("decoder self-attention", w, "target", "target")
    T = len(tokens)

    def side(n: int) -> str:
        return "target" if n == T else "source"

    return AttentionGroup(name, w, side(w.shape[-2]), side(w.shape[-1]))


def capture_attention(run: Callable[[], object], model: torch.nn.Module
                      ) -> dict[str, torch.Tensor]:
    """Weights of every ``scaled_dot_product_attention`` call ``run()`` makes, by module.

    Only calls made on this thread, for batch row 0, are recorded. Returns
    ``{module path pattern: (n_layer, n_head, T_q, T_k)}`` in the order first called.
    """
    me = threading.get_ident()
    stack: list[str] = []
    calls: list[tuple[str, torch.Tensor]] = []
    hooks = []

    def enter(name: str) -> Callable:
        def hook(module, args) -> None:  # returns None: the inputs pass unchanged
            if threading.get_ident() == me:
                stack.append(name)
        return hook

    def leave(module, args, output) -> None:
        if threading.get_ident() == me and stack:
            stack.pop()

    if isinstance(model, torch.nn.Module):
        for name, module in model.named_modules():
            hooks.append(module.register_forward_pre_hook(enter(name)))
            hooks.append(module.register_forward_hook(leave))
    real = F.scaled_dot_product_attention

    def spy(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
            **kwargs):
        if threading.get_ident() == me:
            w = sdpa_weights(query, key, attn_mask, is_causal, scale)
            calls.append((stack[-1] if stack else "attention", w[0].detach().float().cpu()))
        return real(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p,
                    is_causal=is_causal, scale=scale, **kwargs)

    with _CAPTURE_LOCK:
        F.scaled_dot_product_attention = spy
        try:
            with torch.no_grad():
                run()
        finally:
            F.scaled_dot_product_attention = real
            for h in hooks:
                h.remove()
    grouped: dict[str, list[torch.Tensor]] = {}
    for name, w in calls:
        grouped.setdefault(re.sub(r"\.\d+(?=\.|$)", ".*", name), []).append(w)
    out = {}
    for name, ws in grouped.items():
        if len({w.shape for w in ws}) == 1:  # one shape per group: a (layer, head) grid
            out[name] = torch.stack(ws)
    return out


def sdpa_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None,
                 is_causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """The weights ``F.scaled_dot_product_attention`` applies to the values, written out:
    (B, H, T_q, E), (B, H_kv, T_k, E) -> (B, H, T_q, T_k); grouped-query keys are shared."""
    if k.shape[-3] != q.shape[-3]:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q.float() @ k.float().transpose(-2, -1)) * scale
    if is_causal:
        scores = scores.masked_fill(~causal_mask(scores.shape[-1], q.device)[: scores.shape[-2]],
                                    float("-inf"))
    if mask is not None:
        scores = (scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool
                  else scores + mask.float())
    return torch.nan_to_num(softmax(scores), nan=0.0)


__all__ = ["AttentionGroup", "attention_groups", "capture_attention", "sdpa_weights"]
