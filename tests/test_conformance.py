"""Every registered model family x every conformance check."""

from __future__ import annotations

import functools

import pytest
import torch

from chainrule.testing.conformance import (
    MODEL_CHECKS,
    TinyTask,
    check_determinism,
    check_learns,
)
from chainrule.testing.families import FAMILY_SPECS

TASK = TinyTask(seed=0)


@functools.cache
def fitted(name: str):
    torch.manual_seed(0)
    return FAMILY_SPECS[name].make(TASK)


@pytest.mark.parametrize("check", sorted(MODEL_CHECKS))
@pytest.mark.parametrize("family", sorted(FAMILY_SPECS))
def test_conformance(family, check):
    MODEL_CHECKS[check](fitted(family), TASK)


@pytest.mark.parametrize("family", sorted(FAMILY_SPECS))
def test_determinism_under_seed(family):
    check_determinism(FAMILY_SPECS[family].make, TASK)


@pytest.mark.parametrize("family", [n for n, s in sorted(FAMILY_SPECS.items()) if s.learns])
def test_fitting_lowers_loss(family):
    check_learns(fitted(family), TASK)


def test_checks_catch_a_broken_model():
    """The suite must be able to fail: a model that peeks at the next token is not causal."""
    from chainrule.models.reference import UniformModel

    class Peeking(UniformModel):
        def logprobs(self, tokens):
            out = super().logprobs(tokens).clone()
            nxt = torch.roll(tokens, -1, dims=1)  # the token it should be predicting
            out.scatter_add_(2, nxt[..., None], torch.ones_like(out[..., :1]))
            return out.log_softmax(-1)

    with pytest.raises(AssertionError, match="not causal"):
        MODEL_CHECKS["causality"](Peeking(TASK.vocab_size), TASK)

    class Unnormalised(UniformModel):
        def logprobs(self, tokens):
            return super().logprobs(tokens) + 0.1

    with pytest.raises(AssertionError, match="do not sum to 1"):
        MODEL_CHECKS["normalisation"](Unnormalised(TASK.vocab_size), TASK)
