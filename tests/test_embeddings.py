"""Word vectors: PPMI by hand, word2vec on planted clusters, analogies, formats, the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("scipy")

from chainrule.cli import main
from chainrule.embeddings import (
    WordVectors,
    analogy,
    encode,
    evaluate_analogies,
    ppmi,
    spearman,
    train_word2vec,
)
from chainrule.embeddings.counts import cooccurrence, svd_vectors
from chainrule.embeddings.word2vec import compiled_kernel, keep_probabilities
from chainrule.errors import ConfigError, DataError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "embeddings"


def test_ppmi_hand_worked_3x3():
    # counts #(w, c); row sums 4, 2, 4; column sums 4, 4, 2; total 10
    counts = np.array([[2.0, 2.0, 0.0], [0.0, 1.0, 1.0], [2.0, 1.0, 1.0]])
    # plain PPMI (alpha = 1): PMI(w, c) = log(#(w,c) * 10 / (#w * #c))
    got = ppmi(counts, alpha=1.0).toarray()
    want = np.array([[math.log(20 / 16), math.log(20 / 16), 0.0],
                     [0.0, math.log(10 / 8), math.log(10 / 4)],
                     [math.log(20 / 16), 0.0, math.log(10 / 8)]])  # log(10/16) < 0 -> 0
    np.testing.assert_allclose(got, want, atol=1e-12)
    # smoothed contexts (alpha = 0.75): P(c) = #c^0.75 / sum #c'^0.75
    cs = np.array([4.0, 4.0, 2.0]) ** 0.75
    want_b_c3 = math.log((1 / 10) / ((2 / 10) * cs[2] / cs.sum()))
    assert ppmi(counts, alpha=0.75).toarray()[1, 2] == pytest.approx(want_b_c3)
    assert want_b_c3 < want[1, 2]  # smoothing lowers the PMI of the rare context


def test_cooccurrence_window_and_weighting():
    corpus = encode([["a", "b", "c"], ["a", "b"]], min_count=1)  # ids by frequency: a, b, c
    m = cooccurrence(corpus, window=2, weighting="none").toarray()
    a, b, c = (corpus.words.index(w) for w in "abc")
    assert m[a, b] == 2 and m[a, c] == 1 and m[b, c] == 1 and np.allclose(m, m.T)
    h = cooccurrence(corpus, window=2, weighting="harmonic").toarray()
    assert h[a, c] == pytest.approx(0.5)  # distance 2
    assert cooccurrence(corpus, window=1).toarray()[a, c] == 0  # sentences never join


def test_svd_recovers_rank():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(30, 2)) @ rng.normal(size=(2, 20))
    v = svd_vectors(m, dim=2, power=1.0)
    np.testing.assert_allclose(v @ v.T, m @ m.T, rtol=1e-4, atol=1e-4)  # U S S U^T = M M^T


def _clusters(n_sent=600, seed=0):
    rng = np.random.default_rng(seed)
    a = [f"a{i}" for i in range(6)]
    b = [f"b{i}" for i in range(6)]
    return [list(rng.choice(a if rng.random() < 0.5 else b, size=8)) for _ in range(n_sent)], a, b


@pytest.mark.parametrize("backend", ["compiled", "torch"])
@pytest.mark.parametrize("method", ["sgns", "cbow"])
def test_word2vec_separates_planted_clusters(method, backend):
    if backend == "compiled" and compiled_kernel() is None:
        pytest.skip("the compiled word2vec kernel is not built")
    sents, a, b = _clusters()
    v, stats = train_word2vec(encode(sents, 1), method=method, dim=16, window=3, epochs=5,
                              sample=0, backend=backend, seed=3)
    assert stats["backend"] == backend
    within = np.mean([v.similarity(x, y) for g in (a, b) for x in g for y in g if x != y])
    across = np.mean([v.similarity(x, y) for x in a for y in b])
    assert within - across > 0.5, (within, across)
    assert all(n.startswith(w[0]) for w in a + b for n, _ in v.neighbours(w, 3))


def test_subsampling_keeps_rare_words():
    keep = keep_probabilities(np.array([1_000_000, 10, 1]), 1e-3)
    assert keep[0] < 0.1 and keep[1] == keep[2] == 1.0


def _toy_vectors():
    words = ["man", "woman", "king", "queen", "apple"]
    m = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 0, 1]], float)
    return WordVectors(words, m)


def test_analogy_known_answer_and_exclusion():
    v = _toy_vectors()
    for method in ("add", "mul"):
        assert analogy(v, "man", "woman", "king", method)[0][0] == "queen"
    # man : man :: king : ? points exactly at king; the rule leaves the query words out
    got = [w for w, _ in analogy(v, "man", "man", "king", k=5)]
    assert got[0] == "queen" and "king" not in got and "man" not in got and len(got) == 3
    assert analogy(v, "man", "woman", "prince") is None  # not covered, no error
    res = evaluate_analogies(v, [("s", ("man", "woman", "king", "queen")),
                                 ("s", ("man", "woman", "prince", "princess"))])
    assert res["overall"] == {"correct": 1, "covered": 1, "total": 2, "accuracy": 1.0,
                              "coverage": 0.5}


@pytest.mark.parametrize("suffix", [".txt", ".bin", ".safetensors"])
def test_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(1)
    v = WordVectors(["the", "Straße", "x-1", "naïve"], rng.normal(size=(4, 7)))
    back = WordVectors.load(v.save(tmp_path / f"v{suffix}"))
    assert back.words == v.words
    np.testing.assert_allclose(back.matrix, v.matrix, rtol=1e-5, atol=1e-6)


def test_binary_matches_gensim_if_present(tmp_path):
    gensim = pytest.importorskip("gensim")
    from gensim.models import KeyedVectors

    v = WordVectors(["a", "bb", "ccc"], np.arange(9, dtype=float).reshape(3, 3))
    v.save(tmp_path / "v.bin")
    kv = KeyedVectors.load_word2vec_format(str(tmp_path / "v.bin"), binary=True)
    np.testing.assert_allclose(kv["bb"], [3, 4, 5])
    kv.save_word2vec_format(str(tmp_path / "g.txt"), binary=False)
    assert WordVectors.load(tmp_path / "g.txt").words == ["a", "bb", "ccc"]
    assert gensim


def test_inconsistent_dimensions_name_the_line(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("3 2\na 1 2\nb 1 2 3\nc 1 2\n")
    with pytest.raises(DataError, match="line 3 has 3 numbers"):
        WordVectors.load(p)
    b = tmp_path / "bad.bin"
    b.write_bytes(b"2 3\na " + np.zeros(3, "<f4").tobytes() + b"\nb " + b"\0" * 5)
    with pytest.raises(DataError, match="entry 2"):
        WordVectors.load(b)


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 5, 40), rng.normal(size=40)  # ties in x
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)


def test_plot_labels_do_not_overlap(tmp_path):
    pytest.importorskip("matplotlib")
    from chainrule.embeddings.plot import plot_words

    rng = np.random.default_rng(0)
    words = [f"word{i}" for i in range(25)]
    v = WordVectors(words, rng.normal(size=(25, 5)) * 0.01)  # crowded points
    info = plot_words(v, words, tmp_path / "p.png")
    assert info["overlaps"] == 0 and (tmp_path / "p.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="zzz"):
        plot_words(v, ["word1", "zzz", "word2"], tmp_path / "q.png")


def test_cli_train_neighbours_analogy(tmp_path, capsys):
    sents, _, _ = _clusters(300)
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(" ".join(s) for s in sents) + "\n")
    out = tmp_path / "v.bin"
    assert main(["embed", "train", str(corpus), "-o", str(out), "--dim", "8", "--min-count",
                 "1", "--method", "ppmi-svd", "--window", "2"]) == 0
    assert WordVectors.load(out).dim == 8
    capsys.readouterr()
    assert main(["embed", "analogy", str(out), "a0", "a1", "nope"]) == 0
    assert "not covered" in capsys.readouterr().out
    assert main(["embed", "neighbours", str(out), "nope"]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.shared_data
def test_benchmark_files_read():
    if not DATA.is_dir():
        pytest.skip("../shared/data/embeddings is absent")
    from chainrule.embeddings.evaluate import evaluate_all

    words = ["king", "queen", "man", "woman", "tiger", "cat"]
    v = WordVectors(words, np.random.default_rng(0).normal(size=(6, 4)))
    r = evaluate_all(v, DATA)
    assert r["wordsim353"]["total"] == 353 and r["simlex999"]["total"] == 999
    assert r["analogy"]["overall"]["total"] == 19544
    assert r["analogy"]["sections"]["family"]["covered"] >= 1


@pytest.mark.parametrize("suffix", [".txt", ".bin"])
def test_round_trip_property(tmp_path, suffix):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    word = st.text(st.characters(blacklist_categories=("Z", "C")), min_size=1, max_size=8)

    @settings(max_examples=25, deadline=None)
    @given(st.lists(word, min_size=1, max_size=6, unique=True), st.integers(1, 5), st.data())
    def check(words, dim, data):
        values = data.draw(st.lists(st.floats(-1e3, 1e3, width=32), min_size=len(words) * dim,
                                    max_size=len(words) * dim))
        v = WordVectors(words, np.array(values, np.float32).reshape(len(words), dim))
        back = WordVectors.load(v.save(tmp_path / f"h{suffix}"))
        assert back.words == words
        np.testing.assert_allclose(back.matrix, v.matrix, rtol=1e-5, atol=1e-30)

    check()
