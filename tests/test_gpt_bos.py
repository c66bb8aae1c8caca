"""``mask_at_bos`` (gpt): a training window is read as its sentences, each from its own ``<s>``
at position 0, which is how the scorer (eval ppl, surprisal, the ladder) reads every sentence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chainrule.errors import ConfigError
from chainrule.models.configs import GPTConfig
from chainrule.models.gpt import GPT
from chainrule.models.scoring import score_sequences
from chainrule.training import checkpoint as ckpt_io
from chainrule.training.config import make_config
from chainrule.training.data import EvalSampler, WindowSampler, bos_segments
from chainrule.training.loop import train
from chainrule.training.objectives import NextTokenCE
from chainrule.training.run_evaluation import _train_batch

BOS, EOS = 1, 2
CPU = torch.device("cpu")


def test_segments_by_hand():
    x = torch.tensor([[7, 8, BOS, 5, 6, EOS, BOS, 9],
                      [BOS, 5, EOS, BOS, BOS, 4, 4, 4]])
    mask, pos = bos_segments(x, BOS)
    assert pos.tolist() == [[0, 1, 0, 1, 2, 3, 0, 1], [0, 1, 2, 0, 0, 1, 2, 3]]
    m = mask[:, 0].int().tolist()
    assert m[0][1] == [1, 1, 0, 0, 0, 0, 0, 0]  # the fragment before the first <s>
    assert m[0][5] == [0, 0, 1, 1, 1, 1, 0, 0]  # </s> sees its sentence from <s>
    assert m[0][7] == [0, 0, 0, 0, 0, 0, 1, 1]
    assert m[1][4] == [0, 0, 0, 0, 1, 0, 0, 0]  # an empty sentence: <s> right after <s>
    # no <s>: the ordinary causal mask and positions
    mask, pos = bos_segments(torch.tensor([[3, 4, 5]]), BOS)
    assert torch.equal(mask[0, 0], torch.ones(3, 3, dtype=torch.bool).tril())
    assert pos.tolist() == [[0, 1, 2]]


def _gpt(positions: str) -> GPT:
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=12, bos_id=BOS, eos_id=EOS, block_size=24, n_layer=2, n_head=2,
                    n_embd=16, dropout=0.0, positions=positions)
    return GPT(cfg).eval()


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_a_masked_window_predicts_each_sentence_as_the_scorer_does(positions):
    """The training loss sees, at every target of a sentence inside a window, the log-prob
    the scorer gives that target when it scores the sentence alone from <s>."""
    model = _gpt(positions)
    sents = [[BOS, 5, 6, 7, EOS], [BOS, 8, EOS], [BOS, 4, 9, 10, 11, 3, EOS]]
    window = torch.tensor([[9, 3] + [t for s in sents for t in s]])  # a fragment first
    mask, pos = bos_segments(window, BOS)
    with torch.no_grad():
        lp = model(window, attn_mask=mask, positions=pos)[0].log_softmax(-1)[0]
        plain = model(window)[0].log_softmax(-1)[0]
    scored = score_sequences(model, sents)
    at = 2
    for s, want in zip(sents, scored):
        got = [lp[at + i, s[i + 1]].item() for i in range(len(s) - 1)]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        at += len(s)
    # without the mask the later sentences see the earlier ones: not what is scored
    later = [plain[2 + 5 + i, sents[1][i + 1]].item() for i in range(2)]
    assert np.abs(np.array(later) - scored[1]).max() > 1e-3


def test_samplers_carry_the_mask_only_when_asked_and_stay_pure():
    ids = np.array([BOS, 5, 6, EOS, BOS, 7, EOS] * 30, dtype=np.int32)
    plain = WindowSampler(ids, 4, 8, seed=3, device=CPU)
    masked = WindowSampler(ids, 4, 8, seed=3, device=CPU, bos_id=BOS)
    a, b, again = plain.batch(5, 0), masked.batch(5, 0), masked.batch(5, 0)
    assert a.attn_mask is None and a.positions is None
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)  # the same windows
    assert torch.equal(b.attn_mask, again.attn_mask) and torch.equal(b.positions, again.positions)
    ref_mask, ref_pos = bos_segments(b.x, BOS)
    assert torch.equal(b.attn_mask, ref_mask) and torch.equal(b.positions, ref_pos)
    tb = _train_batch(b, None)  # what the objective gets
    assert torch.equal(tb.attn_mask, ref_mask) and torch.equal(tb.positions, ref_pos)
    ev = EvalSampler(ids, 4, 8, 3, CPU, "validation corpus", bos_id=BOS).batch(0, 0)
    assert torch.equal(ev.positions, bos_segments(ev.x, BOS)[1])
    # and the loss the loop computes uses them: it differs from the unmasked loss
    model = _gpt("learned")
    with torch.no_grad():
        assert abs(NextTokenCE().loss(model, tb).item()
                   - NextTokenCE().loss(model, _train_batch(a, None)).item()) > 1e-4


def _cfg(family: str = "gpt", **kw):
    base = {"n_layer": 1, "n_head": 2, "n_embd": 16, "n_hidden": 16, "block_size": 12,
            "batch_size": 4, "max_iters": 12, "eval_interval": 6, "eval_iters": 2,
            "log_interval": 6, "warmup_iters": 2, "lr_decay_iters": 12, "learning_rate": 1e-2,
            "device": "cpu", "seed": 3, "boundaries": "lines", "mask_at_bos": True}
    if family == "gpt":
        base.pop("n_hidden")
    else:
        base.pop("n_head")
    base.update(kw)
    return make_config(family, overrides=base)


def _char_tokenizer():
    from chainrule.tokenizers import train_tokenizer

    return train_tokenizer("char", ["abcdefgh"])


def _sentences(tok, n: int, seed: int = 0) -> np.ndarray:
    """``<s> x y z </s>``: y follows from x, z is random."""
    letters = tok.encode("abcdefgh")
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for _ in range(n):
        first = int(rng.integers(0, 4))
        out += [tok.bos_id, letters[first], letters[first + 4],
                letters[int(rng.integers(0, 8))], tok.eos_id]
    return np.asarray(out, dtype=np.int32)


def test_resume_is_exact_with_the_mask(tmp_path):
    tok = _char_tokenizer()
    ids, val = _sentences(tok, 200), _sentences(tok, 40, seed=1)
    cfg = _cfg(dropout=0.1)
    full = train(cfg, ids, val, tmp_path / "full", tokenizer=tok, progress=False, plot=False)
    train(cfg.replace(max_iters=6), ids, val, tmp_path / "part", tokenizer=tok,
          progress=False, plot=False)
    resumed = train(cfg, ids, val, tmp_path / "part", tokenizer=tok, progress=False,
                    plot=False, resume=True)
    assert resumed["final_val_loss"] == full["final_val_loss"]
    a = ckpt_io.read_safetensors(tmp_path / "full" / "last" / "model.safetensors")
    b = ckpt_io.read_safetensors(tmp_path / "part" / "last" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("family", ["lstm", "ffnn"])
def test_families_without_an_attention_mask_are_refused(tmp_path, family):
    with pytest.raises(ConfigError, match="mask_at_bos"):
        tok = _char_tokenizer()
        train(_cfg(family), _sentences(tok, 50), None, tmp_path / family, tokenizer=tok,
              progress=False, plot=False)


def test_the_ladder_trains_its_gpt_rung_with_the_mask(tmp_path):
    from chainrule.evaluation.ladder import LadderConfig, prepare
    from chainrule.evaluation.ladder_rungs import _train_config

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sees the dog .\nthe king fears the queen .\n" * 60)

    def config(name: str, **overrides) -> LadderConfig:
        return LadderConfig(data=(str(corpus),), output=str(tmp_path / name), min_count=1,
                            neural_iters=6, rungs=("gpt",), seed=5, **overrides)

    assert _train_config("gpt", prepare(config("on")), 10).mask_at_bos is True
    off = prepare(config("off", neural_overrides={"gpt": {"mask_at_bos": False}}))
    assert _train_config("gpt", off, 10).mask_at_bos is False


def test_the_cli_trains_with_the_mask_and_refuses_it_for_an_lstm(tmp_path, capsys):
    from chainrule.cli import main

    text = tmp_path / "corpus.txt"
    text.write_text("the cat sees the dog .\nthe king fears the queen .\n" * 40)
    tiny = ["n_layer=1", "n_head=2", "n_embd=16", "block_size=16", "batch_size=4",
            "max_iters=4", "eval_interval=4", "eval_iters=1", "warmup_iters=1",
            "lr_decay_iters=4", "boundaries=lines", "mask_at_bos=true", "device=cpu"]
    argv = ["train", "--family", "gpt", "--kind", "char", *tiny, str(text), "-o"]
    assert main([*argv, str(tmp_path / "gpt")]) == 0, capsys.readouterr().err
    capsys.readouterr()
    lstm = ["train", "--family", "lstm", "--kind", "char", "n_embd=8", "n_hidden=8",
            "boundaries=lines", "mask_at_bos=true", "max_iters=2", str(text), "-o",
            str(tmp_path / "lstm")]
    assert main(lstm) != 0
    err = capsys.readouterr().err
    assert "mask_at_bos" in err and "Traceback" not in err
