"""chainrule: language models of every generation behind one interface.

A language model is the chain rule, P(w1 ... wn) = prod_t P(wt | w<t). Every model family in
chainrule answers one question -- the log-probability of each next token given its left
context -- and evaluation, decoding and the command line are written once against that.

``import chainrule`` is light: the names below (and subpackages such as ``chainrule.models``)
are imported on first use, so a command that needs no neural network never loads torch.
"""

import importlib as _importlib
import typing as _typing

__version__ = "0.1.0"

# public name -> the module that defines it (imported when the name is first used)
_LAZY = {
    "ChainruleError": "chainrule.errors",
    "LanguageModel": "chainrule.models.base",
    "LoadedModel": "chainrule.api",
    "load": "chainrule.api",
    "load_model": "chainrule.models.base",
    "register_family": "chainrule.models.base",
}

if _typing.TYPE_CHECKING:
    from chainrule.api import LoadedModel, load
    from chainrule.errors import ChainruleError
    from chainrule.models.base import LanguageModel, load_model, register_family


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    try:  # a subpackage, e.g. chainrule.models after a bare `import chainrule`
        return _importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module 'chainrule' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "ChainruleError",
    "LanguageModel",
    "LoadedModel",
    "__version__",
    "load",
    "load_model",
    "register_family",
]
