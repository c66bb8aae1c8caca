"""A frozen reward model's features (pooling, length-sorted batches, the chunked cache) and its
logistic-regression head (standardised, L2 chosen on validation), on tiny models."""

from __future__ import annotations

import json
import random

import pytest
import torch
import torch.nn.functional as F

from _preference_helpers import WORDS, tiny_gpt, word_tokenizer
from chainrule.cli import main
from chainrule.cli.preferences import POOLINGS as CLI_POOLINGS
from chainrule.errors import ConfigError
from chainrule.fileio import read_safetensors
from chainrule.preferences import RewardModel, load_reward_model, save_reward_model
from chainrule.preferences.data import PreferencePair, pad_batch
from chainrule.preferences.reward_model import evaluate_reward_model
from chainrule.preferences.rm_features import (
    POOLINGS,
    fit_difference_head,
    pair_features,
    pool_hidden,
    row_features,
    select_l2,
    train_reward_head,
)


def _body(tok, seed: int = 0):
    return tiny_gpt(tok, seed=seed, n_embd=16)


def _pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    """Varied prompts; the chosen response mentions the dog, the rejected one does not."""
    rng = random.Random(seed)
    filler = [w for w in WORDS.split() if w != "dog"]
    out = []
    for _ in range(n):
        a, b = rng.sample(filler, rng.randint(1, 5)), rng.sample(filler, rng.randint(1, 5))
        a.insert(rng.randrange(len(a) + 1), "dog")
        out.append(PreferencePair(" ".join(rng.sample(filler, 3)), " " + " ".join(a),
                                  " " + " ".join(b)))
    return out


def test_pooling_on_a_hand_made_batch():
    h = torch.arange(24, dtype=torch.float32).view(2, 3, 4)  # (B=2, T=3, C=4)
    lengths = torch.tensor([3, 2])
    mask = torch.tensor([[False, True, True], [False, False, False]])
    last = torch.stack([h[0, 2], h[1, 1]])
    assert torch.equal(pool_hidden(h, lengths, None, "last"), last)
    mean = pool_hidden(h, lengths, mask, "mean")
    assert torch.equal(mean[0], (h[0, 1] + h[0, 2]) / 2)
    assert torch.equal(mean[1], h[1, 1])  # an empty mask falls back to the last token
    assert torch.equal(pool_hidden(h, lengths, mask, "last+mean"), torch.cat([last, mean], -1))
    with pytest.raises(ConfigError, match="needs the response mask"):
        pool_hidden(h, lengths, None, "mean")
    assert CLI_POOLINGS == POOLINGS


@pytest.mark.parametrize("pooling", POOLINGS)
def test_length_sorted_batches_equal_one_row_at_a_time(pooling):
    tok = word_tokenizer()
    rm = RewardModel(_body(tok), tok, pooling=pooling)
    enc = rm.encode(_pairs(13), 32)
    fc, fr = pair_features(rm, enc, batch_size=4, chunk=6)
    for i, e in enumerate(enc):
        for row, mask, got in ((e.chosen, e.chosen_mask, fc[i]), (e.rejected, e.rejected_mask,
                                                                    fr[i])):
            ids, m, lengths = pad_batch([row], [mask], tok.eos_id)
            with torch.no_grad():
                want = rm.features(ids, lengths, m)[0]
            assert torch.allclose(got, want, atol=1e-5)
    # the model's own scores agree with its head on these features
    torch.nn.init.normal_(rm.head.weight)
    rc = rm.score_rows([e.chosen for e in enc], 5, [e.chosen_mask for e in enc])
    assert torch.allclose(rc, rm.head(fc).squeeze(-1).detach(), atol=1e-5)


def test_bf16_features_are_close_to_float32():
    tok = word_tokenizer()
    rm = RewardModel(_body(tok), tok, pooling="mean")
    enc = rm.encode(_pairs(6), 32)
    a, _ = pair_features(rm, enc)
    b, _ = pair_features(rm, enc, bf16=True)
    assert not torch.equal(a, b) and torch.allclose(a, b, atol=0.1, rtol=0.05)


def test_the_feature_cache_resumes_and_is_keyed_by_content(tmp_path):
    tok = word_tokenizer()
    rm = RewardModel(_body(tok), tok, pooling="last+mean")
    enc = rm.encode(_pairs(10), 32)
    rows, masks = [e.chosen for e in enc], [e.chosen_mask for e in enc]
    calls = []
    real = rm.features

    def counting(ids, lengths, mask=None):
        calls.append(len(ids))
        return real(ids, lengths, mask)

    rm.features = counting
    first = row_features(rm, rows, masks, batch_size=2, chunk=4, cache_dir=tmp_path)
    chunks = sorted(tmp_path.glob("*.safetensors"))
    assert len(chunks) == 3 and sum(calls) == 10
    calls.clear()
    assert torch.equal(row_features(rm, rows, masks, batch_size=2, chunk=4, cache_dir=tmp_path),
                       first) and not calls  # all from the cache
    missing = read_safetensors(chunks[0])["features"].shape[0]
    chunks[0].unlink()  # an interrupted run: one chunk missing, only it is recomputed
    assert torch.equal(row_features(rm, rows, masks, batch_size=2, chunk=4, cache_dir=tmp_path),
                       first) and sum(calls) == missing
    calls.clear()
    other = RewardModel(_body(tok, seed=1), tok, pooling="last+mean")  # other weights: new keys
    row_features(other, rows, masks, chunk=4, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 6


def test_the_difference_head_solves_its_regularised_problem():
    g = torch.Generator().manual_seed(0)
    fc = torch.randn(80, 5, generator=g) * torch.tensor([1.0, 10.0, 0.1, 1.0, 3.0]) + 2.0
    fr = torch.randn(80, 5, generator=g) * torch.tensor([1.0, 10.0, 0.1, 1.0, 3.0]) + 2.0
    fc[:, 0] += 1.0  # dimension 0 carries the preference
    l2 = 0.05
    w, b = fit_difference_head(fc, fr, l2)
    d = (fc - fr).double()
    scale = d.std(0, unbiased=False)
    v = (w.double() * scale).requires_grad_(True)  # the weights in standardised units
    loss = F.softplus(-(d / scale) @ v).mean() + l2 * (v * v).sum()
    (grad,) = torch.autograd.grad(loss, v)
    assert grad.abs().max() < 1e-5  # a stationary point of a convex problem: the optimum
    assert w[0] > 0 and int(((fc - fr) @ w > 0).sum()) > 50
    mu = torch.cat([fc, fr]).mean(0)
    assert float(mu @ w + b) == pytest.approx(0.0, abs=1e-4)  # the mean feature scores 0
    big, _ = fit_difference_head(fc, fr, 100.0)
    assert big.norm() < 0.05 * w.norm()  # a strong penalty shrinks the weights


def test_select_l2_picks_the_lowest_validation_loss():
    g = torch.Generator().manual_seed(1)
    tr = (torch.randn(40, 8, generator=g) + 0.3, torch.randn(40, 8, generator=g))
    va = (torch.randn(40, 8, generator=g) + 0.3, torch.randn(40, 8, generator=g))
    grid = (1e-3, 0.1, 10.0)
    best, rows = select_l2(tr, va, grid)
    assert [r["l2"] for r in rows] == list(grid)
    for r in rows:
        w, _ = fit_difference_head(*tr, r["l2"])
        assert r["validation_loss"] == pytest.approx(
            float(F.softplus(-((va[0] - va[1]) @ w)).mean()), abs=1e-6)
    assert best == min(rows, key=lambda r: r["validation_loss"])["l2"]


def test_a_logistic_head_learns_the_preference_and_round_trips(tmp_path):
    tok = word_tokenizer()
    body_dir = tmp_path / "body"
    _body(tok).save(body_dir)
    tok.save(body_dir / "tokenizer.json")
    from chainrule.evaluation.textscore import load_model_and_tokenizer

    rm = RewardModel(load_model_and_tokenizer(body_dir)[0], tok, body_dir=str(body_dir),
                     pooling="mean")
    train, val, held = (rm.encode(_pairs(n, seed=s), 32) for n, s in ((120, 1), (40, 2), (60, 3)))
    rep = train_reward_head(rm, train, validation=val, l2="auto", cache_dir=tmp_path / "cache")
    assert rep["l2"] in [r["l2"] for r in rep["l2_grid"]]
    assert evaluate_reward_model(rm, held)["accuracy"] > 0.85
    save_reward_model(rm, tmp_path / "rm")
    again = load_reward_model(tmp_path / "rm")
    assert again.pooling == "mean"
    texts = [" the dog ran", " a red box"]
    assert again.score(["the cat"] * 2, texts) == pytest.approx(rm.score(["the cat"] * 2, texts),
                                                                abs=1e-5)
    with pytest.raises(ConfigError, match="validation split"):
        train_reward_head(rm, train, l2="auto")
    lora = RewardModel(_body(tok), tok, freeze=False)
    with pytest.raises(ConfigError, match="frozen body"):
        train_reward_head(lora, train, l2=0.1)


def test_reward_train_command_with_pooling_and_a_chosen_penalty(tmp_path, capsys):
    tok = word_tokenizer()
    body_dir = tmp_path / "body"
    _body(tok).save(body_dir)
    tok.save(body_dir / "tokenizer.json")
    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps(p.__dict__) + "\n" for p in _pairs(200, seed=4)))
    args = ["reward", "train", str(body_dir), "--data", str(data), "--max-length", "32",
            "--pooling", "last+mean", "--bf16", "--feature-cache", str(tmp_path / "cache")]
    assert main([*args, "--l2", "auto", "-o", str(tmp_path / "rm"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pooling"] == "last+mean" and len(out["head"]["l2_grid"]) > 1
    assert out["held_out"]["accuracy"] > 0.8 and out["train_pairs"] > 100
    assert main(["reward", "score", str(tmp_path / "rm"), "--data", str(data), "--max-length",
                 "32", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)  # fp32 scoring of a head fitted on bf16 features
    assert scored["pairs"] == out["held_out"]["pairs"]
    assert abs(scored["accuracy"] - out["held_out"]["accuracy"]) < 0.1
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--l2", "lots", "-o", str(tmp_path / "x")])
    assert exit_.value.code == 2
    assert "--l2 takes a number >= 0 or 'auto'" in capsys.readouterr().err
    assert main([*args, "--l2", "auto", "--select-split", "test", "-o", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "must differ from the training and held-out splits" in err and "Traceback" not in err


def test_a_policy_against_itself_wins_half_with_its_wilson_interval():
    from chainrule.preferences.evaluate import evaluate_policy
    from chainrule.preferences.reward_model import wilson_interval
    from chainrule.preferences.rewards import parse_reward

    tok = word_tokenizer()
    policy = _body(tok)
    ev = evaluate_policy(policy, policy, tok, ["the cat", "a dog", "the sun", "a box"],
                         parse_reward("contains:dog"), max_new_tokens=4, seed=3)
    assert ev["win_rate"] == 0.5 and ev["kl"] == pytest.approx(0.0, abs=1e-6)
    assert ev["win_interval"] == pytest.approx(list(wilson_interval(2, 4)))
