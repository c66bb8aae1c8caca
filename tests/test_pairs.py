"""Minimal pairs: reading BLiMP files, the full and one-prefix methods, summaries, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _eval_helpers import CharTok, WordTok
from chainrule.errors import ConfigError, DataError, TokenizerError
from chainrule.evaluation.pairs import read_pairs, score_pairs, summarise
from chainrule.models.reference import UniformModel, UnigramModel

BLIMP = Path(__file__).resolve().parents[2] / "shared" / "data" / "blimp-dev"
WORDS = ["the", "cat", "dog", "sat", "ran", "a"]


def _model():
    tok = WordTok(WORDS)
    corpus = ["the cat sat"] * 8 + ["the cat ran"] * 3 + ["a dog sat"]
    seqs = [[tok.bos_id, *tok.encode(t), tok.eos_id] for t in corpus]
    return tok, UnigramModel(tok.vocab_size, tok.bos_id, tok.eos_id).fit(seqs)


def _write(path: Path, rows: list, blank_lines: bool = False) -> Path:
    text = "\n".join(json.dumps(r) if isinstance(r, dict) else r for r in rows) + "\n"
    if blank_lines:
        text = "\n" + text.replace("\n", "\n\n")
    path.write_text(text)
    return path


def _row(good, bad, uid="p1", term="agreement", field="syntax", **kw):
    return {"sentence_good": good, "sentence_bad": bad, "UID": uid,
            "linguistics_term": term, "field": field, **kw}


def test_full_method_accuracy_on_a_model_with_a_known_answer(tmp_path):
    tok, model = _model()
    # unigram: cat (11) > dog (1), sat (9) > ran (3): the first two pairs are right,
    # the third prefers the bad sentence, the fourth is a tie (counts wrong)
    f = _write(tmp_path / "p.jsonl", [
        _row("the cat sat", "the dog sat"),
        _row("a cat ran", "a dog ran", uid="p2", term="other"),
        _row("the dog ran", "the cat ran", uid="p2", term="other"),
        _row("the cat sat", "the sat cat", uid="p3", field="syntax/semantics"),
    ], blank_lines=True)
    pairs = read_pairs([f])
    assert len(pairs) == 4  # blank lines skipped
    scores = score_pairs(model, tok, pairs)
    assert scores.correct == [True, True, False, False]
    s = summarise(scores)
    assert s["overall"] == {"n": 4, "correct": 2, "accuracy": 0.5}
    assert s["ties"] == 1
    assert s["UID"]["p2"]["accuracy"] == 0.5 and s["UID"]["p3"]["accuracy"] == 0.0
    assert s["linguistics_term"]["other"]["n"] == 2
    assert set(s["field"]) == {"syntax", "syntax_semantics"}


def test_field_spellings_are_merged(tmp_path):
    f = _write(tmp_path / "p.jsonl", [
        _row("the cat", "cat the", field="syntax/semantics"),
        _row("the cat", "cat the", field="syntax_semantics"),
        _row("the cat", "cat the", field="Syntax-Semantics"),
    ])
    assert {p.field for p in read_pairs([f])} == {"syntax_semantics"}


def test_prefix_method_compares_only_the_word(tmp_path):
    tok, model = _model()
    # whole sentences would tie on length effects; the prefix method looks at cat vs dog only
    f = _write(tmp_path / "p.jsonl", [
        _row("the cat sat", "the dog sat", one_prefix_prefix="the",
             one_prefix_word_good="cat", one_prefix_word_bad="dog"),
        _row("the dog sat", "the cat sat", one_prefix_prefix="the",
             one_prefix_word_good="dog", one_prefix_word_bad="cat"),
    ])
    scores = score_pairs(model, tok, read_pairs([f]), method="prefix")
    assert scores.correct == [True, False]
    # a unigram's P(word | prefix) is just P(word): check the number itself
    lp = model.start(__import__("torch").tensor([[tok.bos_id]]))[0][0]
    assert scores.logp_good[0] == pytest.approx(float(lp[tok.token_to_id("cat")]), rel=1e-6)


def test_prefix_method_with_a_char_model_counts_the_space_and_every_letter(tmp_path):
    tok = CharTok(list("abcdefghijklmnopqrstuvwxyz "))
    model = UniformModel(tok.vocab_size, tok.bos_id, tok.eos_id)
    f = _write(tmp_path / "p.jsonl", [
        _row("the cats", "the cat", one_prefix_prefix="the",
             one_prefix_word_good="cats", one_prefix_word_bad="cat")])
    scores = score_pairs(model, tok, read_pairs([f]), method="prefix")
    import math
    # " cats" = 5 characters, " cat" = 4, each log(1/V)
    assert scores.logp_good[0] == pytest.approx(-5 * math.log(tok.vocab_size), rel=1e-6)
    assert scores.logp_bad[0] == pytest.approx(-4 * math.log(tok.vocab_size), rel=1e-6)


def test_prefix_method_refuses_files_without_prefix_fields(tmp_path):
    tok, model = _model()
    f = _write(tmp_path / "p.jsonl", [_row("the cat", "the dog")])
    with pytest.raises(ConfigError, match=r"p\.jsonl:1.*--method full"):
        score_pairs(model, tok, read_pairs([f]), method="prefix")


def test_missing_field_names_file_and_line(tmp_path):
    f = _write(tmp_path / "bad.jsonl", [_row("a", "b"), {"sentence_good": "the cat"}])
    with pytest.raises(DataError, match=r"bad\.jsonl:2 has no 'sentence_bad'"):
        read_pairs([f])
    g = _write(tmp_path / "notjson.jsonl", [_row("a", "b"), "{not json"])
    with pytest.raises(DataError, match=r"notjson\.jsonl:2 is not valid JSON"):
        read_pairs([g])
    with pytest.raises(DataError, match="holds no pairs"):
        read_pairs([_write(tmp_path / "empty.jsonl", [""])])


def test_optional_fields_default(tmp_path):
    f = _write(tmp_path / "myparadigm.jsonl", [{"sentence_good": "a", "sentence_bad": "b"}])
    [p] = read_pairs([f])
    assert (p.uid, p.term, p.field, p.prefix) == ("myparadigm", "unknown", "unknown", None)


def test_text_the_tokenizer_cannot_encode_is_refused_with_its_characters(tmp_path):
    tok = CharTok(list("abcdefghijklmnopqrstuvwxyz "))
    model = UniformModel(tok.vocab_size, tok.bos_id, tok.eos_id)
    f = _write(tmp_path / "p.jsonl", [_row("the cat", "the Cat!")])
    with pytest.raises(TokenizerError, match=r"'C', '!'.*p\.jsonl:1.*--allow-unk"):
        score_pairs(model, tok, read_pairs([f]))
    assert len(score_pairs(model, tok, read_pairs([f]), allow_unk=True).correct) == 1


@pytest.mark.shared_data
@pytest.mark.skipif(not BLIMP.is_dir(), reason="../shared/data/blimp-dev is absent")
def test_every_blimp_dev_file_reads_and_fields_are_normalised():
    files = sorted(BLIMP.glob("*.jsonl"))
    pairs = read_pairs(files)
    assert len(pairs) == 1000 * len(files)
    assert len({p.uid for p in pairs}) == len(files)
    assert {p.field for p in pairs} <= {"morphology", "syntax", "semantics", "syntax_semantics"}
    with_prefix = {p.uid for p in pairs if p.prefix is not None}
    assert "anaphor_gender_agreement" in with_prefix and "ellipsis_n_bar_1" not in with_prefix
    # every sentence is scored: a uniform char model over the files' own characters
    chars = sorted({c for p in pairs[::50] for c in p.good + p.bad})
    tok = CharTok(chars)
    model = UniformModel(tok.vocab_size, tok.bos_id, tok.eos_id)
    s = summarise(score_pairs(model, tok, pairs[::50]))
    # a uniform model prefers the shorter sentence, nothing else
    expected = sum(len(p.good) < len(p.bad) for p in pairs[::50])
    assert s["overall"]["correct"] == expected


def _saved_char_unigram(tmp_path, text="the cat sat on the mat .\nthe dog sat .\n"):
    from chainrule.tokenizers import train_tokenizer

    tok = train_tokenizer("char", [text])
    seqs = [[tok.bos_id, *tok.encode(line), tok.eos_id] for line in text.splitlines()]
    model = UnigramModel(tok.vocab_size, tok.bos_id, tok.eos_id).fit(seqs)
    d = model.save(tmp_path / "model")
    tok.save(d / "tokenizer.json")
    return d


def test_cli_json_plot_and_bad_input(tmp_path, capsys):
    from chainrule.cli import main

    d = _saved_char_unigram(tmp_path)
    f = _write(tmp_path / "p.jsonl", [_row("the cat", "the cxt"), _row("a cat", "a tac")])
    assert main(["eval", "pairs", str(d), "--data", str(f), "--json"]) == 2
    err = capsys.readouterr().err
    assert "'x'" in err and "p.jsonl:1" in err and "Traceback" not in err  # 'x' is unseen
    f = _write(tmp_path / "p.jsonl", [_row("the cat", "the tca"), _row("a cat", "a ccat")])
    args = ["eval", "pairs", str(d), "--data", str(f), "--allow-unk"]
    if __import__("importlib").util.find_spec("matplotlib"):
        args += ["--plot", str(tmp_path / "pairs.png")]
    assert main(args + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    summary = out["models"][d.name]  # models are named by their directory's basename
    # unigram: "the tca" has the same letters (a tie: wrong); "a ccat" has one more letter
    assert summary["overall"]["correct"] == 1 and summary["ties"] == 1
    if "--plot" in args:
        assert (tmp_path / "pairs.png").stat().st_size > 0
    assert main(args) == 0  # the text table says how many pairs tied
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in table if line.startswith("ties (counted wrong)")] == ["1"]
    assert main(["eval", "pairs", str(tmp_path), "--data", str(f)]) == 2
    assert "not a chainrule model directory" in capsys.readouterr().err


def test_cli_surprisal_writes_csv(tmp_path, capsys):
    import csv

    from chainrule.cli import main

    d = _saved_char_unigram(tmp_path)
    data = tmp_path / "s.txt"
    data.write_text("the cat\n\nsat .\n")
    assert main(["eval", "surprisal", str(d), "--data", str(data), "--words",
                 "-o", str(tmp_path / "o.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "o.csv").read_text().splitlines()))
    assert [r["word"] for r in rows] == ["the", "cat", "</s>", "sat", ".", "</s>"]
    assert [r["sentence_id"] for r in rows] == ["0", "0", "0", "1", "1", "1"]
    assert main(["eval", "surprisal", str(d), "--data", str(data), "-o",
                 str(tmp_path / "o.txt")]) == 2
