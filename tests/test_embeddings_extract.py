"""Word vectors out of models: input embeddings and averaged contextual states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chainrule.embeddings.extract import contextual_vectors, input_embeddings, n_layers
from chainrule.errors import ConfigError
from chainrule.models.neural import build_neural_model
from chainrule.tokenizers.word import WordTokenizer

TEXT = ["the cat sat on the mat", "a dog sat on a log", "the dog saw the cat"]


def _build(family, **kw):
    tok = WordTokenizer.train(TEXT, mode="whitespace")
    torch.manual_seed(0)
    model = build_neural_model(family, vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                               eos_id=tok.eos_id, **kw).eval()
    if hasattr(model, "attach_tokenizer"):
        model.attach_tokenizer(tok)
    return model, tok


@pytest.mark.parametrize("family,kw,attr", [
    ("lstm", {"n_embd": 8, "n_hidden": 8, "n_layer": 1}, "embedding"),
    ("ffnn", {"order": 3, "n_embd": 8, "n_hidden": 8}, "C"),
    ("gpt", {"n_layer": 2, "n_head": 2, "n_embd": 8, "block_size": 16}, None),
])
def test_input_embeddings_are_the_rows_labelled_by_word(family, kw, attr):
    model, tok = _build(family, **kw)
    v = input_embeddings(model, tok)
    assert set(v.words) == set(" ".join(TEXT).split())  # specials left out
    weight = (getattr(model, attr).weight if attr else model.transformer["wte"].weight).detach()
    for w in ("cat", "log"):
        np.testing.assert_allclose(v.vector(w), weight[tok.token_to_id(w)].numpy())


def test_lstm_layer0_average_is_the_embedding_and_top_layer_is_contextual():
    model, tok = _build("lstm", n_embd=8, n_hidden=8, n_layer=1)
    sents = [s.split() for s in TEXT]
    v0 = contextual_vectors(model, tok, sents, layer=0)
    np.testing.assert_allclose(v0.vector("dog"), input_embeddings(model, tok).vector("dog"),
                               rtol=1e-5, atol=1e-6)
    top = contextual_vectors(model, tok, sents, layer=-1, min_count=2)
    assert "mat" not in top and top.dim == 8  # seen once
    with pytest.raises(ConfigError, match="layer"):
        contextual_vectors(model, tok, sents, layer=5)


def test_gpt_contextual_vectors_per_layer():
    model, tok = _build("gpt", n_layer=2, n_head=2, n_embd=8, block_size=16)
    assert n_layers(model) == 2
    sents = [s.split() for s in TEXT]
    a = contextual_vectors(model, tok, sents, layer=1)
    b = contextual_vectors(model, tok, sents, layer=2)
    assert a.words == b.words and not np.allclose(a.matrix, b.matrix)


def test_char_composed_lstm_extracts_composed_vectors():
    model, tok = _build("lstm", n_embd=8, n_hidden=8, n_layer=1, tie_weights=False,
                        word_repr="char-cnn")
    v = input_embeddings(model, tok)
    with torch.no_grad():
        want = model.embedding(torch.tensor([tok.token_to_id("cat")]))[0]
    np.testing.assert_allclose(v.vector("cat"), want.numpy(), rtol=1e-5, atol=1e-6)
