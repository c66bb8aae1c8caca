"""Run a scaling sweep: every :class:`SweepPoint` trained by the one training loop.

The sweep directory::

    DIR/sweep.json            the grid, the corpus, the tokenizer and bytes per token
    DIR/tokenizer.json        trained once on the corpus (or the one given)
    DIR/data/                 the tokenised corpus (memory-mapped, shared by every run)
    DIR/runs/NAME/            one training run (checkpoints, metrics.jsonl)
    DIR/runs/NAME/result.json written atomically when the run has ended: N, D, C, the final
                              validation loss (nats per token and bits per byte), the curve

A killed sweep is started again with the same command: a point with a ``result.json`` is done
and skipped, a point killed half-way resumes from its last checkpoint, the rest run. A run
whose loss becomes NaN ends with ``status: "diverged"`` in its result (it is not run again, and
the fit leaves it out and lists it). With ``jobs > 1`` points run in that many processes at
once (one device each, round-robin over the CUDA devices when there are several).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.errors import ConfigError, TrainingError
from chainrule.fileio import read_json, write_json
from chainrule.scaling.grid import SweepPoint, point_config

log = logging.getLogger(__name__)
SWEEP_FORMAT = "chainrule-scaling-sweep v1"
RESULT = "result.json"


@dataclass
class SweepData:
    """The corpus of a sweep, tokenised once."""

    tokenizer: Any
    train: np.ndarray
    val: np.ndarray
    bytes_per_token: float  # UTF-8 bytes of the validation text per validation token

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size


def prepare_corpus(files: list[Path], out_dir: Path, kind: str = "char",
                   vocab_size: int | None = None, tokenizer=None,
                   val_fraction: float = 0.1) -> SweepData:
    """Tokenise ``files`` into ``out_dir/data`` with the sweep's tokenizer (trained once)."""
    from chainrule.tokenizers import load_tokenizer, train_tokenizer
    from chainrule.training.data import corpus_ids

    tok_path = out_dir / "tokenizer.json"
    if tokenizer is None:
        if tok_path.exists():
            tokenizer = load_tokenizer(tok_path)
        else:
            kw = {"vocab_size": vocab_size} if vocab_size else {}
            tokenizer = train_tokenizer(kind, [Path(f) for f in files], **kw)
    if not tok_path.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        tokenizer.save(tok_path)
    data = corpus_ids(files, tokenizer, out_dir / "data", val_fraction=val_fraction)
    if data.val is None or len(data.val) < 2:
        raise ConfigError("the corpus is too small to hold out validation text; give a "
                          "larger corpus or a larger val_fraction.")
    return SweepData(tokenizer, data.train, data.val, _bytes_per_token(tokenizer, data.val))


def _bytes_per_token(tokenizer, ids: np.ndarray, chunk: int = 65536) -> float:
    """UTF-8 bytes of the decoded ids per id (bits per byte = nats / ln 2 / this)."""
    n_bytes = 0
    for i in range(0, len(ids), chunk):
        n_bytes += len(tokenizer.decode([int(t) for t in ids[i:i + chunk]]).encode("utf-8"))
    return n_bytes / max(len(ids), 1)


def bits_per_byte(nats_per_token: float, bytes_per_token: float) -> float:
    """Cross-entropy in nats per token as bits per UTF-8 byte.

    >>> round(bits_per_byte(math.log(2), 1.0), 6)
    1.0
    """
    return nats_per_token / math.log(2) / bytes_per_token


# -- one run -----------------------------------------------------------------------------------
def run_point(point: SweepPoint, data: SweepData, run_dir: Path, *,
              base: dict[str, Any] | None = None, lr_scale: float = 1.0,
              device: str = "auto") -> dict[str, Any]:
    """Train ``point`` into ``run_dir`` (resuming a killed run) and write its result file."""
    from chainrule.training.checkpoint import find_checkpoint
    from chainrule.training.loop import train

    cfg, size = point_config(point, data.vocab_size, base, lr_scale, device)
    tokens = cfg.max_iters * cfg.tokens_per_step
    per_step = cfg.tokens_per_step

    def on_evaluate(model, step):  # tokens and compute seen so far, beside the val loss
        seen = step * per_step
        return {"tokens": seen, "compute": size.compute_6nd(seen),
                "compute_exact": size.compute_exact(seen)}

    result: dict[str, Any] = {
        "name": point.name, "point": point.to_dict(), "family": point.family,
        "n_layer": point.n_layer, "n_embd": point.n_embd, "N": size.non_embedding,
        "params": size.params, "D": tokens, "C": size.compute_6nd(tokens),
        "C_exact": size.compute_exact(tokens), "budget": point.budget,
        "train_flops_per_token": size.train_flops, "steps": cfg.max_iters,
        "learning_rate": cfg.learning_rate, "bytes_per_token": data.bytes_per_token,
    }
    t0 = time.perf_counter()
    resume = find_checkpoint(run_dir) is not None
    try:
        summary = train(cfg, data.train, data.val, run_dir, tokenizer=data.tokenizer,
                        resume=resume, progress=False, plot=False, on_evaluate=on_evaluate)
    except TrainingError as e:
        result.update(status="diverged", error=str(e), val_loss=None, bpb=None)
    else:
        val = summary["final_val_loss"]
        ok = val is not None and math.isfinite(val)
        result.update(status="ok" if ok else "diverged", val_loss=val,
                      best_val_loss=summary["best_val_loss"],
                      bpb=bits_per_byte(val, data.bytes_per_token) if ok else None,
                      tokens_per_s=summary["tokens_per_s"])
    result["seconds"] = time.perf_counter() - t0
    result["curve"] = _curve(run_dir / "metrics.jsonl")
    write_json(run_dir / RESULT, result)
    return result


def _curve(path: Path) -> list[dict[str, float]]:
    from chainrule.training.metrics import read_metrics

    if not path.exists():
        return []
    return [{k: r[k] for k in ("step", "tokens", "compute", "compute_exact", "val_loss")}
            for r in read_metrics(path) if "val_loss" in r and "compute" in r]


# -- the sweep ---------------------------------------------------------------------------------
def write_manifest(out_dir: Path, points: list[SweepPoint], corpus: list[Path], *,
                   kind: str, settings: dict[str, Any], lr_scale: float,
                   plan: dict[str, Any] | None = None) -> list[SweepPoint]:
    """Record the grid in ``sweep.json``; points of an earlier call are kept (a union)."""
    path = out_dir / "sweep.json"
    old = read_manifest(out_dir) if path.exists() else None
    merged = {p.name: p for p in (old["points"] if old else [])}
    for p in points:
        merged.setdefault(p.name, p)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, {
        "format": SWEEP_FORMAT, "corpus": [str(c) for c in corpus], "tokenizer_kind": kind,
        "settings": settings, "lr_scale": lr_scale,
        "plan": plan if plan is not None else (old or {}).get("plan"),
        "points": [p.to_dict() for p in merged.values()],
    })
    return list(merged.values())


def read_manifest(out_dir: Path) -> dict[str, Any]:
    """``sweep.json`` with its points as :class:`SweepPoint` s."""
    m = read_json(Path(out_dir) / "sweep.json", what="sweep manifest")
    if not isinstance(m, dict) or m.get("format") != SWEEP_FORMAT:
        raise ConfigError(f"{str(out_dir)!r}/sweep.json is not a chainrule scaling sweep; "
                          "point at a directory made by `chainrule scale sweep`.")
    m["points"] = [SweepPoint.from_dict(p) for p in m["points"]]
    return m


def run_sweep(points: list[SweepPoint], data: SweepData, out_dir: Path, *,
              base: dict[str, Any] | None = None, lr_scale: float = 1.0, device: str = "auto",
              jobs: int = 1, threads: int | None = None) -> list[dict[str, Any]]:
    """Train every point not yet finished in ``out_dir/runs``; return every point's result."""
    todo = [p for p in points if not (out_dir / "runs" / p.name / RESULT).exists()]
    done = len(points) - len(todo)
    if done:
        log.info(f"sweep: {done} of {len(points)} runs already finished; running {len(todo)}")
    if jobs > 1 and len(todo) > 1:
        _run_parallel(todo, out_dir, base, lr_scale, device, jobs, threads)
    else:
        for i, p in enumerate(todo):
            r = run_point(p, data, out_dir / "runs" / p.name, base=base, lr_scale=lr_scale,
                          device=device)
            _log_result(r, done + i + 1, len(points))
    return load_results(out_dir, points)


def _log_result(r: dict[str, Any], i: int, n: int) -> None:
    loss = (f"val {r['val_loss']:.4f} nats/token ({r['bpb']:.3f} bits/byte)"
            if r["status"] == "ok" else "DIVERGED")
    log.info(f"[{i}/{n}] {r['name']}: N={r['N']:,} D={r['D']:,} C={r['C']:.3g} "
             f"lr={r['learning_rate']:.2e}: {loss} in {r['seconds']:.0f} s")


def _devices(device: str, jobs: int) -> list[str]:
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return [f"cuda:{i % torch.cuda.device_count()}" for i in range(jobs)]
    return [device] * jobs


_WORKER_DEVICE: str | None = None  # the device a worker process was given


def _init_worker(devices, threads: int) -> None:
    global _WORKER_DEVICE
    import torch

    _WORKER_DEVICE = devices.get()  # one device per worker process, for its lifetime
    torch.set_num_threads(threads)


def _worker(args: tuple) -> dict[str, Any]:
    point, out_dir, base, lr_scale = args
    m = read_manifest(out_dir)
    data = prepare_corpus([Path(c) for c in m["corpus"]], out_dir, m["tokenizer_kind"])
    return run_point(point, data, out_dir / "runs" / point.name, base=base,
                     lr_scale=lr_scale, device=_WORKER_DEVICE or "auto")


def _run_parallel(todo: list[SweepPoint], out_dir: Path, base, lr_scale: float, device: str,
                  jobs: int, threads: int | None) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")
    devices = ctx.Queue()
    for d in _devices(device, jobs):
        devices.put(d)
    # biggest first, so the long runs start early and the small ones fill the gaps
    order = sorted(todo, key=lambda p: -p.n_layer * p.n_embd ** 2 * p.tokens)
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(devices, threads or 1)) as pool:
        futures = [pool.submit(_worker, (p, out_dir, base, lr_scale)) for p in order]
        for i, f in enumerate(as_completed(futures)):
            _log_result(f.result(), i + 1, len(order))


def load_results(out_dir: str | Path, points: list[SweepPoint] | None = None
                 ) -> list[dict[str, Any]]:
    """Every finished run's result in ``out_dir`` (only ``points``' when given)."""
    runs = Path(out_dir) / "runs"
    names = None if points is None else {p.name for p in points}
    out = []
    for f in sorted(runs.glob(f"*/{RESULT}")) if runs.exists() else []:
        if names is None or f.parent.name in names:
            out.append(read_json(f, what="run result"))
    return out


__all__ = ["SweepData", "bits_per_byte", "load_results", "prepare_corpus", "read_manifest",
           "run_point", "run_sweep", "write_manifest"]
