"""The batched torch trainer for word2vec, used when the compiled kernel is not built.

Same model, subsampling, dynamic window, noise distribution and linear learning-rate decay as
``chainrule._w2v_core``; the difference is that one SGD step updates a mini-batch of (centre,
context) pairs at once. A row that occurs c times in a batch gets the sum of its updates
divided by sqrt(c) (a plain sum multiplies the step of frequent words by their count in the batch
and diverges; a mean learns too slowly), so frequent words follow another schedule than in the
per-pair kernel: this trainer needs
no compiler but is slower and somewhat less accurate per epoch.
"""

from __future__ import annotations

import numpy as np
import torch

BATCH = 512  # skip-gram pairs per step
CBOW_BATCH = 64  # CBOW windows per step (each moves up to 2 x window rows)


def _add_rows(mat, idx, upd):
    """mat[idx] += upd, the updates of a row repeated c times in idx scaled by 1/sqrt(c)."""
    counts = torch.bincount(idx, minlength=mat.shape[0]).clamp_min(1).to(upd.dtype)
    mat.index_add_(0, idx, upd / counts[idx].sqrt()[:, None])


def _positions(corpus, keep, window, rng):
    """Per epoch: the kept ids, their sentence numbers and their drawn window sizes."""
    ids, starts = corpus.ids, corpus.starts
    sent = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    kept = rng.random(len(ids)) < keep[ids]
    ids, sent = ids[kept], sent[kept]
    eff = window - rng.integers(0, window, len(ids))
    return ids, sent, eff


def _noise(cum, shape, rng):
    x = rng.integers(0, int(cum[-1]), size=shape)
    return np.searchsorted(cum, x, side="right").astype(np.int64)


def _sgd(syn0, syn1, h, targets, noise, lr):
    """One negative-sampling step for inputs ``h`` (B, D); returns the gradient for h."""
    pos = syn1[targets]  # (B, D)
    neg = syn1[noise]  # (B, K, D)
    g_pos = (1 - torch.sigmoid((h * pos).sum(-1))) * lr  # (B,)
    g_neg = -torch.sigmoid(torch.einsum("bd,bkd->bk", h, neg)) * lr  # (B, K)
    g_neg = g_neg * (noise != targets[:, None])  # a noise word equal to the target is skipped
    grad_h = g_pos[:, None] * pos + torch.einsum("bk,bkd->bd", g_neg, neg)
    idx = torch.cat([targets, noise.reshape(-1)])
    upd = torch.cat([g_pos[:, None] * h, (g_neg[..., None] * h[:, None]).reshape(-1, h.shape[1])])
    _add_rows(syn1, idx, upd)
    return grad_h


def train_torch(syn0_np, syn1_np, corpus, keep, cum, cfg) -> None:
    rng = np.random.default_rng(cfg.seed)
    syn0, syn1 = torch.from_numpy(syn0_np), torch.from_numpy(syn1_np)  # updated in place
    planned = len(corpus.ids) * cfg.epochs
    seen = 0
    for _ in range(cfg.epochs):
        ids, sent, eff = _positions(corpus, keep, cfg.window, rng)
        n = len(ids)
        if cfg.method == "sgns":
            centres, contexts = [], []
            for d in range(1, cfg.window + 1):
                same = sent[:-d] == sent[d:]
                right = same & (d <= eff[:-d])  # centre i, context i + d
                left = same & (d <= eff[d:])  # centre i + d, context i
                centres += [ids[:-d][right], ids[d:][left]]
                contexts += [ids[d:][right], ids[:-d][left]]
            c = np.concatenate(centres).astype(np.int64)
            x = np.concatenate(contexts).astype(np.int64)
            order = rng.permutation(len(c))
            c, x = c[order], x[order]
            for b in range(0, len(c), BATCH):
                lr = cfg.alpha - (cfg.alpha - cfg.min_alpha) * min(1.0, (seen + n * b / len(c)) / planned)
                cb, xb = torch.from_numpy(c[b:b + BATCH]), torch.from_numpy(x[b:b + BATCH])
                noise = torch.from_numpy(_noise(cum, (len(cb), cfg.negative), rng))
                grad = _sgd(syn0, syn1, syn0[cb], xb, noise, lr)
                _add_rows(syn0, cb, grad)
        else:
            W = cfg.window
            offsets = np.concatenate([np.arange(-W, 0), np.arange(1, W + 1)])
            pos = np.arange(n)[:, None] + offsets[None]  # (n, 2W)
            inside = (pos >= 0) & (pos < n)
            posc = np.clip(pos, 0, n - 1)
            mask = inside & (sent[posc] == sent[:, None]) & (np.abs(offsets)[None] <= eff[:, None])
            has = mask.any(1)
            centres, ctx, mask = ids[has].astype(np.int64), ids[posc[has]].astype(np.int64), mask[has]
            order = rng.permutation(len(centres))
            for b in range(0, len(order), CBOW_BATCH):
                lr = cfg.alpha - (cfg.alpha - cfg.min_alpha) * min(1.0, (seen + n * b / len(order)) / planned)
                sel = order[b:b + CBOW_BATCH]
                cb = torch.from_numpy(centres[sel])
                xb = torch.from_numpy(ctx[sel])
                mb = torch.from_numpy(mask[sel]).float()
                count = mb.sum(1, keepdim=True)
                h = (syn0[xb] * mb[..., None]).sum(1)
                if cfg.cbow_mean:
                    h = h / count
                noise = torch.from_numpy(_noise(cum, (len(cb), cfg.negative), rng))
                grad = _sgd(syn0, syn1, h, cb, noise, lr)
                if not cfg.cbow_mean:
                    grad = grad / count
                used = mb.reshape(-1) > 0
                _add_rows(syn0, xb.reshape(-1)[used],
                          (grad[:, None] * mb[..., None]).reshape(-1, h.shape[1])[used])
        seen += len(corpus.ids)


__all__ = ["train_torch"]
