"""A frozen reward-model body's features, computed fast and once, and a head fitted on them.

With a frozen body, training a reward model is a logistic regression on features, so the whole
cost is the body's forward passes. This module makes them cheap and resumable:

- **pooling** of the body's final hidden states: ``last`` (the EOS after the response),
  ``mean`` (mean over the response tokens and their EOS) or ``last+mean`` (both, concatenated);
- **batches of similar length** (rows sorted by length, so little padding; right padding is
  harmless for a causal body), under ``torch.inference_mode`` and optionally bf16 autocast;
- an on-disk **feature cache** in content-addressed chunks (SHA-256 of the body's weights,
  the pooling, the precision and the chunk's token ids), so an interrupted run resumes and a
  repeated run is free.

The head is fitted on the pair differences d = f(chosen) - f(rejected): the Bradley-Terry loss
-log sigma(w . d) is a logistic regression with no intercept (a bias cancels in r_c - r_r).
Features are standardised (per-dimension scale of d, mean of f) and the L2 weight is chosen on
a validation split by its Bradley-Terry loss; the standardisation is folded into an ordinary
linear head, r(x) = w . (f(x) - mu) / sigma, so a saved reward model needs nothing extra.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from chainrule.errors import ConfigError
from chainrule.fileio import read_safetensors, write_safetensors
from chainrule.preferences.data import EncodedPair, pad_batch

POOLINGS = ("last", "mean", "last+mean")
L2_GRID = (1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)


def check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}.")
    return pooling


def pool_hidden(h: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor | None,
                pooling: str) -> torch.Tensor:
    """(B, T, C) hidden states -> (B, C) or (B, 2C) features.

    ``mask`` (B, T) marks the tokens the mean runs over (the response and its EOS); a row with
    an empty mask falls back to its last token.
    """
    last = h[torch.arange(h.shape[0], device=h.device), lengths - 1].float()
    if pooling == "last":
        return last
    if mask is None:
        raise ConfigError(f"pooling {pooling!r} needs the response mask of each row.")
    m = mask.to(h.dtype).unsqueeze(-1)
    count = m.sum(1)
    mean = ((h * m).sum(1) / count.clamp(min=1)).float()
    mean = torch.where(count > 0, mean, last)
    return mean if pooling == "mean" else torch.cat([last, mean], dim=-1)


def _chunk_key(meta: dict, rows: Sequence[Sequence[int]], masks: Sequence[Sequence[bool]]) -> str:
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for r, m in zip(rows, masks, strict=True):
        h.update(json.dumps([list(r), [int(b) for b in m]]).encode())
    return h.hexdigest()[:32]


def row_features(rm: Any, rows: Sequence[Sequence[int]], masks: Sequence[Sequence[bool]], *,
                 batch_size: int = 16, bf16: bool = False, cache_dir: str | os.PathLike | None
                 = None, chunk: int = 64, log: Callable[[str], Any] | None = None
                 ) -> torch.Tensor:
    """(N, C') pooled features of ``rows`` through ``rm``'s body (``rm.features``), in row order.

    Rows are processed in length order, ``chunk`` rows at a time; with ``cache_dir`` each chunk
    is saved as a safetensors file named by its content hash and reused when present.
    """
    n = len(rows)
    if n == 0:
        return torch.zeros(0, rm.head.in_features)
    order = sorted(range(n), key=lambda i: (len(rows[i]), i))
    meta = None
    if cache_dir is not None:
        from chainrule.models.lora import base_fingerprint

        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        if getattr(rm, "body_fingerprint", None) is None:  # hashing 135M weights takes a second
            rm.body_fingerprint = base_fingerprint(rm.body)
        meta = {"body": rm.body_fingerprint, "pooling": rm.pooling, "bf16": bf16}
    out = torch.zeros(n, rm.head.in_features)
    was = rm.training
    rm.eval()
    autocast = torch.autocast(device_type=rm.device.type, dtype=torch.bfloat16, enabled=bf16)
    done = 0
    for c in range(0, n, chunk):
        idx = order[c : c + chunk]
        crow, cmask = [rows[i] for i in idx], [masks[i] for i in idx]
        path = Path(cache_dir) / f"{_chunk_key(meta, crow, cmask)}.safetensors" if meta else None
        if path is not None and path.is_file():
            feats = read_safetensors(path)["features"]
        else:
            parts = []
            with torch.inference_mode(), autocast:
                for b in range(0, len(idx), batch_size):
                    ids, m, lengths = pad_batch(crow[b : b + batch_size], cmask[b : b + batch_size],
                                                rm.body.eos_id, rm.device)
                    parts.append(rm.features(ids, lengths, m).float().cpu())
            feats = torch.cat(parts)
            if path is not None:
                write_safetensors(path, {"features": feats.contiguous()})
        out[idx] = feats
        done += len(idx)
        if log:
            log(f"features: {done}/{n} rows")
    rm.train(was)
    return out


def pair_features(rm: Any, pairs: Sequence[EncodedPair], **kw: Any
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of the chosen and the rejected rows of ``pairs`` (one :func:`row_features` pass
    over both, so similar lengths batch together)."""
    rows = [e.chosen for e in pairs] + [e.rejected for e in pairs]
    masks = [e.chosen_mask for e in pairs] + [e.rejected_mask for e in pairs]
    f = row_features(rm, rows, masks, **kw)
    return f[: len(pairs)], f[len(pairs):]


# -- the head: L2-regularised logistic regression on standardised pair differences ----------
def _bt_loss(w: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    return F.softplus(-(d @ w)).mean()


def fit_difference_head(fc: torch.Tensor, fr: torch.Tensor, l2: float, *, iters: int = 50
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (C,) and bias () of a linear head r(x) = w.x + b minimising
    mean -log sigma(r(chosen) - r(rejected)) + l2 * |w_std|^2 on standardised features.

    Newton's method with a backtracking line search (the problem is convex, the Hessian small).
    The bias only shifts every score (it cancels in pairs); it is set so that the mean training
    feature scores 0.
    """
    fc, fr = fc.double(), fr.double()
    d = fc - fr
    scale = d.std(0, unbiased=False).clamp(min=1e-8)
    mu = torch.cat([fc, fr]).mean(0)
    z = d / scale
    n, c = z.shape
    w = torch.zeros(c, dtype=torch.float64)

    def objective(v: torch.Tensor) -> torch.Tensor:
        return _bt_loss(v, z) + l2 * (v * v).sum()

    f = objective(w)
    eye = torch.eye(c, dtype=torch.float64)
    for _ in range(iters):
        p = torch.sigmoid(-(z @ w))  # d loss / d (z.w) = -p / n
        grad = -(z * p.unsqueeze(1)).sum(0) / n + 2 * l2 * w
        if float(grad.abs().max()) < 1e-10:
            break
        hess = (z * (p * (1 - p)).unsqueeze(1)).T @ z / n + (2 * l2 + 1e-10) * eye
        step = torch.linalg.solve(hess, grad)
        t = 1.0
        while True:
            new = objective(w - t * step)
            if new <= f - 1e-4 * t * float(grad @ step) or t < 1e-8:
                break
            t /= 2
        w, f = w - t * step, new
    weight = w / scale
    return weight.float(), (-(weight @ mu)).float()


def margins_of(weight: torch.Tensor, fc: torch.Tensor, fr: torch.Tensor) -> torch.Tensor:
    return (fc - fr) @ weight


def select_l2(train: tuple[torch.Tensor, torch.Tensor], validation: tuple[torch.Tensor,
              torch.Tensor], grid: Sequence[float] = L2_GRID) -> tuple[float, list[dict]]:
    """The L2 weight of :func:`fit_difference_head` with the lowest validation Bradley-Terry
    loss (ties to the stronger penalty), and the whole grid's validation loss and accuracy."""
    rows = []
    for l2 in grid:
        w, _ = fit_difference_head(*train, l2)
        m = margins_of(w, *validation)
        rows.append({"l2": l2, "validation_loss": float(F.softplus(-m).mean()),
                     "validation_accuracy": float(((m > 0).float() + 0.5 * (m == 0).float())
                                                  .mean())})
    best = min(rows, key=lambda r: (round(r["validation_loss"], 6), -r["l2"]))
    return best["l2"], rows


def train_reward_head(rm: Any, train: Sequence[EncodedPair], *,
                      validation: Sequence[EncodedPair] | None = None,
                      l2: float | str = "auto", grid: Sequence[float] = L2_GRID,
                      batch_size: int = 16, bf16: bool = False,
                      cache_dir: str | os.PathLike | None = None,
                      log: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Fit a frozen reward model's head by L2-regularised logistic regression (see the module
    docstring); ``l2="auto"`` picks the weight on ``validation``. Returns what was chosen."""
    if not rm.freeze:
        raise ConfigError("a logistic-regression head needs a frozen body; drop --lora-rank or "
                          "--l2.")
    if not train:
        raise ConfigError("no preference pairs to train the reward model on.")
    kw = {"batch_size": batch_size, "bf16": bf16, "cache_dir": cache_dir, "log": log}
    ftrain = pair_features(rm, train, **kw)
    report: dict[str, Any] = {}
    if l2 == "auto":
        if not validation:
            raise ConfigError("--l2 auto chooses the penalty on a validation split; give one "
                              "(--select-split validation) or a number.")
        chosen, report["l2_grid"] = select_l2(ftrain, pair_features(rm, validation, **kw), grid)
    else:
        chosen = float(l2)
    weight, bias = fit_difference_head(*ftrain, chosen)
    with torch.no_grad():
        rm.head.weight.copy_(weight.view(1, -1).to(rm.head.weight))
        rm.head.bias.copy_(bias.view(1).to(rm.head.bias))
    m = margins_of(weight, *ftrain)
    report.update({"l2": chosen, "train_loss": float(F.softplus(-m).mean()),
                   "train_accuracy": float((m > 0).float().mean())})
    rm.eval()
    return report


__all__ = ["L2_GRID", "POOLINGS", "check_pooling", "fit_difference_head", "pair_features",
           "pool_hidden", "row_features", "select_l2", "train_reward_head"]
