"""The training configuration: one frozen dataclass, presets as TOML data, KEY=VALUE overrides.

Names follow nanoGPT's wherever it has one (``max_iters``, ``eval_interval``, ``batch_size``,
``block_size``, ``n_layer``, ...), so users coming from it feel at home. The model's own
settings are not repeated here: every field of the family's config class (the registry knows
it: :func:`chainrule.models.base.get_family`) is a key too (``n_layer``, ``rope_theta``,
``layer_norm_eps``, ...), with that class's defaults, and is kept in ``TrainConfig.model``.
``block_size`` is both the training window and, for a family that has one, the model's
context, unless ``model`` sets the latter itself. A preset is a flat TOML
table of these keys shipped in ``chainrule/presets/NAME.toml``; it is read as data, never
executed. Every problem in a configuration (unknown keys, wrong types, out-of-range values) is
collected and reported together in one :class:`~chainrule.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, fields
from typing import Any

from chainrule.errors import ConfigError
from chainrule.training.config_values import (
    _FROM_TOKENIZER,
    _TYPE_WORDS,
    _TYPES,
    _parse_value,
    _typed,
    load_preset,
    model_config_class,
    neural_family_names,
    preset_names,
)

TOKENIZER_KINDS = ("char", "word", "bpe", "bytebpe")


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run. Validated on construction (all problems at once)."""

    # -- model ------------------------------------------------------------------------------
    family: str = "gpt"  # which neural family (see `chainrule train --help` for the list)
    model: dict = dataclasses.field(default_factory=dict)  # the model's settings (KEY=VALUE)
    # -- data -------------------------------------------------------------------------------
    block_size: int = 64  # tokens per training window (the BPTT length for rnn/lstm)
    batch_size: int = 12  # windows per micro-batch, per process
    val_fraction: float = 0.1  # last fraction of the corpus held out when no val_data is given
    val_data: str = ""  # a separate validation corpus file (empty: split off val_fraction)
    boundaries: str = "none"  # "none": the text is one stream; "lines": <s> line </s> per line
    # gpt: each sentence of a window trains as it is scored, from its <s> (data.bos_segments)
    mask_at_bos: bool = False  # gpt: attend back only to the last <s>; positions restart there
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
    dtype: str = "auto"  # auto (bf16 on a CUDA GPU), float32, bfloat16, bfloat16-if-native
    compile: bool = False  # wrap the model in torch.compile
    strategy: str = "ddp"  # under torchrun: ddp (whole model per process) or fsdp (sharded)

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

    def to_flat(self) -> dict[str, Any]:
        """Training keys and the model's own keys side by side (how presets spell them)."""
        flat = self.to_dict()
        return {**{k: v for k, v in flat.items() if k != "model"}, **flat["model"]}

    def model_settings(self) -> dict[str, Any]:
        """The model's settings: its config class's defaults, ``block_size`` of training
        where the family has one, then ``model`` (without vocab_size / bos_id / eos_id)."""
        cls = model_config_class(self.family)
        out = {f.name: f.default for f in fields(cls) if f.name not in _FROM_TOKENIZER}
        if "block_size" in out:
            out["block_size"] = self.block_size
        out.update(self.model)
        return out

    def __getattr__(self, name: str) -> Any:
        # cfg.n_layer and friends read the model's settings (dataclass fields never get here)
        if name.startswith("_") or name in ("family", "model"):
            raise AttributeError(name)
        settings = self.model_settings()
        if name in settings:
            return settings[name]
        raise AttributeError(f"TrainConfig has no field or model setting {name!r}")

    @property
    def tokens_per_step(self) -> int:
        """Tokens in one optimiser step over all processes (the global batch)."""
        return self.batch_size * self.block_size * self.gradient_accumulation_steps


def _field_types() -> dict[str, type]:
    return {f.name: _TYPES[f.type] for f in fields(TrainConfig) if f.name != "model"}


#: The training keys (not the model's) and their types.
FIELD_TYPES = _field_types()


def model_key_types(family: str) -> dict[str, type]:
    """The model's keys of ``family`` and their types (every config-class field)."""
    return {f.name: _TYPES[f.type] for f in fields(model_config_class(family))
            if f.name not in _FROM_TOKENIZER and f.name not in FIELD_TYPES and f.type in _TYPES}


def _type_problems(cfg: TrainConfig) -> list[str]:
    problems = []
    if not isinstance(cfg.model, dict):
        return [f"model must be a table of the model's settings, not {cfg.model!r}"]
    for name, typ in FIELD_TYPES.items():
        value, problem = _typed(name, getattr(cfg, name), typ)
        object.__setattr__(cfg, name, value)
        if problem:
            problems.append(problem)
    return problems


def _value_problems(c: TrainConfig) -> list[str]:
    p = []
    names = neural_family_names()
    if c.family not in names:
        return [f"family must be one of {', '.join(names)}, not {c.family!r}"]
    positive = ["block_size", "batch_size", "gradient_accumulation_steps", "eval_interval",
                "eval_iters", "log_interval"]
    for name in positive:
        if getattr(c, name) < 1:
            p.append(f"{name} must be at least 1, not {getattr(c, name)}")
    for name in ["vocab_size", "min_count", "patience", "warmup_iters",
                 "lr_decay_iters", "max_iters"]:
        if getattr(c, name) < 0:
            p.append(f"{name} must not be negative, not {getattr(c, name)}")
    for name in ["learning_rate", "min_lr", "weight_decay", "grad_clip"]:
        v = getattr(c, name)
        if not math.isfinite(v) or v < 0:
            p.append(f"{name} must be a finite number >= 0, not {v}")
    for name in ["beta1", "beta2"]:
        v = getattr(c, name)
        if not 0 <= v < 1:
            p.append(f"{name} must be in [0, 1), not {v}")
    if not 0 <= c.val_fraction < 1:
        p.append(f"val_fraction must be in [0, 1), not {c.val_fraction}")
    p += _model_problems(c)
    if c.boundaries not in ("none", "lines"):
        p.append(f"boundaries must be 'none' or 'lines', not {c.boundaries!r}")
    if c.tokenizer_kind not in TOKENIZER_KINDS:
        p.append(f"tokenizer_kind must be one of {', '.join(TOKENIZER_KINDS)}, "
                 f"not {c.tokenizer_kind!r}")
    if c.dtype not in ("auto", "float32", "bfloat16", "bfloat16-if-native"):
        p.append(f"dtype must be auto, float32, bfloat16 or bfloat16-if-native, not {c.dtype!r}")
    if not (c.device in ("auto", "cpu", "cuda") or c.device.startswith("cuda:")):
        p.append(f"device must be auto, cpu, cuda or cuda:N, not {c.device!r}")
    if c.strategy not in ("ddp", "fsdp"):
        p.append(f"strategy must be ddp or fsdp, not {c.strategy!r}")
    return p


def _model_problems(c: TrainConfig) -> list[str]:
    """Unknown model keys, wrong types, then whatever the family's config class refuses."""
    types = model_key_types(c.family)
    p = []
    for key, value in c.model.items():
        if key not in types:
            p.append(_unknown_key(key, c.family))
            continue
        c.model[key], problem = _typed(key, value, types[key])
        if problem:
            p.append(problem)
    if p:
        return p
    try:  # the family's own validation, with a stand-in vocabulary
        model_config_class(c.family)(vocab_size=1 << 16, **c.model_settings())
    except ConfigError as e:
        p += [q.rstrip(".") for q in e.problems]
    return p


# -- presets and overrides ---------------------------------------------------------------------
def parse_overrides(items: list[str], family: str | None = None) -> dict[str, Any]:
    """Turn ``["max_iters=100", "bias=true"]`` into typed values, collecting every problem.

    Training keys and the model's keys (of ``family``, or of any neural family) both parse.

    >>> parse_overrides(["max_iters=100", "learning_rate=3e-4", "bias=true"])
    {'max_iters': 100, 'learning_rate': 0.0003, 'bias': True}
    """
    out, problems = _parse_overrides(items, family)
    if problems:
        raise ConfigError(problems)
    return out


def _key_types(family: str | None) -> dict[str, type]:
    """Training keys, then the model keys of ``family`` (or of every neural family)."""
    types: dict[str, type] = {}
    names = neural_family_names()
    for fam in ([family] if family in names else names):
        types.update(model_key_types(fam))
    return {**types, **FIELD_TYPES}


def _parse_overrides(items: list[str], family: str | None = None
                     ) -> tuple[dict[str, Any], list[str]]:
    types = _key_types(family)
    out: dict[str, Any] = {}
    problems: list[str] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"{item!r} is not KEY=VALUE")
            continue
        if key not in types:
            problems.append(_unknown_key(key, family))
            continue
        try:
            out[key] = _parse_value(types[key], raw.strip())
        except ValueError:
            problems.append(f"{key} must be {_TYPE_WORDS[types[key]]}, not {raw!r}")
    return out, problems


def _unknown_key(key: str, family: str | None = None) -> str:
    types = _key_types(family)
    close = difflib.get_close_matches(key, types, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    model = (f"; the {family} model's keys: {', '.join(model_key_types(family))}"
             if family in neural_family_names() else "")
    return f"unknown key {key!r}{hint}; valid keys: {', '.join(FIELD_TYPES)}{model}"


def make_config(
    family: str | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> TrainConfig:
    """Build a :class:`TrainConfig`: defaults < ``base`` < preset < overrides < ``family``.

    Keys may be training keys or the family's model keys (flat, as in presets); model keys
    go to ``TrainConfig.model``.

    Args:
        family: the family asked for on the command line; a preset made for another family is
            refused.
        preset: name of a shipped preset, or None.
        overrides: ``KEY=VALUE`` strings or an already-typed dict.
        base: values to start from (a resumed run's saved configuration: flat, or with a
            ``model`` table).
    """
    values: dict[str, Any] = {}
    model: dict[str, Any] = {}

    def take(table: dict[str, Any]) -> None:
        for k, v in table.items():
            if k == "model" and isinstance(v, dict):
                model.update(v)
            elif k in FIELD_TYPES:
                values[k] = v
            else:
                model[k] = v

    take(dict(base or {}))
    problems: list[str] = []
    if preset is not None:
        table = load_preset(preset)
        pfam = table.get("family")
        if family is not None and pfam is not None and pfam != family:
            problems.append(f"preset {preset!r} is made for --family {pfam}, not {family}; "
                            "pick a preset for that family or none")
        take(table)
    fam = family or values.get("family") or TrainConfig.family
    if isinstance(overrides, list):
        overrides, bad = _parse_overrides(overrides, fam)
        problems.extend(bad)
    if family is not None and (overrides or {}).get("family", family) != family:
        problems.append(f"family={overrides['family']} contradicts --family {family}; give "
                        "the family once")
    planned_max = values.get("max_iters", TrainConfig.max_iters)  # what the schedule was made for
    take(overrides or {})
    if base is None:  # a resumed run keeps the schedule it started with
        _follow_max_iters(values, planned_max, overrides or {}, problems)
    if family is not None:
        values["family"] = family
    try:
        cfg = TrainConfig(**values, model=model)
    except ConfigError as e:
        raise ConfigError(problems + [q for q in e.problems if q not in problems]) from None
    if problems:
        raise ConfigError(problems)
    return cfg


SCHEDULE_KEYS = ("warmup_iters", "lr_decay_iters", "eval_interval")


def _follow_max_iters(values: dict[str, Any], planned_max: int, overrides: dict[str, Any],
                      problems: list[str]) -> None:
    """When ``max_iters`` is overridden, the schedule keys the user did not set scale with it.

    A preset (or the defaults) plans warm-up, decay and evaluation for its own ``max_iters``;
    ``max_iters=200`` on a 2,000-step preset then warms up for 10 steps, decays to step 200 and
    evaluates every 25 steps, instead of spending half the run warming up and never decaying.
    A schedule the user sets explicitly that cannot fit the run is refused.
    """
    new = overrides.get("max_iters")
    if not isinstance(new, int) or isinstance(new, bool) or new < 1 or planned_max < 1:
        return
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for key in SCHEDULE_KEYS:
        old = values.get(key, defaults[key])
        if key not in overrides and isinstance(old, int) and not isinstance(old, bool):
            values[key] = max(1 if key == "eval_interval" else 0,
                              round(old * new / planned_max))
    warm, decay = values.get("warmup_iters", 0), values.get("lr_decay_iters", new)
    explicit = "warmup_iters" in overrides or "lr_decay_iters" in overrides
    if explicit and isinstance(warm, int) and isinstance(decay, int) and warm > decay:
        problems.append(f"warmup_iters={warm} ends after the decay does (lr_decay_iters="
                        f"{decay}, for max_iters={new}); lower warmup_iters or raise "
                        "lr_decay_iters")


def schedule_text(cfg: TrainConfig) -> str:
    """The schedule a run uses, in one line (the CLI prints it)."""
    return (f"schedule: {cfg.max_iters} steps, warm-up {cfg.warmup_iters}, cosine decay to "
            f"step {cfg.lr_decay_iters} (lr {cfg.learning_rate:g} -> {cfg.min_lr:g}), "
            f"evaluation every {cfg.eval_interval} steps")


def describe_keys(family: str | None = None) -> str:
    """One line per training key with its default and comment, then each family's model keys."""
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
        if f.name == "model":
            continue
        default = str(f.default).lower() if isinstance(f.default, bool) else str(f.default)
        lines.append(f"  {f.name}={default}".ljust(36) + comments.get(f.name, ""))
    for fam in ([family] if family else neural_family_names()):
        cls = model_config_class(fam)
        keys = [f"{f.name}={str(f.default).lower() if isinstance(f.default, bool) else f.default}"
                for f in fields(cls) if f.name in model_key_types(fam)]
        lines.append(f"\n  model keys of {fam} ({cls.__name__}): " + ", ".join(keys))
    return "\n".join(lines)


__all__ = [
    "FIELD_TYPES",
    "SCHEDULE_KEYS",
    "TrainConfig",
    "describe_keys",
    "load_preset",
    "make_config",
    "model_config_class",
    "model_key_types",
    "parse_overrides",
    "preset_names",
    "schedule_text",
]
