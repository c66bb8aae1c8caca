"""Tokenizers: character, word, classic BPE and byte-level BPE, behind one interface.

Train with :func:`train_tokenizer`, load with :func:`load_tokenizer`; every tokenizer has
``<s>``/``</s>`` ids (``bos_id``/``eos_id``) so a sentence is framed as
``[bos] + encode(line) + [eos]``.
"""

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
from chainrule.tokenizers.bpe import BPETokenizer
from chainrule.tokenizers.bytebpe import ByteBPETokenizer
from chainrule.tokenizers.char import CharTokenizer
from chainrule.tokenizers.hf import export_hf
from chainrule.tokenizers.train import KINDS, read_corpus, train_tokenizer
from chainrule.tokenizers.word import WordTokenizer

__all__ = [
    "BOS",
    "EOS",
    "KINDS",
    "PAD",
    "UNK",
    "BPETokenizer",
    "ByteBPETokenizer",
    "CharTokenizer",
    "Tokenizer",
    "WordTokenizer",
    "export_hf",
    "load_tokenizer",
    "read_corpus",
    "register_tokenizer",
    "tokenizer_from_dict",
    "train_tokenizer",
]
