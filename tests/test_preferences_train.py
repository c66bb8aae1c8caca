"""Preference learning, end to end on tiny models: GRPO learns to say a word, DPO moves the
policy towards the chosen responses, a reward model learns a verifiable preference, and the
commands (`reward train|score`, `dpo`, `rl`, `prefs label|eval|plot`) run and refuse bad input."""

from __future__ import annotations

import copy
import json
import random

import pytest
import torch

from _preference_helpers import WORDS, tiny_gpt
from chainrule.cli import main
from chainrule.errors import ModelFormatError
from chainrule.evaluation.textscore import load_model_and_tokenizer
from chainrule.models.neural import build_neural_model
from chainrule.preferences import (
    DPOConfig,
    RewardModel,
    RLConfig,
    load_reward_model,
    parse_reward,
    save_reward_model,
    train_dpo,
    train_reward_model,
    train_rl,
)
from chainrule.preferences.data import PreferencePair, encode_pairs
from chainrule.preferences.evaluate import evaluate_policy
from chainrule.preferences.reward_model import evaluate_reward_model
from chainrule.preferences.rollouts import sample_rollout
from chainrule.tokenizers import train_tokenizer

_policy = tiny_gpt


def _pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    """Chosen responses mention the dog, rejected ones do not (a verifiable preference)."""
    rng = random.Random(seed)
    filler = [w for w in WORDS.split() if w != "dog"]
    out = []
    for _ in range(n):
        a = rng.sample(filler, 3)
        b = rng.sample(filler, 3)
        a.insert(rng.randrange(4), "dog")
        out.append(PreferencePair(rng.choice(["the", "a"]), " " + " ".join(a), " " + " ".join(b)))
    return out


def test_grpo_learns_to_say_the_word():
    tok = train_tokenizer("word", [WORDS])
    policy = _policy(tok)
    start = copy.deepcopy(policy)
    reward = parse_reward("contains:dog")
    cfg = RLConfig(algo="grpo", steps=16, prompts_per_step=4, group_size=4, max_new_tokens=6,
                   lr=5e-3, beta=0.0, seed=0)
    hist = train_rl(policy, tok, ["the", "a"], reward, cfg)
    assert len(hist) == 16 and hist[0]["kl"] == pytest.approx(0.0, abs=1e-5)
    ev = evaluate_policy(policy, start, tok, ["the", "a"] * 16, reward, max_new_tokens=6, seed=7)
    assert ev["start_reward"] < 0.6 and ev["reward"] >= 0.9
    assert ev["win_rate"] > 0.6 and ev["kl"] > 0.1


def test_ppo_raises_the_reward_with_a_kl_penalty():
    tok = train_tokenizer("word", [WORDS])
    policy = _policy(tok)
    start = copy.deepcopy(policy)
    reward = parse_reward("contains:dog")
    cfg = RLConfig(algo="ppo", steps=16, prompts_per_step=8, group_size=1, max_new_tokens=6,
                   lr=5e-3, beta=0.01, seed=0)
    hist = train_rl(policy, tok, ["the", "a"], reward, cfg)
    ev = evaluate_policy(policy, start, tok, ["the", "a"] * 16, reward, max_new_tokens=6, seed=7)
    assert ev["reward"] > ev["start_reward"] + 0.2
    assert hist[-1]["kl"] > 0


def test_dpo_moves_the_policy_towards_chosen_and_lora_touches_only_adapters():
    tok = train_tokenizer("word", [WORDS])
    enc = encode_pairs(_pairs(48), tok, bos_id=tok.bos_id, eos_id=tok.eos_id, max_length=32)
    for lora_rank in (0, 4):
        policy = _policy(tok)
        base = {k: v.clone() for k, v in policy.state_dict().items()}
        cfg = DPOConfig(beta=0.5, lr=3e-3 if lora_rank == 0 else 2e-2, epochs=3, batch_size=8,
                        lora_rank=lora_rank)
        hist = train_dpo(policy, enc, cfg, pad_id=tok.eos_id)
        assert hist[0]["reward_accuracy"] <= 0.75 and hist[0]["margin"] == pytest.approx(0, abs=1e-5)
        late = hist[-3:]
        assert min(h["reward_accuracy"] for h in late) >= 0.85
        assert sum(h["margin"] for h in late) / 3 > 0.2
        if lora_rank:
            after = policy.state_dict()
            assert all(torch.equal(after[k], v) for k, v in base.items() if k in after)


def test_reward_model_learns_a_verifiable_preference_and_round_trips(tmp_path):
    tok = train_tokenizer("word", [WORDS])
    body = _policy(tok, n_embd=32)
    body_dir = tmp_path / "body"
    body.save(body_dir)
    tok.save(body_dir / "tokenizer.json")
    rm = RewardModel(body, tok, freeze=False, body_dir=str(body_dir))
    train, held = _pairs(96, seed=1), _pairs(64, seed=2)
    losses = train_reward_model(rm, rm.encode(train, 32), epochs=4, lr=3e-3, batch_size=16)
    assert losses[-1] < losses[0]
    report = evaluate_reward_model(rm, rm.encode(held, 32))
    assert report["accuracy"] > 0.85 and report["interval"][0] < report["accuracy"]
    save_reward_model(rm, tmp_path / "rm")
    again = load_reward_model(tmp_path / "rm")
    texts = [p.chosen for p in held[:5]]
    assert again.score(["the"] * 5, texts) == pytest.approx(rm.score(["the"] * 5, texts), abs=1e-5)


def test_a_frozen_reward_model_names_its_body_and_refuses_a_changed_one(tmp_path):
    tok = train_tokenizer("word", [WORDS])
    body_dir = tmp_path / "body"
    _policy(tok).save(body_dir)
    tok.save(body_dir / "tokenizer.json")
    rm = RewardModel(load_model_and_tokenizer(body_dir)[0], tok, body_dir=str(body_dir))
    train_reward_model(rm, rm.encode(_pairs(32), 32), epochs=2, lr=1e-2)
    save_reward_model(rm, tmp_path / "rm")
    assert not (tmp_path / "rm" / "body").exists()  # the frozen body is named, not copied
    assert load_reward_model(tmp_path / "rm").score(["a"], [" dog"]) == pytest.approx(
        rm.score(["a"], [" dog"]), abs=1e-6)
    _policy(tok, seed=5).save(body_dir)  # another model in the body's place
    with pytest.raises(ModelFormatError, match="has changed since this reward model"):
        load_reward_model(tmp_path / "rm")


def test_a_reward_model_with_another_tokenizer_scores_the_policys_text():
    """Tokenizers differ (word policy, character reward model): the text is re-tokenised."""
    wtok = train_tokenizer("word", [WORDS])
    ctok = train_tokenizer("char", [WORDS])
    torch.manual_seed(3)
    body = build_neural_model("gpt", vocab_size=ctok.vocab_size, bos_id=ctok.bos_id,
                              eos_id=ctok.eos_id, n_layer=1, n_head=2, n_embd=16, block_size=128)
    rm = RewardModel(body, ctok)
    torch.nn.init.normal_(rm.head.weight)
    ro = sample_rollout(_policy(wtok), wtok, ["the", "a"], rm, n=2, max_new_tokens=5, seed=1)
    assert ro.rewards.tolist() == pytest.approx(rm.score(ro.prompts, ro.responses), abs=1e-5)
    assert ro.ids.max() < wtok.vocab_size and len(set(ro.rewards.tolist())) > 1


# -- the commands -------------------------------------------------------------------------------
@pytest.fixture
def setup(tmp_path):
    tok = train_tokenizer("word", [WORDS])
    model_dir = tmp_path / "policy"
    _policy(tok).save(model_dir)
    tok.save(model_dir / "tokenizer.json")
    ctok = train_tokenizer("char", [WORDS + " ABWhich response is better? Answer with one "
                                    "letter, A or B.\nPrompt:Response"])
    torch.manual_seed(1)
    judge_dir = tmp_path / "judge"
    build_neural_model("gpt", vocab_size=ctok.vocab_size, bos_id=ctok.bos_id,
                       eos_id=ctok.eos_id, n_layer=1, n_head=2, n_embd=16,
                       block_size=512).save(judge_dir)
    ctok.save(judge_dir / "tokenizer.json")
    data = tmp_path / "prefs.jsonl"
    rows = [p.__dict__ for p in _pairs(40)] + [{"prompt": "the", "chosen": " a", "rejected": " a"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the\na\n")
    return tmp_path, model_dir, judge_dir, data, prompts


def test_commands_run_end_to_end(setup, capsys):
    tmp, model_dir, judge_dir, data, prompts = setup
    assert main(["reward", "train", str(model_dir), "--data", str(data), "--split", "all",
                 "--eval-split", "", "--epochs", "1", "--max-length", "32", "-o",
                 str(tmp / "rm"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["train_pairs"] == 40 and out["identical_skipped"] == 1
    assert main(["reward", "score", str(tmp / "rm"), "--data", str(data), "--split", "all",
                 "--max-length", "32", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pairs"] == 40
    assert main(["dpo", str(model_dir), "--data", str(data), "--split", "all", "--eval-split",
                 "", "--max-steps", "2", "--max-length", "32", "-o", str(tmp / "dpo")]) == 0
    assert "DPO (sigmoid, beta=0.1): 2 steps on 40 pairs" in capsys.readouterr().out
    assert (tmp / "dpo" / "preference_run.json").exists()
    assert main(["rl", str(model_dir), "--algo", "grpo", "--prompts", str(prompts), "--reward",
                 "contains:dog", "--steps", "2", "--prompts-per-step", "2", "--max-tokens", "4",
                 "-o", str(tmp / "rl"), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)["evaluation"]
    assert {"win_rate", "reward", "kl", "length_tokens"} <= set(ev)
    assert main(["rl", str(model_dir), "--algo", "ppo", "--prompts", str(data), "--reward-model",
                 str(tmp / "rm"), "--steps", "1", "--prompts-per-step", "2", "--group-size", "1",
                 "--max-tokens", "4", "-o", str(tmp / "ppo")]) == 0
    assert main(["prefs", "plot", str(tmp / "rl"), str(tmp / "ppo"), "-o",
                 str(tmp / "kl.png")]) == 0
    assert (tmp / "kl.png").stat().st_size > 0
    assert "win rate over the start" in capsys.readouterr().out
    assert main(["prefs", "label", str(model_dir), "--judge", str(judge_dir), "--prompts",
                 str(prompts), "--reward", "contains:dog", "--max-tokens", "5", "-o",
                 str(tmp / "ai.jsonl"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    labelled = [json.loads(x) for x in (tmp / "ai.jsonl").read_text().splitlines()]
    assert len(labelled) == rep["pairs"] and all(r["chosen"] != r["rejected"] for r in labelled)
    assert main(["prefs", "eval", str(tmp / "rl"), "--start", str(model_dir), "--prompts",
                 str(prompts), "--reward", "shorter:3", "--judge", str(judge_dir), "--json"]) == 0
    assert "judge_win_rate" in json.loads(capsys.readouterr().out)


def test_commands_refuse_bad_input_with_one_sentence(setup, capsys):
    tmp, model_dir, _judge, _data, prompts = setup
    base = ["rl", str(model_dir), "--prompts", str(prompts), "-o", str(tmp / "x")]
    assert main(base) == 2
    assert "exactly one reward" in capsys.readouterr().err
    assert main([*base, "--reward", "python:evil"]) == 2
    assert "built-in rewards are" in capsys.readouterr().err
    assert main([*base, "--reward", "contains:dog", "--group-size", "1"]) == 2
    assert "group_size must be >= 2" in capsys.readouterr().err
    # a judge whose vocabulary has no "A"/"B" (the word-level policy's own)
    assert main(["prefs", "label", str(model_dir), "--judge", str(model_dir), "--prompts",
                 str(prompts), "-o", str(tmp / "ai.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "no single token for 'A'" in err and "Traceback" not in err
    same = tmp / "same.jsonl"
    same.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "a"}) + "\n")
    assert main(["dpo", str(model_dir), "--data", str(same), "-o", str(tmp / "d")]) == 2
    assert "chosen equal to rejected" in capsys.readouterr().err
