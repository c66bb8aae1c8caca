"""A binary n-gram model: one file that loads in milliseconds and never executes code.

The file is a safetensors file (8-byte header length, JSON header, raw little-endian arrays):

* metadata (strings): ``format`` = ``chainrule-model-file``, ``format_version`` = ``1``,
  ``family`` = ``ngram``, ``config`` (the JSON of the model's ``config.json``), ``tokenizer``
  (the JSON of its ``tokenizer.json``) and ``index`` (the layout of the stored query index, or
  empty);
* per order k: ``keys.k`` (k >= 2, int64), ``prob.k`` and ``backoff.k`` (float32), and
  ``count.k`` (int64) when the model has counts -- the arrays of a model directory's
  ``model.safetensors``;
* the compiled query's hash index (:mod:`.query`): ``index.extends`` (V,) uint8 and
  ``index.slots.k`` (size_k, 2) uint64 per order k >= 2, so scoring starts without a rebuild.

Loading maps the file into memory (``mmap``; nothing is copied, pages come in as they are
touched), checks every header entry against the file size (a truncated file is refused) and
the tables' consistency (:meth:`.tables.NgramTables.validate`). A stored index of another
layout (or a file written without the compiled kernel) is simply rebuilt on first use.
"""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.errors import ModelFormatError
from chainrule.fileio import SAFETENSORS_DTYPES, atomic_path, read_safetensors_header
from chainrule.models.base import (
    MODEL_FILE_FORMAT,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    read_model_config,
)
from chainrule.models.ngram.query import attach_index, compiled_core, query_index
from chainrule.models.ngram.tables import NgramTables

FILE_FORMAT_VERSION = "1"


def write_binary(model: Any, tokenizer: Any, path: str | os.PathLike, *,
                 index: bool = True) -> Path:
    """Write an n-gram model and its tokenizer as one binary file (atomically).

    Args:
        model: a fitted :class:`.model.NgramModel`.
        tokenizer: its tokenizer (stored in the file, so the file alone scores text).
        index: store the compiled query's hash index (when the kernel is built), so that
            loading needs no rebuild.
    """
    from safetensors.numpy import save_file

    t = model.tables
    arrays: dict[str, np.ndarray] = {}
    for k in range(1, t.order + 1):
        if k > 1:
            arrays[f"keys.{k}"] = np.ascontiguousarray(t.keys[k - 1], dtype=np.int64)
        arrays[f"prob.{k}"] = np.ascontiguousarray(t.prob[k - 1], dtype=np.float32)
        arrays[f"backoff.{k}"] = np.ascontiguousarray(t.backoff[k - 1], dtype=np.float32)
        if t.raw_counts is not None:
            arrays[f"count.{k}"] = np.ascontiguousarray(t.raw_counts[k - 1], dtype=np.int64)
    layout = ""
    ix = query_index(t, model.bos_id) if index else None
    if ix is not None:
        extends, slots = ix.arrays()
        arrays["index.extends"] = np.asarray(extends)
        for k, s in enumerate(slots, start=2):
            arrays[f"index.slots.{k}"] = np.asarray(s)
        layout = compiled_core().INDEX_LAYOUT
    config = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "family": model.family,
              "vocab_size": model.vocab_size, "bos_id": model.bos_id, "eos_id": model.eos_id,
              **model.config()}
    meta = {"format": MODEL_FILE_FORMAT, "format_version": FILE_FORMAT_VERSION, "family": "ngram",
            "config": json.dumps(config), "tokenizer": json.dumps(tokenizer.serialise()),
            "index": layout}
    path = Path(path)
    if path.is_dir():
        raise ModelFormatError(f"{str(path)!r} is a directory; pass a file name for the binary "
                               "model (e.g. brown5.ngram).")
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp), metadata=meta)
    return path


def read_header(path: str | os.PathLike) -> tuple[dict[str, str], dict, int]:
    """The checked safetensors header of a chainrule model file: (metadata, tensors, start).

    An ARPA, KenLM, foreign, truncated or corrupt file is a one-sentence ModelFormatError.
    """
    path = Path(path)
    meta, tensors, start = read_safetensors_header(path)
    if meta.get("format") != MODEL_FILE_FORMAT:
        read_model_config(path)  # says what the file is instead (ARPA, KenLM, another tool's)
    if meta.get("format_version") != FILE_FORMAT_VERSION:
        raise ModelFormatError(
            f"{str(path)!r} has model-file version {meta.get('format_version')!r}, but this "
            f"chainrule reads version {FILE_FORMAT_VERSION}; write it again with this version.")
    return meta, tensors, start


def _json_field(meta: dict[str, str], name: str, path: Path) -> dict:
    try:
        value = json.loads(meta.get(name, ""))
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ModelFormatError(f"{str(path)!r} has no readable {name} in its header; the file "
                               "is corrupt.")
    return value


def read_binary(path: str | os.PathLike) -> tuple[NgramTables, dict, Any]:
    """(tables, config, tokenizer) of a binary n-gram file, its arrays memory-mapped.

    The stored query index is attached to the tables when its layout matches the compiled
    kernel. Raises ModelFormatError (one sentence) for a foreign, truncated or corrupt file.
    """
    from chainrule.tokenizers.base import tokenizer_from_dict

    path = Path(path)
    meta, tensors, _ = read_header(path)
    config = _json_field(meta, "config", path)
    if config.get("format") != MODEL_FORMAT or config.get("format_version") != MODEL_FORMAT_VERSION:
        read_model_config(path)  # the one-sentence refusal of a foreign or newer config
    tok_data = _json_field(meta, "tokenizer", path)
    try:
        order, V, bos = int(config["order"]), int(config["vocab_size"]), int(config["bos_id"])
    except (KeyError, TypeError, ValueError):
        raise ModelFormatError(f"{str(path)!r}: the stored config lacks the n-gram fields "
                               "(order, vocab_size, bos_id); the file is corrupt.") from None
    if meta.get("family") != "ngram" or config.get("family") != "ngram":
        raise ModelFormatError(f"{str(path)!r} holds a {meta.get('family')!r} model, not an "
                               "n-gram model.")
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if os.path.getsize(path) else b""

    def get(name: str, dtype: str, ndim: int = 1) -> np.ndarray:
        if name not in tensors:
            raise ModelFormatError(f"{str(path)!r} lacks the array {name!r}; the file is corrupt "
                                   "or was written by another program.")
        dt, shape, a, b = tensors[name]
        if dt != dtype or len(shape) != ndim:
            raise ModelFormatError(f"{str(path)!r}: array {name!r} is {dt} {list(shape)}, "
                                   f"expected {ndim}-d {dtype}; the file is corrupt.")
        return np.frombuffer(buf, dtype=SAFETENSORS_DTYPES[dt][0], count=(b - a) // (
            SAFETENSORS_DTYPES[dt][1]), offset=a).reshape(shape)

    prob = [get(f"prob.{k}", "F32") for k in range(1, order + 1)]
    if prob[0].shape != (V,):
        raise ModelFormatError(f"{str(path)!r}: the unigram table has {prob[0].size} entries but "
                               f"the vocabulary {V}; the file is corrupt.")
    keys = [np.arange(V, dtype=np.int64)] + [get(f"keys.{k}", "I64") for k in range(2, order + 1)]
    backoff = [get(f"backoff.{k}", "F32") for k in range(1, order + 1)]
    counts = None
    if all(f"count.{k}" in tensors for k in range(1, order + 1)):
        counts = [get(f"count.{k}", "I64") for k in range(1, order + 1)]
    tables = NgramTables(V, keys, prob, backoff, counts)  # validated by NgramModel.from_tables
    tokenizer = tokenizer_from_dict(tok_data, source=f"the tokenizer stored in {str(path)!r}")
    if tokenizer.vocab_size != V:
        raise ModelFormatError(f"{str(path)!r}: the stored tokenizer has {tokenizer.vocab_size} "
                               f"tokens but the model {V}; the file is corrupt.")
    core = compiled_core()
    if core is not None and meta.get("index") == core.INDEX_LAYOUT and "index.extends" in tensors:
        slots = [get(f"index.slots.{k}", "U64", 2) for k in range(2, order + 1)]
        try:
            index = core.Index.from_arrays(V, bos, prob[0], backoff[0],
                                           get("index.extends", "U8"), slots)
        except ValueError as e:
            raise ModelFormatError(f"{str(path)!r} has a damaged query index ({e}); the file is "
                                   "corrupt.") from None
        attach_index(tables, bos, index)
    return tables, config, tokenizer


__all__ = ["read_binary", "read_header", "write_binary"]
