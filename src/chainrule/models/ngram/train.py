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
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chainrule.data.readers import iter_lines
from chainrule.errors import ConfigError, DataError, ModelFormatError, TokenizerError
from chainrule.models.ngram import fastcount
from chainrule.models.ngram.arpa import read_arpa, write_arpa
from chainrule.models.ngram.counting import DEFAULT_CHUNK_TOKENS, MAX_VOCAB, ChunkedCounter
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


def _word_ids(tok: WordTokenizer) -> tuple[dict[str, int], int, list[int]]:
    """word -> id of a whitespace tokenizer, the first id a grown vocabulary gets, and the ids of
    special spellings that the text's words skip."""
    ids = {w: i for i, w in enumerate(tok.vocab)}
    first_word = len(ids)
    return ids, first_word, [ids[w] for w in SKIPPED_SPECIALS if w in ids]


def _grown_tokenizer(learned: list[str], first_word: int) -> WordTokenizer:
    tok = WordTokenizer.from_vocab(learned, mode="whitespace")
    if tok.vocab_size != first_word + len(learned) or (
            learned and tok.token_to_id(learned[0]) != first_word):
        raise TokenizerError("internal mismatch between counted ids and the tokenizer.")
    return tok


def _count_compiled(paths, order, tok, with_tokenizer, grow, memory, temp_dir, skipped):
    """Count with the compiled kernel (:mod:`.fastcount`): every order derived at once."""
    counter = fastcount.CompiledCounter(
        order, tok.bos_id, tok.eos_id, memory=memory and fastcount.counter_budget(memory),
        temp_dir=None if temp_dir is None else str(temp_dir))
    # with a budget every order's table goes to disk, for the out-of-core estimator
    finish = counter.finish if memory is None else counter.finish_to_disk
    if with_tokenizer:
        batch: list = []
        size = 0
        for line in iter_lines(paths):
            batch.append(tok.encode(line))
            size += len(batch[-1]) + 1
            if size >= 1 << 20:
                counter.add_sentences(batch)
                batch, size = [], 0
        counter.add_sentences(batch)
        return finish(tok.vocab_size), tok
    _, first_word, skip = _word_ids(tok)
    counter.set_vocab(list(tok.vocab), skip, tok.unk_id, grow)
    for path in paths:
        counter.add_file(path)
    if counter.first_skipped() is not None:
        skipped.append(counter.first_skipped())
    if grow:
        tok = _grown_tokenizer(counter.new_words(), first_word)
    return finish(tok.vocab_size), tok


def _count_numpy(paths, order, tok, with_tokenizer, grow, chunk_tokens, skipped):
    """Count with numpy (:mod:`.counting`): top-order windows, derived later."""
    lines = iter_lines(paths)
    counter = ChunkedCounter(order, tok.bos_id, tok.eos_id, chunk_tokens)
    if with_tokenizer:
        for line in lines:
            counter.add(tok.encode(line))
        return counter.finish(), tok
    ids, first_word, _ = _word_ids(tok)
    unk = tok.unk_id
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
        tok = _grown_tokenizer(list(ids)[first_word:], first_word)
    return counter.finish(), tok


def _chunk_tokens(chunk_tokens: int, memory: int | None, order: int) -> int:
    """The numpy counter's chunk under a memory budget (it keeps its table in memory)."""
    if memory is None:
        return chunk_tokens
    return max(1000, min(chunk_tokens, memory // (12 * (order + 6))))


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
    memory: int | str | None = None,
    temp_dir: str | os.PathLike | None = None,
) -> NgramTrainResult:
    """Train an n-gram model on text files (one sentence per line).

    Args:
        corpus: one path or several (``.gz`` allowed).
        order / smoothing / k / prune / discounts: see :class:`NgramModel`.
        vocab: closed vocabulary (a file with one word per line, or the words themselves).
        tokenizer: a chainrule tokenizer (object or path) instead of whitespace words.
        chunk_tokens: tokens per counting chunk of the numpy counter (lower = less memory).
        memory: a memory budget for the whole run (bytes, or ``"500M"``, ``"2G"``), like
            lmplz's ``-S``: the compiled counter spills sorted runs to ``temp_dir`` when its
            buffer is full, merges them at the end writing every order's table to disk, and
            Kneser-Ney is estimated from those files order by order (:mod:`.outofcore`); the
            model's tables stay in files there, memory-mapped. None: everything in memory.
        temp_dir: where spilled runs and the tables go (default: the system's temporary
            directory).
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
    memory = fastcount.parse_memory(memory)
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer)
    if tokenizer is not None:
        tok = tokenizer
        if tok.bos_id is None or tok.eos_id is None:
            raise TokenizerError("the tokenizer has no <s> / </s> tokens, which n-grams need.")
    elif vocab is not None:
        words = _read_vocab(vocab) if isinstance(vocab, (str, os.PathLike)) else list(vocab)
        tok = WordTokenizer.from_vocab(words, mode="whitespace")
    else:
        tok = WordTokenizer.from_vocab([], mode="whitespace")
    skipped: list[str] = []
    if fastcount.available(order) and (tokenizer is None or tok.vocab_size <= MAX_VOCAB):
        counts, tok = _count_compiled(paths, order, tok, tokenizer is not None, vocab is None,
                                      memory, temp_dir, skipped)
    else:
        counts, tok = _count_numpy(paths, order, tok, tokenizer is not None, vocab is None,
                                   _chunk_tokens(chunk_tokens, memory, order), skipped)
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
        if w.split() != [w]:  # empty, or holds whitespace
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
    notes = []
    writer = None
    if arpa:
        try:
            words = arpa_words(tokenizer, model.vocab_size)
        except ModelFormatError as e:
            notes.append(f"model.arpa not written: {e}")
            (directory / "model.arpa").unlink(missing_ok=True)  # a stale one would mislead
        else:
            omit = [] if model.pad_id is None else [model.pad_id]
            directory.mkdir(parents=True, exist_ok=True)
            # the compiled writer formats the text without the GIL: the ARPA file is written on
            # a second thread while the model and tokenizer files are
            writer = _Background(write_arpa, model.tables, words, directory / "model.arpa",
                                 omit=omit)
    try:
        model.save(directory)
        tokenizer.save(directory / "tokenizer.json")
    finally:
        if writer is not None:
            writer.join()
    return notes


class _Background(threading.Thread):
    """Run ``fn(*args, **kwargs)`` on a thread; :meth:`join` re-raises its exception."""

    def __init__(self, fn, *args, **kwargs):
        super().__init__(daemon=True)
        self._call, self._error = (fn, args, kwargs), None
        self.start()

    def run(self) -> None:
        fn, args, kwargs = self._call
        try:
            fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001  (handed to the joining thread)
            self._error = e

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self._error is not None:
            raise self._error


def load_ngram(directory: str | os.PathLike) -> tuple[NgramModel, Tokenizer]:
    """Load an n-gram model directory or binary file (refusing other families) and its
    tokenizer."""
    from chainrule.models.base import load_model, load_model_file

    if Path(directory).is_file():  # a binary model file holds its tokenizer
        model, tok = load_model_file(directory, family="ngram")
        assert isinstance(model, NgramModel)
        return model, tok
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
    model, tok = read_arpa_model(path)
    save_ngram(model, tok, directory)
    return model


def read_arpa_model(path: str | os.PathLike) -> tuple[NgramModel, WordTokenizer]:
    """An ARPA file as (model, tokenizer), in memory (see :func:`import_arpa`)."""
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
    return model, tok


__all__ = [
    "NgramTrainResult",
    "arpa_words",
    "export_arpa",
    "import_arpa",
    "load_ngram",
    "read_arpa_model",
    "save_ngram",
    "train_ngram",
]
