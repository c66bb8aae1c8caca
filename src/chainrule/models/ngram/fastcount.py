"""Counting through the compiled kernel ``chainrule._ngram_count_core``, in bounded memory.

The kernel does what :mod:`.counting` and :func:`.estimate.derive_orders` do with numpy, in one
pass: whitespace words become ids (a vocabulary grown in order of first appearance, or a closed
one), each sentence's left-padded top-order windows are packed into one integer with the *last*
word most significant, buffered, sorted and counted. A full buffer becomes a sorted run, merged
into the running table in memory or -- with a memory budget, like lmplz's ``-S`` -- written to a
temporary file; the runs are merged at the end. One pass over the merged, sorted windows then
yields every order's table in the suffix encoding of :mod:`.tables` (sorting by the reversed
words *is* that encoding's order), its raw counts and each entry's context index. The estimator's
arithmetic (discounts, probabilities, backoffs) stays in numpy, so both paths give identical
models (tested).

With a memory budget, :meth:`CompiledCounter.finish_to_disk` writes every order's table to files
instead (:class:`DiskCounts`), for the out-of-core estimator (:mod:`.outofcore`).

Without the compiled kernel (or for orders above 6 or ids beyond 2**21) chainrule counts with
numpy, in memory; :func:`available` says which.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chainrule.data.textfiles import iter_text_chunks
from chainrule.errors import ConfigError, DataError

MAX_COMPILED_ORDER = 6  # 21 bits per id in one 128-bit key


def core():
    """The compiled module, or None when it was not built."""
    try:
        from chainrule import _ngram_count_core
    except ImportError:
        return None
    return _ngram_count_core


def available(order: int) -> bool:
    """Whether the compiled counter can count windows of ``order``."""
    return 1 <= order <= MAX_COMPILED_ORDER and core() is not None


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_memory(text: str | int | None) -> int | None:
    """``"500M"``, ``"2G"``, ``"1.5g"``, ``"800k"`` or a number of bytes -> bytes (None: no budget).

    Example: ``parse_memory("1G") == 1 << 30``.
    """
    if text is None or isinstance(text, int):
        if isinstance(text, int) and text <= 0:
            raise ConfigError(f"the memory budget must be positive, got {text}.")
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise ConfigError(f"--memory takes a size such as 500M or 2G, got {text!r}.")
    value = float(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower())
    if value < 1 << 20:
        raise ConfigError(f"--memory {text!r} is below 1M; give the counter at least 1M.")
    return int(value)


@dataclass
class OrderTable:
    """The n-grams of one order as the kernel derives them (see :class:`.estimate.OrderCounts`)."""

    keys: np.ndarray
    raw: np.ndarray


@dataclass
class DerivedCounts:
    """Every order's table, counted and derived: what :func:`.estimate.estimate` needs.

    Attributes:
        order: N.
        orders: ``orders[k - 1]`` the keys (suffix encoding) and raw counts of order k;
            order 1 covers every id.
        contexts: ``contexts[k - 2]`` the table-(k-1) index of each order-k entry's context.
        tokens / sentences: ids counted (words plus one ``</s>`` each) / sentences.
        runs: sorted runs the counter made (1 when everything fitted in one buffer).
        spilled: whether runs went to disk (a memory budget smaller than the counts).
    """

    order: int
    orders: list[OrderTable]
    contexts: list[np.ndarray]
    tokens: int
    sentences: int
    runs: int = 1
    spilled: bool = False


@dataclass
class DiskCounts:
    """Every order's table counted and written to ``directory`` (the out-of-core path).

    Per order k >= 2 the files ``keys<k>.i64`` (suffix encoding), ``raw<k>.i64`` (raw counts)
    and, below the top order, ``left<k>.i64`` (distinct words seen before each n-gram); the
    unigram arrays are in memory. ``directory`` is removed when this object (or the tables the
    estimator makes from it, which take it over) is garbage-collected.
    """

    order: int
    vocab_size: int
    raw1: np.ndarray
    left1: np.ndarray
    sizes: list[int]
    directory: tempfile.TemporaryDirectory
    tokens: int
    sentences: int
    runs: int = 1
    spilled: bool = False
    on_disk = True

    def path(self, name: str, k: int) -> Path:
        return Path(self.directory.name) / f"{name}{k}.i64"

    def load(self) -> DerivedCounts:
        """The same counts in memory, as :meth:`CompiledCounter.finish` gives them."""
        keys = [np.arange(self.vocab_size, dtype=np.int64)]
        orders = [OrderTable(keys[0], self.raw1)]
        contexts = []
        for k in range(2, self.order + 1):
            keys.append(np.fromfile(self.path("keys", k), dtype=np.int64))
            orders.append(OrderTable(keys[-1], np.fromfile(self.path("raw", k), dtype=np.int64)))
            prev = contexts[-1] if contexts else None
            contexts.append(context_index(keys[-2], prev, keys[-1], self.vocab_size, k))
        return DerivedCounts(self.order, orders, contexts, self.tokens, self.sentences, self.runs,
                             self.spilled)


def context_index(keys_prev: np.ndarray, ctx_prev: np.ndarray | None, keys: np.ndarray, V: int,
                  k: int, index=None) -> np.ndarray:
    """Index in table k-1 of the context ``w1 .. w_{k-1}`` of each order-k key (suffix encoding):
    the key ``ctx_prev[parent] * V + first`` looked up among ``keys_prev`` (``index``: a
    compiled :class:`KeyIndex` over them, made here when not given)."""
    first = keys % V
    if k == 2:
        return first
    q = ctx_prev[keys // V] * V + first
    idx = (index or core().KeyIndex(keys_prev)).find(q)
    if idx.size and idx.min() < 0:
        raise DataError(f"the {k}-gram table holds n-grams whose context is missing; the counts "
                        "on disk are corrupt.")
    return idx


SLACK = 16 << 20  # bytes the counting holds besides its buffer (text chunks, the vocabulary)


def counter_budget(memory: int) -> int:
    """The counter's buffer under a budget for the whole process: what the interpreter does not
    already hold (its resident memory now, and ``SLACK`` for text in flight), at least a quarter."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        rss = 0
    return max(memory // 4, memory - rss - SLACK)


class CompiledCounter:
    """Feed whole texts (whitespace words) or id sentences; :meth:`finish` derives every order.

    Args:
        order: N (1..6).
        bos_id / eos_id: ids of ``<s>`` / ``</s>``.
        memory: bytes for the window buffer; None keeps every run in memory, a number spills
            sorted runs to ``temp_dir`` whenever the buffer is full and merges them at the end.
        temp_dir: where spilled runs go (default: the system's temporary directory).
    """

    def __init__(self, order: int, bos_id: int, eos_id: int, *, memory: int | None = None,
                 temp_dir: str | None = None):
        mod = core()
        if mod is None or not available(order):
            raise ConfigError(f"the compiled n-gram counter is not available for order {order}.")
        self.order = order
        self._tmp = tempfile.TemporaryDirectory(prefix="chainrule-ngram-", dir=temp_dir) \
            if memory else None
        self._c = mod.Counter(order, int(bos_id), int(eos_id), int(memory or 0),
                              self._tmp.name if self._tmp else "")
        self._vocab: list[str] | None = None

    def set_vocab(self, words: Sequence[str], skip: Iterable[int], unk_id: int, grow: bool) -> None:
        """Map whitespace words through ``words`` (id = position, a later duplicate wins);
        ids in ``skip`` are dropped from the text; unknown words grow the vocabulary (``grow``)
        or become ``unk_id``."""
        self._vocab = list(words)
        self._c.set_vocab(self._vocab, [int(i) for i in skip], int(unk_id), bool(grow))

    def add_file(self, path: str | Path) -> None:
        """Every line of one text file (``.gz`` too) is a sentence; lines end as in
        ``str.splitlines``, words are split as ``str.split`` does."""
        if self._vocab is None:
            raise ConfigError("set_vocab() must come before add_file().")
        carry = ""
        for chunk in iter_text_chunks(path):
            buf = carry + chunk if carry else chunk
            cut = buf.rfind("\n") + 1
            if cut:
                self._c.add_text(buf[:cut].encode("utf-8"))
                carry = buf[cut:]
            else:
                carry = buf
        if carry:
            self._c.add_text(carry.encode("utf-8"))

    def add_sentences(self, sentences: Sequence[np.ndarray]) -> None:
        """Sentences of ids, without ``<s>`` / ``</s>``."""
        if not sentences:
            return
        lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
        ids = np.concatenate([np.asarray(s, dtype=np.int32) for s in sentences]) \
            if lengths.sum() else np.zeros(0, dtype=np.int32)
        self._c.add_ids(ids, lengths)

    def new_words(self) -> list[str]:
        """Words added to the vocabulary, in order of first appearance."""
        return list(self._c.new_words())

    def first_skipped(self) -> str | None:
        i = self._c.first_skipped()
        return None if i < 0 or self._vocab is None else self._vocab[i]

    def finish(self, vocab_size: int) -> DerivedCounts:
        try:
            out = self._c.finish(int(vocab_size))
        except (IndexError, ValueError, RuntimeError) as e:
            raise DataError(f"counting n-grams failed: {e}.") from None
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
        orders = [OrderTable(np.arange(vocab_size, dtype=np.int64), out["raw"][0])]
        orders += [OrderTable(k, r) for k, r in zip(out["keys"], out["raw"][1:])]
        return DerivedCounts(self.order, orders, list(out["context"]), int(out["tokens"]),
                             int(out["sentences"]), int(out["runs"]), bool(out["spilled"]))

    def finish_to_disk(self, vocab_size: int) -> DiskCounts:
        """Merge the runs and write every order's table to a new temporary directory (beside
        the runs) as it is derived: nothing of the size of the counts is held in memory."""
        parent = str(Path(self._tmp.name).parent) if self._tmp else None
        directory = tempfile.TemporaryDirectory(prefix="chainrule-ngram-tables-", dir=parent)
        try:
            out = self._c.finish_to_disk(int(vocab_size), directory.name)
        except (IndexError, ValueError, RuntimeError) as e:
            directory.cleanup()
            raise DataError(f"counting n-grams failed: {e}.") from None
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
        return DiskCounts(self.order, int(vocab_size), out["raw1"], out["left1"],
                          [int(n) for n in out["sizes"]], directory, int(out["tokens"]),
                          int(out["sentences"]), int(out["runs"]), bool(out["spilled"]))


def arpa_section_chunks(words, tables, k: int, keep1: np.ndarray,
                        lines: int = 1 << 18) -> Iterable[bytes]:
    """The lines of the k-gram section of an ARPA file, as UTF-8 bytes in pieces.

    ``words``: the spelling of every id, as ``arpa_words(words)``."""
    mod = core()
    n = tables.keys[k - 1].size
    for start in range(0, n, lines):
        yield mod.arpa_lines(words, tables.vocab_size, tables.keys, tables.prob, tables.backoff,
                             k, start, min(n, start + lines), k < tables.order, keep1)
    release = getattr(tables, "release", None)  # tables on disk: drop the pages read
    if release is not None:
        release()


def arpa_words(words: Sequence[str]):
    """The vocabulary converted once for :func:`arpa_section_chunks`."""
    return core().ArpaWords(list(words))


__all__ = ["CompiledCounter", "DerivedCounts", "DiskCounts", "OrderTable", "arpa_section_chunks",
           "arpa_words", "available", "context_index", "core", "counter_budget", "parse_memory"]
