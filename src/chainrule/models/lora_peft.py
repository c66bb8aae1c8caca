"""LoRA adapters in PEFT's format: ``adapter_config.json`` + ``adapter_model.safetensors``.

PEFT (Hugging Face) names a Llama model's adapter by the module it changes, e.g.
``base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight`` (r, in) and ``.lora_B.weight``
(out, r), scaled by ``lora_alpha / r``. chainrule's q block of layer 3's fused ``attn.c_attn`` is
the same matrix pair (``transformer.h.3.attn.c_attn.lora.q.A`` / ``.B``), so the two formats
map name for name, tensor for tensor:

    chainrule (layer, part)             PEFT module
    attn.c_attn q / k / v              self_attn.q_proj / k_proj / v_proj
    attn.c_proj (whole)                 self_attn.o_proj
    mlp.c_fc gate / up                  mlp.gate_proj / up_proj
    mlp.c_proj (whole)                  mlp.down_proj
    lm_head (whole)                     lm_head

Only Llama-shaped models (the ones ``chainrule export hf`` writes as ``LlamaForCausalLM``) and
plain LoRA (no rsLoRA, DoRA, biases, per-layer ranks) are converted; anything else is refused
with one sentence.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from chainrule.errors import ConfigError, ModelFormatError
from chainrule.fileio import read_json, read_safetensors, write_json, write_safetensors
from chainrule.models.lora import (
    LoRAConfig,
    add_lora,
    read_adapter,
    save_adapter,
    set_lora_weights,
)

PEFT_CONFIG, PEFT_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
_PREFIX = "base_model.model."
_BLOCK_MODULES = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
                  "gate": "mlp.gate_proj", "up": "mlp.up_proj"}
_WHOLE_MODULES = {"attn.c_proj": "self_attn.o_proj", "mlp.c_proj": "mlp.down_proj"}
_OURS = re.compile(r"^transformer\.h\.(\d+)\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)"
                   r"\.lora\.(\w+)\.(A|B)$")
_THEIRS = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)"
                     r"\.lora_(A|B)\.weight$")
# PEFT module leaf -> (our layer, the part name add_lora gives the target it maps to)
_FROM_PEFT = {"q_proj": ("attn.c_attn", "q"), "k_proj": ("attn.c_attn", "k"),
              "v_proj": ("attn.c_attn", "v"), "o_proj": ("attn.c_proj", "attn_c_proj"),
              "gate_proj": ("mlp.c_fc", "gate"), "up_proj": ("mlp.c_fc", "up"),
              "down_proj": ("mlp.c_proj", "mlp_c_proj")}


def _peft_name(ours: str) -> str:
    """Our adapter tensor name -> PEFT's (or ConfigError for a part PEFT cannot express)."""
    if ours in ("lm_head.lora.lm_head.A", "lm_head.lora.lm_head.B"):
        return f"{_PREFIX}lm_head.lora_{ours[-1]}.weight"
    m = _OURS.match(ours)
    if m is None:
        raise ConfigError(f"the adapter tensor {ours!r} has no PEFT equivalent; PEFT adapters "
                          "cover q, k, v, o_proj, gate, up, down_proj and lm_head of a Llama.")
    layer, where, part, ab = m.groups()
    module = _BLOCK_MODULES.get(part) if where in ("attn.c_attn", "mlp.c_fc") else \
        _WHOLE_MODULES[where]
    if module is None:
        raise ConfigError(f"a LoRA on the whole fused {where} has no PEFT equivalent (PEFT "
                          "adapts q_proj, k_proj, v_proj or gate_proj, up_proj separately); "
                          "target q,k,v or gate,up instead.")
    return f"{_PREFIX}model.layers.{layer}.{module}.lora_{ab}.weight"


def export_peft(adapter_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                base_name: str = "") -> Path:
    """Write a chainrule adapter directory as a PEFT adapter directory."""
    meta, tensors = read_adapter(adapter_dir)
    if meta.get("base_family") not in ("gpt", ""):
        raise ConfigError(f"PEFT export covers Llama-shaped gpt models, not "
                          f"{meta.get('base_family')!r}.")
    out = {_peft_name(k): v.contiguous() for k, v in tensors.items()}
    modules = sorted({k.removeprefix(_PREFIX).split(".lora_")[0].rsplit(".", 1)[-1]
                      for k in out})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_safetensors(out_dir / PEFT_WEIGHTS, out, metadata={"format": "pt"})
    write_json(out_dir / PEFT_CONFIG, {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": meta["rank"],
        "lora_alpha": meta["alpha"], "lora_dropout": meta.get("dropout", 0.0),
        "target_modules": modules, "bias": "none", "fan_in_fan_out": False,
        "use_rslora": False, "use_dora": False, "init_lora_weights": True,
        "inference_mode": True, "modules_to_save": None, "layers_to_transform": None,
        "rank_pattern": {}, "alpha_pattern": {},
        "base_model_name_or_path": base_name or meta.get("base_fingerprint", "")})
    return out_dir


def _check_peft_config(c: Any, where: str) -> LoRAConfig:
    if not isinstance(c, dict) or c.get("peft_type") != "LORA":
        raise ModelFormatError(f"{where} is not a PEFT LoRA adapter (peft_type "
                               f"{c.get('peft_type') if isinstance(c, dict) else None!r}).")
    problems = []
    for key, ok in (("use_rslora", False), ("use_dora", False), ("bias", "none"),
                    ("fan_in_fan_out", False)):
        if c.get(key, ok) != ok:
            problems.append(f"{key}={c[key]!r} (chainrule converts plain LoRA: {key}={ok!r})")
    for key in ("rank_pattern", "alpha_pattern", "layers_to_transform", "modules_to_save"):
        if c.get(key):
            problems.append(f"{key} is set (chainrule converts one rank for every layer)")
    targets = c.get("target_modules")
    if not isinstance(targets, list):
        problems.append(f"target_modules is {targets!r}, not a list of module names")
        targets = []
    unknown = [t for t in targets if t not in _FROM_PEFT and t != "lm_head"]
    if unknown:
        problems.append(f"target_modules {unknown} are not Llama modules chainrule maps "
                        f"({', '.join([*_FROM_PEFT, 'lm_head'])})")
    if problems:
        raise ModelFormatError([f"{where}: {p}." for p in problems])
    return LoRAConfig(int(c["r"]), float(c["lora_alpha"]), float(c.get("lora_dropout", 0.0)),
                      tuple(sorted(targets)))


def import_peft(peft_dir: str | os.PathLike, base_model: torch.nn.Module,
                out_dir: str | os.PathLike) -> Path:
    """A PEFT adapter directory -> a chainrule adapter for ``base_model`` (its fingerprint)."""
    peft_dir = Path(peft_dir)
    cfg = _check_peft_config(read_json(peft_dir / PEFT_CONFIG, what="PEFT adapter config"),
                             repr(str(peft_dir)))
    theirs = read_safetensors(peft_dir / PEFT_WEIGHTS)
    ours: dict[str, torch.Tensor] = {}
    for k, v in theirs.items():
        m = _THEIRS.match(k)
        if m is not None:
            layer, _, leaf, ab = m.groups()
            where, part = _FROM_PEFT[leaf]
            ours[f"transformer.h.{layer}.{where}.lora.{part}.{ab}"] = v
        elif k in (f"{_PREFIX}lm_head.lora_A.weight", f"{_PREFIX}lm_head.lora_B.weight"):
            ours[f"lm_head.lora.lm_head.{k[-8]}"] = v
        else:
            raise ModelFormatError(f"{str(peft_dir)!r}: tensor {k!r} is not a LoRA weight of a "
                                   "Llama module chainrule maps.")
    from chainrule.models.lora import base_fingerprint

    fingerprint = base_fingerprint(base_model)
    add_lora(base_model, cfg)
    set_lora_weights(base_model, ours, where=str(peft_dir))
    return save_adapter(base_model, out_dir, fingerprint)


__all__ = ["PEFT_CONFIG", "PEFT_WEIGHTS", "export_peft", "import_peft"]
