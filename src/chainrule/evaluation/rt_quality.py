"""Reading-time fit against language-model quality across a ladder of models.

Wilcox et al. (2020), Goodkind & Bicknell (2018) and Oh & Schuler (2023) relate each model's
ΔLL (:func:`chainrule.evaluation.rt_regression.delta_loglik`) to its quality, measured as
perplexity (lower is better). This module gives the two pieces that relation needs beyond
ΔLL itself: a model's per-word perplexity on the reading-time text (from the surprisals the
regression already uses, so no second pass) and the correlation between log perplexity and
ΔLL over the models (Pearson on log perplexity; Spearman on ranks, ties averaged). Plain numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chainrule.errors import DataError


def text_perplexity(surprisal_bits: np.ndarray, unk: np.ndarray | None = None) -> float:
    """Per-word perplexity ``2 ** mean(surprisal)`` over the words without ``<unk>``."""
    s = np.asarray(surprisal_bits, dtype=float)
    keep = np.ones(len(s), dtype=bool) if unk is None else ~np.asarray(unk, dtype=bool)
    if not keep.any():
        raise DataError("no word without <unk> is left to compute a perplexity from.")
    return float(2.0 ** s[keep].mean())


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank."""
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        if tie.sum() > 1:
            r[tie] = r[tie].mean()
    return r


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


@dataclass(frozen=True)
class QualityCorrelation:
    n: int  # models
    pearson_log_ppl: float  # Pearson r of ln(perplexity) and ΔLL
    spearman: float  # Spearman rho of perplexity and ΔLL
    slope: float  # least-squares ΔLL change per unit of log2(perplexity) (per doubling)


def quality_correlation(ppl: Sequence[float], dll: Sequence[float]) -> QualityCorrelation:
    """How ΔLL goes with perplexity over models: negative r and rho mean that ΔLL grows as
    perplexity falls (better models predict reading times better)."""
    p, d = np.asarray(ppl, dtype=float), np.asarray(dll, dtype=float)
    if len(p) != len(d):
        raise DataError(f"{len(p)} perplexities for {len(d)} ΔLL values; give one of each "
                        "per model.")
    if len(p) < 3:
        raise DataError(f"a correlation over {len(p)} models says nothing; give at least 3.")
    if (p <= 0).any() or not np.isfinite(p).all() or not np.isfinite(d).all():
        raise DataError("perplexities must be positive and finite, and ΔLL values finite.")
    lp = np.log2(p)
    c = lp - lp.mean()
    slope = float((c * (d - d.mean())).sum() / (c * c).sum()) if (c * c).sum() > 0 \
        else float("nan")
    return QualityCorrelation(len(p), _pearson(lp, d), _pearson(_ranks(p), _ranks(d)), slope)


__all__ = ["QualityCorrelation", "quality_correlation", "text_perplexity"]
