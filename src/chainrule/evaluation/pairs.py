"""Minimal pairs: accuracy on BLiMP-format JSONL files.

Each line of a pairs file is a JSON object with ``sentence_good`` and ``sentence_bad`` and,
optionally, ``field``, ``linguistics_term``, ``UID`` (the paradigm) and the one-prefix fields
``one_prefix_prefix`` / ``one_prefix_word_good`` / ``one_prefix_word_bad``.

Methods:

* ``full`` (BLiMP's and lm-evaluation-harness's convention): a pair is right when
  ``log P(<s> good </s>) > log P(<s> bad </s>)``. ``</s>`` is included so each score is the
  probability of the complete sentence (``include_eos=False`` leaves it out).
* ``prefix`` (BLiMP's one-prefix method): right when
  ``log P(word_good | <s> prefix) > log P(word_bad | <s> prefix)``; the word's log-probability
  is the sum over its tokens (the word rule of :mod:`chainrule.evaluation.surprisal`, so a char
  model's space before the word counts towards it).

Ties (equal log-probabilities, e.g. both sentences full of ``<unk>``) count as **wrong**: a
model that cannot tell the two apart has not preferred the good one.

File rules: blank lines are skipped; a line that is not a JSON object or lacks a required
field is an error naming the file and line. Missing ``UID`` defaults to the file's stem,
missing ``linguistics_term`` / ``field`` to ``"unknown"``; ``field`` is normalised to lower
case with ``/``, ``-`` and spaces turned into ``_``, so ``syntax/semantics`` and
``syntax_semantics`` (both spellings occur in BLiMP) are one field.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainrule.errors import ConfigError, DataError
from chainrule.evaluation.textscore import encode_text, frame, token_spans
from chainrule.models.base import Scorer
from chainrule.models.scoring import score_sequences
from chainrule.tokenizers.base import Tokenizer

METHODS = ("full", "prefix")
PREFIX_FIELDS = ("one_prefix_prefix", "one_prefix_word_good", "one_prefix_word_bad")


@dataclass(frozen=True)
class MinimalPair:
    good: str
    bad: str
    uid: str
    term: str
    field: str
    prefix: str | None = None
    word_good: str | None = None
    word_bad: str | None = None
    source: str = ""  # "file.jsonl:line"


def normalise_field(value: str) -> str:
    """``"Syntax/Semantics"`` -> ``"syntax_semantics"``."""
    return re.sub(r"[/\-\s]+", "_", value.strip().lower()) or "unknown"


def read_pairs(paths: Iterable[str | os.PathLike]) -> list[MinimalPair]:
    """Read BLiMP-format JSONL files (see the module docstring for the rules)."""
    pairs: list[MinimalPair] = []
    for p in paths:
        path = Path(p)
        if not path.exists():  # a pipe (/dev/fd/63, /dev/stdin) is read like a file
            raise DataError(f"pairs file {str(path)!r} does not exist; check the path.")
        if path.is_dir():
            raise DataError(f"pairs file {str(path)!r} is a directory; pass a JSONL file.")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise DataError(
                f"pairs file {str(path)!r} is not UTF-8 text (bad byte at offset {e.start})."
            ) from None
        before = len(pairs)
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{where} is not valid JSON ({e.msg}); each line of a pairs file must be "
                    "one JSON object."
                ) from None
            if not isinstance(obj, dict):
                raise DataError(f"{where} is not a JSON object; expected BLiMP-format lines.")
            pairs.append(_pair(obj, path, where))
        if len(pairs) == before:
            raise DataError(f"pairs file {str(path)!r} holds no pairs; is it the right file?")
    return pairs


def _pair(obj: dict[str, Any], path: Path, where: str) -> MinimalPair:
    for key in ("sentence_good", "sentence_bad"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise DataError(
                f"{where} has no {key!r} string; every line needs 'sentence_good' and "
                "'sentence_bad'."
            )
    has_prefix = all(isinstance(obj.get(k), str) for k in PREFIX_FIELDS)
    return MinimalPair(
        good=obj["sentence_good"].strip(),
        bad=obj["sentence_bad"].strip(),
        uid=str(obj.get("UID") or path.stem),
        term=str(obj.get("linguistics_term") or "unknown"),
        field=normalise_field(str(obj.get("field") or "unknown")),
        prefix=obj["one_prefix_prefix"].strip() if has_prefix else None,
        word_good=obj["one_prefix_word_good"].strip() if has_prefix else None,
        word_bad=obj["one_prefix_word_bad"].strip() if has_prefix else None,
        source=where,
    )


@dataclass
class PairScores:
    """Per-pair log-probabilities (nats) of one model; ``correct[i]`` = good strictly higher."""

    pairs: list[MinimalPair]
    logp_good: list[float]
    logp_bad: list[float]
    method: str
    unk_tokens: int = 0  # <unk> tokens in the scored texts (--unk score)

    @property
    def correct(self) -> list[bool]:
        return [g > b for g, b in zip(self.logp_good, self.logp_bad)]


def score_pairs(
    model: Scorer,
    tokenizer: Tokenizer,
    pairs: Sequence[MinimalPair],
    *,
    method: str = "full",
    include_eos: bool = True,
    allow_unk: bool = False,
    on_scored=None,
) -> PairScores:
    """Score every pair with one model.

    Args:
        model: any language model; ``tokenizer`` is the one it was trained with.
        pairs: from :func:`read_pairs`.
        method: ``"full"`` sentence log-probabilities or ``"prefix"`` (one-prefix method).
        include_eos: (full method) include ``</s>`` in each sentence's log-probability.
        allow_unk: score ``<unk>`` as a token instead of refusing text the tokenizer cannot
            encode.
        on_scored: called with the number of sentences just scored, two per pair (progress).
    Raises:
        ConfigError: unknown method, or the prefix method on pairs without prefix fields.
        TokenizerError: text the tokenizer cannot encode (names the characters or words).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    if method == "full":
        seqs = []
        for p in pairs:
            for text in (p.good, p.bad):
                ids = encode_text(tokenizer, text, allow_unk=allow_unk, where=p.source)
                seqs.append(frame(model, ids, eos=include_eos))
        lp = [float(s.sum()) for s in score_sequences(model, seqs, on_scored=on_scored)]
        return PairScores(list(pairs), lp[0::2], lp[1::2], method, _unks(tokenizer, seqs))
    missing = [p for p in pairs if p.prefix is None]
    if missing:
        raise ConfigError(
            f"{missing[0].source} (paradigm {missing[0].uid!r}) has no one_prefix_prefix / "
            "one_prefix_word_good / one_prefix_word_bad fields, so the prefix method cannot "
            f"score it ({len(missing)} of {len(pairs)} pairs lack them); use --method full."
        )
    seqs, targets = [], []
    for p in pairs:
        for word in (p.word_good, p.word_bad):
            text = f"{p.prefix} {word}" if p.prefix else str(word)
            ids = encode_text(tokenizer, text, allow_unk=allow_unk, where=p.source)
            seqs.append(frame(model, ids, eos=False))
            targets.append(_word_token_mask(tokenizer, text, ids, len(text) - len(str(word))))
    scores = score_sequences(model, seqs, on_scored=on_scored)
    lp = [float(s[m].sum()) for s, m in zip(scores, targets)]
    return PairScores(list(pairs), lp[0::2], lp[1::2], method, _unks(tokenizer, seqs))


def _unks(tokenizer: Tokenizer, seqs: list[list[int]]) -> int:
    unk = tokenizer.unk_id
    return 0 if unk is None else sum(s.count(unk) for s in seqs)


def _word_token_mask(tokenizer: Tokenizer, text: str, ids: list[int], word_start: int) -> list[int]:
    """Indices of the tokens that belong to the final word starting at ``word_start``."""
    from chainrule.evaluation.surprisal import _whitespace_rule, assign_tokens_to_words, word_spans

    spans = token_spans(tokenizer, text, ids)
    owner = assign_tokens_to_words(text, spans, whitespace_to=_whitespace_rule(tokenizer))
    first_word = sum(1 for a, _ in word_spans(text) if a < word_start)
    return [i for i, w in enumerate(owner) if w >= first_word]


def _acc(flags: list[bool]) -> dict[str, float | int]:
    return {"n": len(flags), "correct": sum(flags), "accuracy": sum(flags) / len(flags)}


def summarise(scores: PairScores) -> dict[str, Any]:
    """Accuracy overall, per field, per phenomenon (linguistics_term) and per paradigm (UID).

    Each group is ``{"n": ..., "correct": ..., "accuracy": ...}``; ``ties`` counts pairs with
    equal scores (counted wrong).
    """
    groups: dict[str, dict[str, list[bool]]] = {
        "field": defaultdict(list), "linguistics_term": defaultdict(list), "UID": defaultdict(list)
    }
    correct = scores.correct
    for p, c in zip(scores.pairs, correct):
        groups["field"][p.field].append(c)
        groups["linguistics_term"][p.term].append(c)
        groups["UID"][p.uid].append(c)
    ties = sum(1 for g, b in zip(scores.logp_good, scores.logp_bad) if g == b)
    return {
        "method": scores.method,
        "overall": _acc(correct),
        "ties": ties,
        **{k: {name: _acc(v) for name, v in sorted(g.items())} for k, g in groups.items()},
    }


@dataclass
class PairsReport:
    """Results of several models on the same pairs."""

    method: str
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> summarise()
    scores: dict[str, PairScores] = field(default_factory=dict)  # name -> per-pair scores

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "models": self.models}


def evaluate_pairs(
    model_dirs: Sequence[str | os.PathLike],
    data: Sequence[str | os.PathLike],
    *,
    method: str = "full",
    include_eos: bool = True,
    allow_unk: bool = False,
    scoring: str | None = None,
    names: Sequence[str] | None = None,
    on_scored=None,
    on_read=None,
) -> PairsReport:
    """Load each model directory and score all pairs of ``data`` with it (``scoring``: how
    masked models score, see :func:`chainrule.evaluation.textscore.set_scoring`; ``names``:
    the models' names in the report, default their paths; ``on_read(n_pairs)`` is called once
    the pairs are read and ``on_scored(n_sentences)`` as they are scored, two per pair and
    model: progress)."""
    from chainrule.evaluation.textscore import load_model_and_tokenizer, scoring_name

    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    pairs = read_pairs(data)
    if on_read is not None:
        on_read(len(pairs))
    report = PairsReport(method)
    for k, d in enumerate(model_dirs):
        model, tok = load_model_and_tokenizer(d, scoring)
        scores = score_pairs(model, tok, pairs, method=method, include_eos=include_eos,
                             allow_unk=allow_unk, on_scored=on_scored)
        name = names[k] if names else _unique_name(str(d), report.models)
        report.models[name] = {**summarise(scores), "scoring": scoring_name(model),
                               "unk_tokens": scores.unk_tokens}
        report.scores[name] = scores
    return report


ITEM_COLUMNS = ["pair", "source", "UID", "linguistics_term", "field", "sentence_good",
                "sentence_bad", "model", "logp_good_bits", "logp_bad_bits", "diff_bits",
                "correct", "tie"]


def write_pair_items(report: PairsReport, path: str | os.PathLike) -> Path:
    """Every pair's log-probabilities in bits (log2), one row per pair and model, as CSV/TSV."""
    from chainrule.evaluation.textscore import LOG2E
    from chainrule.fileio import write_delimited

    def rows():
        for name, sc in report.scores.items():
            for i, (p, g, b) in enumerate(zip(sc.pairs, sc.logp_good, sc.logp_bad)):
                good = p.word_good if sc.method == "prefix" else p.good
                bad = p.word_bad if sc.method == "prefix" else p.bad
                yield [i, p.source, p.uid, p.term, p.field, good, bad, name,
                       f"{g * LOG2E:.6f}", f"{b * LOG2E:.6f}", f"{(g - b) * LOG2E:.6f}",
                       int(g > b), int(g == b)]

    return write_delimited(path, ITEM_COLUMNS, rows())


def _unique_name(name: str, taken: dict[str, Any]) -> str:
    base = name.rstrip("/") or name
    out, k = base, 2
    while out in taken:
        out, k = f"{base}#{k}", k + 1
    return out


__all__ = [
    "METHODS",
    "MinimalPair",
    "PairScores",
    "PairsReport",
    "evaluate_pairs",
    "normalise_field",
    "read_pairs",
    "score_pairs",
    "summarise",
    "write_pair_items",
]
