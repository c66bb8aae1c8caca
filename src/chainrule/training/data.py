"""Training data: a corpus as one array of token ids, and the batches cut from it.

All the data code of the training engine is here, so the source of ids can change in one place.
:func:`corpus_ids` tokenises the corpus files into the token cache (:mod:`chainrule.data.cache`)
and returns memory-mapped views of it, so a corpus larger than memory trains; the samplers
fancy-index windows out of any integer array, a ``numpy.memmap`` included, and so read only the
pages of their windows (and unmap them again, see :func:`_take`). (:func:`read_corpus`,
:func:`chainrule.data.split_text` and :func:`encode_text` do the same in memory, for text you already hold.)

Two ways to cut batches, both pure functions of ``(seed, step, micro-batch)`` so that a resumed
run, or a run split over several processes, sees exactly the batches an uninterrupted
single-process run would:

- :class:`WindowSampler` (ffnn, gpt): random windows of ``block_size + 1`` tokens, as nanoGPT.
- :class:`StreamSampler` (rnn, lstm): the corpus is cut into ``rows`` contiguous streams, and
  step ``s`` reads the ``s``-th slice of ``block_size`` tokens of every stream, so the hidden
  state can be carried from one batch to the next (truncated back-propagation through time).

With ``bos_id`` (``mask_at_bos``, gpt) a window's batch also carries the attention mask and the
positions of :func:`bos_segments`: every sentence in the window is read from its own ``<s>`` at
position 0, as the scorer reads each sentence (document masking, as in packed fine-tuning).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from chainrule.data.cache import tokenize_corpus
from chainrule.data.splits import fraction_boundaries
from chainrule.errors import DataError
from chainrule.models.layers import document_mask

# numpy's seed sequences take lists of non-negative ints; these tags keep streams apart
_TRAIN, _EVAL = 0, 1


def read_corpus(paths: Sequence[str | os.PathLike]) -> str:
    """The text of every corpus file, in order (readers report bad files in one sentence)."""
    from chainrule.data import read_text

    if not paths:
        raise DataError("no corpus file given; pass one or more text files to train on.")
    texts = [read_text(p) for p in paths]
    text = "".join(t if t.endswith("\n") or i == len(texts) - 1 else t + "\n"
                   for i, t in enumerate(texts))
    if not text.strip():
        raise DataError(f"the corpus {', '.join(map(str, paths))} is empty; pass a text corpus.")
    return text


def encode_text(text: str, tokenizer, boundaries: str) -> np.ndarray:
    """Token ids of ``text`` as one int32 array.

    ``boundaries="lines"`` scores every non-empty line as a sentence ``<s> ... </s>`` (the n-gram
    convention, so perplexities compare); ``"none"`` encodes the text as one stream.
    """
    if boundaries == "lines":
        bos, eos = tokenizer.bos_id, tokenizer.eos_id
        if bos is None or eos is None:
            raise DataError("boundaries=lines needs a tokenizer with <s> and </s> tokens; "
                            "retrain the tokenizer or use boundaries=none.")
        ids: list[int] = []
        for line in text.splitlines():
            if line.strip():
                ids.append(bos)
                ids.extend(tokenizer.encode(line))
                ids.append(eos)
    else:
        ids = tokenizer.encode(text)
    return np.asarray(ids, dtype=np.int32)


@dataclass
class CorpusIds:
    """The token ids a run trains and validates on.

    Attributes:
        train: training ids, a view of the cache's memory-mapped ``tokens.bin`` (no copy).
        val: validation ids (a view of the same file, or of ``val_data``'s own cache), or
            ``None`` when nothing is held out.
        caches: the :class:`~chainrule.data.TokenizedCorpus` of the training corpus and, with
            ``val_data``, of the validation file (``.reused`` says whether it was built now).
    """

    train: np.ndarray
    val: np.ndarray | None
    caches: list = field(default_factory=list)


def corpus_ids(
    files: Sequence[str | os.PathLike],
    tokenizer,
    cache_dir: str | os.PathLike,
    *,
    boundaries: str = "none",
    val_fraction: float = 0.1,
    val_data: str | os.PathLike | None = None,
    workers: int = 1,
) -> CorpusIds:
    """Tokenise the corpus into ``cache_dir`` (or reuse it) and cut training and validation ids.

    The ids equal :func:`encode_text` of :func:`read_corpus`'s text: ``boundaries="lines"``
    frames every non-blank line (lines as ``str.splitlines`` cuts them) as ``<s> ids </s>``;
    ``"none"`` encodes the text as one stream (where a file does not end in a newline, the
    stream adds one). The training corpus goes to ``cache_dir/train``, ``val_data`` to
    ``cache_dir/valid``; either is reused while the files and the tokenizer are unchanged.

    Without ``val_data`` the last ``val_fraction`` is held out: of the tokens for ``"none"``
    (for a character tokenizer, of the characters, as nanoGPT: Tiny Shakespeare gives
    1,003,854 / 111,540), of the lines for ``"lines"``. Both parts are views of the memory-mapped
    cache, so memory does not grow with the corpus.

    Raises:
        DataError: unreadable or empty corpus files, or ``"lines"`` with a tokenizer that lacks
            ``<s>`` / ``</s>``.
    """
    lines = boundaries == "lines"
    if lines and (tokenizer.bos_id is None or tokenizer.eos_id is None):
        raise DataError("boundaries=lines needs a tokenizer with <s> and </s> tokens; "
                        "retrain the tokenizer or use boundaries=none.")
    options = {"format": "auto", "frame": "lines" if lines else "stream", "bos": lines,
               "eos": lines, "universal_lines": lines, "workers": workers}
    cache_dir = Path(cache_dir)
    train = tokenize_corpus(files, tokenizer, cache_dir / "train", **options)
    caches = [train]
    ids = train.ids
    if val_data:
        val = tokenize_corpus([val_data], tokenizer, cache_dir / "valid", **options)
        caches.append(val)
        return CorpusIds(ids, val.ids if len(val) else None, caches)
    if val_fraction <= 0:
        return CorpusIds(ids, None, caches)
    if lines:  # cut between lines: at the start of the first held-out line
        offsets = train.doc_offsets
        first = fraction_boundaries(len(offsets), [1 - val_fraction, val_fraction])[0]
        cut = int(offsets[first]) if first < len(offsets) else len(ids)
    else:
        cut = fraction_boundaries(len(ids), [1 - val_fraction, val_fraction])[0]
    return CorpusIds(ids[:cut], ids[cut:] if cut < len(ids) else None, caches)


@dataclass
class Batch:
    """One micro-batch: inputs ``x`` (B, T), targets ``y`` (B, T), and ``reset``: whether a
    carried recurrent state must start afresh (the streams wrapped round to their start)."""

    x: torch.Tensor
    y: torch.Tensor
    reset: bool = False
    attn_mask: torch.Tensor | None = None  # (B, 1, T, T), with bos_id: see bos_segments
    positions: torch.Tensor | None = None  # (B, T)


def bos_segments(x: torch.Tensor, bos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention mask (B, 1, T, T) and positions (B, T) that read a window as its sentences.

    Position t attends to s <= t when no ``<s>`` lies in (s, t], and counts its position from
    the last ``<s>`` at or before it (from the window's start before the first ``<s>``). So a
    sentence inside a training window is predicted from exactly the context the scorer gives it:
    its ``<s>`` at position 0 and its own tokens.

    >>> m, pos = bos_segments(torch.tensor([[5, 1, 6, 7, 1, 8]]), bos_id=1)
    >>> pos.tolist(), m[0, 0, 3].tolist()
    ([[0, 0, 1, 2, 0, 1]], [False, True, True, True, False, False])
    """
    T = x.shape[1]
    t = torch.arange(T, device=x.device).expand_as(x)
    at_bos = x == bos_id
    start = torch.where(at_bos, t, torch.zeros_like(t)).cummax(1).values
    return document_mask(at_bos.cumsum(1)), t - start


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *key])))


def _file_mapping(ids: np.ndarray) -> mmap.mmap | None:
    """The file mapping under a memory-mapped array or a view of one (``None`` for others)."""
    base = ids
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base


def _take(ids: np.ndarray, starts: np.ndarray, block_size: int, device: torch.device,
          mapping: mmap.mmap | None = None) -> Batch:
    window = torch.from_numpy(ids[starts[:, None] + np.arange(block_size + 1)].astype(np.int64))
    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        # A read fault in a file mapping maps the whole page-cache folio around it (about
        # 0.6 MB per 65-token window measured on Linux 6.18), so random windows would make the
        # resident size creep towards the size of tokens.bin over a long run, although those
        # are clean cache pages. Unmapping them after each batch (about 30 us) keeps it flat;
        # the data stays in the page cache, and the next read of it is a minor fault.
        mapping.madvise(mmap.MADV_DONTNEED)
    if device.type == "cuda":
        window = window.pin_memory().to(device, non_blocking=True)
    return Batch(window[:, :-1], window[:, 1:])


def _segmented(b: Batch, bos_id: int | None) -> Batch:
    if bos_id is not None:
        b.attn_mask, b.positions = bos_segments(b.x, bos_id)
    return b


def _check_length(ids: np.ndarray, need: int, what: str, fix: str) -> None:
    if len(ids) < need:
        raise DataError(f"the {what} has {len(ids)} tokens, fewer than the {need} one batch "
                        f"needs; {fix}.")


class WindowSampler:
    """Random windows (ffnn, gpt): micro-batch ``m`` of step ``s`` depends only on (seed, s, m).

    Args:
        ids: the training token ids (N,).
        batch_size: windows per micro-batch.
        block_size: tokens per window (T); each window reads T + 1 ids.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, block_size: int, seed: int,
                 device: torch.device, bos_id: int | None = None):
        _check_length(ids, block_size + 1, "training corpus",
                      "use a longer corpus or a smaller block_size")
        self.ids, self.batch_size, self.block_size = ids, batch_size, block_size
        self.seed, self.device, self.mapping = seed, device, _file_mapping(ids)
        self.bos_id = bos_id

    def batch(self, step: int, micro: int) -> Batch:
        high = len(self.ids) - self.block_size  # exclusive: the last start that fits T + 1
        starts = _rng(self.seed, _TRAIN, step, micro).integers(0, high, self.batch_size)
        return _segmented(_take(self.ids, starts, self.block_size, self.device, self.mapping),
                          self.bos_id)


class StreamSampler:
    """Contiguous streams for truncated BPTT (rnn, lstm).

    The corpus is cut into ``rows = batch_size * micro_batches`` streams of equal length;
    micro-batch ``m`` holds streams ``m*B .. (m+1)*B - 1``. Step ``s`` reads slice
    ``s mod steps_per_epoch`` of every stream; at slice 0 the carried state is reset.

    >>> s = StreamSampler(np.arange(20, dtype=np.int32), 2, 3, micro_batches=1,
    ...                   device=torch.device("cpu"))
    >>> b = s.batch(1, 0); b.x.tolist(), b.y.tolist(), b.reset
    ([[3, 4, 5], [13, 14, 15]], [[4, 5, 6], [14, 15, 16]], False)
    """

    def __init__(self, ids: np.ndarray, batch_size: int, block_size: int, *,
                 micro_batches: int, device: torch.device):
        rows = batch_size * micro_batches
        _check_length(ids, rows * (block_size + 1), "training corpus",
                      "use a longer corpus or a smaller batch_size or block_size")
        self.ids, self.batch_size, self.block_size = ids, batch_size, block_size
        self.stream_len = len(ids) // rows
        self.steps_per_epoch = (self.stream_len - 1) // block_size
        self.device, self.mapping = device, _file_mapping(ids)

    def batch(self, step: int, micro: int) -> Batch:
        e = step % self.steps_per_epoch
        rows = np.arange(micro * self.batch_size, (micro + 1) * self.batch_size)
        b = _take(self.ids, rows * self.stream_len + e * self.block_size, self.block_size,
                  self.device, self.mapping)
        b.reset = e == 0
        return b


class EvalSampler:
    """Random windows for loss estimates; batch ``i`` of evaluation number ``k`` depends only
    on (seed, k, i), and never touches the global random state."""

    def __init__(self, ids: np.ndarray, batch_size: int, block_size: int, seed: int,
                 device: torch.device, what: str, bos_id: int | None = None):
        _check_length(ids, block_size + 1, what,
                      "use a longer corpus, a larger val_fraction or a smaller block_size")
        self.ids, self.batch_size, self.block_size = ids, batch_size, block_size
        self.seed, self.device, self.key = seed, device, 0 if what.startswith("train") else 1
        self.mapping, self.bos_id = _file_mapping(ids), bos_id

    def batch(self, evaluation: int, i: int) -> Batch:
        high = len(self.ids) - self.block_size
        starts = _rng(self.seed, _EVAL, self.key, evaluation, i).integers(0, high,
                                                                          self.batch_size)
        return _segmented(_take(self.ids, starts, self.block_size, self.device, self.mapping),
                          self.bos_id)


__all__ = [
    "Batch",
    "CorpusIds",
    "EvalSampler",
    "StreamSampler",
    "WindowSampler",
    "bos_segments",
    "corpus_ids",
    "encode_text",
    "read_corpus",
]
