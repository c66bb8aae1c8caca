"""The perplexity evaluator: KenLM-style counts, per word, bits per byte, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from chainrule.cli import main
from chainrule.evaluation.perplexity import perplexity, perplexity_of_file
from chainrule.models.ngram.train import save_ngram, train_ngram
from chainrule.models.reference import UniformModel
from chainrule.tokenizers import CharTokenizer, WordTokenizer

TEXT = ["the cat sat", "a dog", "", "the zebra sat down"]


def test_uniform_model_hand_worked():
    tok = WordTokenizer.from_vocab(["the", "cat", "sat", "a", "dog"], mode="whitespace")
    V = tok.vocab_size
    model = UniformModel(V, tok.bos_id, tok.eos_id)
    r = perplexity(model, tok, TEXT)
    # 9 words + 4 sentence ends; zebra and down are OOV
    assert (r.tokens, r.oov, r.sentences, r.words) == (13, 2, 4, 13)
    assert r.bytes == sum(len(t) + 1 for t in TEXT)
    assert r.perplexity == pytest.approx(V)
    assert r.perplexity_excl_oov == pytest.approx(V)
    assert r.logprob == pytest.approx(-13 * math.log(V))
    assert r.log10prob == pytest.approx(-13 * math.log10(V))
    assert r.bits_per_byte == pytest.approx(13 * math.log2(V) / r.bytes)


def test_oov_exclusion_and_per_word(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat\nthe dog sat\na cat sat\nthe cat ran\n" * 5)
    res = train_ngram(corpus, order=2, smoothing="addk")
    r = perplexity(res.model, res.tokenizer, TEXT)
    tok, m = res.tokenizer, res.model
    lps = []
    for line in TEXT:
        ids = [tok.bos_id, *tok.encode(line), tok.eos_id]
        lps += list(m.token_logprobs(np.array([ids]))[0].double().numpy())
        targets = ids[1:]
        if line == TEXT[-1]:
            oov_mask = [t == tok.unk_id for t in targets]
    lps = np.array(lps)
    assert r.perplexity == pytest.approx(math.exp(-lps.sum() / 13))
    last = lps[-5:]
    excl = lps.sum() - last[np.array(oov_mask)].sum()
    assert r.perplexity_excl_oov == pytest.approx(math.exp(-excl / 11))
    assert r.perplexity_per_word == pytest.approx(r.perplexity)  # whitespace tokens are words


def test_char_and_word_models_share_word_and_byte_denominators(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat\nthe dog sat\na cat sat on the mat\n" * 5)
    word = train_ngram(corpus, order=2, smoothing="kn")
    chars = CharTokenizer.train(["the cat sat", "the dog sat", "a cat sat on the mat", "zebra"])
    char = train_ngram(corpus, order=4, smoothing="kn", tokenizer=chars)
    text = ["the cat sat on the mat", "a dog sat"]
    a = perplexity(word.model, word.tokenizer, text)
    b = perplexity(char.model, char.tokenizer, text)
    assert (a.words, a.bytes) == (b.words, b.bytes)
    assert a.tokens == a.words and b.tokens == b.bytes  # one token per char (ASCII) + one end
    # the same total probability normalised by the same text-based denominators
    assert b.perplexity_per_word == pytest.approx(math.exp(-b.logprob / b.words))
    assert b.bits_per_byte == pytest.approx(-b.logprob / math.log(2) / b.bytes)


def test_cli_eval_ppl_json(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat\nthe dog sat\na cat sat\n" * 4)
    for order in (1, 2):
        res = train_ngram(corpus, order=order, smoothing="addk")
        save_ngram(res.model, res.tokenizer, tmp_path / f"m{order}")
    data = tmp_path / "test.txt"
    data.write_text("the cat sat\na dog ran\n")
    code = main(["eval", "ppl", str(tmp_path / "m1"), str(tmp_path / "m2"), "--data", str(data),
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and len(out["models"]) == 2 and "OOV" in out["oov_policy"].upper()
    for m in out["models"]:
        for key in ("perplexity", "perplexity_excl_oov", "tokens", "oov",
                    "perplexity_per_word", "bits_per_byte"):
            assert key in m
        assert (m["tokens"], m["oov"]) == (8, 1)
    direct = perplexity_of_file(res.model, res.tokenizer, data)
    assert out["models"][1]["perplexity"] == pytest.approx(direct.perplexity)
    assert main(["eval", "ppl", str(tmp_path / "m1"), "--data", str(data)]) == 0
    assert "ppl_per_word" in capsys.readouterr().out


def test_cli_eval_ppl_bad_input(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat\n" * 3)
    res = train_ngram(corpus, order=1, smoothing="mle")
    save_ngram(res.model, res.tokenizer, tmp_path / "m")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    for argv in (
        ["eval", "ppl", str(tmp_path / "m"), "--data", str(tmp_path / "missing.txt")],
        ["eval", "ppl", str(tmp_path), "--data", str(corpus)],  # not a model directory
        ["eval", "ppl", str(tmp_path / "m"), "--data", str(empty)],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err
