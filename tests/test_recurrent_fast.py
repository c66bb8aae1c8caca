"""The recurrent families' fast decoder (``models/rnn_graphs.py``) equals their own ``step``.

On a CPU the lean step runs eagerly; the CUDA-graph plumbing (static buffers per batch size,
adopting a state, finished rows kept in a static batch) is exercised by standing in a "graph"
whose replay runs the captured function eagerly.
"""

from __future__ import annotations

import pytest
import torch

from _decoding_helpers import TASK, fitted
from chainrule.decoding import GenerationConfig, generate
from chainrule.models import rnn_graphs
from chainrule.models.rnn_graphs import RecurrentDecoder
from chainrule.testing.conformance import assert_lockstep

RECURRENT = ["rnn", "lstm", "lstm-char-cnn"]
PROMPTS = [[2, 3], [4], [5, 6, 7, 8], []]


def _ids(results):
    return [[c.token_ids for c in row] for row in results]


def _logprobs(results):
    return [c.logprob for row in results for c in row]


class _EagerReplay:
    """A stand-in CUDA graph: replay runs the captured step eagerly on the static buffers."""

    def __init__(self, g, fn):
        self.g, self.fn = g, fn

    def replay(self):
        with torch.no_grad():
            self.g.out = self.fn()


@pytest.fixture
def fake_graphs(monkeypatch):
    captured = []

    def capture(self, fn):
        captured.append(self)
        self.graph = _EagerReplay(self, fn)

    monkeypatch.setattr(rnn_graphs._Graph, "capture", capture)
    return captured


def _lockstep(model, fast):
    """model.step and fast.step side by side over padded prompts, a reorder half way."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(2, TASK.vocab_size, (3, 16), generator=g)
    x[:, 0] = TASK.bos_id
    assert_lockstep(model, fast, x, torch.tensor([1, 3, 2]), reorder_at=8, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", RECURRENT)
def test_lean_step_equals_the_models_step(family):
    model = fitted(family)
    fast = model.fast_decoder()
    assert isinstance(fast, RecurrentDecoder) and not fast.graphs  # a CPU: eager
    assert model.fast_decoder() is fast  # cached on the model
    _lockstep(model, fast)


@pytest.mark.parametrize("family", RECURRENT)
def test_static_buffer_path_equals_the_models_step(family, fake_graphs):
    model = fitted(family)
    fast = RecurrentDecoder(model, graphs=True)
    _lockstep(model, fast)
    assert sorted(len(g.token) for g in fast._graphs.values()) == [3]  # one graph, batch 3


@pytest.mark.parametrize("family", ["rnn", "lstm"])
@pytest.mark.parametrize("cfg", [
    GenerationConfig(strategy="greedy", max_new_tokens=12),
    GenerationConfig(strategy="sample", max_new_tokens=12, n=3, seed=11, top_k=5),
    GenerationConfig(strategy="sample", max_new_tokens=10, n=2, seed=3, temperature=1.3),
    GenerationConfig(strategy="beam", max_new_tokens=8, num_beams=3),
], ids=["greedy", "sample-topk", "sample-temp", "beam"])
def test_generation_is_the_same_with_and_without_the_fast_path(family, cfg):
    model = fitted(family)
    fast, plain = (generate(model, PROMPTS, GenerationConfig(**{**cfg.__dict__,
                                                                 "fast_path": f}))
                   for f in (True, False))
    assert _ids(fast) == _ids(plain)
    assert _logprobs(fast) == pytest.approx(_logprobs(plain), abs=1e-4)


def test_static_batch_generation_with_stand_in_graphs(fake_graphs):
    """With graphs, finished rows stay in the batch (no recapture); outputs do not change."""
    model = fitted("lstm")
    fast = RecurrentDecoder(model, graphs=True)
    object.__setattr__(model, "_fast_decoder", fast)
    cfg = GenerationConfig(strategy="sample", max_new_tokens=15, n=2, seed=5)
    with_graphs = generate(model, PROMPTS, cfg)
    assert fake_graphs and {len(g.token) for g in fake_graphs} == {2 * len(PROMPTS)}
    object.__delattr__(model, "_fast_decoder")
    plain = generate(model, PROMPTS, GenerationConfig(**{**cfg.__dict__, "fast_path": False}))
    assert _ids(with_graphs) == _ids(plain)


def test_capture_failure_falls_back_to_the_eager_step():
    """torch.cuda.Stream raises without CUDA, as a failed capture would: decode eagerly."""
    model = fitted("rnn")
    fast = RecurrentDecoder(model, graphs=True)
    lp, st = fast.start(torch.tensor([[TASK.bos_id, 3]]))
    lp_ref, st_ref = model.start(torch.tensor([[TASK.bos_id, 3]]))
    lp, st = fast.step(st, torch.tensor([4]))
    lp_ref, st_ref = model.step(st_ref, torch.tensor([4]))
    assert not fast.graphs and not fast.static_batch
    assert torch.allclose(lp, lp_ref, atol=1e-5)


def test_the_decoder_follows_the_weights():
    """Nothing is copied: changed weights change what the fast path computes."""
    model = fitted("lstm")
    fast = model.fast_decoder()
    prompt = torch.tensor([[TASK.bos_id, 3, 4]])
    _, st = fast.start(prompt)
    before, _ = fast.step(st, torch.tensor([5]))
    with torch.no_grad():
        model.cell.weight_hh_l0.mul_(0.5)
    _, st = fast.start(prompt)
    after, _ = fast.step(st, torch.tensor([5]))
    _, st_ref = model.start(prompt)
    ref, _ = model.step(st_ref, torch.tensor([5]))
    assert not torch.allclose(before, after) and torch.allclose(after, ref, atol=1e-5)
