"""Corpora for the compiled n-gram counter's tests (test_ngram_fast, test_ngram_outofcore)."""

from __future__ import annotations

import random


def zipf_text(n_lines: int, seed: int, vocab: int = 60, max_words: int = 14) -> str:
    """``n_lines`` lines of 0..``max_words`` words drawn with Zipf weights from ``vocab`` words."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)]
    weights = [1 / (i + 1) for i in range(vocab)]
    return "\n".join(" ".join(rng.choices(words, weights, k=rng.randint(0, max_words)))
                     for _ in range(n_lines)) + "\n"
