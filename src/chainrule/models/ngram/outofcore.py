"""Kneser-Ney estimated order by order from tables on disk: the out-of-core path.

With a memory budget (``train_ngram(memory=...)``, ``--memory``) the compiled counter writes
every order's table to files as it derives them (:meth:`.fastcount.CompiledCounter.finish_to_disk`)
and this module estimates the model from those files a chunk at a time, holding only arrays the
size of *one* order's contexts (table k-1) while it does order k:

1. per order, the adjusted counts (distinct left extensions, with the ``<s>`` rules of
   :mod:`.estimate`) and their count-of-counts, hence the discounts;
2. per order k, pass A streams the k-grams: each one's context index (looked up in table k-1
   through a compiled hash index), and the sums ``den`` and ``freed`` per context; table k-1's
   backoffs follow; pass B streams them again for the interpolated probabilities, reading the
   lower order's float64 probabilities by the suffix index, which never decreases (the tables
   are sorted by suffix).

The arithmetic is :mod:`.estimate`'s, element by element, and the per-context sums are added in
the same order (``np.add.at`` in table order, as ``np.bincount`` does), so the model is
bit-identical to the in-memory estimate (tested). The finished tables stay in their files and
are memory-mapped (:class:`DiskTables`); saving copies the files into ``model.safetensors``
without reading them into memory, and the ARPA writer drops the pages it has read after each
section. Pruning drops entries in a last pass over each order's files and renumbers the keys
above (as :func:`.estimate._finish` does). Order 1 and the MLE / add-k backoff estimators load
the counts into memory and use :func:`.estimate.estimate` (same model, memory not bounded).
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chainrule.errors import ConfigError
from chainrule.fileio import atomic_path
from chainrule.models.ngram.estimate import _thresholds, choose_discounts, estimate
from chainrule.models.ngram.fastcount import DiskCounts, context_index, core
from chainrule.models.ngram.tables import NgramTables

CHUNK = 1 << 18  # n-grams per chunk (~20 MB of temporaries)


@dataclass
class DiskTables(NgramTables):
    """:class:`.tables.NgramTables` whose arrays of orders >= 2 are read-only memory maps of
    files in ``files`` (a temporary directory, removed with these tables)."""

    files: tempfile.TemporaryDirectory | None = field(default=None, repr=False)
    _maps: list = field(default_factory=list, repr=False)
    _sources: dict = field(default_factory=dict, repr=False)

    def map(self, path: Path, dtype: str) -> np.ndarray:
        """The file as a read-only array (empty files as empty arrays)."""
        size = path.stat().st_size
        if size == 0:
            return np.zeros(0, dtype=dtype)
        with open(path, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._maps.append(mm)
        arr = np.frombuffer(mm, dtype=dtype)
        self._sources[id(arr)] = (path, arr)
        return arr

    def release(self) -> None:
        """Drop the mapped pages read so far from this process (they stay in the page cache)."""
        for mm in self._maps:
            mm.madvise(mmap.MADV_DONTNEED)

    def write_safetensors(self, path: str | os.PathLike, tensors: dict,
                          metadata: dict[str, str] | None = None) -> None:
        """Write ``tensors`` as safetensors, copying mapped arrays from their files (in the
        kernel where it can) instead of reading them into memory; written atomically."""
        names = sorted(tensors, key=lambda n: (-tensors[n].dtype.itemsize, n))
        header: dict = {"__metadata__": dict(metadata)} if metadata else {}
        offset = 0
        for name in names:
            a = tensors[name]
            dtype = {"i8": "I64", "f4": "F32", "f8": "F64", "i4": "I32"}[a.dtype.str[1:]]
            header[name] = {"dtype": dtype, "shape": list(a.shape),
                            "data_offsets": [offset, offset + a.nbytes]}
            offset += a.nbytes
        head = json.dumps(header, separators=(",", ":")).encode()
        head += b" " * (-len(head) % 8)
        with atomic_path(path) as tmp, open(tmp, "wb") as out:
            out.write(len(head).to_bytes(8, "little") + head)
            for name in names:
                a = tensors[name]
                src = self._sources.get(id(a))
                if src is not None and src[1] is a and a.dtype.byteorder in "<=|":
                    out.flush()
                    _copy_file(src[0], out)
                    out.seek(0, os.SEEK_END)
                else:
                    out.write(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes())


def _copy_file(src: Path, out) -> None:
    with open(src, "rb") as f:
        left = os.fstat(f.fileno()).st_size
        try:
            while left > 0:
                n = os.copy_file_range(f.fileno(), out.fileno(), left)
                if n <= 0:
                    break
                left -= n
        except (AttributeError, OSError):
            pass
        if left > 0:  # no copy_file_range here (or across file systems): 4 MB at a time
            f.seek(os.fstat(f.fileno()).st_size - left)
            out.seek(0, os.SEEK_END)
            shutil.copyfileobj(f, out, 4 << 20)


def _read(f, dtype, n: int) -> np.ndarray:
    a = np.fromfile(f, dtype=dtype, count=n)
    if a.size != n:
        raise OSError("an n-gram table file ended early; the temporary directory was changed.")
    return a


def _read_range(path: Path, dtype, start: int, stop: int) -> np.ndarray:
    with open(path, "rb") as f:
        f.seek(start * np.dtype(dtype).itemsize)
        return _read(f, dtype, stop - start)


def _log10(p: np.ndarray, prob: bool) -> np.ndarray:
    """:func:`.estimate._append_log10`, one array."""
    with np.errstate(divide="ignore"):
        return (np.minimum(0.0, np.log10(p)) if prob else np.log10(p)).astype(np.float32)


def estimate_on_disk(counts: DiskCounts, vocab_size: int, bos_id: int, smoothing: str = "mkn",
                     *, k: float = 1.0, discounts: Sequence[Sequence[float]] | None = None,
                     prune: Sequence[int] | None = None, never: Sequence[int] = (),
                     chunk: int | None = None) -> tuple[NgramTables, list[list[float]]]:
    """:func:`.estimate.estimate` for counts on disk: the same tables and discounts."""
    N, V = counts.order, counts.vocab_size
    if vocab_size != V:
        raise ConfigError(f"the counts were made for {V} ids, not {vocab_size}.")
    thresholds = _thresholds(prune, N)
    if N == 1 or smoothing not in ("kn", "mkn"):
        return estimate(counts.load(), V, bos_id, smoothing, k=k, discounts=discounts,
                        prune=prune, never=never)
    never = sorted({int(i) for i in never} - {bos_id})
    for i in never:
        if counts.raw1[i] > 0:
            raise ConfigError(f"token id {i} is marked as never predicted but occurs in the corpus.")
    est = _Estimator(counts, bos_id, smoothing == "mkn", chunk or CHUNK, thresholds)
    return est.run(discounts, never)


class _Estimator:
    def __init__(self, counts: DiskCounts, bos_id: int, modified: bool, chunk: int,
                 thresholds: list[int]):
        self.c, self.bos, self.modified, self.chunk = counts, bos_id, modified, chunk
        self.thresholds = thresholds
        self.N, self.V, self.n = counts.order, counts.vocab_size, counts.sizes
        self.dir = Path(counts.directory.name)

    def file(self, name: str, k: int) -> Path:  # the estimator's own files
        return self.dir / f"{name}{k}"

    def path(self, name: str, k: int) -> Path:  # the counter's (:class:`.fastcount.DiskCounts`)
        return self.dir / f"{name}{k}.i64"

    def chunks(self, k: int):
        return ((s, min(self.n[k - 1], s + self.chunk)) for s in range(0, self.n[k - 1], self.chunk))

    def adjusted(self) -> list[list[int]]:
        """Write ``adj<k>`` (the adjusted counts of order k >= 2) and return every order's
        count-of-counts [n1..n4]."""
        a1 = self.c.left1.copy()
        a1[self.bos] = 0
        coc = [np.bincount(np.clip(a1, 0, 5), minlength=6)]
        for k in range(2, self.N + 1):
            total = np.zeros(6, dtype=np.int64)
            top = k == self.N
            with open(self.path("keys", k), "rb") as fk, open(self.path("raw", k), "rb") as fr, \
                    open(self.file("adj", k), "wb") as out, \
                    nullcontext() if top else open(self.path("left", k), "rb") as fl:
                for s, e in self.chunks(k):
                    keys, raw = _read(fk, np.int64, e - s), _read(fr, np.int64, e - s)
                    if top:
                        a = raw
                    else:
                        a = _read(fl, np.int64, e - s)
                        starts_bos = keys % self.V == self.bos  # nothing precedes <s>: raw count
                        a[starts_bos] = raw[starts_bos]
                    total += np.bincount(np.clip(a, 0, 5), minlength=6)
                    a.tofile(out)
            if not top:
                self.path("left", k).unlink()
            coc.append(total)
        return [[int(x) for x in t[1:5]] for t in coc]

    def run(self, given, never) -> tuple[NgramTables, list[list[float]]]:
        N, V = self.N, self.V
        used = choose_discounts(self.adjusted(), self.modified, given)
        tables = DiskTables(V, [np.arange(V, dtype=np.int64)], [], [], [self.c.raw1])
        tables.files, self.c.directory = self.c.directory, None
        outcomes = V - 1 - len(never)
        # order 1, in memory: estimate._kneser_ney's arithmetic for k == 1, step by step
        a1 = self.c.left1.copy()
        a1[self.bos] = 0
        a = a1.astype(np.float64)
        disc = self.disc_table(used, 1)[np.minimum(a1, 3)]
        ctx = np.zeros(a.size, dtype=np.int64)
        den = np.bincount(ctx, weights=a, minlength=1)
        freed = np.bincount(ctx, weights=disc, minlength=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            gamma = np.where(den > 0, freed / den, 0.0)
            p = (a - disc) / den[ctx]
        p = np.where(den[0] > 0, p, 0.0) + gamma[0] / outcomes
        p[never] = 0.0
        p[self.bos] = 1.0
        lower = p
        tables.prob.append(_log10(p, True))
        for k in range(2, N + 1):
            den, gamma = self.pass_a(k, used)
            b = _log10(np.where(den > 0, gamma, 1.0), False)
            if k == 2:
                tables.backoff.append(b)
            else:
                b.tofile(self.file("backoff", k - 1))
            self.pass_b(k, used, den, gamma, lower)
            del den, gamma, b
            lower = None
            self.file("adj", k).unlink()
            if k > 2:
                self.file("ctx", k - 1).unlink()
                self.file("p", k - 1).unlink()
        with open(self.file("backoff", N), "wb") as out:  # the top order: log10 1 = 0
            for s, e in self.chunks(N):
                np.zeros(e - s, dtype=np.float32).tofile(out)
        self.file("ctx", N).unlink()
        if any(self.thresholds):
            self.prune()
        for k in range(2, N + 1):
            tables.keys.append(tables.map(self.path("keys", k), "<i8"))
            tables.prob.append(tables.map(self.file("prob", k), "<f4"))
            tables.backoff.append(tables.map(self.file("backoff", k), "<f4"))
            tables.raw_counts.append(tables.map(self.path("raw", k), "<i8"))
        return tables, used

    def disc_table(self, used, k: int) -> np.ndarray:
        d = used[k - 1] * 3 if len(used[k - 1]) == 1 else used[k - 1]
        return np.concatenate([[0.0], np.asarray(d, dtype=np.float64)])  # D(0) = 0, D(3+) = d[2]

    def pass_a(self, k: int, used) -> tuple[np.ndarray, np.ndarray]:
        """Contexts of the k-grams (written to ``ctx<k>``) and, per context, ``den`` and
        gamma."""
        n_ctx, V = self.n[k - 2], self.V
        keys_prev = ctx_prev = index = None
        if k > 2:
            keys_prev = np.fromfile(self.path("keys", k - 1), dtype=np.int64)
            ctx_prev = np.fromfile(self.file("ctx", k - 1), dtype=np.int64)
            index = core().KeyIndex(keys_prev)
        table = self.disc_table(used, k)
        den = np.zeros(n_ctx)
        freed = np.zeros(n_ctx)
        t = self.thresholds[k - 1]
        with open(self.path("keys", k), "rb") as fk, open(self.file("adj", k), "rb") as fa, \
                open(self.file("ctx", k), "wb") as out, \
                open(self.path("raw", k), "rb") if t else nullcontext() as fr:
            for s, e in self.chunks(k):
                keys, adj = _read(fk, np.int64, e - s), _read(fa, np.int64, e - s)
                ctx = context_index(keys_prev, ctx_prev, keys, V, k, index)
                ctx.tofile(out)
                a = adj.astype(np.float64)
                disc = table[np.minimum(adj, 3)]
                if t:  # a pruned n-gram frees all of its mass, as KenLM does
                    disc = np.where(_read(fr, np.int64, e - s) > t, disc, a)
                np.add.at(den, ctx, a)  # in table order, as np.bincount adds
                np.add.at(freed, ctx, disc)
        del keys_prev, ctx_prev, index
        with np.errstate(divide="ignore", invalid="ignore"):
            gamma = np.where(den > 0, freed / den, 0.0)
        return den, gamma

    def prune(self) -> None:
        """Drop the n-grams seen at most the threshold times and renumber the keys pointing at
        the entries that moved (:func:`.estimate._finish`, a chunk at a time)."""
        V, remap = self.V, None
        names = [(self.path, "keys", np.int64), (self.file, "prob", np.float32),
                 (self.file, "backoff", np.float32), (self.path, "raw", np.int64)]
        for k in range(2, self.N + 1):
            t = self.thresholds[k - 1]
            if not t and remap is None:
                continue
            paths = [where(name, k) for where, name, _ in names]
            kept_before = 0
            new_remap = np.empty(self.n[k - 1], dtype=np.int64) if t else None
            with ExitStack() as stack:
                ins = [stack.enter_context(open(p, "rb")) for p in paths]
                outs = [stack.enter_context(open(f"{p}.pruned", "wb")) for p in paths]
                for s, e in self.chunks(k):
                    keys, prob, back, raw = (_read(f, d, e - s) for f, (_, _, d) in zip(ins, names))
                    keep = raw > t
                    if remap is not None:
                        keys = remap[keys // V] * V + keys % V
                    for a, out in zip((keys, prob, back, raw), outs):
                        a[keep].tofile(out)
                    if new_remap is not None:
                        new_remap[s:e] = kept_before + np.cumsum(keep) - 1
                    kept_before += int(keep.sum())
            for p in paths:
                os.replace(f"{p}.pruned", p)
            remap = new_remap if kept_before < self.n[k - 1] else None

    def pass_b(self, k: int, used, den, gamma, lower: np.ndarray | None) -> None:
        """The k-grams' probabilities: ``prob<k>`` (log10 float32) and, below the top order,
        ``p<k>`` (float64, for order k + 1)."""
        V, table, top = self.V, self.disc_table(used, k), k == self.N
        with open(self.path("keys", k), "rb") as fk, open(self.file("adj", k), "rb") as fa, \
                open(self.file("ctx", k), "rb") as fc, open(self.file("prob", k), "wb") as out, \
                nullcontext() if top else open(self.file("p", k), "wb") as fp:
            for s, e in self.chunks(k):
                keys, adj = _read(fk, np.int64, e - s), _read(fa, np.int64, e - s)
                ctx = _read(fc, np.int64, e - s)
                parent = keys // V
                if lower is None:  # the suffixes' probabilities: a range of p<k-1>, in order
                    lo, hi = int(parent[0]), int(parent[-1]) + 1
                    low = _read_range(self.file("p", k - 1), np.float64, lo, hi)[parent - lo]
                else:
                    low = lower[parent]
                a = adj.astype(np.float64)
                with np.errstate(divide="ignore", invalid="ignore"):
                    p = (a - table[np.minimum(adj, 3)]) / den[ctx]
                p = p + gamma[ctx] * low
                _log10(p, True).tofile(out)
                if fp is not None:
                    p.tofile(fp)


__all__ = ["CHUNK", "DiskTables", "estimate_on_disk"]
