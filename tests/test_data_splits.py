"""Splits (fractions, contiguous word counts, the Bengio Brown split) and corpus statistics."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule.data import (
    TextCounter,
    assign_contiguous,
    corpus_stats,
    fraction_boundaries,
    split_by_fractions,
    split_by_words,
    split_text,
    write_splits,
)
from chainrule.errors import ConfigError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BROWN = SHARED / "brown"
SHAKESPEARE = SHARED / "tinyshakespeare" / "input.txt"


def test_char_fractions_nanogpt_example():
    # nanoGPT's shakespeare_char: 1,115,394 characters, first 90% (1,003,854) train
    assert fraction_boundaries(1_115_394, [0.9, 0.1]) == [1_003_854, 1_115_394]
    assert split_text("abcdefghij", [0.9, 0.1]) == ["abcdefghi", "j"]
    # 0.7 + 0.2 is 0.8999999999999999 in floats; the exact decimal sum still gives 9 of 10
    assert fraction_boundaries(10, [0.7, 0.2, 0.1]) == [7, 9, 10]


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200), st.lists(st.integers(1, 9), min_size=2, max_size=4))
def test_split_text_is_a_contiguous_partition(text, weights):
    fractions = [w / sum(weights) for w in weights]
    pieces = split_text(text, fractions)
    assert "".join(pieces) == text
    assert len(pieces) == len(weights)


def test_boundary_rule_hand_worked():
    # sentences of 3 words; target 5: the 2nd sentence starts at 3 < 5 so it stays (ends at 6);
    # the 3rd starts at 6 >= 5 and opens split 1; split 1's target 4: 3rd (0 < 4), 4th (3 < 4)
    sents = ["a b c", "d e f", "g h i", "j k l", "m n o"]
    assert [k for k, _ in assign_contiguous(sents, [5, 4])] == [0, 0, 1, 1, 2]
    # a sentence that ends exactly on the target closes the split
    assert split_by_words(["a b", "c d e", "f"], [5]) == [["a b", "c d e"], ["f"]]
    # token lists count their items
    assert split_by_words([["x"] * 4, ["y"] * 4], [4]) == [[["x"] * 4], [["y"] * 4]]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(1, 10), min_size=1, max_size=60),
    st.lists(st.integers(1, 30), min_size=1, max_size=3),
)
def test_word_splits_overshoot_by_less_than_one_sentence(lengths, sizes):
    sents = [["w"] * n for n in lengths]
    parts = split_by_words(sents, sizes)
    assert [s for p in parts for s in p] == sents  # contiguous, nothing lost or reordered
    for k, target in enumerate(sizes):
        words = sum(map(len, parts[k]))
        if parts[k + 1] or any(parts[k + 2 :]):  # a later split started: this one is full
            assert target <= words < target + len(parts[k][-1])


def test_split_by_fractions_of_lines_and_words():
    lines = [f"s{i}" for i in range(10)]
    assert split_by_fractions(lines, [0.8, 0.2]) == [lines[:8], lines[8:]]
    sents = ["a b c d", "e", "f g", "h i j"]  # 10 words; 50% -> first split holds >= 5
    assert split_by_fractions(sents, [0.5, 0.5], weight=lambda s: len(s.split())) == [
        ["a b c d", "e"],
        ["f g", "h i j"],
    ]


def test_bad_fractions_and_sizes():
    with pytest.raises(ConfigError, match="add up to 1"):
        fraction_boundaries(10, [0.5, 0.4])
    with pytest.raises(ConfigError, match="positive"):
        fraction_boundaries(10, [1.5, -0.5])
    with pytest.raises(ConfigError, match="at least two"):
        fraction_boundaries(10, [1.0])
    with pytest.raises(ConfigError, match="positive whole numbers"):
        list(assign_contiguous(["a"], [0]))


def test_write_splits_char_fractions_are_exact(tmp_path):
    text = "".join(f"line {i} with some words\n" for i in range(300))
    src = tmp_path / "corpus.txt"
    src.write_text(text, encoding="utf-8")
    out = write_splits(src, tmp_path / "out", fractions=[0.8, 0.1, 0.1])
    assert out["by"] == "chars"
    pieces = [(tmp_path / "out" / f"{n}.txt").read_text(encoding="utf-8") for n in
              ("train", "valid", "test")]
    assert pieces == split_text(text, [0.8, 0.1, 0.1])
    for name, piece in zip(("train", "valid", "test"), pieces):
        assert out["splits"][name]["characters"] == len(piece)
        assert out["splits"][name]["words"] == len(piece.split())


def test_write_splits_needs_names_for_many_splits(tmp_path):
    src = tmp_path / "c.txt"
    src.write_text("a b\nc d\ne f\ng h\n")
    with pytest.raises(ConfigError, match="need names"):
        write_splits(src, tmp_path / "o", words=[1, 1, 1])
    out = write_splits(src, tmp_path / "o", words=[1, 1, 1], names=["a", "b", "c", "d"])
    assert [out["splits"][n]["lines"] for n in "abcd"] == [1, 1, 1, 1]


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(alphabet="ab \n\t\x1cé\u3000", max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=4),
)
def test_text_counter_ignores_piece_boundaries(text, cuts):
    cuts = sorted({min(c, len(text)) for c in cuts})
    counter = TextCounter()
    for a, b in zip([0, *cuts], [*cuts, len(text)]):
        counter.add(text[a:b])
    assert counter.words == len(text.split())
    assert counter.lines == sum(1 for line in text.split("\n") if line.strip())
    assert counter.characters == len(text)
    assert counter.bytes == len(text.encode())


def test_corpus_stats_small(tmp_path):
    (tmp_path / "a.txt").write_text("héllo world\n\nbye\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("x", encoding="utf-8")
    s = corpus_stats(tmp_path)
    assert (s.files, s.documents, s.lines, s.words) == (2, 2, 3, 4)
    assert s.characters == 18 and s.bytes == 19  # é is two bytes
    assert s.distinct_characters == len(set("héllo world\n\nbye\nx"))


# -- the Bengio Brown split ----------------------------------------------------------------------
@pytest.mark.shared_data
@pytest.mark.skipif(not (BROWN / "nltk-brown.zip").exists(), reason="brown data absent")
def test_bengio_split_of_the_nltk_zip_reproduces_the_distributed_files(tmp_path):
    out = write_splits(BROWN / "nltk-brown.zip", tmp_path, words=[800_000, 200_000])
    for name, words in (("train", 800_001), ("valid", 200_021), ("test", 161_170)):
        ours = (tmp_path / f"{name}.txt").read_bytes()
        assert ours == (BROWN / f"{name}.txt").read_bytes(), name
        assert out["splits"][name]["words"] == words  # the README's figures


@pytest.mark.shared_data
@pytest.mark.skipif(not SHAKESPEARE.exists(), reason="tinyshakespeare absent")
def test_nanogpt_char_split_of_tiny_shakespeare(tmp_path):
    out = write_splits(SHAKESPEARE, tmp_path, fractions=[0.9, 0.1])
    assert out["splits"]["train"]["characters"] == 1_003_854
    assert out["splits"]["valid"]["characters"] == 111_540
    text = SHAKESPEARE.read_text(encoding="utf-8")
    assert (tmp_path / "train.txt").read_text(encoding="utf-8") == text[:1_003_854]
