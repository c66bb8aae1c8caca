"""Scoring text with any model: framing, <unk> checks, token character spans, batched log-probs.

Shared by the surprisal and minimal-pair evaluators. Everything here uses only the scorer
interface (:meth:`Scorer.token_logprobs`, through :func:`chainrule.models.scoring.
score_sequences`) and the tokenizer interface (``encode`` / ``decode``), so it works for every
family and every tokenizer kind.

Framing: a sentence is scored as ``<s> tokens... </s>``; the first token is conditioned on
``<s>`` only, and ``</s>`` (when included) is one more scored target. ``<s>`` itself is never
scored: nothing predicts it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from chainrule.errors import ConfigError, ModelFormatError, TokenizerError
from chainrule.models.base import Scorer
from chainrule.models.scoring import score_sequences
from chainrule.tokenizers.base import Tokenizer, unencodable

LOG2E = 1.0 / math.log(2.0)  # nats -> bits



def load_model_and_tokenizer(directory: str | os.PathLike, scoring: str | None = None
                             ) -> tuple[Scorer, Tokenizer]:
    """Load a model directory and the tokenizer saved in it (``tokenizer.json``).

    ``scoring`` chooses how a masked model scores (``"pll"``, ``"pll-word-l2r"``; default: what
    its config.json says); see :func:`set_scoring`.

    Raises:
        ModelFormatError: the directory is not a chainrule model or has no tokenizer.
    """
    from chainrule.models.base import load_model, load_model_file
    from chainrule.tokenizers.base import load_tokenizer

    directory = Path(directory)
    if directory.is_file():  # a one-file model (``chainrule ngram binarize``) holds its tokenizer
        model, tokenizer = load_model_file(directory)
        return set_scoring(model, scoring), tokenizer
    model = load_model(directory)
    if not (directory / "tokenizer.json").is_file():
        raise ModelFormatError(
            f"model directory {str(directory)!r} has no tokenizer.json, so text cannot be "
            "mapped to its ids; save the model together with its tokenizer."
        )
    tokenizer = load_tokenizer(directory / "tokenizer.json")
    if tokenizer.vocab_size != model.vocab_size:
        raise ModelFormatError(
            f"{str(directory)!r}: tokenizer.json has {tokenizer.vocab_size} tokens but the model "
            f"predicts over {model.vocab_size}; the directory mixes files of different models."
        )
    from chainrule.evaluation.stream_framing import apply_training_framing, training_boundaries

    apply_training_framing(model, tokenizer, training_boundaries(directory), str(directory))
    return set_scoring(model, scoring), tokenizer


def set_scoring(model: Scorer, scoring: str | None) -> Scorer:
    """Make a masked model score by ``scoring`` (None: keep its own); refuse it for others."""
    if scoring is None:
        return model
    choices = tuple(getattr(model, "scorings", ()))
    if not model.masked or not choices:
        raise ConfigError(f"--scoring chooses how a masked model (bert) is scored; a "
                          f"{model.family} model scores left to right, drop --scoring.")
    if scoring not in choices:
        raise ConfigError(f"unknown scoring {scoring!r}; choose one of {', '.join(choices)}.")
    model.scoring = scoring
    return model


def scoring_name(model: Scorer) -> str:
    """How ``model`` scores: its ``scoring`` for a masked model (``"pll"``, ...), else
    ``"left-to-right"``."""
    return str(getattr(model, "scoring", "pll")) if model.masked else "left-to-right"


def load_source_tokenizer(directory: str | os.PathLike, tokenizer: Tokenizer) -> Tokenizer:
    """A conditional model's source tokenizer (``source_tokenizer.json``), else ``tokenizer``
    (one vocabulary shared by source and target)."""
    from chainrule.tokenizers.base import load_tokenizer

    path = Path(directory) / "source_tokenizer.json"
    return load_tokenizer(path) if path.is_file() else tokenizer


def _shorten(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def encode_text(
    tokenizer: Tokenizer,
    text: str,
    *,
    allow_unk: bool = False,
    where: str = "",
) -> list[int]:
    """Encode ``text`` (no specials), refusing text that maps to ``<unk>`` unless allowed.

    Args:
        tokenizer: the model's tokenizer.
        text: ordinary text (special-token spellings inside it are treated as text).
        allow_unk: score ``<unk>`` like any other token instead of refusing.
        where: a phrase naming the input (``"file.jsonl line 3"``) for the error message.
    Raises:
        TokenizerError: the text contains characters or words the tokenizer cannot encode.
    """
    ids = tokenizer.encode(text)
    unk = tokenizer.unk_id
    if not allow_unk and unk is not None and unk in ids:
        words, chars = unencodable(tokenizer, text)
        at = f" ({where})" if where else ""
        if chars:
            what = "the characters " + ", ".join(repr(c) for c in chars[:10])
        elif words:
            what = "the words " + ", ".join(repr(w) for w in words[:10])
        else:
            what = "part of it"
        raise TokenizerError(
            f"the model's tokenizer cannot encode {what} in {_shorten(text)!r}{at}: they become "
            "<unk>; use a model whose vocabulary covers the text, or let <unk> be scored as an "
            "ordinary token (allow_unk=True; on the command line --unk score, or its alias "
            "--allow-unk)."
        )
    return ids


def frame(model: Scorer, ids: Sequence[int], *, eos: bool = True) -> list[int]:
    """``[bos] + ids (+ [eos])`` with the model's boundary ids; a model trained as one stream
    (``boundaries=none``) frames by its newline instead (``model.line_frame``, set by
    :func:`chainrule.evaluation.stream_framing.apply_training_framing`)."""
    bos, eos_id = getattr(model, "line_frame", None) or (model.bos_id, model.eos_id)
    return [bos, *ids, *([eos_id] if eos else [])]


def token_spans(tokenizer: Tokenizer, text: str, ids: Sequence[int]) -> list[tuple[int, int]]:
    """Character span ``[start, end)`` in ``text`` of each token of ``encode(text) == ids``.

    Uses the tokenizer's own ``offsets`` method when it has one. Otherwise, when ``decode(ids)
    == text``, token i covers ``len(decode(ids[:i])) .. len(decode(ids[:i+1]))``, the end clipped
    to the longest common prefix with ``text`` where a decoded prefix is not a prefix of it (a
    byte-level token that ends inside a multi-byte character); the built-in tokenizers compute
    exactly these spans in one pass (``decode_with_offsets``), any other tokenizer by decoding
    every prefix. Where the text does not round-trip (``<unk>``, a tokenizer that normalises
    whitespace) each token's text is looked up left to right.
    Spans are monotone and lie inside ``text``; a token may get an empty span.

    Example: a char tokenizer on ``"ab c"`` -> ``[(0, 1), (1, 2), (2, 3), (3, 4)]``.
    """
    offsets = getattr(tokenizer, "offsets", None)
    if callable(offsets):
        try:
            spans = [(int(a), int(b)) for a, b in offsets(text, ids)]
            if len(spans) == len(ids):
                return spans
        except (TypeError, ValueError, NotImplementedError):
            pass
    with_offsets = getattr(tokenizer, "decode_with_offsets", None)
    if callable(with_offsets):
        decoded, spans = with_offsets(ids)
        return spans if decoded == text else _spans_by_search(tokenizer, text, ids)
    if tokenizer.decode(ids) == text:
        return _spans_by_prefix(tokenizer, text, ids)
    return _spans_by_search(tokenizer, text, ids)


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _spans_by_prefix(tokenizer: Tokenizer, text: str, ids: Sequence[int]) -> list[tuple[int, int]]:
    # quadratic: for tokenizers without ``decode_with_offsets`` (and the tests' reference)
    spans = []
    start = 0
    for i in range(len(ids)):
        prefix = tokenizer.decode(ids[: i + 1])
        end = len(prefix) if text.startswith(prefix) else _common_prefix(prefix, text)
        end = max(end, start)
        spans.append((start, end))
        start = end
    return spans


def _spans_by_search(tokenizer: Tokenizer, text: str, ids: Sequence[int]) -> list[tuple[int, int]]:
    # The tokenizer does not round-trip this text (e.g. <unk>, or whitespace is normalised):
    # find each token's own decoded text, stripped, from the current position on.
    spans = []
    pos = 0
    unk = tokenizer.unk_id
    for i, idx in enumerate(ids):
        raw = tokenizer.decode([idx])
        piece = raw.strip()
        if not piece and raw and idx != unk:  # a whitespace token: the whitespace at pos
            end = pos
            while end < len(text) and end - pos < len(raw) and text[end].isspace():
                end += 1
            spans.append((pos, end))
            pos = end
            continue
        j = text.find(piece, pos) if piece else -1
        if j < 0 or (piece and text[pos:j].strip() and i + 1 < len(ids)):
            # not found next: an <unk> -- give it the rest of the current whitespace word
            k = pos
            while k < len(text) and text[k].isspace():
                k += 1
            end = k
            while end < len(text) and not text[end].isspace():
                end += 1
            run = 1  # a run of <unk>s shares the characters up to the next known token
            while idx == unk and i + run < len(ids) and ids[i + run] == unk:
                run += 1
            later = ids[i + run : i + run + 1]
            nxt = tokenizer.decode(later).strip() if later else ""
            if nxt:
                m = text.find(nxt, k + 1)
                if 0 <= m < end:
                    end = m
            if run > 1:
                end = min(end, k + max(1, (end - k) // run))
            spans.append((pos, max(end, pos)))
            pos = max(end, pos)
        else:
            spans.append((pos, j + len(piece)))
            pos = j + len(piece)
    return spans


__all__ = [
    "LOG2E",
    "encode_text",
    "frame",
    "load_model_and_tokenizer",
    "load_source_tokenizer",
    "score_sequences",
    "scoring_name",
    "set_scoring",
    "token_spans",
    "unencodable",
]
