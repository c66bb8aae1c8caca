"""``reset_at_bos`` for the recurrent families (issue 14): a sentence read inside a training
stream starts from the zero state it is scored from.

Hand-checkable: the stream ``a b <s> c d`` read from any carried state gives, from ``<s>`` on,
exactly what ``<s> c d`` gives from the zero state; before ``<s>`` nothing changes."""

from __future__ import annotations

import pytest
import torch

from chainrule.models.neural import build_neural_model

BOS, EOS, V = 0, 1, 12


def _model(family: str, reset: bool, **kw):
    torch.manual_seed(0)
    cfg = {"vocab_size": V, "bos_id": BOS, "eos_id": EOS, "n_embd": 8, "n_hidden": 6,
           "n_layer": 2, "dropout": 0.0, "reset_at_bos": reset, **kw}
    return build_neural_model(family, **cfg).eval()


def _carried(model, batch: int):
    torch.manual_seed(1)
    state = model.init_state(batch, "cpu")
    if isinstance(state, tuple):
        return tuple(torch.randn_like(s) for s in state)
    return torch.randn_like(state)


@pytest.mark.parametrize("family", ["lstm", "rnn"])
def test_the_state_is_zeroed_before_each_bos(family):
    model = _model(family, reset=True)
    stream = torch.tensor([[5, 6, BOS, 7, 8], [9, BOS, 3, 4, BOS]])
    carried = _carried(model, 2)
    with torch.no_grad():
        logits, _ = model(stream, carried)
        fresh, _ = model(torch.tensor([[BOS, 7, 8]]))  # row 0 from <s> on, zero state
        before, _ = model(stream[:1, :2], tuple(s[:, :1] for s in carried)
                          if isinstance(carried, tuple) else carried[:, :1])
        lone_bos, _ = model(torch.tensor([[BOS]]))
    torch.testing.assert_close(logits[0, 2:], fresh[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(logits[0, :2], before[0], rtol=0, atol=1e-6)
    # row 1's last token is <s>: its prediction there is the zero state's after <s>
    torch.testing.assert_close(logits[1, 4], lone_bos[0, 0], rtol=0, atol=1e-6)
    off = _model(family, reset=False)
    with torch.no_grad():
        carried_on, _ = off(stream, carried)
        fresh_off, _ = off(torch.tensor([[BOS, 7, 8]]))
    assert not torch.allclose(carried_on[0, 2:], fresh_off[0], atol=1e-3)  # the default carries


def test_a_bos_in_the_first_column_resets_a_carried_state_only_in_its_row():
    model = _model("lstm", reset=True)
    carried = _carried(model, 2)
    x = torch.tensor([[BOS, 4, 5], [6, 4, 5]])
    with torch.no_grad():
        logits, _ = model(x, carried)
        zero, _ = model(x[:1])
        row1, _ = model(x[1:], tuple(s[:, 1:] for s in carried))
    torch.testing.assert_close(logits[0], zero[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(logits[1], row1[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", ["lstm", "rnn"])
def test_start_and_step_agree_with_the_full_pass(family):
    """A prompt with an <s> inside: start (padded rows too), step and decode_step all reset."""
    model = _model(family, reset=True)
    seq = torch.tensor([[BOS, 3, 4, EOS, BOS, 5, 6, 7], [BOS, 8, 9, 10, 11, 3, BOS, 2]])
    with torch.no_grad():
        full = torch.log_softmax(model(seq)[0], -1)
        lengths = torch.tensor([6, 8])
        lp, state = model.start(seq[:, :6], lengths=torch.tensor([6, 6]))
        torch.testing.assert_close(lp, full[:, 5], rtol=0, atol=1e-5)
        lp, _ = model.step(state, seq[:, 6])
        torch.testing.assert_close(lp, full[:, 6], rtol=0, atol=1e-5)
        padded = seq.clone()
        padded[0, 6:] = BOS  # padding that looks like <s> past row 0's length
        lp, _ = model.start(padded, lengths=lengths)
        torch.testing.assert_close(lp[0], full[0, 5], rtol=0, atol=1e-5)
        torch.testing.assert_close(lp[1], full[1, 7], rtol=0, atol=1e-5)
        _, state = model.start(seq[:, :6])
        lean = model.decode_step(state, seq[:, 6])
        torch.testing.assert_close(lean, full[:, 6], rtol=0, atol=1e-5)


def test_the_setting_is_saved_and_trains_through_the_loop(tmp_path):
    from chainrule.models.base import load_model

    model = _model("lstm", reset=True)
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m").eval()
    assert again.cfg.reset_at_bos
    seq = torch.tensor([[3, BOS, 4, 5]])
    torch.testing.assert_close(again(seq, _carried(again, 1))[0],
                               model(seq, _carried(model, 1))[0], rtol=0, atol=0)
    from chainrule.training.config import make_config

    cfg = make_config("lstm", overrides={"reset_at_bos": True, "n_embd": 8, "n_hidden": 8})
    assert cfg.model["reset_at_bos"] is True
