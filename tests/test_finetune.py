"""Transfer learning: a linear head for tagging and classification, metrics, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from chainrule.cli import main
from chainrule.evaluation.classify_metrics import (
    accuracy_from_confusion,
    classification_report,
    confusion_matrix,
    macro_f1_from_confusion,
)

TAGGED = ("the/DET cat/NOUN sat/VERB on/ADP a/DET mat/NOUN ./PUNCT\n"
          "a/DET dog/NOUN ran/VERB to/ADP the/DET cat/NOUN ./PUNCT\n"
          "the/DET mat/NOUN sat/VERB on/ADP a/DET dog/NOUN ./PUNCT\n")


def _model(tmp_path, family="bert", text=TAGGED, name="m"):
    from chainrule.models.neural import build_neural_model
    from chainrule.tokenizers import train_tokenizer

    words = [" ".join(t.rpartition("/")[0] for t in line.split()) for line in text.splitlines()]
    tok = train_tokenizer("word", words)
    torch.manual_seed(0)
    kw = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 32} if family != "lstm" else {}
    d = tmp_path / name
    build_neural_model(family, vocab_size=tok.vocab_size, bos_id=tok.bos_id, eos_id=tok.eos_id,
                       **kw).save(d)
    tok.save(d / "tokenizer.json")
    return d


def _corpus(tmp_path, files: dict[str, str], cats: dict[str, str] | None = None):
    d = tmp_path / "corpus"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    if cats:
        (d / "cats.txt").write_text("".join(f"{f} {c}\n" for f, c in cats.items()))
    return d


# -- metrics -------------------------------------------------------------------------------------
def test_macro_f1_equals_a_hand_computation():
    gold = [0, 0, 0, 1, 1, 2]
    pred = [0, 0, 1, 1, 2, 2]
    m = confusion_matrix(gold, pred, 4)  # label 3 never occurs: left out of the mean
    assert m.tolist() == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    # class 0: tp 2, fp 0, fn 1 -> 4/5; class 1: tp 1, fp 1, fn 1 -> 1/2; class 2: tp 1, fp 1,
    # fn 0 -> 2/3
    assert macro_f1_from_confusion(m) == pytest.approx((4 / 5 + 1 / 2 + 2 / 3) / 3)
    assert accuracy_from_confusion(m) == pytest.approx(4 / 6)
    report = classification_report(gold, pred, ["a", "b", "c", "d"])
    assert report["n"] == 6 and report["confusion"] == m.tolist()


# -- the CLI -------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["bert", "gpt", "lstm"])
def test_the_tagger_learns_a_toy_tag_set(tmp_path, capsys, family):
    model = _model(tmp_path, family)
    data = _corpus(tmp_path, {f"f{i}": TAGGED * 4 for i in range(3)})
    out = tmp_path / "out"
    assert main(["finetune", str(model), "--task", "tag", "--data", str(data), "-o", str(out),
                 "--epochs", "15", "--lr", "1e-2", "--batch-size", "8", "--json",
                 "--plot", str(tmp_path / "c.png")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == 1.0 and report["macro_f1"] == 1.0
    assert report["test_items"] == 4 * 21 and report["labels"] == ["ADP", "DET", "NOUN",
                                                                  "PUNCT", "VERB"]
    assert (tmp_path / "c.png").stat().st_size > 0
    meta = json.loads((out / "finetune.json").read_text())
    assert meta["task"] == "tag" and meta["body"] == "body"
    assert load_file(str(out / "head.safetensors"))["weight"].shape[0] == 5
    assert (out / "body" / "config.json").is_file()


def test_classification_learns_a_toy_two_class_task(tmp_path, capsys):
    good = "nice/JJ good/JJ day/NN ./.\ngreat/JJ fine/JJ film/NN ./.\n"
    bad = "awful/JJ bad/JJ day/NN ./.\npoor/JJ sad/JJ film/NN ./.\n"
    files = {"a0": good * 5, "a1": good * 5, "b0": bad * 5, "b1": bad * 5}
    model = _model(tmp_path, "bert", good + bad)
    data = _corpus(tmp_path, files, {"a0": "pos", "a1": "pos", "b0": "neg", "b1": "neg"})
    assert main(["finetune", str(model), "--task", "classify", "--data", str(data),
                 "-o", str(tmp_path / "out"), "--epochs", "10", "--lr", "1e-2",
                 "--batch-size", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labels"] == ["neg", "pos"] and report["test_items"] == 10  # b1 held out
    assert report["accuracy"] == 1.0


def test_freeze_leaves_the_body_unchanged(tmp_path, capsys):
    from chainrule.data.tagged import read_tagged
    from chainrule.evaluation.textscore import load_model_and_tokenizer
    from chainrule.training.finetune import FineTuner, finetune, make_examples

    model, tok = load_model_and_tokenizer(_model(tmp_path, "gpt"))
    data = _corpus(tmp_path, {"f0": TAGGED})
    sents = read_tagged(data)
    labels = {t: i for i, t in enumerate(sorted({t for s in sents for t in s.tags}))}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tuner = FineTuner(model, len(labels), "tag", freeze=True)
    head_before = tuner.head.weight.clone()
    finetune(tuner, make_examples(model, tok, sents, "tag", labels), epochs=3, lr=1e-2)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not torch.equal(head_before, tuner.head.weight)
    # and through the CLI: no body is saved, the base is named
    (data / "f1").write_text(TAGGED)
    assert main(["finetune", str(tmp_path / "m"), "--task", "tag", "--data", str(data), "-o",
                 str(tmp_path / "out"), "--freeze", "--epochs", "1", "--json"]) == 0
    meta = json.loads((tmp_path / "out" / "finetune.json").read_text())
    assert meta["freeze"] is True and meta["body"] == str(tmp_path / "m")
    assert not (tmp_path / "out" / "body").exists()


def _one_error(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in captured.err
    return err[0]


def test_a_token_without_tag_is_one_sentence(tmp_path, capsys):
    model = _model(tmp_path)
    data = _corpus(tmp_path, {"f0": TAGGED, "f1": "the/DET cat sat/VERB\n"})
    assert main(["finetune", str(model), "--task", "tag", "--data", str(data),
                 "-o", str(tmp_path / "out")]) == 2
    err = _one_error(capsys)
    assert "f1 line 1" in err and "'cat' has no /TAG" in err


def test_a_label_file_with_unknown_labels_is_one_sentence(tmp_path, capsys):
    model = _model(tmp_path)
    data = _corpus(tmp_path, {"f0": TAGGED, "f1": TAGGED})
    labels = tmp_path / "labels.txt"
    labels.write_text("f0 news\nf1 romance\n")  # the held-out f1's label is never trained on
    assert main(["finetune", str(model), "--task", "classify", "--data", str(data),
                 "--labels", str(labels), "-o", str(tmp_path / "out")]) == 2
    assert "'romance'" in _one_error(capsys)
    labels.write_text("f0 news\n")  # a file without a label
    assert main(["finetune", str(model), "--task", "classify", "--data", str(data),
                 "--labels", str(labels), "-o", str(tmp_path / "out")]) == 2
    assert "'f1'" in _one_error(capsys)
    labels.write_text("f0 news extra\n")
    assert main(["finetune", str(model), "--task", "classify", "--data", str(data),
                 "--labels", str(labels), "-o", str(tmp_path / "out")]) == 2
    assert "line 1" in _one_error(capsys)


def test_a_model_whose_vocabulary_does_not_fit_is_one_sentence(tmp_path, capsys):
    from chainrule.tokenizers import train_tokenizer

    model = _model(tmp_path)
    train_tokenizer("word", ["completely different words here and more"]).save(
        model / "tokenizer.json")
    data = _corpus(tmp_path, {"f0": TAGGED, "f1": TAGGED})
    assert main(["finetune", str(model), "--task", "tag", "--data", str(data),
                 "-o", str(tmp_path / "out")]) == 2
    assert "tokenizer" in _one_error(capsys)


def test_fraction_and_options_are_checked(tmp_path, capsys):
    model = _model(tmp_path)
    data = _corpus(tmp_path, {f"f{i}": TAGGED * 4 for i in range(3)})
    assert main(["finetune", str(model), "--task", "tag", "--data", str(data),
                 "-o", str(tmp_path / "out"), "--fraction", "0"]) == 2
    assert "--fraction" in _one_error(capsys)
    assert main(["finetune", str(model), "--task", "tag", "--data", str(data),
                 "-o", str(tmp_path / "out"), "--fraction", "0.1", "--epochs", "1",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["train_sentences"] == 3  # ceil(0.1 * 24)
