"""Export to a Hugging Face ``tokenizer.json`` (written by hand from the format; no dependency).

Faithful mappings (same ids for ordinary text, checked by the tests):
    ``bytebpe`` -> BPE model + ByteLevel pre-tokenizer/decoder (GPT-2's regex; preceded by
                   ``Digits(individual_digits=True)`` for ``pretokenizer="gpt2-digits"``);
    ``char``    -> BPE model without merges, no pre-tokenizer (each character a symbol);
    ``word``    -> WordLevel model + WhitespaceSplit (then our word regex in "regex" mode).
Not exported: classic ``bpe``: its end-of-word marker is a symbol of its own that merges like
any other (``er`` + ``_``), and one space between words is implied by it; the ``tokenizers``
BPE model can only glue a suffix onto a word's last character and has no implied space.

Special tokens become ``added_tokens``; note that the ``tokenizers`` library always matches
them inside text, whereas chainrule treats their spelling as text unless ``allow_special``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from chainrule.errors import TokenizerError
from chainrule.fileio import write_json
from chainrule.tokenizers.base import UNK, Tokenizer


def _added(tok: Tokenizer) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "content": t,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for t, i in sorted(tok.special_tokens.items(), key=lambda kv: kv[1])
    ]


def _bpe_model(vocab: dict[str, int], merges: list[str], unk: str | None) -> dict[str, Any]:
    return {
        "type": "BPE",
        "dropout": None,
        "unk_token": unk,
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": False,
        "byte_fallback": False,
        "ignore_merges": False,
        "vocab": vocab,
        "merges": merges,
    }


def to_hf_dict(tok: Tokenizer) -> dict[str, Any]:
    """The ``tokenizer.json`` object for ``tok``; raises for kinds that cannot map faithfully."""
    vocab = {tok.id_to_token(i): i for i in range(tok.vocab_size)}
    body: dict[str, Any] = {"normalizer": None, "pre_tokenizer": None, "decoder": None}
    if tok.kind == "bytebpe":
        byte_level = {
            "type": "ByteLevel",
            "add_prefix_space": False,
            "trim_offsets": True,
            "use_regex": True,
        }
        body["pre_tokenizer"] = byte_level
        before = type(tok).HF_PRE_TOKENIZERS.get(getattr(tok, "pretokenizer", "gpt2"))
        if before:  # e.g. digits split apart first (SmolLM2)
            body["pre_tokenizer"] = {"type": "Sequence",
                                     "pretokenizers": [*map(dict, before), byte_level]}
        body["decoder"] = byte_level
        body["model"] = _bpe_model(vocab, [f"{a} {b}" for a, b in tok.merges], None)
    elif tok.kind == "char":
        body["decoder"] = {"type": "Fuse"}
        body["model"] = _bpe_model(vocab, [], UNK)
    elif tok.kind == "word":
        split = [{"type": "WhitespaceSplit"}]
        if tok.mode == "regex":
            from chainrule.tokenizers.word import WORD_PATTERN

            split.append(
                {
                    "type": "Split",
                    "pattern": {"Regex": WORD_PATTERN},
                    "behavior": "Isolated",
                    "invert": False,
                }
            )
        body["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": split}
        if tok.lowercase:
            body["normalizer"] = {"type": "Lowercase"}
        body["model"] = {"type": "WordLevel", "vocab": vocab, "unk_token": UNK}
    else:
        raise TokenizerError(
            f"a {tok.kind} tokenizer cannot be exported to tokenizer.json faithfully (its "
            "end-of-word marker is a separate symbol, which the tokenizers library cannot "
            "express); use a bytebpe, char or word tokenizer."
        )
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": _added(tok),
        "post_processor": None,
        **body,
    }


def export_hf(tok: Tokenizer, path: str | os.PathLike) -> Path:
    """Write ``tok`` as a Hugging Face ``tokenizer.json`` at ``path`` (atomically)."""
    path = Path(path)
    write_json(path, to_hf_dict(tok), indent=None)
    return path
