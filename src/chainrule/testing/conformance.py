"""The conformance suite: properties every language-model family must have.

Like scikit-learn's ``parametrize_with_checks``, each check is a plain function that takes a
fitted model (and the tiny task it was fitted on) and raises ``AssertionError`` with a sentence
saying what broke. ``tests/test_conformance.py`` runs, on every family registered in
:mod:`chainrule.testing.families`, the checks that apply to what the family declares
(:func:`checks_for`): scorer checks for every family, generator checks for left-to-right
families, source checks for conditional ones -- with the source passed everywhere. A new family
is done when it passes them all.

Scorer checks (every family, masked and conditional included):
    scorer_shapes        token_logprobs is (B, T-1), finite or -inf, never above 0
    scorer_normalisation P(w_t | context) summed over every w_t in the vocabulary is 1
    scorer_padding       a sequence scores the same alone and inside a right-padded batch
    source_contract      a source is required (conditional) or refused (otherwise), and
                         for a conditional model, changing the source changes the scores
    save_load            save -> load_model gives identical scores
    determinism, learns  (run separately: the same seed gives identical scores; fitting on
                         the tiny corpus lowers the loss below log V)
Generator checks (left-to-right families, with and without a source):
    shapes, normalisation (full, start, step), causality, incremental (start/step = one full
    pass), batch_invariance (padding, in the full pass and through start(lengths)/step),
    select_state (reordering state rows = running those rows), scorer_agrees
    (token_logprobs = logprobs gathered at the next tokens)
Own scoring (families with ``score_ids``, e.g. n-grams):
    own_scoring          score_ids = token_logprobs bit for bit; score_ids_with_mass's set
                         log-probability = logprobs' (within ATOL)
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from chainrule.models.base import Generator, Scorer, get_family, load_model
from chainrule.testing.probes import (
    ATOL,
    TinyTask,
    _assert_normalised,
    _close,
    _pad,
    _probe_batch,
    _probe_sources,
    _rows,
)


@dataclass(frozen=True)
class FamilySpec:
    """How to build a fitted model of one family for the suite.

    Attributes:
        name: the family's registry name.
        make: builds and fits a model on ``task`` using ``task.seed`` for every random choice.
        learns: whether fitting should lower the loss (False for the uniform model).
    """

    name: str
    make: Callable[[TinyTask], Scorer]
    learns: bool = True

    @property
    def cls(self) -> type:
        return get_family(self.name).cls

    @property
    def plain_generator(self) -> bool:
        """A left-to-right model that needs no source (what decoding tests run on)."""
        return issubclass(self.cls, Generator) and not self.cls.conditional


# -- scorer checks (every family) ----------------------------------------------------------------
def check_scorer_shapes(model: Scorer, task: TinyTask) -> None:
    x = _probe_batch(task)
    src = _probe_sources(model, task, x.shape[0])
    with torch.no_grad():
        lp = model.token_logprobs(x, None, src)
    assert lp.shape == (x.shape[0], x.shape[1] - 1), f"token_logprobs shape {tuple(lp.shape)}"
    assert lp.dtype.is_floating_point, "token_logprobs must be a floating-point tensor"
    assert not torch.isnan(lp).any() and not torch.isposinf(lp).any(), "NaN or +inf scores"
    assert float(lp.max()) <= 1e-6, "a log-probability above 0"
    assert model.vocab_size == task.vocab_size
    assert (model.bos_id, model.eos_id) == (task.bos_id, task.eos_id)


def check_scorer_normalisation(model: Scorer, task: TinyTask) -> None:
    """For a position t, score every possible token there: the probabilities sum to one."""
    x = _probe_batch(task, batch=2, length=6)
    src = _probe_sources(model, task, 2)
    V = task.vocab_size
    for t in (1, 3, 5):
        filled = x.repeat_interleave(V, 0)  # row b*V + v has token v at position t
        filled[:, t] = torch.arange(V).repeat(x.shape[0])
        with torch.no_grad():
            lp = model.token_logprobs(filled, None, _rows(src, torch.arange(2).repeat_interleave(V)))
        total = torch.logsumexp(lp[:, t - 1].double().view(x.shape[0], V), dim=-1)
        worst = total.abs().max().item()
        assert worst <= 1e-5, (f"scores at position {t} do not sum to 1 over the vocabulary "
                               f"(|logsumexp| up to {worst:.2e})")


def check_scorer_padding(model: Scorer, task: TinyTask) -> None:
    seqs = [list(q) for q in task.sequences[:4]]
    src = [task.sources[i] for i in range(4)] if model.conditional else None
    batch, lengths = _pad(seqs, task.eos_id)
    with torch.no_grad():
        together = model.token_logprobs(batch, lengths, src)
        for i, q in enumerate(seqs):
            alone = model.token_logprobs(torch.tensor([q]), None, _rows(src, [i]))
            assert _close(alone[0], together[i, : len(q) - 1]), (
                f"sequence {i} scores differently inside a padded batch (token_logprobs)")


def check_source_contract(model: Scorer, task: TinyTask) -> None:
    from chainrule.errors import ChainruleError

    x = _probe_batch(task)
    src = _probe_sources(model, task, x.shape[0])
    wrong = None if model.conditional else [[2, 3]] * x.shape[0]
    try:
        model.token_logprobs(x, None, wrong)
    except ChainruleError:
        pass
    else:
        raise AssertionError("a conditional model scored without a source" if model.conditional
                             else "an unconditional model accepted a source")
    if model.conditional:
        other = [[(w + 3 - 2) % (task.vocab_size - 2) + 2 for w in q] for q in src]
        with torch.no_grad():
            a = model.token_logprobs(x, None, src)
            b = model.token_logprobs(x, None, other)
        assert not _close(a, b, atol=1e-6), "the scores do not depend on the source"


def check_save_load(model: Scorer, task: TinyTask) -> None:
    x = _probe_batch(task)
    src = _probe_sources(model, task, x.shape[0])
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "m")
        loaded = load_model(Path(tmp) / "m")
        assert type(loaded) is type(model), f"loaded a {type(loaded).__name__}"
        with torch.no_grad():
            a, b = model.token_logprobs(x, None, src), loaded.token_logprobs(x, None, src)
            if isinstance(model, Generator):
                assert torch.equal(model.logprobs(x, src), loaded.logprobs(x, src)), (
                    "save -> load changed the model's next-token distributions")
    assert torch.equal(a, b), "save -> load changed the model's outputs"


# -- generator checks (left-to-right families) -------------------------------------------------
def check_shapes(model: Generator, task: TinyTask) -> None:
    x = _probe_batch(task)
    with torch.no_grad():
        lp = model.logprobs(x, _probe_sources(model, task, x.shape[0]))
    assert lp.shape == (*x.shape, model.vocab_size), f"logprobs shape {tuple(lp.shape)}"
    assert lp.dtype.is_floating_point, "logprobs must be a floating-point tensor"


def check_normalisation(model: Generator, task: TinyTask) -> None:
    x = _probe_batch(task)
    src = _probe_sources(model, task, x.shape[0])
    with torch.no_grad():
        _assert_normalised(model.logprobs(x, src), "logprobs")
        lp, state = model.start(x[:, :2], None, src)
        _assert_normalised(lp, "start")
        lp, _ = model.step(state, x[:, 2])
        _assert_normalised(lp, "step")


def check_causality(model: Generator, task: TinyTask) -> None:
    x = _probe_batch(task)
    src = _probe_sources(model, task, x.shape[0])
    T = x.shape[1]
    with torch.no_grad():
        base = model.logprobs(x, src)
        for t in (0, T // 2, T - 2):
            y = x.clone()
            y[:, t + 1 :] = (y[:, t + 1 :] + 3 - 2) % (task.vocab_size - 2) + 2
            out = model.logprobs(y, src)
            assert _close(base[:, : t + 1], out[:, : t + 1]), (
                f"output at positions <= {t} changed when later tokens changed (not causal)"
            )


def check_incremental(model: Generator, task: TinyTask) -> None:
    x = _probe_batch(task)
    src = _probe_sources(model, task, x.shape[0])
    T = x.shape[1]
    with torch.no_grad():
        full = model.logprobs(x, src)
        for prompt_len in (1, 3):
            lp, state = model.start(x[:, :prompt_len], None, src)
            assert _close(lp, full[:, prompt_len - 1]), (
                f"start() on a prompt of {prompt_len} differs from the full pass"
            )
            for t in range(prompt_len, T):
                lp, state = model.step(state, x[:, t])
                assert _close(lp, full[:, t]), (
                    f"step() at position {t} (prompt length {prompt_len}) differs from the full pass"
                )


def check_batch_invariance(model: Generator, task: TinyTask) -> None:
    seqs = [s for s in task.sequences[:4]]
    src = [task.sources[i] for i in range(4)] if model.conditional else None
    batch, lengths = _pad(seqs, task.eos_id)
    with torch.no_grad():
        together = model.logprobs(batch, src)
        for i, s in enumerate(seqs):
            alone = model.logprobs(torch.tensor([s]), _rows(src, [i]))
            assert _close(alone[0], together[i, : len(s)]), (
                f"sequence {i} scores differently inside a padded batch"
            )
        # incremental: prompts of different lengths, then two shared steps
        plens = torch.clamp(lengths - 2, min=1)
        prompts = batch[:, : int(plens.max())].clone()
        lp_b, st_b = model.start(prompts, plens, src)
        nxt = torch.tensor([2 + i % (task.vocab_size - 2) for i in range(len(seqs))])
        lp_b2, _ = model.step(st_b, nxt)
        for i in range(len(seqs)):
            p = prompts[i : i + 1, : int(plens[i])]
            lp_a, st_a = model.start(p, None, _rows(src, [i]))
            assert _close(lp_a[0], lp_b[i]), f"start() of prompt {i} changed by padding"
            lp_a2, _ = model.step(st_a, nxt[i : i + 1])
            assert _close(lp_a2[0], lp_b2[i]), f"step() after padded prompt {i} differs"


def check_select_state(model: Generator, task: TinyTask) -> None:
    x = _probe_batch(task, batch=4)
    src = _probe_sources(model, task, 4)
    with torch.no_grad():
        _, state = model.start(x[:, :3], None, src)
        index = torch.tensor([3, 1, 1, 0])
        lp_sel, _ = model.step(model.select_state(state, index), x[index, 3])
        _, ref_state = model.start(x[index, :3], None, _rows(src, index))
        lp_ref, _ = model.step(ref_state, x[index, 3])
        assert _close(lp_sel, lp_ref), "select_state() rows differ from running those rows"


def check_fast_decoder(model: Generator, task: TinyTask) -> None:
    """A family's ``fast_decoder()`` (when it has one here) gives its own ``step``'s
    log-probabilities, from padded prompts, through a reorder of the rows."""
    fast = model.fast_decoder()
    if fast is None:
        return
    x = _probe_batch(task, batch=3, length=9)
    assert_lockstep(model, fast, x, torch.tensor([3, 1, 2]), _probe_sources(model, task, 3),
                    reorder_at=5)


def assert_lockstep(model: Generator, fast: Any, x: torch.Tensor, lengths: torch.Tensor,
                    source: Any = None, *, reorder_at: int, atol: float = ATOL,
                    rtol: float = 0.0) -> None:
    """``model``'s own ``start``/``step`` and a fast decoder's side by side over the rows of
    ``x`` (B, T): padded prompts of ``lengths`` (the first 3 columns), then one token a step,
    the rows reordered by ``[2, 0, 0]`` (``select_state``) before position ``reorder_at``;
    the log-probabilities must agree at every step."""
    with torch.no_grad():
        lp_a, st_a = model.start(x[:, :3], lengths, source)
        lp_b, st_b = fast.start(x[:, :3], lengths, source)
        for t in range(3, x.shape[1]):
            assert _close(lp_a, lp_b, atol, rtol), (
                f"the fast decoder differs from step() before position {t}")
            if t == reorder_at:
                index = torch.tensor([2, 0, 0])
                st_a, st_b = model.select_state(st_a, index), fast.select_state(st_b, index)
                x = x[index]
            lp_a, st_a = model.step(st_a, x[:, t])
            lp_b, st_b = fast.step(st_b, x[:, t])
        assert _close(lp_a, lp_b, atol, rtol), "the fast decoder differs from step() at the end"


def check_scorer_agrees(model: Generator, task: TinyTask) -> None:
    x = _probe_batch(task)
    src = _probe_sources(model, task, x.shape[0])
    with torch.no_grad():
        full = model.logprobs(x[:, :-1], src).gather(-1, x[:, 1:, None]).squeeze(-1)
        fast = model.token_logprobs(x, None, src)
    assert _close(full, fast), "token_logprobs differs from logprobs at the next tokens"


def check_own_scoring(model: Scorer, task: TinyTask) -> None:
    """A family's own scoring of id lists (``score_ids``, ``score_ids_with_mass``: what
    models/scoring.py hands it so that evaluation needs no torch) equals the tensor path."""
    seqs = [*task.sequences[:6], [task.bos_id], [task.bos_id, *task.sequences[0][1:] * 3]]
    with torch.no_grad():
        for s, lp in zip(seqs, model.score_ids(seqs)):
            ref = model.token_logprobs(torch.tensor([s]))[0].double().numpy()
            assert lp.tobytes() == ref.tobytes(), "score_ids differs from token_logprobs"
        if getattr(model, "score_ids_with_mass", None) is None:
            return
        mask = torch.arange(model.vocab_size) % 3 == 1
        for s, (lp, mass) in zip(seqs, model.score_ids_with_mass(seqs, mask.numpy())):
            ref = model.logprobs(torch.tensor([s]))[0, :, mask].double().logsumexp(-1)
            assert _close(torch.from_numpy(mass), ref), (
                "score_ids_with_mass: the set's log-probability differs from logprobs'")
            assert lp.tobytes() == model.score_ids([s])[0].tobytes()


# -- checks that build or fit models -----------------------------------------------------------
def check_determinism(make: Callable[[TinyTask], Scorer], task: TinyTask) -> None:
    x = _probe_batch(task)
    a_model, b_model = make(task), make(task)
    src = _probe_sources(a_model, task, x.shape[0])
    with torch.no_grad():
        a = a_model.token_logprobs(x, None, src)
        b = b_model.token_logprobs(x, None, src)
    assert torch.equal(a, b), "two models built with the same seed give different outputs"


def mean_nll(model: Scorer, sequences: list[list[int]],
             sources: list[list[int]] | None = None) -> float:
    """Mean negative log-likelihood (nats per predicted token) of framed sequences."""
    total, n = 0.0, 0
    with torch.no_grad():
        for i, s in enumerate(sequences):
            lp = model.token_logprobs(torch.tensor([s]), None, _rows(sources, [i]))
            total -= lp.sum().item()
            n += len(s) - 1
    return total / n


def check_learns(model: Scorer, task: TinyTask) -> None:
    nll = mean_nll(model, task.sequences, task.sources if model.conditional else None)
    ceiling = math.log(task.vocab_size)
    assert nll < ceiling - 0.05, (
        f"after fitting, training loss {nll:.3f} is not below the uniform model's {ceiling:.3f}"
    )


SCORER_CHECKS: dict[str, Callable[[Scorer, TinyTask], None]] = {
    "scorer_shapes": check_scorer_shapes,
    "scorer_normalisation": check_scorer_normalisation,
    "scorer_padding": check_scorer_padding,
    "source_contract": check_source_contract,
    "save_load": check_save_load,
}
GENERATOR_CHECKS: dict[str, Callable[[Generator, TinyTask], None]] = {
    "shapes": check_shapes,
    "normalisation": check_normalisation,
    "causality": check_causality,
    "incremental": check_incremental,
    "batch_invariance": check_batch_invariance,
    "select_state": check_select_state,
    "scorer_agrees": check_scorer_agrees,
    "fast_decoder": check_fast_decoder,
}
#: every check by name (``own_scoring``: families with their own ``score_ids``)
MODEL_CHECKS = {**SCORER_CHECKS, **GENERATOR_CHECKS, "own_scoring": check_own_scoring}


def checks_for(cls: type) -> list[str]:
    """Names of the checks that apply to a model class, from what it declares."""
    names = list(SCORER_CHECKS)
    if issubclass(cls, Generator):
        names += list(GENERATOR_CHECKS)
    if getattr(cls, "score_ids", None) is not None and not cls.conditional:
        names.append("own_scoring")
    return names


__all__ = [
    "GENERATOR_CHECKS",
    "MODEL_CHECKS",
    "SCORER_CHECKS",
    "FamilySpec",
    "TinyTask",
    "check_determinism",
    "check_learns",
    "checks_for",
    "mean_nll",
]
