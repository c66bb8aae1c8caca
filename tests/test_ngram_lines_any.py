"""n-gram scoring with any tokenizer (models/ngram/lines.py ``score_encoded_lines``): BPE,
character and regex word tokenizers are scored with numpy arrays only, and give the general path's scores
(``score_sequences`` through ``token_logprobs``) bit for bit, with the compiled kernel and with
the numpy reference, lines longer than a scoring window included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainrule.errors import ConfigError
from chainrule.evaluation import perplexity as ppl_mod
from chainrule.evaluation.perplexity import perplexity
from chainrule.models.ngram import lines as lines_mod
from chainrule.models.ngram.train import train_ngram
from chainrule.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer

TEXT = ["the cat sat on the mat", "a dog ran", "naïve café 日本", "the the cat", "mat on cat"]


@pytest.fixture(scope="module", params=["char", "bpe", "word-regex"])
def model_tok(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("ngram_any") / "train.txt"
    rng = np.random.default_rng(0)
    path.write_text("\n".join(TEXT[i] for i in rng.integers(0, len(TEXT), 300)) + "\n",
                    encoding="utf-8")
    if request.param == "char":
        tok = CharTokenizer.train([path.read_text(encoding="utf-8")])
    elif request.param == "bpe":
        tok = BPETokenizer.train([path.read_text(encoding="utf-8")], vocab_size=60)
    else:  # words and punctuation (the compiled word path takes whitespace words only)
        tok = WordTokenizer.train([path.read_text(encoding="utf-8")], mode="regex")
    res = train_ngram(path, order=5, smoothing="mkn", tokenizer=tok)
    return res.model, res.tokenizer


line = st.lists(st.sampled_from(["the", "cat", " ", "日本", "é", "zq", "\t", "mat", "x"]),
                max_size=12).map("".join)


def _check_identical(model, tok, lines):
    got = lines_mod.score_encoded_lines(model, tok, lines)
    hooks = type(model).score_ids  # score_sequences would take the same numpy path
    type(model).score_ids = None
    try:
        lp, targets, words, nbytes = ppl_mod._score_framed(model, tok, lines, None)
    finally:
        type(model).score_ids = hooks
    assert got.logprobs.tobytes() == lp.tobytes()
    assert np.array_equal(got.targets, targets)
    assert (got.words, got.bytes) == (words, nbytes)
    assert got.offsets[-1] == got.targets.size and got.offsets.size == len(lines) + 1


@pytest.mark.parametrize("compiled", [True, False])
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(lines=st.lists(line, min_size=1, max_size=8))
def test_scores_equal_the_general_path(model_tok, compiled, lines, monkeypatch):
    model, tok = model_tok
    if not compiled:
        monkeypatch.setattr(lines_mod, "query_index", lambda tables, bos: None)
    _check_identical(model, tok, lines)


@pytest.mark.parametrize("compiled", [True, False])
def test_long_lines_and_small_batches(model_tok, compiled, monkeypatch):
    model, tok = model_tok
    if not compiled:
        monkeypatch.setattr(lines_mod, "query_index", lambda tables, bos: None)
        monkeypatch.setattr(lines_mod, "_REFERENCE_BATCH_TOKENS", 40)  # many padded batches
    lines = TEXT + ["", " ".join(TEXT * 60), "zzz unseen", "日本"]  # one line > 1024 tokens
    _check_identical(model, tok, lines)
    fast = perplexity(model, tok, lines)
    monkeypatch.setattr(type(model), "score_lines", lambda self, t, x: None)
    monkeypatch.setattr(type(model), "score_ids", None)  # the torch path
    assert fast == perplexity(model, tok, lines)  # the whole report, floats bit for bit


def test_ids_outside_the_model_are_refused_like_the_general_path(model_tok):
    model, _ = model_tok
    many = "".join(chr(c) for c in range(0x4E00, 0x4E00 + 2 * model.vocab_size))
    bigger = CharTokenizer.train([many])
    assert bigger.vocab_size > model.vocab_size
    with pytest.raises(ConfigError, match="token ids must lie in"):
        lines_mod.score_encoded_lines(model, bigger, [many])


def test_hand_example_bigram(tmp_path):
    # char bigram MLE on "ab": P(a|<s>) = 1, P(b|a) = 1, P(</s>|b) = 1 -> every score 0
    path = tmp_path / "t.txt"
    path.write_text("ab\nab\n", encoding="utf-8")
    tok = CharTokenizer.train(["ab"])
    model = train_ngram(path, order=2, smoothing="mle", tokenizer=tok).model
    got = lines_mod.score_encoded_lines(model, tok, ["ab", "b"])
    assert got.logprobs[:3].tolist() == [0.0, 0.0, 0.0]
    assert got.logprobs[3] == -np.inf  # "b" never follows <s>
    assert got.offsets.tolist() == [0, 3, 5] and (got.words, got.bytes) == (4, 5)
