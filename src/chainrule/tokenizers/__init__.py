"""Tokenizers: character, word, classic BPE and byte-level BPE, behind one interface."""

from chainrule.tokenizers.base import (
    BOS,
    EOS,
    PAD,
    UNK,
    Tokenizer,
    load_tokenizer,
    register_tokenizer,
    tokenizer_from_dict,
)

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "UNK",
    "Tokenizer",
    "load_tokenizer",
    "register_tokenizer",
    "tokenizer_from_dict",
]
