"""The on-disk format of a saved model: the ``config.json`` of a model directory (or the config
stored in the header of a one-file model), read and validated before any family sees it.
:mod:`chainrule.models.base` re-exports these names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from chainrule.errors import ModelFormatError
from chainrule.fileio import read_json

MODEL_FORMAT = "chainrule-model"
MODEL_FORMAT_VERSION = 1
MODEL_FILE_FORMAT = "chainrule-model-file"  # a whole model in one safetensors file


def read_model_file_config(path: Path) -> Any:
    """The ``config.json`` stored in the header of a one-file model (a safetensors file whose
    metadata says ``format: chainrule-model-file``; ``chainrule ngram binarize`` writes them)."""
    import json

    from chainrule.fileio import read_safetensors_header

    with open(path, "rb") as f:
        head = f.read(16)
    if head.lstrip().startswith((b"\\data\\", b"\x1f\x8b")) or head.startswith(b"mmap lm "):
        raise ModelFormatError(
            f"{str(path)!r} is an ARPA or KenLM file, not a chainrule model; convert an ARPA "
            "file with `chainrule ngram binarize FILE.arpa -o FILE.ngram`.")
    meta = read_safetensors_header(path)[0]
    if meta.get("format") != MODEL_FILE_FORMAT:
        raise ModelFormatError(
            f"{str(path)!r} is a file, not a model directory or chainrule model file (it may "
            "come from another tool); pass the directory that holds config.json, or a file "
            "written by `chainrule ngram binarize`.")
    try:
        return json.loads(meta.get("config", ""))
    except ValueError:
        return None


def read_model_config(directory: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``config.json`` of a model directory (or of a one-file model)."""
    directory = Path(directory)
    if not directory.exists():
        raise ModelFormatError(f"model directory {str(directory)!r} does not exist.")
    if not directory.is_dir():
        config, cfg_path = read_model_file_config(directory), directory
    else:
        cfg_path = directory / "config.json"
        if not cfg_path.exists():
            raise ModelFormatError(
                f"{str(directory)!r} is not a chainrule model directory (no config.json); "
                "train one with `chainrule train`."
            )
        config = read_json(cfg_path, what="model config")
    if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
        raise ModelFormatError(
            f"{str(cfg_path)!r} is not a chainrule model config (it may come from another "
            "tool); train or import the model with chainrule."
        )
    version = config.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        raise ModelFormatError(
            f"{str(cfg_path)!r} has format version {version!r}, but this chainrule reads "
            f"version {MODEL_FORMAT_VERSION}; upgrade chainrule or retrain the model."
        )
    return config


__all__ = [
    "MODEL_FILE_FORMAT",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "read_model_config",
    "read_model_file_config",
]
