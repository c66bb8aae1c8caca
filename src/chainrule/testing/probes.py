"""The tiny toy task the conformance suite fits models on, and the probe inputs its checks use."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

ATOL = 1e-4


@dataclass(frozen=True)
class TinyTask:
    """A tiny toy language to fit models on: ids 2..V-1 mostly count upwards, wrapping round.

    ``bos_id`` = 0 and ``eos_id`` = 1; every training sequence is ``bos ... eos``.
    """

    vocab_size: int = 12
    seed: int = 0
    n_sequences: int = 60
    bos_id: int = 0
    eos_id: int = 1
    sequences: list[list[int]] = field(init=False)
    #: a source per sequence for conditional models: its words reversed ("translation")
    sources: list[list[int]] = field(init=False)

    def __post_init__(self):
        rng = random.Random(1234)  # the corpus is fixed; ``seed`` is for the model
        words = list(range(2, self.vocab_size))
        seqs = []
        for _ in range(self.n_sequences):
            length = rng.randint(3, 10)
            w = rng.choice(words)
            seq = [self.bos_id, w]
            for _ in range(length - 1):
                w = words[(words.index(w) + 1) % len(words)] if rng.random() < 0.85 else rng.choice(words)
                seq.append(w)
            seq.append(self.eos_id)
            seqs.append(seq)
        object.__setattr__(self, "sequences", seqs)
        object.__setattr__(self, "sources", [list(reversed(q[1:-1])) for q in seqs])


def _probe_batch(task: TinyTask, batch: int = 3, length: int = 9, seed: int = 7) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    body = torch.randint(2, task.vocab_size, (batch, length - 1), generator=g)
    return torch.cat([torch.full((batch, 1), task.bos_id), body], dim=1)


def _probe_sources(model, task: TinyTask, batch: int, seed: int = 11) -> list[list[int]] | None:
    """Random sources of different lengths for a conditional model; None for any other."""
    if not model.conditional:
        return None
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(2, task.vocab_size, (2 + i % 4,), generator=g).tolist()
            for i in range(batch)]


def _rows(sources, index) -> list[list[int]] | None:
    return None if sources is None else [sources[int(i)] for i in index]


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL, rtol: float = 0.0) -> bool:
    """Equal within ``atol``, treating -inf == -inf as equal (MLE models have zeros)."""
    if a.shape != b.shape:
        return False
    both_inf = torch.isneginf(a) & torch.isneginf(b)
    a = torch.where(both_inf, torch.zeros_like(a), a)
    b = torch.where(both_inf, torch.zeros_like(b), b)
    return bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=rtol))


def _assert_normalised(lp: torch.Tensor, where: str) -> None:
    total = torch.logsumexp(lp.double(), dim=-1)
    worst = (total.abs()).max().item()
    assert worst <= 1e-5, f"{where}: log-probabilities do not sum to 1 (|logsumexp| up to {worst:.2e})"
    assert not torch.isnan(lp).any(), f"{where}: NaN in log-probabilities"
    assert not torch.isposinf(lp).any(), f"{where}: +inf in log-probabilities"


def _pad(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(q) for q in seqs])
    batch = torch.full((len(seqs), int(lengths.max())), pad, dtype=torch.long)
    for i, q in enumerate(seqs):
        batch[i, : len(q)] = torch.tensor(q)
    return batch, lengths
