"""The ladder's step plan (issue 14): the same seed gives the same ladder, the best validation
checkpoint is the one kept, a time cap cuts a rung short and says so; and the progress lines of
`eval pairs` / `eval surprisal` on long inputs when stderr is not a terminal."""

from __future__ import annotations

import json
import logging
import random

import pytest

from chainrule.cli import main
from chainrule.evaluation.demo import DEMO_PLAN, demo_config
from chainrule.evaluation.ladder import LadderConfig, run_ladder
from chainrule.evaluation.ladder_plan import check_points
from chainrule.evaluation.perplexity import perplexity
from chainrule.models.base import load_model

WORDS = ["the", "cat", "dog", "king", "queen", "sees", "loves", "fears", "with", "a"]
TINY = {"ffnn": {"n_embd": 8, "n_hidden": 16, "block_size": 8, "batch_size": 4},
        "lstm": {"n_embd": 8, "n_hidden": 8, "block_size": 8, "batch_size": 4},
        "gpt": {"n_embd": 8, "n_head": 2, "n_layer": 1, "block_size": 8, "batch_size": 4}}


def _lines(n: int, seed: int, shuffled: bool = False) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = ["the", rng.choice(WORDS[1:5]), rng.choice(WORDS[5:8]), "the",
                 rng.choice(WORDS[1:5])]
        if shuffled:
            rng.shuffle(words)
        out.append(" ".join(words) + " .")
    return out


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _plan_config(tmp_path, name: str, **kw) -> LadderConfig:
    corpus = _write(tmp_path / "corpus.txt", _lines(240, 0))
    base = {"data": (corpus,), "output": str(tmp_path / name), "min_count": 1,
            "neural_iters": 24, "neural_overrides": TINY, "neural_checks": 3,
            "neural_threads": 1, "sample_tokens": 5}
    return LadderConfig(**{**base, **kw})


def test_check_points_split_the_plan_evenly():
    assert check_points(1000, 4) == [250, 500, 750, 1000]
    assert check_points(10, 3) == [3, 7, 10]
    assert check_points(2, 5) == [1, 2]  # never more checks than steps


def test_the_same_seed_gives_the_same_ladder(tmp_path):
    """Two runs with one seed: every figure equal; another seed changes the neural rungs."""
    rungs = ("bigram", "ffnn", "lstm", "gpt")
    runs = [run_ladder(_plan_config(tmp_path, f"run{i}", rungs=rungs, seed=seed))[1]
            for i, seed in enumerate((7, 7, 8))]
    first, again, other = ([(r.rung, r.test_ppl, r.valid_ppl, r.steps, r.best_step) for r in run]
                           for run in runs)
    assert first == again
    assert all(r.status == "ok" and r.steps == 24 for r in runs[0][1:])
    assert first[0] == other[0]  # the bigram has no seed
    assert all(a[1] != b[1] for a, b in zip(first[1:], other[1:]))  # the neural rungs do


def test_the_best_validation_checkpoint_is_kept(tmp_path):
    """Validation text in a shuffled word order: once the model learns the training order it
    does worse there, so the last checkpoint is not the best, and the one kept is the best."""
    valid = _write(tmp_path / "valid.txt", _lines(60, 1, shuffled=True))
    test = _write(tmp_path / "test.txt", _lines(20, 2))
    gpt = {**TINY["gpt"], "learning_rate": 3e-2, "dropout": 0.0}
    cfg = _plan_config(tmp_path, "best", rungs=("gpt",), valid=(valid,), test=(test,),
                       neural_iters=120, neural_checks=6, neural_overrides={"gpt": gpt})
    data, [res] = run_ladder(cfg)
    assert res.status == "ok" and res.steps == 120
    kept = load_model(res.model_dir).eval()
    kept_ppl = perplexity(kept, data.tokenizer, data.valid_lines).perplexity
    last = load_model(f"{res.model_dir}/last").eval()  # the step-120 checkpoint
    last_ppl = perplexity(last, data.tokenizer, data.valid_lines).perplexity
    assert res.best_step < res.steps  # the run got worse on validation after its best
    assert kept_ppl < last_ppl
    assert kept_ppl == pytest.approx(res.valid_ppl)


def test_a_time_cap_cuts_a_rung_short_and_says_so(tmp_path):
    cfg = _plan_config(tmp_path, "cap", rungs=("ffnn",), neural_cap_seconds=1e-6)
    _, [res] = run_ladder(cfg)
    assert res.status == "ok" and res.steps == check_points(24, 3)[0] < 24
    assert "cut short by the 1e-06 s safety cap at step 8 of the 24 planned" in res.notes
    report = (tmp_path / "cap" / "report.md").read_text()
    assert "safety cap" in report


def test_the_demo_is_a_step_plan_on_one_thread():
    cfg = demo_config("unused")
    assert cfg.neural_seconds == 0 and cfg.neural_threads == 1 and cfg.neural_checks > 1
    assert cfg.neural_cap_seconds > 0 and cfg.neural_cap_shared
    for family, steps in DEMO_PLAN.items():
        assert cfg.neural_overrides[family]["max_iters"] == steps
    assert demo_config("unused", budget=(300, 0.0)).neural_overrides["gpt"]["max_iters"] == 300
    timed = demo_config("unused", budget=(20_000, 60.0))  # --budget 60s: the old time budget
    assert timed.neural_seconds == 60.0 and not timed.neural_checks


# -- progress of long evaluations ------------------------------------------------------------
class _Keep(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def kept_lines():
    logger, keep = logging.getLogger("chainrule"), _Keep()
    level = logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    yield keep.lines
    logger.removeHandler(keep)
    logger.setLevel(level)


def _saved_bigram(tmp_path):
    from chainrule.models.ngram import NgramModel
    from chainrule.tokenizers import train_tokenizer

    lines = _lines(200, 3)
    tok = train_tokenizer("word", ["\n".join(lines)])
    model = NgramModel(2, "mkn", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                       eos_id=tok.eos_id, unk_id=tok.unk_id, pad_id=tok.pad_id)
    model.fit([[tok.bos_id, *tok.encode(ln), tok.eos_id] for ln in lines])
    d = model.save(tmp_path / "bigram")
    tok.save(d / "tokenizer.json")
    return d


def test_eval_pairs_and_surprisal_log_progress_on_long_inputs(tmp_path, capsys, kept_lines,
                                                             monkeypatch):
    from chainrule.models import scoring

    # batches of at most 64 tokens (a large vocabulary's batch size), so progress moves in steps
    monkeypatch.setattr(scoring, "_MAX_BATCH_BYTES", 1)
    d = _saved_bigram(tmp_path)
    good, bad = _lines(1200, 4), _lines(1200, 4, shuffled=True)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"sentence_good": g, "sentence_bad": b, "UID": "order",
                                         "linguistics_term": "order", "field": "syntax"}) + "\n"
                             for g, b in zip(good, bad)))
    assert main(["eval", "pairs", str(d), "--data", str(pairs), "--json"]) == 0
    lines = [ln for ln in kept_lines if ln.startswith("scoring pairs:")]
    assert len(lines) == 10 and lines[-1] == "scoring pairs: 2,400 / 2,400 sentences"
    assert json.loads(capsys.readouterr().out)["models"]["bigram"]["overall"]["n"] == 1200
    kept_lines.clear()
    text = tmp_path / "long.txt"
    _write(text, good * 2)
    assert main(["eval", "surprisal", str(d), "--data", str(text), "--words",
                 "-o", str(tmp_path / "s.csv")]) == 0
    lines = [ln for ln in kept_lines if ln.startswith("scoring:")]
    assert len(lines) == 10 and lines[-1] == "scoring: 2,400 / 2,400 sentences"
    kept_lines.clear()
    _write(text, good[:100])  # a short input: no progress lines
    assert main(["eval", "surprisal", str(d), "--data", str(text), "-o",
                 str(tmp_path / "t.csv")]) == 0
    assert not [ln for ln in kept_lines if ln.startswith("scoring")]


def test_the_report_says_whether_the_ladder_is_in_the_lectures_order():
    from chainrule.evaluation.ladder_config import RungResult
    from chainrule.evaluation.ladder_report import order_text, out_of_order

    def rows(**ppl):
        return [RungResult(rung, test_ppl=v) for rung, v in ppl.items()]

    good = rows(unigram=196.0, bigram=76.5, kn5=71.4, ffnn=71.4, lstm=66.0, gpt=65.0)
    assert out_of_order(good) == []  # the FFNN may tie with KN5
    assert order_text(good).startswith("The ladder is in the lecture's order: unigram 196.0")
    bad = rows(unigram=196.0, bigram=76.5, kn5=71.4, ffnn=86.8, lstm=124.9, gpt=81.4)
    assert out_of_order(bad) == [("ffnn", "bigram"), ("ffnn", "kn5"), ("lstm", "bigram"),
                                 ("lstm", "kn5"), ("lstm", "ffnn"), ("gpt", "bigram"),
                                 ("gpt", "kn5")]
    assert "lstm (124.9) is not below bigram 76.5, kn5 71.4, ffnn 86.8;" in order_text(bad)
    assert out_of_order(rows(kn5=71.4, gpt=71.4)) == [("gpt", "kn5")]  # a tie is not below


def test_the_cli_options_reach_the_ladder(monkeypatch, tmp_path):
    import chainrule.cli.demo as cli_demo
    from chainrule.evaluation import demo

    seen = []
    monkeypatch.setattr(cli_demo, "_run_and_print",
                        lambda cfg, as_json, header=None: seen.append(cfg) or 0)
    monkeypatch.setattr(demo, "show_tokenizers", lambda quiet=False: {})
    corpus = _write(tmp_path / "c.txt", _lines(20, 0))
    assert main(["ladder", "--data", corpus, "-o", str(tmp_path / "r"), "--budget", "50",
                 "--checks", "5", "--cap", "30"]) == 0
    assert (seen[-1].neural_iters, seen[-1].neural_checks, seen[-1].neural_cap_seconds) == (
        50, 5, 30.0)
    assert main(["demo", "-o", str(tmp_path / "d"), "--seed", "3", "--cap", "0",
                 "--budget", "40", "--json"]) == 0
    cfg = seen[-1]
    assert (cfg.seed, cfg.neural_cap_seconds, cfg.neural_threads) == (3, 0.0, 1)
    assert cfg.neural_overrides["lstm"]["max_iters"] == 40


def test_a_shared_cap_is_split_in_proportion_to_the_planned_steps(tmp_path):
    from chainrule.evaluation.ladder import prepare
    from chainrule.evaluation.ladder_rungs import _cap_share

    overrides = {"ffnn": {**TINY["ffnn"], "max_iters": 30}, "gpt": {**TINY["gpt"],
                                                                    "max_iters": 90}}
    cfg = _plan_config(tmp_path, "share", rungs=("kn5", "ffnn", "gpt"),
                       neural_overrides=overrides, neural_cap_seconds=100.0,
                       neural_cap_shared=True)
    data = prepare(cfg)
    assert (_cap_share("ffnn", data), _cap_share("gpt", data)) == (25.0, 100.0)  # none spent
    data.neural_started = 1000.0  # then what is left is shared among this and later rungs
    assert _cap_share("ffnn", data, now=1000.0) == 25.0
    assert _cap_share("gpt", data, now=1020.0) == 80.0  # ffnn took 20 s of its 25
    assert _cap_share("gpt", data, now=1200.0) == 1e-6  # spent: one chunk, then it stops
