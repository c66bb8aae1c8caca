"""GGUF (llama.cpp's model file) in: a Llama-architecture model as chainrule's ``gpt`` family.

A GGUF file is a header, metadata (``general.architecture``, ``llama.embedding_length``, ...,
``tokenizer.ggml.*``, ``tokenizer.chat_template``) and tensors, each stored as float32/16, bf16
or in quantised blocks. :func:`import_gguf` reads one with the ``gguf`` package (from llama.cpp),
dequantises every tensor to float32, and writes a chainrule model directory: ``config.json`` +
``model.safetensors`` (float32 or bfloat16), ``tokenizer.json`` (our byte-level BPE, built from
the metadata by :func:`chainrule.tokenizers.gguf_vocab.bytebpe_from_gguf`), ``chat_template.json``
(the Jinja text kept verbatim, never executed) and ``source.json`` (what was imported).

**Names.** ``token_embd`` -> ``transformer.wte``; per layer ``attn_norm`` / ``ffn_norm`` ->
``ln_1`` / ``ln_2``; ``attn_q``, ``attn_k``, ``attn_v`` stacked row-wise -> ``attn.c_attn``;
``attn_output`` -> ``attn.c_proj``; ``ffn_gate``, ``ffn_up`` stacked -> ``mlp.c_fc``;
``ffn_down`` -> ``mlp.c_proj``; ``output_norm`` -> ``ln_f``; ``output`` -> ``lm_head`` (absent:
the output layer is tied to the embedding).

**The query/key permutation.** llama.cpp rotates *adjacent* channel pairs (2i, 2i+1) of a head,
Hugging Face's Llama (and chainrule's :class:`~chainrule.models.layers.RotaryEmbedding`) rotates
the pairs (i, i + hs/2). So llama.cpp's converter reorders the rows of every head of the query
and key weights, ``w.reshape(n, 2, hs/2, C).swapaxes(1, 2)`` (n = heads of that matrix: n_head
for queries, n_kv_head for keys), which makes the two rotations agree. :func:`unpermute_qk`
undoes it (``reshape(n, hs/2, 2, C).swapaxes(1, 2)``, what ``transformers``' GGUF loader does
too); :func:`permute_qk` is the converter's direction, for writing test files.

Loading never executes anything from the file; a truncated or corrupt file, an unsupported
architecture or quantisation, a missing tensor or a wrong shape is one sentence
(:class:`~chainrule.errors.ModelFormatError`), and nothing is left half-written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from chainrule.errors import ConfigError, ModelFormatError
from chainrule.fileio import atomic_directory, write_json
from chainrule.models.configs import GPTConfig
from chainrule.models.gguf_file import SUPPORTED_TYPES, GGUFFile, dequantize, read_gguf
from chainrule.models.gpt import GPT
from chainrule.models.pretrained import smollm2_path
from chainrule.tokenizers.bytebpe import ByteBPETokenizer
from chainrule.tokenizers.chat import write_chat_template
from chainrule.tokenizers.gguf_vocab import bytebpe_from_gguf

#: the dtypes ``import_gguf`` stores weights in
IMPORT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
_LAYER_TENSORS = ("attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                  "ffn_gate", "ffn_up", "ffn_down")


# -- the Q/K permutation -----------------------------------------------------------------------
def permute_qk(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's converter: rows of each head from (i, i + hs/2) pairs to adjacent pairs."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """The inverse of :func:`permute_qk`: a GGUF query/key weight back in Hugging Face's layout."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# -- config ------------------------------------------------------------------------------------
def _int(meta: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = meta.get(key, default)
    if isinstance(value, list):
        raise ModelFormatError(f"{where}: {key} differs from layer to layer; chainrule's "
                               "transformer has the same shape in every layer.")
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelFormatError(f"{where} lacks the metadata key {key}; the file is incomplete.")
    return int(value)


def gpt_config_from_gguf(file: GGUFFile) -> dict[str, Any]:
    """:class:`~chainrule.models.configs.GPTConfig` fields for a ``llama`` GGUF (no BOS/EOS).

    Raises:
        ModelFormatError: another architecture, or Llama options chainrule does not have
            (mixture of experts, rope scaling, partial rotary, per-layer shapes).
    """
    meta, where = file.metadata, repr(str(file.path))
    arch = file.architecture
    if arch != "llama":
        raise ModelFormatError(
            f"{where} holds a {arch or 'unnamed'!r} model; chainrule imports GGUF files of the "
            "'llama' architecture (Llama 2/3, SmolLM2, Mistral-7B and other Llama-shaped models)."
        )
    p = "llama."
    if int(meta.get(p + "expert_count", 0) or 0) > 0:
        raise ModelFormatError(f"{where} is a mixture of experts (llama.expert_count "
                               f"{meta[p + 'expert_count']}); chainrule imports dense Llama models.")
    scaling = meta.get(p + "rope.scaling.type", "none")
    if "rope_freqs.weight" in file.tensors:
        scaling = "per-frequency factors in rope_freqs.weight, as Llama 3.1 has"
    if scaling not in ("none", None):
        raise ModelFormatError(f"{where} scales its rotary positions ({scaling}); chainrule's "
                               "rotary embedding has no scaling, so the model would be wrong.")
    n_embd = _int(meta, p + "embedding_length", where)
    n_head = _int(meta, p + "attention.head_count", where)
    n_kv = _int(meta, p + "attention.head_count_kv", where, default=n_head)
    if n_head <= 0 or n_embd % n_head:
        raise ModelFormatError(f"{where}: embedding_length {n_embd} is not a multiple of "
                               f"head_count {n_head}; the file is corrupt.")
    hs = n_embd // n_head
    for key in ("rope.dimension_count", "attention.key_length", "attention.value_length"):
        if p + key in meta and _int(meta, p + key, where) != hs:
            raise ModelFormatError(f"{where}: llama.{key} is {meta[p + key]}, not the head width "
                                   f"{hs}; chainrule supports full-width heads and rotary only.")
    tokens = meta.get("tokenizer.ggml.tokens") or []
    vocab = meta.get(p + "vocab_size", len(tokens))
    if not vocab and "token_embd.weight" in file.tensors:
        vocab = int(file.tensors["token_embd.weight"].shape[1])
    return {
        "vocab_size": int(vocab),
        "block_size": _int(meta, p + "context_length", where),
        "n_layer": _int(meta, p + "block_count", where),
        "n_head": n_head,
        "n_kv_head": n_kv,
        "n_embd": n_embd,
        "n_inner": _int(meta, p + "feed_forward_length", where),
        "rope_theta": float(meta.get(p + "rope.freq_base", 10000.0)),
        "layer_norm_eps": float(meta.get(p + "attention.layer_norm_rms_epsilon", 1e-5)),
        "tie_weights": "output.weight" not in file.tensors,
        "norm": "rmsnorm",
        "mlp": "swiglu",
        "positions": "rotary",
        "bias": False,
        "dropout": 0.0,
    }


# -- weights -----------------------------------------------------------------------------------
def _expected_tensors(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """GGUF tensor name -> shape (rows first) of a Llama model of this config."""
    C, hs, inner = cfg.n_embd, cfg.n_embd // cfg.n_head, cfg.n_inner
    kv = (cfg.n_kv_head or cfg.n_head) * hs
    out = {"token_embd.weight": (cfg.vocab_size, C), "output_norm.weight": (C,)}
    if not cfg.tie_weights:
        out["output.weight"] = (cfg.vocab_size, C)
    shapes = {"attn_norm": (C,), "ffn_norm": (C,), "attn_q": (C, C), "attn_k": (kv, C),
              "attn_v": (kv, C), "attn_output": (C, C), "ffn_gate": (inner, C),
              "ffn_up": (inner, C), "ffn_down": (C, inner)}
    for i in range(cfg.n_layer):
        for name in _LAYER_TENSORS:
            out[f"blk.{i}.{name}.weight"] = shapes[name]
    return out


def check_gguf_tensors(file: GGUFFile, cfg: GPTConfig) -> None:
    """Every tensor a Llama model of ``cfg`` needs, no other, each of the right shape and a
    supported type (from the file's index, before anything is dequantised).

    Raises:
        ModelFormatError: a missing or unexpected tensor, a wrong shape, an unsupported type.
    """
    where = repr(str(file.path))
    expected = _expected_tensors(cfg)
    missing = [n for n in expected if n not in file.tensors]
    if missing:
        raise ModelFormatError(f"{where} lacks tensor {missing[0]} (and {len(missing) - 1} more) "
                               "that a Llama model of its metadata has; the file is incomplete.")
    extra = sorted(set(file.tensors) - set(expected))
    if extra:
        raise ModelFormatError(f"{where} holds tensor {extra[0]}, which a plain Llama model does "
                               "not have; chainrule cannot place it (another variant?).")
    for name, shape in expected.items():
        t = file.tensors[name]
        got = tuple(int(n) for n in reversed(t.shape.tolist()))
        if got != shape:
            raise ModelFormatError(f"{where}: tensor {name} has shape {got}, but the metadata "
                                   f"implies {shape}; the file is corrupt.")
        if t.tensor_type.name not in SUPPORTED_TYPES:
            dequantize(t, where)  # raises the sentence naming the type


def iter_gguf_weights(file: GGUFFile, cfg: GPTConfig, *, progress: bool = False
                      ) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, float32 tensor)`` for every weight of chainrule's ``gpt`` model, one layer at a
    time (so converting holds one layer's dequantised tensors besides the model)."""
    from tqdm import tqdm

    check_gguf_tensors(file, cfg)
    where = repr(str(file.path))
    n_kv = cfg.n_kv_head or cfg.n_head

    def get(name: str) -> torch.Tensor:
        bar.update(1)
        return dequantize(file.tensors[name], where)

    with tqdm(total=len(_expected_tensors(cfg)), desc="dequantising", unit="tensor",
              disable=not progress, leave=False) as bar:
        yield "transformer.wte.weight", get("token_embd.weight")
        yield "transformer.ln_f.weight", get("output_norm.weight")
        if not cfg.tie_weights:
            yield "lm_head.weight", get("output.weight")
        for i in range(cfg.n_layer):
            g = {n: get(f"blk.{i}.{n}.weight") for n in _LAYER_TENSORS}
            h = f"transformer.h.{i}."
            yield h + "ln_1.weight", g["attn_norm"]
            yield h + "ln_2.weight", g["ffn_norm"]
            yield h + "attn.c_attn.weight", torch.cat(
                [unpermute_qk(g["attn_q"], cfg.n_head), unpermute_qk(g["attn_k"], n_kv),
                 g["attn_v"]])
            yield h + "attn.c_proj.weight", g["attn_output"]
            yield h + "mlp.c_fc.weight", torch.cat([g["ffn_gate"], g["ffn_up"]])
            yield h + "mlp.c_proj.weight", g["ffn_down"]


def gguf_state_dict(file: GGUFFile, cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """The weights of ``file`` dequantised to float32, under chainrule's ``gpt`` names."""
    return dict(iter_gguf_weights(file, cfg))


def _check_memory(cfg: GPTConfig, where: str) -> None:
    """Refuse a model whose float32 weights (held about twice while converting and saving)
    exceed the RAM."""
    hs = cfg.n_embd // cfg.n_head
    per_layer = (cfg.n_embd * (cfg.n_embd + 2 * (cfg.n_kv_head or cfg.n_head) * hs)
                 + cfg.n_embd * cfg.n_embd + 3 * cfg.n_embd * cfg.n_inner)
    params = cfg.n_layer * per_layer + cfg.vocab_size * cfg.n_embd * (1 + (not cfg.tie_weights))
    need = 2 * 4 * params
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on every platform
        return
    if need > total:
        raise ConfigError(
            f"{where} has {params / 1e9:.1f}B parameters; converting it needs about "
            f"{need / 2**30:.0f} GiB of memory and this machine has {total / 2**30:.0f} GiB; "
            "import a smaller model."
        )


# -- import ------------------------------------------------------------------------------------
def load_gguf_model(path: str | os.PathLike, *, progress: bool = False
                    ) -> tuple[GPT, ByteBPETokenizer, GGUFFile]:
    """A float32 :class:`~chainrule.models.gpt.GPT` and its tokenizer from a GGUF file (in memory).

    Raises:
        ModelFormatError: see :func:`import_gguf`.
        TokenizerError: a vocabulary chainrule cannot reproduce exactly.
    """
    file = read_gguf(path)
    where = repr(str(file.path))
    fields = gpt_config_from_gguf(file)
    tokenizer = bytebpe_from_gguf(file.metadata, where)
    if tokenizer.vocab_size != fields["vocab_size"]:
        raise ModelFormatError(f"{where}: the vocabulary has {tokenizer.vocab_size} tokens but the "
                               f"model {fields['vocab_size']}; the file is inconsistent.")
    fields.update(bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id)
    try:
        cfg = GPTConfig(**fields)
    except ConfigError as e:
        raise ModelFormatError(f"{where}: its metadata does not describe a valid model ({e})."
                               ) from None
    _check_memory(cfg, where)
    check_gguf_tensors(file, cfg)  # before the model is built
    model = GPT(cfg)
    target = model._weights_to_save()
    with torch.no_grad():
        for name, value in iter_gguf_weights(file, cfg, progress=progress):
            target.pop(name).copy_(value)
    if target:  # a bug, not a bad file: every weight has a source above
        raise RuntimeError(f"GGUF import left weights unfilled: {sorted(target)[:3]}")
    return model.eval(), tokenizer, file


def import_gguf(path: str | os.PathLike, out_dir: str | os.PathLike, *,
                dtype: str = "float32", overwrite: bool = False, progress: bool = False) -> Path:
    """Convert a Llama-architecture GGUF file into a chainrule model directory.

    Args:
        path: the ``.gguf`` file (F32/F16/BF16, Q8_0, Q4_0/Q4_1, Q5_0/Q5_1 or K-quant tensors).
        out_dir: the directory to create: ``config.json``, ``model.safetensors``,
            ``tokenizer.json``, ``chat_template.json`` (when the file has a chat template) and
            ``source.json``. It is filled beside its final place and renamed into it.
        dtype: ``"float32"`` or ``"bfloat16"``: how the weights are stored (and loaded).
        overwrite: replace an existing non-empty ``out_dir``.
        progress: show a progress bar while dequantising.
    Returns:
        ``out_dir`` as a Path.
    Raises:
        ModelFormatError: not GGUF, truncated, not ``llama``, an unsupported tensor type, a
            missing tensor or a wrong shape.
        TokenizerError: a vocabulary chainrule cannot reproduce exactly.
    """
    if dtype not in IMPORT_DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(IMPORT_DTYPES)}, got {dtype!r}.")
    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:  # fail before the work
        raise ConfigError(f"{str(out_dir)!r} already exists and is not empty; choose a new "
                          "directory or allow overwriting it (--force).")
    model, tokenizer, file = load_gguf_model(path, progress=progress)
    model.to(IMPORT_DTYPES[dtype])
    template = file.metadata.get("tokenizer.chat_template")
    meta = file.metadata
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        model.save(tmp)
        tokenizer.save(tmp / "tokenizer.json")
        if isinstance(template, str):
            write_chat_template(tmp, template)
        write_json(tmp / "source.json", {
            "format": "chainrule-import", "version": 1, "from": "gguf",
            "file": file.path.name, "name": meta.get("general.name"),
            "license": meta.get("general.license"), "architecture": file.architecture,
            "tensor_types": file.tensor_types(), "pretokenizer": tokenizer.pretokenizer,
            "dtype": dtype,
        })
    return out_dir


__all__ = [
    "IMPORT_DTYPES",
    "SUPPORTED_TYPES",
    "GGUFFile",
    "check_gguf_tensors",
    "dequantize",
    "gguf_state_dict",
    "gpt_config_from_gguf",
    "import_gguf",
    "iter_gguf_weights",
    "load_gguf_model",
    "permute_qk",
    "read_gguf",
    "smollm2_path",
    "unpermute_qk",
]
