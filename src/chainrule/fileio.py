"""Small file helpers: atomic writes and JSON, so nothing a user had is half-overwritten."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from chainrule.errors import ChainruleError, DataError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; on success it is synced and
    renamed over ``path`` (with the usual permissions). If the block raises, the temporary file
    is removed and ``path`` is left untouched."""
    path = Path(path)
    if path.is_dir():  # say so about the path asked for, not about the temporary file
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it is renamed over ``path``.

    If the block raises, the temporary file is removed and ``path`` is left untouched.
    """
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


@contextlib.contextmanager
def hold_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Be the only chainrule process writing into directory ``path`` while the block runs.

    An advisory ``flock`` on ``path/.chainrule.lock``, which holds the holder's pid and host. A
    second writer gets a ConfigError naming the first at once, instead of two runs interleaving
    their files. The lock dies with its process (no stale locks after a crash or a kill).
    """
    from chainrule.errors import ConfigError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{str(path)!r} is a file; pass a directory for the output.")
    path.mkdir(parents=True, exist_ok=True)
    lock = path / ".chainrule.lock"
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock on this platform: no lock
        yield path
        return
    with open(lock, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise ConfigError(f"{str(path)!r} is being written by another chainrule run "
                              f"({holder}); wait for it to finish or choose another output "
                              "directory.") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        try:
            yield path
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) while the block runs, so
    processes that would write the same files take turns. Where that is impossible (no
    ``fcntl`` on Windows, a read-only directory) the block runs without a lock."""
    path = Path(path)
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a")  # noqa: SIM115 (closed by the with below)
    except (ImportError, OSError):
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Fill a temporary directory beside ``path``; on success it is renamed to ``path``.

    If the block raises, the temporary directory is removed and ``path`` is left untouched. An
    existing non-empty ``path`` is refused unless ``overwrite`` (then it is replaced whole).
    """
    from chainrule.errors import ConfigError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{str(path)!r} is a file; give a directory to write into.")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ConfigError(f"{str(path)!r} already exists and is not empty; choose a new "
                          "directory or allow overwriting it (--force).")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)  # put the previous contents back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_delimited(path: str | os.PathLike, header: list[str],
                    rows: Iterable[Iterable[Any]]) -> Path:
    """Write a table atomically as CSV or TSV, chosen by the suffix (``.csv`` / ``.tsv``)."""
    import csv

    from chainrule.errors import ConfigError

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv"):
        raise ConfigError(f"cannot tell the format of {str(path)!r}; name it *.csv or *.tsv.")
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="," if suffix == ".csv" else "\t", lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike, *, what: str = "file") -> Any:
    """Read a JSON file, turning every failure into one actionable sentence."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} {str(path)!r} does not exist; check the path.")
    if path.is_dir():
        raise DataError(f"{what} {str(path)!r} is a directory, not a JSON file.")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except UnicodeDecodeError as e:
        raise DataError(
            f"{what} {str(path)!r} is not UTF-8 text (bad byte at offset {e.start}); "
            "is it the right file?"
        ) from None
    except json.JSONDecodeError as e:
        raise DataError(
            f"{what} {str(path)!r} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
            "it may be truncated or not a chainrule file."
        ) from None


def write_safetensors(
    path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None
) -> None:
    """Write tensors to a safetensors file atomically (weights never go through pickle).

    The file is written straight to a temporary path beside ``path`` (no second copy of the
    weights in memory), then renamed over it. ``tensors`` holds torch tensors, or numpy arrays
    (then torch is not imported).
    """
    if tensors and all(type(v).__module__ == "numpy" for v in tensors.values()):
        import numpy as np
        from safetensors.numpy import save_file as save_numpy

        with atomic_path(path) as tmp:
            save_numpy({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp),
                       metadata=metadata)
        return
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata=metadata)


def read_safetensors_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header, without reading the weights."""
    from safetensors import SafetensorError, safe_open

    from chainrule.errors import ModelFormatError

    path = Path(path)
    if not path.exists():
        raise ModelFormatError(f"{str(path)!r} is missing; the model directory is incomplete.")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFormatError(f"{str(path)!r} is not a readable safetensors file ({e}); the "
                               "checkpoint is corrupt or truncated.") from None


def read_safetensors(path: str | os.PathLike, *, numpy: bool = False) -> dict:
    """Load a safetensors file (torch tensors, or numpy arrays with ``numpy=True``, which does
    not import torch); a missing or corrupt file becomes a ModelFormatError."""
    from safetensors import SafetensorError

    if numpy:
        from safetensors.numpy import load_file
    else:
        from safetensors.torch import load_file

    from chainrule.errors import ModelFormatError

    path = Path(path)
    if not path.exists():
        raise ModelFormatError(f"{str(path)!r} is missing; the model directory is incomplete.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFormatError(
            f"{str(path)!r} is not a readable safetensors file ({e}); the checkpoint is "
            "corrupt or truncated."
        ) from None


#: safetensors dtype -> (numpy dtype string, bytes per element), for the dtypes chainrule maps
SAFETENSORS_DTYPES = {"I64": ("<i8", 8), "U64": ("<u8", 8), "F64": ("<f8", 8), "I32": ("<i4", 4),
                      "U32": ("<u4", 4), "F32": ("<f4", 4), "U8": ("u1", 1), "I8": ("i1", 1)}


def read_safetensors_header(path: str | os.PathLike) -> tuple[dict[str, str], dict, int]:
    """(metadata, tensors, data_start) of a safetensors file, every entry checked against the
    file's size, without reading the data: ``tensors[name] = (dtype, shape, begin, end)`` with
    absolute byte offsets. A file that is not safetensors, or is truncated, is a one-sentence
    ModelFormatError."""
    from chainrule.errors import ModelFormatError

    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            raw = f.read(n) if 2 <= n <= min(size - 8, 100 * 2**20) else b""
    except OSError as e:
        raise ModelFormatError(f"cannot read {str(path)!r}: {e.strerror or e}.") from None
    try:
        header = json.loads(raw) if raw.startswith(b"{") else None
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict):
        raise ModelFormatError(f"{str(path)!r} is not a safetensors model file (no valid header); "
                               "it may be truncated or of another format.")
    meta = header.pop("__metadata__", None) or {}
    start, tensors = 8 + n, {}
    for name, e in header.items():
        ok = (isinstance(e, dict) and e.get("dtype") in SAFETENSORS_DTYPES
              and isinstance(e.get("shape"), list) and isinstance(e.get("data_offsets"), list)
              and len(e["data_offsets"]) == 2
              and all(isinstance(v, int) and v >= 0 for v in e["shape"] + e["data_offsets"]))
        if ok:
            a, b = e["data_offsets"]
            count = 1
            for v in e["shape"]:
                count *= v
            ok = b - a == count * SAFETENSORS_DTYPES[e["dtype"]][1]
            if ok and start + b > size:
                raise ModelFormatError(f"{str(path)!r} is truncated: tensor {name!r} ends at byte "
                                       f"{start + b} but the file has {size}; write it again.")
        if not ok or not isinstance(meta, dict):
            raise ModelFormatError(f"{str(path)!r} has a malformed safetensors header (entry "
                                   f"{name!r}); the file is corrupt.")
        tensors[name] = (e["dtype"], tuple(e["shape"]), start + e["data_offsets"][0],
                         start + e["data_offsets"][1])
    return meta, tensors, start


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} {str(path)!r} does not exist; check the path.")
    if not path.is_file():
        raise DataError(f"{what} {str(path)!r} is not a regular file.")
    return path


__all__ = [
    "ChainruleError",
    "atomic_directory",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_lock",
    "read_json",
    "read_safetensors",
    "read_safetensors_header",
    "require_file",
    "write_delimited",
    "write_json",
    "write_safetensors",
]
