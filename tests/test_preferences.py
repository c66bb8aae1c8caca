"""Preference learning, the formulas: DPO/IPO, Bradley-Terry, GAE, KL estimators, GRPO
advantages, the judge's position-swap averaging, preference files and bad input."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule.errors import ConfigError, DataError, TokenizerError
from chainrule.models.neural import build_neural_model
from chainrule.preferences.data import (
    PreferencePair,
    ReadReport,
    encode_pairs,
    pad_batch,
    read_preferences,
    split_dialogue_pair,
    split_of,
    split_pairs,
)
from chainrule.preferences.judge import Judge, judge_both_orders
from chainrule.preferences.rewards import parse_reward
from chainrule.tokenizers import train_tokenizer
from chainrule.training.preference_losses import (
    bradley_terry_loss,
    dpo_loss,
    gae,
    gae_reference,
    group_advantages,
    kl_estimate,
    response_logprobs,
    token_logprobs,
)

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"
TEXT = "the cat sat on a mat and the dog ran to the red box by a big tree in the sun"


def _tiny(vocab: int, seed: int = 0):
    torch.manual_seed(seed)
    return build_neural_model("gpt", vocab_size=vocab, n_layer=1, n_head=2, n_embd=16,
                              block_size=32).eval()


# -- DPO, IPO, Bradley-Terry --------------------------------------------------------------------
def test_dpo_loss_on_a_hand_worked_example():
    pc, pr = torch.tensor([-1.0, -4.0]), torch.tensor([-3.0, -2.0])
    rc, rr = torch.tensor([-2.0, -2.0]), torch.tensor([-2.0, -2.0])
    out = dpo_loss(pc, pr, rc, rr, beta=1.0)
    # pair 1: h = (-1+2) - (-3+2) = 2; pair 2: h = (-4+2) - (-2+2) = -2
    expected = (math.log1p(math.exp(-2)) + math.log1p(math.exp(2))) / 2
    assert float(out.loss) == pytest.approx(expected, abs=1e-6)
    assert out.chosen_rewards.tolist() == [1.0, -2.0]
    assert out.rejected_rewards.tolist() == [-1.0, 0.0]
    assert out.margins.tolist() == [2.0, -2.0] and out.accuracy == 0.5
    ipo = dpo_loss(pc, pr, rc, rr, beta=1.0, loss_type="ipo")  # (h - 1/(2 beta))^2
    assert float(ipo.loss) == pytest.approx(((2 - 0.5) ** 2 + (-2 - 0.5) ** 2) / 2)
    half = dpo_loss(pc, pr, rc, rr, beta=0.5)
    assert float(half.loss) == pytest.approx(
        (math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 2, abs=1e-6)


def test_bradley_terry_loss():
    assert float(bradley_terry_loss(torch.tensor([0.0]), torch.tensor([0.0]))) == pytest.approx(
        math.log(2))
    assert float(bradley_terry_loss(torch.tensor([3.0]), torch.tensor([1.0]))) == pytest.approx(
        math.log1p(math.exp(-2)))


def _pair_batch(tok):
    pairs = [PreferencePair("the cat", " sat on a mat", " ran to the box"),
             PreferencePair("a dog", " by a big tree", " in the sun")]
    enc = encode_pairs(pairs, tok, bos_id=tok.bos_id, eos_id=tok.eos_id, max_length=32)
    rows = [e.chosen for e in enc] + [e.rejected for e in enc]
    masks = [e.chosen_mask for e in enc] + [e.rejected_mask for e in enc]
    return pad_batch(rows, masks, tok.eos_id)


def test_dpo_gradient_vanishes_as_beta_goes_to_zero_with_policy_equal_to_reference():
    tok = train_tokenizer("word", [TEXT])
    model = _tiny(tok.vocab_size)
    ids, mask, _ = _pair_batch(tok)
    with torch.no_grad():
        ref = response_logprobs(model, ids, mask)

    def grad_norm(beta: float) -> float:
        model.zero_grad()
        logps = response_logprobs(model, ids, mask)
        dpo_loss(logps[:2], logps[2:], ref[:2], ref[2:], beta=beta).loss.backward()
        return math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters()
                             if p.grad is not None))

    big, small, tiny = grad_norm(1.0), grad_norm(1e-6), grad_norm(1e-12)
    assert big > 1e-3  # the gradient is -beta/2 grad(log pi_c - log pi_r) at h = 0 ...
    assert small == pytest.approx(big * 1e-6, rel=1e-4)  # ... so it shrinks with beta
    assert tiny < 1e-10


def test_response_logprobs_count_only_response_tokens():
    tok = train_tokenizer("word", [TEXT])
    model = _tiny(tok.vocab_size)
    ids, mask, _ = _pair_batch(tok)
    per_token = token_logprobs(model, ids)
    manual = [float(per_token[b][mask[b, 1:]].sum().detach()) for b in range(ids.shape[0])]
    assert response_logprobs(model, ids, mask).tolist() == pytest.approx(manual)
    # the prompt is context: changing a prompt-only mask bit changes the sum
    assert not mask[0, 1] and mask[0].sum() == len(tok.encode(" sat on a mat")) + 1


# -- GAE, KL, GRPO ------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-2, 2), st.floats(-2, 2)), min_size=1, max_size=7),
       st.integers(0, 3), st.integers(0, 3), st.floats(0.5, 1.0), st.floats(0.0, 1.0))
def test_gae_equals_the_slow_textbook_sum(steps, lead, pad, gamma, lam):
    """A response (the mask's run) after ``lead`` prompt positions and before ``pad`` padding."""
    rewards = [r for r, _ in steps]
    values = [v for _, v in steps]
    n = len(steps)
    r = torch.tensor([[*[7.0] * lead, *rewards, *[9.0] * pad]], dtype=torch.float64)
    v = torch.tensor([[*[3.0] * lead, *values, *[5.0] * pad]], dtype=torch.float64)
    mask = torch.tensor([[False] * lead + [True] * n + [False] * pad])
    adv, ret = gae(r, v, mask, gamma=gamma, lam=lam)
    slow = gae_reference(rewards, values, gamma=gamma, lam=lam)
    assert adv[0, lead : lead + n].tolist() == pytest.approx(slow, abs=1e-9)
    assert adv[0, :lead].abs().sum() == 0 and adv[0, lead + n:].abs().sum() == 0
    assert ret[0, lead : lead + n].tolist() == pytest.approx([a + b for a, b in zip(slow, values)])


def test_gae_hand_made_trajectory():
    # gamma = lam = 1: A_t = sum of future rewards - V_t
    adv, _ = gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.2, 0.1]]),
                 torch.tensor([[True, True, True]]), gamma=1.0, lam=1.0)
    assert adv.tolist()[0] == pytest.approx([0.5, 0.8, 0.9])


def test_kl_estimators_are_zero_for_identical_policies_and_k3_never_negative():
    tok = train_tokenizer("word", [TEXT])
    ids, _, _ = _pair_batch(tok)
    a, b = _tiny(tok.vocab_size, seed=0), _tiny(tok.vocab_size, seed=0)
    with torch.no_grad():
        la, lb = token_logprobs(a, ids), token_logprobs(b, ids)
        lc = token_logprobs(_tiny(tok.vocab_size, seed=1), ids)
    for kind in ("k1", "k3"):
        assert torch.equal(kl_estimate(la, lb, kind), torch.zeros_like(la))
    assert bool((kl_estimate(la, lc, "k3") >= 0).all())
    assert float(kl_estimate(la, lc, "k3").abs().sum()) > 0
    with pytest.raises(ConfigError, match="k1 or k3"):
        kl_estimate(la, lb, "k2")


def test_group_advantages_standardise_within_each_group():
    adv = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 2.0]]))
    assert adv[0].tolist() == pytest.approx([0.866, -0.866, -0.866, 0.866], abs=1e-3)
    assert adv[1].tolist() == [0.0] * 4  # nothing to learn from a group that all scored alike


# -- the judge ----------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=2, max_size=6), st.floats(-3, 3))
def test_position_swap_averaging_is_exact_on_a_stub_judge(quality, bias):
    """A stub judge: log P(A) - log P(B) = q(first) - q(second) + a bias towards position A."""
    names = [f"r{i}" for i in range(len(quality))]
    q = dict(zip(names, quality))

    def compare(prompts, firsts, seconds):
        return torch.tensor([q[a] - q[b] + bias for a, b in zip(firsts, seconds)],
                            dtype=torch.float64)

    xs, ys = names[:-1], names[1:]
    v = judge_both_orders(compare, [""] * len(xs), xs, ys)
    assert v.preference.tolist() == pytest.approx([q[x] - q[y] for x, y in zip(xs, ys)],
                                                  abs=1e-12)
    assert v.position_bias.tolist() == pytest.approx([bias] * len(xs), abs=1e-12)


def test_judge_refuses_a_vocabulary_without_a_and_b():
    tok = train_tokenizer("word", [TEXT])  # lower-case words only: no "A", no "B"
    with pytest.raises(TokenizerError, match="no single token for 'A'"):
        Judge(_tiny(tok.vocab_size), tok)


def test_judge_compares_the_letters_next_token_logprobs():
    text = "AB the cat sat: Which response is better? Answer with one letter, A or B.\nPrompt"
    tok = train_tokenizer("char", [text])
    model = _tiny(tok.vocab_size)
    judge = Judge(model, tok)
    ids = judge.question_ids("p", "x", "y")
    lp = model.logprobs(torch.tensor([ids]))[0, -1]
    s = judge.compare(["p"], ["x"], ["y"])
    assert float(s[0]) == pytest.approx(float(lp[judge.a_id] - lp[judge.b_id]), abs=1e-5)


# -- data ---------------------------------------------------------------------------------------
def test_hh_dialogues_split_into_prompt_and_final_replies():
    c = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: and?\n\nAssistant: Sure, here."
    r = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: and?\n\nAssistant: Sorry, no."
    p = split_dialogue_pair(c, r)
    assert p.prompt == "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: and?\n\nAssistant:"
    assert (p.chosen, p.rejected) == (" Sure, here.", " Sorry, no.")
    assert p.prompt + p.chosen == c and p.prompt + p.rejected == r


def test_identical_pairs_are_counted_and_skipped(tmp_path):
    f = tmp_path / "p.jsonl.gz"
    with gzip.open(f, "wt") as fh:
        fh.write(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
        fh.write(json.dumps({"prompt": "q", "chosen": "a", "rejected": "a"}) + "\n")
        fh.write(json.dumps({"chosen": "\n\nHuman: x\n\nAssistant: y",
                             "rejected": "\n\nHuman: x\n\nAssistant: y"}) + "\n")
    rep = ReadReport()
    assert read_preferences(f, rep) == [PreferencePair("q", "a", "b")]
    assert (rep.kept, rep.identical) == (1, 2)
    same = tmp_path / "same.jsonl"
    same.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "a"}) + "\n")
    with pytest.raises(DataError, match="1 had chosen equal to rejected"):
        read_preferences(same)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"chosen": "a"}\n')
    with pytest.raises(DataError, match="'chosen' and 'rejected'"):
        read_preferences(bad)


def test_splits_are_deterministic_and_keep_a_prompt_in_one_split():
    pairs = [PreferencePair(f"prompt {i % 50}", f"a{i}", f"b{i}") for i in range(400)]
    s = split_pairs(pairs)
    assert s == split_pairs(list(reversed(pairs))) or all(
        sorted(map(str, s[k])) == sorted(map(str, split_pairs(list(reversed(pairs)))[k]))
        for k in s)
    where = {p.prompt: k for k, ps in s.items() for p in ps}
    assert all(split_of(p.prompt) == where[p.prompt] for p in pairs)
    assert 0.6 < len(s["train"]) / 400 < 0.95 and split_of("x", seed=1) in s


def test_verifiable_rewards():
    assert parse_reward("contains:Dog")("", "the dog ran") == 1.0
    assert parse_reward("contains:dog")("", "the dogs ran") == 0.0
    assert parse_reward("shorter:3")("", "one two") == 1.0
    assert parse_reward("shorter:3")("", "one two three") == 0.0
    s = parse_reward("sentiment")
    assert s("", "a happy good day") > 0 > s("", "a sad bad day")
    for bad in ("contains:", "shorter:x", "python:os.system", "sentiment:3"):
        with pytest.raises(ConfigError, match="built-in rewards"):
            parse_reward(bad)


@pytest.mark.shared_data
def test_hh_rlhf_file_reads_and_splits():
    if not HH.exists():
        pytest.skip("../shared/data/hh-rlhf is not here")
    rep = ReadReport()
    pairs = read_preferences(HH, rep)
    assert rep.kept + rep.identical == 2312 and rep.kept == len(pairs)
    assert all(p.chosen != p.rejected and p.prompt.endswith("Assistant:") for p in pairs[:200])
    s = split_pairs(pairs)
    assert sum(map(len, s.values())) == len(pairs) and len(s["test"]) > 150
