"""Transfer learning: a linear head on top of any chainrule model, for tagging or classification.

The body is any neural family with ``hidden(idx) -> ((B, T, C), state)`` (bert, gpt, lstm, ...).
Each sentence becomes ``[bos] ids [eos]``; a word's features are those of its first token, a
sentence's are the mean over its real tokens. ``freeze=True`` trains the head only (the body runs
in eval mode, without gradients); otherwise body and head are trained together.

This module has its own small loop (AdamW, shuffled mini-batches, a fixed number of epochs,
seeded), not :func:`chainrule.training.loop.train`: a run is a few epochs over a few thousand
sentences with padding, and needs none of the main loop's schedule, checkpointing or streaming.
"""

from __future__ import annotations

import math
import os
import random
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from chainrule.data.tagged import TaggedSentence
from chainrule.errors import ConfigError, DataError

TASKS = ("tag", "classify")


def file_id(source: str) -> str:
    """``"/x/brown.zip:brown/ca01"`` or ``"/x/brown/ca01"`` -> ``"ca01"``."""
    return source.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def read_file_labels(path: str | os.PathLike) -> dict[str, str]:
    """File id -> label from ``FILEID LABEL`` lines (NLTK's ``cats.txt``): a file, or the
    ``cats.txt`` inside a corpus zip or directory.

    Raises:
        DataError: no such labels, or a line that is not ``FILEID LABEL``.
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(path.rglob("cats.txt"))
        if not found:
            raise DataError(f"{str(path)!r} has no cats.txt; pass --labels FILE with one "
                            "'FILEID LABEL' line per file.")
        path = found[0]
        text, name = path.read_text("utf-8"), str(path)
    elif path.name.lower().endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            members = [n for n in z.namelist() if n.rsplit("/", 1)[-1] == "cats.txt"]
            if not members:
                raise DataError(f"{str(path)!r} has no cats.txt; pass --labels FILE with one "
                                "'FILEID LABEL' line per file.")
            text, name = z.read(members[0]).decode("utf-8"), f"{path}:{members[0]}"
    else:
        text, name = path.read_text("utf-8"), str(path)
    out = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(f"{name} line {lineno}: {line.strip()!r} is not 'FILEID LABEL'; a "
                            "label file has one file id and one label per line.")
        out[parts[0]] = parts[1]
    if not out:
        raise DataError(f"{name} holds no 'FILEID LABEL' line.")
    return out


@dataclass
class Example:
    """One sentence as model input: ``ids`` (with bos/eos), and the token positions and label
    indices of its words (tagging) or its one label index (classification)."""

    ids: list[int]
    positions: list[int]
    labels: list[int]


def encode_words(tokenizer, words: Sequence[str]) -> tuple[list[int], list[int]]:
    """(ids, first-token index of each word); each word is encoded on its own, after a space
    unless it is the first, so word boundaries are exact for any tokenizer."""
    ids, starts = [], []
    for i, w in enumerate(words):
        piece = tokenizer.encode(w if i == 0 else " " + w) or tokenizer.encode(w)
        if not piece:
            piece = [tokenizer.unk_id] if tokenizer.unk_id is not None else []
        if not piece:
            raise DataError(f"the tokenizer maps the word {w!r} to no token at all.")
        starts.append(len(ids))
        ids.extend(piece)
    return ids, starts


def make_examples(model, tokenizer, sentences: Sequence[TaggedSentence], task: str,
                  label_index: dict[str, int], file_labels: dict[str, str] | None = None
                  ) -> list[Example]:
    """Encode sentences for ``task``; a sentence longer than the model's window is cut."""
    limit = getattr(model.cfg, "block_size", None)
    vocab = model.vocab_size
    out = []
    for s in sentences:
        ids, starts = encode_words(tokenizer, s.words)
        if ids and max(ids) >= vocab:
            raise DataError(f"the tokenizer gives id {max(ids)} but the model's vocabulary has "
                            f"{vocab} entries; fine-tune with the tokenizer saved with the model.")
        if limit is not None and len(ids) + 2 > limit:
            ids = ids[: limit - 2]
        row = [model.bos_id, *ids, model.eos_id]
        if task == "tag":
            keep = [(1 + p, label_index[t]) for p, t in zip(starts, s.tags) if p < len(ids)]
            if keep:
                pos, lab = zip(*keep)
                out.append(Example(row, list(pos), list(lab)))
        else:
            out.append(Example(row, [], [label_index[file_labels[file_id(s.file)]]]))
    return out


class FineTuner(nn.Module):
    """``body`` (a chainrule model) + a linear ``head`` over its last hidden states."""

    def __init__(self, body, n_labels: int, task: str, freeze: bool = False):
        super().__init__()
        if task not in TASKS:
            raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}.")
        if not hasattr(body, "hidden"):
            raise ConfigError(f"a {getattr(body, 'family', type(body).__name__)} model has no "
                              "hidden states to put a head on; fine-tune a neural model "
                              "(bert, gpt, lstm).")
        self.body, self.task, self.freeze = body, task, freeze
        with torch.no_grad():
            was = body.training
            body.eval()
            probe = torch.tensor([[body.bos_id, body.eos_id]], device=body.device)
            width = self._features(probe, torch.tensor([2]))[0].shape[-1]
            body.train(was)
        self.head = nn.Linear(width, n_labels).to(body.device)
        if freeze:
            for p in body.parameters():
                p.requires_grad_(False)

    def _features(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor]:
        if getattr(self.body, "masked", False):  # bidirectional: keep padding out of attention
            h, _ = self.body.hidden(x, None, lengths.to(x.device))
        else:  # left-to-right: right padding never reaches a real position
            h, _ = self.body.hidden(x)
        return (h,)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, n_labels) per-token logits (tag) or (B, n_labels) (classify)."""
        if self.freeze:
            with torch.no_grad():
                (h,) = self._features(x, lengths)
        else:
            (h,) = self._features(x, lengths)
        if self.task == "tag":
            return self.head(h)
        real = (torch.arange(x.shape[1], device=x.device)[None, :]
                < lengths.to(x.device)[:, None]).to(h.dtype)
        pooled = (h * real[..., None]).sum(1) / real.sum(1, keepdim=True)
        return self.head(pooled)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.body.eval()  # no dropout in a frozen body
        return self


def _batch(examples: Sequence[Example], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(e.ids) for e in examples])
    x = torch.full((len(examples), int(lengths.max())), pad, dtype=torch.long)
    for i, e in enumerate(examples):
        x[i, : len(e.ids)] = torch.tensor(e.ids)
    return x.to(device), lengths


def _loss_and_preds(model: FineTuner, batch: Sequence[Example], pad: int):
    x, lengths = _batch(batch, pad, model.body.device)
    logits = model(x, lengths)
    if model.task == "tag":
        rows = torch.tensor([i for i, e in enumerate(batch) for _ in e.positions])
        cols = torch.tensor([p for e in batch for p in e.positions])
        logits = logits[rows.to(x.device), cols.to(x.device)]
    gold = torch.tensor([lab for e in batch for lab in e.labels], device=x.device)
    return torch.nn.functional.cross_entropy(logits, gold), logits.argmax(-1), gold


def finetune(model: FineTuner, examples: Sequence[Example], *, epochs: int = 3,
             batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 0.01,
             seed: int = 0, pad: int = 0) -> list[float]:
    """Train ``model`` (AdamW, shuffled batches); the mean training loss of each epoch."""
    if not examples:
        raise DataError("no training example; pass more data or a larger --fraction.")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    order = list(range(len(examples)))
    losses = []
    model.train()
    with torch.enable_grad():
        for _ in range(epochs):
            rng.shuffle(order)
            total = 0.0
            for i in range(0, len(order), batch_size):
                batch = [examples[j] for j in order[i : i + batch_size]]
                loss, _, _ = _loss_and_preds(model, batch, pad)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(batch)
            losses.append(total / len(examples))
    model.eval()
    return losses


def predict(model: FineTuner, examples: Sequence[Example], *, batch_size: int = 64,
            pad: int = 0) -> tuple[list[int], list[int]]:
    """(gold, predicted) label indices over every word (tag) or sentence (classify)."""
    model.eval()
    gold, pred = [], []
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            _, p, g = _loss_and_preds(model, examples[i : i + batch_size], pad)
            gold += g.tolist()
            pred += p.tolist()
    return gold, pred


def take_fraction(items: Sequence, fraction: float, seed: int = 0) -> list:
    """A seeded random ``fraction`` of ``items`` (at least one)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"--fraction must be in (0, 1], not {fraction}.")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n = max(1, math.ceil(fraction * len(items)))
    return [items[i] for i in sorted(order[:n])]


def save_finetuned(model: FineTuner, out_dir: str | os.PathLike, meta: dict,
                   tokenizer=None) -> Path:
    """``head.safetensors`` + ``finetune.json`` (task, labels, base model, metrics); a body
    that was trained too is saved whole under ``body/`` (with its tokenizer).
    :func:`load_finetuned` reads it back."""
    from chainrule.fileio import write_json, write_safetensors

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_safetensors(out / "head.safetensors", model.head.state_dict())
    meta = {**meta, "task": model.task, "freeze": model.freeze,
            "body": meta.get("base") if model.freeze else "body"}
    if not model.freeze:
        model.body.save(out / "body")
        if tokenizer is not None:
            tokenizer.save(out / "body" / "tokenizer.json")
    write_json(out / "finetune.json", meta)
    return out


def load_finetuned(out_dir: str | os.PathLike):
    """``(FineTuner, tokenizer, meta)`` from a directory written by :func:`save_finetuned`:
    the body from ``OUT/body`` (fine-tuned whole) or from the base model it names (head only;
    a relative base is looked up from the working directory, then beside ``OUT``).

    Raises:
        ModelFormatError: not a fine-tuned directory, or its body is missing or does not fit.
    """
    from chainrule.errors import ModelFormatError
    from chainrule.fileio import read_json, read_safetensors
    from chainrule.models.base import load_model
    from chainrule.tokenizers import load_tokenizer

    out = Path(out_dir)
    if not (out / "finetune.json").is_file():
        raise ModelFormatError(f"{str(out)!r} has no finetune.json; pass a directory written by "
                               "'chainrule finetune ... -o OUT'.")
    meta = read_json(out / "finetune.json", what="fine-tuning record")
    body = Path(meta.get("body") or "")
    candidates = [out / body] if meta.get("body") == "body" else [body, out.parent / body]
    found = next((d for d in candidates if (d / "config.json").is_file()), None)
    if found is None:
        raise ModelFormatError(f"the body model {str(body)!r} named by {str(out)!r} is missing; "
                               "restore it (a --freeze head needs its base model directory).")
    model, tok = load_model(found), load_tokenizer(found / "tokenizer.json")
    head = read_safetensors(out / "head.safetensors")
    labels = meta.get("labels") or []
    if head["weight"].shape[0] != len(labels) or tok.vocab_size != model.vocab_size:
        raise ModelFormatError(f"{str(out)!r}: the head, its labels and the body do not fit "
                               "together; the directory mixes files of different runs.")
    tuner = FineTuner(model, len(labels), meta["task"], freeze=bool(meta.get("freeze")))
    tuner.head.load_state_dict({k: v.to(tuner.head.weight.device) for k, v in head.items()})
    return tuner.eval(), tok, meta


def predict_labels(model: FineTuner, tokenizer, sentences: Sequence[Sequence[str]],
                   labels: Sequence[str], *, batch_size: int = 64) -> list:
    """Label new sentences (lists of words): per sentence the list of word tags (``None`` for a
    word past the model's window) for ``tag``, or the one label for ``classify``."""
    body = model.body
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else body.eos_id
    sents = [TaggedSentence(tuple(w), ("?",) * len(w), "") for w in sentences if w]
    # one example per sentence (its first word always fits), with placeholder gold labels
    examples = make_examples(body, tokenizer, sents, model.task, {"?": 0}, {"": "?"})
    _, pred = predict(model, examples, batch_size=batch_size, pad=pad) if examples else ([], [])
    out, k, e = [], 0, 0
    for words in sentences:
        if not words:
            out.append([] if model.task == "tag" else None)
        elif model.task == "classify":
            out.append(labels[pred[k]])
            k += 1
        else:
            n = len(examples[e].positions) if e < len(examples) else 0
            out.append([labels[i] for i in pred[k : k + n]] + [None] * (len(words) - n))
            k, e = k + n, e + 1
    return out


__all__ = ["TASKS", "Example", "FineTuner", "encode_words", "file_id", "finetune",
           "load_finetuned", "make_examples", "predict", "predict_labels", "read_file_labels", "save_finetuned", "take_fraction"]
