"""CUDA-graph decoding for :class:`~chainrule.models.gpt.GPT`: the model's own step, replayed.

Small-batch decoding on a GPU is bound by kernel launches, not arithmetic. ``GraphDecoder``
captures :meth:`GPT.decode_step` once per batch size as a CUDA graph over static buffers (a
key/value cache of ``block_size`` slots; slots beyond each row's length are masked, so the
graph's shapes never change) and replays it. It runs the model's modules, so anything that
changes them (an adapter, a new option) changes the graph too; there is no second copy of the
block's math. When a row's window is full the model's own ``step`` slides it.

``GPT.fast_decoder()`` returns one on CUDA and None elsewhere (decoding then calls the model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from chainrule.models.graph_capture import cached_decoder, capture_step


def _signature(model) -> tuple:
    w = model.transformer.wte.weight
    return (w.device, w.dtype, w.data_ptr(), model.cfg.block_size)


def graph_decoder(model) -> GraphDecoder:
    """The model's cached decoder (rebuilt when its weights move or change dtype)."""
    return cached_decoder(model, "_graph_decoder", GraphDecoder, _signature)


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
        # the step is idempotent for a fixed (token, pos): warming up rewrites the same cache
        # slot with the same values
        self.graph, self.out = capture_step(fn)


class GraphDecoder:
    """``start`` / ``step`` / ``select_state`` of a GPT on CUDA, with the step as a CUDA graph."""

    #: decoding keeps finished rows in the batch rather than recapturing a graph per size
    static_batch = True

    def __init__(self, model: Any, graphs: bool | None = None):
        self.model = model
        self.signature = _signature(model)
        self.L = model.cfg.block_size
        self.enabled = True
        # graphs=False runs the same static-buffer step eagerly (how it is tested on a CPU)
        self.graphs = model.device.type == "cuda" if graphs is None else graphs
        self._graphs: dict[int, _Graph] = {}

    def start(self, prompt: torch.Tensor, lengths: torch.Tensor | None = None, source=None):
        lp, state = self.model.start(prompt, lengths, source)
        return lp, self._adopt(state)

    def step(self, state: Any, token: torch.Tensor):
        token = token.to(state.pos.device, torch.long)
        if not self.enabled or state.longest >= self.L:  # the model slides a full window
            lp, new = self.model.step(state, token)
            return lp, (self._adopt(new) if self.enabled else new)
        state = self._adopt(state)
        g = self._graph_for(token.shape[0], state)
        g.token.copy_(token)
        g.pos.copy_(state.pos)
        if not self.graphs:
            with torch.no_grad():
                self.model.eval()
                out = self.model.decode_step(g.k, g.v, g.tokens, g.token, g.pos, self.L)
            return out, type(state)(g.k, g.v, state.pos + 1, g.tokens, state.longest + 1)
        if g.graph is None:
            self.model.eval()
            try:
                g.capture(lambda: self.model.decode_step(g.k, g.v, g.tokens, g.token, g.pos,
                                                         self.L))
            except RuntimeError:  # capture unsupported here: run eagerly from now on
                self.enabled = self.static_batch = False
                return self.model.step(state, token)
        g.graph.replay()
        new = type(state)(g.k, g.v, state.pos + 1, g.tokens, state.longest + 1)
        return g.out.clone(), new

    def select_state(self, state: Any, index: torch.Tensor):
        new = self.model.select_state(state, index)
        return self._adopt(new) if self.enabled else new

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
        state = self.model.reserve(state, self.L)  # the graph's shapes: the full block_size
        g = self._graph_for(state.pos.shape[0], state)
        if state.k.data_ptr() != g.k.data_ptr():
            g.k.copy_(state.k)
            g.v.copy_(state.v)
            g.tokens.copy_(state.tokens)
        return type(state)(g.k, g.v, state.pos, g.tokens, state.longest)


__all__ = ["GraphDecoder", "graph_decoder"]
