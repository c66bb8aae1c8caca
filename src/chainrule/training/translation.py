"""Training a conditional model (translation) through the one training loop.

    pairs -> tokenizers (one BPE per side, or one joint) -> length filter -> ParallelData
          -> chainrule.training.loop.train(objective=TeacherForcedCE(label_smoothing))

:class:`ParallelData` cuts its own batches (the loop's dataset protocol, like SFT's): each
batch is the framed targets ``[bos] y [eos]`` as inputs/next-token targets (teacher forcing:
the decoder reads the gold prefix) and the sources as a :class:`~chainrule.models.base.Source`.
Batches hold sentences of similar lengths (sorted within pools of 32 batches, the pools
shuffled each epoch by the seed), so little of a batch is padding; batch ``(step, micro)``
depends only on the seed, so a resumed run sees the same batches.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from chainrule.errors import ConfigError
from chainrule.models.base import Source
from chainrule.training.objectives import IGNORE, LossOutput, NextTokenCE, TrainBatch, _forward

Row = tuple[list[int], list[int]]  # (source ids, framed target ids)
_POOL = 32  # batches sorted by length together


class TeacherForcedCE(NextTokenCE):
    """Next-token cross-entropy given the source, optionally label-smoothed (Szegedy et al.
    2016): the target distribution is (1 - e) one-hot + e uniform over the vocabulary."""

    name = "teacher-forced"

    def __init__(self, label_smoothing: float = 0.0):
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
        self.label_smoothing = label_smoothing

    def check(self, model: Any) -> None:
        if not getattr(model, "conditional", False):
            raise ConfigError("teacher-forced translation training needs a conditional model "
                              "(seq2seq or transformer-ed).")

    def compute(self, model, batch):
        if batch.source is None:
            raise ConfigError("a translation batch needs its sources.")
        logits, _ = _forward(model, batch)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(),
                               batch.y.reshape(-1), ignore_index=IGNORE,
                               label_smoothing=self.label_smoothing)
        return LossOutput(loss, None)


class ParallelData:
    """Encoded sentence pairs that cut their own training and evaluation batches."""

    def __init__(self, rows: Sequence[Row], bos_id: int, eos_id: int, source_pad_id: int = 0):
        if not rows:
            raise ConfigError("no sentence pairs are left to train on (all were filtered out?); "
                              "raise max_len or check the corpus.")
        self.rows = list(rows)
        self.bos_id, self.eos_id, self.source_pad_id = bos_id, eos_id, source_pad_id

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[list[int], list[int]]], bos_id: int, eos_id: int,
                   source_pad_id: int = 0) -> ParallelData:
        """From (source ids, target ids) without boundaries: targets get ``[bos] .. [eos]``."""
        return cls([(list(s), [bos_id, *t, eos_id]) for s, t in pairs], bos_id, eos_id,
                   source_pad_id)

    def __len__(self) -> int:
        return len(self.rows)

    def target_tokens(self) -> int:
        """Predicted target tokens (eos included) over all pairs."""
        return sum(len(t) - 1 for _, t in self.rows)

    def collate(self, rows: Sequence[Row], device: torch.device | str = "cpu") -> TrainBatch:
        B = len(rows)
        T = max(len(t) for _, t in rows)
        S = max(1, max(len(s) for s, _ in rows))
        tgt = torch.full((B, T), self.eos_id, dtype=torch.long)
        y = torch.full((B, T - 1), IGNORE, dtype=torch.long)
        src = torch.full((B, S), self.source_pad_id, dtype=torch.long)
        src_len = torch.zeros(B, dtype=torch.long)
        for i, (s, t) in enumerate(rows):
            tgt[i, : len(t)] = torch.tensor(t)
            y[i, : len(t) - 1] = torch.tensor(t[1:])
            if s:
                src[i, : len(s)] = torch.tensor(s)
            src_len[i] = len(s)
        return TrainBatch(tgt[:, :-1].to(device), y.to(device), reset=True,
                          source=Source(src.to(device), src_len.to(device)))

    def train_sampler(self, cfg: Any, device: torch.device, micro_batches: int = 1):
        return _BucketedRows(self, cfg.batch_size, micro_batches, cfg.seed, device)

    def eval_sampler(self, cfg: Any, device: torch.device, what: str = ""):
        return _OrderedRows(self, cfg.batch_size, device)


class _BucketedRows:
    def __init__(self, data: ParallelData, batch_size: int, micro_batches: int, seed: int,
                 device: torch.device):
        self.data, self.B, self.micros = data, min(batch_size, len(data)), micro_batches
        self.seed, self.device = seed, device
        self.per_epoch = max(1, len(data) // self.B)
        self._epoch: int | None = None
        #: predicted target tokens (eos included, padding not) handed out so far; the loop's
        #: ``tokens_per_s`` is measured from it
        self.tokens_seen = 0

    def _batches(self, epoch: int) -> list[np.ndarray]:
        if self._epoch != epoch:
            rng = np.random.Generator(np.random.PCG64([self.seed, 3, epoch]))
            perm = rng.permutation(len(self.data))[: self.per_epoch * self.B]
            lengths = np.array([len(self.data.rows[i][1]) + len(self.data.rows[i][0])
                                for i in perm])
            batches = []
            pool = _POOL * self.B
            for a in range(0, len(perm), pool):
                chunk = perm[a : a + pool][np.argsort(lengths[a : a + pool], kind="stable")]
                batches += [chunk[b : b + self.B] for b in range(0, len(chunk), self.B)]
            order = rng.permutation(len(batches))
            self._epoch, self._cached = epoch, [batches[i] for i in order]
        return self._cached

    def batch(self, step: int, micro: int) -> TrainBatch:
        epoch, k = divmod(step * self.micros + micro, self.per_epoch)
        rows = [self.data.rows[i] for i in self._batches(epoch)[k]]
        self.tokens_seen += sum(len(t) - 1 for _, t in rows)
        return self.data.collate(rows, self.device)


class _OrderedRows:
    def __init__(self, data: ParallelData, batch_size: int, device: torch.device):
        self.data, self.B, self.device = data, min(batch_size, len(data)), device

    def batch(self, evaluation: int, i: int) -> TrainBatch:
        R = len(self.data)
        return self.data.collate([self.data.rows[(i * self.B + j) % R] for j in range(self.B)],
                                 self.device)


# -- tokenizers and the run --------------------------------------------------------------------
def train_tokenizers(cfg: Any, sources: Sequence[str], targets: Sequence[str]):
    """(source tokenizer, target tokenizer) of ``cfg.tokenizer_kind`` and ``cfg.vocab_size``;
    the same object twice when the model's ``joint_vocab`` is set."""
    from chainrule.tokenizers import train_tokenizer

    kind = cfg.tokenizer_kind
    kwargs: dict[str, Any] = {}
    if cfg.vocab_size:
        kwargs["vocab_size"] = cfg.vocab_size
    elif kind in ("bpe", "bytebpe"):
        kwargs["vocab_size"] = 8000
    if cfg.model_settings().get("joint_vocab"):
        tok = train_tokenizer(kind, [*sources, *targets], **kwargs)
        return tok, tok
    return train_tokenizer(kind, list(sources), **kwargs), train_tokenizer(kind, list(targets),
                                                                           **kwargs)


def encode_pairs(pairs, source_tokenizer, tokenizer, max_len: int):
    """Encoded (source, target) id pairs within ``max_len`` (source: max_len - 1 tokens and its
    end; target: max_len - 1 tokens and bos), and the number dropped."""
    from chainrule.data.parallel import filter_by_length

    return filter_by_length(pairs, source_tokenizer.encode, tokenizer.encode, max_len - 1,
                            max_len - 2)


def model_factory(source_tokenizer):
    """A loop factory that builds the family with the source tokenizer's vocabulary and ids."""
    from chainrule.training.build import model_kwargs

    def make(cfg, vocab_size, bos_id, eos_id):
        from chainrule.models.neural import build_neural_model

        kw = model_kwargs(cfg, vocab_size, bos_id, eos_id)
        kw["source_vocab_size"] = source_tokenizer.vocab_size
        kw["source_eos_id"] = _id(source_tokenizer.eos_id, 0)
        kw["source_pad_id"] = _id(getattr(source_tokenizer, "pad_id", None),
                                  kw["source_eos_id"])
        model = build_neural_model(cfg.family, **kw)
        model.source_tokenizer = source_tokenizer
        return model

    return make


def _id(value: int | None, default: int) -> int:
    return default if value is None else int(value)


def train_translation(cfg: Any, train_pairs, val_pairs, out_dir: str | os.PathLike, *,
                      tokenizer=None, source_tokenizer=None, resume: bool = False,
                      overwrite: bool = False, progress: bool = True,
                      plot: bool = True) -> dict[str, Any]:
    """Train ``cfg.family`` (a conditional family) on text pairs; write ``out_dir``.

    Tokenizers not given are trained on the training pairs (``joint_vocab``: one for both).
    ``source_tokenizer.json`` is written beside ``tokenizer.json``. Returns the loop's
    summary plus the pair counts and ``target_tokens_per_s`` (teacher-forced throughput).
    """
    from chainrule.training.loop import train

    if tokenizer is None or source_tokenizer is None:
        st, tt = train_tokenizers(cfg, [s for s, _ in train_pairs], [t for _, t in train_pairs])
        source_tokenizer, tokenizer = source_tokenizer or st, tokenizer or tt
    max_len = cfg.model_settings()["max_len"]
    rows, dropped = encode_pairs(train_pairs, source_tokenizer, tokenizer, max_len)
    pad = _id(getattr(source_tokenizer, "pad_id", None), _id(source_tokenizer.eos_id, 0))
    bos, eos = _id(tokenizer.bos_id, 0), _id(tokenizer.eos_id, 1)
    data = ParallelData.from_pairs(rows, bos, eos, pad)
    val = None
    if val_pairs:
        vrows, _ = encode_pairs(val_pairs, source_tokenizer, tokenizer, max_len)
        val = ParallelData.from_pairs(vrows, bos, eos, pad) if vrows else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if overwrite and not resume:  # start over: the old run goes before the new files come
        from chainrule.training.checkpoint import remove_run

        remove_run(out)
    source_tokenizer.save(out / "source_tokenizer.json")
    summary = train(cfg, data, val, out, tokenizer=tokenizer, resume=resume,
                    model_factory=model_factory(source_tokenizer),
                    objective=TeacherForcedCE(cfg.model_settings()["label_smoothing"]),
                    progress=progress, plot=plot)
    summary.update({
        "train_pairs": len(data), "filtered_pairs": dropped,
        "val_pairs": len(val) if val is not None else 0,
        # the loop counts the target tokens of the batches it trained on (ParallelData's
        # sampler keeps the count), so its tokens_per_s is teacher-forced target tokens/s
        "target_tokens_per_s": summary["tokens_per_s"],
    })
    return summary


__all__ = ["ParallelData", "TeacherForcedCE", "encode_pairs", "model_factory",
           "train_tokenizers", "train_translation"]
