"""chainrule: language models of every generation behind one interface.

A language model is the chain rule, P(w1 ... wn) = prod_t P(wt | w<t). Every model family in
chainrule answers one question -- the log-probability of each next token given its left
context -- and evaluation, decoding and the command line are written once against that.
"""

__version__ = "0.1.0"

from chainrule.api import LoadedModel, load
from chainrule.errors import ChainruleError
from chainrule.models.base import LanguageModel, load_model, register_family

__all__ = [
    "ChainruleError",
    "LanguageModel",
    "LoadedModel",
    "__version__",
    "load",
    "load_model",
    "register_family",
]
