"""Power-law fits: Kaplan's L(N) and L(D), and Chinchilla's L(N, D) = E + A/N^α + B/D^β.

- :func:`power_law` fits L = (x_c / x)^α by least squares on log L against log x (Kaplan
  et al. 2020, eqs. 1.1-1.3).
- :func:`chinchilla` fits L(N, D) as Hoffmann et al. (2022, approach 3) describe: minimise the
  Huber loss (δ = 1e-3) between log L and
  ``LSE(a - α log N, b - β log D, e)`` (A = e^a, B = e^b, E = e^e) with L-BFGS, started from a
  grid of initial values (α, β in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in
  {0, 5, ..., 25}); every start is scored first and the best few are refined, the best wins.
- :func:`offset_power_law` fits L(C) = E + (C_0 / C)^α the same way (a frontier that flattens).

Every fit reports R² of L (not of log L) and its residuals.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from chainrule.errors import ConfigError

HUBER_DELTA = 1e-3


def _exp(v: float) -> float:
    """e^v, or inf where that overflows a float (a nearly flat law has a huge x_c)."""
    return math.exp(v) if v < 709 else math.inf


def r_squared(y: np.ndarray, pred: np.ndarray) -> float:
    """1 - SS_res / SS_tot (1.0 when y is constant and matched exactly)."""
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    ss_res = float(((y - pred) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float(ss_res == 0)


@dataclass(frozen=True)
class PowerLaw:
    """L(x) = (x_c / x)^alpha."""

    alpha: float
    x_c: float
    r2: float
    residuals: list[float]  # measured - predicted L, in the order of the points given

    def __call__(self, x):
        return (self.x_c / np.asarray(x, float)) ** self.alpha

    def to_dict(self) -> dict:
        return asdict(self)


def power_law(x, y, what: str = "points") -> PowerLaw:
    """Least squares of log y on log x: log y = alpha log x_c - alpha log x.

    >>> f = power_law([1e6, 1e7, 1e8], [(1e9 / n) ** 0.1 for n in (1e6, 1e7, 1e8)])
    >>> round(f.alpha, 6), round(math.log10(f.x_c), 6)
    (0.1, 9.0)
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(np.unique(x)) < 2:
        raise ConfigError(f"a power law needs at least 2 distinct {what}, got {len(np.unique(x))};"
                          " add runs that differ in it.")
    slope, icpt = np.polyfit(np.log(x), np.log(y), 1)
    alpha = -slope
    x_c = _exp(icpt / alpha) if alpha != 0 else math.inf
    pred = np.exp(icpt + slope * np.log(x))
    return PowerLaw(float(alpha), float(x_c), r_squared(y, pred), (y - pred).tolist())


# -- Huber fits on log L from a grid of starts --------------------------------------------------
def _huber(r: torch.Tensor, delta: float) -> torch.Tensor:
    a = r.abs()
    return torch.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _objective(terms, theta: torch.Tensor, log_y: torch.Tensor, delta: float,
               weights: torch.Tensor | None) -> torch.Tensor:
    """Per-start objective [S]: sum_i w_i Huber(LSE(terms) - log y_i)."""
    h = _huber(torch.logsumexp(terms(theta), -1) - log_y, delta)
    return (h if weights is None else h * weights).sum(-1)


def lbfgs(terms, theta0: torch.Tensor, log_y: torch.Tensor, delta: float = HUBER_DELTA,
          weights: torch.Tensor | None = None, max_iter: int = 200) -> tuple[np.ndarray, float]:
    """torch's L-BFGS (strong Wolfe line search) from ``theta0`` [P]; (theta, objective).

    The objective is divided by delta while optimising, so that it is of order 1 and the
    stopping tolerances mean the same for every data set.
    """
    theta = theta0.clone().unsqueeze(0).requires_grad_(True)
    w = None if weights is None else weights.unsqueeze(0)
    opt = torch.optim.LBFGS([theta], lr=1, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-7, tolerance_change=1e-10,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = _objective(terms, theta, log_y, delta, w).sum() / delta
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        obj = float(_objective(terms, theta, log_y, delta, w).sum())
    return theta.detach()[0].numpy().copy(), obj


def _fit_lse(terms, log_y: torch.Tensor, starts: torch.Tensor, delta: float, refine: int,
             max_iter: int = 200,
             extra_starts: torch.Tensor | None = None) -> tuple[np.ndarray, float]:
    """Minimise sum Huber(LSE(terms(theta)) - log y) over theta from the best ``refine`` starts
    of the grid (scored all at once) and ``extra_starts``; the lowest objective wins.

    ``terms(theta[S, P]) -> [S, n, K]``: the K log-terms summed inside the log.
    """
    with torch.no_grad():
        obj = _objective(terms, starts, log_y, delta, None)
        best = starts[torch.argsort(obj)[:refine]]
    if extra_starts is not None:
        best = torch.cat([extra_starts, best])
    winner, win = None, math.inf
    for s in best:
        theta, obj = lbfgs(terms, s, log_y, delta, max_iter=max_iter)
        if math.isfinite(obj) and obj < win:
            winner, win = theta, obj
    if winner is None:
        raise ConfigError("the fit did not converge from any start; check the runs' losses.")
    return winner, win


@dataclass(frozen=True)
class Chinchilla:
    """L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, approach 3)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    r2: float = float("nan")
    residuals: tuple = ()
    objective: float = float("nan")

    def __call__(self, N, D):
        N, D = np.asarray(N, float), np.asarray(D, float)
        return self.E + self.A / N ** self.alpha + self.B / D ** self.beta

    def optimal(self, C):
        """Compute-optimal (N, D) for C = 6ND FLOPs: N = G (C/6)^a, D = (C/6)^b / G."""
        a = self.beta / (self.alpha + self.beta)
        b = self.alpha / (self.alpha + self.beta)
        G = (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))
        c6 = np.asarray(C, float) / 6
        return G * c6 ** a, c6 ** b / G

    @property
    def exponents(self) -> tuple[float, float]:
        """(a, b) of N_opt ∝ C^a and D_opt ∝ C^b."""
        s = self.alpha + self.beta
        return self.beta / s, self.alpha / s

    def to_dict(self) -> dict:
        d = asdict(self)
        d["residuals"] = list(self.residuals)
        d["a"], d["b"] = self.exponents
        return d


def chinchilla_starts() -> torch.Tensor:
    """Hoffmann et al.'s grid of initial (a, b, e, alpha, beta): 6 x 6 x 5 x 5 x 5 starts."""
    grid = itertools.product(range(0, 30, 5), range(0, 30, 5), np.arange(-1, 1.01, 0.5),
                             np.arange(0, 2.01, 0.5), np.arange(0, 2.01, 0.5))
    return torch.tensor(list(grid), dtype=torch.float64)


def chinchilla(N, D, L, *, delta: float = HUBER_DELTA, refine: int = 4,
               start: Chinchilla | None = None, starts: torch.Tensor | None = None,
               max_iter: int = 200) -> Chinchilla:
    """Fit L(N, D) to runs (non-embedding parameters N, tokens D, final loss L)."""
    N, D, L = (np.asarray(v, float) for v in (N, D, L))
    if len(L) < 5:
        raise ConfigError(f"L(N, D) has 5 parameters but the sweep has {len(L)} usable runs; "
                          "add runs to the grid.")
    logN, logD = torch.tensor(np.log(N)), torch.tensor(np.log(D))
    log_y = torch.tensor(np.log(L))

    def terms(th: torch.Tensor) -> torch.Tensor:  # th [S, 5] -> [S, n, 3]
        a, b, e, al, be = (th[:, i:i + 1] for i in range(5))
        return torch.stack([a - al * logN, b - be * logD, e.expand(-1, len(L))], -1)

    extra = None
    if start is not None:
        extra = torch.tensor([[math.log(start.A), math.log(start.B), math.log(start.E),
                               start.alpha, start.beta]], dtype=torch.float64)
    th, obj = _fit_lse(terms, log_y, chinchilla_starts() if starts is None else starts,
                       delta, refine, max_iter=max_iter, extra_starts=extra)
    fit = Chinchilla(E=_exp(th[2]), A=_exp(th[0]), B=_exp(th[1]),
                     alpha=float(th[3]), beta=float(th[4]))
    pred = fit(N, D)
    return Chinchilla(**{**asdict(fit), "r2": r_squared(L, pred),
                         "residuals": tuple((L - pred).tolist()), "objective": obj})


@dataclass(frozen=True)
class OffsetPowerLaw:
    """L(x) = E + (x_0 / x)^alpha, fitted like :func:`chinchilla` (Huber on log L)."""

    E: float
    x_0: float
    alpha: float
    r2: float
    residuals: list[float]

    def __call__(self, x):
        return self.E + (self.x_0 / np.asarray(x, float)) ** self.alpha

    def to_dict(self) -> dict:
        return asdict(self)


def offset_power_law(x, y, *, delta: float = HUBER_DELTA, refine: int = 6) -> OffsetPowerLaw:
    """Fit L = E + (x_0 / x)^alpha = exp(LSE(alpha log x_0 - alpha log x, log E))."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(np.unique(x)) < 3:
        raise ConfigError(f"E + (x_0/x)^alpha has 3 parameters but only {len(np.unique(x))} "
                          "distinct points were given; add runs.")
    log_x, log_y = torch.tensor(np.log(x)), torch.tensor(np.log(y))

    def terms(th: torch.Tensor) -> torch.Tensor:  # th [S, 3] = (c, e, alpha), c = alpha log x_0
        c, e, al = (th[:, i:i + 1] for i in range(3))
        return torch.stack([c - al * log_x, e.expand(-1, len(x))], -1)

    grid = itertools.product(np.arange(0, 40.1, 2.5), np.arange(-2, 1.01, 0.25),
                             (0.02, 0.05, 0.1, 0.2, 0.4, 0.8))
    th, _ = _fit_lse(terms, log_y, torch.tensor(list(grid), dtype=torch.float64), delta, refine)
    c, e, al = (float(v) for v in th)
    x_0 = _exp(c / al) if al > 1e-12 else math.inf
    fit = OffsetPowerLaw(_exp(e), x_0, al, 0.0, [])
    pred = fit(x)
    return OffsetPowerLaw(fit.E, x_0, al, r_squared(y, pred), (y - pred).tolist())


def percentile_interval(samples, level: float = 0.9) -> list[float]:
    """The central ``level`` interval of ``samples`` (NaNs dropped)."""
    s = np.asarray(samples, float)
    s = s[np.isfinite(s)]
    if not len(s):
        return [float("nan"), float("nan")]
    lo = (1 - level) / 2
    return [float(np.quantile(s, lo)), float(np.quantile(s, 1 - lo))]


__all__ = ["Chinchilla", "OffsetPowerLaw", "PowerLaw", "chinchilla", "chinchilla_starts",
           "offset_power_law", "percentile_interval", "power_law", "r_squared"]
