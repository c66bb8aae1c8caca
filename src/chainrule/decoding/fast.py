"""Optional fast incremental decoders: the same ``start/step/select_state`` contract as a
family's own methods, with less per-token overhead.

Decoding asks :func:`fast_decoder_for` for one; a model can offer its own through a
``fast_decoder()`` method, and this module provides one for :class:`chainrule.models.gpt.GPT`.
Anything else decodes through the model's methods unchanged.

``GPTFastDecoder`` reuses the model's prefill (``GPT.start``) and its state (``KVCache``: a
static key/value cache of ``block_size`` positions written in place) and replaces the per-token
``GPT.step`` with a flat function over the weights: no module calls, no train/eval toggling.
On CUDA the step is captured once per batch size as a CUDA graph (keys beyond each row's
length are masked, so the graph's shapes never change) and replayed, which removes the kernel
launch overhead that dominates small-batch decoding. When a row's window is full the model's
own ``step`` (which slides the window) takes that step.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fast_decoder_for(model: Any) -> Any | None:
    """A fast decoder for ``model`` if one exists, else None (use the model's own methods)."""
    own = getattr(model, "fast_decoder", None)
    if callable(own):
        return own()
    try:
        from chainrule.models.gpt import GPT
    except ImportError:  # pragma: no cover - the family is always shipped
        return None
    if not isinstance(model, GPT):
        return None
    key = _signature(model)
    cached = _CACHE.get(model)
    if cached is not None and cached.signature == key:
        return cached
    dec = GPTFastDecoder(model)
    _CACHE[model] = dec
    return dec


def _signature(model) -> tuple:
    w = model.transformer.wte.weight
    return (w.device, w.dtype, w.data_ptr(), model.cfg.block_size)


@dataclass
class _Layer:
    ln1_w: torch.Tensor
    ln1_b: torch.Tensor | None
    qkv_w: torch.Tensor
    qkv_b: torch.Tensor | None
    out_w: torch.Tensor
    out_b: torch.Tensor | None
    ln2_w: torch.Tensor
    ln2_b: torch.Tensor | None
    fc_w: torch.Tensor
    fc_b: torch.Tensor | None
    proj_w: torch.Tensor
    proj_b: torch.Tensor | None


class GPTFastDecoder:
    """Lean single-token steps for a GPT in eval mode (see the module docstring).

    Args:
        model: a ``GPT``.
        cuda_graphs: capture the step as a CUDA graph (default: when the model is on CUDA).
    """

    #: decoding keeps finished rows in the batch rather than recapturing a graph per size
    static_batch: bool

    def __init__(self, model: Any, cuda_graphs: bool | None = None):
        self.model = model
        self.signature = _signature(model)
        cfg = model.cfg
        self.L, self.nh, self.C = cfg.block_size, cfg.n_head, cfg.n_embd
        self.eps = cfg.layer_norm_eps
        t = model.transformer
        self.wte = t.wte.weight
        self.wpe = t["wpe"].weight if "wpe" in t else None
        self.lnf_w, self.lnf_b = t.ln_f.weight, t.ln_f.bias
        self.head_w = model.lm_head.weight
        self.layers = [
            _Layer(b.ln_1.weight, b.ln_1.bias, b.attn.c_attn.weight, b.attn.c_attn.bias,
                   b.attn.c_proj.weight, b.attn.c_proj.bias, b.ln_2.weight, b.ln_2.bias,
                   b.mlp.c_fc.weight, b.mlp.c_fc.bias, b.mlp.c_proj.weight, b.mlp.c_proj.bias)
            for b in t.h
        ]
        on_cuda = self.wte.device.type == "cuda"
        self.cuda_graphs = on_cuda if cuda_graphs is None else (cuda_graphs and on_cuda)
        self.static_batch = self.cuda_graphs
        self._graphs: dict[int, _Graph] = {}

    # -- the contract --------------------------------------------------------------------------
    def start(self, prompt: torch.Tensor, lengths: torch.Tensor | None = None):
        lp, state = self.model.start(prompt, lengths)
        if self.cuda_graphs:
            state = self._adopt(state)
        return lp, state

    def step(self, state: Any, token: torch.Tensor):
        token = token.to(self.wte.device, torch.long)
        if state.longest >= self.L:  # a window is full: the model slides it (in place)
            lp, new = self.model.step(state, token)
            return lp, (self._adopt(new) if self.cuda_graphs else new)
        if self.cuda_graphs:
            return self._graph_step(state, token)
        length = state.longest + 1
        with torch.no_grad():
            lp = self._math(state.k, state.v, state.tokens, token, state.pos, length)
        return lp, type(state)(state.k, state.v, state.pos + 1, state.tokens, length)

    def select_state(self, state: Any, index: torch.Tensor):
        new = self.model.select_state(state, index)
        return self._adopt(new) if self.cuda_graphs else new

    # -- the step as a flat function -------------------------------------------------------------
    def _math(self, k_cache, v_cache, tokens, token, pos, length: int) -> torch.Tensor:
        """One token per row: token, pos (B,) -> float32 log-probabilities (B, V).

        Writes the new keys/values at ``pos`` of every layer's cache and the token into
        ``tokens``; attends to keys ``< length`` masked to ``<= pos`` per row.
        """
        B, C, nh = token.shape[0], self.C, self.nh
        hs = C // nh
        rows = torch.arange(B, device=token.device)
        x = F.embedding(token, self.wte)  # (B, C)
        rope = None
        if self.wpe is not None:
            x = x + F.embedding(pos, self.wpe)
        else:
            rope = self.model.rotary.at(pos)  # each (B, 1, 1, hs/2)
        keys = torch.arange(length, device=token.device)
        mask = (keys[None, :] <= pos[:, None])[:, None, None, :]  # (B, 1, 1, length)
        for i, ly in enumerate(self.layers):
            h = F.layer_norm(x, (C,), ly.ln1_w, ly.ln1_b, self.eps)
            q, k, v = F.linear(h, ly.qkv_w, ly.qkv_b).view(B, 3, nh, 1, hs).unbind(1)
            if rope is not None:  # (B, nh, 1, hs)
                from chainrule.models.layers import apply_rotary

                q, k = apply_rotary(q, rope), apply_rotary(k, rope)
            kc, vc = k_cache[i], v_cache[i]  # (B, nh, L, hs)
            kc[rows, :, pos] = k[:, :, 0]
            vc[rows, :, pos] = v[:, :, 0]
            y = F.scaled_dot_product_attention(q, kc[:, :, :length], vc[:, :, :length],
                                               attn_mask=mask)  # (B, nh, 1, hs)
            x = x + F.linear(y.reshape(B, C), ly.out_w, ly.out_b)
            h = F.layer_norm(x, (C,), ly.ln2_w, ly.ln2_b, self.eps)
            h = F.gelu(F.linear(h, ly.fc_w, ly.fc_b), approximate="tanh")
            x = x + F.linear(h, ly.proj_w, ly.proj_b)
        tokens[rows, pos] = token
        x = F.layer_norm(x, (C,), self.lnf_w, self.lnf_b, self.eps)
        return torch.log_softmax(F.linear(x, self.head_w).float(), dim=-1)

    # -- CUDA graphs -----------------------------------------------------------------------------
    def _graph_for(self, B: int, like: Any) -> _Graph:
        g = self._graphs.get(B)
        if g is None:
            g = _Graph(
                k=torch.zeros_like(like.k), v=torch.zeros_like(like.v),
                tokens=torch.zeros_like(like.tokens),
                token=torch.zeros(B, dtype=torch.long, device=like.pos.device),
                pos=torch.zeros(B, dtype=torch.long, device=like.pos.device),
            )
            self._graphs[B] = g
        return g

    def _adopt(self, state: Any) -> Any:
        """Move a state into the static buffers of its batch size (graphs read fixed addresses)."""
        g = self._graph_for(state.pos.shape[0], state)
        if state.k.data_ptr() != g.k.data_ptr():
            g.k.copy_(state.k)
            g.v.copy_(state.v)
            g.tokens.copy_(state.tokens)
        return type(state)(g.k, g.v, state.pos, g.tokens, state.longest)

    def _graph_step(self, state: Any, token: torch.Tensor):
        g = self._graph_for(token.shape[0], state)
        state = self._adopt(state)
        g.token.copy_(token)
        g.pos.copy_(state.pos)
        if g.graph is None:
            try:
                g.capture(lambda: self._math(g.k, g.v, g.tokens, g.token, g.pos, self.L))
            except RuntimeError:  # capture unsupported here: run eagerly from now on
                self.cuda_graphs = self.static_batch = False
                return self.step(state, token)
        g.graph.replay()
        new = type(state)(g.k, g.v, state.pos + 1, g.tokens, state.longest + 1)
        return g.out.clone(), new


@dataclass
class _Graph:
    """Static buffers of one batch size and the captured step that reads and writes them."""

    k: torch.Tensor
    v: torch.Tensor
    tokens: torch.Tensor
    token: torch.Tensor
    pos: torch.Tensor
    graph: Any = None
    out: torch.Tensor | None = None

    def capture(self, fn) -> None:
        # warm up on a side stream (as torch.cuda.graphs asks); the step is idempotent for a
        # fixed (token, pos): it rewrites the same cache slot with the same values
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s), torch.no_grad():
            for _ in range(2):
                fn()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.no_grad():
            self.out = fn()
        self.graph = graph


__all__ = ["GPTFastDecoder", "fast_decoder_for"]
