"""Estimators: maximum likelihood, add-k, interpolated Kneser-Ney and modified Kneser-Ney.

All of them start from the padded top-order counts of :mod:`.counting` and return
:class:`~.tables.NgramTables`. Everything is numpy over whole tables (``unique``,
``bincount``, ``searchsorted``); there is no Python loop over n-grams.

Modified Kneser-Ney follows KenLM's ``lmplz`` step by step, so its ARPA files match:

* the n-grams of order k < N are all windows of the ``<s> ... </s>`` sentences; their
  *adjusted count* is the number of distinct words seen to their left, except that n-grams
  starting with ``<s>`` (nothing can precede them) keep their raw count; order N keeps raw
  counts; the unigram ``<s>`` has count 0;
* per order, discounts from the count-of-counts n1..n4 of the adjusted counts
  (Chen & Goodman eq. 26): ``Y = n1 / (n1 + 2 n2)``, ``D_j = j - (j + 1) Y n_{j+1} / n_j``;
* ``p(w | h) = (a(h w) - D(a)) / sum_w a(h w) + gamma(h) p(w | h[1:])`` with
  ``gamma(h) = sum_j D_j N_j(h) / sum_w a(h w)`` (N_j(h): words after h with adjusted count j,
  3 meaning 3 or more); unigrams interpolate with the uniform ``1 / (V - 1)`` (every id but
  ``<s>`` and ``<pad>``), so ``<unk>`` gets ``gamma / (V - 1)``; ``<s>`` gets probability 1 (log10 0), as in
  KenLM, and the model never predicts it;
* the backoff of a context is ``gamma(h)``; the written probability is ``min(0, log10 p)``.

Plain interpolated Kneser-Ney uses the same counts with one discount ``D = Y`` per order.
Where the count-of-counts cannot give discounts (tiny or artificial data: some n_j = 0, or a
discount outside [0, j]) KenLM aborts with ``BadDiscountException``; chainrule warns and uses
``FALLBACK_DISCOUNTS`` (KenLM's own ``--discount_fallback`` values 0.5, 1.0, 1.5; 0.75 for kn).

MLE and add-k are *backoff* models, so they are ARPA files too: a stored n-gram ``h w`` gets
``c(h w) / c(h)`` (MLE) or ``(c(h w) + k) / (c(h) + k (V - 1))`` (add-k), the unigrams get the
same formulas with ``c(h)`` the number of tokens, and the left-over mass of a context goes to
the next-lower order, renormalised (Katz): ``backoff(h) = (1 - sum p(h w)) / (1 - sum
p(w | h[1:]))`` over the stored ``w``. For MLE the left-over mass is 0 (unless pruned), so an
unseen word after a seen context has probability 0; a context never seen uses its longest seen
suffix.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chainrule.errors import ConfigError
from chainrule.models.ngram.counting import NgramCounts
from chainrule.models.ngram.tables import NgramTables

SMOOTHINGS = ("mle", "addk", "kn", "mkn")
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # KenLM's --discount_fallback default
FALLBACK_KN_DISCOUNT = 0.75


class DiscountWarning(UserWarning):
    """Kneser-Ney discounts could not be estimated for some order; fallbacks were used."""


@dataclass
class OrderCounts:
    """The n-grams of one order: sorted suffix-encoded keys and raw window counts."""

    keys: np.ndarray
    raw: np.ndarray


def derive_orders(counts: NgramCounts, vocab_size: int, bos_id: int) -> list[OrderCounts]:
    """From padded top-order windows to the keys and raw counts of every order 1..N.

    The suffix of length k of a padded window is an n-gram of order k unless it has ``<s>``
    after its first position (padding): those are dropped, as KenLM does.
    """
    R, cnt = counts.rows, counts.counts.astype(np.float64)
    N, V = counts.order, vocab_size
    if R.size and R.max() >= V:
        raise ConfigError(f"token id {int(R.max())} is outside the vocabulary of {V}.")
    sidx = R[:, N - 1].astype(np.int64)
    out = [OrderCounts(np.arange(V, dtype=np.int64), _bincount(sidx, cnt, V))]
    valid = np.ones(R.shape[0], dtype=bool)
    for k in range(2, N + 1):
        valid &= R[:, N - k + 1] != bos_id
        q = sidx[valid] * V + R[valid, N - k]
        keys, inv = np.unique(q, return_inverse=True)
        sidx = np.full(R.shape[0], -1, dtype=np.int64)
        sidx[valid] = inv
        out.append(OrderCounts(keys, _bincount(inv, cnt[valid], keys.size)))
    return out


def _bincount(idx: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    return np.rint(np.bincount(idx, weights=weights, minlength=n)).astype(np.int64)


# -- discounts ---------------------------------------------------------------------------------
def count_of_counts(adjusted: np.ndarray) -> list[int]:
    """[n1, n2, n3, n4]: how many n-grams have (adjusted) count 1, 2, 3, 4."""
    return [int(x) for x in np.bincount(np.clip(adjusted, 0, 5), minlength=6)[1:5]]


def mkn_discounts(n: Sequence[int]) -> tuple[float, float, float] | None:
    """KenLM's modified Kneser-Ney discounts (D1, D2, D3+) from [n1..n4], or None if invalid.

    Computed in float32 like ``lmplz``. Example: n = [10, 4, 2, 1] -> Y = 10/18,
    D1 = 1 - 2 Y 4/10 = 0.5556, D2 = 2 - 3 Y 2/4 = 1.1667, D3 = 3 - 4 Y 1/2 = 1.8889.
    """
    if any(x == 0 for x in n[:3]):
        return None
    f = np.float32
    y = f(n[0]) / f(n[0] + 2.0 * n[1])
    d = [float(f(j) - f(j + 1) * y * f(n[j]) / f(n[j - 1])) for j in (1, 2, 3)]
    if any(not 0.0 <= dj <= j for j, dj in zip((1, 2, 3), d)):
        return None
    return d[0], d[1], d[2]


def kn_discount(n: Sequence[int]) -> float | None:
    """Plain Kneser-Ney's single discount ``Y = n1 / (n1 + 2 n2)``, or None if it cannot be."""
    if n[0] == 0 or n[1] == 0:
        return None
    return n[0] / (n[0] + 2.0 * n[1])


# -- the estimators ----------------------------------------------------------------------------
def estimate(
    counts: NgramCounts,
    vocab_size: int,
    bos_id: int,
    smoothing: str = "mkn",
    *,
    k: float = 1.0,
    discounts: Sequence[Sequence[float]] | None = None,
    prune: Sequence[int] | None = None,
    never: Sequence[int] = (),
) -> tuple[NgramTables, list[list[float]]]:
    """Estimate a backoff model from counted windows.

    Args:
        counts: padded top-order windows (:func:`.counting.count_ngrams`), or every order
            already derived (:class:`.fastcount.DerivedCounts`).
        vocab_size: V (every id the model predicts over, ``<s>`` included).
        bos_id: id of ``<s>``.
        smoothing: ``mle``, ``addk``, ``kn`` or ``mkn``.
        k: the add-k constant.
        discounts: per order (D1, D2, D3+) for mkn / (D,) for kn, overriding the estimates.
        prune: per-order thresholds; n-grams of order i >= 2 seen <= prune[i-1] times are dropped
            (the last value repeats for higher orders; must be non-decreasing, first 0).
        never: ids besides ``<s>`` that are never predicted (``<pad>``): probability 0, and
            not counted among the ``V - 1`` outcomes of the uniform / add-k share.
    Returns:
        the tables and the discounts used per order ([] for mle / addk).
    """
    if smoothing not in SMOOTHINGS:
        raise ConfigError(f"unknown smoothing {smoothing!r}; choose one of {', '.join(SMOOTHINGS)}.")
    N = counts.order
    thresholds = _thresholds(prune, N)
    contexts = getattr(counts, "contexts", None)  # the compiled counter derived every order
    orders = counts.orders if contexts is not None else derive_orders(counts, vocab_size, bos_id)
    tables = NgramTables(vocab_size, [o.keys for o in orders], [], [])
    for n, ctx in enumerate(contexts or [], start=2):
        tables._derived[("context", n)] = ctx
    never = sorted({int(i) for i in never} - {bos_id})
    for i in never:
        if orders[0].raw[i] > 0:
            raise ConfigError(f"token id {i} is marked as never predicted but occurs in the corpus.")
    if smoothing in ("kn", "mkn"):
        used = _kneser_ney(tables, orders, bos_id, smoothing == "mkn", discounts, thresholds, never)
    else:
        if smoothing == "addk" and not k > 0:
            raise ConfigError(f"--k must be positive for add-k smoothing, got {k}.")
        kk = k if smoothing == "addk" else 0.0
        _backoff_estimate(tables, orders, bos_id, kk, thresholds, never)
        used = []
    return tables, used


def _thresholds(prune: Sequence[int] | None, N: int) -> list[int]:
    if not prune:
        return [0] * N
    t = [int(x) for x in prune]
    if len(t) > N:
        raise ConfigError(f"{len(t)} --prune thresholds for an order-{N} model; give at most "
                          f"{N}, one per order.")
    if any(x < 0 for x in t):
        raise ConfigError("--prune thresholds must be non-negative counts, e.g. 0,1,1.")
    if t[0] != 0:
        raise ConfigError("unigrams cannot be pruned: the first --prune threshold must be 0.")
    if any(b < a for a, b in itertools.pairwise(t)):
        raise ConfigError("--prune thresholds must not decrease with the order, e.g. 0,1,2.")
    return (t + [t[-1]] * N)[:N]


def _kneser_ney(tables, orders, bos_id, modified, given, thresholds, never) -> list[list[float]]:
    N, V = len(orders), tables.vocab_size
    outcomes = V - 1 - len(never)
    # adjusted counts: distinct left extensions, raw counts at the top and after <s>
    adjusted = []
    for k in range(1, N + 1):
        raw = orders[k - 1].raw
        if k == N:
            a = raw.copy()
        else:
            a = np.bincount(tables.parent(k + 1), minlength=raw.size).astype(np.int64)
            if k > 1:
                starts_bos = tables.keys[k - 1] % V == bos_id  # first word <s> (not cached)
                a[starts_bos] = raw[starts_bos]
        if k == 1:
            a[bos_id] = 0
        adjusted.append(a)
    used = _choose_discounts(adjusted, modified, given)

    keep = [np.ones(o.keys.size, dtype=bool) for o in orders]
    for k in range(2, N + 1):
        if thresholds[k - 1] > 0:
            keep[k - 1] = orders[k - 1].raw > thresholds[k - 1]

    # memory: each order is turned into its float32 log10 arrays as soon as the next order has
    # used its probabilities and given its backoffs, so float64 arrays of two orders live at once
    probs: list[np.ndarray | None] = []
    lp: list[np.ndarray] = []
    lb: list[np.ndarray] = []
    for k in range(1, N + 1):
        a = adjusted[k - 1].astype(np.float64)
        d = np.asarray(used[k - 1] * 3 if len(used[k - 1]) == 1 else used[k - 1], dtype=np.float64)
        disc = np.concatenate([[0.0], d])[np.minimum(adjusted[k - 1], 3)]  # D(0) = 0, D(3+) = d[2]
        kept = keep[k - 1]
        if k == 1:
            ctx = np.zeros(a.size, dtype=np.int64)
            n_ctx = 1
        else:
            ctx = tables.context(k)
            n_ctx = orders[k - 2].keys.size
        den = np.bincount(ctx, weights=a, minlength=n_ctx)
        # mass freed by discounting kept n-grams, plus all of the pruned ones (as KenLM does)
        freed = np.bincount(ctx, weights=disc if kept.all() else np.where(kept, disc, a),
                            minlength=n_ctx)
        with np.errstate(divide="ignore", invalid="ignore"):
            gamma = np.where(den > 0, freed / den, 0.0)
            p = (a - disc) / den[ctx]
        if k == 1:
            p = np.where(den[0] > 0, p, 0.0) + gamma[0] / outcomes
            p[never] = 0.0
            p[bos_id] = 1.0
        else:
            p = p + gamma[ctx] * probs[k - 2][tables.parent(k)]
            # table k-1 is complete: its probabilities, and backoffs from its contexts here
            _append_log10(lp, lb, probs[k - 2], np.where(den > 0, gamma, 1.0))
            probs[k - 2] = None
        adjusted[k - 1] = None
        probs.append(p)
    _append_log10(lp, lb, probs[N - 1], np.ones(orders[-1].keys.size))
    del probs
    _finish(tables, lp, lb, keep, orders)
    return used


def _append_log10(lp: list, lb: list, p: np.ndarray, b: np.ndarray) -> None:
    """One order's probabilities and backoffs as the float32 log10 values the tables hold."""
    with np.errstate(divide="ignore"):
        lp.append(np.minimum(0.0, np.log10(p)).astype(np.float32))
        lb.append(np.log10(b).astype(np.float32))


def _choose_discounts(adjusted, modified, given) -> list[list[float]]:
    return choose_discounts([count_of_counts(a) for a in adjusted], modified, given)


def choose_discounts(coc: Sequence[Sequence[int]], modified: bool,
                     given: Sequence[Sequence[float]] | None) -> list[list[float]]:
    """Per order, the given discounts (checked) or those estimated from its count-of-counts
    ``coc[k - 1]`` = [n1..n4] of the adjusted counts (fallbacks, with a warning, where they
    cannot be)."""
    used = []
    for k, n in enumerate(coc, start=1):
        if given is not None and k <= len(given):
            d = [float(x) for x in given[k - 1]]
            if len(d) != (3 if modified else 1) or any(not 0 <= x <= j for j, x in enumerate(d, 1)):
                want = "D1,D2,D3 with 0 <= Dj <= j" if modified else "one D in [0, 1]"
                raise ConfigError(f"the discounts given for order {k} must be {want}; got {d}.")
            used.append(d)
            continue
        n = list(n)
        est = mkn_discounts(n) if modified else kn_discount(n)
        if est is None:
            fb = list(FALLBACK_DISCOUNTS) if modified else [FALLBACK_KN_DISCOUNT]
            warnings.warn(
                f"could not estimate Kneser-Ney discounts for {k}-grams from the count-of-counts "
                f"n1..n4 = {n} (small or artificial data); using the fallback discounts "
                f"{', '.join(f'{x:g}' for x in fb)}.",
                DiscountWarning,
                stacklevel=5,
            )
            used.append(fb)
        else:
            used.append(list(est) if modified else [est])
    return used


def _backoff_estimate(tables, orders, bos_id, k, thresholds, never) -> None:
    """MLE (k = 0) and add-k as backoff models with Katz renormalisation of left-over mass."""
    N, V = len(orders), tables.vocab_size
    outcomes = V - 1 - len(never)  # everything but <s> (and <pad>)
    keep = [np.ones(o.keys.size, dtype=bool) for o in orders]
    for n in range(2, N + 1):
        if thresholds[n - 1] > 0:
            keep[n - 1] = orders[n - 1].raw > thresholds[n - 1]
    probs, backoffs = [], []
    c1 = orders[0].raw.astype(np.float64)
    c1[bos_id] = 0
    total = c1.sum()
    if total + k * outcomes <= 0:
        raise ConfigError("the corpus has no tokens to estimate from.")
    p1 = (c1 + k) / (total + k * outcomes)
    p1[never] = 0.0
    p1[bos_id] = 1.0
    probs.append(p1)
    for n in range(2, N + 1):
        c = orders[n - 1].raw.astype(np.float64)
        ctx = tables.context(n)
        n_ctx = orders[n - 2].keys.size
        den = np.bincount(ctx, weights=c, minlength=n_ctx)
        p = (c + k) / (den[ctx] + k * outcomes)
        kept = keep[n - 1]
        lower = probs[n - 2][tables.parent(n)]
        upper_sum = np.bincount(ctx, weights=np.where(kept, p, 0.0), minlength=n_ctx)
        lower_sum = np.bincount(ctx, weights=np.where(kept, lower, 0.0), minlength=n_ctx)
        left = np.clip(1.0 - upper_sum, 0.0, None)
        with np.errstate(divide="ignore", invalid="ignore"):
            bo = np.where(left > 1e-12, left / np.maximum(1.0 - lower_sum, 1e-300), 0.0)
        bo = np.where(den > 0, bo, 1.0)  # not a context: nothing to renormalise
        backoffs.append(bo)
        probs.append(p)
    backoffs.append(np.ones(orders[-1].keys.size))
    lp: list[np.ndarray] = []
    lb: list[np.ndarray] = []
    for p, b in zip(probs, backoffs):
        _append_log10(lp, lb, p, b)
    _finish(tables, lp, lb, keep, orders)


def _finish(tables: NgramTables, lp: list, lb: list, keep, orders) -> None:
    """Store the float32 log10 arrays; drop pruned entries and renumber the keys pointing at them."""
    tables._derived.clear()  # contexts, parents: not needed any more
    V = tables.vocab_size
    keys = list(tables.keys)
    raw = [o.raw for o in orders]  # the estimators never write into them
    remap = None
    for i in range(len(keys)):
        if i > 0 and (remap is not None or not keep[i].all()):
            parent = keys[i] // V
            first = keys[i] % V
            if remap is not None:
                parent = remap[parent]
            keys[i] = (parent * V + first)[keep[i]]
            lp[i], lb[i], raw[i] = lp[i][keep[i]], lb[i][keep[i]], raw[i][keep[i]]
        remap = None if keep[i].all() else np.cumsum(keep[i]) - 1
    tables.keys, tables.prob, tables.backoff, tables.raw_counts = keys, lp, lb, raw
    tables._derived.clear()


__all__ = [
    "FALLBACK_DISCOUNTS",
    "FALLBACK_KN_DISCOUNT",
    "SMOOTHINGS",
    "DiscountWarning",
    "choose_discounts",
    "count_of_counts",
    "derive_orders",
    "estimate",
    "kn_discount",
    "mkn_discounts",
]
