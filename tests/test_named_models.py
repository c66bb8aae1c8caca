"""load_named_models (evaluation/stimuli.py): the one way eval suite / reading-times / surprisal
load and name their models -- names checked before any model loads, basenames made unique."""

from __future__ import annotations

import pytest

from chainrule.errors import ConfigError, ModelFormatError
from chainrule.evaluation.stimuli import load_named_models
from chainrule.models.ngram.train import save_ngram, train_ngram


def test_names_are_unique_basenames_or_given(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat\nthe dog ran\n", encoding="utf-8")
    res = train_ngram(corpus, order=2)
    for d in ("a/m", "b/m"):
        save_ngram(res.model, res.tokenizer, tmp_path / d)
    loaded = load_named_models([tmp_path / "a/m", tmp_path / "b/m"])
    assert [n for n, _, _ in loaded] == ["m", "m-2"]
    assert all(m.family == "ngram" and t.vocab_size == res.tokenizer.vocab_size
               for _, m, t in loaded)
    named = load_named_models([tmp_path / "a/m"], ["bigram"])
    assert named[0][0] == "bigram" and named[0][1].order == 2


def test_bad_names_fail_before_any_model_loads(tmp_path):
    with pytest.raises(ConfigError, match="--name was given 1 times for 2 models"):
        load_named_models([tmp_path / "absent1", tmp_path / "absent2"], ["x"])
    with pytest.raises(ModelFormatError):
        load_named_models([tmp_path / "absent1"])
