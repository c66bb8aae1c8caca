"""Train/valid/test splits: by fractions (of characters, lines or words) or contiguous by word
count in whole sentences.

**The boundary rule** (word-count splits, and fraction splits of whole sentences): splits are
filled in corpus order; a sentence goes to the current split while that split holds *fewer*
than its target N words before the sentence; the sentence that reaches or crosses N stays in it,
and the next sentence opens the next split. The last split takes the rest. So a split overshoots
its target by less than one sentence. On the NLTK Brown corpus with targets 800,000 / 200,000
this gives 800,001 / 200,021 / 161,170 words: exactly Bengio et al.'s split as distributed in
``brown/{train,valid,test}.txt``.

Character fractions follow nanoGPT: with fractions ``f1, f2, ...`` of a text of ``n``
characters, split ``k`` ends at ``floor(n * (f1 + ... + fk))`` (the fractions are added as exact
decimals, so 0.9 of 1,115,394 characters is 1,003,854).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

from chainrule.errors import ConfigError
from chainrule.fileio import atomic_open

from .readers import detect_format, iter_sentences, iter_stream_text, resolve_paths
from .stats import TextCounter

S = TypeVar("S")
DEFAULT_NAMES = ("train", "valid", "test")


def word_count(sentence: str | Sequence[str]) -> int:
    """Words of a sentence: a list counts its items, a string its whitespace-separated tokens."""
    return len(sentence.split()) if isinstance(sentence, str) else len(sentence)


def _check_fractions(fractions: Sequence[float]) -> list[Fraction]:
    if len(fractions) < 2:
        raise ConfigError("give at least two split fractions, for example 0.9 0.1.")
    if not all(math.isfinite(f) for f in fractions):
        raise ConfigError(f"split fractions must be finite numbers, got {list(fractions)}.")
    exact = [Fraction(str(f)) for f in fractions]
    if any(f <= 0 for f in exact):
        raise ConfigError(f"split fractions must be positive, got {list(fractions)}.")
    if abs(float(sum(exact)) - 1.0) > 1e-6:
        raise ConfigError(
            f"split fractions must add up to 1, but {list(fractions)} add up to "
            f"{float(sum(exact)):g}."
        )
    return exact


def fraction_boundaries(total: int, fractions: Sequence[float]) -> list[int]:
    """End position of each split when ``total`` units are cut by ``fractions``.

    Example: ``fraction_boundaries(1115394, [0.9, 0.1]) -> [1003854, 1115394]``.
    """
    exact = _check_fractions(fractions)
    ends, acc = [], Fraction(0)
    for f in exact[:-1]:
        acc += f
        ends.append(int(total * acc))  # floor: the exact product, no float rounding
    return [*ends, total]


def split_text(text: str, fractions: Sequence[float], by: str = "chars") -> list[str]:
    """Cut a text into contiguous pieces by fractions of its characters (nanoGPT's char split)
    or, with ``by="lines"``, of its lines (a line is never cut).

    Examples: ``split_text("abcdefghij", [0.9, 0.1]) -> ["abcdefghi", "j"]``;
    ``split_text("a\\nb\\nc\\nd\\n", [0.75, 0.25], by="lines") -> ["a\\nb\\nc\\n", "d\\n"]``.
    """
    if by not in ("chars", "lines"):
        raise ConfigError(f"split_text(by=...) is 'chars' or 'lines', not {by!r}.")
    units = text.splitlines(keepends=True) if by == "lines" else text
    ends = fraction_boundaries(len(units), fractions)
    return ["".join(units[a:b]) if by == "lines" else text[a:b]
            for a, b in zip([0, *ends[:-1]], ends)]


def _check_sizes(sizes: Sequence[int]) -> None:
    if not sizes or any(int(n) != n or n <= 0 for n in sizes):
        raise ConfigError(f"split sizes must be positive whole numbers, got {list(sizes)}.")


def assign_contiguous(
    items: Iterable[S], sizes: Sequence[int], weight: Callable[[S], int] = word_count
) -> Iterator[tuple[int, S]]:
    """Stream ``(split index, item)``: split ``k`` takes items while it holds fewer than
    ``sizes[k]`` (by ``weight``) before the item; the last split (index ``len(sizes)``) takes
    the rest.

    Example: sentences of 3, 3, 3, 3 words with ``sizes=[5]`` -> splits 0, 0, 1, 1 (the second
    sentence starts at 3 < 5, so it stays in split 0 although it ends at 6).
    """
    _check_sizes(sizes)
    k, held = 0, 0
    for item in items:
        if k < len(sizes) and held >= sizes[k]:
            k, held = k + 1, 0
        yield k, item
        held += weight(item)


def split_by_words(sentences: Iterable[S], sizes: Sequence[int]) -> list[list[S]]:
    """Contiguous splits of whole sentences by word count (see the module's boundary rule).

    Returns ``len(sizes) + 1`` lists; Bengio's Brown split is ``sizes=[800_000, 200_000]``.
    """
    out: list[list[S]] = [[] for _ in range(len(sizes) + 1)]
    for k, s in assign_contiguous(sentences, sizes):
        out[k].append(s)
    return out


def split_by_fractions(
    items: Sequence[S], fractions: Sequence[float], weight: Callable[[S], int] | None = None
) -> list[list[S]]:
    """Contiguous splits of whole items by fractions of their count (``weight=None``) or of their
    total weight (e.g. ``weight=word_count``), with the same boundary rule."""
    total = len(items) if weight is None else sum(weight(s) for s in items)
    ends = fraction_boundaries(total, fractions)
    sizes = [max(b - a, 1) for a, b in zip([0, *ends[:-2]], ends[:-1])]
    out: list[list[S]] = [[] for _ in fractions]
    for k, s in assign_contiguous(items, sizes, weight or (lambda _: 1)):
        out[k].append(s)
    return out


def split_names(n: int, names: Sequence[str] | None = None) -> list[str]:
    """``train``, ``valid``, ``test`` for up to three splits; more need explicit names."""
    if names is not None:
        if len(names) != n or len(set(names)) != n:
            raise ConfigError(f"give {n} distinct split names, got {list(names)}.")
        for name in names:  # each becomes OUT_DIR/<name>.txt: it must stay inside OUT_DIR
            if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
                raise ConfigError(f"split name {name!r} is not a plain file name; use names "
                                  "like train, valid, test (no slashes or '..').")
        return list(names)
    if n > len(DEFAULT_NAMES):
        raise ConfigError(f"{n} splits need names; pass --names with {n} names.")
    return list(DEFAULT_NAMES[:n])


def write_splits(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    fractions: Sequence[float] | None = None,
    words: Sequence[int] | None = None,
    by: str | None = None,
    format: str = "auto",
    field: str = "text",
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Split a corpus into ``OUT_DIR/<name>.txt`` files, streaming (two passes for fractions).

    Args:
        fractions: split by these fractions (of ``by`` units); or
        words: contiguous word-count targets, whole sentences; one more split takes the rest.
        by: ``"chars"`` (the stream text cut exactly, nanoGPT style), ``"lines"`` or ``"words"``
            (whole sentences). Default: ``"words"`` for NLTK corpora, ``"chars"`` otherwise.
            Sentence splits write one sentence per line (NLTK: words joined by spaces).

    Returns:
        ``{"by": ..., "splits": {name: {"path", "lines", "words", "characters"}}}``.
    """
    if (fractions is None) == (words is None):
        raise ConfigError("give either split fractions or word counts, not both or neither.")
    if fractions is not None:
        _check_fractions(fractions)
    else:
        _check_sizes(words)  # type: ignore[arg-type]
    files = resolve_paths(paths)
    if by is None:
        nltk = format == "nltk" or (format == "auto" and detect_format(files[0]) == "nltk")
        by = "words" if nltk or words is not None else "chars"
    if by not in ("chars", "lines", "words"):
        raise ConfigError(f"unknown split unit {by!r}; use chars, lines or words.")
    if words is not None and by != "words":
        raise ConfigError("word-count splits cut whole sentences; drop --by or use --by words.")
    n = len(fractions) if fractions is not None else len(words) + 1  # type: ignore[arg-type]
    names = split_names(n, names)
    out_dir = Path(out_dir)
    stats = [{"lines": 0, "words": 0, "characters": 0} for _ in names]

    with contextlib.ExitStack() as stack:
        outs = [
            stack.enter_context(atomic_open(out_dir / f"{name}.txt", "w", encoding="utf-8",
                                            newline=""))
            for name in names
        ]
        if by == "chars":
            total = sum(len(t) for t in iter_stream_text(files, format, field))
            ends = fraction_boundaries(total, fractions)  # type: ignore[arg-type]
            counters = [TextCounter() for _ in names]
            pos, k = 0, 0
            for text in iter_stream_text(files, format, field):
                while text:
                    take = text[: ends[k] - pos]
                    outs[k].write(take)
                    counters[k].add(take)
                    pos += len(take)
                    text = text[len(take):]
                    if pos == ends[k] and k < len(ends) - 1:
                        k += 1
            for k, c in enumerate(counters):
                stats[k] = {"lines": c.lines, "words": c.words, "characters": c.characters}
        else:
            weight = word_count if by == "words" else (lambda _: 1)
            if words is not None:
                sizes = list(words)
            else:
                total = sum(weight(s) for s in iter_sentences(files, format, field))
                ends = fraction_boundaries(total, fractions)  # type: ignore[arg-type]
                sizes = [max(b - a, 1) for a, b in zip([0, *ends[:-2]], ends[:-1])]
            sentences = iter_sentences(files, format, field)
            for k, s in assign_contiguous(sentences, sizes, weight):
                outs[k].write(s + "\n")
                stats[k]["lines"] += 1
                stats[k]["characters"] += len(s) + 1
                stats[k]["words"] += word_count(s)
    return {
        "by": by,
        "splits": {
            name: {"path": str(out_dir / f"{name}.txt"), **stats[k]} for k, name in enumerate(names)
        },
    }

