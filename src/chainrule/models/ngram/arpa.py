"""ARPA files in and out.

The ARPA format (as written by SRILM and KenLM)::

    \\data\\
    ngram 1=46190
    ngram 2=343764

    \\1-grams:
    -5.5508475<TAB><unk><TAB>0
    ...
    \\2-grams:
    -1.2345<TAB>of the<TAB>-0.2
    ...
    \\end\\

Each line is a log10 probability, the words, and (below the top order) an optional log10
backoff weight. Zero probabilities are written as ``-99``, the convention KenLM and SRILM use.
Reading accepts ``.gz`` files, n-grams in any order, and any ASCII whitespace between fields
(tabs, runs of spaces, CRLF line ends; other characters, Unicode spaces too, belong to the words,
as in KenLM); an error names the line.
"""

from __future__ import annotations

import gzip
import io
import operator
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from chainrule.errors import ModelFormatError
from chainrule.fileio import atomic_open
from chainrule.models.ngram import arpa_fast
from chainrule.models.ngram.tables import NgramTables, lookup

ZERO_LOG10 = -99.0
# whitespace between fields: the ASCII characters str.split() splits on ("\n" ends a line)
_OTHER_SPACES = "\r\v\f\x1c\x1d\x1e\x1f"
_FIELD = re.compile("[^ \t\n" + _OTHER_SPACES + "]+")


def _fields(line: str) -> list[str]:
    """The fields of a line, split on ASCII whitespace only."""
    return line.split() if line.isascii() else _FIELD.findall(line)


def _floats(values: np.ndarray) -> list[float]:
    """Values as Python floats for %-formatting; -inf becomes -99 and -0 becomes 0."""
    v = np.where(np.isneginf(values), ZERO_LOG10, values.astype(np.float64)) + 0.0
    return v.tolist()


def _gather(items: list[str], idx: np.ndarray) -> list[str]:
    if idx.size == 0:
        return []
    if idx.size == 1:
        return [items[int(idx[0])]]
    return list(operator.itemgetter(*idx.tolist())(items))


def write_arpa(
    tables: NgramTables, words: Sequence[str], path: str | os.PathLike, omit: Sequence[int] = ()
) -> Path:
    """Write ``tables`` as an ARPA file; ``words[i]`` is the spelling of id ``i``.

    ``omit`` lists ids left out of the unigram section (``<pad>``, which no n-gram contains).
    Written atomically; ``.gz`` in the name compresses it.
    """
    path = Path(path)
    if len(words) != tables.vocab_size:
        raise ModelFormatError(
            f"the vocabulary has {len(words)} words but the model {tables.vocab_size} ids; "
            "the tokenizer does not belong to this model."
        )
    N = tables.order
    with atomic_open(path, "wb") as raw:
        f = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if path.suffix == ".gz" else raw
        out = io.TextIOWrapper(f, encoding="utf-8", newline="\n")
        out.write("\\data\\\n")
        omit_set = sorted({int(i) for i in omit})
        keep1 = np.ones(tables.vocab_size, dtype=bool)
        keep1[omit_set] = False
        counts = tables.counts()
        counts[0] = int(keep1.sum())
        for k, n in enumerate(counts, start=1):
            out.write(f"ngram {k}={n}\n")
        if _write_compiled(out, tables, words, keep1):
            texts: list[str] = []
            N = 0  # every section is written
        else:
            texts = list(words)
        for k in range(1, N + 1):
            out.write(f"\n\\{k}-grams:\n")
            if k > 1:  # "w1 w2 .. wk" = "w1 " + text of the suffix entry
                heads = _gather([w + " " for w in words], tables.first(k))
                texts = list(map(str.__add__, heads, _gather(texts, tables.parent(k))))
            sel = keep1 if k == 1 else slice(None)
            texts_k = _gather(texts, np.flatnonzero(keep1)) if k == 1 else texts
            n = len(texts_k)
            nf = 3 if k < N else 2
            flat: list = [None] * (nf * n)
            flat[0::nf] = _floats(tables.prob[k - 1][sel])
            flat[1::nf] = texts_k
            if k < N:
                flat[2::nf] = _floats(tables.backoff[k - 1][sel])
            line = "%.8g\t%s\t%.8g\n" if k < N else "%.8g\t%s\n"
            out.write((line * n) % tuple(flat))
        out.write("\n\\end\\\n")
        out.flush()
        out.detach()
        if f is not raw:
            f.close()
    return path


def _write_compiled(out: io.TextIOWrapper, tables: NgramTables, words: Sequence[str],
                    keep1: np.ndarray) -> bool:
    """Write every section with the compiled writer (the same text, %.8g numbers); False if it
    is not built."""
    from chainrule.models.ngram import fastcount

    if fastcount.core() is None:
        return False
    words = fastcount.arpa_words(words)
    for k in range(1, tables.order + 1):
        out.write(f"\n\\{k}-grams:\n")
        out.flush()
        for piece in fastcount.arpa_section_chunks(words, tables, k, keep1):
            out.buffer.write(piece)
    return True


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise ModelFormatError(f"ARPA file {str(path)!r} does not exist; check the path.")
    if path.is_dir():
        raise ModelFormatError(f"{str(path)!r} is a directory, not an ARPA file.")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ModelFormatError(f"{str(path)!r} is a corrupt gzip file ({e}).") from None
    return data


def _decode_lines(data: bytes, path: Path) -> list[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelFormatError(
            f"{str(path)!r} is not UTF-8 text (bad byte at offset {e.start}); is it an ARPA file?"
        ) from None
    return text.split("\n")


def read_arpa(
    path: str | os.PathLike,
    vocab: dict[str, int] | Callable[[list[str]], dict[str, int]] | None = None,
) -> tuple[NgramTables, list[str]]:
    """Read an ARPA file.

    Args:
        path: the file (``.gz`` allowed).
        vocab: word -> id to use, or a function from the unigram words (in file order) to that
            mapping; by default ids follow the order of the unigram section.
    Returns:
        the tables and the spelling of every id.
    Raises:
        ModelFormatError: naming the line of the first problem.

    A file in any layout is read by the compiled reader when it is built (:mod:`.arpa_fast`),
    one it would read differently or refuse by the Python one below: the same tables either way.
    """
    path = Path(path)
    name = str(path)
    data = _read_bytes(path)
    parsed = arpa_fast.parse(data)
    if parsed is None:
        parsed = _parse_lines(_decode_lines(data, path), name)
    del data
    return _build_tables(parsed, vocab, name)


def _parse_lines(lines: list[str], name: str) -> list:
    """The Python reader: the sections of ``lines`` (words as strings per order), or an error
    naming the line."""

    def bad(lineno: int, what: str) -> ModelFormatError:
        return ModelFormatError(f"{name!r} line {lineno}: {what}; it is not a valid ARPA file.")

    i = 0
    while i < len(lines) and lines[i].strip() != "\\data\\":
        i += 1
    if i == len(lines):
        raise ModelFormatError(f"{name!r} has no \\data\\ header; it is not an ARPA file.")
    i += 1
    declared: list[int] = []
    while i < len(lines) and lines[i].strip().startswith("ngram "):
        spec = lines[i].strip()[6:]
        try:
            k, n = (int(x) for x in spec.split("="))
        except ValueError:
            raise bad(i + 1, f"cannot read the count line {lines[i].strip()!r}") from None
        if k != len(declared) + 1 or n < 0:
            raise bad(i + 1, f"expected the count of {len(declared) + 1}-grams")
        declared.append(n)
        i += 1
    if not declared:
        raise bad(i + 1, "expected 'ngram 1=<count>' after \\data\\")
    N = len(declared)
    words_by_order: list[list[list[str]]] = []
    probs: list[np.ndarray] = []
    backs: list[np.ndarray] = []
    for k in range(1, N + 1):
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i >= len(lines) or lines[i].strip() != f"\\{k}-grams:":
            raise bad(i + 1, f"expected the section header \\{k}-grams:")
        i += 1
        n = declared[k - 1]
        chunk = lines[i : i + n]
        fast = _parse_tabbed(chunk, k, k < N) if len(chunk) == n else None
        if fast is not None:
            _check_numbers(fast[1], fast[2], lines, i, bad)
            i += n
            words_by_order.append(fast[0])
            probs.append(fast[1])
            backs.append(fast[2])
            continue
        p = np.zeros(n, dtype=np.float32)
        b = np.zeros(n, dtype=np.float32)
        ws: list[list[str]] = []
        for j, line in enumerate(chunk):
            f = _fields(line)
            if len(f) not in (k + 1, k + 2) or (len(f) == k + 2 and k == N):
                raise bad(i + j + 1, f"expected a log10 probability, {k} word(s) and an optional "
                                     f"backoff, found {line.strip()[:60]!r}")
            try:
                p[j] = float(f[0])
                if len(f) == k + 2:
                    b[j] = float(f[-1])
            except ValueError:
                raise bad(i + j + 1, f"{line.strip()[:60]!r} has a number that cannot be read") from None
            ws.append(f[1 : k + 1])
        if len(chunk) < n:
            raise bad(i + len(chunk) + 1, f"the file ends inside the {k}-gram section")
        _check_numbers(p, b, lines, i, bad)
        i += n
        words_by_order.append(ws)
        probs.append(p)
        backs.append(b)
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or lines[i].strip() != "\\end\\":
        raise bad(i + 1, f"expected \\end\\ after {N}-grams (more n-grams than declared?)")
    return [words_by_order, probs, backs]


def _build_tables(parsed: arpa_fast.ParsedArpa | list, vocab, name: str,
                  ) -> tuple[NgramTables, list[str]]:
    """Tables and spellings from parsed sections (either reader's), ids from ``vocab``."""
    if isinstance(parsed, arpa_fast.ParsedArpa):
        unigrams, probs, backs, N = parsed.unigrams, parsed.probs, parsed.backs, len(parsed.probs)
    else:
        words_by_order, probs, backs = parsed
        N = len(probs)
        w1 = words_by_order[0]
        unigrams = w1.flat if isinstance(w1, _Flat) else [w[0] for w in w1]
    if callable(vocab):
        vocab = vocab(list(unigrams))
    if vocab is None:
        vocab = {}
        for w in unigrams:
            if w in vocab:
                raise ModelFormatError(f"{name!r}: the unigram {w!r} appears twice.")
            vocab[w] = len(vocab)
    V = max(vocab.values()) + 1 if vocab else 0
    spell = [""] * V
    for w, idx in vocab.items():
        spell[idx] = w
    keys = [np.arange(V, dtype=np.int64)]
    prob = [np.full(V, -np.inf, dtype=np.float32)]  # ids without a unigram line: never
    backoff = [np.zeros(V, dtype=np.float32)]
    uni_ids = _ids(unigrams, vocab, name)
    prob[0][uni_ids] = probs[0]
    backoff[0][uni_ids] = backs[0]
    rank = uni_ids  # line of the section of order k - 1 -> row of its table
    for k in range(2, N + 1):
        if isinstance(parsed, arpa_fast.ParsedArpa):  # words are unigram line numbers, and
            lines = parsed.rows[k - 1]  # the suffix's line in order k - 1 is known
            spelled = lambda r, k=k: [unigrams[j] for j in parsed.rows[k - 1][r]]
            first = uni_ids[lines[:, 0]]
            s = rank[lines[:, 1] if k == 2 else parsed.suffix[k - 1]]
        else:
            wk = words_by_order[k - 1]
            flat = wk.flat if isinstance(wk, _Flat) else [w for ws in wk for w in ws]
            rows = _ids(flat, vocab, name).reshape(-1, k)
            spelled = wk.__getitem__
            first, s = rows[:, 0], rows[:, k - 1]
            for j in range(2, k):
                s = np.where(s >= 0, lookup(keys[j - 1], np.maximum(s, 0) * V + rows[:, k - j]),
                             -1)
        if (s < 0).any():
            bad_row = int(np.flatnonzero(s < 0)[0])
            raise ModelFormatError(
                f"{name!r}: the {k}-gram {' '.join(spelled(bad_row))!r} has no "
                f"entry for its {k - 1}-word suffix; chainrule needs suffix-complete ARPA files "
                "(as KenLM writes them)."
            )
        key = s * V + first
        order = arpa_fast.argsort(key)
        key = key[order]
        if key.size > 1 and (np.diff(key) == 0).any():
            raise ModelFormatError(f"{name!r}: the {k}-gram section lists an n-gram twice.")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        keys.append(key)
        prob.append(probs[k - 1][order])
        backoff.append(backs[k - 1][order] if k < N else np.zeros(key.size, dtype=np.float32))
    return NgramTables(V, keys, prob, backoff), spell


def _check_numbers(p: np.ndarray, b: np.ndarray, lines: list[str], first: int, bad) -> None:
    """Log10 probabilities must be <= 0 and backoffs finite (KenLM refuses the rest too)."""
    wrong = ~(p <= 0) | ~np.isfinite(b)  # NaN fails ``<= 0``
    if wrong.any():
        j = int(np.argmax(wrong))
        raise bad(first + j + 1, f"{lines[first + j].strip()[:60]!r} has a log10 probability "
                                 "above 0 or a number that is not finite")


def _parse_tabbed(chunk: list[str], k: int, has_backoff: bool):
    """Fast path for KenLM's layout (``prob<TAB>w1 .. wk[<TAB>backoff]`` on every line).

    Returns (words as flat list per line group, probs, backoffs) or None to use the slow,
    line-checking parser: whenever its result could differ from the slow parser's (whitespace
    other than tabs and single spaces, a line with another number of fields or words).
    """
    n = len(chunk)
    if n == 0:
        return [], np.zeros(0, np.float32), np.zeros(0, np.float32)
    nf = 3 if has_backoff else 2
    text = "\t\n\t".join(chunk)  # "\n" (in no line) marks where each line's fields end
    if any(c in text for c in _OTHER_SPACES):
        return None
    fields = text.split("\t")
    if len(fields) != n * (nf + 1) - 1 or fields[nf :: nf + 1].count("\n") != n - 1:
        return None
    del fields[nf :: nf + 1]
    try:
        p = np.array(list(map(float, fields[0::nf])), dtype=np.float32)
        b = (np.array(list(map(float, fields[2::nf])), dtype=np.float32) if has_backoff
             else np.zeros(n, np.float32))
    except ValueError:
        return None
    flat = " \n ".join(fields[1::nf]).split(" ")
    if len(flat) != n * (k + 1) - 1 or flat[k :: k + 1].count("\n") != n - 1 or "" in flat:
        return None
    del flat[k :: k + 1]
    return _Flat(flat, k), p, b


class _Flat(list):
    """Words of a section as one flat list (k per n-gram), indexable per n-gram like a list."""

    def __init__(self, flat: list[str], k: int):
        super().__init__()
        self.flat, self.k = flat, k

    def __getitem__(self, i):
        return self.flat[i * self.k : (i + 1) * self.k]

    def __len__(self):
        return len(self.flat) // self.k


def _ids(words: list[str], vocab: dict[str, int], name: str) -> np.ndarray:
    try:
        return np.array(list(map(vocab.__getitem__, words)), dtype=np.int64)
    except KeyError as e:
        raise ModelFormatError(
            f"{name!r}: the word {e.args[0]!r} is used in an n-gram but is not in the "
            "vocabulary (no unigram entry); the file is incomplete."
        ) from None


__all__ = ["ZERO_LOG10", "read_arpa", "write_arpa"]
