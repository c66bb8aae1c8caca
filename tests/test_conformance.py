"""Every registered model family x every conformance check that applies to what it declares."""

from __future__ import annotations

import functools

import pytest
import torch

from chainrule.errors import ConfigError
from chainrule.testing.conformance import (
    MODEL_CHECKS,
    TinyTask,
    check_determinism,
    check_learns,
    checks_for,
)
from chainrule.testing.families import FAMILY_SPECS

TASK = TinyTask(seed=0)
CASES = [(family, check) for family in sorted(FAMILY_SPECS)
         for check in checks_for(FAMILY_SPECS[family].cls)]


@functools.cache
def fitted(name: str):
    torch.manual_seed(0)
    return FAMILY_SPECS[name].make(TASK)


@pytest.mark.parametrize(("family", "check"), CASES)
def test_conformance(family, check):
    MODEL_CHECKS[check](fitted(family), TASK)


@pytest.mark.parametrize("family", sorted(FAMILY_SPECS))
def test_determinism_under_seed(family):
    check_determinism(FAMILY_SPECS[family].make, TASK)


@pytest.mark.parametrize("family", [n for n, s in sorted(FAMILY_SPECS.items()) if s.learns])
def test_fitting_lowers_loss(family):
    check_learns(fitted(family), TASK)


def test_every_family_declares_what_it_is():
    """The suite covers a conditional generator and a masked scorer, and knows the difference."""
    kinds = {n: (FAMILY_SPECS[n].cls.conditional, FAMILY_SPECS[n].cls.masked,
                 "causality" in checks_for(FAMILY_SPECS[n].cls)) for n in FAMILY_SPECS}
    assert kinds["toy-source-bigram"] == (True, False, True)
    assert kinds["toy-masked"] == (False, True, False)
    assert kinds["gpt"] == (False, False, True)


def test_checks_catch_a_broken_model():
    """The suite must be able to fail: a model that peeks at the next token is not causal."""
    from chainrule.models.reference import UniformModel

    class Peeking(UniformModel):
        def logprobs(self, tokens, source=None):
            out = super().logprobs(tokens).clone()
            nxt = torch.roll(tokens, -1, dims=1)  # the token it should be predicting
            out.scatter_add_(2, nxt[..., None], torch.ones_like(out[..., :1]))
            return out.log_softmax(-1)

    with pytest.raises(AssertionError, match="not causal"):
        MODEL_CHECKS["causality"](Peeking(TASK.vocab_size), TASK)

    class Unnormalised(UniformModel):
        def logprobs(self, tokens, source=None):
            return super().logprobs(tokens) + 0.1

    with pytest.raises(AssertionError, match="do not sum to 1"):
        MODEL_CHECKS["normalisation"](Unnormalised(TASK.vocab_size), TASK)
    with pytest.raises(AssertionError, match="do not sum to 1"):
        MODEL_CHECKS["scorer_normalisation"](Unnormalised(TASK.vocab_size), TASK)


def test_checks_catch_a_masked_model_that_reads_padding():
    from chainrule.testing.toys import NeighbourMaskedLM

    class ReadsPadding(NeighbourMaskedLM):
        def token_logprobs(self, tokens, lengths=None, source=None):
            return super().token_logprobs(tokens, None, source)  # ignores the real lengths

    model = ReadsPadding.__new__(ReadsPadding)
    model.__dict__.update(fitted("toy-masked").__dict__)
    with pytest.raises(AssertionError, match="padded batch"):
        MODEL_CHECKS["scorer_padding"](model, TASK)


def test_checks_catch_a_conditional_model_that_ignores_its_source():
    from chainrule.testing.toys import SourceBigramLM, ToyConfig

    deaf = SourceBigramLM(ToyConfig(TASK.vocab_size))  # S = 0: the source changes nothing
    with pytest.raises(AssertionError, match="do not depend on the source"):
        MODEL_CHECKS["source_contract"](deaf, TASK)
    with pytest.raises(ConfigError, match="needs a source"):
        deaf.logprobs(torch.tensor([[0, 2]]))
