"""What a training run is built from: the device, the model from its configuration, the seed."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from chainrule.errors import ConfigError
from chainrule.training.config import TrainConfig


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA if present, else CPU; refuse CUDA when there is none."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} was asked for, but this PyTorch sees no CUDA GPU; "
                          "use --device cpu (or device=auto).")
    return torch.device(name)


def default_model_factory(cfg: TrainConfig, vocab_size: int, bos_id: int | None,
                          eos_id: int | None) -> torch.nn.Module:
    """Build ``cfg.family`` with :func:`chainrule.models.neural.build_neural_model`."""
    from chainrule.models.neural import build_neural_model

    return build_neural_model(cfg.family, **model_kwargs(cfg, vocab_size, bos_id, eos_id))


def model_kwargs(cfg: TrainConfig, vocab_size: int, bos_id: int | None,
                 eos_id: int | None) -> dict[str, Any]:
    """The model's settings (:meth:`TrainConfig.model_settings`) plus the tokenizer's ids."""
    kw: dict[str, Any] = dict(cfg.model_settings())
    kw["vocab_size"] = vocab_size
    if bos_id is not None:
        kw["bos_id"] = bos_id
    if eos_id is not None:
        kw["eos_id"] = eos_id
    return kw


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


__all__ = ["default_model_factory", "model_kwargs", "resolve_device", "seed_everything"]
