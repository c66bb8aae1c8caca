"""Reading-time fit against model quality (issue 13): regression over kept surprisals, the
text perplexity and the ΔLL-perplexity correlation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule.errors import DataError
from chainrule.evaluation.reading_times import (
    RTWord,
    analyse,
    regress_surprisals,
    story_surprisals,
)
from chainrule.evaluation.rt_quality import quality_correlation, text_perplexity
from chainrule.models.reference import UnigramModel
from chainrule.tokenizers import train_tokenizer


def _words(n_docs=2, reps=8, seed=0):
    rng = np.random.default_rng(seed)
    story = ["the", "cat", "sat", "on", "the", "mat", ".", "a", "dog", "ran", "to", "the",
             "old", "mat", "."] * reps
    return [RTWord(str(d), z, w, float(280 + 15 * len(w) + rng.normal(0, 20)))
            for d in range(1, n_docs + 1) for z, w in enumerate(story, 1)]


def test_regression_over_kept_surprisals_equals_scoring_and_regressing():
    words = _words()
    text = "the cat sat on the mat . a dog ran"
    tok = train_tokenizer("word", [text], min_count=1, mode="whitespace")
    model = UnigramModel(tok.vocab_size, tok.bos_id, tok.eos_id)
    model.fit([[tok.bos_id, *tok.encode(text), tok.eos_id]])
    direct = analyse([("u", model, tok)], words, allow_unk=True, folds=4)
    kept = {"u": story_surprisals(model, tok, words, allow_unk=True)}
    again = regress_surprisals(kept, words, folds=4)
    assert again.n_used == direct.n_used and again.unk_words == direct.unk_words
    assert again.delta["u"].delta_ll == pytest.approx(direct.delta["u"].delta_ll, abs=1e-12)
    # "old" and "to" are <unk> here: those words and the words after them are left out
    assert direct.unk_words["u"] == 2 * 2 * 8 and direct.n_used < len(words) - 2


def test_regression_uses_the_same_rows_for_every_model_and_checks_lengths():
    words = _words(reps=6)
    n = len(words)
    rng = np.random.default_rng(3)
    good = np.array([2.0 * len(w.word) + rng.normal(0, 0.1) for w in words])
    unk = np.zeros(n, dtype=bool)
    unk[5] = True  # one model's <unk> removes rows 5 and 6 (spillover) for both
    res = regress_surprisals({"a": (good, np.zeros(n, bool)), "b": (rng.normal(size=n), unk)},
                             words, folds=5)
    assert res.n_used == res.delta["a"].n == res.delta["b"].n == n - 2 - 2  # + 1st of each doc
    with pytest.raises(DataError, match="a: 3 surprisals for 180 words"):
        regress_surprisals({"a": (good[:3], unk[:3])}, words, folds=5)


def test_text_perplexity_hand_worked():
    assert text_perplexity(np.array([1.0, 3.0])) == pytest.approx(4.0)  # 2 ** mean(1, 3)
    assert text_perplexity(np.array([1.0, 3.0, 20.0]), np.array([0, 0, 1])) == pytest.approx(4.0)
    with pytest.raises(DataError, match="no word without <unk>"):
        text_perplexity(np.array([5.0]), np.array([True]))


def test_quality_correlation_hand_worked():
    # ΔLL falls by 0.01 nats at every doubling of perplexity: exactly linear in log2(ppl)
    c = quality_correlation([2, 4, 8, 16], [0.04, 0.03, 0.02, 0.01])
    assert c.n == 4 and c.pearson_log_ppl == pytest.approx(-1.0)
    assert c.spearman == pytest.approx(-1.0) and c.slope == pytest.approx(-0.01)
    # ties share their average rank: ranks (1, 2.5, 2.5, 4) against (4, 3, 2, 1)
    tied = quality_correlation([1, 5, 5, 9], [4, 3, 2, 1])
    r = np.array([1, 2.5, 2.5, 4]) - 2.5
    assert tied.spearman == pytest.approx((r @ np.array([1.5, .5, -.5, -1.5])) /
                                          math.sqrt((r @ r) * 5))
    with pytest.raises(DataError, match="at least 3"):
        quality_correlation([2, 4], [0.1, 0.2])
    with pytest.raises(DataError, match="positive"):
        quality_correlation([2, 0, 4], [0.1, 0.2, 0.3])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(1.5, 1e5), st.floats(-0.05, 0.1)), min_size=3,
                max_size=12, unique_by=lambda t: t[0]))
def test_quality_correlation_matches_scipy(pairs):
    stats = pytest.importorskip("scipy.stats")
    ppl, dll = map(np.array, zip(*pairs))
    if np.ptp(dll) < 1e-9:
        return
    c = quality_correlation(ppl, dll)
    assert c.pearson_log_ppl == pytest.approx(stats.pearsonr(np.log(ppl), dll)[0], abs=1e-9)
    assert c.spearman == pytest.approx(stats.spearmanr(ppl, dll)[0], abs=1e-9)


def test_ladder_report_states_the_dll_perplexity_correlation(tmp_path, capsys):
    import json

    from chainrule.cli import main

    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat .\nthe dog sat on a mat .\na cat ran .\n" * 20)
    words = ("the cat sat on the mat . the dog ran on a mat . " * 4).split()
    rows = ["word\tzone\titem\tmeanItemRT"]
    rows += [f"{w}\t{z}\t1\t{300 + 15 * len(w) + 7 * (z % 3)}" for z, w in enumerate(words, 1)]
    table = tmp_path / "rt.tsv"
    table.write_text("\n".join(rows) + "\n")
    assert main(["ladder", "--data", str(corpus), "-o", str(tmp_path / "r"), "--rungs",
                 "unigram,bigram,trigram", "--min-count", "1", "--reading-times", str(table),
                 "--freq-corpus", str(corpus), "--json"]) == 0
    capsys.readouterr()
    saved = json.loads((tmp_path / "r" / "psycholinguistics.json").read_text())
    ppl = {r["rung"]: r["test_ppl"]
           for r in json.loads((tmp_path / "r" / "results.json").read_text())["results"]}
    names = [r["rung"] for r in saved["rows"]]
    want = quality_correlation([ppl[n] for n in names],
                               [saved["rt"]["models"][n]["delta_ll"] for n in names])
    assert saved["quality"]["n"] == 3
    assert saved["quality"]["spearman"] == pytest.approx(want.spearman)
    assert saved["quality"]["pearson_log_ppl"] == pytest.approx(want.pearson_log_ppl)
    assert "ΔLL against test perplexity over 3 rungs" in (tmp_path / "r" / "report.md").read_text()


def test_dll_plot_colours_groups(tmp_path):
    pytest.importorskip("matplotlib")
    from chainrule.evaluation.psych_plots import plot_dll_vs_ppl

    out = plot_dll_vs_ppl(["kn3", "kn5", "gpt"], [150.0, 140.0, 120.0], [0.001, 0.001, 0.002],
                          [0.0005, 0.0005, 0.001], tmp_path / "d.png", xlabel="ppl",
                          groups=["ngram", "ngram", "gpt"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.pyplot as plt

    assert not plt.get_fignums()  # the figure was closed
