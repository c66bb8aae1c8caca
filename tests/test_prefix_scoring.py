"""Scoring with shared prefixes (chainrule.models.prefix_scoring): each distinct prefix is fed
once through start/step, and the numbers equal the one batched full-pass scorer's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chainrule.decoding import score_continuations
from chainrule.models.neural import build_neural_model
from chainrule.models.prefix_scoring import (
    cached_pays,
    can_share_prefixes,
    score_continuations_cached,
    score_tree,
    shared_fraction,
)
from chainrule.models.scoring import score_sequences, score_with_mass
from chainrule.prompting import PromptBuilder, Task, run_condition
from chainrule.tokenizers.char import CharTokenizer

V = 23


def _model(family: str):
    torch.manual_seed(0)
    if family == "gpt":
        kw = {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 16}
    else:
        kw = {"n_layer": 1, "n_embd": 12, "n_hidden": 16}
    return build_neural_model(family, vocab_size=V, bos_id=0, eos_id=1, dropout=0.0,
                              **kw).eval()


@pytest.fixture(scope="module", params=["gpt", "lstm"])
def model(request):
    return _model(request.param)


def _sequences(seed: int = 0) -> list[list[int]]:
    """Minimal-pair-like sets: shared beginnings, duplicates, a prefix of another sequence,
    one longer than the GPT's block_size (its window slides in both paths)."""
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(6):
        stem = [0, *rng.integers(2, V, rng.integers(1, 6)).tolist()]
        for _ in range(rng.integers(1, 4)):
            seqs.append(stem + rng.integers(2, V, rng.integers(0, 5)).tolist())
    seqs += [seqs[0], seqs[1][:2], [0], [0, *rng.integers(2, V, 30).tolist()]]
    return seqs


def test_tree_equals_the_full_pass(model):
    seqs = _sequences()
    full = score_sequences(model, seqs)
    tree = score_tree(model, seqs, max_rows=5)  # small batches: heads re-encoded per batch
    for a, (b, mass) in zip(full, tree):
        assert mass is None and len(a) == len(b)
        np.testing.assert_allclose(b, a, atol=1e-5)


def test_tree_mass_equals_score_with_mass(model):
    seqs = [s for s in _sequences(1) if len(s) > 1]
    mask = torch.zeros(V, dtype=torch.bool)
    mask[[1, 3, 5, 8, 13]] = True
    ref = score_with_mass(model, seqs, mask)
    for (lp, mass), (lp2, mass2) in zip(ref, score_tree(model, seqs, mask=mask)):
        np.testing.assert_allclose(lp2, lp, atol=1e-5)
        np.testing.assert_allclose(mass2, mass, atol=1e-5)


def test_heads_are_context_only(model):
    seqs = _sequences(2)
    heads = [min(len(s), 3) for s in seqs]
    full = score_sequences(model, seqs)
    for s, h, a, (b, _) in zip(seqs, heads, full, score_tree(model, seqs, score_from=heads)):
        assert np.isnan(b[: h - 1]).all()
        np.testing.assert_allclose(b[h - 1:], a[h - 1:], atol=1e-5)


def test_cached_continuations_equal_rescoring_from_scratch(model):
    rng = np.random.default_rng(3)
    pairs = []
    for _ in range(5):  # a shared prompt, several choices (one empty)
        prompt = rng.integers(2, V, rng.integers(0, 12)).tolist()
        for n in (1, 2, 4, 0):
            pairs.append((prompt, rng.integers(2, V, n).tolist()))
    ref = score_continuations(model, pairs)
    got = score_continuations_cached(model, pairs, max_rows=3)
    assert got == pytest.approx(ref, abs=1e-5)
    assert got[3] == 0.0


def test_shared_fraction_and_cost_rule():
    # 3 sequences, 9 tokens; distinct prefixes: [0] [0 5] [0 5 6] [0 5 7] [0 9] -> 5
    assert shared_fraction([[0, 5, 6], [0, 5, 7], [0, 9]]) == pytest.approx(5 / 8)
    # a 10-token prompt, 3 one-token choices: 11 + 2.5 * 3 = 18.5 < 3 * 12 = 36 -> cache
    assert cached_pays([(list(range(10)), [3])] * 3)
    # no prompt, two 10-token "choices" (BLiMP at 0 shots): 1 + 50 > 22 -> from scratch
    assert not cached_pays([([], list(range(10))), ([], list(range(10)))])


def test_which_models_share_prefixes(model):
    from chainrule.testing.toys import NeighbourMaskedLM

    assert can_share_prefixes(model)
    # a masked scorer has no start/step: its choices are rescored from scratch
    assert not can_share_prefixes(NeighbourMaskedLM.__new__(NeighbourMaskedLM))


def test_multiple_choice_with_and_without_the_prompt_cache_agree():
    letters = "abcdefgh"
    tok = CharTokenizer(list(letters) + [" ", ":", "\n"])
    torch.manual_seed(0)
    gpt = build_neural_model("gpt", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                             eos_id=tok.eos_id, n_layer=1, n_head=2, n_embd=16,
                             block_size=256, dropout=0.0).eval()
    task = Task(name="mc", kind="multiple_choice", template="q: {q}", answer="a",
                choices_field="opts", target_delimiter=" ", separator="\n",
                examples="x.jsonl")
    rng = np.random.default_rng(0)
    exs = [{"q": "".join(rng.choice(list(letters), 4)),
            "opts": ["".join(rng.choice(list(letters), n)) for n in (1, 3, 2, 5)], "a": 1}
           for _ in range(16)]
    builder = PromptBuilder(task, tok, "plain")
    on = run_condition(gpt, builder, exs[:8], exs[8:], 4, 0, prefix_cache=True)
    off = run_condition(gpt, builder, exs[:8], exs[8:], 4, 0, prefix_cache=False)
    for a, b in zip(on, off):
        assert a.choice_logprobs == pytest.approx(b.choice_logprobs, abs=1e-5)
        assert (a.prediction, a.correct_norm) == (b.prediction, b.correct_norm)


def test_a_prompt_is_encoded_once_however_many_row_batches_its_choices_take(model):
    rng = np.random.default_rng(4)
    prompt = rng.integers(2, V, 12).tolist()
    pairs = [(prompt, rng.integers(2, V, n).tolist()) for n in (1, 2, 3, 1, 2, 3, 2)]
    calls = []
    start = model.start
    model.start = lambda *a, **k: calls.append(1) or start(*a, **k)
    try:
        got = score_continuations_cached(model, pairs, max_rows=3)  # 3 walks of <= 3 rows
    finally:
        del model.start
    assert len(calls) == 1
    assert got == pytest.approx(score_continuations(model, pairs), abs=1e-5)
