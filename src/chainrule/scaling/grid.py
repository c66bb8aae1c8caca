"""The grid of a scaling sweep: one :class:`SweepPoint` per (family, depth, width, tokens).

Each point becomes a :class:`~chainrule.training.config.TrainConfig` for the one training loop,
with the optimisation set from the model's size by a stated rule (:func:`learning_rate_for`):

- peak learning rate from N, Kaplan et al. (2020), eq. D.1:
  ``lr(N) = 0.003239 - 0.0001395 ln N`` (times ``lr_scale``), kept within [1e-4, 1e-2];
- linear warm-up over 5% of the steps, then cosine decay to 10% of the peak at the run's last
  step (Hoffmann et al. 2022: a cosine cycle matched to the run's length, decayed 10x);
- AdamW, weight decay 0.1, no dropout, the same batch (``batch_size`` x ``block_size`` tokens)
  for every point, so D = steps x batch tokens.

A grid is given as lists (every depth x width x token budget) or as a TOML file:

    family = "gpt"
    depths = [1, 2]
    widths = [32, 64]
    tokens = [1e5, 3e5]
    [settings]          # KEY=VALUE for every run (training keys or the model's)
    block_size = 64
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chainrule.errors import ConfigError
from chainrule.scaling.flops import ModelSize, config_size
from chainrule.training.config import TrainConfig, make_config

#: shared settings of every run unless the sweep overrides them
DEFAULT_SETTINGS: dict[str, Any] = {
    "block_size": 64, "batch_size": 16, "eval_iters": 20, "weight_decay": 0.1,
    "log_interval": 10, "dropout": 0.0, "grad_clip": 1.0,
}
EVALS_PER_RUN = 8  # validation-loss points along each run (the curves of the frontier)


@dataclass(frozen=True)
class SweepPoint:
    """One configuration of a sweep.

    Attributes:
        family: the neural family (``gpt``, ``lstm``, ...).
        n_layer: depth (blocks or stacked recurrent layers).
        n_embd: width (the residual stream; the LSTM's embedding and hidden width).
        tokens: D, training tokens (rounded up to whole steps).
        budget: the compute budget C the point was planned for (0: not planned by budget).
    """

    family: str
    n_layer: int
    n_embd: int
    tokens: int
    budget: float = 0.0
    settings: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        """A directory name that identifies the point (family, depth, width, tokens)."""
        return f"{self.family}-L{self.n_layer}-d{self.n_embd}-D{self.tokens}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepPoint:
        return cls(family=d["family"], n_layer=int(d["n_layer"]), n_embd=int(d["n_embd"]),
                   tokens=int(d["tokens"]), budget=float(d.get("budget", 0.0)),
                   settings=dict(d.get("settings", {})))


def learning_rate_for(non_embedding: int, lr_scale: float = 1.0) -> float:
    """Kaplan et al.'s eq. D.1, ``0.003239 - 0.0001395 ln N``, times ``lr_scale``, clipped.

    >>> round(learning_rate_for(100_000), 6)
    0.001633
    """
    lr = (0.003239 - 0.0001395 * math.log(max(non_embedding, 1))) * lr_scale
    return min(max(lr, 1e-4), 1e-2)


def shape_settings(family: str, n_layer: int, n_embd: int) -> dict[str, Any]:
    """The model keys of a depth and width: heads of width <= 32 for GPT, square LSTMs."""
    if family == "gpt":
        heads = max(1, n_embd // 32)
        while n_embd % heads:
            heads -= 1
        return {"n_layer": n_layer, "n_embd": n_embd, "n_head": heads}
    if family in ("lstm", "rnn"):
        return {"n_layer": n_layer, "n_embd": n_embd, "n_hidden": n_embd}
    if family == "ffnn":
        return {"n_embd": n_embd, "n_hidden": 2 * n_embd}
    raise ConfigError(f"scaling sweeps know the families gpt, lstm, rnn and ffnn, "
                      f"not {family!r}.")


def point_config(point: SweepPoint, vocab_size: int, base: dict[str, Any] | None = None,
                 lr_scale: float = 1.0, device: str = "auto") -> tuple[TrainConfig, ModelSize]:
    """The training configuration of ``point`` and its model's size (N sets the rate)."""
    settings = {**DEFAULT_SETTINGS, **(base or {}), **point.settings}
    settings.update(shape_settings(point.family, point.n_layer, point.n_embd))
    if point.family == "ffnn":
        settings.pop("n_layer", None)
    step_tokens = int(settings["batch_size"]) * int(settings["block_size"])
    steps = max(1, math.ceil(point.tokens / step_tokens))
    fixed_lr = float(settings.pop("learning_rate", 0))
    settings.update({
        "max_iters": steps,
        "warmup_iters": max(1, round(0.05 * steps)), "lr_decay_iters": steps,
        "eval_interval": max(1, math.ceil(steps / EVALS_PER_RUN)), "decay_lr": True,
        "device": device,
    })
    cfg = make_config(point.family, None, settings)
    size = config_size(cfg, vocab_size)
    lr = fixed_lr or learning_rate_for(size.non_embedding, lr_scale)
    return cfg.replace(learning_rate=lr, min_lr=lr / 10), size


def grid_points(family: str, depths: list[int], widths: list[int], tokens: list[float],
                settings: dict[str, Any] | None = None) -> list[SweepPoint]:
    """Every depth x width x token budget, in order of increasing compute (roughly)."""
    problems = []
    for name, values in (("depths", depths), ("widths", widths), ("tokens", tokens)):
        if not values:
            problems.append(f"--{name} is empty; give at least one value")
        elif any(v <= 0 for v in values):
            problems.append(f"--{name} must be positive numbers, not {values}")
    if problems:
        raise ConfigError(problems)
    shape_settings(family, 1, 32)  # refuse an unknown family early
    pts = [SweepPoint(family, int(L), int(d), int(D), settings=dict(settings or {}))
           for D in tokens for L in depths for d in widths]
    return sorted(pts, key=lambda p: p.n_layer * p.n_embd ** 2 * p.tokens)


def read_grid_toml(path: str | Path) -> tuple[list[SweepPoint], dict[str, Any]]:
    """Points and shared settings from a TOML grid (the module docstring shows one).

    A file may instead list the points themselves: ``[[point]]`` tables with ``family``,
    ``n_layer``, ``n_embd``, ``tokens``.
    """
    try:
        table = tomllib.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"grid file {str(path)!r} does not exist; check the path.") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"grid file {str(path)!r} is not valid TOML ({e}); fix it.") from None
    settings = dict(table.get("settings", {}))
    if "point" in table:
        try:
            pts = [SweepPoint.from_dict({**p, "family": p.get("family",
                                                               table.get("family", "gpt"))})
                   for p in table["point"]]
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"a [[point]] in {str(path)!r} lacks or mistypes {e}; give "
                              "n_layer, n_embd and tokens.") from None
        return pts, settings
    missing = [k for k in ("depths", "widths", "tokens") if k not in table]
    if missing:
        raise ConfigError(f"grid file {str(path)!r} lacks {', '.join(missing)}; give depths, "
                          "widths and tokens lists (or [[point]] tables).")
    return grid_points(table.get("family", "gpt"), list(table["depths"]),
                       list(table["widths"]), list(table["tokens"]), None), settings


__all__ = ["DEFAULT_SETTINGS", "SweepPoint", "grid_points", "learning_rate_for",
           "point_config", "read_grid_toml", "shape_settings"]
