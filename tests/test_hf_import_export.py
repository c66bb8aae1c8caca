"""Hugging Face directories in and out: tiny random GPT-2 and Llama models built and saved by
transformers, imported, compared logit for logit; our own GPTs exported and loaded back by
transformers; tokenizer ids against the tokenizers library; and bad inputs, one sentence each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from _hf_helpers import (
    CHATML_JINJA,
    chat_tokenizer,
    corpus,
    hf_trained_tokenizer_json,
    write_tokenizer_config,
)
from chainrule.cli import main
from chainrule.errors import ChainruleError, ModelFormatError, TokenizerError
from chainrule.fileio import read_safetensors, write_safetensors
from chainrule.models import load_model
from chainrule.models.hf import export_hf, import_hf
from chainrule.models.neural import build_neural_model
from chainrule.tokenizers import load_tokenizer
from chainrule.tokenizers.chat import read_chat_jinja, write_chat_template

transformers = pytest.importorskip("transformers")
V = 300
TEXTS = ["Hello world, don't 12345 héllo ☃ 日本語", "a   b\n\n c\t\td  ", "  leading",
         "I'll we've THEY'RE 3.14159", "KING RICHARD III:\nNow is the winter"]


def _hf_model(kind: str, **kw):
    """A tiny random transformers model (seeded) of architecture ``kind``."""
    torch.manual_seed(kw.pop("seed", 0))
    if kind == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=V, n_positions=64, n_embd=32, n_layer=2,
                                      n_head=4, bos_token_id=0, eos_token_id=0, **kw)
        return transformers.GPT2LMHeadModel(cfg).eval()
    cls = {"llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
           "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM)}[kind]
    cfg = cls[0](vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                 num_attention_heads=4, max_position_embeddings=64, rope_theta=5000.0,
                 rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, **kw)
    model = cls[1](cfg).eval()
    with torch.no_grad():  # norms start at 1; make them matter
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


def _write_hf_dir(model, directory: Path, **save_kw) -> Path:
    """Save ``model`` with save_pretrained plus a tokenizers-trained tokenizer.json."""
    model.save_pretrained(directory, **save_kw)
    hf_trained_tokenizer_json(directory / "tokenizer.json", V)
    write_tokenizer_config(directory, bos_token="<|im_start|>", eos_token="<|im_end|>",
                           chat_template=CHATML_JINJA)
    return directory


def _tokens(T: int = 24, B: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def _hf_logprobs(model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.log_softmax(model(x).logits.float(), dim=-1)


SPECS = {
    "gpt2-tied": ("gpt2", {}),
    "gpt2-untied": ("gpt2", {"tie_word_embeddings": False, "n_inner": 40}),
    "llama-gqa-tied": ("llama", {"num_key_value_heads": 2, "tie_word_embeddings": True}),
    "llama-gqa-untied": ("llama", {"num_key_value_heads": 1, "tie_word_embeddings": False}),
    "llama-mha-biases": ("llama", {"attention_bias": True, "mlp_bias": True}),
    "mistral": ("mistral", {"num_key_value_heads": 2, "sliding_window": None}),
}


@pytest.fixture(scope="module", params=list(SPECS))
def imported(request, tmp_path_factory):
    kind, kw = SPECS[request.param]
    base = tmp_path_factory.mktemp(request.param)
    hf = _hf_model(kind, **kw)
    out = import_hf(_write_hf_dir(hf, base / "hf"), base / "ours")
    return hf, out, base


def test_import_gives_transformers_logits(imported):
    hf, out, _ = imported
    ours = load_model(out)
    x = _tokens()
    diff = (ours.logprobs(x) - _hf_logprobs(hf, x)).abs().max().item()
    assert diff < 1e-5, diff
    assert ours.num_parameters() == sum(p.numel() for p in hf.parameters())
    assert (ours.bos_id, ours.eos_id) == (hf.config.bos_token_id, hf.config.eos_token_id)


def test_imported_model_decodes_like_transformers_generate(imported):
    from chainrule.decoding import GenerationConfig, generate

    hf, out, _ = imported
    ours = load_model(out)
    prompt = [5, 17, 42, 99]
    cfg = GenerationConfig(strategy="greedy", max_new_tokens=12, ignore_eos=True)
    [[c]] = generate(ours, [prompt], cfg)
    seq = torch.tensor([[ours.bos_id, *prompt]])
    with torch.no_grad():  # greedy by hand: transformers' full forward pass at every step
        for _ in range(12):
            seq = torch.cat([seq, hf(seq).logits[:, -1:].argmax(-1)], dim=1)
    assert c.token_ids == seq[0, 5:].tolist()


def test_import_keeps_the_chat_template_and_tokenizer(imported):
    hf, out, base = imported
    assert read_chat_jinja(out) == CHATML_JINJA
    from tokenizers import Tokenizer

    theirs = Tokenizer.from_file(str(base / "hf" / "tokenizer.json"))
    ours = load_tokenizer(out)
    for text in TEXTS:
        assert ours.encode(text) == theirs.encode(text).ids, text
    chat = "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n"
    assert ours.encode(chat, allow_special=True) == theirs.encode(chat).ids
    # config.json's ids win over tokenizer_config.json's spellings (they agree for Llama here)
    assert (ours.bos_id, ours.eos_id) == (hf.config.bos_token_id, hf.config.eos_token_id)


@pytest.mark.parametrize("digits", [False, True], ids=["gpt2", "gpt2-digits"])
def test_tokenizer_ids_equal_tokenizers(tmp_path, digits):
    """Including SmolLM2's digit splitting, and a vocabulary that lacks a byte symbol (the
    byte is dropped, as tokenizers does; the id it had becomes an unused special)."""
    from tokenizers import Tokenizer

    from chainrule.tokenizers._pretok import bytes_to_unicode
    from chainrule.tokenizers.hf_import import bytebpe_from_hf

    path = hf_trained_tokenizer_json(tmp_path / "tokenizer.json", V, digits=digits)
    data = json.loads(path.read_text())
    ctrl = bytes_to_unicode()[4]
    assert not any(ctrl in "".join(m) for m in data["model"]["merges"])
    hole = data["model"]["vocab"].pop(ctrl)
    (tmp_path / "holed.json").write_text(json.dumps(data))
    texts = [*TEXTS, "in 1984, 3.14159 \u2460 \u00b2 \u0663 12ab34 year2024", "x\x04y 99"]
    for source, name in ((path, "full"), (tmp_path / "holed.json", "holed")):
        ours = bytebpe_from_hf(json.loads(source.read_text()))
        assert ours.pretokenizer == ("gpt2-digits" if digits else "gpt2")
        theirs = Tokenizer.from_file(str(source))
        for text in texts:
            assert ours.encode(text) == theirs.encode(text).ids, (name, text)
    assert ours.id_to_token(hole) == f"<|chainrule_unused_{hole}|>"
    plain = Tokenizer.from_file(str(hf_trained_tokenizer_json(tmp_path / "plain.json", V)))
    assert (theirs.encode(texts[-2]).ids != plain.encode(texts[-2]).ids) == digits


def test_import_round_trips_through_export(imported, tmp_path):
    """import(export(x)) == x: the same config, weights, tokenizer and chat template."""
    _, out, _ = imported
    again = import_hf(export_hf(out, tmp_path / "hf"), tmp_path / "again")
    assert json.loads((again / "config.json").read_text()) == \
        json.loads((out / "config.json").read_text())
    a, b = read_safetensors(out / "model.safetensors"), read_safetensors(again /
                                                                         "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert load_tokenizer(again).serialise() == load_tokenizer(out).serialise()
    assert read_chat_jinja(again) == read_chat_jinja(out)


def test_import_sharded_checkpoint_and_bfloat16(tmp_path):
    hf = _hf_model("llama", num_key_value_heads=2)
    src = _write_hf_dir(hf, tmp_path / "hf", max_shard_size="20KB")
    assert (src / "model.safetensors.index.json").exists()
    x = _tokens()
    ours = load_model(import_hf(src, tmp_path / "f32"))
    assert (ours.logprobs(x) - _hf_logprobs(hf, x)).abs().max() < 1e-5
    half = load_model(import_hf(src, tmp_path / "bf16", dtype="bfloat16"))
    assert next(half.parameters()).dtype == torch.bfloat16
    ref = hf.to(torch.bfloat16).state_dict()["model.embed_tokens.weight"]
    assert torch.equal(half.transformer.wte.weight, ref)


# -- export ------------------------------------------------------------------------------------
EXPORT_SHAPES = {
    "gpt2-tied": {},
    "gpt2-untied": {"tie_weights": False},
    "llama-gqa-tied": {"positions": "rotary", "norm": "rmsnorm", "mlp": "swiglu", "bias": False,
                       "n_kv_head": 2, "n_inner": 40, "rope_theta": 500.0},
    "llama-untied-biases": {"positions": "rotary", "norm": "rmsnorm", "mlp": "swiglu",
                            "tie_weights": False, "layer_norm_eps": 1e-6},
}


def _our_model(tmp_path: Path, **cfg) -> Path:
    tok = chat_tokenizer(V)
    torch.manual_seed(3)
    model = build_neural_model("gpt", vocab_size=V, block_size=64, n_layer=2, n_head=4,
                               n_embd=32, bos_id=tok.bos_id, eos_id=tok.eos_id, **cfg)
    with torch.no_grad():  # random, not just initialised: biases and norm gains too
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save(tmp_path / "ours")
    tok.save(tmp_path / "ours" / "tokenizer.json")
    write_chat_template(tmp_path / "ours", CHATML_JINJA)
    return tmp_path / "ours"


@pytest.mark.parametrize("shape", list(EXPORT_SHAPES))
def test_export_loads_in_transformers_with_the_same_logits(tmp_path, shape):
    src = _our_model(tmp_path, **EXPORT_SHAPES[shape])
    out = export_hf(src, tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(hf).__name__ == ("GPT2LMHeadModel" if shape.startswith("gpt2")
                                 else "LlamaForCausalLM")
    x = _tokens()
    ours = load_model(src)
    diff = (ours.logprobs(x) - _hf_logprobs(hf, x)).abs().max().item()
    assert diff < 1e-5, diff
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    tok = load_tokenizer(src)
    for text in TEXTS:
        assert hf_tok(text, add_special_tokens=False)["input_ids"] == tok.encode(text), text
    messages = [{"role": "user", "content": "Hi"}]
    assert "You are a small test model." in hf_tok.apply_chat_template(messages, tokenize=False)


def test_export_of_a_trained_model(tmp_path):
    """A GPT trained a few steps (not just random) exports to the same logits."""
    src = _our_model(tmp_path, positions="rotary", norm="rmsnorm", mlp="swiglu", bias=False)
    model, tok = load_model(src), load_tokenizer(src)
    data = torch.tensor([tok.encode(corpus(4000))[:1000]])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(5):
        i = step * 60
        logits, _ = model(data[:, i : i + 60])
        loss = torch.nn.functional.cross_entropy(logits[0, :-1], data[0, i + 1 : i + 60])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.save(src)
    hf = transformers.AutoModelForCausalLM.from_pretrained(export_hf(src, tmp_path / "hf"))
    x = data[:, :40]
    assert (model.logprobs(x) - _hf_logprobs(hf.eval(), x)).abs().max() < 1e-5


# -- bad input ---------------------------------------------------------------------------------
@pytest.fixture
def hf_dir(tmp_path) -> Path:
    return _write_hf_dir(_hf_model("llama", num_key_value_heads=2), tmp_path / "hf")


def _edit_config(directory: Path, **changes) -> None:
    cfg = json.loads((directory / "config.json").read_text())
    cfg.update(changes)
    (directory / "config.json").write_text(json.dumps(cfg))


def _nothing_written(tmp_path: Path, out: Path) -> bool:
    return not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def _break_missing_tensor(d):
    t = read_safetensors(d / "model.safetensors")
    del t["model.layers.1.self_attn.k_proj.weight"]
    write_safetensors(d / "model.safetensors", t)
    return "lacks tensor 'model.layers.1.self_attn.k_proj.weight'"


def _break_shape(d):
    _edit_config(d, intermediate_size=40)
    return "has shape"


def _break_extra_tensor(d):
    t = read_safetensors(d / "model.safetensors")
    t["score.weight"] = torch.zeros(2, 32)
    write_safetensors(d / "model.safetensors", t)
    return "'score.weight'"


def _break_no_weights(d):
    (d / "model.safetensors").unlink()
    return "no model.safetensors"


def _break_pickle_only(d):
    (d / "model.safetensors").rename(d / "pytorch_model.bin")
    return "pickled"


def _break_truncated(d):
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    return "safetensors"


def _break_qwen2(d):
    _edit_config(d, model_type="qwen2")
    return "qwen2 model, which has biases"


def _break_unknown_type(d):
    _edit_config(d, model_type="bert")
    return "model_type 'bert'"


def _break_rope_scaling(d):
    _edit_config(d, rope_parameters={"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0})
    return "rope scaling 'llama3'"


def _break_no_config(d):
    (d / "config.json").unlink()
    return "no config.json"


def _break_no_tokenizer(d):
    (d / "tokenizer.json").unlink()
    return "no tokenizer.json"


def _break_wordlevel_tokenizer(d):
    (d / "tokenizer.json").write_text(json.dumps({
        "version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None,
        "decoder": None, "model": {"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "a"}}))
    return "WordLevel tokenizer, not byte-level BPE"


def _break_split_pretokenizer(d):
    data = json.loads((d / "tokenizer.json").read_text())
    data["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
         "use_regex": False}]}
    (d / "tokenizer.json").write_text(json.dumps(data))
    return "cannot reproduce"


BREAKAGES = {f.__name__.removeprefix("_break_"): f for f in [
    _break_missing_tensor, _break_shape, _break_extra_tensor, _break_no_weights,
    _break_pickle_only, _break_truncated, _break_qwen2, _break_unknown_type, _break_rope_scaling,
    _break_no_config, _break_no_tokenizer, _break_wordlevel_tokenizer, _break_split_pretokenizer,
]}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_bad_hf_directory_is_one_sentence_and_writes_nothing(hf_dir, tmp_path, breakage, capsys):
    expected = BREAKAGES[breakage](hf_dir)
    out = tmp_path / "out" / "model"
    out.parent.mkdir()
    with pytest.raises((ModelFormatError, TokenizerError)) as e:
        import_hf(hf_dir, out)
    assert expected in str(e.value) and "\n" not in str(e.value)
    assert _nothing_written(tmp_path, out)
    assert main(["import", "hf", str(hf_dir), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert _nothing_written(tmp_path, out)


def test_import_refuses_a_non_empty_output_directory_unless_forced(hf_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ChainruleError, match="not empty"):
        import_hf(hf_dir, out)
    assert (out / "keep.txt").read_text() == "mine"
    import_hf(hf_dir, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").exists()


def test_export_refuses_what_transformers_cannot_load(tmp_path):
    hybrid = _our_model(tmp_path, positions="rotary")  # rotary with LayerNorm and GELU
    with pytest.raises(ModelFormatError, match="neither GPT-2's shape"):
        export_hf(hybrid, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    lstm = build_neural_model("lstm", vocab_size=V)
    lstm.save(tmp_path / "lstm")
    with pytest.raises(ModelFormatError, match="only the gpt family"):
        export_hf(tmp_path / "lstm", tmp_path / "hf")


# -- command line ------------------------------------------------------------------------------
def test_cli_import_and_export(hf_dir, tmp_path, capsys):
    assert main(["import", "hf", str(hf_dir), "-o", str(tmp_path / "m"), "--dtype",
                 "bfloat16"]) == 0
    out = capsys.readouterr().out
    assert "llama-shaped gpt" in out and "chat template chatml" in out and "bfloat16" in out
    assert main(["export", "hf", str(tmp_path / "m"), "-o", str(tmp_path / "back")]) == 0
    assert "exported" in capsys.readouterr().out
    cfg = json.loads((tmp_path / "back" / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["num_key_value_heads"] == 2
    assert cfg["dtype"] == "bfloat16"
    assert main(["export", "hf", str(tmp_path / "m"), "-o", str(tmp_path / "back")]) == 2
    assert "not empty" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "back")


def test_every_command_works_on_an_imported_llama(tmp_path, capsys):
    """An imported Llama-shaped model is a model like any other: eval ppl / surprisal / pairs,
    generate with every strategy, streaming and a batch of prompts, all through the CLI."""
    hf = _hf_model("llama", num_key_value_heads=2, tie_word_embeddings=False)
    d = import_hf(_write_hf_dir(hf, tmp_path / "hf"), tmp_path / "m")
    data = tmp_path / "t.txt"
    data.write_text("Hello world, don't.\nNow is the winter\n")
    pairs = tmp_path / "p.jsonl"
    pairs.write_text(json.dumps({"sentence_good": "Now is the winter",
                                 "sentence_bad": "winter the is Now"}) + "\n")

    def run(*argv):
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        assert code == 0, out.err
        return out.out

    report = json.loads(run("eval", "ppl", d, "--data", data, "--json"))["models"][0]
    ours = load_model(d)
    tok = load_tokenizer(d / "tokenizer.json")
    ids = [[ours.bos_id, *tok.encode(x), ours.eos_id] for x in data.read_text().splitlines()]
    with torch.no_grad():  # the same sentences scored by transformers
        total = sum(float(_hf_logprobs(hf, torch.tensor([s[:-1]]))[0]
                          .gather(-1, torch.tensor(s[1:])[:, None]).sum()) for s in ids)
    assert report["logprob"] == pytest.approx(total, abs=1e-3)
    csv_out = tmp_path / "s.csv"
    run("eval", "surprisal", d, "--data", data, "-o", csv_out)
    assert len(csv_out.read_text().splitlines()) > 4
    assert json.loads(run("eval", "pairs", d, "--data", pairs, "--json"))["models"]
    for strategy in ("greedy", "sample", "beam"):
        out = json.loads(run("generate", d, "--prompt", "Now is", "--prompt", "Hello",
                             "--strategy", strategy, "--max-tokens", "5", "--seed", "1",
                             "--json"))
        assert len(out["prompts"]) == 2
        assert all(len(p["outputs"][0]["token_ids"]) <= 5 for p in out["prompts"])
    streamed = run("generate", d, "--prompt", "Now is", "--strategy", "greedy",
                   "--max-tokens", "5", "--stream")
    plain = run("generate", d, "--prompt", "Now is", "--strategy", "greedy", "--max-tokens", "5")
    assert streamed == plain
