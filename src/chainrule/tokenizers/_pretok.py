"""Pre-tokenisation shared by the Python reference and the compiled core.

* GPT-2's pattern splits text into pieces that BPE never merges across.
* Classic BPE splits on whitespace (Python's ``str.isspace``), as Sennrich et al. did.
* GPT-2's byte-to-unicode table gives every byte a printable character, so byte-level tokens
  can be stored as JSON strings.
"""

from __future__ import annotations

import array
import re
import sys
from functools import lru_cache

import regex

# GPT-2's pre-tokenisation pattern (contractions, letter runs, number runs, other runs, spaces).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT2_RE = regex.compile(GPT2_PATTERN)
# Every numeric character (\p{N}: what Hugging Face's ``Digits(individual_digits=True)`` and
# llama.cpp's ``smollm`` / ``starcoder`` pre-tokenisers isolate) as a piece of its own.
DIGIT_RE = regex.compile(r"\p{N}")


def digit_segments(text: str) -> list[str]:
    """``text`` cut into single numeric characters and the runs between them.

    Example: ``digit_segments("in 1984!") == ["in ", "1", "9", "8", "4", "!"]``. GPT-2's pattern
    then applies to each run on its own (so a run's trailing spaces end it, as at end of text).
    """
    out: list[str] = []
    pos = 0
    for m in DIGIT_RE.finditer(text):
        if m.start() > pos:
            out.append(text[pos : m.start()])
        out.append(m.group())
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table: byte -> a printable character (printable Latin-1 bytes map to themselves).

    Example: ``bytes_to_unicode()[ord(" ")] == "Ġ"`` and ``bytes_to_unicode()[ord("a")] == "a"``.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


@lru_cache(maxsize=1)
def _all_chars() -> tuple[array.array, str]:
    # Every code point except the surrogates, as one string (built via UTF-32 for speed).
    cps = array.array("I", [*range(0xD800), *range(0xE000, 0x110000)])
    assert cps.itemsize == 4
    return cps, cps.tobytes().decode("utf-32-le" if sys.byteorder == "little" else "utf-32-be")


def _ranges(pattern: regex.Pattern | re.Pattern) -> list[tuple[int, int]]:
    # Classified by the regex engine itself, so the compiled pre-tokeniser agrees with the
    # Python one by construction.
    cps, chars = _all_chars()
    return [(cps[m.start()], cps[m.end() - 1]) for m in pattern.finditer(chars)]


@lru_cache(maxsize=1)
def unicode_classes() -> dict[str, list[tuple[int, int]]]:
    """Inclusive code-point ranges of ``\\p{L}``, ``\\p{N}`` and ``\\s`` as the regex module sees them."""
    return {
        "letter": _ranges(regex.compile(r"\p{L}+")),
        "number": _ranges(regex.compile(r"\p{N}+")),
        "space": _ranges(regex.compile(r"\s+")),
    }


@lru_cache(maxsize=1)
def python_whitespace() -> list[int]:
    """Code points for which ``str.isspace`` is true (the separators of ``str.split()``)."""
    # the re module's \s on str is exactly str.isspace
    out = [c for a, b in _ranges(re.compile(r"\s+")) for c in range(a, b + 1)]
    assert all(chr(c).isspace() for c in out)
    return out
