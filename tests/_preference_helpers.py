"""What the preference tests share: a tiny word vocabulary and a one-block GPT over it."""

from __future__ import annotations

import torch

from chainrule.models.neural import build_neural_model
from chainrule.tokenizers import train_tokenizer

WORDS = "the cat sat on a mat and the dog ran to the red box by a big tree in the sun"


def word_tokenizer():
    return train_tokenizer("word", [WORDS])


def tiny_gpt(tok, seed: int = 0, n_embd: int = 32):
    """A one-block GPT over ``tok``'s vocabulary, seeded, in eval mode."""
    torch.manual_seed(seed)
    return build_neural_model("gpt", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                              eos_id=tok.eos_id, n_layer=1, n_head=2, n_embd=n_embd,
                              block_size=32).eval()
