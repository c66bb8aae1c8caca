"""The training engine: configuration, schedule, batches, checkpoints, resume, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule.data import split_text
from chainrule.errors import ConfigError, DataError, ModelFormatError, TrainingError
from chainrule.training import checkpoint as ckpt_io
from chainrule.training.config import (
    FIELD_TYPES,
    TrainConfig,
    load_preset,
    make_config,
    model_key_types,
    parse_overrides,
)
from chainrule.training.data import StreamSampler, WindowSampler
from chainrule.training.loop import default_model_factory, get_lr, make_optimizer, train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CPU = torch.device("cpu")


def toy_ids(n: int = 3000, vocab: int = 11, seed: int = 0) -> np.ndarray:
    """A learnable toy stream: mostly counting upwards mod ``vocab``."""
    rng = np.random.default_rng(seed)
    ids = np.empty(n, dtype=np.int32)
    ids[0] = 0
    for i in range(1, n):
        ids[i] = (ids[i - 1] + 1) % vocab if rng.random() < 0.9 else rng.integers(vocab)
    return ids


def tiny(family: str = "gpt", **kw) -> TrainConfig:
    base = {
        "n_layer": 1,
        "n_head": 2,
        "n_embd": 16,
        "n_hidden": 16,
        "block_size": 8,
        "batch_size": 4,
        "max_iters": 20,
        "eval_interval": 10,
        "eval_iters": 2,
        "log_interval": 5,
        "warmup_iters": 2,
        "lr_decay_iters": 20,
        "learning_rate": 1e-2,
        "min_lr": 1e-3,
        "device": "cpu",
        "seed": 3,
    }
    base.update(kw)
    keys = {**FIELD_TYPES, **model_key_types(family)}  # each family takes its own keys
    return make_config(family, overrides={k: v for k, v in base.items() if k in keys})


def run(cfg, out, **kw):
    ids = toy_ids()
    return train(cfg, ids[:2500], ids[2500:], out, vocab_size=11, progress=False, plot=False, **kw)


# -- configuration -----------------------------------------------------------------------------
def test_presets_are_the_issues_numbers():
    p = load_preset("shakespeare-char")
    assert (p["n_layer"], p["n_head"], p["n_embd"], p["block_size"], p["batch_size"]) == (
        6,
        6,
        384,
        256,
        64,
    )
    assert (p["dropout"], p["learning_rate"], p["max_iters"]) == (0.2, 1e-3, 5000)
    c = load_preset("shakespeare-char-cpu")
    assert (c["n_layer"], c["n_head"], c["n_embd"], c["block_size"], c["batch_size"]) == (
        4,
        4,
        128,
        64,
        12,
    )
    assert (c["max_iters"], c["learning_rate"], c["dropout"], c["eval_iters"]) == (
        2000,
        2e-3,  # twice nanoGPT's 1e-3: reaches <= 1.89 in 2,000 steps (bench/RESULTS.md)
        0.0,
        20,
    )
    for name in ("brown-ffnn", "brown-lstm", "brown-gpt"):
        cfg = make_config(name.split("-")[1], name)
        assert cfg.boundaries == "lines" and cfg.tokenizer_kind == "word"


def test_overrides_are_typed_and_win_over_the_preset():
    cfg = make_config("gpt", "shakespeare-char", ["max_iters=5e3", "dropout=0", "bias=true"])
    assert cfg.max_iters == 5000 and cfg.dropout == 0.0 and cfg.bias is True
    assert parse_overrides(["learning_rate=3e-4"]) == {"learning_rate": 3e-4}


def test_config_problems_are_collected_together():
    with pytest.raises(ConfigError) as e:
        make_config("gpt", None, ["max_iter=10", "n_layer=two", "dropout=1.5", "n_head=0"])
    problems = e.value.problems
    assert len(problems) == 4
    assert "did you mean max_iters" in problems[0] and "valid keys:" in problems[0]
    assert any("n_layer must be an integer" in p for p in problems)
    with pytest.raises(ConfigError, match="made for --family lstm"):
        make_config("gpt", "brown-lstm")
    with pytest.raises(ConfigError, match="unknown preset"):
        make_config("gpt", "nope")


def test_config_is_frozen():
    cfg = TrainConfig()
    with pytest.raises(AttributeError):
        cfg.max_iters = 3  # type: ignore[misc]


def test_learning_rate_schedule_by_hand():
    cfg = TrainConfig(learning_rate=1.0, min_lr=0.1, warmup_iters=4, lr_decay_iters=14)
    assert get_lr(0, cfg) == pytest.approx(1 / 5)  # (0 + 1) / (4 + 1)
    assert get_lr(3, cfg) == pytest.approx(4 / 5)
    assert get_lr(4, cfg) == pytest.approx(1.0)  # cosine starts at the peak
    assert get_lr(9, cfg) == pytest.approx(0.55)  # half way: min + (max - min) / 2
    assert get_lr(14, cfg) == pytest.approx(0.1)
    assert get_lr(100, cfg) == 0.1


# -- data --------------------------------------------------------------------------------------
def test_split_like_nanogpt():
    assert split_text("0123456789", [0.9, 0.1]) == ["012345678", "9"]
    assert split_text("a\nb\nc\nd\n", [0.75, 0.25], by="lines") == ["a\nb\nc\n", "d\n"]


@pytest.mark.shared_data
def test_tiny_shakespeare_split_counts():
    path = SHARED / "tinyshakespeare" / "input.txt"
    if not path.exists():
        pytest.skip("../shared/data is absent")
    train_text, val_text = split_text(path.read_text(encoding="utf-8"), [0.9, 0.1])
    assert (len(train_text), len(val_text)) == (1_003_854, 111_540)


def test_window_batches_depend_only_on_seed_and_step():
    ids = np.arange(1000, dtype=np.int32)
    a = WindowSampler(ids, 4, 16, seed=1, device=CPU)
    b = WindowSampler(ids, 4, 16, seed=1, device=CPU)
    b.batch(99, 0)  # drawing other batches first changes nothing
    assert torch.equal(a.batch(7, 1).x, b.batch(7, 1).x)
    assert not torch.equal(a.batch(7, 0).x, a.batch(7, 1).x)
    batch = a.batch(3, 0)
    assert torch.equal(batch.x[:, 1:], batch.y[:, :-1])  # targets are inputs shifted by one


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(200, 600),
    batch=st.integers(1, 4),
    block=st.integers(1, 9),
    micros=st.integers(1, 3),
)
def test_streams_continue_where_the_last_batch_stopped(n, batch, block, micros):
    ids = np.arange(n, dtype=np.int32)
    s = StreamSampler(ids, batch, block, micro_batches=micros, device=CPU)
    for step in range(2 * s.steps_per_epoch):
        for m in range(micros):
            this, nxt = s.batch(step, m), s.batch(step + 1, m)
            assert this.reset == (step % s.steps_per_epoch == 0)
            if not nxt.reset:  # each row reads on from where it stopped
                assert torch.equal(nxt.x[:, 0], this.y[:, -1])


def test_corpus_shorter_than_one_batch():
    with pytest.raises(DataError, match="fewer than the 9 one batch needs"):
        WindowSampler(np.arange(5, dtype=np.int32), 2, 8, seed=0, device=CPU)


# -- optimiser ---------------------------------------------------------------------------------
def test_optimizer_groups_decay_only_matrices():
    model = default_model_factory(tiny(), 11, 0, 1)
    opt = make_optimizer(model, tiny(weight_decay=0.3), CPU)
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.3 for p in g["params"]}
    for p in model.parameters():
        assert (id(p) in decay) == (p.dim() >= 2)
    assert opt.defaults.get("fused") or opt.defaults.get("foreach")


# -- training, checkpoints, resume -------------------------------------------------------------
def test_training_lowers_loss_and_writes_the_model_directory(tmp_path):
    from chainrule.models.base import load_model

    out = tmp_path / "m"
    s = run(tiny(), out)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("step" in r for r in lines)
    evals = [r for r in lines if "val_loss" in r]
    assert [r["step"] for r in evals] == [0, 10, 20]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.3
    assert s["best_val_loss"] == min(r["val_loss"] for r in evals)
    for name in ("config.json", "model.safetensors"):
        assert (out / name).exists() and (out / "last" / name).exists()
    for name in ("optimizer.safetensors", "train_state.json", "rng_state.safetensors"):
        assert (out / "last" / name).exists()
    model = load_model(out)  # the best model, an ordinary model directory
    assert model.family == "gpt"


FAMILIES = ["gpt", "rnn", "lstm", "ffnn"]


def _family_or_skip(name: str) -> None:
    try:
        from chainrule.models.base import get_family

        get_family(name)
    except ModelFormatError:
        pytest.skip(f"family {name} is not available yet")


@pytest.mark.parametrize("family", FAMILIES)
def test_resume_equals_an_uninterrupted_run(tmp_path, family):
    """Stop at step 10, resume to 20: same losses and weights as one run to 20 (with dropout,
    so the RNG states must come back, and carried hidden state for the recurrent families)."""
    _family_or_skip(family)
    cfg = tiny(family, dropout=0.1)
    full = run(cfg, tmp_path / "full")
    run(cfg.replace(max_iters=10), tmp_path / "part")
    resumed = run(cfg, tmp_path / "part", resume=True)
    assert resumed["last_loss"] == full["last_loss"]
    assert resumed["final_val_loss"] == full["final_val_loss"]
    a = ckpt_io.read_safetensors(tmp_path / "full" / "last" / "model.safetensors")
    b = ckpt_io.read_safetensors(tmp_path / "part" / "last" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(x)["step"] for x in (tmp_path / "part" / "metrics.jsonl").open()]
    assert steps == sorted(steps)  # no step logged twice


def test_resume_refuses_another_family_and_unknown_versions(tmp_path):
    run(tiny(max_iters=10), tmp_path / "m")
    with pytest.raises(ModelFormatError, match="not 'rnn'"):
        run(tiny("rnn"), tmp_path / "m", resume=True)
    state_path = tmp_path / "m" / "last" / "train_state.json"
    state = json.loads(state_path.read_text())
    state["format_version"] = 99
    state_path.write_text(json.dumps(state))
    with pytest.raises(ModelFormatError, match="format version 99"):
        run(tiny(), tmp_path / "m", resume=True)


def test_a_new_run_does_not_overwrite_a_checkpoint(tmp_path):
    run(tiny(max_iters=5), tmp_path / "m")
    with pytest.raises(ConfigError, match="--resume, resume=True"):
        run(tiny(max_iters=5), tmp_path / "m")


def test_overwrite_starts_over_and_train_returns_the_saved_model(tmp_path):
    from chainrule.models import load_model

    first = run(tiny(max_iters=5), tmp_path / "m")
    second = run(tiny(max_iters=3), tmp_path / "m", overwrite=True)
    assert second["steps"] == 3 and first["steps"] == 5
    records = [json.loads(x) for x in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) == 3  # the first run's history is gone
    saved = load_model(tmp_path / "m")
    for name, tensor in saved.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name])
    assert not second.model.training and json.loads(json.dumps(second))["steps"] == 3


def test_early_stopping_keeps_the_best(tmp_path):
    s = run(tiny(learning_rate=0.0, min_lr=0.0, patience=2, max_iters=100), tmp_path / "m")
    # nothing can improve with a zero learning rate: stop after two evaluations past step 0
    assert s["stopped_early"] and s["steps"] == 20 and s["best_step"] == 0


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    calls = {"n": 0}

    def factory(cfg, vocab, bos, eos):
        model = default_model_factory(cfg, vocab, bos, eos)
        forward = model.forward

        def poisoned(idx, state=None):
            logits, state = forward(idx, state)
            if torch.is_grad_enabled():  # training forwards only (evaluation runs without)
                calls["n"] += 1
                if calls["n"] >= 14:  # step 13 is the 14th
                    logits = logits * float("nan")
            return logits, state

        model.forward = poisoned
        return model

    with pytest.raises(TrainingError, match=r"at step 13.*step 10"):
        run(tiny(), tmp_path / "m", model_factory=factory)
    state = json.loads((tmp_path / "m" / "last" / "train_state.json").read_text())
    assert state["step"] == 10


def test_cuda_asked_for_but_absent():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="no CUDA"):
        run(tiny(device="cuda"), "unused")


def test_checkpoint_state_round_trip():
    from chainrule.training.checkpoint import flatten_tensors, unflatten_tensors

    state = (torch.randn(2, 3), [torch.zeros(1), (torch.ones(2),)])
    flat: dict = {}
    spec = flatten_tensors(state, "c", flat)
    back = unflatten_tensors(json.loads(json.dumps(spec)), "c", flat)
    assert torch.equal(back[0], state[0]) and torch.equal(back[1][1][0], state[1][1][0])
    assert isinstance(back, tuple) and isinstance(back[1], list)


def test_rng_states_round_trip():
    import random

    tensors, scalars = ckpt_io.rng_to_files()
    expect = (torch.rand(3), np.random.rand(), random.random())
    ckpt_io.rng_from_files(tensors, json.loads(json.dumps(scalars)))
    assert torch.equal(torch.rand(3), expect[0])
    assert np.random.rand() == expect[1] and random.random() == expect[2]


def test_losses_are_nats_per_token(tmp_path):
    """At initialisation a model knows nothing: its loss is close to log V nats."""
    s = run(tiny(max_iters=0), tmp_path / "m")
    assert s["best_val_loss"] == pytest.approx(math.log(11), abs=0.3)


# -- the command line: one sentence, exit 2, no traceback --------------------------------------
def _cli(capsys, *argv):
    from chainrule.cli import main

    code = main(["train", *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_cli_bad_input(tmp_path, capsys):
    text = tmp_path / "c.txt"
    text.write_text("to be or not to be\n" * 3, encoding="utf-8")
    out = str(tmp_path / "m")
    code, err = _cli(capsys, "--family", "gpt", "max_iter=3", "n_head=x", str(text), "-o", out)
    assert code == 2 and "2 configuration problems" in err and "max_iters" in err
    code, err = _cli(capsys, "--family", "gpt", str(text), "-o", out, "--resume")
    assert code == 2 and "holds no training checkpoint" in err
    if not torch.cuda.is_available():
        code, err = _cli(capsys, "--family", "gpt", str(text), "-o", out, "--device", "cuda")
        assert code == 2 and "no CUDA" in err
    pytest.importorskip("chainrule.tokenizers.char")
    code, err = _cli(capsys, "--family", "gpt", "--kind", "char", str(text), "-o", out)
    assert code == 2 and "fewer than the 65 one batch needs" in err


def test_cli_trains_and_prints_json(tmp_path, capsys):
    pytest.importorskip("chainrule.tokenizers.char")
    from chainrule.cli import main

    text = tmp_path / "c.txt"
    text.write_text("".join(f"line {i % 7} of the corpus\n" for i in range(300)), "utf-8")
    code = main(
        [
            "train",
            "--family",
            "gpt",
            "--preset",
            "shakespeare-char-cpu",
            "n_layer=1",
            "n_embd=16",
            "n_head=2",
            "block_size=16",
            "max_iters=10",
            "eval_interval=5",
            "eval_iters=2",
            str(text),
            "-o",
            str(tmp_path / "m"),
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 10 and summary["val_tokens"] > 0
    assert (tmp_path / "m" / "tokenizer.json").exists()


def test_the_schedule_follows_an_overridden_max_iters():
    """max_iters=200 on a 2,000-step plan: warm-up, decay and evaluation scale with it; keys the
    user sets stay; a warm-up that cannot fit is refused; a resumed run keeps its schedule."""
    cfg = make_config("gpt", "shakespeare-char-cpu", ["max_iters=200"])
    assert (cfg.warmup_iters, cfg.lr_decay_iters, cfg.eval_interval) == (10, 200, 25)
    cfg = make_config("gpt", None, ["max_iters=200", "eval_interval=50"])
    assert (cfg.warmup_iters, cfg.lr_decay_iters, cfg.eval_interval) == (10, 200, 50)
    assert get_lr(199, cfg) < get_lr(100, cfg) < cfg.learning_rate  # the decay happens
    with pytest.raises(ConfigError, match="warmup_iters=300 ends after the decay"):
        make_config("gpt", None, ["max_iters=200", "warmup_iters=300"])
    resumed = make_config("gpt", None, ["max_iters=400"], base=cfg.to_dict())
    assert (resumed.lr_decay_iters, resumed.eval_interval) == (200, 50)


def test_a_run_whose_stderr_is_not_a_terminal_still_logs_its_evaluations(tmp_path, capsys):
    """A log file or a notebook gets the evaluation lines (plain, through the `chainrule`
    logger); -q silences them."""
    from chainrule.cli import main

    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat .\n" * 50)
    keys = ["max_iters=4", "eval_interval=2", "eval_iters=1", "block_size=8", "batch_size=2",
            "n_layer=1", "n_embd=8", "n_head=2"]
    assert main(["train", "--family", "gpt", "-o", str(tmp_path / "a"), str(corpus), *keys]) == 0
    err = capsys.readouterr().err
    assert [ln.split(":")[0] for ln in err.splitlines() if ln.startswith("step ")] == [
        "step 0", "step 2", "step 4"]
    assert "schedule: 4 steps" in err
    assert main(["-q", "train", "--family", "gpt", "-o", str(tmp_path / "b"), str(corpus),
                 *keys]) == 0
    assert "step " not in capsys.readouterr().err
