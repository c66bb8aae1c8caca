"""The conformance suite: properties every language-model family must have.

Like scikit-learn's ``parametrize_with_checks``, each check is a plain function that takes a
fitted model (and the tiny task it was fitted on) and raises ``AssertionError`` with a sentence
saying what broke. ``tests/test_conformance.py`` runs every check on every family registered in
:mod:`chainrule.testing.families`; a new family is done when it passes them all.

Checks:
    normalisation      logsumexp over the vocabulary is 0 at every position (full and step)
    causality          changing tokens after t leaves outputs at <= t unchanged
    incremental        start/step give the same log-probabilities as one full pass
    batch_invariance   a sequence scores the same alone and inside a right-padded batch,
                       in the full pass and through start(lengths)/step
    select_state       selecting / reordering state rows equals running those rows alone
    determinism        the same seed builds a model with identical outputs
    save_load          save -> load_model gives identical outputs
    learns             a model fitted on the tiny corpus has lower loss there than log V
"""

from __future__ import annotations

import math
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from chainrule.models.base import LanguageModel, load_model

ATOL = 1e-4


@dataclass(frozen=True)
class TinyTask:
    """A tiny toy language to fit models on: ids 2..V-1 mostly count upwards, wrapping round.

    ``bos_id`` = 0 and ``eos_id`` = 1; every training sequence is ``bos ... eos``.
    """

    vocab_size: int = 12
    seed: int = 0
    n_sequences: int = 60
    bos_id: int = 0
    eos_id: int = 1
    sequences: list[list[int]] = field(init=False)

    def __post_init__(self):
        rng = random.Random(1234)  # the corpus is fixed; ``seed`` is for the model
        words = list(range(2, self.vocab_size))
        seqs = []
        for _ in range(self.n_sequences):
            length = rng.randint(3, 10)
            w = rng.choice(words)
            seq = [self.bos_id, w]
            for _ in range(length - 1):
                w = words[(words.index(w) + 1) % len(words)] if rng.random() < 0.85 else rng.choice(words)
                seq.append(w)
            seq.append(self.eos_id)
            seqs.append(seq)
        object.__setattr__(self, "sequences", seqs)


@dataclass(frozen=True)
class FamilySpec:
    """How to build a fitted model of one family for the suite.

    Attributes:
        name: the family's registry name.
        make: builds and fits a model on ``task`` using ``task.seed`` for every random choice.
        learns: whether fitting should lower the loss (False for the uniform model).
    """

    name: str
    make: Callable[[TinyTask], LanguageModel]
    learns: bool = True


def _probe_batch(task: TinyTask, batch: int = 3, length: int = 9, seed: int = 7) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    body = torch.randint(2, task.vocab_size, (batch, length - 1), generator=g)
    return torch.cat([torch.full((batch, 1), task.bos_id), body], dim=1)


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL) -> bool:
    """Equal within ``atol``, treating -inf == -inf as equal (MLE models have zeros)."""
    if a.shape != b.shape:
        return False
    both_inf = torch.isneginf(a) & torch.isneginf(b)
    a = torch.where(both_inf, torch.zeros_like(a), a)
    b = torch.where(both_inf, torch.zeros_like(b), b)
    return bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=0))


def _assert_normalised(lp: torch.Tensor, where: str) -> None:
    total = torch.logsumexp(lp.double(), dim=-1)
    worst = (total.abs()).max().item()
    assert worst <= 1e-5, f"{where}: log-probabilities do not sum to 1 (|logsumexp| up to {worst:.2e})"
    assert not torch.isnan(lp).any(), f"{where}: NaN in log-probabilities"
    assert not torch.isposinf(lp).any(), f"{where}: +inf in log-probabilities"


def check_shapes(model: LanguageModel, task: TinyTask) -> None:
    x = _probe_batch(task)
    with torch.no_grad():
        lp = model.logprobs(x)
    assert lp.shape == (*x.shape, model.vocab_size), f"logprobs shape {tuple(lp.shape)}"
    assert lp.dtype.is_floating_point, "logprobs must be a floating-point tensor"
    assert model.vocab_size == task.vocab_size
    assert (model.bos_id, model.eos_id) == (task.bos_id, task.eos_id)


def check_normalisation(model: LanguageModel, task: TinyTask) -> None:
    x = _probe_batch(task)
    with torch.no_grad():
        _assert_normalised(model.logprobs(x), "logprobs")
        lp, state = model.start(x[:, :2])
        _assert_normalised(lp, "start")
        lp, _ = model.step(state, x[:, 2])
        _assert_normalised(lp, "step")


def check_causality(model: LanguageModel, task: TinyTask) -> None:
    x = _probe_batch(task)
    T = x.shape[1]
    with torch.no_grad():
        base = model.logprobs(x)
        for t in (0, T // 2, T - 2):
            y = x.clone()
            y[:, t + 1 :] = (y[:, t + 1 :] + 3 - 2) % (task.vocab_size - 2) + 2
            out = model.logprobs(y)
            assert _close(base[:, : t + 1], out[:, : t + 1]), (
                f"output at positions <= {t} changed when later tokens changed (not causal)"
            )


def check_incremental(model: LanguageModel, task: TinyTask) -> None:
    x = _probe_batch(task)
    T = x.shape[1]
    with torch.no_grad():
        full = model.logprobs(x)
        for prompt_len in (1, 3):
            lp, state = model.start(x[:, :prompt_len])
            assert _close(lp, full[:, prompt_len - 1]), (
                f"start() on a prompt of {prompt_len} differs from the full pass"
            )
            for t in range(prompt_len, T):
                lp, state = model.step(state, x[:, t])
                assert _close(lp, full[:, t]), (
                    f"step() at position {t} (prompt length {prompt_len}) differs from the full pass"
                )


def check_batch_invariance(model: LanguageModel, task: TinyTask) -> None:
    seqs = [s for s in task.sequences[:4]]
    lengths = torch.tensor([len(s) for s in seqs])
    T = int(lengths.max())
    batch = torch.full((len(seqs), T), task.eos_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        batch[i, : len(s)] = torch.tensor(s)
    with torch.no_grad():
        together = model.logprobs(batch)
        for i, s in enumerate(seqs):
            alone = model.logprobs(torch.tensor([s]))
            assert _close(alone[0], together[i, : len(s)]), (
                f"sequence {i} scores differently inside a padded batch"
            )
        # incremental: prompts of different lengths, then two shared steps
        plens = torch.clamp(lengths - 2, min=1)
        prompts = batch[:, : int(plens.max())].clone()
        lp_b, st_b = model.start(prompts, plens)
        nxt = torch.tensor([2 + i % (task.vocab_size - 2) for i in range(len(seqs))])
        lp_b2, _ = model.step(st_b, nxt)
        for i in range(len(seqs)):
            p = prompts[i : i + 1, : int(plens[i])]
            lp_a, st_a = model.start(p)
            assert _close(lp_a[0], lp_b[i]), f"start() of prompt {i} changed by padding"
            lp_a2, _ = model.step(st_a, nxt[i : i + 1])
            assert _close(lp_a2[0], lp_b2[i]), f"step() after padded prompt {i} differs"


def check_select_state(model: LanguageModel, task: TinyTask) -> None:
    x = _probe_batch(task, batch=4)
    with torch.no_grad():
        _, state = model.start(x[:, :3])
        index = torch.tensor([3, 1, 1, 0])
        lp_sel, _ = model.step(model.select_state(state, index), x[index, 3])
        _, ref_state = model.start(x[index, :3])
        lp_ref, _ = model.step(ref_state, x[index, 3])
        assert _close(lp_sel, lp_ref), "select_state() rows differ from running those rows"


def check_determinism(make: Callable[[TinyTask], LanguageModel], task: TinyTask) -> None:
    x = _probe_batch(task)
    with torch.no_grad():
        a = make(task).logprobs(x)
        b = make(task).logprobs(x)
    assert torch.equal(a, b), "two models built with the same seed give different outputs"


def check_save_load(model: LanguageModel, task: TinyTask) -> None:
    x = _probe_batch(task)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "m")
        loaded = load_model(Path(tmp) / "m")
        assert type(loaded) is type(model), f"loaded a {type(loaded).__name__}"
        with torch.no_grad():
            a, b = model.logprobs(x), loaded.logprobs(x)
    assert torch.equal(a, b), "save -> load changed the model's outputs"


def mean_nll(model: LanguageModel, sequences: list[list[int]]) -> float:
    """Mean negative log-likelihood (nats per predicted token) of framed sequences."""
    total, n = 0.0, 0
    with torch.no_grad():
        for s in sequences:
            x = torch.tensor([s])
            lp = model.logprobs(x[:, :-1])
            total -= lp[0].gather(1, x[0, 1:, None]).sum().item()
            n += len(s) - 1
    return total / n


def check_learns(model: LanguageModel, task: TinyTask) -> None:
    nll = mean_nll(model, task.sequences)
    ceiling = math.log(task.vocab_size)
    assert nll < ceiling - 0.05, (
        f"after fitting, training loss {nll:.3f} is not below the uniform model's {ceiling:.3f}"
    )


MODEL_CHECKS: dict[str, Callable[[LanguageModel, TinyTask], None]] = {
    "shapes": check_shapes,
    "normalisation": check_normalisation,
    "causality": check_causality,
    "incremental": check_incremental,
    "batch_invariance": check_batch_invariance,
    "select_state": check_select_state,
    "save_load": check_save_load,
}

__all__ = [
    "MODEL_CHECKS",
    "FamilySpec",
    "TinyTask",
    "check_determinism",
    "check_learns",
    "mean_nll",
]
