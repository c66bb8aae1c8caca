"""Model families. Each family lives in its own module and registers itself on import."""

from chainrule.models.base import (
    Generator,
    LanguageModel,
    Model,
    Scorer,
    Source,
    families,
    get_family,
    known_families,
    load_model,
    register_family,
)

__all__ = ["Generator", "LanguageModel", "Model", "Scorer", "Source", "families", "get_family",
           "known_families", "load_model", "register_family"]
