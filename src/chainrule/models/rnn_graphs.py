"""Fast decoding for the recurrent families (``rnn``, ``lstm``): one lean step per token,
replayed as a CUDA graph on a GPU.

At batch 1 a GPU waits on the host: the plain :meth:`~chainrule.models.rnn.RecurrentLM.step`
goes through ``nn.LSTM``'s Python wrapper and cuDNN's set-up and launches a dozen small kernels
for a few matrix-vector products. ``RecurrentDecoder`` runs the model's own
:meth:`~chainrule.models.rnn.RecurrentLM.decode_step` instead -- the cell's equations on the
cell's own weights, writing the new state into the state's tensors -- and on CUDA captures it
once per batch size as a CUDA graph over static buffers (token, state, log-probabilities) and
replays it: one launch per token. On a CPU the same step runs eagerly (no graph).

The decoder reads the weights where the model keeps them (nothing is copied), so a model
trained further or edited decodes with its new weights. A state passed to ``step`` is updated
in place; ``select_state`` returns new tensors (keep one of those to branch).

``RecurrentLM.fast_decoder()`` returns the model's cached decoder.
"""

from __future__ import annotations

from typing import Any

import torch

from chainrule.models.graph_capture import cached_decoder, capture_step


def _signature(model) -> tuple:
    w = model.decoder.weight
    return (w.device, w.dtype, w.data_ptr())


def recurrent_decoder(model) -> RecurrentDecoder:
    """The model's cached decoder (rebuilt when its weights move or change dtype)."""
    return cached_decoder(model, "_fast_decoder", RecurrentDecoder, _signature)


def _tensors(state: Any) -> list[torch.Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


class _Graph:
    """The static buffers of one batch size and the captured step that reads and writes them."""

    def __init__(self, state: Any, batch: int, device: torch.device):
        self.state = (tuple(torch.zeros_like(t) for t in state) if isinstance(state, tuple)
                      else torch.zeros_like(state))
        self.token = torch.zeros(batch, dtype=torch.long, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.out: torch.Tensor | None = None

    def capture(self, fn) -> None:
        # the step advances the state, so warm-up and capture run on a saved copy of it
        saved = [t.clone() for t in _tensors(self.state)]
        self.graph, self.out = capture_step(fn)
        for t, v in zip(_tensors(self.state), saved):
            t.copy_(v)


class RecurrentDecoder:
    """``start`` / ``step`` / ``select_state`` of a recurrent model through ``decode_step``.

    Args:
        model: an ``rnn`` or ``lstm`` model (:class:`~chainrule.models.rnn.RecurrentLM`).
        graphs: capture CUDA graphs (default: when the model is on CUDA); False runs the same
            step eagerly.
    """

    def __init__(self, model: Any, graphs: bool | None = None):
        self.model = model
        self.signature = _signature(model)
        self.graphs = model.device.type == "cuda" if graphs is None else graphs
        #: decoding keeps finished rows in the batch rather than capturing a graph per size
        self.static_batch = self.graphs
        self._graphs: dict[int, _Graph] = {}

    def start(self, prompt: torch.Tensor, lengths: torch.Tensor | None = None, source=None):
        return self.model.start(prompt, lengths, source)

    def step(self, state: Any, token: torch.Tensor):
        device = _tensors(state)[0].device
        token = token.to(device, torch.long)
        if not self.graphs:
            with self.model.inference():
                return self.model.decode_step(state, token), state
        g = self._adopt(state, token.shape[0], device)
        g.token.copy_(token)
        if g.graph is None:
            self.model.eval()
            try:
                g.capture(lambda: self.model.decode_step(g.state, g.token))
            except RuntimeError:  # capture unsupported here: run eagerly from now on
                self.graphs = self.static_batch = False
                return self.step(state, token)
        g.graph.replay()
        return g.out.clone(), g.state

    def select_state(self, state: Any, index: torch.Tensor) -> Any:
        return self.model.select_state(state, index)  # new tensors: adopted at the next step

    def _adopt(self, state: Any, batch: int, device: torch.device) -> _Graph:
        """The graph of this batch size, with ``state`` copied into its static buffers."""
        g = self._graphs.get(batch)
        if g is None:
            g = self._graphs[batch] = _Graph(state, batch, device)
        for dst, src in zip(_tensors(g.state), _tensors(state)):
            if dst.data_ptr() != src.data_ptr():
                dst.copy_(src)
        return g


__all__ = ["RecurrentDecoder", "recurrent_decoder"]
