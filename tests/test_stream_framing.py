"""A model trained as one stream (``boundaries=none``) scores a line framed by its newline,
``[nl] ids [nl]``, the way its training windows held lines; ``boundaries=lines`` models keep
``<s> ids </s>`` (evaluation/stream_framing.py, evaluation/textscore.frame)."""

from __future__ import annotations

import json
import logging
import random
from types import SimpleNamespace

import numpy as np
import pytest

from chainrule.cli import main
from chainrule.evaluation.stream_framing import (
    apply_training_framing,
    newline_id,
    training_boundaries,
)
from chainrule.evaluation.textscore import frame, load_model_and_tokenizer
from chainrule.models.scoring import score_sequences
from chainrule.tokenizers.char import CharTokenizer
from chainrule.tokenizers.word import WordTokenizer

TEXT = "ab\ncd\n"


def _fake(family: str = "gpt", **kw) -> SimpleNamespace:
    return SimpleNamespace(**{"family": family, "bos_id": 1, "eos_id": 2, "masked": False,
                              "conditional": False, **kw})


def test_frame_by_hand():
    tok = CharTokenizer.train([TEXT])
    nl = tok.encode("\n")[0]
    assert newline_id(tok) == nl and nl not in (1, 2)
    assert frame(_fake(), [5, 6]) == [1, 5, 6, 2]  # nothing recorded: as before
    stream = apply_training_framing(_fake(), tok, "none")
    assert stream.line_frame == (nl, nl)
    assert frame(stream, [5, 6]) == [nl, 5, 6, nl]
    assert frame(stream, [5, 6], eos=False) == [nl, 5, 6]
    assert frame(stream, []) == [nl, nl]
    for unchanged in (apply_training_framing(_fake(), tok, "lines"),
                      apply_training_framing(_fake(), tok, None),
                      apply_training_framing(_fake("ngram"), tok, "none"),
                      apply_training_framing(_fake(masked=True), tok, "none"),
                      apply_training_framing(_fake(conditional=True), tok, "none")):
        assert frame(unchanged, [5, 6]) == [1, 5, 6, 2]


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def test_a_word_tokenizer_keeps_the_old_framing_and_says_so_once():
    tok = WordTokenizer.train(["the cat sat", "a dog ran"])
    assert newline_id(tok) is None  # newlines are dropped
    logger, seen = logging.getLogger("chainrule"), _Records()
    logger.addHandler(seen)  # the CLI's logger (it may not propagate to pytest's handler)
    try:
        model = apply_training_framing(_fake(), tok, "none", "runs/w")
    finally:
        logger.removeHandler(seen)
    assert frame(model, [5, 6]) == [1, 5, 6, 2]
    assert [r.levelno for r in seen.records] == [logging.WARNING]
    msgs = [r.getMessage() for r in seen.records]
    assert len(msgs) == 1
    assert msgs[0].startswith("runs/w: this model was trained as one stream")
    assert "untrained <s>" in msgs[0] and "boundaries=lines" in msgs[0]
    assert msgs[0].count(". ") == 0 and msgs[0].endswith(".")  # one sentence


def test_training_boundaries_reads_the_run_record(tmp_path):
    d = tmp_path / "m"
    assert training_boundaries(d) is None
    (d / "last").mkdir(parents=True)
    assert training_boundaries(d) is None  # no record: an imported model
    (d / "last" / "train_state.json").write_text(json.dumps({"config": {"boundaries": "none"}}))
    assert training_boundaries(d) == "none"  # an interrupted run: the checkpoint's record
    (d / "train_state.json").write_text(json.dumps({"config": {"boundaries": "lines"}}))
    assert training_boundaries(d) == "lines"  # the finished run's
    assert training_boundaries(d / "last") == "none"
    (d / "train_state.json").write_text("{not json")
    assert training_boundaries(d) is None
    (d / "train_state.json").write_text(json.dumps({"config": {"boundaries": "none"}}))
    (d / "sft.json").write_text("{}")
    assert training_boundaries(d) is None  # a chat fine-tune reads its prompts after <s>


# -- trained models --------------------------------------------------------------------------
def _corpus(path, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    subj, verb, obj = (["the cat", "a dog", "my bird", "her fish"],
                       ["sat on", "ran to", "saw", "ate"], ["the mat.", "a hat.", "the log."])
    lines = [f"{rng.choice(subj)} {rng.choice(verb)} {rng.choice(obj)}" for _ in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return lines


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream")
    _corpus(d / "train.txt", 400, 0)
    test = _corpus(d / "test.txt", 40, 1)
    out = {}
    for b in ("none", "lines"):
        out[b] = d / b
        assert main(["-q", "train", "--family", "gpt", str(d / "train.txt"), "-o", str(out[b]),
                     f"boundaries={b}", "max_iters=200", "n_layer=1", "n_head=2",
                     "n_embd=32", "block_size=32", "batch_size=8", "eval_interval=200",
                     "eval_iters=2", "warmup_iters=10", "lr_decay_iters=200",
                     "learning_rate=1e-2", "seed=3"]) == 0
    return SimpleNamespace(dir=d, test=test, **out)


def test_a_stream_model_scores_lines_better_framed_by_its_newline(runs):
    model, tok = load_model_and_tokenizer(runs.none)
    nl = tok.encode("\n")[0]
    assert model.line_frame == (nl, nl)
    ids = [tok.encode(t) for t in runs.test]
    new = score_sequences(model, [frame(model, x) for x in ids])
    old = score_sequences(model, [[model.bos_id, *x, model.eos_id] for x in ids])
    first_new, first_old = np.mean([s[0] for s in new]), np.mean([s[0] for s in old])
    end_new, end_old = np.mean([s[-1] for s in new]), np.mean([s[-1] for s in old])
    assert first_new > first_old + 1.0, (first_new, first_old)
    assert end_new > end_old + 1.0, (end_new, end_old)
    # the tokens in between are scored from the same context apart from the first id
    assert np.mean(np.concatenate(new)) > np.mean(np.concatenate(old))


def test_a_lines_model_frames_exactly_as_before(runs):
    model, tok = load_model_and_tokenizer(runs.lines)
    assert getattr(model, "line_frame", None) is None
    ids = [tok.encode(t) for t in runs.test]
    framed = [frame(model, x) for x in ids]
    assert framed == [[tok.bos_id, *x, tok.eos_id] for x in ids]
    got = score_sequences(model, framed)
    want = score_sequences(model, [[model.bos_id, *x, model.eos_id] for x in ids])
    for a, b in zip(got, want):
        assert np.array_equal(a, b)


def test_eval_ppl_cli_on_a_stream_model(runs, capsys):
    capsys.readouterr()
    assert main(["eval", "ppl", str(runs.none), "--data", str(runs.dir / "test.txt"),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    ppl = report["models"][0]["perplexity"]
    model, tok = load_model_and_tokenizer(runs.none)
    nl = tok.encode("\n")[0]
    new = np.concatenate(score_sequences(model, [[nl, *tok.encode(t), nl] for t in runs.test]))
    old = np.concatenate(score_sequences(
        model, [[model.bos_id, *tok.encode(t), model.eos_id] for t in runs.test]))
    assert ppl == pytest.approx(float(np.exp(-new.mean())), rel=1e-4)
    assert ppl < float(np.exp(-old.mean())) * 0.9


def test_loading_a_word_level_stream_model_warns_once_and_keeps_s(tmp_path):
    from chainrule.models.configs import GPTConfig
    from chainrule.models.gpt import GPT

    tok = WordTokenizer.train(["the cat sat", "a dog ran"])
    d = tmp_path / "w"
    d.mkdir()
    GPT(GPTConfig(vocab_size=tok.vocab_size, bos_id=tok.bos_id, eos_id=tok.eos_id,
                  block_size=8, n_layer=1, n_head=1, n_embd=8)).save(d)
    tok.save(d / "tokenizer.json")
    (d / "train_state.json").write_text(json.dumps({"config": {"boundaries": "none"}}))
    logger, seen = logging.getLogger("chainrule"), _Records()
    logger.addHandler(seen)
    try:
        model, tok2 = load_model_and_tokenizer(d)
    finally:
        logger.removeHandler(seen)
    assert [r.getMessage().split(": ", 1)[0] for r in seen.records] == [str(d)]
    ids = tok2.encode("the cat")
    assert frame(model, ids) == [tok.bos_id, *ids, tok.eos_id]
