"""The optimiser and its schedule: AdamW with decay / no-decay groups, warmup then cosine."""

from __future__ import annotations

import math

import torch

from chainrule.training.config import TrainConfig


def get_lr(step: int, cfg: TrainConfig) -> float:
    """Learning rate at ``step``: linear warmup, cosine decay to ``min_lr``, then flat.

    A pure function of the step, so the "scheduler state" is the step itself.

    >>> cfg = TrainConfig(learning_rate=1.0, min_lr=0.0, warmup_iters=10, lr_decay_iters=110)
    >>> get_lr(0, cfg), get_lr(60, cfg), get_lr(200, cfg)
    (0.09090909090909091, 0.5, 0.0)
    """
    if not cfg.decay_lr:
        return cfg.learning_rate
    if step < cfg.warmup_iters:
        return cfg.learning_rate * (step + 1) / (cfg.warmup_iters + 1)
    if step > cfg.lr_decay_iters:
        return cfg.min_lr
    span = max(1, cfg.lr_decay_iters - cfg.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * (step - cfg.warmup_iters) / span))
    return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig,
                   device: torch.device) -> torch.optim.AdamW:
    """AdamW over the model's decay / no-decay groups; fused kernels where this torch has them."""
    if hasattr(model, "optim_groups"):
        groups = model.optim_groups(cfg.weight_decay)
    else:  # matrices decay; biases, norms and gains do not
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    groups = [g for g in groups if len(list(g["params"]))]
    kw = {"lr": cfg.learning_rate, "betas": (cfg.beta1, cfg.beta2)}
    for extra in ({"fused": True}, {"foreach": True}, {}):
        try:
            return torch.optim.AdamW(groups, **kw, **extra)
        except (RuntimeError, TypeError, ValueError):
            continue
    raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["get_lr", "make_optimizer"]
