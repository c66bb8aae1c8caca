"""What the GPT and recurrent fast decoders share: capturing one decoding step as a CUDA graph,
and keeping one decoder per model that is rebuilt when the model's weights move or change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

D = TypeVar("D")


def capture_step(fn: Callable[[], torch.Tensor]) -> tuple[Any, torch.Tensor]:
    """``(graph, out)``: ``fn`` warmed up twice on a side stream (as ``torch.cuda.graphs``
    asks), then captured; ``out`` is the graph's static output tensor."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s), torch.no_grad():
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        out = fn()
    return graph, out


def cached_decoder(model: Any, attr: str, build: Callable[[Any], D],
                   signature: Callable[[Any], tuple]) -> D:
    """The decoder kept on ``model`` as ``attr`` (not a submodule), rebuilt with ``build`` when
    ``signature(model)`` (weights' device, dtype, storage ...) differs from the one it was built
    for (its ``signature`` attribute)."""
    dec = getattr(model, attr, None)
    if dec is None or dec.signature != signature(model):
        dec = build(model)
        object.__setattr__(model, attr, dec)
    return dec
