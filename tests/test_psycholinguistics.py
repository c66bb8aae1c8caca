"""Psycholinguistics: stimuli tables, boundary-corrected word surprisal, SyntaxGym suites,
reading-time regression (issue 13)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from _eval_helpers import PieceTok
from chainrule.errors import ConfigError, DataError
from chainrule.evaluation.reading_times import lagged, pieces, read_reading_times
from chainrule.evaluation.rt_regression import delta_loglik, ols
from chainrule.evaluation.stimuli import Stimulus, model_names, read_stimuli
from chainrule.evaluation.syntaxgym import read_suite, run_suite
from chainrule.evaluation.syntaxgym_formula import evaluate, parse_formula
from chainrule.evaluation.word_surprisal import boundary_mask, score_words
from chainrule.models.reference import UniformModel, UnigramModel

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


class Bigram(UniformModel):
    """A fixed bigram table P(next | previous) -- for hand-worked examples."""

    family = "uniform"

    def __init__(self, table: dict[int, dict[int, float]], vocab_size: int):
        super().__init__(vocab_size, 0, 1)
        p = torch.full((vocab_size, vocab_size), 1e-30)
        for prev, row in table.items():
            for nxt, q in row.items():
                p[prev, nxt] = q
        self.log_p = p.log()

    def logprobs(self, tokens, source=None):
        return self.log_p[tokens]


def _byte_level():
    # PieceTok ids: <s> 0, </s> 1, <pad> 2, <unk> 3, then "a" 4, "b" 5, " a" 6, " b" 7
    tok = PieceTok(["a", "b", " a", " b"])
    table = {0: {4: .5, 5: .5},
             4: {5: .5, 6: .25, 1: .25},
             5: {6: .5, 7: .25, 4: .25},
             6: {1: .5, 5: .5}}
    return tok, Bigram(table, tok.vocab_size)


def test_boundary_correction_hand_worked_byte_level():
    tok, model = _byte_level()
    assert tok.encode("ab a") == [4, 5, 6]
    assert boundary_mask(tok, model).nonzero().flatten().tolist() == [1, 6, 7]
    [words] = score_words(model, tok, [Stimulus("ab a")])
    # "ab": P(a|<s>) P(b|a) P(bow|ab) = .5 * .5 * (.5 + .25) = 3/16
    # "a":  P(" a"|b) / P(bow|b) * P(bow|ab a) = .5 / .75 * (.5 + 0) = 1/3
    # </s>: P(</s>|" a") / P(bow|" a") = .5 / .5 = 1
    assert [w.word for w in words] == ["ab", "a", "</s>"]
    got = [w.surprisal_bits for w in words]
    assert got == pytest.approx([math.log2(16 / 3), math.log2(3), 0.0], abs=1e-6)
    assert sum(got) == pytest.approx(4.0, abs=1e-6)  # -log2 P(sentence) is unchanged
    [raw] = score_words(model, tok, [Stimulus("ab a")], correct=False)
    assert [w.surprisal_bits for w in raw] == pytest.approx([2.0, 1.0, 1.0], abs=1e-6)
    assert all(w.corrected for w in words) and not any(w.corrected for w in raw)


def test_context_is_conditioned_on_but_not_scored():
    tok, model = _byte_level()
    [words] = score_words(model, tok, [Stimulus("a", context="ab")], eos=False)
    assert [(w.word, w.word_index, w.start, w.end) for w in words] == [("a", 0, 0, 1)]
    assert words[0].surprisal_bits == pytest.approx(math.log2(3), abs=1e-6)


def test_csv_with_quoted_commas_and_context_round_trips(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text('item,condition,sentence,ctx\n1,"gram, plain","the cat, sat .",the\n'
                 '2,ungram,"cat the , sat",""\n')
    stims = read_stimuli(f, context_column="ctx")
    assert [s.text for s in stims] == ["the cat, sat .", "cat the , sat"]
    assert [s.context for s in stims] == ["the", ""]
    assert stims[0].fields == {"item": "1", "condition": "gram, plain"}
    with pytest.raises(DataError, match="no column 'text'.*--column"):
        read_stimuli(f, column="text")
    j = tmp_path / "s.jsonl"
    j.write_text(json.dumps({"id": 7, "s": "the cat"}) + "\n")
    [s] = read_stimuli(j, column="s")
    assert (s.text, s.fields) == ("the cat", {"id": "7"})


def _char_model(tmp_path, text="the cat sat on the mat .\nthe dog sat .\n", name="model"):
    from chainrule.tokenizers import train_tokenizer

    tok = train_tokenizer("char", [text])
    seqs = [[tok.bos_id, *tok.encode(line), tok.eos_id] for line in text.splitlines()]
    d = UnigramModel(tok.vocab_size, tok.bos_id, tok.eos_id).fit(seqs).save(tmp_path / name)
    tok.save(d / "tokenizer.json")
    return d


def test_cli_surprisal_many_models_long_and_wide(tmp_path, capsys):
    from chainrule.cli import main

    a, b = _char_model(tmp_path, name="a"), _char_model(tmp_path, "the the the .\n", name="b")
    f = tmp_path / "s.csv"
    f.write_text('item,condition,sentence,ctx\n1,"x, y","the cat, sat",the\n')
    out = tmp_path / "o.csv"
    assert main(["eval", "surprisal", str(a), str(b), "--data", str(f), "--words",
                 "--context-column", "ctx", "--unk", "score", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "words with <unk>: a 1, b 2" in printed  # "cat," under a (the comma); "cat," and "sat" under b
    rows = list(csv.DictReader(out.open()))
    assert {r["model"] for r in rows} == {"a", "b"}
    assert [r["word"] for r in rows if r["model"] == "a"] == ["the", "cat,", "sat", "</s>"]
    assert all(r["item"] == "1" and r["condition"] == "x, y" for r in rows)
    wide = tmp_path / "w.csv"
    assert main(["eval", "surprisal", str(a), str(b), "--name", "A", "--name", "B", "--data",
                 str(f), "--words", "--wide", "--unk", "score", "-o", str(wide)]) == 0
    wrows = list(csv.DictReader(wide.open()))
    assert len(wrows) == 4 and float(wrows[0]["A"]) > 0 and float(wrows[0]["B"]) > 0
    # the default policy refuses <unk>, with one sentence naming the way out
    assert main(["eval", "surprisal", str(a), "--data", str(f), "--words", "-o",
                 str(out)]) == 2
    assert "--unk score" in capsys.readouterr().err


def test_model_names():
    assert model_names(["x/m1/", "y/m1", "z/kn5"]) == ["m1", "m1-2", "kn5"]
    with pytest.raises(ConfigError, match="one name per model"):
        model_names(["a", "b"], ["x"])


def test_cli_pairs_items_in_bits(tmp_path, capsys):
    from chainrule.cli import main

    d = _char_model(tmp_path)
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"sentence_good": "the cat", "sentence_bad": "the tca"}) + "\n"
                 + json.dumps({"sentence_good": "a cat", "sentence_bad": "a ccat"}) + "\n")
    items = tmp_path / "items.csv"
    assert main(["eval", "pairs", str(d), "--data", str(f), "--items", str(items)]) == 0
    out = capsys.readouterr().out
    assert [ln.split()[-1] for ln in out.splitlines() if ln.startswith("ties")] == ["1"]
    rows = list(csv.DictReader(items.open()))
    assert [r["tie"] for r in rows] == ["1", "0"] and rows[0]["model"] == "model"
    # "a ccat" has one more 'c' than "a cat" under a unigram: exactly -log2 P(c) bits lower
    model = UnigramModel.from_directory(d, json.loads((d / "config.json").read_text()))
    from chainrule.tokenizers.base import load_tokenizer

    c = load_tokenizer(d / "tokenizer.json").encode("c")[0]
    assert float(rows[1]["diff_bits"]) == pytest.approx(-float(model.log_p_[c]) / math.log(2),
                                                        abs=1e-5)


# -- SyntaxGym -------------------------------------------------------------------------------

@pytest.mark.parametrize("formula,value", [
    ("(1;%a%) < (1;%b%)", True), ("(1;%a%) > (1;%b%)", False),
    ("(1;%a%) = 1", True), ("(1;%a%) <= 1", True), ("(1;%a%) >= 1.5", False),
    ("[(1;%b%) - (1;%a%)] = 2", True), ("(1;%a%) + (2;%a%) = 5", True),
    ("(1;%b%) * 2 = 6", True), ("(1;%b%) / 3 = 1", True), ("-(1;%a%) < 0", True),
    ("[(1;%a%) < 0] | [(1;%b%) > 2]", True), ("[(1;%a%) < 2] & [(1;%b%) > 3]", False),
    ("[ (1;%a%)+(2;%a%) ] < [ (1;%b%)+(2;%b%) ]", True),
    ("(1;%a%) - (1;%b%) - 1 = -3", True),  # left associative
])
def test_formula_operators(formula, value):
    regions = {(1, "a"): 1.0, (2, "a"): 4.0, (1, "b"): 3.0, (2, "b"): 5.0}
    assert evaluate(parse_formula(formula), lambda r, c: regions[(r, c)]) is value


@pytest.mark.parametrize("formula,where", [
    ("(1;%a%) < ", "character 11"), ("[(1;%a%) < (1;%b%)", "expected ']'"),
    ("(1;a) < 2", "character 1"), ("(1;%a%) 2", "character 9"),
])
def test_malformed_formula_says_where(formula, where):
    with pytest.raises(DataError, match=rf"s\.json prediction 1.*{where}"):
        parse_formula(formula, where="s.json prediction 1")


def _suite(tmp_path, formula="[(2;%good%) < (2;%bad%)]", metric="sum"):
    def cond(name, verb):
        return {"condition_name": name, "regions": [
            {"region_number": 1, "content": "the cat"}, {"region_number": 2, "content": verb},
            {"region_number": 3, "content": ""}, {"region_number": 4, "content": "."}]}
    suite = {"meta": {"name": "number_toy", "metric": metric}, "region_meta": {"2": "verb"},
             "predictions": [{"type": "formula", "formula": formula}],
             "items": [{"item_number": 1, "conditions": [cond("good", "sat on"),
                                                          cond("bad", "sat the")]}]}
    p = tmp_path / "s.json"
    p.write_text(json.dumps(suite))
    return p


def test_suite_region_alignment_is_exact_for_multi_token_regions(tmp_path):
    from chainrule.tokenizers import train_tokenizer

    text = "the cat sat on the mat ."  # no newline: ' ' is the only whitespace token
    tok = train_tokenizer("char", [text])
    model = UnigramModel(tok.vocab_size, tok.bos_id, tok.eos_id).fit(
        [[tok.bos_id, *tok.encode(text), tok.eos_id]])
    for metric in ("sum", "mean"):
        suite = read_suite(_suite(tmp_path, metric=metric))
        res = run_suite(model, tok, suite)
        lp = model.log_p_.double() / -math.log(2)  # bits per character
        bow = -math.log2(math.exp(float(model.log_p_[tok.encode(" ")[0]]))
                         + math.exp(float(model.log_p_[model.eos_id])))

        def bits(s, lp=lp):
            return float(sum(lp[i] for i in tok.encode(s)))
        # unigram: a region's boundary terms cancel except the first word's missing one
        expected = {1: bits("the cat") + bow, 2: bits(" sat on"), 3: 0.0, 4: bits(" .")}
        n_tokens = {1: 7, 2: 7, 3: 0, 4: 2}
        if metric == "mean":
            expected = {r: v / n_tokens[r] if n_tokens[r] else 0.0
                        for r, v in expected.items()}
        got = res.regions[0]["good"]
        assert got == pytest.approx(expected, abs=1e-6)
        # the prediction reads region 2 of both conditions
        assert res.correct == [[got[2] < res.regions[0]["bad"][2]]]
        if metric == "sum":  # 'on' (o, n) vs 'the' (t, h, e) under the unigram decides it
            assert res.correct == [[bits(" on") < bits(" the")]] == [[True]]
        else:  # per token: 24.05 / 7 > 25.62 / 8
            assert res.correct == [[False]]


def test_suite_bad_input_is_one_sentence(tmp_path, capsys):
    from chainrule.cli import main

    d = _char_model(tmp_path)
    bad = _suite(tmp_path, formula="[(2;%good%) < (2;%bad%)")
    assert main(["eval", "suite", str(d), "--suite", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "s.json prediction 1" in err[0] and "']'" in err[0]
    missing = _suite(tmp_path, formula="(9;%good%) < (2;%bad%)")
    assert main(["eval", "suite", str(d), "--suite", str(missing)]) == 2
    assert "region 9" in capsys.readouterr().err
    ok = _suite(tmp_path)
    items = tmp_path / "items.csv"
    assert main(["eval", "suite", str(d), "--suite", str(ok), "--items", str(items),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["models"]["model"]
    assert summary["circuits"] == {"Agreement": summary["overall"]}
    rows = list(csv.DictReader(items.open()))
    assert {r["region_number"] for r in rows} == {"1", "2", "3", "4", "prediction_1"}


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "syntaxgym").is_dir(), reason="no shared SyntaxGym data")
def test_every_shared_suite_parses():
    suites = [read_suite(p) for p in sorted((SHARED / "syntaxgym").glob("*.json"))]
    assert len(suites) >= 10 and all(s.items and s.predictions for s in suites)
    assert all(s.circuit != "other" for s in suites)


# -- reading times ---------------------------------------------------------------------------

def test_synthetic_reading_times_recover_known_coefficients():
    rng = np.random.default_rng(0)
    n = 4000
    length = rng.integers(1, 12, n).astype(float)
    freq = rng.normal(-12, 3, n)
    surprisal = rng.gamma(2.0, 3.0, n)
    noise = rng.normal(0, 30, n)
    rt = 250 + 8 * length - 3 * freq + 6 * surprisal + noise
    X = np.column_stack([np.ones(n), length, freq, surprisal])
    assert ols(X, rt) == pytest.approx([250, 8, -3, 6], rel=0.05, abs=1.5)
    base = np.column_stack([length, freq])
    real = delta_loglik(base, surprisal[:, None], rt)
    null = delta_loglik(base, rng.normal(size=(n, 1)), rt)
    # a real effect: ΔLL is many standard errors above zero; the expected value for a
    # Gaussian is 0.5 * log(var_base / var_full)
    expected = 0.5 * math.log((30 ** 2 + 36 * surprisal.var()) / 30 ** 2)
    assert real.delta_ll == pytest.approx(expected, rel=0.1)
    assert real.delta_ll > 10 * real.se
    assert abs(null.delta_ll) < 3 * max(null.se, 1e-4)


def test_reading_time_table_and_story_alignment(tmp_path):
    story = tmp_path / "story.tsv"
    story.write_text("word\tzone\titem\nThe\t1\t1\ncat,\t2\t1\nsat.\t3\t1\nA\t1\t2\n")
    rts = tmp_path / "rt.tsv"
    rts.write_text("word\tzone\titem\tmeanItemRT\ncat,\t2\t1\t310\nThe\t1\t1\t300\n")
    words = read_reading_times(rts, story=story)
    assert [(w.doc, w.position, w.word, w.rt) for w in words] == [
        ("1", 1, "The", 300.0), ("1", 2, "cat,", 310.0), ("1", 3, "sat.", None),
        ("2", 1, "A", None)]
    assert lagged(np.array([1.0, 2, 3, 4]), ["1", "1", "1", "2"], 1)[:, 1].tolist()[1:3] == [
        1.0, 2.0]
    rts.write_text("word\tzone\titem\tmeanItemRT\nThe\t1\t1\t300\ndog\t2\t1\t310\n")
    with pytest.raises(DataError, match=r"rt\.tsv row 3 \(item 1, zone 2\).*'dog'.*'cat,'"):
        read_reading_times(rts, story=story)
    with pytest.raises(DataError, match="no column 'RT'.*--rt-column"):
        read_reading_times(rts, rt="RT")
    assert pieces("'cat,'", True) == ["'", "cat", ",", "'"] and pieces("cat,", False) == ["cat,"]


def test_cli_reading_times_end_to_end(tmp_path, capsys):
    from chainrule.cli import main

    text = "the cat sat on the mat .\nthe dog sat .\n"
    d = _char_model(tmp_path, text)
    rng = np.random.default_rng(1)
    rows = ["word\tzone\titem\tmeanItemRT"]
    words = ("the cat sat on the mat . the dog sat on a mat . " * 10).split()
    for doc in (1, 2):
        for z, w in enumerate(words, 1):
            rows.append(f"{w}\t{z}\t{doc}\t{300 + 20 * len(w) + rng.normal(0, 10):.1f}")
    table = tmp_path / "rt.tsv"
    table.write_text("\n".join(rows) + "\n")
    corpus = tmp_path / "c.txt"
    corpus.write_text(text)
    assert main(["eval", "reading-times", str(d), "--data", str(table), "--freq-corpus",
                 str(corpus), "--json", "--folds", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    m = out["models"]["model"]
    assert out["rows_used"] == m["n"] == 2 * (len(words) - 1)
    assert math.isfinite(m["delta_ll"]) and m["se"] >= 0


def test_ladder_report_gains_a_psycholinguistics_section(tmp_path, capsys):
    from chainrule.cli import main

    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat .\nthe dog sat on a mat .\n" * 20)
    rows = ["word\tzone\titem\tmeanItemRT"]
    words = ("the cat sat on the mat . the dog sat on a mat . " * 4).split()
    rows += [f"{w}\t{z}\t1\t{300 + 15 * len(w) + 7 * (z % 3)}" for z, w in enumerate(words, 1)]
    table = tmp_path / "rt.tsv"
    table.write_text("\n".join(rows) + "\n")
    suite = _suite(tmp_path)
    assert main(["ladder", "--data", str(corpus), "-o", str(tmp_path / "r"), "--rungs",
                 "unigram,bigram", "--min-count", "1", "--suites", str(suite),
                 "--reading-times", str(table), "--freq-corpus", str(corpus), "--json"]) == 0
    capsys.readouterr()
    report = (tmp_path / "r" / "report.md").read_text()
    section = report.split("## Psycholinguistics")[1]
    assert "| unigram |" in section and "| bigram |" in section and "ΔLL/word" in section
    saved = json.loads((tmp_path / "r" / "psycholinguistics.json").read_text())
    assert [r["rung"] for r in saved["rows"]] == ["unigram", "bigram"]
    assert set(saved["suites"]) == {"unigram", "bigram"}


def test_score_with_mass_windows_match_one_pass():
    from chainrule.models.scoring import score_sequences, score_with_mass

    tok, model = _byte_level()
    seq = [0] + tok.encode("ab a " * 499 + "ab a")  # 1500 tokens: longer than one window
    mask = boundary_mask(tok, model)
    [(lp, mass)] = score_with_mass(model, [seq], mask)
    x = torch.tensor([seq])
    full = model.logprobs(x)[0].double()
    assert lp == pytest.approx(score_sequences(model, [seq])[0], abs=1e-9)
    assert mass == pytest.approx(full[:, mask].logsumexp(-1).numpy(), abs=1e-5)  # float32
    assert len(lp) == len(seq) - 1 and len(mass) == len(seq)


def test_input_columns_named_like_output_columns_are_kept(tmp_path):
    from chainrule.evaluation.surprisal_table import surprisal_table
    from chainrule.evaluation.textscore import load_model_and_tokenizer

    d = _char_model(tmp_path)
    f = tmp_path / "s.csv"
    f.write_text("word,model,sentence\ncat,mine,the cat\n")
    m, tok = load_model_and_tokenizer(d)
    table = surprisal_table([("m", m, tok)], read_stimuli(f))
    assert table.carried == ["input_word", "input_model"]
    assert [(r["input_word"], r["word"], r["model"]) for r in table.rows[:2]] == [
        ("cat", "the", "m"), ("cat", "cat", "m")]


def test_cli_pairs_items_with_the_prefix_method(tmp_path, capsys):
    """`eval pairs --method prefix --items`: the words, and log2 P(word | <s> prefix) in bits."""
    from chainrule.cli import main
    from chainrule.tokenizers.base import load_tokenizer

    d = _char_model(tmp_path)
    f = tmp_path / "p.jsonl"
    rows_in = [("the", "cat", "ccat"), ("a", "dog", "dog")]
    f.write_text("".join(json.dumps({
        "sentence_good": f"{p} {g}", "sentence_bad": f"{p} {b}", "one_prefix_prefix": p,
        "one_prefix_word_good": g, "one_prefix_word_bad": b}) + "\n" for p, g, b in rows_in))
    items = tmp_path / "items.csv"
    assert main(["eval", "pairs", str(d), "--data", str(f), "--method", "prefix",
                 "--items", str(items)]) == 0
    capsys.readouterr()
    rows = list(csv.DictReader(items.open()))
    assert [(r["sentence_good"], r["sentence_bad"]) for r in rows] == [("cat", "ccat"),
                                                                       ("dog", "dog")]
    model = UnigramModel.from_directory(d, json.loads((d / "config.json").read_text()))
    tok = load_tokenizer(d / "tokenizer.json")

    def bits(s):  # a unigram: the word's characters and the space before it (its boundary)
        return float(sum(model.log_p_[i] for i in tok.encode(s))) / math.log(2)
    assert float(rows[0]["logp_good_bits"]) == pytest.approx(bits(" cat"), abs=1e-5)
    assert float(rows[0]["logp_bad_bits"]) == pytest.approx(bits(" ccat"), abs=1e-5)
    assert float(rows[0]["diff_bits"]) == pytest.approx(-bits("c"), abs=1e-5)
    assert (rows[0]["correct"], rows[0]["tie"]) == ("1", "0")
    assert (rows[1]["correct"], rows[1]["tie"]) == ("0", "1")


def test_unk_refusal_in_a_suite_names_the_item_and_condition(tmp_path):
    from chainrule.errors import TokenizerError
    from chainrule.tokenizers import train_tokenizer

    text = "the cat sat on mat ."  # no "x" anywhere: "sat xx" becomes <unk>
    tok = train_tokenizer("char", [text])
    model = UnigramModel(tok.vocab_size, tok.bos_id, tok.eos_id).fit(
        [[tok.bos_id, *tok.encode(text), tok.eos_id]])
    suite = json.loads(_suite(tmp_path).read_text())
    suite["items"].append({"item_number": 7, "conditions": [
        {"condition_name": "good", "regions": [{"region_number": 1, "content": "the cat"},
                                               {"region_number": 2, "content": "sat on"}]},
        {"condition_name": "bad", "regions": [{"region_number": 1, "content": "the cat"},
                                              {"region_number": 2, "content": "sat xx"}]}]})
    p = tmp_path / "unk.json"
    p.write_text(json.dumps(suite))
    with pytest.raises(TokenizerError, match=r"unk\.json item 7, condition 'bad'"):
        run_suite(model, tok, read_suite(p))
    # a stimuli table names the item and condition columns too
    with pytest.raises(TokenizerError, match=r"stimulus 2: item 4, condition 'ungrammatical'"):
        score_words(model, tok, [Stimulus("the cat"),
                                 Stimulus("sat xx", fields={"item": "4",
                                                            "condition": "ungrammatical"})],
                    allow_unk=False)
