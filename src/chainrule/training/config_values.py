"""The parts of a training configuration that need no ``TrainConfig``: the neural families'
config classes (from the one registry), typing a value (from TOML or from ``KEY=VALUE`` text)
and reading the presets shipped in ``chainrule/presets/NAME.toml`` (as data, never executed).
:mod:`chainrule.training.config` builds on these and re-exports them.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

from chainrule.errors import ConfigError

_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
_FROM_TOKENIZER = ("vocab_size", "bos_id", "eos_id")  # the tokenizer decides these


def model_config_class(family: str) -> type:
    """The config dataclass of neural family ``family`` (from the one registry)."""
    from chainrule.models.base import families, get_family

    names = [f.name for f in families(trainer="neural")]
    if family not in names:
        raise ConfigError(f"family must be one of {', '.join(names)}, not {family!r}")
    return get_family(family).config_class


def neural_family_names() -> list[str]:
    from chainrule.models.base import families

    return [f.name for f in families(trainer="neural")]


def _typed(name: str, value: Any, typ: type) -> tuple[Any, str | None]:
    """``value`` as ``typ`` (an int is a fine float) and None, or ``value`` and a problem."""
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value), None
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        return value, f"{name} must be {_TYPE_WORDS[typ]}, not {value!r}"
    return value, None


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


# -- presets and KEY=VALUE text ----------------------------------------------------------------
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


__all__ = ["load_preset", "model_config_class", "neural_family_names", "preset_names"]
