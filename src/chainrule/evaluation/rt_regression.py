"""Regression of reading time on predictors: OLS, cross-validated delta log-likelihood, bins.

Plain numpy, not statsmodels: the model is ordinary least squares with a Gaussian likelihood
and a few predictors over ~10^4 words -- a closed-form ``lstsq`` of a few milliseconds per fit
-- and the quantity reported (held-out log-likelihood per word) is computed directly from the
residual variance; statsmodels would add scipy, pandas and patsy to the install for the same
numbers. (Mixed-effects models with by-subject random effects are out of scope here: the Natural
Stories table used is already averaged over readers.)

Delta log-likelihood (Wilcox et al. 2020; Oh & Schuler 2023): words are split into ``k`` folds
(a seeded permutation). For each fold, the baseline and the full model (baseline + surprisal
predictors) are fit by OLS on the other folds; each held-out word's Gaussian log-density is
computed with the training residual variance. ``delta_ll`` is the mean over all held-out words
of ``log p_full - log p_base`` (nats per word); its standard error is the standard deviation of
the per-fold means divided by ``sqrt(k)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chainrule.errors import DataError


def ols(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of ``y ~ X`` (X includes the intercept column)."""
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    return beta


def gaussian_loglik(X: np.ndarray, y: np.ndarray, beta: np.ndarray, sigma2: float
                    ) -> np.ndarray:
    """Per-row log-density of ``y`` under ``N(X beta, sigma2)``."""
    r = y - X @ beta
    return -0.5 * (np.log(2 * np.pi * sigma2) + r * r / sigma2)


def standardise(X: np.ndarray) -> np.ndarray:
    """Centre and scale every column (constant columns are only centred)."""
    sd = X.std(0)
    return (X - X.mean(0)) / np.where(sd > 0, sd, 1.0)


@dataclass(frozen=True)
class DeltaLL:
    delta_ll: float  # nats per held-out word, full minus baseline
    se: float  # standard error over folds
    fold_means: tuple[float, ...]
    n: int  # words in the regression
    coef: tuple[float, ...]  # full model's coefficients on all data (standardised predictors)


def delta_loglik(base: np.ndarray, extra: np.ndarray, y: np.ndarray, *, folds: int = 10,
                 seed: int = 0) -> DeltaLL:
    """Cross-validated ΔLL of adding ``extra`` predictors to ``base`` (see the module doc).

    Args:
        base: (n, p) baseline predictors (no intercept; one is added).
        extra: (n, q) predictors added by the full model.
        y: (n,) reading times.
    """
    n = len(y)
    if n < 2 * folds or n <= base.shape[1] + extra.shape[1] + 2:
        raise DataError(f"only {n} words are left for the regression; it needs at least "
                        f"{max(2 * folds, base.shape[1] + extra.shape[1] + 3)} (check that "
                        "reading times and surprisals line up).")
    ones = np.ones((n, 1))
    Xb = np.hstack([ones, standardise(base)])
    Xf = np.hstack([Xb, standardise(extra)])
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, folds)
    means, total = [], np.zeros(n)
    for test in parts:
        train = np.setdiff1d(order, test, assume_unique=True)
        lls = []
        for X in (Xb, Xf):
            beta = ols(X[train], y[train])
            res = y[train] - X[train] @ beta
            sigma2 = float(res @ res) / max(1, len(train) - X.shape[1])
            lls.append(gaussian_loglik(X[test], y[test], beta, sigma2))
        d = lls[1] - lls[0]
        total[test] = d
        means.append(float(d.mean()))
    se = float(np.std(means, ddof=1) / np.sqrt(folds)) if folds > 1 else float("nan")
    return DeltaLL(float(total.mean()), se, tuple(means), n, tuple(ols(Xf, y).tolist()))


def binned_means(x: np.ndarray, y: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Mean ``y`` and its standard error in ``bins`` quantile bins of ``x``."""
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    xs, ys, ses = [], [], []
    for b in range(len(edges) - 1):
        sel = idx == b
        if sel.sum() < 2:
            continue
        xs.append(x[sel].mean())
        ys.append(y[sel].mean())
        ses.append(y[sel].std(ddof=1) / np.sqrt(sel.sum()))
    return {"x": np.array(xs), "y": np.array(ys), "se": np.array(ses)}


__all__ = ["DeltaLL", "binned_means", "delta_loglik", "gaussian_loglik", "ols", "standardise"]
