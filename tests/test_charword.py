"""Character-composed word embeddings in the LSTM, and open-vocabulary word probabilities."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch

from chainrule.embeddings.openvocab import (
    perplexity_by_group,
    spelling_mass_outside,
    spelling_words,
    word_logprobs,
)
from chainrule.embeddings.spelling import END, SpellingModel
from chainrule.errors import ConfigError
from chainrule.models.charword import CharWordEmbedding, spell
from chainrule.models.lstm import LSTM
from chainrule.models.neural import LSTMConfig
from chainrule.tokenizers.word import WordTokenizer

TRAIN = ["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog",
         "the dog ate the bone", "a cat ate the fish"] * 3


def _model(word_repr="char-cnn", full=0):
    tok = WordTokenizer.train(TRAIN, min_count=2, mode="whitespace")
    cfg = LSTMConfig(vocab_size=tok.vocab_size, n_embd=16, n_hidden=16, n_layer=1, dropout=0.0,
                     tie_weights=False, word_repr=word_repr, char_full_words=full,
                     bos_id=tok.bos_id, eos_id=tok.eos_id)
    torch.manual_seed(0)
    model = LSTM(cfg)
    model.attach_tokenizer(tok)
    return model, tok


def test_spelling_marks_specials_and_words_apart():
    assert spell("<unk>", special=True) != spell("<unk>")
    assert spell("ab") == [1, 4 + ord("a"), 4 + ord("b"), 2]


def test_spelling_model_conditionals_and_total_sum_to_one():
    m = SpellingModel(order=3, alphabet=b"ab").fit(["ab", "abb", "ba", "a", "zz"])  # zz skipped
    for ctx in [(), (ord("a"),), (ord("a"), ord("b")), (ord("b"), ord("b"))]:
        assert sum(m.prob(ctx, s) for s in [ord("a"), ord("b"), END]) == pytest.approx(1.0)
    # every string over {a, b} up to length 14: the total approaches one from below
    total = sum(math.exp(m.logprob("".join(w))) for n in range(15)
                for w in itertools.product("ab", repeat=n))
    assert 0.99 < total <= 1.0 + 1e-9


def test_char_model_embeds_unseen_word_and_keeps_frequent_rows():
    model, tok = _model(full=5)
    emb = model.embedding
    assert isinstance(emb, CharWordEmbedding) and emb.full.weight.shape == (5, 16)
    with emb.open_vocabulary(["Goldbergian", "LSTMification"]) as ids:
        v = emb(torch.tensor(ids))
        assert ids[0] == tok.vocab_size and torch.isfinite(v).all()
        assert not torch.allclose(v[0], v[1])  # different spellings, different vectors
    with pytest.raises(IndexError):
        emb(torch.tensor([tok.vocab_size]))  # outside the block, new ids are refused


def test_open_vocabulary_probability_is_finite_and_normalised():
    for word_repr in ("char-cnn", "table"):
        model, tok = _model(word_repr)
        spelling = SpellingModel(order=3).fit(spelling_words(TRAIN, tok))
        log_z = spelling_mass_outside(spelling, tok)
        assert log_z < 0
        scored = word_logprobs(model, tok, spelling, [["the", "Goldbergian", "cat"]], log_z)[0]
        (_, _, in0), (_, lp1, in1), *_ = scored
        assert in0 and not in1 and math.isfinite(lp1) and lp1 < 0
        # normalisation at the unseen word's position: V's words + the strings outside V
        with torch.no_grad():
            h, _ = model.hidden(torch.tensor([[tok.bos_id, tok.token_to_id("the")]]))
            p = torch.softmax(model.head(h)[0, -1].double(), -1)
        outside = sum(math.exp(spelling.logprob(w)) for w in ["Goldbergian", "cow", "xyz"])
        p_unk = float(p[tok.unk_id])
        assert math.exp(lp1) == pytest.approx(
            p_unk * math.exp(spelling.logprob("Goldbergian") - log_z), rel=1e-4)
        # the outside words share P(<unk>) and can never exceed it
        assert p_unk * outside / math.exp(log_z) < p_unk
        assert float(p.sum()) == pytest.approx(1.0)
    groups = perplexity_by_group([scored], Counter(w for s in TRAIN for w in s.split()))
    assert groups["unseen"]["tokens"] == 1 and groups["all"]["tokens"] == 4


def test_char_lstm_trains_saves_and_loads(tmp_path, capsys):
    import numpy as np

    from chainrule.training.config import TrainConfig
    from chainrule.training.loop import train

    tok = WordTokenizer.train(TRAIN, min_count=2, mode="whitespace")
    ids = np.array([i for s in TRAIN for i in [tok.bos_id, *tok.encode(s), tok.eos_id]])
    cfg = TrainConfig(family="lstm", model={
        "n_embd": 16, "n_hidden": 16, "n_layer": 1, "dropout": 0.0, "tie_weights": False,
        "word_repr": "char-cnn",
        "char_full_words": 4}, block_size=8, batch_size=4, max_iters=20, eval_interval=20,
        eval_iters=2, learning_rate=1e-2)
    summary = train(cfg, ids, None, tmp_path / "m", tokenizer=tok, progress=False, plot=False)
    from chainrule.models.base import load_model

    model = load_model(tmp_path / "m")
    assert model.embedding.spellings[tok.token_to_id("cat")].tolist()[:5] == spell("cat")
    assert summary["steps"] == 20 and math.isfinite(summary["last_loss"])
    assert summary["last_loss"] < math.log(tok.vocab_size)  # learnt something
    # the CLI: open-vocabulary perplexity by word group, one JSON object
    import json

    from chainrule.cli import main

    (tmp_path / "train.txt").write_text("\n".join(TRAIN) + "\ngnu\n")
    (tmp_path / "test.txt").write_text("the Goldbergian cat sat\n")
    capsys.readouterr()
    assert main(["embed", "openvocab", str(tmp_path / "m"), "--train", str(tmp_path / "train.txt"),
                 "--test", str(tmp_path / "test.txt"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["unseen"]["tokens"] == 1 and math.isfinite(r["unseen"]["ppl"])
    assert r["spelling_words"] == 1  # "gnu": the one training token outside the vocabulary


def test_char_cnn_needs_untied_weights():
    with pytest.raises(ConfigError, match="tie_weights"):
        LSTMConfig(vocab_size=10, word_repr="char-cnn", tie_weights=True)
