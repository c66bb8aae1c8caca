"""word2vec (Mikolov et al. 2013): skip-gram and CBOW with negative sampling.

Skip-gram (``sgns``) trains a word's input vector v_w to tell its context words c (label 1) from
``negative`` noise words n drawn from the unigram distribution raised to 0.75 (label 0):

    loss = -log sigma(v_w . u_c) - sum_n log sigma(-v_w . u_n)

CBOW (``cbow``) does the same with the mean of the context words' input vectors predicting the
centre word. Both use the paper's tricks: frequent words are subsampled (an occurrence of w is
kept with probability (sqrt(f/t) + 1) t/f, f its count, t = sample x corpus size, as the original
tool and gensim do); the window is dynamic (each position draws its window uniformly from
1..window, so near words weigh more); the learning rate falls linearly from ``alpha`` to
``min_alpha`` over all epochs. Input vectors start uniform in (-0.5/D, 0.5/D), output vectors at 0.

Training runs in the compiled kernel ``chainrule._w2v_core`` (SGD, lock-free over ``threads``)
when it is built, else in a batched torch trainer (same model and schedule, updates applied per
mini-batch of pairs, slower). The vectors are the input vectors.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np

from chainrule.embeddings.corpus import EncodedCorpus
from chainrule.embeddings.vectors import WordVectors
from chainrule.errors import ConfigError

log = logging.getLogger("chainrule.embeddings")


@dataclass(frozen=True)
class Word2VecConfig:
    method: str = "sgns"  # "sgns" (skip-gram) or "cbow"
    dim: int = 100
    window: int = 5
    negative: int = 5
    epochs: int = 5
    sample: float = 1e-3  # subsampling threshold t (0 = off)
    alpha: float = 0.025
    min_alpha: float = 0.0001
    noise_power: float = 0.75
    cbow_mean: bool = True
    threads: int = 1
    seed: int = 1
    backend: str = "auto"  # "auto", "compiled" or "torch"

    def check(self) -> None:
        problems = []
        if self.method not in ("sgns", "cbow"):
            problems.append(f"method must be 'sgns' or 'cbow', got {self.method!r}.")
        for name in ("dim", "window", "epochs", "threads"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.negative < 1:
            problems.append(f"negative must be at least 1, got {self.negative}.")
        if self.backend not in ("auto", "compiled", "torch"):
            problems.append(f"backend must be auto, compiled or torch, got {self.backend!r}.")
        if problems:
            raise ConfigError(problems)


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """P(keep one occurrence) per word: (sqrt(f / t) + 1) t / f with t = sample * N, capped at 1."""
    if sample <= 0:
        return np.ones(len(counts), np.float32)
    t = sample * counts.sum()
    f = counts.astype(np.float64)
    return np.minimum(1.0, (np.sqrt(f / t) + 1) * t / f).astype(np.float32)


def noise_cumulative(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """Cumulative unigram^power weights scaled to integers (total about 2^31)."""
    p = counts.astype(np.float64) ** power
    cum = np.cumsum(p / p.sum()) * (2**31 - 1)
    return np.maximum(cum.astype(np.uint32), 1)


def compiled_kernel():
    try:
        from chainrule import _w2v_core
    except ImportError:
        return None
    return _w2v_core


def train_word2vec(corpus: EncodedCorpus, config: Word2VecConfig | None = None,
                   **overrides) -> tuple[WordVectors, dict]:
    """Train SGNS or CBOW vectors on an encoded corpus; returns (vectors, stats) where stats has
    ``seconds``, ``words_per_second`` (corpus words x epochs / wall time) and ``backend``."""
    cfg = Word2VecConfig(**{**asdict(config or Word2VecConfig()), **overrides})
    cfg.check()
    V, D = len(corpus.words), cfg.dim
    rng = np.random.default_rng(cfg.seed)
    syn0 = ((rng.random((V, D), dtype=np.float32) - 0.5) / D).astype(np.float32)
    syn1 = np.zeros((V, D), np.float32)
    keep = keep_probabilities(corpus.counts, cfg.sample)
    cum = noise_cumulative(corpus.counts, cfg.noise_power)
    kernel = compiled_kernel() if cfg.backend != "torch" else None
    if cfg.backend == "compiled" and kernel is None:
        raise ConfigError("the compiled word2vec kernel is not built; run "
                          "'python setup.py build_ext --inplace' or use --backend torch.")
    t0 = time.perf_counter()
    if kernel is not None:
        kernel.train(syn0, syn1, corpus.ids, corpus.starts, keep, cum, cfg.method == "sgns",
                     cfg.window, cfg.negative, cfg.epochs, cfg.alpha, cfg.min_alpha,
                     cfg.cbow_mean, cfg.threads, cfg.seed)
        backend = "compiled"
    else:
        from chainrule.embeddings.word2vec_torch import train_torch

        train_torch(syn0, syn1, corpus, keep, cum, cfg)
        backend = "torch"
    seconds = time.perf_counter() - t0
    words = len(corpus.ids) * cfg.epochs
    stats = {"seconds": seconds, "words_per_second": words / max(seconds, 1e-9),
             "backend": backend, "vocab_size": V, "corpus_words": len(corpus.ids)}
    log.info("%s: %d words x %d epochs in %.1fs (%.0f words/s, %s)", cfg.method,
             len(corpus.ids), cfg.epochs, seconds, stats["words_per_second"], backend)
    if not np.isfinite(syn0).all():
        raise ConfigError("word2vec diverged (non-finite vectors); lower --alpha.")
    return WordVectors(list(corpus.words), syn0), stats


__all__ = ["Word2VecConfig", "compiled_kernel", "keep_probabilities", "noise_cumulative",
           "train_word2vec"]
