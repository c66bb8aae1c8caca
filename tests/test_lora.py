"""LoRA adapters: a no-op at init, exact merge/unmerge, adapters saved alone, decoding paths."""

from __future__ import annotations

import pytest
import torch

from chainrule.cli import main
from chainrule.errors import ConfigError, ModelFormatError
from chainrule.models import load_model
from chainrule.models.lora import (
    LoRAConfig,
    add_lora,
    base_fingerprint,
    load_adapter,
    lora_state_dict,
    merge_lora,
    save_adapter,
    trainable_share,
    unmerge_adapter,
)
from chainrule.models.neural import build_neural_model
from chainrule.tokenizers import train_tokenizer

LLAMA = {"positions": "rotary", "norm": "rmsnorm", "mlp": "swiglu", "bias": False, "n_kv_head": 2}


def _gpt(seed=0, **kw):
    torch.manual_seed(seed)
    return build_neural_model("gpt", vocab_size=40, n_layer=2, n_head=4, n_embd=32,
                              block_size=32, **kw).eval()


def _perturb(model, seed=1):
    """Give every adapter a non-zero B, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if k.endswith(".B"):
                v.copy_(torch.randn(v.shape, generator=g) * 0.1)


X = torch.randint(0, 40, (3, 17), generator=torch.Generator().manual_seed(0))
ALL = ("q", "k", "v", "attn.c_proj", "gate", "up", "mlp.c_proj")


@pytest.mark.parametrize("shape", [{}, LLAMA])
def test_fresh_adapter_changes_nothing_and_only_adapters_train(shape):
    model = _gpt(**shape)
    before = model.logprobs(X)
    targets = ALL if shape else ("q", "k", "v", "attn.c_proj", "c_fc", "mlp.c_proj")
    add_lora(model, LoRAConfig(rank=4, alpha=8, targets=targets))
    assert torch.equal(model.logprobs(X), before)
    n_train, n_all = trainable_share(model)
    assert n_train == sum(v.numel() for v in lora_state_dict(model).values())
    assert 0 < n_train < n_all
    assert all(".lora." in n for n, p in model.named_parameters() if p.requires_grad)


def test_q_and_v_blocks_follow_grouped_query_attention():
    model = _gpt(**LLAMA)
    add_lora(model, LoRAConfig(rank=2))
    parts = model.transformer.h[0].attn.c_attn.lora
    assert (parts["q"].start, parts["q"].stop) == (0, 32)
    assert (parts["v"].start, parts["v"].stop) == (48, 64)  # 2 kv heads of 8 after 32 + 16


def test_merge_then_unmerge_returns_the_base(tmp_path):
    model = _gpt(**LLAMA)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    add_lora(model, LoRAConfig(rank=4, targets=ALL))
    _perturb(model)
    unmerged = model.logprobs(X)
    # the fast incremental path uses the adapter too: start/step equal the full pass
    lp, state = model.start(X[:, :5])
    torch.testing.assert_close(lp, unmerged[:, 4], atol=1e-5, rtol=0)
    lp, _ = model.step(state, X[:, 5])
    torch.testing.assert_close(lp, unmerged[:, 5], atol=1e-5, rtol=0)
    assert not torch.allclose(unmerged, _gpt(**LLAMA).logprobs(X), atol=1e-3)
    save_adapter(model, tmp_path / "ad", base_fingerprint(_gpt(**LLAMA)))
    merge_lora(model)
    assert not any(".lora." in k for k in model.state_dict())
    torch.testing.assert_close(model.logprobs(X), unmerged, atol=1e-5, rtol=0)
    unmerge_adapter(model, tmp_path / "ad")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, base[k], atol=1e-6, rtol=0)


def test_adapter_saved_alone_loads_identically_and_refuses_another_base(tmp_path):
    model = _gpt()
    add_lora(model, LoRAConfig(rank=4, alpha=4, targets=("q", "v", "lm_head")))
    _perturb(model)
    want = model.logprobs(X)
    save_adapter(model, tmp_path / "ad")
    assert sorted(p.name for p in (tmp_path / "ad").iterdir()) == ["adapter.json",
                                                                   "adapter.safetensors"]
    again = load_adapter(_gpt(), tmp_path / "ad")
    assert torch.equal(again.logprobs(X), want)
    with pytest.raises(ModelFormatError, match="trained on another base model"):
        load_adapter(_gpt(seed=5), tmp_path / "ad")
    # a model directory holding its adapters unmerged loads with them
    model.save(tmp_path / "m")
    assert torch.equal(load_model(tmp_path / "m").logprobs(X), want)


def test_targets_matching_nothing_list_the_layers():
    with pytest.raises(ConfigError, match=r"wq match no linear layer.*c_attn.*c_proj"):
        add_lora(_gpt(), LoRAConfig(targets=("q", "wq")))
    with pytest.raises(ConfigError, match="gate match no linear layer"):
        add_lora(_gpt(), LoRAConfig(targets=("gate",)))  # GELU MLP: no gate block


def test_lora_merge_and_unmerge_commands(tmp_path, capsys):
    tok = train_tokenizer("char", ["abcdefghij klmnopqrstuvwxyz"])
    model = _gpt(**LLAMA)
    model.save(tmp_path / "base")
    tok.save(tmp_path / "base" / "tokenizer.json")
    add_lora(model, LoRAConfig(rank=2, targets=("q_proj", "v_proj", "down_proj")))
    _perturb(model)
    want = model.logprobs(X)
    model.save(tmp_path / "tuned")
    tok.save(tmp_path / "tuned" / "tokenizer.json")
    assert main(["lora", "save", str(tmp_path / "tuned"), "-o", str(tmp_path / "ad")]) == 0
    assert main(["lora", "merge", str(tmp_path / "base"), "--adapter", str(tmp_path / "ad"),
                 "-o", str(tmp_path / "merged")]) == 0
    merged = load_model(tmp_path / "merged")
    torch.testing.assert_close(merged.logprobs(X), want, atol=1e-5, rtol=0)
    assert main(["lora", "unmerge", str(tmp_path / "merged"), "--adapter", str(tmp_path / "ad"),
                 "-o", str(tmp_path / "back")]) == 0
    back, base = load_model(tmp_path / "back"), load_model(tmp_path / "base")
    for (k, v), w in zip(back.state_dict().items(), base.state_dict().values()):
        torch.testing.assert_close(v, w, atol=1e-6, rtol=0)
    assert main(["lora", "merge", str(tmp_path / "tuned"), "-o", str(tmp_path / "m2")]) == 0
    torch.testing.assert_close(load_model(tmp_path / "m2").logprobs(X), want, atol=1e-5, rtol=0)
    capsys.readouterr()
    assert main(["export", "hf", str(tmp_path / "tuned"), "-o", str(tmp_path / "hf")]) == 2
    assert "LoRA adapters unmerged" in capsys.readouterr().err
    other = _gpt(seed=3, **LLAMA)
    other.save(tmp_path / "other")
    tok.save(tmp_path / "other" / "tokenizer.json")
    capsys.readouterr()
    assert main(["lora", "merge", str(tmp_path / "other"), "--adapter", str(tmp_path / "ad"),
                 "-o", str(tmp_path / "bad")]) == 2
    assert "trained on another base model" in capsys.readouterr().err


def test_peft_format_round_trip_and_merge_equal_to_peft(tmp_path):
    pytest.importorskip("peft")
    from peft import LoraConfig as PeftLoraConfig
    from peft import PeftModel, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from chainrule.models.hf_mapping import hf_config_from_gpt, llama_to_hf_state_dict
    from chainrule.models.lora_peft import export_peft, import_peft

    def hf_base():
        hf = LlamaForCausalLM(LlamaConfig(**hf_config_from_gpt(_gpt(**LLAMA))))
        hf.load_state_dict(llama_to_hf_state_dict(_gpt(**LLAMA)), strict=False)
        return hf.eval()

    model = _gpt(**LLAMA)
    add_lora(model, LoRAConfig(rank=4, alpha=8, targets=("q", "v", "o_proj", "up", "down_proj")))
    _perturb(model)
    save_adapter(model, tmp_path / "ad")
    export_peft(tmp_path / "ad", tmp_path / "peft")
    theirs = PeftModel.from_pretrained(hf_base(), tmp_path / "peft").eval()
    with torch.no_grad():
        lp = torch.log_softmax(theirs(X).logits.float(), -1)
    torch.testing.assert_close(lp, model.logprobs(X), atol=1e-5, rtol=0)
    merged_theirs = theirs.merge_and_unload().state_dict()
    merged_ours = llama_to_hf_state_dict(merge_lora(model))
    for k, v in merged_ours.items():
        torch.testing.assert_close(merged_theirs[k], v, atol=1e-6, rtol=0)
    # an adapter PEFT wrote comes in with the same outputs
    peft = get_peft_model(hf_base(), PeftLoraConfig(r=2, lora_alpha=6, target_modules=[
        "k_proj", "gate_proj"], init_lora_weights=False)).eval()
    peft.save_pretrained(tmp_path / "from-peft")
    with torch.no_grad():
        want = torch.log_softmax(peft(X).logits.float(), -1)
    import_peft(tmp_path / "from-peft", _gpt(**LLAMA), tmp_path / "ours")
    got = load_adapter(_gpt(**LLAMA), tmp_path / "ours").logprobs(X)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
