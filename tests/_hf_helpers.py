"""Tiny byte-level BPE tokenizers and chat templates for the HF import/export and chat tests."""

from __future__ import annotations

import json
from pathlib import Path

from chainrule.tokenizers import ByteBPETokenizer

SHAKESPEARE = (
    Path(__file__).resolve().parents[1] / "src" / "chainrule" / "resources" / "tinyshakespeare.txt"
)
IM_START, IM_END, EOT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"

# A ChatML template in the usual Jinja style, with a default system message (as SmolLM2's has).
CHATML_JINJA = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a small test model.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# The same format written with {{ }} expressions and no default system message.
CHATML_JINJA_BARE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA3_STYLE_JINJA = (
    "{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>"
    "\n\n{{ message['content'] }}<|eot_id|>{% endfor %}"
)


def corpus(n: int = 20_000) -> str:
    return SHAKESPEARE.read_text(encoding="utf-8")[:n]


def chat_tokenizer(vocab_size: int = 300) -> ByteBPETokenizer:
    """Our byte-level BPE with ChatML's two specials appended (BOS ``<s>``, EOS ``</s>``)."""
    base = ByteBPETokenizer.train([corpus()], vocab_size=vocab_size - 2)
    vocab = [*base.vocab, IM_START, IM_END]
    specials = {**base.special_tokens, IM_START: len(vocab) - 2, IM_END: len(vocab) - 1}
    return ByteBPETokenizer(vocab, base.merges, specials)


def hf_trained_tokenizer_json(path: Path, vocab_size: int = 300, digits: bool = False) -> Path:
    """A byte-level BPE ``tokenizer.json`` trained by the ``tokenizers`` library itself (an
    independent producer): ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>`` at ids 0, 1, 2.

    The corpus has many numbers, so merges join digits; with ``digits`` the saved tokenizer
    then splits every digit off first (SmolLM2's ``Digits`` step), which changes the ids.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT, IM_START, IM_END],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([corpus(), " in 1984 and 2024, 555-1234; 3.14159" * 400], trainer)
    if digits:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True), byte_level])
    tok.save(str(path))
    return path


def write_tokenizer_config(directory: Path, **fields) -> None:
    (directory / "tokenizer_config.json").write_text(json.dumps(fields), encoding="utf-8")
