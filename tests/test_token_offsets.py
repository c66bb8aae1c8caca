"""decode_with_offsets (the tokenizers' linear token spans) and token_spans against the old
quadratic algorithm (every prefix decoded), kept here as the reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule.evaluation import textscore
from chainrule.evaluation.textscore import token_spans
from chainrule.tokenizers import BPETokenizer, ByteBPETokenizer, CharTokenizer, WordTokenizer

CORPUS = [
    "the cat sat on the mat , and the dog sat too .",
    "héllo wörld ☃ naïve café 😀 end",
    "newer lower lowest  widest\tnew\nline",
    "don't stop \ufffd now",
]
ALPHABET = "the catsmodgnw,.'lé☃😀\ufffd \t\nxyz"  # x y z are not in the corpus: <unk>


def _reference_spans(tokenizer, text, ids):
    """The old algorithm: decode every prefix, clip to the common prefix with ``text``."""
    spans, start = [], 0
    for i in range(len(ids)):
        prefix = tokenizer.decode(ids[: i + 1])
        if text.startswith(prefix):
            end = len(prefix)
        else:
            end = 0
            while end < min(len(prefix), len(text)) and prefix[end] == text[end]:
                end += 1
        end = max(end, start)
        spans.append((start, end))
        start = end
    return spans


def _reference_token_spans(tokenizer, text, ids):
    if tokenizer.decode(ids) == text:
        return _reference_spans(tokenizer, text, ids)
    return textscore._spans_by_search(tokenizer, text, ids)


TOKENIZERS = {
    "char": CharTokenizer.train(CORPUS),
    "word-regex": WordTokenizer.train(CORPUS),
    "word-whitespace": WordTokenizer.train(CORPUS, mode="whitespace"),
    "bpe": BPETokenizer.train(CORPUS, vocab_size=90),
    "bytebpe": ByteBPETokenizer.train(CORPUS, vocab_size=300),
    "bytebpe-bytes": ByteBPETokenizer.train(CORPUS, vocab_size=259),  # no merges: bytes only
}


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=ALPHABET, max_size=30))
def test_token_spans_identical_to_the_prefix_algorithm(kind, text):
    tok = TOKENIZERS[kind]
    ids = tok.encode(text)
    assert token_spans(tok, text, ids) == _reference_token_spans(tok, text, ids)


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_decode_with_offsets_on_any_ids(kind, data):
    # any id sequence, specials and broken UTF-8 included
    tok = TOKENIZERS[kind]
    ids = data.draw(st.lists(st.integers(0, tok.vocab_size - 1), max_size=20))
    decoded, spans = tok.decode_with_offsets(ids)
    assert decoded == tok.decode(ids)
    assert spans == _reference_spans(tok, decoded, ids)
    assert spans[-1][1] == len(decoded) if spans else decoded == ""


def test_hand_worked_spans():
    assert TOKENIZERS["char"].decode_with_offsets(TOKENIZERS["char"].encode("at c")) == (
        "at c", [(0, 1), (1, 2), (2, 3), (3, 4)])
    word = TOKENIZERS["word-whitespace"]
    assert word.decode_with_offsets(word.encode("the cat sat")) == (
        "the cat sat", [(0, 3), (3, 7), (7, 11)])
    bpe = BPETokenizer(["<pad>", "<unk>", "<s>", "</s>", "_", "a", "b", " ", "ab_", "b_"],
                       [], {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3})
    # ab_ a b_ " " b_: the implied space goes to "a"; a space token cancels the implied one
    assert bpe.decode_with_offsets([8, 5, 9, 7, 9]) == ("ab ab b", [(0, 2), (2, 4), (4, 5),
                                                                    (5, 6), (6, 7)])


def test_byte_level_split_character_goes_to_the_token_with_its_last_byte():
    tok = TOKENIZERS["bytebpe-bytes"]  # one token per byte
    ids = tok.encode("aé😀")  # 1 + 2 + 4 bytes
    assert len(ids) == 7
    assert token_spans(tok, "aé😀", ids) == [(0, 1), (1, 1), (1, 2), (2, 2), (2, 2), (2, 2),
                                            (2, 3)]
    # a split U+FFFD: the cut itself decodes to U+FFFD, which agrees with the text
    assert token_spans(tok, "\ufffd", tok.encode("\ufffd")) == [(0, 1), (1, 1), (1, 1)]


class _DecodeOnly:
    """A tokenizer with only encode/decode (as an imported one may be): the prefix fallback."""

    def __init__(self, inner):
        self.inner, self.unk_id = inner, inner.unk_id

    def encode(self, text):
        return self.inner.encode(text)

    def decode(self, ids):
        return self.inner.decode(ids)


@pytest.mark.parametrize("text", ["aé😀 the cat", "the xx cat"])
def test_tokenizer_without_offsets_uses_the_prefix_fallback(text):
    for kind in ("bytebpe", "char"):
        tok = TOKENIZERS[kind]
        ids = tok.encode(text)
        plain = _DecodeOnly(tok)
        assert token_spans(plain, text, ids) == token_spans(tok, text, ids)
        assert token_spans(plain, text, ids) == _reference_token_spans(tok, text, ids)


def _reference_owner(text, spans, whitespace_to):
    """The word rule as written before (a list scan per whitespace token)."""
    from chainrule.evaluation.surprisal import word_spans

    words = word_spans(text)
    if not words:
        return [0] * len(spans)
    owner = [-1] * len(text)
    for w, (a, b) in enumerate(words):
        for c in range(a, b):
            owner[c] = w
    out = []
    for a, b in spans:
        w = next((owner[c] for c in range(a, min(b, len(text))) if owner[c] >= 0), None)
        if w is None:
            if whitespace_to == "previous":
                prev = [i for i, (_, e) in enumerate(words) if e <= a]
                w = prev[-1] if prev else 0
            else:
                nxt = [i for i, (s, _) in enumerate(words) if s >= a]
                w = nxt[0] if nxt else len(words) - 1
        out.append(w)
    return out


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet="ab \n", max_size=25), data=st.data())
def test_word_assignment_unchanged(text, data):
    from chainrule.evaluation.surprisal import assign_tokens_to_words

    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    spans = list(zip([0, *cuts], [*cuts, len(text)]))
    for rule in ("next", "previous"):
        assert assign_tokens_to_words(text, spans, whitespace_to=rule) == \
            _reference_owner(text, spans, rule)
