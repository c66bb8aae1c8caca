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

Without the compiled kernel (or for orders above 6 or ids beyond 2**21) chainrule counts with
numpy, in memory; :func:`available` says which.
"""

from __future__ import annotations

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


def arpa_section_chunks(words, tables, k: int, keep1: np.ndarray,
                        lines: int = 1 << 18) -> Iterable[bytes]:
    """The lines of the k-gram section of an ARPA file, as UTF-8 bytes in pieces.

    ``words``: the spelling of every id, as ``arpa_words(words)``."""
    mod = core()
    n = tables.keys[k - 1].size
    for start in range(0, n, lines):
        yield mod.arpa_lines(words, tables.vocab_size, tables.keys, tables.prob, tables.backoff,
                             k, start, min(n, start + lines), k < tables.order, keep1)


def arpa_words(words: Sequence[str]):
    """The vocabulary converted once for :func:`arpa_section_chunks`."""
    return core().ArpaWords(list(words))


__all__ = ["CompiledCounter", "DerivedCounts", "OrderTable", "arpa_section_chunks", "arpa_words",
           "available",
           "core", "parse_memory"]
