"""Corpora: readers, splits, statistics and the tokenised-corpus cache."""

from chainrule.data.cache import (
    TokenizedCorpus,
    corpus_fingerprint,
    load_tokenized,
    tokenize_corpus,
)
from chainrule.data.readers import (
    Chunk,
    detect_format,
    iter_chunks,
    iter_documents,
    iter_lines,
    iter_sentences,
    iter_stream_text,
    iter_text_chunks,
    iter_text_pieces,
    read_nltk_tagged,
    read_text,
    resolve_paths,
)
from chainrule.data.splits import (
    assign_contiguous,
    fraction_boundaries,
    split_by_fractions,
    split_by_words,
    split_text,
    word_count,
    write_splits,
)
from chainrule.data.stats import CorpusStats, TextCounter, corpus_stats

__all__ = [
    "Chunk",
    "CorpusStats",
    "TextCounter",
    "TokenizedCorpus",
    "assign_contiguous",
    "corpus_fingerprint",
    "corpus_stats",
    "detect_format",
    "fraction_boundaries",
    "iter_chunks",
    "iter_documents",
    "iter_lines",
    "iter_sentences",
    "iter_stream_text",
    "iter_text_chunks",
    "iter_text_pieces",
    "load_tokenized",
    "read_nltk_tagged",
    "read_text",
    "resolve_paths",
    "split_by_fractions",
    "split_by_words",
    "split_text",
    "tokenize_corpus",
    "word_count",
    "write_splits",
]
