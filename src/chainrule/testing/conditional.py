"""Tiny fitted encoder-decoders for the conformance suite, and the lecture's toy translation
tasks (copy, reversal) that test what attention buys.

``fit_conditional`` trains any conditional neural family by full-batch Adam with teacher
forcing; ``copy_task`` / ``reversal_task`` make (source, target) pairs of random ids, and
``token_accuracy`` scores greedy outputs position by position.
"""

from __future__ import annotations

import random

import torch

from chainrule.testing.conformance import TinyTask


def pad_rows(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in rows])
    out = torch.full((len(rows), int(lengths.max())), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out, lengths


def fit_conditional(model, targets: list[list[int]], sources: list[list[int]], steps: int = 60,
                    lr: float = 2e-2, batch_size: int = 0, seed: int = 0):
    """Adam on framed ``targets`` (``[bos] + y + [eos]``) given ``sources`` (plain ids).

    ``batch_size`` 0 is full-batch; otherwise seeded random mini-batches.
    """
    from chainrule.models.base import Source

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    with torch.enable_grad():
        for _ in range(steps):
            pick = (torch.randperm(len(targets), generator=g)[:batch_size].tolist()
                    if batch_size else range(len(targets)))
            tgt, lengths = pad_rows([targets[i] for i in pick], model.eos_id)
            src, src_len = pad_rows([sources[i] or [] for i in pick], model.source_pad_id)
            y = torch.where(torch.arange(tgt.shape[1])[None, 1:] < lengths[:, None],
                            tgt[:, 1:], -100)
            logits, _ = model(tgt[:, :-1], None, source=Source(src, src_len))
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(),
                                                     ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def fit_on_tiny_task(family: str, task: TinyTask, steps: int = 40, lr: float = 2e-2, **config):
    """A tiny ``family`` model fitted on the conformance task (sources: the words reversed)."""
    from chainrule.models.neural import build_neural_model

    torch.manual_seed(task.seed)
    model = build_neural_model(family, vocab_size=task.vocab_size, bos_id=task.bos_id,
                               eos_id=task.eos_id, source_eos_id=task.eos_id, **config)
    return fit_conditional(model, task.sequences, task.sources, steps=steps, lr=lr,
                           seed=task.seed)


def copy_task(n: int, vocab: int, min_len: int, max_len: int, seed: int = 0,
              reverse: bool = False) -> tuple[list[list[int]], list[list[int]]]:
    """(sources, framed targets): random ids 2..vocab-1; the target copies (or reverses) them."""
    rng = random.Random(seed)
    sources, targets = [], []
    for _ in range(n):
        x = [rng.randrange(2, vocab) for _ in range(rng.randint(min_len, max_len))]
        sources.append(x)
        targets.append([0, *(x[::-1] if reverse else x), 1])
    return sources, targets


def reversal_task(n: int, vocab: int, min_len: int, max_len: int, seed: int = 0):
    return copy_task(n, vocab, min_len, max_len, seed, reverse=True)


def token_accuracy(model, sources: list[list[int]], targets: list[list[int]]) -> float:
    """Greedy outputs against the targets (without bos), eos included, position by position."""
    from chainrule.decoding import GenerationConfig, generate

    cfg = GenerationConfig(strategy="greedy", max_new_tokens=max(len(t) for t in targets))
    outs = generate(model, [[] for _ in sources], cfg, sources=sources)
    right = total = 0
    for [c], t in zip(outs, targets):
        want = t[1:]
        got = list(c.token_ids) + ([model.eos_id] if c.finish_reason == "eos" else [])
        right += sum(a == b for a, b in zip(got, want))
        total += len(want)
    return right / total


__all__ = ["copy_task", "fit_conditional", "fit_on_tiny_task", "pad_rows", "reversal_task",
           "token_accuracy"]
