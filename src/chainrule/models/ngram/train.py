"""Corpus files -> a fitted n-gram model and its tokenizer; saving and ARPA import/export.

The default tokenisation is KenLM's: one sentence per line, whitespace-separated tokens, the
words ``<s>``, ``</s>`` and ``<unk>`` in the text skipped (lmplz treats them as whitespace),
and a vocabulary of every word seen, in order of first appearance. ``vocab`` gives a closed
vocabulary instead: words outside it are counted as ``<unk>`` (unlike lmplz's
``--limit_vocab_file``, which drops the n-grams that contain them). Any chainrule tokenizer
can be used instead (``tokenizer=``); each line is then framed as ``[bos] + encode(line) +
[eos]``.

The corpus is streamed line by line and counted in chunks (:mod:`.counting`), so it can be
larger than memory.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chainrule.data.readers import iter_lines
from chainrule.errors import ConfigError, DataError, ModelFormatError, TokenizerError
from chainrule.models.ngram.arpa import read_arpa, write_arpa
from chainrule.models.ngram.counting import DEFAULT_CHUNK_TOKENS, ChunkedCounter
from chainrule.models.ngram.model import NgramModel
from chainrule.tokenizers import BOS, EOS, PAD, UNK, Tokenizer, WordTokenizer, load_tokenizer

SKIPPED_SPECIALS = (BOS, EOS, UNK, PAD)  # KenLM skips the first three; <pad> is ours


@dataclass
class NgramTrainResult:
    """What :func:`train_ngram` returns.

    Attributes:
        model: the fitted model.
        tokenizer: its tokenizer (to be saved as ``tokenizer.json``).
        tokens: tokens counted (words plus one ``</s>`` per sentence).
        sentences: lines read.
        seconds: wall time of reading, counting and estimating.
        warnings: warning messages raised while estimating (fallback discounts, ...).
    """

    model: NgramModel
    tokenizer: Tokenizer
    tokens: int
    sentences: int
    seconds: float
    warnings: list[str] = field(default_factory=list)


#: the highest order accepted (KenLM's lmplz compiles in 6 by default; beyond ~10 every
#: higher-order n-gram is seen once and the discounts cannot be estimated)
MAX_ORDER = 20


def _read_vocab(path: str | os.PathLike) -> list[str]:
    if not os.path.isfile(path):
        raise DataError(f"vocabulary file {str(path)!r} does not exist; pass --vocab a file with "
                        "one word per line.")
    words = [w for line in iter_lines([path]) for w in line.split()]
    if not words:
        raise DataError(f"vocabulary file {str(path)!r} has no words; list one word per line.")
    return words


def train_ngram(
    corpus: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    order: int = 3,
    smoothing: str = "mkn",
    k: float = 1.0,
    prune: Sequence[int] | None = None,
    discounts: Sequence[Sequence[float]] | None = None,
    vocab: str | os.PathLike | Iterable[str] | None = None,
    tokenizer: Tokenizer | str | os.PathLike | None = None,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> NgramTrainResult:
    """Train an n-gram model on text files (one sentence per line).

    Args:
        corpus: one path or several (``.gz`` allowed).
        order / smoothing / k / prune / discounts: see :class:`NgramModel`.
        vocab: closed vocabulary (a file with one word per line, or the words themselves).
        tokenizer: a chainrule tokenizer (object or path) instead of whitespace words.
        chunk_tokens: tokens per counting chunk (lower = less memory).
    Raises:
        ConfigError, DataError, TokenizerError: bad options or input, one sentence each.
    """
    start = time.perf_counter()
    paths = [corpus] if isinstance(corpus, (str, os.PathLike)) else list(corpus)
    if not paths:
        raise ConfigError("no corpus given; pass one or more text files, one sentence per line.")
    if vocab is not None and tokenizer is not None:
        raise ConfigError("pass either --vocab or --tokenizer, not both.")
    if not isinstance(order, int) or not 1 <= order <= MAX_ORDER:
        raise ConfigError(f"the n-gram order must be a whole number from 1 to {MAX_ORDER}, got "
                          f"{order!r}.")
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer)
    lines = iter_lines(paths)
    skipped: list[str] = []
    if tokenizer is not None:
        tok = tokenizer
        if tok.bos_id is None or tok.eos_id is None:
            raise TokenizerError("the tokenizer has no <s> / </s> tokens, which n-grams need.")
        counter = ChunkedCounter(order, tok.bos_id, tok.eos_id, chunk_tokens)
        for line in lines:
            counter.add(tok.encode(line))
    else:
        if vocab is not None:
            words = _read_vocab(vocab) if isinstance(vocab, (str, os.PathLike)) else list(vocab)
            tok = WordTokenizer.from_vocab(words, mode="whitespace")
            ids = {w: i for i, w in enumerate(tok.vocab)}
            grow = False
        else:
            tok = WordTokenizer.from_vocab([], mode="whitespace")
            ids = {w: i for i, w in enumerate(tok.vocab)}
            grow = True
        first_word = len(ids)
        unk = tok.unk_id
        counter = ChunkedCounter(order, tok.bos_id, tok.eos_id, chunk_tokens)
        for line in lines:
            out = []
            for w in line.split():
                i = ids.get(w)
                if i is None:
                    if grow:
                        i = ids[w] = len(ids)
                    else:
                        i = unk
                elif i < first_word and w in SKIPPED_SPECIALS:
                    if not skipped:
                        skipped.append(w)
                    continue
                out.append(i)
            counter.add(out)
        if grow:
            learned = list(ids)[first_word:]
            tok = WordTokenizer.from_vocab(learned, mode="whitespace")
            if tok.vocab_size != len(ids) or (learned and tok.token_to_id(learned[0]) != first_word):
                raise TokenizerError("internal mismatch between counted ids and the tokenizer.")
    counts = counter.finish()
    if counts.tokens - counts.sentences == 0:
        raise DataError("the corpus has no words to count; pass files that contain text.")
    if counts.tokens < order:
        raise DataError(
            f"the corpus has only {counts.tokens} tokens (with </s>), fewer than the order "
            f"{order}; use a lower --order or a larger corpus."
        )
    model = NgramModel(
        order, smoothing, vocab_size=tok.vocab_size, bos_id=tok.bos_id, eos_id=tok.eos_id,
        unk_id=tok.unk_id, pad_id=tok.pad_id, k=k, discounts=discounts, prune=prune,
        chunk_tokens=chunk_tokens,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit_counts(counts)
    messages = [str(w.message) for w in caught]
    if skipped:
        messages.insert(0, f"the corpus contains {skipped[0]!r}; like KenLM, chainrule skips the "
                           "words <s>, </s> and <unk> in the text.")
    return NgramTrainResult(model, tok, counts.tokens, counts.sentences,
                            time.perf_counter() - start, messages)


def arpa_words(tokenizer: Tokenizer, vocab_size: int) -> list[str]:
    """The spelling of every id, checked to be writable in an ARPA file."""
    words = [tokenizer.id_to_token(i) for i in range(vocab_size)]
    for w in words:
        if not w or any(c.isspace() for c in w):
            raise ModelFormatError(
                f"the token {w!r} is empty or contains whitespace, which an ARPA file cannot "
                "hold; ARPA export needs a word-like tokenizer (word or BPE)."
            )
    return words


def save_ngram(
    model: NgramModel, tokenizer: Tokenizer, directory: str | os.PathLike, *, arpa: bool = True
) -> list[str]:
    """Save config.json, model.safetensors, tokenizer.json and (if possible) model.arpa.

    Returns notes for the user (e.g. why model.arpa was not written).
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{str(directory)!r} is a file; pass a directory for the model.")
    model.save(directory)
    tokenizer.save(directory / "tokenizer.json")
    notes = []
    if arpa:
        try:
            words = arpa_words(tokenizer, model.vocab_size)
        except ModelFormatError as e:
            notes.append(f"model.arpa not written: {e}")
            (directory / "model.arpa").unlink(missing_ok=True)  # a stale one would mislead
        else:
            omit = [] if model.pad_id is None else [model.pad_id]
            write_arpa(model.tables, words, directory / "model.arpa", omit=omit)
    return notes


def load_ngram(directory: str | os.PathLike) -> tuple[NgramModel, Tokenizer]:
    """Load an n-gram model directory (refusing other families) and its tokenizer."""
    from chainrule.models.base import load_model

    model = load_model(directory, family="ngram")
    tok = load_tokenizer(Path(directory) / "tokenizer.json")
    if tok.vocab_size != model.vocab_size:
        raise ModelFormatError(
            f"{str(directory)!r}: tokenizer.json has {tok.vocab_size} tokens but the model "
            f"{model.vocab_size}; the directory mixes files of different models."
        )
    assert isinstance(model, NgramModel)
    return model, tok


def export_arpa(directory: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write the n-gram model in ``directory`` as an ARPA file."""
    model, tok = load_ngram(directory)
    omit = [] if model.pad_id is None else [model.pad_id]
    return write_arpa(model.tables, arpa_words(tok, model.vocab_size), path, omit=omit)


def import_arpa(path: str | os.PathLike, directory: str | os.PathLike) -> NgramModel:
    """Read an ARPA file (KenLM, SRILM, ...) into a chainrule model directory.

    The vocabulary is the ARPA file's unigrams (plus ``<pad>``, which gets probability 0);
    ``<s>``, ``</s>`` and ``<unk>`` must be among them (``<unk>`` may be absent).
    """
    made: list[WordTokenizer] = []
    has_unk: list[bool] = []

    def tokenizer_ids(unigrams: list[str]) -> dict[str, int]:
        for w in (BOS, EOS):
            if w not in unigrams:
                raise ModelFormatError(f"{str(path)!r} has no {w} unigram; chainrule needs "
                                       "sentence boundary tokens in the model.")
        made.append(WordTokenizer.from_vocab(unigrams, mode="whitespace"))
        has_unk.append(UNK in unigrams)
        return {made[0].id_to_token(i): i for i in range(made[0].vocab_size)}

    tables, _ = read_arpa(path, tokenizer_ids)
    tok = made[0]
    model = NgramModel.from_tables(  # ids without a unigram line (<pad>) have probability 0
        tables, bos_id=tok.bos_id, eos_id=tok.eos_id,
        unk_id=tok.unk_id if has_unk[0] else None, pad_id=tok.pad_id, smoothing="arpa",
    )
    save_ngram(model, tok, directory)
    return model


__all__ = [
    "NgramTrainResult",
    "arpa_words",
    "export_arpa",
    "import_arpa",
    "load_ngram",
    "save_ngram",
    "train_ngram",
]
