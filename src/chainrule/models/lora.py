"""LoRA (Hu et al. 2021): train a low-rank update of chosen weight matrices, freeze the rest.

A target linear layer W (out, in) gets y = x W^T + b + (alpha / r) * x A^T B^T, with
A (r, in) drawn small and B (out, r) zero, so a fresh adapter leaves the model unchanged and
only A and B (r * (in + out) numbers per target) are trained. Merging folds the update into the
weight, W' = W + (alpha / r) B A, after which the model is an ordinary model again.

chainrule's GPT stacks q, k and v in one ``attn.c_attn`` (and Llama's gate and up in
``mlp.c_fc``), so a target may be a *row block* of a fused layer: ``q`` is rows
[0, n_head*hs) of ``c_attn``, ``k`` and ``v`` the n_kv_head*hs rows after it, ``gate`` / ``up``
the two halves of a SwiGLU ``c_fc``. Each block has its own A and B, exactly like a separate
``q_proj`` / ``v_proj`` in Hugging Face's Llama, so adapters map one to one onto PEFT's.
Other targets are named by the end of a module's name (``c_attn``, ``attn.c_proj``, ``c_fc``,
``mlp.c_proj``, ``lm_head``) or by their Llama names (``q_proj``, ``o_proj``, ``down_proj``...).

The adapter is a module *inside* the model (:class:`LoRALinear` replaces the ``nn.Linear``,
keeping its ``weight``/``bias`` names), so every path that runs the model's modules -- the
training loop, scoring, ``start``/``step``, GPT's CUDA-graph decoder -- uses it unmerged.

On disk an adapter alone is ``adapter.safetensors`` + ``adapter.json`` (rank, alpha, dropout,
targets, and the base model's content fingerprint: loading onto another base is refused). A
model directory whose ``config.json`` carries a ``"lora"`` entry holds the base weights and
its adapters unmerged (what a LoRA fine-tuning run writes).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from chainrule.errors import ConfigError, ModelFormatError
from chainrule.fileio import read_json, read_safetensors, write_json, write_safetensors

ADAPTER_FORMAT = "chainrule-lora"
ADAPTER_VERSION = 1
ADAPTER_WEIGHTS, ADAPTER_CONFIG = "adapter.safetensors", "adapter.json"
DEFAULT_TARGETS = ("q", "v")
# Llama (Hugging Face / PEFT) names -> chainrule targets
HF_TARGETS = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "attn.c_proj",
              "gate_proj": "gate", "up_proj": "up", "down_proj": "mlp.c_proj"}
_BLOCKS = {"q": "attn.c_attn", "k": "attn.c_attn", "v": "attn.c_attn",
           "gate": "mlp.c_fc", "up": "mlp.c_fc"}


@dataclass(frozen=True)
class LoRAConfig:
    """Adapter settings.

    Attributes:
        rank: r, the rank of each update (A is (r, in), B is (out, r)).
        alpha: the update is scaled by alpha / r.
        dropout: dropout on the adapter's input while training.
        targets: which layers get an adapter (see the module docstring).
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = DEFAULT_TARGETS

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.rank, int) or self.rank < 1:
            problems.append(f"the LoRA rank must be a positive integer, not {self.rank!r}.")
        if not 0 <= self.dropout < 1:
            problems.append(f"the LoRA dropout must be in [0, 1), not {self.dropout!r}.")
        if not self.targets:
            problems.append("name at least one LoRA target (default: q,v).")
        if problems:
            raise ConfigError(problems)
        object.__setattr__(self, "targets", tuple(HF_TARGETS.get(t, t) for t in self.targets))

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["targets"] = list(self.targets)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoRAConfig:
        return cls(int(d["rank"]), float(d["alpha"]), float(d.get("dropout", 0.0)),
                   tuple(d["targets"]))


class LoRAPart(nn.Module):
    """One low-rank update on rows [start, stop) of a layer: (alpha/r) B A, A (r, in), B (n, r)."""

    def __init__(self, in_features: int, start: int, stop: int, cfg: LoRAConfig,
                 dtype: torch.dtype, device: torch.device):
        super().__init__()
        self.start, self.stop, self.scaling = start, stop, cfg.scaling
        self.A = nn.Parameter(torch.empty(cfg.rank, in_features, dtype=dtype, device=device))
        self.B = nn.Parameter(torch.zeros(stop - start, cfg.rank, dtype=dtype, device=device))

    def delta(self) -> torch.Tensor:
        """The update of the rows, (stop - start, in), computed in float64 then cast back."""
        return ((self.B.double() @ self.A.double()) * self.scaling).to(self.A.dtype)


class LoRALinear(nn.Linear):
    """An ``nn.Linear`` (same ``weight``/``bias``) plus LoRA updates on row blocks.

    ``forward``: x W^T + b, plus for each part p: rows [p.start, p.stop) += p.scaling *
    dropout(x) A^T B^T.
    """

    def __init__(self, base: nn.Linear, dropout: float = 0.0):
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.lora = nn.ModuleDict()
        self.lora_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        if not len(self.lora):
            return y
        h = self.lora_dropout(x)
        for part in self.lora.values():
            u = F.linear(F.linear(h, part.A), part.B) * part.scaling  # (..., stop - start)
            y = y + F.pad(u, (part.start, self.out_features - part.stop))
        return y


# -- choosing targets ---------------------------------------------------------------------------
def linear_names(model: nn.Module) -> list[str]:
    """Names of every linear layer of ``model`` (what a target can name)."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def _blocks(model: nn.Module, layer: nn.Module, block: str) -> tuple[int, int] | None:
    """Rows of block ``block`` (q/k/v/gate/up) in a fused layer, or None if it has none."""
    cfg = getattr(model, "cfg", None)
    if block in ("q", "k", "v"):
        C = layer.in_features
        n_head = getattr(cfg, "n_head", None)
        if not n_head:
            return None
        kv = (layer.out_features - C) // 2
        return {"q": (0, C), "k": (C, C + kv), "v": (C + kv, C + 2 * kv)}[block]
    if getattr(cfg, "mlp", "gelu") != "swiglu":
        return None
    half = layer.out_features // 2
    return (0, half) if block == "gate" else (half, layer.out_features)


def resolve_targets(model: nn.Module, targets: tuple[str, ...]
                    ) -> list[tuple[str, str, int, int]]:
    """(layer name, part name, first row, end row) for every target; refuses unknown targets."""
    names = linear_names(model)
    out, unmatched = [], []
    for t in targets:
        suffix = _BLOCKS.get(t, t)
        found = [n for n in names if n == suffix or n.endswith("." + suffix)]
        hits = []
        for n in found:
            layer = model.get_submodule(n)
            rows = _blocks(model, layer, t) if t in _BLOCKS else (0, layer.out_features)
            if rows is not None:
                hits.append((n, t.replace(".", "_"), *rows))
        if not hits:
            unmatched.append(t)
        out += hits
    if unmatched:
        shown = sorted({n.split(".")[-1] if n.startswith("transformer.h.") else n
                        for n in names})
        raise ConfigError(
            f"LoRA target(s) {', '.join(unmatched)} match no linear layer of this model; its "
            f"linear layers are {', '.join(shown)} (per block: {', '.join(names[:4])}, ...), "
            "plus the row blocks q, k, v of attn.c_attn (and gate, up of a SwiGLU c_fc).")
    return out


# -- attaching, merging -------------------------------------------------------------------------
def add_lora(model: nn.Module, cfg: LoRAConfig | None = None, *, seed: int = 0,
             freeze: bool = True) -> nn.Module:
    """Put LoRA adapters into ``model`` (in place) and freeze everything else; return it.

    A is drawn from a generator seeded with ``seed`` (the global RNG is left alone); B is zero,
    so the model's outputs are unchanged until training moves B.
    """
    cfg = cfg or LoRAConfig()
    if lora_config(model) is not None:
        raise ConfigError("this model already has LoRA adapters; merge them first.")
    plan = resolve_targets(model, cfg.targets)
    if freeze:
        for p in model.parameters():
            p.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    for name, part, start, stop in plan:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = getattr(parent, child)
        if not isinstance(layer, LoRALinear):
            layer = LoRALinear(layer, cfg.dropout)
            setattr(parent, child, layer)
        w = layer.weight
        p = LoRAPart(layer.in_features, start, stop, cfg, w.dtype, torch.device("cpu"))
        with torch.no_grad():  # U(-1/sqrt(in), 1/sqrt(in)), as nn.Linear and PEFT draw A
            bound = 1 / math.sqrt(layer.in_features)
            p.A.copy_(torch.rand(p.A.shape, generator=gen, dtype=torch.float64, device="cpu")
                      * 2 * bound - bound)
        layer.lora[part] = p.to(w.device)
    model.lora_settings = cfg
    return model


def lora_config(model: nn.Module) -> LoRAConfig | None:
    """The adapters' settings, or None when the model has none attached."""
    return getattr(model, "lora_settings", None)


def _lora_layers(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]


def merge_lora(model: nn.Module, *, sign: float = 1.0) -> nn.Module:
    """Fold every adapter into its layer's weight and remove the adapters (in place).

    ``sign=-1`` subtracts instead (see :func:`unmerge_adapter`). Parameters that were frozen
    for LoRA become trainable again.
    """
    with torch.no_grad():
        for name, layer in _lora_layers(model):
            for part in layer.lora.values():
                layer.weight[part.start:part.stop] += sign * part.delta()
            plain = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                              device="meta")
            plain.weight, plain.bias = layer.weight, layer.bias
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, plain)
    for p in model.parameters():
        p.requires_grad_(True)
    if hasattr(model, "lora_settings"):
        del model.lora_settings
    return model


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights alone: ``<layer>.lora.<part>.A`` / ``.B``."""
    return {k: v.detach() for k, v in model.state_dict().items() if ".lora." in k}


def trainable_share(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters), tied matrices counted once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


# -- fingerprints and files ---------------------------------------------------------------------
def base_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the base weights (names, dtypes, shapes, bytes), adapters excluded."""
    state = (model._weights_to_save() if hasattr(model, "_weights_to_save")
             else model.state_dict())
    h = hashlib.sha256()
    for name in sorted(k for k in state if ".lora." not in k):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return "sha256:" + h.hexdigest()


def save_adapter(model: nn.Module, directory: str | os.PathLike,
                 fingerprint: str | None = None) -> Path:
    """Write the adapters alone: ``adapter.safetensors`` + ``adapter.json``."""
    cfg = lora_config(model)
    if cfg is None:
        raise ConfigError("this model has no LoRA adapters to save.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_safetensors(directory / ADAPTER_WEIGHTS,
                      {k: v.contiguous() for k, v in lora_state_dict(model).items()},
                      metadata={"format": ADAPTER_FORMAT})
    write_json(directory / ADAPTER_CONFIG, {
        "format": ADAPTER_FORMAT, "version": ADAPTER_VERSION, **cfg.to_dict(),
        "base_family": getattr(model, "family", ""),
        "base_fingerprint": fingerprint or base_fingerprint(model)})
    return directory


def read_adapter(directory: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(adapter.json, tensors) of an adapter directory, checked for format."""
    directory = Path(directory)
    meta = read_json(directory / ADAPTER_CONFIG, what="LoRA adapter config")
    if not isinstance(meta, dict) or meta.get("format") != ADAPTER_FORMAT:
        raise ModelFormatError(f"{str(directory)!r} is not a chainrule LoRA adapter "
                               f"({ADAPTER_CONFIG} has no format {ADAPTER_FORMAT!r}).")
    if meta.get("version") != ADAPTER_VERSION:
        raise ModelFormatError(f"{str(directory)!r} is adapter version {meta.get('version')!r};"
                               f" this chainrule reads version {ADAPTER_VERSION}.")
    return meta, read_safetensors(directory / ADAPTER_WEIGHTS)


def load_adapter(model: nn.Module, directory: str | os.PathLike, *,
                 check_base: bool = True) -> nn.Module:
    """Attach the adapter saved in ``directory`` to ``model`` (its base must match)."""
    meta, tensors = read_adapter(directory)
    if check_base and meta.get("base_fingerprint") != base_fingerprint(model):
        raise ModelFormatError(
            f"the adapter in {str(directory)!r} was trained on another base model (its "
            "fingerprint differs from this model's weights); load it onto the model it was "
            "trained from.")
    add_lora(model, LoRAConfig.from_dict(meta))
    set_lora_weights(model, tensors, where=str(directory))
    return model


def set_lora_weights(model: nn.Module, tensors: dict[str, torch.Tensor], where: str = "") -> None:
    """Copy adapter tensors into the attached adapters; names and shapes must match exactly."""
    ours = {k: v for k, v in model.state_dict().items() if ".lora." in k}
    if set(ours) != set(tensors) or any(ours[k].shape != tensors[k].shape for k in ours):
        raise ModelFormatError(f"the adapter weights in {where!r} do not fit this model's "
                               "adapters (names or shapes differ); it belongs to another model.")
    with torch.no_grad():
        for k, v in ours.items():
            v.copy_(tensors[k])


def unmerge_adapter(model: nn.Module, directory: str | os.PathLike) -> nn.Module:
    """Subtract a merged adapter from ``model``'s weights (in place): the base comes back
    (to float rounding: W + d - d differs from W by at most one unit in the last place)."""
    meta, tensors = read_adapter(directory)
    add_lora(model, LoRAConfig.from_dict(meta))
    set_lora_weights(model, tensors, where=str(directory))
    return merge_lora(model, sign=-1.0)


__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "DEFAULT_TARGETS",
    "LoRAConfig",
    "LoRALinear",
    "add_lora",
    "base_fingerprint",
    "linear_names",
    "load_adapter",
    "lora_config",
    "lora_state_dict",
    "merge_lora",
    "read_adapter",
    "resolve_targets",
    "save_adapter",
    "set_lora_weights",
    "trainable_share",
    "unmerge_adapter",
]
