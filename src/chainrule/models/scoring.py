"""The one batched scorer: log-probabilities of many sequences of any length, with any Scorer.

Evaluation (perplexity, surprisal, minimal pairs) and decoding's scoring helpers all call
:func:`score_sequences`; it sits below both. It sorts sequences by length, packs them into
right-padded batches of bounded size, passes the real lengths (a masked model must not look at
padding) and the source of each row (a conditional model), and cuts a sequence longer than
what a bounded-context model takes into windows (:func:`chainrule.models.windows.window_spans`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from chainrule.models.base import Scorer, as_source
from chainrule.models.windows import window_spans

if TYPE_CHECKING:
    import torch

# cap on the size of one (B, T, V) float32 log-prob tensor, in bytes
_MAX_BATCH_BYTES = 256 * 2**20
SCORE_WINDOW = 1024  # positions per call when a bounded-context model scores a long sequence


def _no_grad(fn):
    # torch.no_grad() as a decorator, with torch imported at the first call: a model that
    # scores without torch (an n-gram model's compiled path) never imports it through here
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper


def _right_padded(sequences: Sequence[Sequence[int]], rows: list[int], pad_id: int) -> torch.Tensor:
    """The sequences at ``rows`` as one right-padded (B, T) LongTensor on the CPU."""
    import torch

    x = torch.full((len(rows), max(len(sequences[i]) for i in rows)), pad_id, dtype=torch.long)
    for r, i in enumerate(rows):
        x[r, : len(sequences[i])] = torch.as_tensor(list(sequences[i]), dtype=torch.long)
    return x


def _max_tokens_per_batch(model: Scorer) -> int:
    return max(64, _MAX_BATCH_BYTES // (4 * max(1, model.vocab_size)))


def score_sequences(
    model: Scorer,
    sequences: Sequence[Sequence[int]],
    *,
    sources: Sequence[Sequence[int]] | None = None,
    max_tokens: int | None = None,
    on_scored: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Log-probability (nats) of every target of every framed sequence.

    Args:
        model: any Scorer (a masked model gives pseudo-log-likelihoods).
        sequences: id lists, each starting with ``bos`` (the first id is context only).
        sources: for a conditional model, one source id list per sequence.
        max_tokens: cap on B*T per forward pass (default: sized so the (B, T, V) log-prob
            tensor stays under 256 MiB).
        on_scored: called with the number of sequences just scored, after every batch (a
            progress bar's counter).
    Returns:
        for each sequence, a float64 array of length ``len(seq) - 1``:
        ``out[t] = log P(seq[t+1] | seq[:t+1])`` (given its source).

    A model with a ``score_ids(sequences)`` method (an n-gram model: numpy arrays, no padding)
    scores unconditional sequences itself, the same numbers bit for bit, without torch.
    """
    model.check_source(sources is not None)
    own = getattr(model, "score_ids", None) if sources is None else None
    if own is not None:
        return _by_model(own, sequences, on_scored)
    return _score_batches(model, sequences, sources, max_tokens, on_scored)


_PROGRESS_PARTS = 20  # a model that scores by itself does it in this many parts for progress


def _by_model(own: Callable, sequences: Sequence[Sequence[int]], on_scored, *args) -> list:
    """``own(sequences, *args)`` (a model's own scoring method), in parts when progress is
    counted so that ``on_scored`` moves."""
    if on_scored is None:
        return own(sequences, *args)
    sequences = list(sequences)
    step = max(1, -(-len(sequences) // _PROGRESS_PARTS))
    out: list = []
    for a in range(0, len(sequences), step):
        part = sequences[a : a + step]
        out += own(part, *args)
        on_scored(len(part))
    return out


@_no_grad
def _score_batches(model: Scorer, sequences: Sequence[Sequence[int]], sources,
                   max_tokens: int | None, on_scored) -> list[np.ndarray]:
    import torch

    max_tokens = max_tokens or _max_tokens_per_batch(model)
    out: list[np.ndarray | None] = [None] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    window = _window(model)
    batch: list[int] = []

    def flush() -> None:
        if not batch:
            return
        x = _right_padded(sequences, batch, model.eos_id)
        lengths = torch.tensor([len(sequences[i]) for i in batch], device=model.device)
        src = _sources(model, sources, batch)
        lp = model.token_logprobs(x.to(model.device), lengths, src).double().cpu().numpy()
        for r, i in enumerate(batch):
            out[i] = lp[r, : len(sequences[i]) - 1].copy()
        done(len(batch))
        batch.clear()

    done = on_scored or (lambda n: None)
    for i in order:
        seq = sequences[i]
        if len(seq) < 2:
            out[i] = np.zeros(0)
            done(1)
            continue
        if window is not None and len(seq) - 1 > window:
            out[i] = _score_long(model, seq, window, _sources(model, sources, [i]))
            done(1)
            continue
        if batch and (len(batch) + 1) * len(seq) > max_tokens:
            flush()
        batch.append(i)
    flush()
    return [o if o is not None else np.zeros(0) for o in out]


def score_with_mass(
    model: Scorer,
    sequences: Sequence[Sequence[int]],
    mask: torch.Tensor | np.ndarray,
    *,
    max_tokens: int | None = None,
    on_scored: Callable[[int], None] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Like :func:`score_sequences` for a left-to-right model (one with ``logprobs``), plus the
    log of the total probability of a set of tokens after every prefix.

    Args:
        model: a model with ``logprobs`` (a Generator).
        sequences: id lists, each starting with ``bos``.
        mask: bool (V,) tensor or numpy array, the token set (e.g. every token that begins a
            word).
        on_scored: as in :func:`score_sequences`.
    Returns:
        for each sequence ``(lp, mass)``: ``lp`` as in :func:`score_sequences` (length
        ``len(seq) - 1``) and ``mass[t] = log sum_{v in mask} P(v | seq[:t+1])`` (length
        ``len(seq)``: it includes the distribution after the last id).

    A model with a ``score_ids_with_mass(sequences, mask)`` method (an n-gram model) computes
    both itself with numpy arrays (the mask as a numpy array), without torch.
    """
    own = getattr(model, "score_ids_with_mass", None)
    if own is not None:
        torch = sys.modules.get("torch")  # a tensor exists only once torch is imported
        if torch is not None and isinstance(mask, torch.Tensor):
            mask = mask.detach().cpu().numpy()
        return _by_model(own, sequences, on_scored, np.asarray(mask, dtype=bool))
    return _mass_batches(model, sequences, mask, max_tokens, on_scored)


@_no_grad
def _mass_batches(model: Scorer, sequences: Sequence[Sequence[int]], mask, max_tokens,
                  on_scored) -> list[tuple[np.ndarray, np.ndarray]]:
    import torch

    max_tokens = max_tokens or _max_tokens_per_batch(model)
    mask = torch.as_tensor(mask).to(model.device)
    limit = _window(model)
    out: list = [None] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    batch: list[int] = []

    def run(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        if hasattr(model, "scoring_hidden") and hasattr(model, "head"):
            return _fused_mass(model, x, mask)
        lp = model.logprobs(x)
        tgt = lp[:, :-1].gather(-1, x[:, 1:, None]).squeeze(-1)
        # total probability of the set as one matrix-vector product (no (B, T, |set|) copy)
        mass = (lp.exp() @ mask.to(lp.dtype)).clamp_min(1e-45).log()
        return tgt.double().cpu().numpy(), mass.double().cpu().numpy()

    def flush() -> None:
        if not batch:
            return
        x = _right_padded(sequences, batch, model.eos_id)
        tgt, mass = run(x.to(model.device))
        for r, i in enumerate(batch):
            n = len(sequences[i])
            out[i] = (tgt[r, : n - 1].copy(), mass[r, :n].copy())
        done(len(batch))
        batch.clear()

    done = on_scored or (lambda n: None)

    for i in order:
        seq = sequences[i]
        if limit is not None and len(seq) > limit:
            lp, mass = np.zeros(len(seq) - 1), np.zeros(len(seq))
            n = len(seq)
            for begin, end, first in window_spans(n, limit - 1, (limit - 1) // 2):
                # inputs [begin, end) plus the target of the last one
                x = torch.as_tensor([list(seq[begin:end + 1])], dtype=torch.long,
                                    device=model.device)
                t, m = run(x)
                mass[first:end] = m[0, first - begin:end - begin]
                stop = min(end, n - 1)
                lp[first:stop] = t[0, first - begin:stop - begin]
            out[i] = (lp, mass)
            done(1)
            continue
        if batch and (len(batch) + 1) * len(seq) > max_tokens:
            flush()
        batch.append(i)
    flush()
    return out


_MASS_CHUNK_FLOATS = 1 << 22  # logits held at once by _fused_mass (16 MiB of float32)


def _fused_mass(model, x: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Target log-probs and set mass of a neural model (``scoring_hidden`` + ``head``) from
    chunks of logits: one exp per logit, no (B, T, V) log-softmax held in memory."""
    import torch

    with model.inference():
        h = model.scoring_hidden(x)
        B, T = x.shape
        maskf = mask.to(device=h.device, dtype=torch.float32)
        step = max(1, _MASS_CHUNK_FLOATS // (B * model.vocab_size))
        tgt, mass = torch.zeros(B, T - 1), torch.zeros(B, T)
        for a in range(0, T, step):
            logits = model.head(h[:, a : a + step]).float()  # (B, c, V)
            top = logits.amax(-1, keepdim=True)
            e = (logits - top).exp_()
            total = e.sum(-1)
            lse = total.log() + top[..., 0]
            mass[:, a : a + step] = ((e @ maskf).clamp_min(1e-45) / total).log().cpu()
            b = min(a + step, T - 1)
            if b > a:
                gold = logits[:, : b - a].gather(-1, x[:, a + 1 : b + 1, None]).squeeze(-1)
                tgt[:, a:b] = (gold - lse[:, : b - a]).cpu()
    return tgt.double().numpy(), mass.double().numpy()


def _sources(model: Scorer, sources, rows: list[int]):
    if sources is None:
        return None
    return as_source([sources[i] for i in rows], getattr(model, "source_pad_id", 0),
                     model.device)


def _window(model: Scorer) -> int | None:
    # Models with a bounded left context (n-grams, FFNN, GPT) score a sequence longer than
    # this in windows; each target of a later window keeps half a window of context
    # (>= max_context, so n-gram and FFNN scores are exact). Large windows keep a long text (a
    # corpus scored as one stream) to few calls.
    if model.max_context is None or model.masked:
        return None
    return max(int(model.max_context), SCORE_WINDOW)


def _score_long(model: Scorer, seq: Sequence[int], window: int, source) -> np.ndarray:
    """Windowed scoring of one sequence: ``window`` predicting positions per call."""
    import torch

    n = len(seq) - 1  # predicting positions: input t predicts seq[t + 1]
    res = np.zeros(n)
    for begin, end, first in window_spans(n, window, window // 2):
        x = torch.as_tensor([list(seq[begin : end + 1])], dtype=torch.long, device=model.device)
        lp = model.token_logprobs(x, None, source)[0].double().cpu().numpy()
        res[first:end] = lp[first - begin :]
    return res


__all__ = ["SCORE_WINDOW", "score_sequences", "score_with_mass"]
