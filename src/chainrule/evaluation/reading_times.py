"""Reading times against surprisal: tables in, word surprisals over whole stories, ΔLL out.

Input: a table (TSV/CSV) with a word, a document (story/item), a position and a reading-time
column, e.g. Natural Stories' ``processed_wordinfo.tsv`` (``word``, ``item``, ``zone``,
``meanItemRT``). A directory is read as Natural Stories: ``processed_wordinfo.tsv`` for the
times and ``all_stories.tok`` (``word``, ``zone``, ``item``) for the story text. The story text
is every word of every document in position order; each reading-time row must name a word of
the text at its (document, position) -- the first that does not is reported. Without a
separate story file the table's own words, in position order, are the text.

Surprisal: each document is scored as one text (``<s> w1 w2 ... wn``, windows of the model's
context for long ones) with :func:`chainrule.evaluation.word_surprisal.score_words`, so each
word is conditioned on the whole story before it. ``split_punctuation`` scores a word's leading
and trailing punctuation as separate words (for word-level models trained on tokenised text such
as Brown) and sums them back into the reading-time word.

Predictors per word t (spillover k): length in characters and log2 unigram frequency (add-one
counts of lower-cased words from a corpus the user names, punctuation stripped) of t, t-1, ...,
t-k for the baseline; the full model adds the surprisals of t, ..., t-k. Words with fewer than k
predecessors in their document, with ``<unk>`` (under any model, at t..t-k), or with a reading
time outside ``[rt_min, rt_max]`` are left out, the same rows for every model.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.errors import ConfigError, DataError
from chainrule.evaluation.rt_regression import DeltaLL, binned_means, delta_loglik
from chainrule.evaluation.stimuli import Stimulus

_EDGE = re.compile(r"^([^\w]*)(.*?)([^\w]*)$", re.DOTALL)


@dataclass(frozen=True)
class RTWord:
    doc: str
    position: int
    word: str
    rt: float | None  # None: a word of the text without a reading time


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    from chainrule.data.readers import read_text

    delim = "," if path.suffix.lower() == ".csv" else "\t"
    rows = [r for r in csv.reader(io.StringIO(read_text(path)), delimiter=delim) if r]
    if len(rows) < 2:
        raise DataError(f"{path.name} has no rows under its header.")
    return [h.strip() for h in rows[0]], rows[1:]


def _col(header: list[str], name: str, path: Path, option: str) -> int:
    if name not in header:
        raise DataError(f"{path.name} has no column {name!r} (it has "
                        f"{', '.join(map(repr, header))}); name the column with {option}.")
    return header.index(name)


def read_reading_times(
    path: str | os.PathLike,
    *,
    story: str | os.PathLike | None = None,
    word: str = "word",
    doc: str = "item",
    position: str = "zone",
    rt: str = "meanItemRT",
) -> list[RTWord]:
    """The story words in (document, position) order, each with its reading time or None."""
    path = Path(path)
    if path.is_dir():
        story = story or path / "all_stories.tok"
        path = path / "processed_wordinfo.tsv"
    header, rows = _read_rows(path)
    iw, idoc = _col(header, word, path, "--word-column"), _col(header, doc, path, "--doc-column")
    ipos, irt = _col(header, position, path, "--position-column"), _col(header, rt, path,
                                                                        "--rt-column")
    times: dict[tuple[str, int], tuple[str, float, int]] = {}
    for n, r in enumerate(rows, 2):
        try:
            key = (r[idoc].strip(), int(r[ipos]))
            value = float(r[irt])
        except (ValueError, IndexError):
            raise DataError(f"{path.name} row {n}: {position!r} must be an integer and {rt!r} "
                            "a number.") from None
        times[key] = (r[iw].strip(), value, n)
    if story is None:
        text = {k: v[0] for k, v in times.items()}
    else:
        story = Path(story)
        sh, srows = _read_rows(story)
        sw, sd, sp = (_col(sh, word, story, "--word-column"), _col(sh, doc, story, "--doc-column"),
                      _col(sh, position, story, "--position-column"))
        text = {(r[sd].strip(), int(r[sp])): r[sw].strip() for r in srows}
        for key, (w, _, n) in sorted(times.items(), key=lambda kv: kv[1][2]):
            if text.get(key) != w:
                there = repr(text[key]) if key in text else "no word"
                raise DataError(f"{path.name} row {n} ({doc} {key[0]}, {position} {key[1]}) "
                                f"has the word {w!r} but the story text has {there} there; "
                                "the reading times do not belong to this text.")
    order = sorted(text, key=lambda k: (_doc_key(k[0]), k[1]))
    return [RTWord(d, p, text[(d, p)], times[(d, p)][1] if (d, p) in times else None)
            for d, p in order]


def _doc_key(d: str):
    return (0, int(d), "") if d.isdigit() else (1, 0, d)


def pieces(word: str, split_punctuation: bool) -> list[str]:
    """The units a reading-time word is scored as: itself, or its leading punctuation
    characters, its core and its trailing punctuation characters."""
    if not split_punctuation:
        return [word]
    lead, core, trail = _EDGE.match(word).groups()
    out = list(lead) + ([core] if core else []) + list(trail)
    return out or [word]


def strip_word(word: str) -> str:
    core = _EDGE.match(word).group(2)
    return (core or word).lower()


def unigram_log2(corpus: str | os.PathLike) -> tuple[Counter, int]:
    """Lower-cased, punctuation-stripped word counts of a text corpus and its token total."""
    from chainrule.data.readers import read_text

    counts = Counter(strip_word(w) for w in read_text(corpus).split())
    return counts, sum(counts.values())


def story_surprisals(model, tokenizer, words: Sequence[RTWord], *, split_punctuation=False,
                     allow_unk=False) -> tuple[np.ndarray, np.ndarray]:
    """Surprisal (bits) and ``<unk>`` flag of every word, each story scored as one text."""
    from chainrule.evaluation.word_surprisal import score_words

    docs: dict[str, list[int]] = {}
    for i, w in enumerate(words):
        docs.setdefault(w.doc, []).append(i)
    units = {i: pieces(words[i].word, split_punctuation) for i in range(len(words))}
    stimuli = [Stimulus(" ".join(u for i in idx for u in units[i])) for idx in docs.values()]
    scored = score_words(model, tokenizer, stimuli, eos=False, allow_unk=allow_unk)
    s, unk = np.zeros(len(words)), np.zeros(len(words), dtype=bool)
    for idx, ws in zip(docs.values(), scored):
        k = 0
        for i in idx:
            m = sum(len(u.split()) for u in units[i])
            s[i] = sum(w.surprisal_bits for w in ws[k:k + m])
            unk[i] = any(w.has_unk for w in ws[k:k + m])
            k += m
    return s, unk


@dataclass
class RTResult:
    models: list[str]
    delta: dict[str, DeltaLL] = field(default_factory=dict)
    curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    surprisal: dict[str, np.ndarray] = field(default_factory=dict)  # per word of the text
    unk_words: dict[str, int] = field(default_factory=dict)
    n_words: int = 0  # words with a reading time
    n_used: int = 0  # rows in the regression
    predictors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"words_with_rt": self.n_words, "rows_used": self.n_used,
                "baseline": self.predictors,
                "models": {m: {"delta_ll": d.delta_ll, "se": d.se, "n": d.n,
                               "unk_words": self.unk_words[m]} for m, d in self.delta.items()}}


def lagged(x: np.ndarray, docs: list[str], k: int) -> np.ndarray:
    """Column j is x shifted by j words within the same document (NaN before its start)."""
    out = np.full((len(x), k + 1), np.nan)
    for j in range(k + 1):
        for i in range(j, len(x)):
            if docs[i - j] == docs[i]:
                out[i, j] = x[i - j]
    return out


def analyse(models: Sequence[tuple[str, Any, Any]], words: Sequence[RTWord], *,
            freq: tuple[Counter, int] | None = None, spillover: int = 1, folds: int = 10,
            split_punctuation: bool = False, allow_unk: bool = False, rt_min: float = 100.0,
            rt_max: float = 3000.0, seed: int = 0) -> RTResult:
    """Surprisal of every word under every model, then ΔLL over the baseline (module doc)."""
    if spillover < 0:
        raise ConfigError(f"--spillover must be 0 or more, got {spillover}.")
    scored = {name: story_surprisals(model, tok, words, split_punctuation=split_punctuation,
                                     allow_unk=allow_unk)
              for name, model, tok in models}
    return regress_surprisals(scored, words, freq=freq, spillover=spillover, folds=folds,
                              rt_min=rt_min, rt_max=rt_max, seed=seed)


def regress_surprisals(scored: dict[str, tuple[np.ndarray, np.ndarray]],
                       words: Sequence[RTWord], *, freq: tuple[Counter, int] | None = None,
                       spillover: int = 1, folds: int = 10, rt_min: float = 100.0,
                       rt_max: float = 3000.0, seed: int = 0) -> RTResult:
    """ΔLL over the baseline for surprisals already computed: ``scored`` maps a model name to
    ``(surprisal bits, <unk> flag)`` per word of ``words`` (:func:`story_surprisals`, e.g. kept
    from an earlier run). Every model is fit on the same rows: a word with ``<unk>`` under any
    model (at t..t-k) is left out for all."""
    if spillover < 0:
        raise ConfigError(f"--spillover must be 0 or more, got {spillover}.")
    res = RTResult(list(scored))
    docs = [w.doc for w in words]
    rt = np.array([np.nan if w.rt is None else w.rt for w in words])
    length = np.array([len(strip_word(w.word)) for w in words], dtype=float)
    base = [lagged(length, docs, spillover)]
    res.predictors = [f"length(t-{j})" for j in range(spillover + 1)]
    if freq is not None:
        counts, total = freq
        denom = total + len(counts) + 1
        lf = np.array([math.log2((counts.get(strip_word(w.word), 0) + 1) / denom)
                       for w in words])
        base.append(lagged(lf, docs, spillover))
        res.predictors += [f"log2freq(t-{j})" for j in range(spillover + 1)]
    B = np.hstack(base)
    ok = ~np.isnan(B).any(1) & ~np.isnan(rt) & (rt >= rt_min) & (rt <= rt_max)
    S = {}
    for name, (s, unk) in scored.items():
        s, unk = np.asarray(s, dtype=float), np.asarray(unk, dtype=bool)
        if len(s) != len(words) or len(unk) != len(words):
            raise DataError(f"{name}: {len(s)} surprisals for {len(words)} words; score the "
                            "same reading-time table.")
        res.surprisal[name], res.unk_words[name] = s, int(unk.sum())
        S[name] = lagged(s, docs, spillover)
        ok &= ~(lagged(unk.astype(float), docs, spillover) > 0).any(1)
    res.n_words = int((~np.isnan(rt)).sum())
    res.n_used = int(ok.sum())
    for name in res.models:
        res.delta[name] = delta_loglik(B[ok], S[name][ok], rt[ok], folds=folds, seed=seed)
        res.curves[name] = binned_means(S[name][ok, 0], rt[ok])
    return res


__all__ = ["RTResult", "RTWord", "analyse", "lagged", "pieces", "read_reading_times",
           "regress_surprisals", "story_surprisals", "unigram_log2"]
