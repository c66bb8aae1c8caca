"""Induction heads: the repeated-segment data, the prefix-matching score, attention-only GPT
blocks (``mlp="none"``) and a short end-to-end run of ``chainrule prompt induction``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from chainrule.cli import main
from chainrule.errors import ConfigError
from chainrule.models.neural import build_neural_model
from chainrule.prompting.induction import (
    InductionConfig,
    model_settings,
    param_count,
    phase_change_step,
    prefix_matching,
    repeated_batch,
)


def test_repeated_targets_are_copies_of_the_first_occurrence():
    cfg = InductionConfig()
    x, mask = repeated_batch(cfg, np.random.default_rng(0), 64)
    assert x.shape == (64, cfg.seq_len + 1) and mask.shape == (64, cfg.seq_len)
    assert x.min() >= 2 and x.max() < cfg.vocab + 2
    for row, m in zip(x, mask):
        t = np.flatnonzero(m)  # targets row[t + 1], consecutive, one run per row
        assert len(t) >= cfg.segment[0] - 1 and np.all(np.diff(t) == 1)
        second = row[t[0] : t[-1] + 2]  # the whole second copy (its first token included)
        L = len(second)
        starts = [s for s in range(t[0] - L + 1) if np.array_equal(row[s : s + L], second)]
        assert starts, "the repeated segment occurs earlier in the sequence"


def test_prefix_matching_scores_a_perfect_induction_pattern_one():
    period, T = 5, 15
    maps = torch.zeros(2, 3, T, T)
    maps[..., torch.arange(T), torch.arange(T)] = 1.0  # attend to self everywhere
    q = torch.arange(period, T)
    maps[1, 2, q] = 0.0
    maps[1, 2, q, q - period + 1] = 1.0  # layer 1, head 2: the token after the last occurrence
    scores = prefix_matching(maps, period)
    assert scores.shape == (2, 3)
    assert scores[1, 2] == 1.0 and scores.flatten().argmax() == 1 * 3 + 2
    assert float(scores[0, 0]) == 0.0


def test_attention_only_gpt_has_no_mlp_and_decodes_incrementally():
    cfg = InductionConfig()
    _, kw = model_settings(cfg, "transformer")
    torch.manual_seed(0)
    model = build_neural_model("gpt", vocab_size=cfg.vocab + 2, block_size=cfg.seq_len, **kw)
    names = [n for n, _ in model.named_parameters()]
    assert not any(".mlp." in n or ".ln_2." in n for n in names)
    with_mlp = build_neural_model("gpt", vocab_size=cfg.vocab + 2, block_size=cfg.seq_len,
                                  **{**kw, "mlp": "gelu"})
    assert param_count(with_mlp) > param_count(model)
    x = torch.randint(2, cfg.vocab + 2, (2, 12))
    full = model.logprobs(x)
    lp, state = model.start(x[:, :5], torch.tensor([5, 5]))
    steps = [lp]
    for t in range(5, 12):
        lp, state = model.step(state, x[:, t])
        steps.append(lp)
    assert torch.allclose(torch.stack(steps, 1), full[:, 4:], atol=1e-5)


def test_lstm_is_matched_in_size():
    cfg = InductionConfig()
    fam, kw = model_settings(cfg, "lstm")
    lstm = build_neural_model(fam, vocab_size=cfg.vocab + 2, **kw)
    _, gkw = model_settings(cfg, "transformer")
    gpt = build_neural_model("gpt", vocab_size=cfg.vocab + 2, block_size=cfg.seq_len, **gkw)
    assert abs(param_count(lstm) - param_count(gpt)) / param_count(gpt) < 0.15


def test_phase_change_step_is_the_steepest_drop():
    curve = {"step": [0, 10, 20, 30], "repeated": [4.0, 3.9, 1.0, 0.8]}
    assert phase_change_step(curve) == 20


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="segment lengths"):
        InductionConfig(seq_len=20, segment=(8, 12))


def test_cli_induction_writes_curves_and_the_head(tmp_path, capsys):
    out = tmp_path / "ind"
    code = main(["--threads", "1", "prompt", "induction", "-o", str(out), "--steps", "10",
                 "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["models"]) == {"transformer", "lstm"}
    for r in result["models"].values():
        assert r["curve"]["step"][-1] == 10 and len(r["curve"]["repeated"]) >= 2
    head = result["head"]
    assert 0 <= head["layer"] < 2 and 0 <= head["score"] <= 1
    assert np.array(head["previous_token_scores"]).shape == (2, 4)
    assert json.loads((out / "induction.json").read_text())["uniform_loss"] == \
        pytest.approx(np.log(64))
