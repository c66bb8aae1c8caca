"""Surprisal per token and per word, in bits, ready for a reading-time regression.

The surprisal of a token is ``-log2 P(token | left context)``. Each input line is one sentence,
scored as ``<s> tokens... </s>``.

Word rule (documented in docs/evaluation.md):

* Words are the whitespace-separated units of the sentence as written, so punctuation attached
  to a word (``"himself."``) is part of that word, as in eye-tracking corpora.
* Every token is mapped back to its character span in the sentence. A token belongs to the word
  that contains its first non-whitespace character. A token that is only whitespace (a
  character model's space, a byte-level ``Ġ`` on its own) belongs to the **next** word -- the
  boundary that announces a word is part of that word, as with GPT-2's leading-space tokens --
  except for classic BPE (kind ``bpe``), whose end-of-word marker closes the **previous** word.
* A word's surprisal is the sum of the surprisals of its tokens (the chain rule: the log of the
  product of its tokens' conditional probabilities); ``n_tokens`` says how many were summed.
* The first word is conditioned on ``<s>`` only. ``</s>`` is reported separately: as its own row
  with ``is_eos = true`` (``word = "</s>"``), so the rows of a sentence sum to the sentence's
  total surprisal, ``-log2 P(sentence)``; drop those rows for a reading-time regression.
"""

from __future__ import annotations

import bisect
import csv
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from chainrule.errors import ConfigError
from chainrule.evaluation.textscore import LOG2E, encode_text, frame, token_spans
from chainrule.fileio import atomic_open
from chainrule.models.base import Scorer
from chainrule.models.scoring import score_sequences
from chainrule.tokenizers.base import EOS, Tokenizer

_WORD = re.compile(r"\S+")

TOKEN_COLUMNS = [
    "sentence_id", "token_index", "token", "start", "end", "word_index", "surprisal_bits",
    "is_eos",
]
WORD_COLUMNS = [
    "sentence_id", "word_index", "word", "surprisal_bits", "n_tokens", "start", "end",
    "has_unk", "is_eos",
]


@dataclass(frozen=True)
class TokenSurprisal:
    sentence_id: int
    token_index: int  # position among the sentence's tokens (0 = first after <s>)
    token: str  # the token's text as decoded on its own
    start: int  # character span in the sentence (start == end for </s>)
    end: int
    word_index: int  # the word it counts towards (n_words for </s>)
    surprisal_bits: float
    is_eos: bool = False


@dataclass(frozen=True)
class WordSurprisal:
    sentence_id: int
    word_index: int
    word: str
    surprisal_bits: float  # sum over the word's tokens
    n_tokens: int
    start: int
    end: int
    has_unk: bool = False
    is_eos: bool = False


@dataclass(frozen=True)
class SentenceSurprisal:
    """Everything computed for one sentence."""

    sentence_id: int
    text: str
    tokens: list[TokenSurprisal]
    words: list[WordSurprisal]

    @property
    def total_bits(self) -> float:
        """``-log2 P(sentence)`` including ``</s>`` if it was scored."""
        return float(sum(t.surprisal_bits for t in self.tokens))


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the whitespace-separated words: ``"a bc"`` -> ``[(0, 1), (2, 4)]``."""
    return [m.span() for m in _WORD.finditer(text)]


def assign_tokens_to_words(
    text: str, spans: Sequence[tuple[int, int]], *, whitespace_to: str = "next"
) -> list[int]:
    """The word index of each token span under the word rule of this module.

    Args:
        text: the sentence.
        spans: character span of each token (monotone, from :func:`token_spans`).
        whitespace_to: where whitespace-only (or empty) tokens go: ``"next"`` or ``"previous"``.
    Returns:
        one word index per token, in ``0 .. n_words - 1`` (0 if the sentence has no words).

    Example: text ``"ab c"``, char spans ``[(0,1),(1,2),(2,3),(3,4)]`` -> ``[0, 0, 1, 1]``.
    """
    words = word_spans(text)
    if not words:
        return [0] * len(spans)
    # word index of every character position (-1 for whitespace)
    owner = [-1] * len(text)
    for w, (a, b) in enumerate(words):
        for c in range(a, b):
            owner[c] = w
    starts, ends = [s for s, _ in words], [e for _, e in words]
    out = []
    for a, b in spans:
        w = next((owner[c] for c in range(a, min(b, len(text))) if owner[c] >= 0), None)
        if w is None:
            if whitespace_to == "previous":  # the last word ending at or before a
                w = max(bisect.bisect_right(ends, a) - 1, 0)
            else:  # the first word starting at or after a
                w = min(bisect.bisect_left(starts, a), len(words) - 1)
        out.append(w)
    return out


def _whitespace_rule(tokenizer: Tokenizer) -> str:
    return "previous" if getattr(tokenizer, "kind", "") == "bpe" else "next"


def sentence_surprisals(
    model: Scorer,
    tokenizer: Tokenizer,
    sentences: Iterable[str],
    *,
    eos: bool = True,
    allow_unk: bool = True,
    start_id: int = 0,
    on_scored=None,
) -> list[SentenceSurprisal]:
    """Token and word surprisals (bits) of each sentence, scored as ``<s> ... </s>``.

    Args:
        model: any language model; ``tokenizer`` must be the one it was trained with.
        tokenizer: maps the sentences to the model's ids.
        sentences: one string per sentence (leading/trailing whitespace is stripped).
        eos: also score ``</s>`` (reported as a separate row with ``is_eos``).
        allow_unk: score ``<unk>`` as a token (flagged by ``has_unk``) instead of refusing.
        start_id: the ``sentence_id`` of the first sentence.
        on_scored: called with the number of sentences just scored (progress).
    """
    texts = [s.strip() for s in sentences]
    ids = [encode_text(tokenizer, t, allow_unk=allow_unk, where=f"sentence {i + start_id}")
           for i, t in enumerate(texts)]
    scores = score_sequences(model, [frame(model, x, eos=eos) for x in ids],
                             on_scored=on_scored)
    rule = _whitespace_rule(tokenizer)
    unk = tokenizer.unk_id
    out = []
    for k, (text, x, lp) in enumerate(zip(texts, ids, scores)):
        sid = start_id + k
        bits = [-float(v) * LOG2E for v in lp]
        spans = token_spans(tokenizer, text, x)
        owner = assign_tokens_to_words(text, spans, whitespace_to=rule)
        wspans = word_spans(text)
        toks = [
            TokenSurprisal(sid, i, tokenizer.decode([t]), a, b, w, bits[i])
            for i, (t, (a, b), w) in enumerate(zip(x, spans, owner))
        ]
        by_word: list[list[int]] = [[] for _ in wspans]
        for i, o in enumerate(owner):
            if 0 <= o < len(by_word):
                by_word[o].append(i)
        words = []
        for w, (a, b) in enumerate(wspans):
            mine = by_word[w]
            words.append(WordSurprisal(
                sid, w, text[a:b], float(sum(bits[i] for i in mine)), len(mine), a, b,
                has_unk=unk is not None and any(x[i] == unk for i in mine),
            ))
        if eos:
            n = len(wspans)
            toks.append(TokenSurprisal(sid, len(x), EOS, len(text), len(text), n, bits[-1], True))
            words.append(WordSurprisal(sid, n, EOS, bits[-1], 1, len(text), len(text),
                                       is_eos=True))
        out.append(SentenceSurprisal(sid, text, toks, words))
    return out


def read_sentences(path: str | os.PathLike) -> list[str]:
    """Non-empty lines of a UTF-8 file (empty lines are skipped, not scored)."""
    from chainrule.data.readers import read_text

    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def write_surprisal(
    results: Sequence[SentenceSurprisal], path: str | os.PathLike, *, words: bool = True
) -> Path:
    """Write word rows (``words=True``) or token rows as CSV or JSONL (by the file suffix)."""
    path = Path(path)
    fmt = path.suffix.lower()
    if fmt not in (".csv", ".jsonl"):
        raise ConfigError(
            f"cannot tell the output format of {str(path)!r}; name the file *.csv or *.jsonl."
        )
    columns = WORD_COLUMNS if words else TOKEN_COLUMNS
    rows = [asdict(r) for s in results for r in (s.words if words else s.tokens)]
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        if fmt == ".csv":
            writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            for r in rows:
                r["surprisal_bits"] = f"{r['surprisal_bits']:.6f}"
                r["is_eos"] = int(r["is_eos"])
                if "has_unk" in r:
                    r["has_unk"] = int(r["has_unk"])
                writer.writerow({c: r[c] for c in columns})
        else:
            for r in rows:
                f.write(json.dumps({c: r[c] for c in columns}, ensure_ascii=False) + "\n")
    return path


__all__ = [
    "SentenceSurprisal",
    "TokenSurprisal",
    "WordSurprisal",
    "assign_tokens_to_words",
    "read_sentences",
    "sentence_surprisals",
    "word_spans",
    "write_surprisal",
]
