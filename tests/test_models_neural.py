"""The neural families beyond the conformance suite: the engine's contract, the lecture's
equations worked by hand, GPT's sliding windows and cache, parity with transformers, bad files."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule.errors import ConfigError, ModelFormatError
from chainrule.models import load_model, neural
from chainrule.models.base import families
from chainrule.models.neural import build_neural_model, neural_config_class

# the unconditional ones (encoder-decoders need a source: tests/test_translation.py)
NEURAL_FAMILIES = [f.name for f in families(trainer="neural", generator=True, conditional=False)]

V = 23
TINY = {
    "ffnn": {"order": 4, "n_embd": 6, "n_hidden": 10, "dropout": 0.3},
    "rnn": {"n_embd": 6, "n_hidden": 10, "n_layer": 2, "dropout": 0.3},
    "lstm": {"n_embd": 6, "n_hidden": 8, "n_layer": 2, "dropout": 0.3},
    "gpt": {"block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 12, "dropout": 0.3},
}


def tiny(family: str, seed: int = 0, **over):
    torch.manual_seed(seed)
    return build_neural_model(family, vocab_size=V, **{**TINY[family], **over})


def tokens(B: int = 3, T: int = 8, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(2, V, (B, T), generator=g)
    x[:, 0] = 0  # bos
    return x


# -- the builder and configs -------------------------------------------------------------------
def test_builder_collects_every_problem():
    with pytest.raises(ConfigError) as e:
        build_neural_model("gpt", vocab_size=V, n_layers=3, dropuot=0.1)
    assert len(e.value.problems) == 2 and "n_layers" in str(e.value)
    with pytest.raises(ConfigError) as e:
        build_neural_model("gpt", vocab_size=V, n_embd=10, n_head=3, dropout=1.5, positions="x")
    assert len(e.value.problems) == 3
    with pytest.raises(ConfigError, match="vocab_size is required"):
        build_neural_model("lstm")
    with pytest.raises(ConfigError, match="unknown neural family"):
        build_neural_model("transformer", vocab_size=V)


@pytest.mark.parametrize("family", NEURAL_FAMILIES)
def test_config_round_trips_through_json(family):
    m = tiny(family)
    cfg = json.loads(json.dumps(m.config()))
    assert set(cfg) == {f for f in neural_config_class(family).__dataclass_fields__}
    torch.manual_seed(0)
    again = build_neural_model(family, **cfg)
    assert again.config() == m.config() and type(again) is type(m)
    assert torch.equal(again.logprobs(tokens()), m.logprobs(tokens()))  # same seed, same init


# -- the training engine's contract ------------------------------------------------------------
@pytest.mark.parametrize("family", NEURAL_FAMILIES)
def test_forward_contract(family):
    m = tiny(family).train()
    x = tokens()
    logits, state = m(x)
    assert logits.shape == (3, 8, V)
    if family in ("ffnn", "gpt"):
        assert state is None and m.init_state(3) is None
    else:
        flat = state if isinstance(state, tuple) else (state,)
        assert all(s.requires_grad for s in flat)
        detached = m.detach_state(state)
        flat = detached if isinstance(detached, tuple) else (detached,)
        assert all(not s.requires_grad for s in flat)
        m.eval()  # without dropout, an explicit zero state equals no state
        assert torch.equal(m(x, m.init_state(3, "cpu"))[0], m(x)[0])
    F.cross_entropy(logits.flatten(0, 1), x.roll(-1, 1).flatten()).backward()
    assert all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("family", ["rnn", "lstm"])
def test_carried_state_equals_one_long_pass(family):
    """Truncated BPTT: two segments with the state carried give the same logits as one pass."""
    m = tiny(family, dropout=0.0).eval()
    x = tokens(T=12)
    with torch.no_grad():
        whole, _ = m(x)
        first, state = m(x[:, :5], m.init_state(3))
        second, _ = m(x[:, 5:], m.detach_state(state))
    assert torch.allclose(torch.cat([first, second], 1), whole, atol=1e-6)


@pytest.mark.parametrize("family", NEURAL_FAMILIES)
def test_optim_groups_cover_each_parameter_once(family):
    m = tiny(family, tie_weights=True) if family in ("lstm", "gpt") else tiny(family)
    decay, no_decay = m.optim_groups(0.1)
    ids = [id(p) for g in (decay, no_decay) for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in m.parameters()) and len(set(ids)) == len(ids)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert sum(p.numel() for p in m.parameters()) == m.num_parameters()


@pytest.mark.parametrize("family", NEURAL_FAMILIES)
def test_scoring_has_no_dropout_and_restores_the_mode(family):
    m = tiny(family).train()  # dropout 0.3 would make two calls differ
    x = tokens()
    a, b = m.logprobs(x), m.logprobs(x)
    assert torch.equal(a, b) and a.dtype == torch.float32 and not a.requires_grad
    assert m.training, "logprobs must put the model back into training mode"
    lp, _state = m.start(x[:, :3])
    assert torch.allclose(lp, a[:, 2], atol=1e-5) and m.training


@pytest.mark.parametrize("family", NEURAL_FAMILIES)
def test_token_logprobs_in_chunks_equal_the_full_distribution(family, monkeypatch):
    m = tiny(family)
    x = tokens(T=19)
    full = m.logprobs(x[:, :-1]).gather(-1, x[:, 1:, None]).squeeze(-1)
    # several chunks of positions: a budget of 7 positions per row
    monkeypatch.setattr(neural, "_SCORE_CHUNK_FLOATS", 7 * x.shape[0] * m.vocab_size)
    assert torch.allclose(m.token_logprobs(x), full, atol=1e-5)


# -- the lecture's equations, worked by hand ---------------------------------------------------
def test_ffnn_is_bengios_equation():
    """y = b + W x + U tanh(d + H x) over the n-1 previous embeddings, bos-padded on the left."""
    m = build_neural_model("ffnn", vocab_size=V, order=3, n_embd=2, n_hidden=3, direct=True)
    C, H, d = m.C.weight, m.H.weight, m.H.bias
    U, W, b = m.out.weight[:, :3], m.out.weight[:, 3:], m.out.bias
    seq = [0, 5, 7, 2]
    lp = m.logprobs(torch.tensor([seq]))[0]
    for t, window in enumerate([(0, 0), (0, 5), (5, 7), (7, 2)]):
        x = torch.cat([C[window[0]], C[window[1]]])
        y = b + W @ x + U @ torch.tanh(d + H @ x)
        assert torch.allclose(lp[t], torch.log_softmax(y, -1), atol=1e-6), f"position {t}"
    # the Markov property: with order 3, token 1 matters at positions 1 and 2 only
    other = m.logprobs(torch.tensor([[0, 9, 7, 2]]))[0]
    assert torch.equal(other[3], lp[3]) and torch.equal(other[0], lp[0])
    assert not torch.allclose(other[1], lp[1]) and not torch.allclose(other[2], lp[2])


def test_ffnn_without_direct_connections_has_no_w():
    with_w = build_neural_model("ffnn", vocab_size=V, order=3, n_embd=2, n_hidden=3)
    without = build_neural_model("ffnn", vocab_size=V, order=3, n_embd=2, n_hidden=3, direct=False)
    assert with_w.num_parameters() - without.num_parameters() == V * 2 * 2


def test_elman_rnn_is_the_lecture_recurrence():
    """h_t = tanh(U i_t + W h_{t-1} + b), logits = decoder(h_t)."""
    m = build_neural_model("rnn", vocab_size=V, n_embd=4, n_hidden=5)
    c = m.cell
    seq = torch.tensor([0, 3, 9, 4, 4])
    h = torch.zeros(5)
    lp = m.logprobs(seq[None])[0]
    for t, w in enumerate(seq):
        i_t = m.embedding.weight[w]
        h = torch.tanh(c.weight_ih_l0 @ i_t + c.bias_ih_l0 + c.weight_hh_l0 @ h + c.bias_hh_l0)
        y = m.decoder.weight @ h + m.decoder.bias
        assert torch.allclose(lp[t], torch.log_softmax(y, -1), atol=1e-5)


def test_lstm_is_the_lecture_cell():
    """The slide's gates: c_t = f c_{t-1} + i g, D_t = o tanh(c_t); weights tied to the input."""
    m = build_neural_model("lstm", vocab_size=V, n_embd=4, n_hidden=4, n_layer=1, dropout=0.0)
    assert m.decoder.weight is m.embedding.weight
    c = m.cell
    seq = torch.tensor([0, 7, 7, 1])
    h, cell = torch.zeros(4), torch.zeros(4)
    lp = m.logprobs(seq[None])[0]
    for t, w in enumerate(seq):
        z = c.weight_ih_l0 @ m.embedding.weight[w] + c.bias_ih_l0 + c.weight_hh_l0 @ h + c.bias_hh_l0
        i, f, g, o = z.chunk(4)
        cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(cell)
        y = m.decoder.weight @ h + m.decoder.bias
        assert torch.allclose(lp[t], torch.log_softmax(y, -1), atol=1e-5)


@pytest.mark.parametrize("family", ["rnn", "lstm"])
def test_tying_with_different_widths_projects(family, tmp_path):
    m = tiny(family, n_embd=6, n_hidden=9, tie_weights=True)
    assert m.decoder.weight is m.embedding.weight and m.proj is not None
    loaded = load_model(m.save(tmp_path / "m"))
    assert loaded.decoder.weight is loaded.embedding.weight
    assert torch.equal(loaded.logprobs(tokens()), m.logprobs(tokens()))


# -- GPT: windows past block_size, the cache, compile, autocast --------------------------------
def window_start(t: int, L: int) -> int:
    """The documented rule: past L, windows slide by L // 2 and are re-encoded from 0."""
    s = max(1, L // 2)
    return 0 if t < L else s * ((t - L) // s + 1)


@pytest.mark.parametrize("positions", ["learned", "rotary"])
@pytest.mark.parametrize("L", [1, 2, 5, 8])
def test_gpt_long_inputs_follow_the_window_rule(positions, L):
    m = tiny("gpt", block_size=L, positions=positions)
    x = tokens(B=2, T=23)
    full = m.logprobs(x)
    for t in range(x.shape[1]):
        s = window_start(t, L)
        assert t - s + 1 <= L
        alone = m.logprobs(x[:, s : t + 1])[:, -1]
        assert torch.allclose(full[:, t], alone, atol=1e-5), f"position {t}"


@pytest.mark.parametrize("positions", ["learned", "rotary"])
@pytest.mark.parametrize("L", [1, 3, 6])
def test_gpt_cache_equals_full_pass_across_slides_with_ragged_prompts(positions, L):
    m = tiny("gpt", block_size=L, positions=positions)
    x = tokens(B=4, T=26, seed=3)
    lengths = torch.tensor([1, 4, 9, 13])  # shorter and longer than block_size
    full = m.logprobs(x)
    lp, state = m.start(x[:, :13], lengths)
    assert torch.allclose(lp, full[torch.arange(4), lengths - 1], atol=1e-5)
    for j in range(26 - 13):
        lp, state = m.step(state, x[torch.arange(4), lengths + j])
        assert torch.allclose(lp, full[torch.arange(4), lengths + j], atol=1e-5), f"step {j}"
    state = m.select_state(state, torch.tensor([2, 2]))
    lp, _ = m.step(state, torch.tensor([5, 5]))
    assert torch.allclose(lp[0], lp[1])


@settings(max_examples=10, deadline=None)
@given(L=st.integers(1, 6), T=st.integers(2, 16), data=st.data())
def test_gpt_cache_property(L, T, data):
    """Any block size, prompt lengths and total length: the cache agrees with the full pass."""
    m = tiny("gpt", block_size=L, positions=data.draw(st.sampled_from(["learned", "rotary"])))
    x = tokens(B=3, T=T, seed=data.draw(st.integers(0, 99)))
    lengths = torch.tensor(data.draw(st.lists(st.integers(1, T - 1), min_size=3, max_size=3)))
    full = m.logprobs(x)
    rows = torch.arange(3)
    lp, state = m.start(x[:, : int(lengths.max())], lengths)
    assert torch.allclose(lp, full[rows, lengths - 1], atol=1e-5)
    for j in range(T - int(lengths.max())):
        lp, state = m.step(state, x[rows, lengths + j])
        assert torch.allclose(lp, full[rows, lengths + j], atol=1e-5)


@pytest.mark.parametrize("family", NEURAL_FAMILIES)
def test_empty_inputs_score_nothing(family):
    m = tiny(family)
    assert m.logprobs(torch.zeros(2, 0, dtype=torch.long)).shape == (2, 0, V)
    assert m.token_logprobs(torch.zeros(2, 1, dtype=torch.long)).shape == (2, 0)


def test_gpt_forward_refuses_more_than_block_size():
    m = tiny("gpt", block_size=4)
    with pytest.raises(ConfigError, match="longer than block_size"):
        m(tokens(T=5))


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_gpt_forward_compiles_without_graph_breaks(positions):
    m = tiny("gpt", positions=positions).train()
    compiled = torch.compile(m, backend="eager", fullgraph=True)  # fails on any graph break
    torch.manual_seed(0)
    a = compiled(tokens())[0]
    torch.manual_seed(0)
    assert torch.allclose(a, m(tokens())[0], atol=1e-6)


def test_gpt_under_bf16_autocast_trains_and_decodes():
    m = tiny("gpt", positions="rotary")
    x = tokens()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, _ = m(x)
        F.cross_entropy(logits.flatten(0, 1).float(), x.flatten()).backward()
        lp = m.logprobs(x)
        _lp0, state = m.start(x[:, :3])
        lp1, _ = m.step(state, x[:, 3])
    assert logits.dtype == torch.bfloat16 and lp.dtype == torch.float32
    exact = m.logprobs(x)
    assert (lp - exact).abs().max() < 0.1 and (lp1 - exact[:, 3]).abs().max() < 0.1


def test_gpt2_small_has_gpt2s_parameter_count():
    """GPT-2 small is the well-known 124,439,808 parameters (wte tied to the head)."""
    with torch.device("meta"):  # shapes only, no memory
        m = build_neural_model("gpt", vocab_size=50257, block_size=1024, n_layer=12,
                               n_head=12, n_embd=768)
    assert m.num_parameters() == 124_439_808
    assert m.max_context == 1024


# -- parity with transformers ------------------------------------------------------------------
@pytest.mark.parametrize("tie", [True, False])
def test_gpt_matches_transformers_gpt2(tie):
    pytest.importorskip("transformers")
    from chainrule.models.gpt import gpt_from_hf_state_dict, to_hf_gpt2

    m = tiny("gpt", tie_weights=tie, dropout=0.0)
    hf = to_hf_gpt2(m)
    x = tokens(T=8)
    with torch.no_grad():
        ours, theirs = m(x)[0], hf(x).logits
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert m.num_parameters() == sum(p.numel() for p in hf.parameters())
    other = gpt_from_hf_state_dict(tiny("gpt", seed=9, tie_weights=tie), hf.state_dict())
    assert torch.equal(other.logprobs(x), m.logprobs(x))


def test_rotary_gpt_is_refused_by_the_gpt2_mapping():
    from chainrule.models.gpt import gpt_to_hf_state_dict

    with pytest.raises(ConfigError, match="rotary"):
        gpt_to_hf_state_dict(tiny("gpt", positions="rotary"))


# -- bad files ---------------------------------------------------------------------------------
@pytest.fixture
def saved_gpt(tmp_path):
    return tiny("gpt").save(tmp_path / "gpt")


def edit_config(directory, **changes):
    path = directory / "config.json"
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))


def test_loading_another_family_is_refused(saved_gpt):
    with pytest.raises(ModelFormatError, match="holds a 'gpt' model, not a 'lstm' model"):
        load_model(saved_gpt, family="lstm")
    edit_config(saved_gpt, family="lstm")  # a config that lies about the weights
    with pytest.raises(ModelFormatError, match="does not match config.json"):
        load_model(saved_gpt)


@pytest.mark.parametrize(
    "change, match",
    [({"n_embd": 16}, "wrong shapes"), ({"n_layer": 3}, "missing"), ({"n_layer": 1}, "unexpected"),
     ({"n_head": 5}, "not a valid gpt config"), ({"positions": "rotary"}, "unexpected")],
)
def test_weights_that_do_not_fit_the_config_are_refused(saved_gpt, change, match):
    edit_config(saved_gpt, **change)
    with pytest.raises(ModelFormatError, match=match):
        load_model(saved_gpt)


def test_truncated_weights_are_refused(saved_gpt):
    path = saved_gpt / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelFormatError, match="corrupt or truncated"):
        load_model(saved_gpt)


def test_tied_weights_are_stored_once(saved_gpt):
    from safetensors import safe_open

    with safe_open(str(saved_gpt / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "lm_head.weight" not in keys and "transformer.wte.weight" in keys
    loaded = load_model(saved_gpt)
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    assert not loaded.training and math.isclose(
        float(loaded.logprobs(tokens()).exp().sum(-1).mean()), 1.0, rel_tol=1e-5
    )


def test_gpt_cache_grows_past_its_first_allocation_and_still_equals_the_full_pass():
    """The key/value cache starts small and doubles; steps after each growth equal one pass."""
    torch.manual_seed(0)
    model = build_neural_model("gpt", vocab_size=11, block_size=300, n_layer=2, n_head=4,
                               n_embd=16, n_kv_head=2, norm="rmsnorm", mlp="swiglu",
                               positions="rotary", bias=False).eval()
    x = torch.randint(0, 11, (2, 170))
    with torch.no_grad():
        full = model.logprobs(x)
        lp, state = model.start(x[:, :3])
        assert state.k.shape[3] == 64  # allocated for the prompt, not for block_size
        for t in range(3, 170):
            assert torch.allclose(lp, full[:, t - 1], atol=1e-5), f"position {t - 1}"
            lp, state = model.step(state, x[:, t])
        assert state.k.shape[3] == 256  # grew 64 -> 128 -> 256, never past block_size


@pytest.mark.parametrize(("preset", "params"), [("gpt2-124m", 124_439_808),
                                                ("smollm2-135m", 134_515_008)])
def test_architecture_presets_build_the_published_sizes(preset, params):
    """The GPT-2 and Llama (SmolLM2) shapes are presets of the one GPT; the parameter counts are
    the published models' (GPT-2 small 124M; SmolLM2-135M with tied embeddings)."""
    from chainrule.training.build import default_model_factory
    from chainrule.training.config import make_config

    cfg = make_config("gpt", preset, ["device=cpu"])
    with torch.device("meta"):  # shapes only: no memory, no init time
        model = default_model_factory(cfg, cfg.vocab_size, 0, 1)
    assert model.num_parameters() == params


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_packed_examples_with_a_document_mask_score_as_if_alone(positions):
    """Two examples packed in one row, with a document mask and restarted positions, give the
    logits each gets alone (what packing for fine-tuning relies on)."""
    from chainrule.models.layers import document_mask

    torch.manual_seed(0)
    m = build_neural_model("gpt", vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=8,
                           positions=positions).eval()
    a, b = tokens(B=1, T=5, seed=3), tokens(B=1, T=7, seed=4)
    packed = torch.cat([a, b], dim=1)
    doc = torch.tensor([[0] * 5 + [1] * 7])
    pos = torch.tensor([list(range(5)) + list(range(7))])
    with torch.no_grad():
        logits, _ = m(packed, None, attn_mask=document_mask(doc), positions=pos)
        alone_a, _ = m(a)
        alone_b, _ = m(b)
        unmasked, _ = m(packed)
    assert torch.allclose(logits[:, :5], alone_a, atol=1e-5)
    assert torch.allclose(logits[:, 5:], alone_b, atol=1e-5)
    assert not torch.allclose(unmasked[:, 5:], alone_b, atol=1e-3)  # without it, b sees a


def test_loading_builds_its_shape_check_without_initialisers(saved_gpt):
    """The shape check's meta-device model runs no ``nn.init`` (torch's meta ``normal_`` imports
    torch._dynamo, ~1.5 s), the real model is initialised as before, and ``nn.init`` is restored
    even when the config is refused."""
    import subprocess
    import sys

    code = ("import sys; from chainrule.models import load_model; "
            f"load_model({str(saved_gpt)!r}); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    before = torch.nn.init.normal_
    edit_config(saved_gpt, n_head=5)
    with pytest.raises(ModelFormatError):
        load_model(saved_gpt)
    assert torch.nn.init.normal_ is before
    with neural.shapes_only():
        assert torch.nn.init.normal_ is not before
        assert tiny("gpt").lm_head.weight.is_meta
        real = torch.empty(64, 64, device="cpu").fill_(7.0)  # another thread's real tensor
        assert torch.nn.init.normal_(real, std=0.02).std() > 0.01
    torch.manual_seed(0)
    a = tiny("gpt").lm_head.weight
    torch.manual_seed(0)
    b = tiny("gpt").lm_head.weight
    assert a.std() > 0.01 and torch.equal(a, b)
