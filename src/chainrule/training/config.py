"""The training configuration: one frozen dataclass, presets as TOML data, KEY=VALUE overrides.

Names follow nanoGPT's wherever it has one (``max_iters``, ``eval_interval``, ``batch_size``,
``block_size``, ``n_layer``, ...), so users coming from it feel at home. A preset is a flat TOML
table of these keys shipped in ``chainrule/presets/NAME.toml``; it is read as data, never
executed. Every problem in a configuration (unknown keys, wrong types, out-of-range values) is
collected and reported together in one :class:`~chainrule.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from typing import Any

from chainrule.errors import ConfigError

NEURAL_FAMILIES = ("ffnn", "rnn", "lstm", "gpt")
TOKENIZER_KINDS = ("char", "word", "bpe", "bytebpe")


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run. Validated on construction (all problems at once)."""

    # -- model ------------------------------------------------------------------------------
    family: str = "gpt"  # which neural family: ffnn, rnn, lstm or gpt
    n_layer: int = 4  # layers: transformer blocks, or stacked recurrent layers
    n_head: int = 4  # attention heads (gpt)
    n_embd: int = 128  # embedding width (and transformer width)
    n_hidden: int = 0  # hidden width of ffnn/rnn/lstm; 0 means "same as n_embd"
    order: int = 5  # ffnn: n of the n-gram window (it sees the n-1 previous tokens)
    dropout: float = 0.0  # dropout probability during training
    bias: bool = False  # biases in Linear and LayerNorm layers (gpt)
    positions: str = "learned"  # gpt: "learned" position embeddings or "rotary" (RoPE)
    tie_weights: bool = True  # rnn/lstm/gpt: share the input embedding with the output layer
    direct: bool = False  # ffnn: Bengio's direct embedding-to-output connections
    nonlinearity: str = "tanh"  # rnn: "tanh" (Elman) or "relu"
    # -- data -------------------------------------------------------------------------------
    block_size: int = 64  # tokens per training window (the BPTT length for rnn/lstm)
    batch_size: int = 12  # windows per micro-batch, per process
    val_fraction: float = 0.1  # last fraction of the corpus held out when no val_data is given
    val_data: str = ""  # a separate validation corpus file (empty: split off val_fraction)
    boundaries: str = "none"  # "none": the text is one stream; "lines": <s> line </s> per line
    tokenizer_kind: str = "char"  # kind of tokenizer trained when no --tokenizer is given
    vocab_size: int = 0  # vocabulary size of a trained tokenizer (0: the kind's default)
    min_count: int = 0  # word tokenizer: words seen fewer times become <unk> (0: default)
    # -- optimisation (AdamW, warmup then cosine decay) --------------------------------------
    max_iters: int = 2000  # optimiser steps in total
    learning_rate: float = 1e-3  # peak learning rate
    weight_decay: float = 0.1  # AdamW decay, applied to matrices only (not biases, norms)
    beta1: float = 0.9  # AdamW first-moment decay
    beta2: float = 0.99  # AdamW second-moment decay
    grad_clip: float = 1.0  # clip the global gradient norm to this (0: no clipping)
    decay_lr: bool = True  # cosine decay after warmup (False: constant learning_rate)
    warmup_iters: int = 100  # linear warmup steps
    lr_decay_iters: int = 2000  # step at which the cosine reaches min_lr
    min_lr: float = 1e-4  # learning rate floor
    gradient_accumulation_steps: int = 1  # micro-batches per step, summed over all processes
    # -- evaluation, logging, checkpoints ----------------------------------------------------
    eval_interval: int = 250  # evaluate (and checkpoint) every this many steps
    eval_iters: int = 200  # batches per split in each evaluation
    log_interval: int = 10  # steps between progress/metrics lines
    patience: int = 0  # stop after this many evaluations without improvement (0: never)
    # -- runtime ----------------------------------------------------------------------------
    seed: int = 1337  # seeds weights, dropout and batch sampling
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    dtype: str = "auto"  # auto (bf16 autocast on CUDA if supported), float32 or bfloat16
    compile: bool = False  # wrap the model in torch.compile

    def __post_init__(self) -> None:
        problems = _type_problems(self)
        try:
            problems += _value_problems(self)
        except TypeError:  # a value of the wrong type; already reported above
            pass
        if problems:
            raise ConfigError(problems)

    # -- conveniences ------------------------------------------------------------------------
    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def tokens_per_step(self) -> int:
        """Tokens in one optimiser step over all processes (the global batch)."""
        return self.batch_size * self.block_size * self.gradient_accumulation_steps


def _field_types() -> dict[str, type]:
    names = {"int": int, "float": float, "bool": bool, "str": str}
    return {f.name: names[f.type] for f in fields(TrainConfig)}


FIELD_TYPES = _field_types()


def _type_problems(cfg: TrainConfig) -> list[str]:
    problems = []
    for name, typ in FIELD_TYPES.items():
        value = getattr(cfg, name)
        ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(cfg, name, float(value))  # 1 is a fine float
            ok = True
        if not ok:
            problems.append(f"{name} must be {_TYPE_WORDS[typ]}, not {value!r}")
    return problems


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _value_problems(c: TrainConfig) -> list[str]:
    p = []
    if c.family not in NEURAL_FAMILIES:
        p.append(f"family must be one of {', '.join(NEURAL_FAMILIES)}, not {c.family!r}")
    positive = ["n_layer", "n_head", "n_embd", "block_size", "batch_size",
                "gradient_accumulation_steps", "eval_interval", "eval_iters", "log_interval"]
    for name in positive:
        if getattr(c, name) < 1:
            p.append(f"{name} must be at least 1, not {getattr(c, name)}")
    for name in ["n_hidden", "vocab_size", "min_count", "patience", "warmup_iters",
                 "lr_decay_iters", "max_iters"]:
        if getattr(c, name) < 0:
            p.append(f"{name} must not be negative, not {getattr(c, name)}")
    for name in ["learning_rate", "min_lr", "weight_decay", "grad_clip"]:
        v = getattr(c, name)
        if not math.isfinite(v) or v < 0:
            p.append(f"{name} must be a finite number >= 0, not {v}")
    for name in ["dropout", "beta1", "beta2"]:
        v = getattr(c, name)
        if not 0 <= v < 1:
            p.append(f"{name} must be in [0, 1), not {v}")
    if not 0 <= c.val_fraction < 1:
        p.append(f"val_fraction must be in [0, 1), not {c.val_fraction}")
    if c.family == "gpt" and c.n_head >= 1 and c.n_embd % c.n_head:
        p.append(f"n_embd ({c.n_embd}) must be divisible by n_head ({c.n_head})")
    if c.order < 2:
        p.append(f"order must be at least 2 (one token of context), not {c.order}")
    if c.positions not in ("learned", "rotary"):
        p.append(f"positions must be 'learned' or 'rotary', not {c.positions!r}")
    if c.nonlinearity not in ("tanh", "relu"):
        p.append(f"nonlinearity must be 'tanh' or 'relu', not {c.nonlinearity!r}")
    if c.boundaries not in ("none", "lines"):
        p.append(f"boundaries must be 'none' or 'lines', not {c.boundaries!r}")
    if c.tokenizer_kind not in TOKENIZER_KINDS:
        p.append(f"tokenizer_kind must be one of {', '.join(TOKENIZER_KINDS)}, "
                 f"not {c.tokenizer_kind!r}")
    if c.dtype not in ("auto", "float32", "bfloat16"):
        p.append(f"dtype must be auto, float32 or bfloat16, not {c.dtype!r}")
    if not (c.device in ("auto", "cpu", "cuda") or c.device.startswith("cuda:")):
        p.append(f"device must be auto, cpu, cuda or cuda:N, not {c.device!r}")
    return p


# -- presets and overrides ---------------------------------------------------------------------
def preset_names() -> list[str]:
    """Names of the presets shipped with chainrule."""
    root = resources.files("chainrule") / "presets"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> dict[str, Any]:
    """The key/value table of preset ``name`` (read as TOML data)."""
    names = preset_names()
    if name not in names:
        raise ConfigError(f"unknown preset {name!r}; available presets: {', '.join(names)}.")
    text = (resources.files("chainrule") / "presets" / f"{name}.toml").read_text("utf-8")
    return tomllib.loads(text)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn ``["max_iters=100", "bias=true"]`` into typed values, collecting every problem.

    >>> parse_overrides(["max_iters=100", "learning_rate=3e-4", "bias=true"])
    {'max_iters': 100, 'learning_rate': 0.0003, 'bias': True}
    """
    out, problems = _parse_overrides(items)
    if problems:
        raise ConfigError(problems)
    return out


def _parse_overrides(items: list[str]) -> tuple[dict[str, Any], list[str]]:
    out: dict[str, Any] = {}
    problems: list[str] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"{item!r} is not KEY=VALUE")
            continue
        if key not in FIELD_TYPES:
            problems.append(_unknown_key(key))
            continue
        try:
            out[key] = _parse_value(FIELD_TYPES[key], raw.strip())
        except ValueError:
            problems.append(f"{key} must be {_TYPE_WORDS[FIELD_TYPES[key]]}, not {raw!r}")
    return out, problems


def _parse_value(typ: type, raw: str) -> Any:
    if typ is bool:
        low = raw.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ValueError(raw)
    if typ is int:
        f = float(raw)  # accept 5e3 as 5000
        if not f.is_integer():
            raise ValueError(raw)
        return int(f)
    if typ is float:
        return float(raw)
    return raw


def _unknown_key(key: str) -> str:
    close = difflib.get_close_matches(key, FIELD_TYPES, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown key {key!r}{hint}; valid keys: {', '.join(FIELD_TYPES)}"


def make_config(
    family: str | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> TrainConfig:
    """Build a :class:`TrainConfig`: defaults < ``base`` < preset < overrides < ``family``.

    Args:
        family: the family asked for on the command line; a preset made for another family is
            refused.
        preset: name of a shipped preset, or None.
        overrides: ``KEY=VALUE`` strings or an already-typed dict.
        base: values to start from (a resumed run's saved configuration).
    """
    values: dict[str, Any] = dict(base or {})
    problems: list[str] = []
    if preset is not None:
        table = load_preset(preset)
        for key in table:
            if key not in FIELD_TYPES:
                problems.append(f"preset {preset!r}: {_unknown_key(key)}")
        pfam = table.get("family")
        if family is not None and pfam is not None and pfam != family:
            problems.append(f"preset {preset!r} is made for --family {pfam}, not {family}; "
                            "pick a preset for that family or none")
        values.update({k: v for k, v in table.items() if k in FIELD_TYPES})
    if isinstance(overrides, list):
        overrides, bad = _parse_overrides(overrides)
        problems.extend(bad)
    values.update(overrides or {})
    if family is not None:
        values["family"] = family
    unknown = [k for k in values if k not in FIELD_TYPES]
    problems.extend(_unknown_key(k) for k in unknown)
    values = {k: v for k, v in values.items() if k in FIELD_TYPES}
    try:
        cfg = TrainConfig(**values)
    except ConfigError as e:
        raise ConfigError(problems + e.problems) from None
    if problems:
        raise ConfigError(problems)
    return cfg


def describe_keys() -> str:
    """One line per key with its default and comment, for ``--help``."""
    import inspect

    src = inspect.getsource(TrainConfig)
    comments: dict[str, str] = {}
    for line in src.splitlines():
        head, _, comment = line.partition("#")
        name = head.strip().split(":")[0]
        if name in FIELD_TYPES and comment:
            comments[name] = comment.strip()
    lines = []
    for f in fields(TrainConfig):
        default = str(f.default).lower() if isinstance(f.default, bool) else str(f.default)
        lines.append(f"  {f.name}={default}".ljust(36) + comments.get(f.name, ""))
    return "\n".join(lines)


__all__ = [
    "NEURAL_FAMILIES",
    "TrainConfig",
    "describe_keys",
    "load_preset",
    "make_config",
    "parse_overrides",
    "preset_names",
]
