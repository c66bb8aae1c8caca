"""``binarize``: a model directory, an ARPA file or a binary file -> one binary n-gram file.

The binary format (:mod:`.binary`) loads in milliseconds where an order-5 ARPA file of Brown
(2.4M lines) takes seconds to parse; ``chainrule ngram binarize`` is the command.
"""

from __future__ import annotations

import os
from pathlib import Path

from chainrule.errors import DataError
from chainrule.models.base import load_model_file
from chainrule.models.ngram.binary import write_binary
from chainrule.models.ngram.model import NgramModel
from chainrule.models.ngram.train import load_ngram, read_arpa_model


def _is_safetensors(path: Path) -> bool:
    """Whether ``path`` starts like a safetensors file (8-byte header length, then ``{``)."""
    with open(path, "rb") as f:
        head = f.read(9)
    n = int.from_bytes(head[:8], "little")
    return len(head) == 9 and head[8:] == b"{" and 2 <= n <= path.stat().st_size


def binarize(source: str | os.PathLike, output: str | os.PathLike, *,
             index: bool = True) -> NgramModel:
    """Write the n-gram model in ``source`` as one binary file ``output``; returns the model.

    Args:
        source: a model directory (``chainrule train --family ngram``), an ARPA file (``.gz``
            allowed; any suffix-complete file, KenLM's or SRILM's) or a binary file.
        output: the file to write (atomically).
        index: store the compiled query's hash index (loading then needs no rebuild).
    Raises:
        DataError: ``source`` does not exist. ModelFormatError: it is not an n-gram model or a
        readable ARPA file (the line number of the problem is given).
    """
    source = Path(source)
    if not source.exists():
        raise DataError(f"{str(source)!r} does not exist; pass an n-gram model directory, an "
                        "ARPA file or a binary model file.")
    if source.is_dir():
        model, tok = load_ngram(source)
    elif _is_safetensors(source):
        model, tok = load_model_file(source, family="ngram")
    else:
        model, tok = read_arpa_model(source)
    write_binary(model, tok, output, index=index)
    return model


__all__ = ["binarize"]
