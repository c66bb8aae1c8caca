"""Corpora: readers, splits and the tokenised-corpus cache."""

from chainrule.data.readers import iter_lines, read_text

__all__ = ["iter_lines", "read_text"]
