"""One entry point to train any tokenizer kind from texts or files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from chainrule.errors import ConfigError, TokenizerError
from chainrule.tokenizers.base import Tokenizer
from chainrule.tokenizers.bpe import BPETokenizer
from chainrule.tokenizers.bytebpe import ByteBPETokenizer
from chainrule.tokenizers.char import CharTokenizer
from chainrule.tokenizers.word import WordTokenizer

KINDS: dict[str, type[Tokenizer]] = {
    "char": CharTokenizer,
    "word": WordTokenizer,
    "bpe": BPETokenizer,
    "bytebpe": ByteBPETokenizer,
}
# options each kind accepts besides vocab_size / min_count
_OPTIONS = {
    "char": set(),
    "word": {"mode", "lowercase"},
    "bpe": {"end_of_word", "use_core"},
    "bytebpe": {"use_core"},
}


# kinds trained by counting, which read files piece by piece instead of whole (bounded memory)
STREAMED_KINDS = ("char", "word")


def read_corpus(texts_or_paths: Iterable[str | os.PathLike]) -> list[str]:
    """Texts as given; ``os.PathLike`` items are read as UTF-8 files (binary/bad UTF-8 rejected).

    A file is read by what it is, as every command reads it: a ``.jsonl`` file's ``text``
    fields, an NLTK tagged zip's sentences, anything else as plain text.
    """
    if isinstance(texts_or_paths, (str, os.PathLike)):
        texts_or_paths = [texts_or_paths]
    return ["".join(_file_pieces(t)) if isinstance(t, os.PathLike) else str(t)
            for t in texts_or_paths]


def _file_pieces(path: os.PathLike) -> Iterator[str]:
    """The text of one corpus file in pieces (structured formats through their reader)."""
    from pathlib import Path

    from chainrule.data.readers import detect_format, iter_stream_text, iter_text_pieces

    if detect_format(Path(path)) == "text":
        return iter_text_pieces(path)
    return iter_stream_text([path], "auto", "text")


def train_tokenizer(
    kind: str,
    texts_or_paths: Iterable[str | os.PathLike],
    vocab_size: int | None = None,
    min_count: int | None = None,
    **options: Any,
) -> Tokenizer:
    """Train a tokenizer of ``kind`` (``char``, ``word``, ``bpe`` or ``bytebpe``).

    Args:
        kind: the tokenizer kind.
        texts_or_paths: strings are corpus text; ``pathlib.Path`` (any ``os.PathLike``) items
            are UTF-8 files to read.
        vocab_size: total vocabulary size, specials included (required for ``bpe``/``bytebpe``;
            for ``char``/``word`` it keeps the most frequent entries).
        min_count: drop characters/words seen fewer times (``char``/``word``), or stop merging
            when the best pair is rarer (``bpe``/``bytebpe``, default 2).
        **options: ``mode`` ("regex"/"whitespace") and ``lowercase`` for ``word``;
            ``end_of_word`` for ``bpe``; ``use_core=False`` forces the Python reference.

    Returns:
        The trained tokenizer.

    Example:
        >>> tok = train_tokenizer("bpe", ["low lower lowest"], vocab_size=40)
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown tokenizer kind {kind!r}; use one of {', '.join(KINDS)}.")
    unknown = set(options) - _OPTIONS[kind]
    if unknown:
        raise ConfigError(
            f"option {min(unknown)!r} does not apply to {kind} tokenizers"
            + (f" (they take: {', '.join(sorted(_OPTIONS[kind]))})." if _OPTIONS[kind] else ".")
        )
    if vocab_size is not None and vocab_size < 1:
        raise ConfigError(f"vocab_size must be positive, not {vocab_size}.")
    if min_count is not None and min_count < 1:
        raise ConfigError(f"min_count must be at least 1, not {min_count}.")
    items = (
        list(texts_or_paths)
        if not isinstance(texts_or_paths, (str, os.PathLike))
        else [texts_or_paths]
    )
    if kind in STREAMED_KINDS:
        return _train_streamed(kind, items, vocab_size, min_count or 1, options)
    texts = read_corpus(items)
    if not any(t.strip() for t in texts):
        raise _empty_corpus(items)
    if kind in ("bpe", "bytebpe"):
        if vocab_size is None:
            raise ConfigError(f"a {kind} tokenizer needs a vocabulary size: vocab_size=N (the key in "
                              "`chainrule train`; --vocab-size N in `chainrule tokenizer train`).")
        return KINDS[kind].train(texts, vocab_size, min_count=min_count or 2, **options)
    return KINDS[kind].train(texts, vocab_size, min_count or 1, **options)


def _empty_corpus(items: list) -> TokenizerError:
    files = [str(p) for p in items if isinstance(p, os.PathLike)]
    where = f" ({', '.join(map(repr, files))})" if files else ""
    return TokenizerError(
        f"the corpus{where} is empty or only whitespace; pass a text corpus to train on."
    )


def _train_streamed(kind: str, items: list, vocab_size: int | None, min_count: int,
                    options: dict[str, Any]) -> Tokenizer:
    """Train a counting kind (char, word) on texts and files, reading files piece by piece."""
    seen = False

    def texts() -> Iterator[str]:
        nonlocal seen
        for item in items:
            for piece in _file_pieces(item) if isinstance(item, os.PathLike) else [str(item)]:
                seen = seen or bool(piece.strip())
                yield piece

    try:
        tokenizer = KINDS[kind].train(texts(), vocab_size, min_count, **options)
    except TokenizerError:
        if seen:
            raise
        tokenizer = None
    if not seen:
        raise _empty_corpus(items)
    return tokenizer
