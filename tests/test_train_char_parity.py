"""The CLI's character data for ``shakespeare-char-cpu`` is nanoGPT's ``shakespeare_char`` data.

nanoGPT's ``data/shakespeare_char/prepare.py`` maps the sorted characters of Tiny Shakespeare
to 0..64 and keeps the first 90% of the characters for training. ``chainrule train --preset
shakespeare-char-cpu`` gets its ids from the char tokenizer (4 special tokens first) and the
token cache; the two must be the same sequence up to that offset, cut at the same character, so
that validation losses compare (issue 21). The reference is written out here from that
convention, not taken from nanoGPT's code.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from chainrule.tokenizers import train_tokenizer
from chainrule.training.config import make_config
from chainrule.training.data import corpus_ids


def _nanogpt_reference(text: str) -> tuple[np.ndarray, np.ndarray, int]:
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.fromiter((stoi[c] for c in text), dtype=np.int64, count=len(text))
    n = int(len(ids) * 0.9)
    return ids[:n], ids[n:], len(chars)


def test_cli_char_ids_and_split_are_nanogpts_shifted_by_the_specials(tmp_path):
    path = resources.files("chainrule") / "resources" / "tinyshakespeare.txt"
    text = path.read_text(encoding="utf-8")
    cfg = make_config("gpt", "shakespeare-char-cpu")
    tok = train_tokenizer(cfg.tokenizer_kind, [path])
    data = corpus_ids([path], tok, tmp_path / "cache", boundaries=cfg.boundaries,
                      val_fraction=cfg.val_fraction)
    ref_train, ref_val, ref_vocab = _nanogpt_reference(text)

    assert (len(data.train), len(data.val)) == (1_003_854, 111_540) == (len(ref_train),
                                                                         len(ref_val))
    assert tok.vocab_size == ref_vocab + 4 == 69
    shift = 4  # <pad> <unk> <s> </s>
    assert np.array_equal(np.asarray(data.train, dtype=np.int64), ref_train + shift)
    assert np.array_equal(np.asarray(data.val, dtype=np.int64), ref_val + shift)
    # the specials never occur, so they are never targets: only four extra output classes
    assert int(np.asarray(data.train).min()) == shift
