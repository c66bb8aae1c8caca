"""The ladder on a tiny corpus with tiny budgets: the report files, finite perplexities, and the
first lesson of the lecture's table (a bigram beats a unigram on held-out text)."""

from __future__ import annotations

import csv
import json
import math
import random

import pytest

from chainrule.cli import main
from chainrule.evaluation.ladder import LadderConfig, run_ladder, split_lines

NOUNS = ["cat", "dog", "king", "queen", "horse", "lord"]
VERBS = ["sees", "loves", "fears", "follows"]
PREPS = ["with", "near", "behind"]


def _corpus(path, n=300, seed=0):
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = ["the", rng.choice(NOUNS), rng.choice(VERBS), "the", rng.choice(NOUNS)]
        if rng.random() < 0.5:
            words += [rng.choice(PREPS), "a", rng.choice(NOUNS)]
        lines.append(" ".join(words) + " .")
    path.write_text("\n".join(lines) + "\n\n")  # a trailing blank line is skipped
    return path


TINY = {"ffnn": {"n_embd": 8, "n_hidden": 16, "block_size": 8, "batch_size": 4},
        "lstm": {"n_embd": 8, "n_hidden": 8, "block_size": 8, "batch_size": 4},
        "gpt": {"n_embd": 8, "n_head": 2, "n_layer": 1, "block_size": 8, "batch_size": 4}}


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    pytest.importorskip("matplotlib")
    tmp = tmp_path_factory.mktemp("ladder")
    corpus = _corpus(tmp / "corpus.txt")
    pairs = tmp / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps({
        "sentence_good": g, "sentence_bad": b, "UID": "order", "field": "syntax",
        "linguistics_term": "word_order"}) for g, b in [
        ("the cat sees the dog .", "cat the sees dog the ."),
        ("the king fears the queen .", "the fears king queen the ."),
    ]) + "\n")
    cfg = LadderConfig(data=(str(corpus),), output=str(tmp / "report"), min_count=1,
                       neural_iters=20, neural_overrides=TINY, pairs=(str(pairs),),
                       sample_tokens=8)
    return run_ladder(cfg)


def test_report_files_and_every_rung_is_finite(ladder):
    data, results = ladder
    out = data.out_dir
    for name in ("report.md", "results.csv", "results.json", "ladder.png", "tokenizer.json"):
        assert (out / name).is_file(), name
    assert [r.rung for r in results] == ["unigram", "bigram", "trigram", "kn5", "ffnn", "lstm",
                                         "gpt"]
    for r in results:
        assert r.status == "ok", (r.rung, r.reason)
        assert math.isfinite(r.test_ppl) and r.test_ppl >= 1.0
        assert r.parameters is not None and r.parameters > 0
        assert r.train_seconds is not None and r.train_seconds >= 0
        assert 0.0 <= r.pairs_accuracy <= 1.0
        assert (out / "models" / r.rung / "config.json").is_file()
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [row["rung"] for row in rows] == [r.rung for r in results]
    md = (out / "report.md").read_text()
    assert "| unigram |" in md and "ladder.png" in md


def test_bigram_beats_unigram_on_held_out_text(ladder):
    _, results = ladder
    ppl = {r.rung: r.test_ppl for r in results}
    assert ppl["bigram"] < ppl["unigram"]
    # the perplexity is no larger than the vocabulary a uniform guess would give
    assert ppl["unigram"] < ladder[0].tokenizer.vocab_size


def test_word_order_pairs_are_solved_by_the_ngrams(ladder):
    _, results = ladder
    acc = {r.rung: r.pairs_accuracy for r in results}
    assert acc["trigram"] == 1.0 and acc["unigram"] == 0.0  # unigram: equal bags of words tie


def test_ladder_cli_json_and_saved_models_work_with_eval(tmp_path, capsys):
    corpus = _corpus(tmp_path / "c.txt", n=120)
    rc = main(["ladder", "--data", str(corpus), "-o", str(tmp_path / "r"),
               "--rungs", "unigram,bigram", "--min-count", "1", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["rung"] for r in out["results"]] == ["unigram", "bigram"]
    # a rung's model directory is a normal model: surprisal works on it
    rc = main(["eval", "surprisal", str(tmp_path / "r" / "models" / "bigram"), "--data",
               str(corpus), "--words", "-o", str(tmp_path / "s.csv")])
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert rows[0]["word"] == "the" and float(rows[0]["surprisal_bits"]) >= 0


def test_bad_rung_and_bad_split_are_one_sentence(tmp_path, capsys):
    corpus = _corpus(tmp_path / "c.txt", n=20)
    assert main(["ladder", "--data", str(corpus), "-o", str(tmp_path / "r"),
                 "--rungs", "unigram,septagram"]) == 2
    err = capsys.readouterr().err
    assert "septagram" in err and "Traceback" not in err
    assert main(["ladder", "--data", str(corpus), "-o", str(tmp_path / "r"),
                 "--split", "0.5,0.5"]) == 2
    assert "--split" in capsys.readouterr().err


def test_split_is_contiguous_by_lines():
    lines = [str(i) for i in range(10)]
    assert split_lines(lines, (0.8, 0.1, 0.1)) == (lines[:8], lines[8:9], lines[9:])
