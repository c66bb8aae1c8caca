"""The source batch of a conditional model (the encoder-decoder of translation): right-padded
source-token ids and their lengths, as :class:`Source`; :func:`as_source` builds one from id lists.
:mod:`chainrule.models.base` re-exports both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from chainrule.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where it is used: n-gram commands never load it
    import torch


class Source(NamedTuple):
    """A batch of source sequences for a conditional model: ids (B, S) right-padded, lengths (B,)."""

    ids: torch.Tensor
    lengths: torch.Tensor


def as_source(source: Source | torch.Tensor | Sequence[Sequence[int]], pad_id: int = 0,
              device: torch.device | str | None = None) -> Source:
    """A :class:`Source` from a Source, a full (B, S) LongTensor, or a list of id lists.

    >>> as_source([[5, 6, 7], [8]], pad_id=0).ids.tolist()
    [[5, 6, 7], [8, 0, 0]]
    """
    import torch

    if isinstance(source, Source):
        ids, lengths = source
    elif isinstance(source, torch.Tensor):
        if source.dim() != 2:
            raise ConfigError(f"a source batch must be 2-D (batch, length), got shape "
                              f"{tuple(source.shape)}.")
        ids = source
        lengths = torch.full((source.shape[0],), source.shape[1], dtype=torch.long)
    else:
        rows = [[int(t) for t in r] for r in source]
        if not rows:
            raise ConfigError("the source batch is empty; pass one source sequence per row.")
        width = max(1, max(len(r) for r in rows))
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    if device is not None:
        ids, lengths = ids.to(device), lengths.to(device)
    return Source(ids.long(), lengths.long())


__all__ = ["Source", "as_source"]
