"""Parity with KenLM: the PyPI ``kenlm`` module on ARPA files we write, and ``lmplz``'s own
ARPA files and ``query`` perplexities on Brown (shared data)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from chainrule.cli import main
from chainrule.errors import ModelFormatError
from chainrule.evaluation.perplexity import perplexity_of_file
from chainrule.models.ngram.arpa import read_arpa
from chainrule.models.ngram.train import export_arpa, import_arpa, save_ngram, train_ngram

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REFERENCE = SHARED / "kenlm-reference"


def zipf_corpus(path: Path, n_sentences: int = 2500, seed: int = 0) -> list[str]:
    """Sentences over a Zipfian vocabulary with some local structure: enough for discounts."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(300)]
    weights = 1.0 / np.arange(1, 301)
    weights /= weights.sum()
    lines = []
    for _ in range(n_sentences):
        n = int(rng.integers(1, 14))
        ids = rng.choice(300, size=n, p=weights)
        ids[1::2] = (ids[::2][: ids[1::2].size] + 1) % 300  # a word often follows its neighbour
        lines.append(" ".join(vocab[i] for i in ids))
    path.write_text("\n".join(lines) + "\n")
    return lines


def our_sentence_log10(model, tok, line: str) -> float:
    ids = [tok.bos_id, *tok.encode(line), tok.eos_id]
    return float(model.token_log10probs(np.array([ids]))[0].sum())


@pytest.mark.parametrize(
    "smoothing, order, prune",
    [("mkn", 3, None), ("mkn", 5, None), ("kn", 4, None), ("addk", 3, None), ("mkn", 3, [0, 1, 2])],
)
def test_kenlm_scores_our_arpa_files_like_we_do(tmp_path, smoothing, order, prune):
    kenlm = pytest.importorskip("kenlm")
    corpus = tmp_path / "train.txt"
    lines = zipf_corpus(corpus)
    res = train_ngram(corpus, order=order, smoothing=smoothing, prune=prune)
    save_ngram(res.model, res.tokenizer, tmp_path / "m")
    km = kenlm.Model(str(tmp_path / "m" / "model.arpa"))
    probe = lines[:50] + ["w1 w2 unseenword w3", "", "w299 w299 w299"]
    for line in probe:
        ours = our_sentence_log10(res.model, res.tokenizer, line)
        assert ours == pytest.approx(km.score(line, bos=True, eos=True), abs=1e-4), line


def test_arpa_round_trip_through_import(tmp_path):
    corpus = tmp_path / "train.txt"
    lines = zipf_corpus(corpus, 800)
    res = train_ngram(corpus, order=3, smoothing="mkn")
    save_ngram(res.model, res.tokenizer, tmp_path / "m")
    export_arpa(tmp_path / "m", tmp_path / "x.arpa.gz")
    imported = import_arpa(tmp_path / "x.arpa.gz", tmp_path / "i")
    from chainrule.tokenizers import load_tokenizer

    tok_i = load_tokenizer(tmp_path / "i")
    for line in lines[:30] + ["w5 never-seen w7"]:
        a = our_sentence_log10(res.model, res.tokenizer, line)
        b = our_sentence_log10(imported, tok_i, line)
        assert a == pytest.approx(b, abs=1e-5)


@pytest.mark.parametrize(
    "text, where",
    [
        ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\tx\n\n\\end\\\n", "line 6"),
        ("\\data\\\nngram 1=3\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n\n\\end\\\n", "line 7"),
        ("\\data\\\nngram 1=2\n\n\\2-grams:\n", "line 4"),
        ("hello\n", "no \\data\\ header"),
    ],
)
def test_malformed_arpa_names_the_line(tmp_path, capsys, text, where):
    bad = tmp_path / "bad.arpa"
    bad.write_text(text)
    with pytest.raises(ModelFormatError, match=where.replace("\\", "\\\\")):
        read_arpa(bad)
    assert main(["ngram", "import-arpa", str(bad), "-o", str(tmp_path / "m")]) == 2
    assert "Traceback" not in capsys.readouterr().err


# -- lmplz / query parity on Brown ----------------------------------------------------------
QUERY_PPL = {3: (379.17263662822825, 261.03688220182306), 5: (376.3565048380745, 259.1330979991586)}


@pytest.mark.shared_data
@pytest.mark.parametrize("order", [3, pytest.param(5, marks=pytest.mark.slow)])
def test_lmplz_parity_on_brown(order):
    arpa = REFERENCE / f"brown-train.o{order}.arpa.gz"
    if not arpa.exists():
        pytest.skip("shared data (kenlm-reference) not available")
    res = train_ngram(SHARED / "brown" / "train.txt", order=order, smoothing="mkn")
    model, tok = res.model, res.tokenizer
    vocab = {tok.id_to_token(i): i for i in range(tok.vocab_size)}
    ref, _ = read_arpa(arpa, vocab)
    ours = model.tables
    for k in range(order):
        assert np.array_equal(ref.keys[k], ours.keys[k]), f"different {k + 1}-gram sets"
        keep = np.isfinite(ref.prob[k])  # <pad> has no line in the reference
        assert np.abs(ref.prob[k][keep] - ours.prob[k][keep]).max() < 1e-4
        assert np.abs(ref.backoff[k] - ours.backoff[k]).max() < 1e-4
    report = perplexity_of_file(model, tok, SHARED / "brown" / "test.txt")
    incl, excl = QUERY_PPL[order]
    assert (report.tokens, report.oov) == (171297, 7664)
    assert report.perplexity == pytest.approx(incl, abs=0.01)
    assert report.perplexity_excl_oov == pytest.approx(excl, abs=0.01)
    assert math.isclose(report.perplexity_per_word, report.perplexity)
