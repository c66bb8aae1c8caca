"""The tokenising pipeline of the token cache: a corpus as pieces of text in order, batched,
encoded in this process or in a pool of forked workers, with bounded memory."""

from __future__ import annotations

import collections
import itertools
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .readers import iter_chunks, iter_sentences


def corpus_pieces(
    files: list[Path], format: str, field: str, frame: str, chunk_chars: int,
    universal_lines: bool = False,
) -> Iterator[tuple[bool, str, bool]]:
    """``(starts_unit, text, ends_unit)`` in corpus order for the chosen frame."""
    if frame == "lines":
        for line in iter_sentences(files, format, field, chunk_chars=chunk_chars,
                                   universal=universal_lines):
            yield True, line, True
        return
    prev_doc = -1
    for chunk in iter_chunks(files, format, field, chunk_chars=chunk_chars):
        text = chunk.text
        if frame == "stream" and chunk.last and not text.endswith("\n"):
            text += "\n"  # the stream text of the readers: documents end in a newline
        yield chunk.doc != prev_doc, text, chunk.last
        prev_doc = chunk.doc


_WORKER_TOKENIZER: Any = None


def _init_worker(tokenizer: Any) -> None:
    global _WORKER_TOKENIZER
    _WORKER_TOKENIZER = tokenizer


def _encode_batch(texts: list[str], tokenizer: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Encode texts; return all ids concatenated (int64) and each text's length."""
    tok = tokenizer if tokenizer is not None else _WORKER_TOKENIZER
    encoded = tok.encode_batch(texts)
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    flat = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64,
                       count=int(lengths.sum()))
    return flat, lengths


def _batches(
    pieces: Iterator[tuple[bool, str, bool]], batch_chars: int
) -> Iterator[list[tuple[bool, str, bool]]]:
    batch: list[tuple[bool, str, bool]] = []
    size = 0
    for piece in pieces:
        batch.append(piece)
        size += len(piece[1]) + 16
        if size >= batch_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def encoded_batches(
    pieces: Iterator[tuple[bool, str, bool]], tokenizer: Any, workers: int, batch_chars: int
) -> Iterator[tuple[list[tuple[bool, str, bool]], np.ndarray, np.ndarray]]:
    """Yield each batch with its ids, in order; with ``workers > 1`` encode in processes,
    keeping at most ``2 * workers`` batches in flight (bounded memory)."""
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for batch in _batches(pieces, batch_chars):
            yield (batch, *_encode_batch([t for _, t, _ in batch], tokenizer))
        return
    # fork: the workers inherit the tokenizer (nothing to pickle, test-defined classes work)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(tokenizer,)) as pool:
        pending: collections.deque = collections.deque()
        for batch in _batches(pieces, batch_chars):
            pending.append((batch, pool.apply_async(_encode_batch, ([t for _, t, _ in batch],))))
            if len(pending) >= 2 * workers:
                b, res = pending.popleft()
                yield (b, *res.get())
        while pending:
            b, res = pending.popleft()
            yield (b, *res.get())


__all__ = ["corpus_pieces", "encoded_batches"]
