"""Reading a GGUF file (llama.cpp's model file): its metadata, its tensor index and each tensor
dequantised to float32. :mod:`chainrule.models.gguf` builds a ``gpt`` model from what this reads.

Loading never executes anything from the file; a missing, truncated or corrupt file or an
unsupported tensor type is one sentence (:class:`~chainrule.errors.ModelFormatError`).
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chainrule.errors import ConfigError, ModelFormatError

#: tensor types dequantised (the K-quants by the ``gguf`` package's numpy code; the others are
#: also covered by chainrule's tests, which write them with the same package)
SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                   "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
_READ_ERRORS = (ValueError, IndexError, KeyError, TypeError, OverflowError, OSError,
                struct.error)


def _gguf_package():
    try:
        import gguf
    except ImportError:
        raise ConfigError("reading GGUF files needs the gguf package: pip install gguf "
                          "(or pip install 'chainrule[bench]').") from None
    return gguf


# -- reading -----------------------------------------------------------------------------------
@dataclass
class GGUFFile:
    """A GGUF file opened for reading (tensor data stays memory-mapped).

    Attributes:
        path: where it is.
        metadata: every key -> its value as plain Python (str, int, float, bool, lists).
        tensors: name -> the ``gguf`` package's ``ReaderTensor`` (``tensor_type``, ``shape``
            in GGUF order, i.e. columns first, and the raw ``data``).
    """

    path: Path
    metadata: dict[str, Any]
    tensors: dict[str, Any]

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def tensor_types(self) -> dict[str, int]:
        """How many tensors are stored in each type, e.g. ``{"Q4_1": 210, "F32": 61}``."""
        return dict(Counter(t.tensor_type.name for t in self.tensors.values()))


def read_gguf(path: str | os.PathLike) -> GGUFFile:
    """Open a GGUF file: its metadata and tensor index, checked against the file's size.

    Raises:
        ModelFormatError: the file is missing, not GGUF, truncated or corrupt.
    """
    gguf = _gguf_package()
    path = Path(path)
    where = repr(str(path))
    if not path.is_file():
        raise ModelFormatError(f"GGUF file {where} does not exist; check the path.")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelFormatError(f"GGUF file {where} cannot be read ({e.strerror}).") from None
    if magic != b"GGUF":
        raise ModelFormatError(f"{where} is not a GGUF file (it does not start with 'GGUF'); "
                               "pass a .gguf model file.")
    try:
        reader = gguf.GGUFReader(path)
        metadata = {}
        for key, field in reader.fields.items():
            if key.startswith("GGUF."):
                continue
            metadata[key] = field.contents()
        tensors = {t.name: t for t in reader.tensors}
        for t in reader.tensors:
            if t.data.nbytes != int(t.n_bytes):
                raise ValueError(f"tensor {t.name} holds {t.data.nbytes} of {t.n_bytes} bytes")
    except _READ_ERRORS as e:  # the reader fails in many ways on a damaged file
        raise ModelFormatError(
            f"{where} is not a readable GGUF file; it is truncated or corrupt "
            f"({type(e).__name__}: {str(e)[:120]})."
        ) from None
    return GGUFFile(path, metadata, tensors)


def dequantize(tensor: Any, where: str = "the GGUF file") -> torch.Tensor:
    """A GGUF tensor as a float32 torch tensor in PyTorch's shape order (rows first).

    Raises:
        ModelFormatError: its type is not one of :data:`SUPPORTED_TYPES`.
    """
    gguf = _gguf_package()
    kind = tensor.tensor_type.name
    if kind not in SUPPORTED_TYPES:
        raise ModelFormatError(
            f"{where}: tensor {tensor.name} is stored as {kind}, which chainrule does not "
            f"dequantise (supported: {', '.join(SUPPORTED_TYPES)}); use a file quantised to "
            "one of those."
        )
    shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))
    try:
        if kind == "F32":
            arr = np.asarray(tensor.data, dtype=np.float32)
        elif kind == "F16":
            arr = np.asarray(tensor.data).view(np.float16).astype(np.float32)
        else:
            arr = gguf.quants.dequantize(np.asarray(tensor.data), tensor.tensor_type)
        arr = np.array(arr, dtype=np.float32, copy=True).reshape(shape)
    except (ValueError, TypeError) as e:
        raise ModelFormatError(f"{where}: tensor {tensor.name} ({kind}) cannot be decoded "
                               f"({e}); the file is corrupt.") from None
    return torch.from_numpy(arr)


__all__ = ["SUPPORTED_TYPES", "GGUFFile", "dequantize", "read_gguf"]
