"""Text in, scores out, for an n-gram model: the fast path of the perplexity evaluator.

``perplexity()`` frames every line as ``[bos] + tokenizer.encode(line) + [eos]`` and scores the
lot with :func:`chainrule.models.scoring.score_sequences` (padded (B, T) batches). For an n-gram
model with a whitespace-mode :class:`~chainrule.tokenizers.WordTokenizer` (what ``train
--family ngram`` and ARPA import make, KenLM's notion of a word) and the compiled query, the
whole job runs in two compiled calls instead: ``WordIds.encode_lines`` splits every line like
``str.split()`` and looks its words up (one flat id array + row offsets), and
``Index.score_flat`` scores the rows back to back, no padding.

The results are the ones the general path gives, bit for bit (tested): the same ids, the same
float64 log10 scores from the same kernel, and the same rounding of the natural-log score to
float32 that :meth:`NgramModel.token_logprobs` applies. Where the fast path does not apply
(another tokenizer or mode, no compiled kernel, a tokenizer larger than the model) the caller
gets None; :meth:`NgramModel.score_lines` then takes :func:`score_encoded_lines`, which encodes
line by line with ``tokenizer.encode`` (BPE, characters, any tokenizer) and scores the flat ids
with the compiled kernel or the numpy reference: still numpy only, so ``eval ppl`` on an n-gram
model never imports torch, whatever its tokenizer, and still the general path's scores bit for
bit (tested).

Ids in, scores out: :func:`score_id_sequences` and :func:`score_id_sequences_with_mass` score
framed id lists the same flat way; :meth:`NgramModel.score_ids` and
:meth:`NgramModel.score_ids_with_mass` expose them, and
:func:`chainrule.models.scoring.score_sequences` / ``score_with_mass`` hand an n-gram model's
work to them, so surprisal, minimal pairs, SyntaxGym suites and reading times on an n-gram
model do not import torch either.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule.models.ngram.query import compiled_core, query_index, reference_log10probs
from chainrule.tokenizers.base import Tokenizer
from chainrule.tokenizers.word import WordTokenizer

LN10 = math.log(10.0)

# tokenizer -> (its vocabulary list, the compiled word table built from it)
_WORD_IDS: weakref.WeakKeyDictionary[Tokenizer, tuple[list[str], Any]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class LineScores:
    """Scores of lines of text, each framed as ``<s> words </s>``.

    Attributes:
        logprobs: (targets,) float64: natural-log probability of every target (every id after
            a line's ``<s>``), lines back to back, each rounded through float32 exactly as
            :meth:`NgramModel.token_logprobs` returns it.
        targets: (targets,) int64: the target ids, in the same order.
        offsets: (lines + 1,) int64: line r's targets are ``[offsets[r], offsets[r + 1])``.
        words: whitespace-separated words of all lines plus one per line (the per-word
            denominator of :mod:`chainrule.evaluation.perplexity`).
        bytes: UTF-8 bytes of all lines plus one per line.
    """

    logprobs: np.ndarray
    targets: np.ndarray
    offsets: np.ndarray
    words: int
    bytes: int


def fast_path_applies(model: Any, tokenizer: Tokenizer) -> bool:
    """Whether :func:`score_lines` can score text for this model (an :class:`NgramModel`) and
    tokenizer."""
    return (
        type(tokenizer) is WordTokenizer
        and tokenizer.mode == "whitespace"
        and tokenizer.unk_id is not None
        and tokenizer.vocab_size <= model.vocab_size
        and getattr(compiled_core(), "WordIds", None) is not None
        and query_index(model.tables, model.bos_id) is not None
    )


def word_ids(tokenizer: WordTokenizer) -> Any:
    """The compiled word table of ``tokenizer`` (built once per tokenizer, about 10 ms for
    50k words): ``vocab[i] -> i``, special spellings and unknown words -> ``<unk>``."""
    cached = _WORD_IDS.get(tokenizer)
    if cached is not None and cached[0] is tokenizer.vocab and len(cached[1]) == len(cached[0]):
        return cached[1]
    specials = tokenizer.special_tokens
    table = compiled_core().WordIds(
        [None if w in specials else w for w in tokenizer.vocab], tokenizer.unk_id
    )
    _WORD_IDS[tokenizer] = (tokenizer.vocab, table)
    return table


def encode_lines(tokenizer: WordTokenizer, lines: Sequence[str], bos_id: int,
                 eos_id: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(ids, offsets, utf8_bytes)``: line r framed is ``ids[offsets[r]:offsets[r + 1]] ==
    [bos_id, *tokenizer.encode(lines[r]), eos_id]``; ``utf8_bytes`` counts the lines as given."""
    lines = lines if isinstance(lines, list) else list(lines)
    core = compiled_core()
    if tokenizer.lowercase:
        ids, offsets, _ = word_ids(tokenizer).encode_lines([s.lower() for s in lines], bos_id,
                                                           eos_id)
        return ids, offsets, int(core.utf8_bytes(lines))
    ids, offsets, nbytes = word_ids(tokenizer).encode_lines(lines, bos_id, eos_id)
    return ids, offsets, int(nbytes)


def score_lines(model: Any, tokenizer: Tokenizer,
                lines: Sequence[str]) -> LineScores | None:
    """Score ``lines`` (one sentence each) through the compiled path, or None where it does
    not apply (see the module docstring); the caller then scores the general way."""
    if not fast_path_applies(model, tokenizer):
        return None
    ids, offsets, nbytes = encode_lines(tokenizer, lines, model.bos_id, model.eos_id)
    index = query_index(model.tables, model.bos_id)
    lp10 = index.score_flat(ids, offsets)
    keep = np.ones(ids.size, dtype=bool)
    keep[offsets[:-1]] = False  # every line's <s> is context only
    n_lines = offsets.size - 1
    # tokens per line = words per line + 1 (</s>): whitespace words are the tokenizer's words
    return LineScores(
        logprobs=_nats(lp10),
        targets=ids[keep],
        offsets=offsets - np.arange(offsets.size),
        words=int(ids.size - n_lines),
        bytes=nbytes + n_lines,
    )


def score_encoded_lines(model: Any, tokenizer: Tokenizer, lines: Sequence[str]) -> LineScores:
    """Score ``lines`` encoded one by one with ``tokenizer.encode`` (a BPE, character or any
    other tokenizer), framed ``[bos, *ids, eos]`` and scored back to back with numpy arrays
    only (:func:`score_flat_ids`). The scores are those of ``score_sequences(model, ...)``
    through ``token_logprobs`` bit for bit (tested): per-position arithmetic does not depend on
    the batch."""
    bos, eos = model.bos_id, model.eos_id
    encoded = [tokenizer.encode(line) for line in lines]
    words = sum(len(line.split()) + 1 for line in lines)
    nbytes = sum(len(line.encode("utf-8")) + 1 for line in lines)
    lengths = np.fromiter((len(e) + 2 for e in encoded), dtype=np.int64, count=len(encoded))
    offsets = _offsets(lengths)
    ids = np.empty(int(offsets[-1]), dtype=np.int64)
    ids[offsets[:-1]] = bos
    ids[offsets[1:] - 1] = eos
    body = np.ones(ids.size, dtype=bool)
    body[offsets[:-1]] = False
    body[offsets[1:] - 1] = False
    ids[body] = np.fromiter((i for e in encoded for i in e), dtype=np.int64,
                            count=int(body.sum()))
    keep = np.ones(ids.size, dtype=bool)
    keep[offsets[:-1]] = False
    return LineScores(
        logprobs=score_flat_ids(model, ids, offsets),
        targets=ids[keep],
        offsets=offsets - np.arange(offsets.size),
        words=words,
        bytes=nbytes,
    )


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _nats(lp10: np.ndarray) -> np.ndarray:
    # the rounding NgramModel.token_logprobs applies (a float32 tensor), back in float64
    return (lp10 * LN10).astype(np.float32).astype(np.float64)


def score_flat_ids(model: Any, ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Natural-log scores of id rows stored back to back (row r is ``ids[offsets[r]:
    offsets[r + 1]]``, its first id context only): the (N - R,) targets laid out row after
    row, rounded through float32 as :meth:`NgramModel.token_logprobs` returns them. The
    compiled ``Index.score_flat`` when it is built, else the numpy reference; numpy only.

    Raises:
        ConfigError: an id outside the model's vocabulary (the general path's message).
    """
    model._check(ids)  # ids outside the model: the general path's ConfigError
    bos = model.bos_id
    index = query_index(model.tables, bos)
    if index is not None:
        return _nats(index.score_flat(ids, offsets))
    return _nats(_reference_flat(model.tables, ids, offsets, bos))


def _flatten(sequences: Sequence[Sequence[int]],
             min_len: int = 2) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The rows of at least ``min_len`` ids (2: a row with a target), their ids back to back
    and their offsets."""
    rows = [i for i, s in enumerate(sequences) if len(s) >= min_len]
    lengths = np.fromiter((len(sequences[i]) for i in rows), dtype=np.int64, count=len(rows))
    offsets = _offsets(lengths)
    ids = np.fromiter((t for i in rows for t in sequences[i]), dtype=np.int64,
                      count=int(offsets[-1]))
    return rows, ids, offsets


def score_id_sequences(model: Any, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """What :func:`chainrule.models.scoring.score_sequences` returns for an n-gram model
    (``out[i][t] = log P(seq[t+1] | seq[:t+1])``, float64), bit for bit (tested), from one
    :func:`score_flat_ids` call: numpy only, no padding, no windows (an n-gram's context is
    its last order - 1 ids, so a long sequence needs none)."""
    out = [np.zeros(0) for _ in sequences]
    rows, ids, offsets = _flatten(sequences)
    if rows:
        lp = score_flat_ids(model, ids, offsets)
        starts = offsets - np.arange(offsets.size)
        for r, i in enumerate(rows):
            out[i] = lp[starts[r]:starts[r + 1]]
    return out


_MASS_FLOATS = 1 << 22  # positions x vocabulary per distribution chunk (32 MiB of float64)


def score_id_sequences_with_mass(model: Any, sequences: Sequence[Sequence[int]],
                                 mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """What :func:`chainrule.models.scoring.score_with_mass` returns for an n-gram model:
    ``(lp, mass)`` per sequence, ``lp`` as :func:`score_id_sequences` and ``mass[t] = log
    sum_{v in mask} P(v | seq[:t+1])`` (``len(seq)`` values), numpy only.

    Each distribution is the one :meth:`NgramModel.logprobs` gives, rounded through float32
    like it; the sum over the set and its log are taken in float64 (the torch path sums float32
    in an order its BLAS picks, so the two agree to float32 rounding, ~1e-7 relative, not bit
    for bit)."""
    mask = np.asarray(mask, dtype=bool)
    lps = score_id_sequences(model, sequences)
    out: list[tuple[np.ndarray, np.ndarray]] = [(lp, np.zeros(len(s)))
                                               for lp, s in zip(lps, sequences)]
    rows, ids, offsets = _flatten(sequences, min_len=1)
    if not rows:
        return out
    ids = model._check(ids)
    W = model._width()
    row_start = np.repeat(offsets[:-1], np.diff(offsets))  # first position of each position's row
    back = np.arange(W - 1, -1, -1)
    mass = np.empty(ids.size, dtype=np.float64)
    step = max(1, _MASS_FLOATS // max(1, model.vocab_size))
    for a in range(0, ids.size, step):
        pos = np.arange(a, min(a + step, ids.size))
        idx = pos[:, None] - back[None, :]  # (P, W) right-aligned contexts, -1 before the row
        ctx = np.where(idx >= row_start[pos][:, None], ids[np.maximum(idx, 0)], -1)
        lp = _nats(model._distributions(ctx)[:, mask])
        mass[pos] = np.log(np.maximum(np.exp(lp).sum(axis=1), 1e-45))
    for r, i in enumerate(rows):
        out[i] = (out[i][0], mass[offsets[r]:offsets[r + 1]])
    return out


_REFERENCE_BATCH_TOKENS = 1 << 20  # padded ids per numpy batch (about 8 MiB per order)


def _reference_flat(tables: Any, ids: np.ndarray, offsets: np.ndarray, bos: int) -> np.ndarray:
    """:func:`.query.reference_log10probs` of rows stored back to back, in padded batches of
    rows of similar length; returns the (N - R,) scores laid out like ``score_flat``."""
    lengths = np.diff(offsets)
    out = np.empty(ids.size - lengths.size, dtype=np.float64)
    order = np.argsort(lengths, kind="stable")
    start = 0
    while start < order.size:
        stop = start + 1  # grow the batch while (rows * longest row) fits the budget
        while stop < order.size and (stop - start + 1) * int(lengths[order[stop]]) \
                <= _REFERENCE_BATCH_TOKENS:
            stop += 1
        rows = order[start:stop]
        T = int(lengths[rows[-1]])
        lens = lengths[rows]
        pos = np.arange(T)
        valid = pos[None, :] < lens[:, None]
        x = np.full((rows.size, T), bos, dtype=np.int64)
        x[valid] = ids[(offsets[rows][:, None] + pos[None, :])[valid]]
        lp = reference_log10probs(tables, x, bos)
        tvalid = valid[:, 1:]
        dest = (offsets[rows] - rows)[:, None] + pos[None, : T - 1]
        out[dest[tvalid]] = lp[tvalid]
        start = stop
    return out


__all__ = ["LineScores", "encode_lines", "fast_path_applies", "score_encoded_lines",
           "score_flat_ids", "score_id_sequences", "score_id_sequences_with_mass", "score_lines",
           "word_ids"]
