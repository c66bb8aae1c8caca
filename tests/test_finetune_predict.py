"""A saved fine-tuned head reloads and labels new text: `chainrule finetune predict`."""

from __future__ import annotations

import json

import pytest
import torch

from chainrule.cli import main

TAGGED = ("the/DET cat/NOUN sat/VERB on/ADP a/DET mat/NOUN ./PUNCT\n"
          "a/DET dog/NOUN ran/VERB to/ADP the/DET cat/NOUN ./PUNCT\n"
          "the/DET mat/NOUN sat/VERB on/ADP a/DET dog/NOUN ./PUNCT\n")


def _model(tmp_path, family):
    from chainrule.models.neural import build_neural_model
    from chainrule.tokenizers import train_tokenizer

    words = [" ".join(t.rpartition("/")[0] for t in line.split()) for line in TAGGED.splitlines()]
    tok = train_tokenizer("word", words)
    torch.manual_seed(0)
    kw = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 32} if family != "lstm" else {}
    d = tmp_path / family
    build_neural_model(family, vocab_size=tok.vocab_size, bos_id=tok.bos_id, eos_id=tok.eos_id,
                       **kw).save(d)
    tok.save(d / "tokenizer.json")
    return d


def _corpus(tmp_path, n_files=3, text=TAGGED * 4):
    d = tmp_path / "corpus"
    d.mkdir()
    for i in range(n_files):
        (d / f"f{i}").write_text(text)
    (d / "cats.txt").write_text("".join(f"f{i} {'ab'[i % 2]}\n" for i in range(n_files)))
    return d


@pytest.mark.parametrize(("family", "task", "freeze"),
                         [("bert", "tag", False), ("gpt", "classify", True),
                          ("lstm", "tag", True)])
def test_predictions_after_reload_equal_those_before_saving(tmp_path, family, task, freeze):
    from chainrule.data.tagged import read_tagged
    from chainrule.evaluation.textscore import load_model_and_tokenizer
    from chainrule.training.finetune import (
        FineTuner,
        finetune,
        load_finetuned,
        make_examples,
        predict,
        predict_labels,
        save_finetuned,
    )

    base = _model(tmp_path, family)
    model, tok = load_model_and_tokenizer(base)
    sents = read_tagged(_corpus(tmp_path))
    files = {"f0": "a", "f1": "b", "f2": "a"}
    labels = (sorted({t for s in sents for t in s.tags}) if task == "tag" else ["a", "b"])
    index = {t: i for i, t in enumerate(labels)}
    examples = make_examples(model, tok, sents, task, index, files)
    tuner = FineTuner(model, len(labels), task, freeze=freeze)
    finetune(tuner, examples[:20], epochs=2, lr=1e-2, pad=tok.pad_id)
    _, before = predict(tuner, examples, pad=tok.pad_id)
    out = save_finetuned(tuner, tmp_path / "out", {"base": str(base), "labels": labels},
                         tokenizer=tok)
    again, tok2, meta = load_finetuned(out)
    assert meta["task"] == task and again.freeze == freeze
    _, after = predict(again, examples, pad=tok2.pad_id)
    assert after == before
    words = [list(s.words) for s in sents]
    by_text = predict_labels(again, tok2, words, labels)
    flat = [t for row in by_text for t in row] if task == "tag" else by_text
    assert flat == [labels[i] for i in before]


def test_finetune_predict_command_tags_new_text(tmp_path, capsys):
    base = _model(tmp_path, "bert")
    out = tmp_path / "tagger"
    assert main(["finetune", str(base), "--task", "tag", "--data", str(_corpus(tmp_path)),
                 "-o", str(out), "--epochs", "15", "--lr", "1e-2", "--batch-size", "8",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == 1.0
    text = tmp_path / "new.txt"
    text.write_text("a dog sat on the mat .\n\nthe cat ran to a dog .\n")  # new sentences
    assert main(["finetune", "predict", str(out), "--data", str(text), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "tag" and report["base"] == str(base)
    assert [s["tags"] for s in report["sentences"]] == [
        ["DET", "NOUN", "VERB", "ADP", "DET", "NOUN", "PUNCT"], [],
        ["DET", "NOUN", "VERB", "ADP", "DET", "NOUN", "PUNCT"]]
    assert main(["finetune", "predict", str(out), "--data", str(text), "-o",
                 str(tmp_path / "tagged.txt")]) == 0
    lines = (tmp_path / "tagged.txt").read_text().splitlines()
    assert lines[0] == "a/DET dog/NOUN sat/VERB on/ADP the/DET mat/NOUN ./PUNCT"
    assert lines[1] == "" and len(lines) == 3


def _one_error(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in captured.err
    return err[0]


def test_bad_predict_input_is_one_sentence(tmp_path, capsys):
    base = _model(tmp_path, "gpt")
    text = tmp_path / "t.txt"
    text.write_text("the cat\n")
    assert main(["finetune", "predict", str(base), "--data", str(text)]) == 2
    assert "finetune.json" in _one_error(capsys)
    assert main(["finetune", "predict", "--data", str(text)]) == 2
    assert "fine-tuned directory" in _one_error(capsys)
    assert main(["finetune", str(base), "--data", str(text)]) == 2
    assert "--task" in _one_error(capsys)
    # a head-only directory whose base model has gone
    corpus = _corpus(tmp_path)
    out = tmp_path / "head"
    assert main(["finetune", str(base), "--task", "tag", "--data", str(corpus), "-o", str(out),
                 "--freeze", "--epochs", "1", "--json"]) == 0
    capsys.readouterr()
    meta = json.loads((out / "finetune.json").read_text())
    meta["body"] = str(tmp_path / "gone")
    (out / "finetune.json").write_text(json.dumps(meta))
    assert main(["finetune", "predict", str(out), "--data", str(text)]) == 2
    assert "missing" in _one_error(capsys)
