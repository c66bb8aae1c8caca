"""The tokenised-corpus cache: token ids in ``tokens.bin`` plus a JSON header ``tokens.json``.

``tokens.bin`` is a flat little-endian array of ids in the smallest dtype that holds the
vocabulary (``uint16`` up to 65,536 entries, else ``uint32``), read back with ``numpy.memmap``.
``tokens.json`` holds::

    {"format": "chainrule-tokens", "version": 1, "dtype": "uint16", "count": N,
     "vocab_size": V, "tokenizer": {"kind": ..., "fingerprint": ...},
     "corpus": {"fingerprint": ..., "files": [{"path", "size", "mtime_ns"}, ...], ...},
     "frame": "lines", "bos": false, "eos": true, "doc_offsets": [0, ...]}

``doc_offsets[i]`` is where unit ``i`` starts (a line, a document, or a file for ``stream``).
With more than :data:`INLINE_OFFSETS` units the offsets go to ``offsets.bin`` (int64, also
memory-mapped) and the header says ``"doc_offsets": null, "doc_offsets_file": "offsets.bin"``,
so a corpus of a hundred million lines needs no giant JSON.
The cache is reused while the tokenizer fingerprint, the files (path, size, modification time)
and the options are unchanged, and rebuilt otherwise. It is written in chunks (bounded memory),
``tokens.bin`` first and the header last, each atomically; the old header is removed before a
rebuild, so a crash leaves no header that vouches for the wrong ids.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.errors import ConfigError, DataError, TokenizerError
from chainrule.fileio import atomic_open, file_lock, write_json

from .encode_pipeline import corpus_pieces, encoded_batches
from .readers import CHUNK_CHARS, resolve_paths

CACHE_FORMAT = "chainrule-tokens"
CACHE_VERSION = 1
FRAMES = ("lines", "documents", "stream")
BATCH_CHARS = 1 << 20  # text handed to one encode call / worker task
INLINE_OFFSETS = 10_000  # up to this many document offsets live in tokens.json itself


@dataclass
class TokenizedCorpus:
    """A tokenised corpus on disk.

    Attributes:
        directory: the cache directory.
        header: the parsed ``tokens.json``.
        reused: True if an existing cache was valid and nothing was tokenised.
        rebuilt_because: why it was (re)built, or ``None`` when reused.
    """

    directory: Path
    header: dict[str, Any]
    reused: bool = False
    rebuilt_because: str | None = None
    _ids: np.memmap | None = field(default=None, repr=False)
    _offsets: np.ndarray | None = field(default=None, repr=False)

    @property
    def count(self) -> int:
        return int(self.header["count"])

    def __len__(self) -> int:
        return self.count

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.header["dtype"])

    @property
    def ids(self) -> np.ndarray:
        """All token ids, shape ``(count,)``, memory-mapped read-only (opened on first use)."""
        if self._ids is None:
            if self.count == 0:
                return np.zeros(0, dtype=self.dtype)
            self._ids = np.memmap(self.directory / "tokens.bin", dtype=self.dtype, mode="r",
                                  shape=(self.count,))
        return self._ids

    @property
    def doc_offsets(self) -> np.ndarray:
        """Start of every unit (line / document / file), shape ``(n_documents,)``, int64."""
        if self._offsets is None:
            if self.header.get("doc_offsets") is not None:
                self._offsets = np.asarray(self.header["doc_offsets"], dtype=np.int64)
            elif self.n_documents == 0:
                self._offsets = np.zeros(0, dtype=np.int64)
            else:
                self._offsets = np.memmap(self.directory / self.header["doc_offsets_file"],
                                          dtype="<i8", mode="r", shape=(self.n_documents,))
        return self._offsets

    @property
    def n_documents(self) -> int:
        return int(self.header["n_documents"])

    def document(self, i: int) -> np.ndarray:
        """The ids of unit ``i`` (including its BOS/EOS framing)."""
        offsets = self.doc_offsets
        end = int(offsets[i + 1]) if i + 1 < len(offsets) else self.count
        return self.ids[int(offsets[i]) : end]


# -- fingerprints --------------------------------------------------------------------------------
def corpus_fingerprint(files: Iterable[Path], *, content: bool = False) -> dict[str, Any]:
    """Identify corpus files by absolute path, size and modification time (or, with
    ``content=True``, by a SHA-256 of their bytes, which survives ``touch`` and copies)."""
    entries = []
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        entry: dict[str, Any] = {"path": str(p.resolve()), "size": st.st_size}
        if content:
            with open(p, "rb") as f:
                fh = hashlib.sha256()
                for block in iter(lambda: f.read(1 << 20), b""):
                    fh.update(block)
            entry["sha256"] = fh.hexdigest()
        else:
            entry["mtime_ns"] = st.st_mtime_ns
        entries.append(entry)
        h.update(json.dumps(entry, sort_keys=True).encode())
    return {"fingerprint": h.hexdigest()[:16], "files": entries}


def _dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


# -- reading -------------------------------------------------------------------------------------
def load_tokenized(cache_dir: str | os.PathLike, tokenizer: Any | None = None) -> TokenizedCorpus:
    """Open a cache built by :func:`tokenize_corpus` without rebuilding it.

    Raises:
        DataError: the cache is missing, corrupt, of another format, or (when ``tokenizer`` is
            given) was made with a different tokenizer.
    """
    cache_dir = Path(cache_dir)
    header, problem = _read_header(cache_dir)
    if problem:
        raise DataError(f"{problem}; rebuild it with `chainrule corpus tokenize`.")
    if tokenizer is not None and header["tokenizer"]["fingerprint"] != tokenizer.fingerprint():
        raise DataError(
            f"the tokenised corpus in {str(cache_dir)!r} was made with another tokenizer; "
            "rebuild it with `chainrule corpus tokenize`."
        )
    return TokenizedCorpus(cache_dir, header)


def _read_header(cache_dir: Path) -> tuple[dict[str, Any], str | None]:
    """The header and ``None``, or ``{}`` and what is wrong with the cache."""
    hpath, bpath = cache_dir / "tokens.json", cache_dir / "tokens.bin"
    where = repr(str(cache_dir))
    if not hpath.is_file():
        return {}, f"there is no tokenised corpus in {where} (tokens.json is missing)"
    try:
        header = json.loads(hpath.read_text(encoding="utf-8"))
        if header.get("format") != CACHE_FORMAT:
            return {}, f"{str(hpath)!r} is not a chainrule tokenised-corpus header"
        if header.get("version") != CACHE_VERSION:
            version = header.get("version")
            return {}, f"{str(hpath)!r} has cache version {version!r}, not {CACHE_VERSION}"
        count, itemsize = int(header["count"]), np.dtype(header["dtype"]).itemsize
        header["tokenizer"]["fingerprint"], header["corpus"]["fingerprint"]
        n_docs = int(header["n_documents"])
        inline = header["doc_offsets"]
        if inline is not None and len(inline) != n_docs:
            raise ValueError("doc_offsets")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
            ValueError, AttributeError) as e:
        return {}, f"the header {str(hpath)!r} is corrupt ({type(e).__name__})"
    size = bpath.stat().st_size if bpath.is_file() else -1
    if size != count * itemsize:
        return {}, (
            f"{str(bpath)!r} has {max(size, 0)} bytes but its header promises {count} ids of "
            f"{itemsize} bytes (the cache is truncated or corrupt)"
        )
    if header["doc_offsets"] is None:
        opath = cache_dir / str(header.get("doc_offsets_file"))
        osize = opath.stat().st_size if opath.is_file() else -1
        if osize != 8 * n_docs:
            return {}, (
                f"{str(opath)!r} should hold {n_docs} document offsets (the cache is truncated "
                "or corrupt)"
            )
    return header, None


# -- building ------------------------------------------------------------------------------------
def tokenize_corpus(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    tokenizer: Any,
    cache_dir: str | os.PathLike,
    *,
    format: str = "auto",
    field: str = "text",
    frame: str = "lines",
    bos: bool = False,
    eos: bool = False,
    workers: int = 1,
    content_hash: bool = False,
    force: bool = False,
    universal_lines: bool = False,
    chunk_chars: int = CHUNK_CHARS,
    batch_chars: int = BATCH_CHARS,
) -> TokenizedCorpus:
    """Tokenise a corpus into ``cache_dir`` (or reuse a valid cache there).

    Args:
        tokenizer: a :class:`chainrule.tokenizers.Tokenizer`.
        frame: the unit that BOS/EOS frame and ``doc_offsets`` index: ``"lines"`` (each
            non-blank line / sentence, encoded on its own), ``"documents"`` (each file, JSONL
            record or NLTK file, encoded in chunks), or ``"stream"`` (the whole stream text;
            BOS only at the very start, EOS only at the very end; offsets at each document).
        bos / eos: add the tokenizer's ``<s>`` / ``</s>`` around each unit.
        workers: processes that encode (0: one per CPU). Ids are identical for any value.
        content_hash: fingerprint files by content, not by size and modification time.
        force: rebuild even if the cache is valid.
        universal_lines: for ``frame="lines"``, split lines like ``str.splitlines`` (also at
            ``\\r``, ``\\x0c``, ``\\u2028``, ...) rather than at ``\\n`` only; the
            training engine's ``boundaries=lines`` does this.
        chunk_chars / batch_chars: size of the text pieces read / handed to one encode call;
            memory stays within a small multiple of these, whatever the corpus size.

    Returns:
        The :class:`TokenizedCorpus`; ``.ids`` is a memmap of shape ``(count,)``.

    Processes that build the same ``cache_dir`` at once (say, the ranks of a ``torchrun`` job)
    take turns through a lock file (``.lock``) there: the first builds, the others reuse.
    """
    if frame not in FRAMES:
        raise ConfigError(f"unknown frame {frame!r}; use one of {', '.join(FRAMES)}.")
    if workers < 0:
        raise ConfigError(f"workers must be 0 (all CPUs) or more, got {workers}.")
    workers = workers or os.cpu_count() or 1
    bos_id, eos_id = tokenizer.bos_id, tokenizer.eos_id
    for wanted, tid, spelling in ((bos, bos_id, "<s>"), (eos, eos_id, "</s>")):
        if wanted and tid is None:
            raise TokenizerError(
                f"the tokenizer has no {spelling} token; retrain it with that special token or "
                "drop the --bos/--eos framing."
            )
    files = resolve_paths(paths)
    cache_dir = Path(cache_dir)
    corpus = {**corpus_fingerprint(files, content=content_hash), "format": format, "field": field}
    expected = {
        "tokenizer": {"kind": tokenizer.kind, "fingerprint": tokenizer.fingerprint()},
        "corpus": corpus,
        "frame": frame,
        "bos": bos,
        "eos": eos,
        "universal_lines": bool(universal_lines and frame == "lines"),
    }
    with file_lock(cache_dir / ".lock"):
        return _build(files, tokenizer, cache_dir, expected, format=format, field=field,
                      workers=workers, force=force, chunk_chars=chunk_chars,
                      batch_chars=batch_chars)


def _build(files: list[Path], tokenizer: Any, cache_dir: Path, expected: dict[str, Any], *,
           format: str, field: str, workers: int, force: bool, chunk_chars: int,
           batch_chars: int) -> TokenizedCorpus:
    """Reuse the cache in ``cache_dir`` if its header matches ``expected``, else build it."""
    frame, bos, eos = expected["frame"], expected["bos"], expected["eos"]
    bos_id, eos_id = tokenizer.bos_id, tokenizer.eos_id
    old, problem = _read_header(cache_dir)
    if not force and problem is None:
        old.setdefault("universal_lines", False)  # headers written before the option existed
        stale = [k for k in ("tokenizer", "corpus", "frame", "bos", "eos", "universal_lines")
                 if _key(old.get(k)) != _key(expected[k])]
        if not stale:
            return TokenizedCorpus(cache_dir, old, reused=True)
        reason = f"{stale[0]} changed"
    else:
        reason = "forced" if not problem else problem
        if problem and problem.startswith("there is no tokenised corpus"):
            reason = "no cache yet"

    dtype = _dtype_for(tokenizer.vocab_size)
    limit = np.iinfo(dtype).max
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / "tokens.json").unlink(missing_ok=True)
    n_docs = count = 0
    with atomic_open(cache_dir / "tokens.bin", "wb") as f, \
            atomic_open(cache_dir / "offsets.bin", "wb") as f_off:
        first = True
        pieces = corpus_pieces(files, format, field, frame, chunk_chars,
                         expected["universal_lines"])
        for batch, flat, lengths in encoded_batches(pieces, tokenizer, workers, batch_chars):
            if flat.size and (flat.min() < 0 or flat.max() > limit):
                raise TokenizerError(
                    f"the tokenizer produced id {int(flat.max())} outside 0..{limit} although "
                    f"its vocabulary has {tokenizer.vocab_size} entries; the tokenizer is broken."
                )
            # place each piece's ids after its BOS (if any) and before its EOS (if any)
            starts = np.fromiter((p[0] for p in batch), dtype=bool, count=len(batch))
            ends = np.fromiter((p[2] for p in batch), dtype=bool, count=len(batch))
            b = starts & bos
            if frame == "stream":
                b[:] = False
                b[0] = bos and first
            e = ends & eos & (frame != "stream")
            sizes = b + lengths + e
            at = np.cumsum(sizes) - sizes  # where each piece's output begins
            out = np.empty(int(sizes.sum()), dtype=dtype)
            keep = np.ones(out.size, dtype=bool)
            keep[at[b]] = keep[(at + b + lengths)[e]] = False
            out[keep] = flat
            out[at[b]] = bos_id if bos else 0
            out[(at + b + lengths)[e]] = eos_id if eos else 0
            f.write(out.tobytes())
            f_off.write((count + at[starts]).astype("<i8").tobytes())
            n_docs += int(starts.sum())
            count += out.size
            first = False
        if eos and frame == "stream":
            f.write(np.array([eos_id], dtype=dtype).tobytes())
            count += 1
    header = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "dtype": dtype.name,
        "count": count,
        "vocab_size": tokenizer.vocab_size,
        **expected,
        "n_documents": n_docs,
        "doc_offsets": None,
        "doc_offsets_file": "offsets.bin",
    }
    if n_docs <= INLINE_OFFSETS:
        header["doc_offsets"] = np.fromfile(cache_dir / "offsets.bin", dtype="<i8").tolist()
        del header["doc_offsets_file"]
        (cache_dir / "offsets.bin").unlink()
    write_json(cache_dir / "tokens.json", header, indent=None)
    return TokenizedCorpus(cache_dir, header, reused=False, rebuilt_because=reason)


def _key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)
