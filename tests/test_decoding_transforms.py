"""Property tests of the pure logit transforms and of the sampler ``draw``."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule.decoding import (
    GenerationConfig,
    compose,
    draw,
    min_p,
    repetition_penalty,
    sampling_transform,
    temperature,
    top_k,
    top_p,
)
from chainrule.errors import ConfigError

finite = st.floats(-20, 20, allow_nan=False, allow_infinity=False, width=32)
rows = st.lists(finite, min_size=1, max_size=12).map(lambda xs: torch.tensor([xs]))
unit = st.floats(0.01, 1.0)


def kept(x: torch.Tensor) -> set[int]:
    return set(torch.isfinite(x[0]).nonzero().flatten().tolist())


def test_worked_example_from_the_docstring():
    lp = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    assert kept(top_k(lp, 2)) == {0, 1}
    assert top_k(lp, 2).softmax(-1)[0, :2].tolist() == pytest.approx([0.625, 0.375])
    assert kept(top_p(lp, 0.8)) == {0, 1}
    assert kept(top_p(lp, 0.81)) == {0, 1, 2}
    assert kept(min_p(lp, 0.2)) == {0, 1, 2}
    assert kept(temperature(lp, 0.0)) == {0}
    assert repetition_penalty(lp, torch.tensor([[True, False, False, False]]), 1.2)[0, 0] == (
        pytest.approx(1.2 * math.log(0.5)))


@given(rows, unit)
@settings(max_examples=200, deadline=None)
def test_top_p_keeps_the_smallest_set_reaching_p(x, p):
    out = top_p(x, p)
    probs = x[0].double().softmax(-1)
    keep = sorted(kept(out), key=lambda i: -probs[i].item())
    mass = probs[keep].sum().item()
    assert mass >= p - 1e-9, "kept mass is below p"
    # minimal: without its least probable member the set no longer reaches p
    assert mass - probs[keep[-1]].item() < p + 1e-9
    # it is a top set: nothing dropped is more probable than something kept
    dropped = set(range(x.shape[1])) - set(keep)
    if dropped:
        assert max(probs[i] for i in dropped) <= min(probs[i] for i in keep) + 1e-12


@given(rows, st.integers(1, 14))
@settings(max_examples=200, deadline=None)
def test_top_k_keeps_the_k_best(x, k):
    out = kept(top_k(x, k))
    assert len(out) >= min(k, x.shape[1])
    kth = x[0].sort(descending=True).values[min(k, x.shape[1]) - 1]
    assert out == {i for i in range(x.shape[1]) if x[0, i] >= kth}


@given(rows, st.floats(0.0, 1.0))
@settings(max_examples=200, deadline=None)
def test_min_p_threshold(x, p):
    probs = x[0].double().softmax(-1)
    out = kept(min_p(x, p))
    assert int(probs.argmax()) in out
    for i in range(x.shape[1]):
        if probs[i] >= p * probs.max() * (1 + 1e-5):
            assert i in out
        if probs[i] < p * probs.max() * (1 - 1e-5):
            assert i not in out


@given(rows, st.floats(0.05, 5.0), st.integers(1, 14), unit, st.floats(0.0, 0.99))
@settings(max_examples=150, deadline=None)
def test_transformed_distributions_stay_normalised(x, t, k, p, mp):
    out = sampling_transform(t, k, p, mp)(x.log_softmax(-1))
    assert torch.isfinite(out).any()
    assert torch.logsumexp(out.log_softmax(-1).double(), -1).abs().max() < 1e-5
    assert kept(out) <= kept(x)


@given(rows, st.floats(0.05, 5.0))
@settings(max_examples=100, deadline=None)
def test_temperature_preserves_order_and_is_invertible(x, t):
    y = temperature(x, t)
    order = x[0].argsort()
    assert (y[0, order].diff() >= 0).all(), "temperature changed the ranking"
    assert torch.allclose(temperature(y, 1 / t), x, atol=1e-4, rtol=1e-5)


@given(rows, st.integers(1, 14), unit)
@settings(max_examples=100, deadline=None)
def test_filters_compose_like_set_intersection_and_do_not_mutate(x, k, p):
    before = x.clone()
    both = compose(lambda z: top_k(z, k), lambda z: min_p(z, 0.0))(x)
    assert kept(both) == kept(top_k(x, k))
    # top-k and min-p are both "keep the scores above a threshold": their order does not matter
    a = compose(lambda z: top_k(z, k), lambda z: min_p(z, p))(x)
    b = compose(lambda z: min_p(z, p), lambda z: top_k(z, k))(x)
    assert kept(a) == kept(b)
    assert torch.equal(x, before)


def test_top_p_then_temperature_differs_from_temperature_then_top_p():
    """Order matters for top-p: a temperature reshapes the mass the nucleus is cut from."""
    x = torch.tensor([[0.5, 0.3, 0.2]]).log()
    assert kept(compose(lambda z: top_p(z, 0.6), lambda z: temperature(z, 0.2))(x)) == {0, 1}
    assert kept(compose(lambda z: temperature(z, 0.2), lambda z: top_p(z, 0.6))(x)) == {0}


@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=8), st.integers(0, 2**31))
@settings(max_examples=100, deadline=None)
def test_draw_never_returns_a_zero_probability_token(weights, seed):
    w = torch.tensor([weights], dtype=torch.float64)
    if w.sum() == 0:
        w[0, 0] = 1.0
    g = torch.Generator().manual_seed(seed)
    tok = int(draw(w.log(), [g])[0])
    assert w[0, tok] > 0


def test_draw_rows_depend_only_on_their_generator():
    x = torch.randn(3, 10)
    alone = [int(draw(x[i : i + 1], [torch.Generator().manual_seed(i)])[0]) for i in range(3)]
    together = draw(x, [torch.Generator().manual_seed(i) for i in range(3)]).tolist()
    assert alone == together


def test_bad_settings_are_collected_in_one_error():
    with pytest.raises(ConfigError) as e:
        GenerationConfig(strategy="nucleus", top_p=1.5, temperature=-1.0, num_beams=0, top_k=0)
    msg = str(e.value)
    assert len(e.value.problems) == 5
    for word in ("strategy", "top_p", "temperature", "beams", "top_k"):
        assert word in msg
    for bad in ({"top_p": 0.0}, {"min_p": 1.0}, {"repetition_penalty": 0.0},
                {"max_new_tokens": -1}, {"strategy": "greedy", "n": 2},
                {"strategy": "beam", "num_beams": 2, "n": 3}, {"strategy": "beam", "top_k": 5},
                {"stop": ("",)}):
        with pytest.raises(ConfigError):
            GenerationConfig(**bad)
    assert GenerationConfig(stop="x").stop == ("x",)
