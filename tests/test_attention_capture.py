"""The generic attention hook: captured weights equal the written-out ones on GPT, and an
encoder-decoder shows encoder, decoder and cross-attention with no code of its own."""

from __future__ import annotations

import pytest
import torch

from chainrule.models.attention_capture import attention_groups, capture_attention, sdpa_weights
from chainrule.models.attention_maps import attention_maps
from chainrule.models.neural import build_neural_model


@pytest.mark.parametrize("shape", [{"positions": "learned"},
                                   {"positions": "rotary", "n_kv_head": 1}])
def test_capture_equals_the_written_out_weights_on_gpt(shape):
    torch.manual_seed(0)
    m = build_neural_model("gpt", vocab_size=20, bos_id=0, eos_id=1, block_size=16, n_layer=2,
                           n_head=2, n_embd=16, **shape).eval()
    x = torch.tensor([0, 5, 6, 7, 8, 1])
    [(name, w)] = capture_attention(lambda: m.logprobs(x[None]), m).items()
    assert name == "transformer.h.*.attn"
    assert w == pytest.approx(attention_maps(m, x), abs=1e-6)


def test_sdpa_weights_times_values_is_the_kernels_output():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)
    mask = torch.rand(1, 1, 4, 6) > 0.3
    mask[..., 0] = True
    for kw in ({"attn_mask": mask}, {"is_causal": True}, {"scale": 0.5}):
        ours = sdpa_weights(q, k, kw.get("attn_mask"), kw.get("is_causal", False),
                            kw.get("scale")) @ v
        theirs = torch.nn.functional.scaled_dot_product_attention(q, k, v, **kw)
        assert ours == pytest.approx(theirs, abs=1e-5)


def test_encoder_decoder_shows_cross_attention():
    torch.manual_seed(0)
    m = build_neural_model("transformer-ed", vocab_size=20, bos_id=0, eos_id=1, n_layer=2,
                           n_head=2, n_embd=16).eval()
    groups = {g.name: g for g in attention_groups(m, [0, 5, 6, 7, 1], [4, 5, 6])}
    assert set(groups) == {"encoder self-attention", "decoder self-attention",
                           "cross-attention"}
    cross = groups["cross-attention"]
    assert (cross.query, cross.key) == ("target", "source")
    assert cross.weights.shape[:3] == (2, 2, 5)  # layers, heads, target positions
    assert cross.weights.sum(-1) == pytest.approx(torch.ones(2, 2, 5), abs=1e-5)
    dec = groups["decoder self-attention"].weights
    assert torch.triu(dec, diagonal=1).abs().max() == 0  # causal


def test_a_model_without_attention_says_so():
    from chainrule.errors import ConfigError

    m = build_neural_model("lstm", vocab_size=20, bos_id=0, eos_id=1, n_embd=8, n_hidden=8)
    with pytest.raises(ConfigError, match="no attention weights"):
        attention_groups(m, [0, 5, 1])
