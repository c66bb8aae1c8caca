"""bf16 training on CPUs with native bf16: the explicit short attention that replaces PyTorch's
slow bf16 CPU flash kernel, ``dtype=bfloat16-if-native`` and the CPU preset that uses it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from chainrule.errors import ConfigError
from chainrule.models import layers
from chainrule.models.layers import CausalSelfAttention, _explicit_attention, _short_bf16_on_cpu
from chainrule.training import build
from chainrule.training.config import load_preset, make_config

CPU = torch.device("cpu")


@pytest.mark.parametrize("causal", [True, False])
def test_explicit_attention_is_sdpa_in_float32_values_and_gradients(causal):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=g, requires_grad=True) for _ in range(3))
    ours = _explicit_attention(q, k, v, causal)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)
    w = torch.randn(ours.shape, generator=g)
    grads = torch.autograd.grad((ours * w).sum(), (q, k, v))
    ref_grads = torch.autograd.grad((ref * w).sum(), (q, k, v))
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    if causal:  # position 0 sees only itself: its output is v[..., 0, :]
        torch.testing.assert_close(ours[:, :, 0], v[:, :, 0])


def test_explicit_attention_with_a_boolean_mask_is_sdpa_with_that_mask():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 3, 5, 8, generator=g, requires_grad=True)
    k, v = (torch.randn(2, 3, 7, 8, generator=g, requires_grad=True) for _ in range(2))
    mask = torch.rand(2, 1, 5, 7, generator=g) < 0.6
    mask[0, 0, 2] = False  # a query with nothing to attend to: zeros, as SDPA
    ours = _explicit_attention(q, k, v, False, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)
    assert not ours[0, :, 2].any()
    w = torch.randn(ours.shape, generator=g)
    grads = torch.autograd.grad((ours * w).sum(), (q, k, v))
    ref_grads = torch.autograd.grad((ref * w).sum(), (q, k, v))
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_explicit_attention_dropout_zeroes_weights_and_rescales_the_rest():
    q = torch.zeros(1, 1, 4, 8)  # equal scores: every weight 1/64
    k = torch.zeros(1, 1, 64, 8)
    v = torch.ones(1, 1, 64, 1)
    torch.manual_seed(0)
    y = _explicit_attention(q, k, v, False, None, 0.5)  # sum of kept weights x 2
    kept = y[0, 0, :, 0] * 64 / 2  # how many of the 64 weights each query kept
    assert torch.equal(kept, kept.round()) and 10 < kept.min() and kept.max() < 54
    assert torch.equal(_explicit_attention(q, k, v, False, None, 0.0)[0, 0, :, 0],
                       torch.ones(4))


def test_bf16_cross_attention_on_cpu_is_explicit_and_tracks_float32(monkeypatch):
    from chainrule.models import cross_attention
    from chainrule.models.cross_attention import CrossAttention

    torch.manual_seed(0)
    attn = CrossAttention(32, 4).eval()
    x, memory = torch.randn(3, 6, 32), torch.randn(3, 9, 32)
    mask = torch.arange(9)[None, :] < torch.tensor([9, 4, 1])[:, None]  # (B, S) source lengths
    ref = attn(x, attn.memory_kv(memory), mask)
    calls = []
    real = cross_attention._explicit_attention
    monkeypatch.setattr(cross_attention, "_explicit_attention",
                        lambda *a, **kw: calls.append(1) or real(*a, **kw))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attn(x, attn.memory_kv(memory), mask)
    assert out.dtype == torch.bfloat16 and calls == [1]
    torch.testing.assert_close(out.float(), ref, atol=3e-2, rtol=3e-2)


def test_the_explicit_path_is_taken_only_for_short_bf16_on_cpu():
    q = torch.zeros(2, 4, 64, 8, dtype=torch.bfloat16)
    assert _short_bf16_on_cpu(q, q, None, 0.0)
    assert not _short_bf16_on_cpu(q.float(), q.float(), None, 0.0)  # float32: SDPA's kernel
    assert _short_bf16_on_cpu(q, q, torch.ones(64, 64, dtype=torch.bool), 0.0)
    assert not _short_bf16_on_cpu(q, q, torch.zeros(64, 64, dtype=torch.bfloat16), 0.0)  # additive
    assert _short_bf16_on_cpu(q, q, None, 0.1)  # dropout on the weights, written out too
    assert not _short_bf16_on_cpu(q, q[:, :2], None, 0.0)  # grouped-query: SDPA
    long = torch.zeros(1, 1, layers._EXPLICIT_MAX_T + 1, 8, dtype=torch.bfloat16)
    assert not _short_bf16_on_cpu(long, long, None, 0.0)


def test_bf16_attention_under_cpu_autocast_is_explicit_and_tracks_float32(monkeypatch):
    torch.manual_seed(0)
    attn = CausalSelfAttention(32, 4, bias=False).eval()
    x = torch.randn(3, 16, 32)
    ref = attn(x)  # float32: SDPA
    calls = []
    real = layers._explicit_attention
    monkeypatch.setattr(layers, "_explicit_attention",
                        lambda *a, **kw: calls.append(1) or real(*a, **kw))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attn(x)
    assert out.dtype == torch.bfloat16 and calls == [1]
    torch.testing.assert_close(out.float(), ref, atol=3e-2, rtol=3e-2)
    attn(x)  # float32 again: through SDPA
    assert calls == [1]


def test_a_replaced_sdpa_still_sees_every_bf16_call():
    """Attention capture replaces SDPA to read the weights: the explicit path steps aside."""
    from chainrule.models.attention_capture import capture_attention

    torch.manual_seed(0)
    attn = CausalSelfAttention(32, 4, bias=False).eval().bfloat16()
    x = torch.randn(1, 5, 32, dtype=torch.bfloat16)
    weights = capture_attention(lambda: attn(x), attn)
    (w,) = weights.values()
    assert w.shape == (1, 4, 5, 5) and torch.allclose(w.sum(-1), torch.ones(1, 4, 5), atol=1e-2)


def test_bfloat16_if_native_follows_the_hardware(monkeypatch):
    assert build.uses_bf16("bfloat16", CPU) and not build.uses_bf16("float32", CPU)
    assert not build.uses_bf16("auto", CPU)  # auto stays float32 on CPU
    monkeypatch.setattr(build, "native_bf16", lambda device: True)
    assert build.uses_bf16("bfloat16-if-native", CPU)
    monkeypatch.setattr(build, "native_bf16", lambda device: False)
    assert not build.uses_bf16("bfloat16-if-native", CPU)


def test_native_bf16_agrees_with_the_cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        pytest.skip("no /proc/cpuinfo to compare with")
    assert build.native_bf16(CPU) == bool(flags & {"avx512_bf16", "amx_bf16"})
    assert not build.native_bf16(torch.device("meta"))


def test_dtype_values_and_the_cpu_preset():
    assert make_config("gpt", None, ["dtype=bfloat16-if-native"]).dtype == "bfloat16-if-native"
    with pytest.raises(ConfigError, match="bfloat16-if-native, not 'bf16'"):
        make_config("gpt", None, ["dtype=bf16"])
    assert load_preset("shakespeare-char-cpu")["dtype"] == "bfloat16-if-native"


def test_a_bf16_cpu_run_resumes_exactly(tmp_path):
    """Stop at step 6, resume to 12 under CPU bf16 autocast (the explicit attention): the same
    weights and losses as one run to 12."""
    import numpy as np

    from chainrule.training import checkpoint as ckpt_io
    from chainrule.training.loop import train

    cfg = make_config("gpt", None, [
        "n_layer=1", "n_head=2", "n_embd=16", "block_size=8", "batch_size=4", "max_iters=12",
        "eval_interval=6", "eval_iters=2", "log_interval=3", "warmup_iters=2",
        "lr_decay_iters=12", "learning_rate=1e-2", "device=cpu", "dtype=bfloat16", "seed=5"])
    ids = np.random.default_rng(0).integers(0, 11, 1500).astype(np.int32)

    def run(c, out, **kw):
        return train(c, ids[:1200], ids[1200:], out, vocab_size=11, progress=False, plot=False,
                     **kw)

    full = run(cfg, tmp_path / "full")
    run(cfg.replace(max_iters=6), tmp_path / "part")
    resumed = run(cfg, tmp_path / "part", resume=True)
    assert (resumed["last_loss"], resumed["final_val_loss"]) == (full["last_loss"],
                                                                 full["final_val_loss"])
    a = ckpt_io.read_safetensors(tmp_path / "full" / "last" / "model.safetensors")
    b = ckpt_io.read_safetensors(tmp_path / "part" / "last" / "model.safetensors")
    assert all(a[k].dtype == torch.float32 and torch.equal(a[k], b[k]) for k in a)
