"""Model families. Each family lives in its own module and registers itself on import."""

from chainrule.models.base import LanguageModel, known_families, load_model, register_family

__all__ = ["LanguageModel", "known_families", "load_model", "register_family"]
