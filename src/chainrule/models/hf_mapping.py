"""How transformers' GPT-2 and Llama configs and weights map onto chainrule's ``gpt`` (no files).

chainrule's names are GPT-2's (see :mod:`chainrule.models.layers`):

* **GPT-2** (``model_type`` ``gpt2``): the same names; GPT-2 stores its four projection matrices
  as ``Conv1D`` (in, out), so those are transposed (:func:`chainrule.models.gpt.gpt_to_hf_state_dict`).
* **Llama** (``llama``; ``mistral`` without a sliding window is the same network):
  ``embed_tokens`` -> ``wte``, ``input_layernorm`` / ``post_attention_layernorm`` -> ``ln_1`` /
  ``ln_2``, ``q_proj``, ``k_proj``, ``v_proj`` stacked row-wise (q first) -> ``attn.c_attn``,
  ``o_proj`` -> ``attn.c_proj``, ``gate_proj``, ``up_proj`` stacked -> ``mlp.c_fc``,
  ``down_proj`` -> ``mlp.c_proj``, ``norm`` -> ``ln_f``; ``lm_head`` only when untied. Both use
  rotary positions in the rotate-half layout, so no permutation is needed.

:mod:`chainrule.models.hf` reads and writes the directories.
"""

from __future__ import annotations

from typing import Any

import torch

from chainrule.errors import ModelFormatError
from chainrule.models.configs import GPTConfig
from chainrule.models.gpt import (
    _HF_TRANSPOSED,
    GPT,
    gpt_from_hf_state_dict,
    gpt_to_hf_state_dict,
    hf_gpt2_config_kwargs,
)

#: model_type values that are Llama's network under another name (checked further on import)
LLAMA_TYPES = ("llama", "mistral")
#: architectures people will try, and why they are not the same network
REFUSED_TYPES = {
    "qwen2": "has biases on the query/key/value projections but not on the output projection",
    "qwen3": "normalises queries and keys inside attention",
    "gemma": "scales embeddings and uses a GELU gate with (1 + weight) RMSNorm",
    "gemma2": "soft-caps logits and alternates local and global attention",
    "phi": "uses a parallel attention/MLP block with partial rotary positions",
    "phi3": "stores fused q/k/v and gate/up weights with long-context rope scaling",
    "gpt_neox": "uses parallel residuals and partial rotary positions",
    "falcon": "uses parallel attention and multi-query layouts of its own",
}


# -- config -----------------------------------------------------------------------------------
def _rope_theta(config: dict[str, Any], where: str) -> float:
    params = config.get("rope_parameters") or {}
    scaling = config.get("rope_scaling") or {}
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if kind != "default":
        raise ModelFormatError(f"{where} uses rope scaling {kind!r}; chainrule implements plain "
                               "rotary positions only.")
    return float(params.get("rope_theta", config.get("rope_theta", 10000.0)))


def gpt_config_from_hf(config: dict[str, Any], where: str = "config.json") -> dict[str, Any]:
    """``GPTConfig`` fields for a Hugging Face ``config.json`` of a GPT-2 or Llama model."""
    kind = config.get("model_type")
    try:
        if kind == "gpt2":
            return _gpt2_config(config, where)
        if kind in LLAMA_TYPES:
            return _llama_config(config, where)
    except KeyError as e:
        raise ModelFormatError(f"{where} lacks {e}; it is not a complete {kind} config.") from None
    if kind in REFUSED_TYPES:
        raise ModelFormatError(f"{where} describes a {kind} model, which {REFUSED_TYPES[kind]}; "
                               "chainrule imports gpt2 and llama models only.")
    raise ModelFormatError(f"{where} has model_type {kind!r}; chainrule imports gpt2 and llama "
                           "(Llama-architecture) models only.")


def _gpt2_config(c: dict[str, Any], where: str) -> dict[str, Any]:
    act = c.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ModelFormatError(f"{where} uses activation {act!r}; chainrule's GPT-2 MLP is the "
                               "tanh-approximated GELU (gelu_new).")
    if c.get("scale_attn_by_inverse_layer_idx") or not c.get("scale_attn_weights", True) \
            or c.get("add_cross_attention"):
        raise ModelFormatError(f"{where} changes GPT-2's attention (scaling or cross-attention); "
                               "chainrule imports the standard GPT-2 block only.")
    return {
        "vocab_size": int(c["vocab_size"]), "block_size": int(c.get("n_positions") or c["n_ctx"]),
        "n_layer": int(c["n_layer"]), "n_head": int(c["n_head"]), "n_embd": int(c["n_embd"]),
        "n_inner": int(c.get("n_inner") or 0), "layer_norm_eps": float(c.get(
            "layer_norm_epsilon", 1e-5)), "tie_weights": bool(c.get("tie_word_embeddings", True)),
        "dropout": 0.0, "bias": True, "positions": "learned", "norm": "layernorm", "mlp": "gelu",
    }


def _llama_config(c: dict[str, Any], where: str) -> dict[str, Any]:
    n_embd, n_head = int(c["hidden_size"]), int(c["num_attention_heads"])
    if c.get("hidden_act", "silu") not in ("silu", "swish"):
        raise ModelFormatError(f"{where} uses activation {c['hidden_act']!r}; chainrule's Llama "
                               "MLP is SwiGLU (silu).")
    if c.get("head_dim") not in (None, n_embd // n_head):
        raise ModelFormatError(f"{where} has head_dim {c['head_dim']} instead of hidden_size / "
                               "num_attention_heads; chainrule cannot represent that.")
    window = c.get("sliding_window")
    if window is not None and int(window) < int(c["max_position_embeddings"]):
        raise ModelFormatError(f"{where} uses sliding-window attention; chainrule's attention "
                               "sees the whole context.")
    if bool(c.get("attention_bias", False)) != bool(c.get("mlp_bias", False)):
        raise ModelFormatError(f"{where} has biases in attention or MLP but not both; chainrule's "
                               "GPT has one bias setting for all its linear layers.")
    return {
        "vocab_size": int(c["vocab_size"]), "block_size": int(c["max_position_embeddings"]),
        "n_layer": int(c["num_hidden_layers"]), "n_head": n_head, "n_embd": n_embd,
        "n_kv_head": int(c.get("num_key_value_heads") or n_head),
        "n_inner": int(c["intermediate_size"]), "layer_norm_eps": float(c.get("rms_norm_eps",
                                                                             1e-6)),
        "rope_theta": _rope_theta(c, where), "tie_weights": bool(c.get("tie_word_embeddings",
                                                                       False)),
        "bias": bool(c.get("attention_bias", False)), "dropout": 0.0, "positions": "rotary",
        "norm": "rmsnorm", "mlp": "swiglu",
    }


def hf_shape(cfg: GPTConfig) -> str:
    """``"gpt2"`` or ``"llama"``: the transformers architecture ``cfg`` is (or ModelFormatError)."""
    if (cfg.positions, cfg.norm, cfg.mlp) == ("learned", "layernorm", "gelu") and cfg.bias \
            and cfg.n_kv_head in (0, cfg.n_head):
        return "gpt2"
    if (cfg.positions, cfg.norm, cfg.mlp) == ("rotary", "rmsnorm", "swiglu"):
        return "llama"
    raise ModelFormatError(
        f"this GPT (positions={cfg.positions}, norm={cfg.norm}, mlp={cfg.mlp}, bias={cfg.bias}) "
        "is neither GPT-2's shape (learned, layernorm, gelu, biases) nor Llama's (rotary, "
        "rmsnorm, swiglu), so transformers has no class for it."
    )


def hf_config_from_gpt(model: GPT) -> dict[str, Any]:
    """A transformers ``config.json`` (as a dict) for ``model``."""
    cfg = model.cfg
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    common = {"bos_token_id": cfg.bos_id, "eos_token_id": cfg.eos_id,
              "tie_word_embeddings": cfg.tie_weights, "dtype": dtype, "torch_dtype": dtype}
    if hf_shape(cfg) == "gpt2":
        kw = hf_gpt2_config_kwargs(model)
        return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", **kw,
                "n_inner": cfg.n_inner or None, **common}
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.n_embd,
        "intermediate_size": cfg.n_inner or 4 * cfg.n_embd, "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head, "num_key_value_heads": cfg.n_kv_head or cfg.n_head,
        "head_dim": cfg.n_embd // cfg.n_head, "max_position_embeddings": cfg.block_size,
        "hidden_act": "silu", "rms_norm_eps": cfg.layer_norm_eps, "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "attention_bias": cfg.bias, "mlp_bias": cfg.bias, "attention_dropout": 0.0, **common,
    }


# -- weights ----------------------------------------------------------------------------------
def _llama_layout(cfg: GPTConfig) -> list[tuple[str, list[str]]]:
    """(our name, the HF names stacked row-wise into it), in order."""
    out = [("transformer.wte.weight", ["model.embed_tokens.weight"]),
           ("transformer.ln_f.weight", ["model.norm.weight"])]
    if not cfg.tie_weights:
        out.append(("lm_head.weight", ["lm_head.weight"]))
    kinds = ("weight", "bias") if cfg.bias else ("weight",)
    for i in range(cfg.n_layer):
        ours, hf = f"transformer.h.{i}.", f"model.layers.{i}."
        out += [(ours + "ln_1.weight", [hf + "input_layernorm.weight"]),
                (ours + "ln_2.weight", [hf + "post_attention_layernorm.weight"])]
        for p in kinds:
            out += [
                (ours + f"attn.c_attn.{p}", [hf + f"self_attn.{x}_proj.{p}" for x in "qkv"]),
                (ours + f"attn.c_proj.{p}", [hf + f"self_attn.o_proj.{p}"]),
                (ours + f"mlp.c_fc.{p}", [hf + f"mlp.{x}_proj.{p}" for x in ("gate", "up")]),
                (ours + f"mlp.c_proj.{p}", [hf + f"mlp.down_proj.{p}"]),
            ]
    return out


def _row_sizes(cfg: GPTConfig, n_parts: int) -> list[int]:
    hs = cfg.n_embd // cfg.n_head
    if n_parts == 3:  # q, k, v
        kv = (cfg.n_kv_head or cfg.n_head) * hs
        return [cfg.n_embd, kv, kv]
    inner = cfg.n_inner or 4 * cfg.n_embd
    return [inner, inner]  # gate, up


def llama_to_hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Weights of a Llama-shaped ``model`` named and split for ``LlamaForCausalLM``."""
    ours = model.state_dict()
    out = {}
    for name, hf_names in _llama_layout(model.cfg):
        p = ours[name].detach()
        if len(hf_names) == 1:
            out[hf_names[0]] = p.clone()
            continue
        for hf_name, part in zip(hf_names, p.split(_row_sizes(model.cfg, len(hf_names)))):
            out[hf_name] = part.clone()
    return out


def llama_from_hf_state_dict(model: GPT, state_dict: dict[str, torch.Tensor]) -> GPT:
    """Copy ``LlamaForCausalLM`` weights into a Llama-shaped ``model`` in place."""
    ours = model.state_dict()
    with torch.no_grad():
        for name, hf_names in _llama_layout(model.cfg):
            ours[name].copy_(torch.cat([state_dict[n] for n in hf_names]))
    return model


def hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """``model``'s weights as transformers names them (the tied head left out)."""
    if hf_shape(model.cfg) == "llama":
        return llama_to_hf_state_dict(model)
    out = gpt_to_hf_state_dict(model)
    if model.cfg.tie_weights:
        out.pop("lm_head.weight")
    return out


def hf_shapes(model: GPT) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor :func:`hf_state_dict` gives (without copying weights)."""
    ours = model.state_dict()
    if hf_shape(model.cfg) == "gpt2":
        return {k: tuple(reversed(v.shape)) if k.endswith(_HF_TRANSPOSED) else tuple(v.shape)
                for k, v in ours.items() if not (k == "lm_head.weight" and model.cfg.tie_weights)}
    out = {}
    for name, hf_names in _llama_layout(model.cfg):
        rest = tuple(ours[name].shape[1:])
        sizes = _row_sizes(model.cfg, len(hf_names)) if len(hf_names) > 1 else \
            [ours[name].shape[0]]
        out.update({n: (rows, *rest) for n, rows in zip(hf_names, sizes)})
    return out


def _normalise_names(tensors: dict[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """Checkpoint names as the LM-head class has them (bare base-model checkpoints get the
    ``transformer.`` / ``model.`` prefix); non-weight buffers some checkpoints keep are dropped."""
    prefix = "transformer." if kind == "gpt2" else "model."
    bare = not any(k.startswith(prefix) for k in tensors)
    out = {}
    for k, v in tensors.items():
        if k.endswith((".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")):
            continue
        out[prefix + k if bare and k != "lm_head.weight" else k] = v
    return out


def load_hf_weights(model: GPT, tensors: dict[str, torch.Tensor], kind: str,
                    where: str = "the checkpoint") -> GPT:
    """Check names and shapes of a transformers checkpoint and copy it into ``model``."""
    tensors = _normalise_names(tensors, kind)
    expected = hf_shapes(model)
    if model.cfg.tie_weights:  # a tied checkpoint may still store the head; it is not used
        tensors.pop("lm_head.weight", None)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    wrong = [k for k in sorted(set(expected) & set(tensors)) if tuple(tensors[k].shape) !=
             expected[k]]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ModelFormatError(f"{where} lacks tensor {missing[0]!r}{more}; the checkpoint is "
                               "incomplete or does not match config.json.")
    if wrong:
        k = wrong[0]
        raise ModelFormatError(f"{where}: tensor {k!r} has shape {list(tensors[k].shape)} but "
                               f"config.json implies {list(expected[k])}; the checkpoint does not "
                               "match its config.")
    if extra:
        raise ModelFormatError(f"{where} has tensor {extra[0]!r}, which a {kind} causal LM does "
                               "not have; it is not a plain model of this architecture.")
    if kind == "gpt2":
        if model.cfg.tie_weights:
            tensors["lm_head.weight"] = tensors["transformer.wte.weight"]
        return gpt_from_hf_state_dict(model, tensors)
    return llama_from_hf_state_dict(model, tensors)


__all__ = [
    "LLAMA_TYPES",
    "REFUSED_TYPES",
    "gpt_config_from_hf",
    "hf_config_from_gpt",
    "hf_shape",
    "hf_shapes",
    "hf_state_dict",
    "llama_from_hf_state_dict",
    "llama_to_hf_state_dict",
    "load_hf_weights",
]
