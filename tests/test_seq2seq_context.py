"""seq2seq ``feed_context=true``: the encoder's final state fed to every decoder step (Cho et al.
2014's decoder), beside the default that only initialises the decoder with it."""

from __future__ import annotations

import pytest
import torch

from _decoding_helpers import assert_one_beam_is_greedy
from chainrule.errors import ConfigError
from chainrule.models.neural import build_neural_model
from chainrule.testing.conditional import copy_task, fit_conditional, token_accuracy


def _model(**kw):
    torch.manual_seed(0)
    kw = {"vocab_size": 12, "n_embd": 6, "n_hidden": 10, "feed_context": True} | kw
    return build_neural_model("seq2seq", **kw).eval()


def _batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(2, 12, (3, 9), generator=g)
    x[:, 0] = 0
    return x, [[3, 4, 5, 6], [7], [8, 9, 10, 11, 2, 3]]


def test_the_output_is_cho_et_al_s_formula():
    """A GRU decoder fed [e_t; c] from s_0 = c, and W_o [s_t; e_t; c], written out by hand with
    torch's own GRU cell on the model's weights."""
    model = _model()
    x, src = _batch()
    with torch.no_grad():
        ids, lengths, mask = model.prepare_source(src, 3)
        c = model.encode(ids, lengths, mask).init[-1]  # (B, H): one layer, unidirectional
        cell = torch.nn.GRUCell(6 + 10, 10)
        for a, b in (("weight_ih", "weight_ih_l0"), ("weight_hh", "weight_hh_l0"),
                     ("bias_ih", "bias_ih_l0"), ("bias_hh", "bias_hh_l0")):
            getattr(cell, a).copy_(getattr(model.decoder, b))
        s, want = c, []
        for t in range(x.shape[1]):
            e = model.tgt_emb(x[:, t])
            s = cell(torch.cat([e, c], -1), s)
            want.append(torch.log_softmax(model.lm_head(torch.cat([s, e, c], -1)), -1))
    assert torch.allclose(model.logprobs(x, src), torch.stack(want, 1), atol=1e-5)


@pytest.mark.parametrize("kw", [
    {},
    {"cell": "lstm", "n_layer": 2},
    {"cell": "rnn", "bidirectional": True},
    {"cell": "lstm", "n_layer": 2, "bidirectional": True},
])
def test_teacher_forcing_equals_step_by_step_decoding(kw):
    model = _model(**kw)
    x, src = _batch()
    full = model.logprobs(x, src)
    lp, state = model.start(x[:, :1], None, src)
    assert torch.allclose(lp, full[:, 0], atol=1e-5)
    for t in range(1, x.shape[1]):
        lp, state = model.step(state, x[:, t])
        assert torch.allclose(lp, full[:, t], atol=1e-5), t
    # prompts of different lengths (packed), then one step each
    lengths = torch.tensor([4, 2, 6])
    lp, state = model.start(x, lengths, src)
    assert torch.allclose(lp, full[torch.arange(3), lengths - 1], atol=1e-5)
    nxt = torch.tensor([5, 6, 7])
    lp, _ = model.step(state, nxt)
    for i, n in enumerate(lengths.tolist()):
        row = torch.cat([x[i, :n], nxt[i : i + 1]])[None]
        assert torch.allclose(lp[i], model.logprobs(row, src[i : i + 1])[0, n], atol=1e-5), i


def test_every_step_reads_the_source_only_with_feed_context():
    """Decode from one source's decoder state while holding another source's memory: the
    default decoder's next step does not look at the memory (s_t carries the whole source); with
    feed_context the step reads c again, so the second source changes it."""
    x, _ = _batch()
    for feed in (False, True):
        model = _model(feed_context=feed)
        _, state = model.start(x[:1, :3], None, [[3, 4]])
        other = model.start(x[:1, :3], None, [[9, 10, 11]])[1].memory
        own, _ = model.step(state, x[:1, 3])
        mixed, _ = model.step(state._replace(memory=other), x[:1, 3])
        assert torch.allclose(own, mixed) is not feed, feed


def test_the_default_is_unchanged_and_old_checkpoints_load(tmp_path):
    from chainrule.models.base import load_model

    plain = _model(feed_context=False)
    assert plain.lm_head.in_features == 10 and plain.decoder.input_size == 6
    plain.save(tmp_path / "old")
    cfg_file = tmp_path / "old" / "config.json"
    import json

    cfg = json.loads(cfg_file.read_text())
    cfg.get("model", cfg).pop("feed_context", None)  # as written before the key existed
    cfg_file.write_text(json.dumps(cfg))
    old = load_model(tmp_path / "old")
    assert old.cfg.feed_context is False
    x, src = _batch()
    assert torch.equal(old.logprobs(x, src), plain.logprobs(x, src))


def test_a_fed_context_checkpoint_round_trips(tmp_path):
    from chainrule.models.base import load_model

    model = _model(cell="gru", n_layer=2, bidirectional=True)
    assert model.lm_head.in_features == 2 * 10 + 6 and model.decoder.input_size == 6 + 10
    model.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.cfg.feed_context is True
    x, src = _batch()
    assert torch.equal(back.logprobs(x, src), model.logprobs(x, src))


def test_feed_context_with_attention_is_refused_with_one_sentence():
    from chainrule.training.config import make_config

    with pytest.raises(ConfigError, match="feed_context=true needs attention=none"):
        build_neural_model("seq2seq", vocab_size=12, feed_context=True, attention="mlp")
    with pytest.raises(ConfigError, match="feed_context=true needs attention=none"):
        make_config("seq2seq", None, ["feed_context=true", "attention=dot"])
    assert make_config("seq2seq", None, ["feed_context=true"]).feed_context is True


def test_the_copy_task_is_learned_and_beam_one_is_greedy():
    torch.set_num_threads(1)
    src, tgt = copy_task(300, 8, 2, 5, seed=0)
    torch.manual_seed(0)
    model = build_neural_model("seq2seq", vocab_size=8, feed_context=True, n_embd=32,
                               n_hidden=64, max_len=16)
    fit_conditional(model, tgt, src, steps=300, lr=5e-3, batch_size=64)
    test_src, test_tgt = copy_task(100, 8, 2, 5, seed=1)  # unseen sentences
    assert token_accuracy(model, test_src, test_tgt) >= 0.9  # no attention: ~97% here
    assert_one_beam_is_greedy(model, test_src[:8], max_new_tokens=8)


def test_the_command_line_trains_and_translates_with_it(tmp_path, capsys):
    import json

    from chainrule.cli import main

    (tmp_path / "src.txt").write_text("ein Hund läuft\neine Katze schläft\n" * 4, "utf-8")
    (tmp_path / "tgt.txt").write_text("a dog runs\na cat sleeps\n" * 4, "utf-8")
    argv = ["--threads", "1", "train", "--family", "seq2seq", "--source",
            str(tmp_path / "src.txt"), "--target", str(tmp_path / "tgt.txt"), "--kind", "char",
            "feed_context=true", "n_embd=8", "n_hidden=12", "max_len=24", "max_iters=5",
            "batch_size=4", "eval_interval=5", "eval_iters=1", "device=cpu"]
    assert main([*argv, "-o", str(tmp_path / "m"), "--json"]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert '"feed_context": true' in json.dumps(config)
    capsys.readouterr()
    assert main(["translate", str(tmp_path / "m"), "--source", str(tmp_path / "src.txt"),
                 "--json", "--beams", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 8
    assert main([*argv, "attention=dot", "-o", str(tmp_path / "m2")]) != 0
    err = capsys.readouterr().err
    assert "feed_context=true needs attention=none" in err and "Traceback" not in err
