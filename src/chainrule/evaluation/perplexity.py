"""Perplexity of any model on a text file, reported like KenLM's ``query -v summary``.

Every line of the file is one sentence (blank lines too, as KenLM's ``query`` does), scored as
``[bos] + tokenizer.encode(line) + [eos]``: every token after ``<s>`` is a target, so each
sentence contributes its tokens plus exactly one ``</s>``. Let ``L`` be the total natural-log
probability of all targets. Then:

* ``perplexity``           = exp(-L / tokens)  -- per token, ``<unk>`` targets included with the
  probability the model gives ``<unk>`` (KenLM's "Perplexity including OOVs");
* ``perplexity_excl_oov``  = exp(-(L - L_oov) / (tokens - oov)) -- ``<unk>`` targets dropped
  (KenLM's "Perplexity excluding OOVs");
* ``perplexity_per_word``  = exp(-L / words), ``words`` = whitespace-separated words of the file
  plus one per line (the end of the sentence, like ``</s>``);
* ``bits_per_byte``        = -L / ln 2 / bytes, ``bytes`` = UTF-8 bytes of the lines plus one per
  line (the newline, standing for the end of the sentence).

Per word and per byte the denominators depend only on the text, not on the tokenizer, so models
with character, word and BPE tokenizers compare on them; per token they do not. For a model
that tokenises on whitespace, tokens == words and the per-word perplexity equals the per-token
one. A model that maps unseen words to ``<unk>`` is scored with its ``<unk>`` probability in
all of them (the OOV policy is printed with every report): a model with a closed vocabulary
therefore looks better than one that spells every word out, which is why the OOV count is shown.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chainrule.data.readers import iter_lines
from chainrule.errors import ConfigError, DataError
from chainrule.evaluation.textscore import (
    frame,
    load_model_and_tokenizer,
    load_source_tokenizer,
    scoring_name,
)
from chainrule.models.base import Generator, Scorer
from chainrule.models.scoring import score_sequences
from chainrule.tokenizers.base import Tokenizer

if TYPE_CHECKING:
    import torch

OOV_POLICY = (
    "<unk> targets are scored with the model's <unk> probability in perplexity, per-word "
    "perplexity and bits per byte; perplexity_excl_oov leaves them out (KenLM's convention)"
)
_FAST_BATCH_TOKENS = 1 << 20
_NEURAL_BATCH_TOKENS = 1 << 10


@dataclass(frozen=True)
class PerplexityReport:
    """One model's scores on one text.

    Attributes:
        perplexity: per token, OOVs included (KenLM "Perplexity including OOVs").
        perplexity_excl_oov: per token, OOV targets left out.
        tokens: targets scored (tokens of every line plus one ``</s>`` each).
        oov: targets that are ``<unk>``.
        sentences: lines scored.
        words: whitespace words plus one per line.
        bytes: UTF-8 bytes of the lines plus one per line.
        logprob: total natural-log probability L of all targets (OOVs included).
        log10prob: L in log10 (KenLM's "Total").
        perplexity_per_word: exp(-L / words).
        bits_per_byte: -L / (ln 2 * bytes).
        model: a name for the model (its directory), or "".
        conditional: the scores are P(y | x) given a source line each.
        pseudo: the scores are pseudo-log-likelihoods (a masked model): a pseudo-perplexity.
        scoring: how the model scored: ``"left-to-right"``, or a masked model's ``"pll"`` /
            ``"pll-word-l2r"``.
    """

    perplexity: float
    perplexity_excl_oov: float
    tokens: int
    oov: int
    sentences: int
    words: int
    bytes: int
    logprob: float
    log10prob: float
    perplexity_per_word: float
    bits_per_byte: float
    model: str = ""
    conditional: bool = False
    pseudo: bool = False
    scoring: str = "left-to-right"

    def to_dict(self) -> dict:
        return asdict(self)


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _is_torch_module(model: object) -> bool:
    # a torch.nn.Module can only exist once torch is imported: checking sys.modules keeps the
    # count-based families (n-grams) from importing torch just to be told they are not modules
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _batch_tokens(model: Scorer) -> int | None:
    # families that score without the (B, T, V) tensor take large batches; a neural network's
    # padded positions cost compute (and attention grows with length), so it takes fewer
    overridden = type(model).token_logprobs is not Generator.token_logprobs
    if not (overridden and model.vocab_size > 4096):
        return None
    return _NEURAL_BATCH_TOKENS if _is_torch_module(model) else _FAST_BATCH_TOKENS


def _score_framed(model: Scorer, tokenizer: Tokenizer, lines: list[str], src_ids):
    """(log-probs, target ids, words, bytes) of ``lines`` framed and batch-scored."""
    sequences: list[list[int]] = []
    words = nbytes = 0
    for line in lines:
        sequences.append(frame(model, tokenizer.encode(line)))
        words += len(line.split()) + 1
        nbytes += len(line.encode("utf-8")) + 1
    scores = score_sequences(model, sequences, sources=src_ids, max_tokens=_batch_tokens(model))
    lp = np.concatenate(scores) if scores else np.zeros(0)
    targets = np.concatenate([np.asarray(s[1:], dtype=np.int64) for s in sequences])
    return lp, targets, words, nbytes


def perplexity(
    model: Scorer,
    tokenizer: Tokenizer,
    lines: Iterable[str],
    *,
    name: str = "",
    sources: Sequence[str] | None = None,
    source_tokenizer: Tokenizer | None = None,
) -> PerplexityReport:
    """Score ``lines`` (one sentence each) with ``model`` and its ``tokenizer``.

    A conditional model scores each line given the source line at the same index
    (``sources``, encoded with ``source_tokenizer``, default ``tokenizer``): the perplexity of
    P(y | x). A masked model's figure is a pseudo-perplexity (from pseudo-log-likelihoods).

    Raises:
        DataError: there is no line to score, or sources and lines do not pair up.
    """
    lines = list(lines)
    model.check_source(sources is not None)
    src_ids = None
    if sources is not None:
        if len(sources) != len(lines):
            raise DataError(f"{len(sources)} source lines for {len(lines)} target lines; the "
                            "source file must have one line per line of the data.")
        stok = source_tokenizer or tokenizer
        src_ids = [stok.encode(x) for x in sources]
    if not lines:
        raise DataError("the evaluation text is empty; pass a file with one sentence per line.")
    # a model may score text in one go (an n-gram model's compiled path), same scores bit for bit
    fast = getattr(model, "score_lines", None) if sources is None else None
    res = fast(tokenizer, lines) if fast is not None else None
    if res is not None:
        lp, targets, words, nbytes = res.logprobs, res.targets, res.words, res.bytes
    else:
        lp, targets, words, nbytes = _score_framed(model, tokenizer, lines, src_ids)
    unk = tokenizer.unk_id
    is_oov = targets == unk if unk is not None else np.zeros(targets.size, dtype=bool)
    total = float(lp.sum())
    tokens, oov = int(targets.size), int(is_oov.sum())
    kept = tokens - oov
    excl = float(lp[~is_oov].sum())
    return PerplexityReport(
        perplexity=_exp(-total / tokens),
        perplexity_excl_oov=_exp(-excl / kept) if kept else math.nan,
        tokens=tokens,
        oov=oov,
        sentences=len(lines),
        words=words,
        bytes=nbytes,
        logprob=total,
        log10prob=total / math.log(10.0),
        perplexity_per_word=_exp(-total / words),
        bits_per_byte=-total / math.log(2.0) / nbytes,
        model=name,
        conditional=bool(model.conditional),
        pseudo=bool(model.masked),
        scoring=scoring_name(model),
    )


def perplexity_of_file(
    model: Scorer, tokenizer: Tokenizer, path: str | os.PathLike, *, name: str = ""
) -> PerplexityReport:
    """:func:`perplexity` of a UTF-8 text file (``.gz`` allowed), streamed."""
    return perplexity(model, tokenizer, iter_lines([path]), name=name)


def evaluate_perplexity(
    model_dirs: Sequence[str | os.PathLike], data: str | os.PathLike, *,
    device: str | torch.device = "cpu",
    source: str | os.PathLike | None = None, scoring: str | None = None,
) -> list[PerplexityReport]:
    """Perplexity of each saved model directory (any family) on one text file.

    ``device`` places neural models (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"``, or a
    ``torch.device``); it is resolved (and CUDA checked for) only when a neural model is among
    the models, so count-based models (which always run on the CPU) never import torch.
    ``source`` is the file of source lines, one per data line, for conditional models.
    ``scoring`` chooses how masked models score (see :func:`textscore.set_scoring`).
    """
    lines = list(iter_lines([data]))
    if not any(line.strip() for line in lines):
        raise DataError(f"{str(data)!r} is empty (no line has text); pass a file with one "
                        "sentence per line.")
    sources = list(iter_lines([source])) if source is not None else None
    reports = []
    for d in model_dirs:
        model, tok = load_model_and_tokenizer(d, scoring)
        if _is_torch_module(model):
            if isinstance(device, str):
                from chainrule.training.build import resolve_device

                device = resolve_device(device)
            model.to(device)
        if model.conditional:
            stok = load_source_tokenizer(d, tok)
            reports.append(perplexity(model, tok, lines, name=str(Path(d)), sources=sources,
                                      source_tokenizer=stok))
        else:
            reports.append(perplexity(model, tok, lines, name=str(Path(d))))
    if sources is not None and not any(r.conditional for r in reports):
        raise ConfigError("a source file was given but none of the models is conditional; "
                          "drop --source (it is for encoder-decoder models).")
    return reports


__all__ = [
    "OOV_POLICY",
    "PerplexityReport",
    "evaluate_perplexity",
    "perplexity",
    "perplexity_of_file",
]
