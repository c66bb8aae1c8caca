"""Reusable test helpers: the conformance suite every model family must pass."""
