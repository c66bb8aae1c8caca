"""Checkpoints: everything needed to continue a run exactly, as safetensors + JSON (no pickle).

A model directory written by the training engine::

    MODEL_DIR/
      config.json  model.safetensors  tokenizer.json   the best model so far (what eval loads)
      metrics.jsonl  loss.png  train_state.json         history, and a summary of the run
      last/                                             the latest state, for --resume:
        config.json  model.safetensors  tokenizer.json
        optimizer.safetensors    AdamW moments and step counts ("state.<param>.<name>")
        train_state.json         step, best val loss, config, param groups, RNG scalars
        rng_state.safetensors    torch CPU/CUDA generator states, numpy's key array,
                                 and the recurrent state carried between batches

``last/`` is replaced atomically: written to ``last.tmp``, then swapped in by two renames;
a crash between them leaves ``last.old``, which :func:`find_checkpoint` falls back to.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chainrule.errors import ModelFormatError
from chainrule.fileio import read_json, read_safetensors, write_json, write_safetensors

CHECKPOINT_FORMAT = "chainrule-train-state"
CHECKPOINT_FORMAT_VERSION = 1


# -- nested tensors (optimizer state, carried hidden states) <-> flat safetensors dicts ---------
def flatten_tensors(obj: Any, prefix: str, out: dict[str, torch.Tensor]) -> Any:
    """Put every tensor of a nested tuple/list structure into ``out``; return a JSON spec."""
    if obj is None:
        return None
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
        return "tensor"
    if isinstance(obj, (tuple, list)):
        return {"seq": type(obj).__name__,
                "items": [flatten_tensors(v, f"{prefix}.{i}", out) for i, v in enumerate(obj)]}
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint")


def unflatten_tensors(spec: Any, prefix: str, tensors: dict[str, torch.Tensor],
                      device: torch.device | str = "cpu") -> Any:
    if spec is None:
        return None
    if spec == "tensor":
        return tensors[prefix].to(device)
    items = [unflatten_tensors(s, f"{prefix}.{i}", tensors, device)
             for i, s in enumerate(spec["items"])]
    return tuple(items) if spec["seq"] == "tuple" else items


# -- optimizer --------------------------------------------------------------------------------
def optimizer_to_files(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for name, v in st.items():
            tensors[f"state.{pid}.{name}"] = v if torch.is_tensor(v) else torch.tensor(v)
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in sd["param_groups"]]
    return tensors, groups


def optimizer_from_files(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                         groups: list) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = v
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in groups]
    opt.load_state_dict({"state": state, "param_groups": groups})


# -- random number generators -----------------------------------------------------------------
def rng_to_files() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda.{i}"] = s
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.uint32).view(np.int32))
    version, internal, gauss_next = random.getstate()
    scalars = {"numpy": [name, int(pos), int(has_gauss), float(gauss)],
               "python": [version, list(internal), gauss_next]}
    return tensors, scalars


def rng_from_files(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    name, pos, has_gauss, gauss = scalars["numpy"]
    keys = tensors["numpy_keys"].numpy().view(np.uint32)
    np.random.set_state((name, keys, pos, has_gauss, gauss))
    version, internal, gauss_next = scalars["python"]
    random.setstate((version, tuple(internal), gauss_next))


# -- the checkpoint directory -----------------------------------------------------------------
def save_checkpoint(out_dir: Path, model, optimizer: torch.optim.Optimizer, tokenizer,
                    state: dict[str, Any], carried: Any = None) -> Path:
    """Write ``out_dir/last`` atomically and return it.

    Args:
        model: the bare model (not wrapped in DDP or torch.compile); it writes config.json and
            model.safetensors itself.
        state: JSON-serialisable scalars (step, best val loss, config, ...).
        carried: recurrent states carried between batches (nested tuples of tensors) or None.
    """
    out_dir = Path(out_dir)
    tmp, last, old = out_dir / "last.tmp", out_dir / "last", out_dir / "last.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save(tmp)
    if tokenizer is not None:
        tokenizer.save(tmp / "tokenizer.json")
    opt_tensors, groups = optimizer_to_files(optimizer)
    write_safetensors(tmp / "optimizer.safetensors", opt_tensors)
    rng_tensors, rng_scalars = rng_to_files()
    carried_spec = flatten_tensors(carried, "carried", rng_tensors)
    write_safetensors(tmp / "rng_state.safetensors", rng_tensors)
    write_json(tmp / "train_state.json", {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        **state,
        "param_groups": groups,
        "rng": rng_scalars,
        "carried": carried_spec,
    })
    _fsync_dir(tmp)
    if last.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(last, old)
    os.replace(tmp, last)
    _fsync_dir(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return last


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def find_checkpoint(out_dir: Path) -> Path | None:
    """The resumable checkpoint in ``out_dir`` (``last``, or ``last.old`` after a crash)."""
    for name in ("last", "last.old"):
        p = Path(out_dir) / name
        if (p / "train_state.json").exists():
            return p
    return None


def read_train_state(ckpt: Path, family: str | None = None) -> dict[str, Any]:
    """Read and check ``train_state.json`` of a checkpoint (format, version, family)."""
    state = read_json(ckpt / "train_state.json", what="training state")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ModelFormatError(f"{str(ckpt)!r} is not a chainrule training checkpoint; "
                               "start a new run without --resume.")
    version = state.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise ModelFormatError(
            f"{str(ckpt)!r} has checkpoint format version {version!r}, but this chainrule "
            f"resumes version {CHECKPOINT_FORMAT_VERSION}; resume it with the chainrule that "
            "wrote it, or start a new run.")
    if family is not None and state.get("family") != family:
        raise ModelFormatError(
            f"{str(ckpt)!r} is a checkpoint of a {state.get('family')!r} model, not {family!r}; "
            f"resume with --family {state.get('family')} or start a new run in another -o.")
    _check_state_fields(ckpt, state)
    return state


# the fields a resume reads, and their JSON types (bool is not an int here)
_STATE_FIELDS = {"step": int, "best_step": int, "evals_without_improvement": int,
                 "best_val_loss": (int, float, type(None)), "param_groups": list, "rng": dict}


def _check_state_fields(ckpt: Path, state: dict[str, Any]) -> None:
    for key, kind in _STATE_FIELDS.items():
        value = state.get(key, ...)
        if value is ... or isinstance(value, bool) or not isinstance(value, kind):
            what = "is missing" if value is ... else f"is {value!r}"
            raise ModelFormatError(
                f"{str(ckpt / 'train_state.json')!r}: the field {key!r} {what}; the checkpoint is "
                "corrupt or was edited: start a new run, or resume from an intact copy.")
    if state["step"] < 0:
        raise ModelFormatError(f"{str(ckpt / 'train_state.json')!r}: the field 'step' is "
                               f"{state['step']}; the checkpoint is corrupt: start a new run.")


def load_checkpoint(ckpt: Path, model, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any], device: torch.device) -> Any:
    """Restore weights, optimizer and RNG states from ``ckpt``; return the carried state."""
    from safetensors.torch import load_model

    try:
        load_model(model, str(ckpt / "model.safetensors"), strict=True, device=str(device))
    except (RuntimeError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFormatError(
            f"the weights in {str(ckpt)!r} do not fit this model ({first}); resume with the "
            "configuration that wrote the checkpoint.") from None
    try:
        optimizer_from_files(optimizer, read_safetensors(ckpt / "optimizer.safetensors"),
                             state["param_groups"])
    except (KeyError, ValueError, RuntimeError) as e:
        raise ModelFormatError(f"the optimizer state in {str(ckpt)!r} does not fit this model "
                               f"({e}); the checkpoint is corrupt or of another model.") from None
    rng = read_safetensors(ckpt / "rng_state.safetensors")
    rng_from_files(rng, state["rng"])
    return unflatten_tensors(state.get("carried"), "carried", rng, device)


def publish_best(out_dir: Path, ckpt: Path) -> None:
    """Copy the model files of ``ckpt`` to the top of ``out_dir`` (each file atomically)."""
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        src = ckpt / name
        if src.exists():
            tmp = out_dir / f".{name}.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, out_dir / name)


#: what a training run writes into its directory (the token cache ``data/`` is kept)
_RUN_FILES = ("last", "last.old", "last.tmp", "metrics.jsonl", "train_state.json", "loss.png",
              "model.safetensors", "config.json", "tokenizer.json", "source_tokenizer.json")


def remove_run(out_dir: Path) -> None:
    """Remove a run's files from ``out_dir`` so that a new run starts over there."""
    for name in _RUN_FILES:
        p = out_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "find_checkpoint",
    "load_checkpoint",
    "publish_best",
    "read_train_state",
    "remove_run",
    "save_checkpoint",
]
