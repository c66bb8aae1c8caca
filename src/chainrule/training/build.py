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


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 products natively: a CUDA GPU with bf16, or a CPU with
    AVX512-BF16 or AMX (where bf16 matrix products run at about twice float32's speed)."""
    if device.type == "cuda":
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # an older torch without the keyword
            return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported",
                                                     "_is_amx_tile_supported")]
    if any(p is not None for p in probes):
        return any(p() for p in probes if p is not None)
    try:  # pragma: no cover - a torch without the probes
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def uses_bf16(dtype: str, device: torch.device) -> bool:
    """Whether a run with ``dtype`` (a :class:`TrainConfig` value) trains under bf16 autocast:
    ``bfloat16`` always; ``auto`` on a CUDA GPU with bf16; ``bfloat16-if-native`` wherever
    :func:`native_bf16` holds (a GPU with bf16 or a CPU with AVX512-BF16/AMX), float32 elsewhere.
    """
    if dtype == "bfloat16":
        return True
    if dtype == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    return dtype == "bfloat16-if-native" and native_bf16(device)


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


__all__ = ["default_model_factory", "model_kwargs", "native_bf16", "resolve_device",
           "seed_everything", "uses_bf16"]
