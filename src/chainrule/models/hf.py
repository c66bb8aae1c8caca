"""Hugging Face directories in and out: GPT-2 and Llama-architecture models as chainrule's ``gpt``.

A Hugging Face model directory holds ``config.json`` (``model_type`` names the architecture),
the weights (``model.safetensors``, or shards listed in ``model.safetensors.index.json``),
``tokenizer.json`` and usually ``tokenizer_config.json`` (BOS/EOS, the chat template).
:func:`import_hf` turns one into a chainrule model directory; :func:`export_hf` writes one that
``transformers.AutoModelForCausalLM.from_pretrained`` loads with the same logits. How configs
and weights map is :mod:`chainrule.models.hf_mapping`; the tokenizer is read by
:mod:`chainrule.tokenizers.hf_import` and written by :mod:`chainrule.tokenizers.hf`.

Nothing is executed: configs are JSON, weights safetensors (a ``pytorch_model.bin`` pickle is
refused). The output directory is written beside its final place and renamed into it, so a
failure leaves nothing half-written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from chainrule.errors import ChainruleError, ConfigError, ModelFormatError
from chainrule.fileio import (
    atomic_directory,
    read_json,
    read_safetensors,
    write_json,
    write_safetensors,
)
from chainrule.models.base import load_model, read_model_config
from chainrule.models.configs import GPTConfig
from chainrule.models.gpt import GPT
from chainrule.models.hf_mapping import (
    gpt_config_from_hf,
    hf_config_from_gpt,
    hf_state_dict,
    load_hf_weights,
)
from chainrule.models.neural import _DTYPES
from chainrule.tokenizers.chat import read_chat_jinja, write_chat_template
from chainrule.tokenizers.hf_import import read_hf_tokenizer


# -- reading a Hugging Face directory ---------------------------------------------------------
def read_hf_tensors(hf_dir: Path) -> dict[str, torch.Tensor]:
    """All tensors of ``model.safetensors`` or of the shards its index lists."""
    single, index = hf_dir / "model.safetensors", hf_dir / "model.safetensors.index.json"
    if single.exists():
        return read_safetensors(single)
    if index.exists():
        data = _json(index, "safetensors index")
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict):
            raise ModelFormatError(f"{str(index)!r} has no weight_map; the index is corrupt.")
        out: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            out.update(read_safetensors(hf_dir / shard))
        lost = sorted(set(weight_map) - set(out))
        if lost:
            raise ModelFormatError(f"{str(index)!r} lists tensor {lost[0]!r}, which no shard "
                                   "holds; the download is incomplete.")
        return out
    if any(hf_dir.glob("pytorch_model*.bin")):
        raise ModelFormatError(f"{str(hf_dir)!r} has pickled pytorch_model.bin weights only; "
                               "chainrule reads safetensors (loading never executes code), so "
                               "convert them to model.safetensors first.")
    raise ModelFormatError(f"{str(hf_dir)!r} has no model.safetensors (nor a sharded index); "
                           "it is not a complete Hugging Face model directory.")


def _json(path: Path, what: str) -> Any:
    try:
        return read_json(path, what=what)
    except ChainruleError as e:
        raise ModelFormatError(str(e)) from None


def import_hf(hf_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
              dtype: str = "float32", overwrite: bool = False) -> Path:
    """Convert a Hugging Face GPT-2 / Llama directory into a chainrule model directory.

    Args:
        hf_dir: holds ``config.json``, ``model.safetensors`` (or a sharded index) and
            ``tokenizer.json`` (``tokenizer_config.json`` optional: BOS/EOS, chat template).
        out_dir: the chainrule model directory to create (``config.json``,
            ``model.safetensors``, ``tokenizer.json``, and ``chat_template.json`` when the
            model has one).
        dtype: ``float32``, ``bfloat16`` or ``float16``: how the weights are stored and loaded.
        overwrite: replace an existing non-empty ``out_dir``.
    Raises:
        ModelFormatError: an unknown architecture, a missing file or tensor, a shape mismatch.
        TokenizerError: a tokenizer that is not byte-level BPE.
    """
    hf_dir = Path(hf_dir)
    if dtype not in _DTYPES:
        raise ModelFormatError(f"dtype {dtype!r} is not one of {', '.join(_DTYPES)}.")
    if not hf_dir.is_dir():
        raise ModelFormatError(f"{str(hf_dir)!r} is not a directory; pass the Hugging Face model "
                               "directory that holds config.json.")
    if not (hf_dir / "config.json").exists():
        raise ModelFormatError(f"{str(hf_dir)!r} has no config.json; it is not a Hugging Face "
                               "model directory.")
    config = _json(hf_dir / "config.json", "model config")
    if not isinstance(config, dict):
        raise ModelFormatError(f"{str(hf_dir / 'config.json')!r} is not a JSON object.")
    fields = gpt_config_from_hf(config, repr(str(hf_dir / "config.json")))
    tokenizer, template = read_hf_tokenizer(hf_dir, bos_id=config.get("bos_token_id"),
                                            eos_id=config.get("eos_token_id"),
                                            vocab_size=fields["vocab_size"])
    fields.update(bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id)
    try:
        model = GPT(GPTConfig(**fields))
    except ConfigError as e:
        raise ModelFormatError(f"{str(hf_dir / 'config.json')!r} describes a model chainrule "
                               f"cannot build: {' '.join(e.problems)}") from None
    kind = "gpt2" if config["model_type"] == "gpt2" else "llama"
    load_hf_weights(model, read_hf_tensors(hf_dir), kind, repr(str(hf_dir)))
    model.to(_DTYPES[dtype]).eval()
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        model.save(tmp)
        tokenizer.save(tmp / "tokenizer.json")
        if template is not None:
            write_chat_template(tmp, template)
    return Path(out_dir)


# -- writing one ------------------------------------------------------------------------------
def export_hf(model_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
              overwrite: bool = False) -> Path:
    """Write a chainrule ``gpt`` model (GPT-2 or Llama shape) as a Hugging Face directory.

    ``transformers.AutoModelForCausalLM.from_pretrained(out_dir)`` gives the same logits, and
    ``AutoTokenizer.from_pretrained(out_dir)`` the same ids (for byte-level BPE, char and word
    tokenizers; see :mod:`chainrule.tokenizers.hf`). Writes ``config.json``,
    ``model.safetensors``, ``generation_config.json``, ``tokenizer.json`` and
    ``tokenizer_config.json`` (with the chat template when the model has one).
    """
    from chainrule.tokenizers import load_tokenizer
    from chainrule.tokenizers.hf import to_hf_dict

    model_dir = Path(model_dir)
    family = read_model_config(model_dir).get("family")
    if family != "gpt":
        raise ModelFormatError(f"{str(model_dir)!r} holds a {family!r} model; only the gpt "
                               "family (GPT-2 or Llama shape) exists in transformers.")
    model = load_model(model_dir)
    if getattr(model, "lora_settings", None) is not None:
        raise ModelFormatError(f"{str(model_dir)!r} holds LoRA adapters unmerged; run `chainrule "
                               "lora merge` first, or export the adapter with `chainrule lora "
                               "export-peft`.")
    config = hf_config_from_gpt(model)
    tokenizer = load_tokenizer(model_dir)
    if tokenizer.vocab_size != model.vocab_size:
        raise ModelFormatError(f"{str(model_dir)!r}: the tokenizer has {tokenizer.vocab_size} "
                               f"tokens but the model {model.vocab_size}; the directory mixes "
                               "files of different models.")
    tok_json = to_hf_dict(tokenizer)
    tok_config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model.cfg.block_size,
        "bos_token": tokenizer.id_to_token(model.bos_id),
        "eos_token": tokenizer.id_to_token(model.eos_id), "clean_up_tokenization_spaces": False,
    }
    jinja = read_chat_jinja(model_dir)
    if jinja is not None:
        tok_config["chat_template"] = jinja
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        write_json(tmp / "config.json", config)
        write_json(tmp / "generation_config.json", {"bos_token_id": model.bos_id,
                                                    "eos_token_id": model.eos_id})
        write_safetensors(tmp / "model.safetensors", hf_state_dict(model),
                          metadata={"format": "pt"})
        write_json(tmp / "tokenizer.json", tok_json, indent=None)
        write_json(tmp / "tokenizer_config.json", tok_config)
    return Path(out_dir)


__all__ = ["export_hf", "import_hf", "read_hf_tensors"]
