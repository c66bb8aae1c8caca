"""Decoding properties on a tiny fitted model of every registered family.

Every expectation is recomputed independently from ``model.logprobs`` / ``token_logprobs`` on
the whole sequence, never from the decoding code under test.
"""

from __future__ import annotations

import math

import pytest
import torch

from _decoding_helpers import FAMILIES, TASK, chi2_sf, chi_square_pvalue, fitted
from chainrule.decoding import GenerationConfig, generate
from chainrule.testing.conformance import assert_lockstep

PROMPTS = [[], [2, 3], [5, 6, 7, 8]]

# window models (feed-forward, n-gram) read fewer tokens than these prompts hold
pytestmark = pytest.mark.filterwarnings("ignore::chainrule.decoding.PromptTruncatedWarning")


def full_logprobs(model, prompt_ids, token_ids):
    """(len(token_ids), V): the model's distribution before each generated token, in one pass."""
    seq = torch.tensor([prompt_ids + token_ids])
    with torch.no_grad():
        lp = model.logprobs(seq[:, :-1] if token_ids else seq)[0].double()
    return lp[len(prompt_ids) - 1 :]


def sequence_logprob(model, completion) -> float:
    """log P(generated tokens (+ EOS) | prompt) from token_logprobs of the whole sequence."""
    tail = [TASK.eos_id] if completion.finish_reason == "eos" else []
    gen = completion.token_ids + tail
    if not gen:
        return 0.0
    seq = torch.tensor([completion.prompt_ids + gen])
    with torch.no_grad():
        tl = model.token_logprobs(seq)[0].double()
    return float(tl[len(completion.prompt_ids) - 1 :].sum())


def ids(results):
    return [[c.token_ids for c in outs] for outs in results]


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_picks_the_argmax_at_every_step(family):
    model = fitted(family)
    results = generate(model, PROMPTS, GenerationConfig(strategy="greedy", max_new_tokens=8))
    for [c] in results:
        gen = c.token_ids + ([TASK.eos_id] if c.finish_reason == "eos" else [])
        lp = full_logprobs(model, c.prompt_ids, gen)
        for t, tok in enumerate(gen):
            assert lp[t, tok] >= lp[t].max() - 1e-6, f"step {t}: {tok} is not the arg-max"
        assert c.logprob == pytest.approx(sequence_logprob(model, c), abs=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_temperature_zero_and_one_beam_equal_greedy(family):
    model = fitted(family)
    greedy = generate(model, PROMPTS, GenerationConfig(strategy="greedy", max_new_tokens=8))
    cold = generate(model, PROMPTS, GenerationConfig(temperature=0.0, max_new_tokens=8, seed=5))
    beam = generate(model, PROMPTS,
                    GenerationConfig(strategy="beam", num_beams=1, max_new_tokens=8))
    assert ids(cold) == ids(greedy)
    assert ids(beam) == ids(greedy)
    assert [o[0].finish_reason for o in beam] == [o[0].finish_reason for o in greedy]


@pytest.mark.parametrize("family", FAMILIES)
def test_beam_scores_are_the_models_logprobs(family):
    model = fitted(family)
    cfg = GenerationConfig(strategy="beam", num_beams=4, n=3, max_new_tokens=7, length_penalty=0.7)
    for outs in generate(model, PROMPTS, cfg):
        assert len(outs) == 3
        scores = [c.score for c in outs]
        assert scores == sorted(scores, reverse=True), "n best are not ordered best first"
        for c in outs:
            assert c.logprob == pytest.approx(sequence_logprob(model, c), abs=1e-4)
            length = len(c.token_ids) + (c.finish_reason == "eos")
            assert c.score == pytest.approx(c.logprob / length**0.7, abs=1e-4)
        assert len({tuple(c.token_ids) + (c.finish_reason,) for c in outs}) == 3


@pytest.mark.parametrize("family", FAMILIES)
def test_top_k_and_top_p_never_leave_their_set(family):
    model = fitted(family)
    k, p = 3, 0.6
    for cfg in (GenerationConfig(top_k=k, n=20, max_new_tokens=6, seed=1),
                GenerationConfig(top_p=p, n=20, max_new_tokens=6, seed=2)):
        for outs in generate(model, PROMPTS, cfg):
            for c in outs:
                gen = c.token_ids + ([TASK.eos_id] if c.finish_reason == "eos" else [])
                lp = full_logprobs(model, c.prompt_ids, gen)
                for t, tok in enumerate(gen):
                    if cfg.top_k is not None:
                        kth = lp[t].topk(k).values[-1]
                        assert lp[t, tok] >= kth - 1e-6, f"{tok} is outside the top {k}"
                    else:
                        probs = lp[t].exp()
                        above = probs[probs > probs[tok] + 1e-9].sum()
                        assert above < p + 1e-6, f"{tok} is outside the top-{p} nucleus"


def test_chi_square_survival_function_matches_closed_forms():
    # df = 2: P(X >= x) = exp(-x / 2); df = 1 at x = 3.841 is the classic 5% point
    for x in (0.5, 2.0, 7.3):
        assert chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-9)
    assert chi2_sf(3.841459, 1) == pytest.approx(0.05, abs=1e-6)
    assert chi2_sf(18.307, 10) == pytest.approx(0.05, abs=1e-4)


def _first_token_counts(model, cfg_kwargs, draws=3000, seed=0):
    cfg = GenerationConfig(n=draws, max_new_tokens=1, ignore_eos=True, seed=seed, **cfg_kwargs)
    [outs] = generate(model, [[2, 3]], cfg)
    toks = torch.tensor([c.token_ids[0] for c in outs])
    return torch.bincount(toks, minlength=TASK.vocab_size)


@pytest.mark.parametrize("family", FAMILIES)
def test_sampled_frequencies_match_the_model(family):
    model = fitted(family)
    with torch.no_grad():
        lp = model.logprobs(torch.tensor([[TASK.bos_id, 2, 3]]))[0, -1].double()
    cases = {
        "plain": ({}, lp.exp()),
        "temperature 0.7": ({"temperature": 0.7}, (lp / 0.7).softmax(-1)),
        "top-k 4": ({"top_k": 4}, torch.where(lp >= lp.topk(4).values[-1], lp.exp(), 0.0)),
    }
    for name, (kwargs, expected) in cases.items():
        counts = _first_token_counts(model, kwargs)
        assert counts[expected == 0].sum() == 0, f"{name}: drew a token of probability 0"
        pval = chi_square_pvalue(counts, expected)
        assert pval > 1e-3, f"{name}: sampled frequencies differ from the model's (p={pval:.2g})"


def test_chi_square_test_can_fail():
    """The check above has power: counts drawn at temperature 1 fail against temperature 0.5."""
    model = fitted("unigram")
    with torch.no_grad():
        lp = model.logprobs(torch.tensor([[TASK.bos_id, 2, 3]]))[0, -1].double()
    counts = _first_token_counts(model, {})
    assert chi_square_pvalue(counts, (lp / 0.5).softmax(-1)) < 1e-3


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
def test_cached_generation_equals_uncached(family, strategy):
    model = fitted(family)
    kw = {"strategy": strategy, "max_new_tokens": 10, "seed": 3}
    if strategy == "sample":
        kw.update(n=3, top_k=6, repetition_penalty=1.3)
    if strategy == "beam":
        kw.update(num_beams=3, n=2)
        kw.pop("seed")
    cached = generate(model, PROMPTS, GenerationConfig(**kw))
    uncached = generate(model, PROMPTS, GenerationConfig(use_cache=False, **kw))
    assert ids(cached) == ids(uncached)
    for a, b in zip(cached, uncached):
        for x, y in zip(a, b):
            assert x.logprob == pytest.approx(y.logprob, abs=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_output_and_batch_equals_one_by_one(family):
    model = fitted(family)
    for kw in ({"strategy": "greedy"}, {"seed": 11, "n": 2, "top_p": 0.9},
               {"strategy": "beam", "num_beams": 3, "n": 2}):
        cfg = GenerationConfig(max_new_tokens=9, **kw)
        batch = generate(model, PROMPTS, cfg)
        assert ids(generate(model, PROMPTS, cfg)) == ids(batch)
        one_by_one = [generate(model, [p], cfg)[0] for p in PROMPTS]
        assert ids(one_by_one) == ids(batch)
        reordered = generate(model, PROMPTS[::-1], cfg)[::-1]
        assert ids(reordered) == ids(batch)


def test_different_seeds_give_different_samples():
    model = fitted("unigram")
    a = generate(model, PROMPTS, GenerationConfig(seed=1, max_new_tokens=10, ignore_eos=True))
    b = generate(model, PROMPTS, GenerationConfig(seed=2, max_new_tokens=10, ignore_eos=True))
    assert ids(a) != ids(b)


@pytest.mark.parametrize("family", FAMILIES)
def test_max_new_tokens_and_eos(family):
    model = fitted(family)
    for cfg in (GenerationConfig(seed=0, n=5, max_new_tokens=4),
                GenerationConfig(strategy="beam", n=2, max_new_tokens=4)):
        for outs in generate(model, PROMPTS, cfg):
            for c in outs:
                assert TASK.eos_id not in c.token_ids
                n_gen = len(c.token_ids) + (c.finish_reason == "eos")
                assert n_gen <= 4
                assert (c.finish_reason == "length") == (n_gen == 4 and c.finish_reason != "eos")
    [[c]] = generate(model, [[2]], GenerationConfig(strategy="greedy", max_new_tokens=0))
    assert (c.token_ids, c.logprob, c.finish_reason) == ([], 0.0, "length")
    [outs] = generate(model, [[2]], GenerationConfig(seed=0, n=3, max_new_tokens=6,
                                                    ignore_eos=True))
    assert all(len(c.token_ids) == 6 for c in outs)


def _static_buffer_decoder(model):
    """The model's fast decoder; for a GPT on a CPU, its CUDA-graph decoder run eagerly."""
    from chainrule.models.gpt import GPT
    from chainrule.models.gpt_graphs import GraphDecoder

    fast = model.fast_decoder()
    if fast is None and isinstance(model, GPT):
        fast = GraphDecoder(model, graphs=False)  # same static buffers, no capture
    return fast


@pytest.mark.parametrize("family", [f for f in FAMILIES if f.startswith("gpt")])
def test_fast_decoders_agree_with_the_models_own_steps(family):
    model = fitted(family)
    fast = _static_buffer_decoder(model)
    if fast is None:
        pytest.skip(f"{family} has no fast decoder")
    g = torch.Generator().manual_seed(0)
    x = torch.randint(2, TASK.vocab_size, (3, 20), generator=g)  # long enough to slide the
    x[:, 0] = TASK.bos_id  # tiny GPT's window
    assert_lockstep(model, fast, x, torch.tensor([1, 3, 2]), reorder_at=10, atol=1e-5, rtol=1e-5)
    results = [generate(model, PROMPTS, GenerationConfig(strategy="greedy", max_new_tokens=12,
                                                         fast_path=f)) for f in (True, False)]
    assert ids(results[0]) == ids(results[1])


def test_on_token_counts_every_generated_token():
    """The progress hook of long generations: one call per token of any row (EOS included),
    plus one per output that stops at the length limit."""
    model = fitted("gpt")
    calls = []
    cfg = GenerationConfig(strategy="sample", max_new_tokens=12, n=3, seed=4)
    outs = generate(model, [[1], [2, 3]], cfg, on_token=lambda: calls.append(1))
    flat = [c for row in outs for c in row]
    expected = sum(len(c.token_ids) + (c.finish_reason == "eos") + (c.finish_reason == "length")
                   for c in flat)
    assert len(calls) == expected and len(flat) == 6


def test_progress_lines_when_stderr_is_not_a_terminal():
    import logging

    from chainrule.cli._progress import counter

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__(logging.INFO)
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    logger, keep = logging.getLogger("chainrule"), Keep()
    level = logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        with counter(100, "generating", min_total=50) as tick:
            for _ in range(100):
                tick()
        with counter(10, "small", min_total=50) as none:
            assert none is None
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
    assert len(keep.lines) == 10 and keep.lines[-1] == "generating: 100 / 100 tok"
