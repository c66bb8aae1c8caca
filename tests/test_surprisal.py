"""Surprisal: token and word surprisals in bits, the word rule, and the output files."""

from __future__ import annotations

import csv
import itertools
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _eval_helpers import CharTok, PieceTok, WordTok
from chainrule.evaluation.surprisal import (
    assign_tokens_to_words,
    sentence_surprisals,
    write_surprisal,
)
from chainrule.evaluation.textscore import token_spans
from chainrule.models.reference import UniformModel, UnigramModel

ALPHABET = "abcdefgh ."
PIECES = ["the", " the", " cat", "cat", " sat", "s", "at", " ", ".", "a", "c", "t", "h", "e"]


def _unigram(tok, texts, alpha=1.0):
    seqs = [[tok.bos_id, *tok.encode(t), tok.eos_id] for t in texts]
    return UnigramModel(tok.vocab_size, tok.bos_id, tok.eos_id, alpha=alpha).fit(seqs)


def _sentence_logprob_by_steps(model, ids):
    """log P(<s> ids </s>) through start/step: a path independent of token_logprobs."""
    seq = [model.bos_id, *ids, model.eos_id]
    lp, state = model.start(torch.tensor([seq[:1]]))
    total = 0.0
    for tok in seq[1:]:
        total += float(lp[0, tok])
        lp, state = model.step(state, torch.tensor([tok]))
    return total


def test_uniform_model_every_token_costs_log2_V():
    tok = CharTok(list(ALPHABET))
    model = UniformModel(tok.vocab_size, tok.bos_id, tok.eos_id)
    [res] = sentence_surprisals(model, tok, ["abc de."])
    log2v = math.log2(tok.vocab_size)
    assert len(res.tokens) == len("abc de.") + 1  # every char plus </s>
    for t in res.tokens:
        assert t.surprisal_bits == pytest.approx(log2v, rel=1e-6)
    # "abc" = 3 chars; " de." = space + 3 chars (the space goes with the word it announces)
    assert [w.word for w in res.words] == ["abc", "de.", "</s>"]
    assert [w.n_tokens for w in res.words] == [3, 4, 1]
    assert res.words[1].surprisal_bits == pytest.approx(4 * log2v, rel=1e-6)


@pytest.mark.parametrize("tok_factory", [
    lambda: CharTok(list(ALPHABET)),
    lambda: PieceTok(PIECES),
])
def test_word_is_sum_of_its_tokens_and_total_is_sentence_logprob(tok_factory):
    tok = tok_factory()
    corpus = ["the cat sat.", "the cat.", "cat sat at the cat."] if tok.kind != "char" else [
        "abc dea.", "bad cab.", "ace."]
    model = _unigram(tok, corpus)
    texts = corpus + (["the  cat sat ."] if tok.kind != "char" else ["a  bb cc ."])
    for res in sentence_surprisals(model, tok, texts):
        for w in res.words:
            mine = [t.surprisal_bits for t in res.tokens if t.word_index == w.word_index]
            assert len(mine) == w.n_tokens
            assert w.surprisal_bits == pytest.approx(sum(mine), abs=1e-9)
        ids = tok.encode(res.text)
        expected_bits = -_sentence_logprob_by_steps(model, ids) / math.log(2)
        assert res.total_bits == pytest.approx(expected_bits, rel=1e-5)
        assert sum(w.surprisal_bits for w in res.words) == pytest.approx(res.total_bits, rel=1e-9)
        assert res.words[-1].is_eos and res.words[-1].word == "</s>"


def test_first_token_is_conditioned_on_bos_only():
    tok = CharTok(list(ALPHABET))
    model = _unigram(tok, ["abc", "bcd", "a"], alpha=0.5)
    [res] = sentence_surprisals(model, tok, ["cab"], eos=False)
    lp, _ = model.start(torch.tensor([[tok.bos_id]]))
    expected = -float(lp[0, tok.encode("c")[0]]) / math.log(2)
    assert len(res.tokens) == 3
    assert res.tokens[0].surprisal_bits == pytest.approx(expected, rel=1e-6)


def test_word_rule_hand_worked():
    # char tokens of "ab c": the space announces "c"
    assert assign_tokens_to_words("ab c", [(0, 1), (1, 2), (2, 3), (3, 4)]) == [0, 0, 1, 1]
    # classic BPE: the end-of-word token closes the previous word
    assert assign_tokens_to_words(
        "ab c", [(0, 1), (1, 2), (2, 3), (3, 4)], whitespace_to="previous") == [0, 0, 0, 1]
    # GPT-2 style pieces: " cat" starts with a space but its first letter is in word 1
    assert assign_tokens_to_words("the cat", [(0, 3), (3, 7)]) == [0, 1]


def test_gpt2_style_pieces_map_to_words():
    tok = PieceTok(PIECES)
    model = _unigram(tok, ["the cat sat."])
    [res] = sentence_surprisals(model, tok, ["the cat sat."])
    assert [t.token for t in res.tokens[:-1]] == ["the", " cat", " sat", "."]
    assert [w.word for w in res.words] == ["the", "cat", "sat.", "</s>"]
    assert [w.n_tokens for w in res.words] == [1, 1, 2, 1]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abc .", min_size=1, max_size=25))
def test_spans_partition_the_text_for_round_tripping_tokenizers(text):
    for tok in (CharTok(list("abc .")), PieceTok(PIECES)):
        ids = tok.encode(text)
        spans = token_spans(tok, text, ids)
        assert spans[0][0] == 0 and spans[-1][1] == len(text)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        assert "".join(text[a:b] for a, b in spans) == text


def test_unk_is_scored_and_flagged_and_spans_survive_a_lossy_tokenizer():
    tok = WordTok(["the", "cat", "sat"])
    model = _unigram(tok, ["the cat sat"])
    [res] = sentence_surprisals(model, tok, ["the  dog sat"])  # double space, unknown word
    assert [w.word for w in res.words] == ["the", "dog", "sat", "</s>"]
    assert [w.has_unk for w in res.words] == [False, True, False, False]
    assert [w.n_tokens for w in res.words] == [1, 1, 1, 1]


def test_refusing_unk_names_the_characters():
    from chainrule.errors import TokenizerError

    tok = CharTok(list(ALPHABET))
    model = UniformModel(tok.vocab_size, tok.bos_id, tok.eos_id)
    with pytest.raises(TokenizerError, match="'Z'"):
        sentence_surprisals(model, tok, ["abZ"], allow_unk=False)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_written_files_hold_every_row(tmp_path, suffix):
    tok = CharTok(list(ALPHABET))
    model = _unigram(tok, ["abc de."])
    results = sentence_surprisals(model, tok, ["abc de.", "a b"])
    out = write_surprisal(results, tmp_path / f"w{suffix}", words=True)
    if suffix == ".csv":
        rows = list(csv.DictReader(out.read_text().splitlines()))
    else:
        rows = [json.loads(line) for line in out.open()]
    assert len(rows) == sum(len(r.words) for r in results)
    assert {"sentence_id", "word_index", "word", "surprisal_bits", "n_tokens"} <= set(rows[0])
    assert [r["word"] for r in rows] == ["abc", "de.", "</s>", "a", "b", "</s>"]
    total = sum(float(r["surprisal_bits"]) for r in rows if str(r["sentence_id"]) == "0")
    assert total == pytest.approx(results[0].total_bits, rel=1e-5)
    tokfile = write_surprisal(results, tmp_path / f"t{suffix}", words=False)
    assert tokfile.exists()


def test_unknown_output_suffix_is_refused(tmp_path):
    from chainrule.errors import ConfigError

    tok = CharTok(list(ALPHABET))
    res = sentence_surprisals(UniformModel(tok.vocab_size, 0, 1), tok, ["ab"])
    with pytest.raises(ConfigError, match=r"\.csv or \*\.jsonl"):
        write_surprisal(res, tmp_path / "out.txt")
