"""Tokenizers: the lecture's BPE example, round trips, the compiled core against the Python
reference, special tokens, save/load, and the word tokenizer's modes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule.errors import ConfigError, TokenizerError
from chainrule.tokenizers import (
    BPETokenizer,
    ByteBPETokenizer,
    CharTokenizer,
    WordTokenizer,
    load_tokenizer,
    train_tokenizer,
)
from chainrule.tokenizers._merges import get_core, learn_merges_reference

SHAKESPEARE = (
    Path(__file__).resolve().parents[1] / "src" / "chainrule" / "resources" / "tinyshakespeare.txt"
)
# The lecture's toy corpus, word types in the order the lecture lists them.
LECTURE = "low " * 5 + "lowest " * 2 + "newer " * 6 + "wider " * 3 + "new " * 2
LECTURE_MERGES = [
    ("e", "r"),
    ("er", "_"),
    ("n", "e"),
    ("ne", "w"),
    ("l", "o"),
    ("lo", "w"),
    ("new", "er_"),
    ("low", "_"),
]
needs_core = pytest.mark.skipif(get_core() is None, reason="compiled core not built")


@pytest.fixture(scope="module")
def sample() -> str:
    return SHAKESPEARE.read_text(encoding="utf-8")[:60_000]


@pytest.fixture(scope="module")
def trained(sample):
    return {
        "char": train_tokenizer("char", [sample]),
        "word": train_tokenizer("word", [sample], min_count=2),
        "bpe": train_tokenizer("bpe", [sample], vocab_size=400),
        "bytebpe": train_tokenizer("bytebpe", [sample], vocab_size=400),
    }


@pytest.mark.parametrize("use_core", [True, False])
def test_lecture_bpe_example_gives_the_lectures_first_eight_merges(use_core):
    tok = train_tokenizer("bpe", [LECTURE], vocab_size=100, use_core=use_core)
    assert tok.merges[:8] == LECTURE_MERGES
    # the base vocabulary is the lecture's: _, d, e, i, l, n, o, r, s, t, w (plus whitespace)
    base = {t for t in tok.vocab[: -len(tok.merges)] if t not in tok.special_tokens}
    assert base - set(" \t\n\r") == set("_deilnorstw")


def test_lecture_example_by_hand_with_the_reference_learner():
    # symbols as in the lecture: each word spelled out with the marker as its last symbol
    alphabet = sorted(set("lowestnrid_"))
    ids = {c: i for i, c in enumerate(alphabet)}
    words = [list(w) + ["_"] for w in ["low", "lowest", "newer", "wider", "new"]]
    merges = learn_merges_reference(
        [[ids[c] for c in w] for w in words],
        [5, 2, 6, 3, 2],
        {i: c.encode() for c, i in ids.items()},
        num_new=8,
    )
    names = dict(enumerate(alphabet))
    for a, b, new in merges:
        names[new] = names[a] + names[b]
    assert [(names[a], names[b]) for a, b, _ in merges] == LECTURE_MERGES


@needs_core
@pytest.mark.parametrize("kind", ["bpe", "bytebpe"])
def test_compiled_learner_matches_the_reference(kind, sample):
    text = sample[:25_000]
    fast = train_tokenizer(kind, [text], vocab_size=420, use_core=True)
    slow = train_tokenizer(kind, [text], vocab_size=420, use_core=False)
    assert fast.merges == slow.merges
    assert fast.vocab == slow.vocab


@needs_core
@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=80))
def test_compiled_encoder_matches_the_reference(trained, text):
    for kind in ("bpe", "bytebpe"):
        tok = trained[kind]
        assert tok.encode(text) == tok._encode_python(text)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=100))
def test_bytebpe_round_trips_every_string(trained, text):
    tok = trained["bytebpe"]
    assert tok.decode(tok.encode(text)) == text


def _alphabet_text(tok) -> st.SearchStrategy[str]:
    chars = sorted(c for c in tok.vocab if len(c) == 1 and c not in tok.special_tokens)
    if tok.kind == "bpe":
        chars.remove(tok.end_of_word)
    return st.text(alphabet=st.sampled_from(chars), max_size=100)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_char_and_bpe_round_trip_text_in_their_alphabet(trained, data):
    for kind in ("char", "bpe"):
        tok = trained[kind]
        text = data.draw(_alphabet_text(tok))
        assert tok.decode(tok.encode(text)) == text


def test_whitespace_is_kept_by_classic_bpe(trained):
    tok = trained["bpe"]
    for text in ["  lead", "trail ", "a  b", "x\n\ny", "\n", " ", "a\tb \n c"]:
        assert tok.decode(tok.encode(text)) == text
    # a single space between words costs nothing: the marker implies it
    assert len(tok.encode("the king")) == len(tok.encode("the")) + len(tok.encode("king"))


@needs_core
@pytest.mark.parametrize("kind", ["bpe", "bytebpe"])
def test_parallel_encoding_equals_serial(trained, sample, kind):
    tok = trained[kind]
    text = sample * 3 + "\n  \n\nend  "
    assert tok.encode_parallel(text, threads=3).tolist() == tok.encode(text)


@pytest.mark.parametrize("kind", ["char", "word", "bpe", "bytebpe"])
def test_every_kind_frames_sentences_with_bos_and_eos(trained, kind):
    tok = trained[kind]
    assert tok.bos_id is not None and tok.eos_id is not None and tok.bos_id != tok.eos_id
    assert tok.id_to_token(tok.bos_id) == "<s>" and tok.token_to_id("</s>") == tok.eos_id
    assert tok.pad_id is not None


@pytest.mark.parametrize("kind", ["char", "word", "bpe", "bytebpe"])
def test_special_spelling_is_text_unless_allowed(trained, kind):
    tok = trained[kind]
    text = "the king<s> and </s>queen"
    plain = tok.encode(text)
    assert tok.bos_id not in plain and tok.eos_id not in plain
    special = tok.encode(text, allow_special=True)
    assert special.count(tok.bos_id) == 1 and special.count(tok.eos_id) == 1
    if kind != "word":  # words are re-joined by spaces
        assert tok.decode(special) == text
    if kind == "bytebpe":  # '<', '/', '>' are outside the others' Shakespeare alphabet
        assert tok.decode(plain) == text
        assert tok.decode(special, skip_special=True) == tok.decode(
            [i for i in special if i not in (tok.bos_id, tok.eos_id)]
        )


@pytest.mark.parametrize("kind", ["char", "word", "bpe", "bytebpe"])
def test_save_load_round_trip(trained, kind, sample, tmp_path):
    tok = trained[kind]
    path = tok.save(tmp_path / "tok.json")
    again = load_tokenizer(path)
    assert type(again) is type(tok) and again.fingerprint() == tok.fingerprint()
    text = sample[-2000:] + " ünïcödé ☃"
    assert again.encode(text) == tok.encode(text)


def test_word_tokenizer_modes_and_unknown_words():
    regex_tok = WordTokenizer.train(["Don't stop, don't!"], lowercase=True)
    assert regex_tok.split("Don't!") == ["don", "'", "t", "!"]
    ws = WordTokenizer.from_vocab(["<s>", "</s>", "<unk>", "The", "cat", "sat."])
    assert ws.mode == "whitespace"
    assert ws.split("The cat  sat.\n") == ["The", "cat", "sat."]
    assert ws.encode("The dog sat.") == [ws.token_to_id("The"), ws.unk_id, ws.token_to_id("sat.")]
    assert ws.vocab_size == 4 + 3  # the ARPA file's specials map onto ours
    counted = WordTokenizer.train(["a a a b b c"], min_count=2)
    assert counted.encode("a b c") == [4, 5, counted.unk_id]
    capped = WordTokenizer.train(["a a a b b c"], vocab_size=5)
    assert capped.vocab[4:] == ["a"]


def test_char_tokenizer_maps_unseen_characters_to_unk():
    tok = CharTokenizer.train(["abca"])
    assert tok.encode("abz") == [tok.token_to_id("a"), tok.token_to_id("b"), tok.unk_id]
    assert CharTokenizer.train(["aaab"], vocab_size=5).vocab[4:] == ["a"]


def test_bad_training_requests_are_clear_errors(tmp_path):
    with pytest.raises(TokenizerError, match="smaller than the base alphabet"):
        train_tokenizer("bytebpe", ["some text"], vocab_size=100)
    with pytest.raises(TokenizerError, match="empty"):
        train_tokenizer("bpe", ["  \n "], vocab_size=100)
    with pytest.raises(ConfigError, match="vocabulary size"):
        train_tokenizer("bpe", ["text"])
    with pytest.raises(ConfigError, match="unknown tokenizer kind"):
        train_tokenizer("wordpiece", ["text"])
    with pytest.raises(ConfigError, match="does not apply"):
        train_tokenizer("char", ["text"], lowercase=True)
    with pytest.raises(TokenizerError, match="end-of-word marker"):
        train_tokenizer("bpe", ["snake_case words"], vocab_size=100)
    tok = train_tokenizer("bpe", ["snake_case words"], vocab_size=100, end_of_word="</w>")
    assert tok.decode(tok.encode("snake_case words")) == "snake_case words"


def test_duplicate_spellings_reuse_one_id():
    # (a, bc) and (ab, c) both spell "abc": the second merge must reuse the first's id
    tok = BPETokenizer.train(["abc " * 3 + "xbc " * 4 + "abx " * 5], vocab_size=60, min_count=1)
    spellings = [t for t in tok.vocab]
    assert len(spellings) == len(set(spellings))
    assert ByteBPETokenizer.train(["aaaa aaa"], vocab_size=270, min_count=1).encode("aaaa")
