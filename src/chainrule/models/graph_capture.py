"""Capturing one decoding step as a CUDA graph (shared by the GPT and recurrent decoders)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


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
