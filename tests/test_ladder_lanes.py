"""The ladder's neural rungs in parallel lanes (issue 14): how rungs are dealt into lanes, the
same figures in parallel as one after the other, the cap per lane, progress lines coming back,
and the fallback to one lane."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainrule.evaluation import ladder_lanes
from chainrule.evaluation.ladder import LadderConfig, prepare, run_ladder
from chainrule.evaluation.ladder_config import RungResult
from chainrule.evaluation.ladder_lanes import lane_count, lane_data, plan_lanes
from chainrule.evaluation.ladder_rungs import _cap_share

WORDS = ["cat", "dog", "king", "queen", "sees", "loves", "fears"]
TINY = {"ffnn": {"n_embd": 8, "n_hidden": 16, "block_size": 8, "batch_size": 4},
        "lstm": {"n_embd": 8, "n_hidden": 8, "block_size": 8, "batch_size": 4,
                 "reset_at_bos": True},
        "gpt": {"n_embd": 8, "n_head": 2, "n_layer": 1, "block_size": 8, "batch_size": 4}}


def _config(tmp_path, name: str, **kw) -> LadderConfig:
    import random

    rng = random.Random(0)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"the {rng.choice(WORDS[:4])} {rng.choice(WORDS[4:])} the "
                              f"{rng.choice(WORDS[:4])} .\n" for _ in range(200)))
    base = {"data": (str(corpus),), "output": str(tmp_path / name), "min_count": 1,
            "neural_iters": 6, "neural_overrides": TINY, "neural_checks": 2,
            "neural_threads": 1, "sample_tokens": 5, "seed": 5}
    return LadderConfig(**{**base, **kw})


def test_the_demo_plan_is_dealt_into_two_lanes():
    plan = {"ffnn": 4000, "lstm": 4000, "gpt": 8000}
    assert plan_lanes(plan, 2) == [["gpt"], ["ffnn", "lstm"]]
    assert plan_lanes(plan, 1) == [["ffnn", "lstm", "gpt"]]
    assert plan_lanes(plan, 8) == [["gpt"], ["ffnn"], ["lstm"]]  # never an empty lane
    # ties go to the earlier rung and the lower lane
    assert plan_lanes({"a": 1, "b": 1, "c": 1, "d": 1}, 2) == [["a", "c"], ["b", "d"]]


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 100), min_size=1),
       st.integers(1, 5))
def test_lanes_hold_every_rung_once_in_the_ladders_order(costs, lanes):
    out = plan_lanes(costs, lanes)
    order = list(costs)
    assert sorted(r for lane in out for r in lane) == sorted(order)
    assert 1 <= len(out) <= lanes and all(lane for lane in out)
    assert all(lane == sorted(lane, key=order.index) for lane in out)
    loads = [sum(costs[r] for r in lane) for lane in out]
    # greedy longest-first: no lane exceeds the lightest one by more than its largest rung
    assert max(loads) - min(loads) <= max(costs.values())


def test_parallel_lanes_give_the_sequential_figures(tmp_path, caplog):
    rungs = ("bigram", "ffnn", "lstm", "gpt")
    lines: list[str] = []
    with caplog.at_level(logging.INFO, logger="chainrule"):
        _, parallel = run_ladder(_config(tmp_path, "par", rungs=rungs, neural_workers=2),
                                 log=lines.append)
    records = [r.getMessage() for r in caplog.records]  # the parallel run's log only
    _, sequential = run_ladder(_config(tmp_path, "seq", rungs=rungs, neural_workers=1))

    def figures(rows):
        return [(r.rung, r.status, r.test_ppl, r.valid_ppl, r.steps, r.best_step, r.sample)
                for r in rows]

    assert [r.rung for r in parallel] == list(rungs)  # the ladder's order, whoever finished first
    assert all(r.status == "ok" and r.steps == 6 for r in parallel[1:])
    assert figures(parallel) == figures(sequential)
    # the lanes' progress came back here: the plan line, each rung's result, the checks' log
    assert lines.index("  training in 2 processes at once: ffnn -> gpt | lstm") == 2  # corpus,
    # bigram, then the lanes
    assert sum("test perplexity" in ln for ln in lines) == 4
    steps = [m for m in records if "validation perplexity" in m]
    assert sorted(m.split()[0] for m in steps) == ["ffnn", "ffnn", "gpt", "gpt", "lstm", "lstm"]


def test_a_shared_cap_is_wall_time_for_each_lane(tmp_path):
    overrides = {f: {**s, "max_iters": n} for (f, s), n in zip(TINY.items(), (30, 90, 60))}
    data = prepare(_config(tmp_path, "cap", rungs=("ffnn", "lstm", "gpt"),
                           neural_overrides=overrides, neural_cap_seconds=100.0,
                           neural_cap_shared=True))
    assert _cap_share("ffnn", data) == pytest.approx(100.0 * 30 / 180)  # one lane: as before
    assert _cap_share("ffnn", lane_data(data, ["ffnn", "gpt"])) == pytest.approx(100.0 / 3)
    assert _cap_share("lstm", lane_data(data, ["lstm"])) == 100.0  # a lane of its own: all
    two = lane_data(data, ["ffnn", "gpt"])
    two.neural_started = 0.0  # the ffnn took 10 s of its 33.3: the gpt gets the 90 s left
    assert _cap_share("gpt", two, now=10.0) == pytest.approx(90.0)


def test_one_cpu_falls_back_to_one_lane_in_this_process(tmp_path, monkeypatch):
    import chainrule.threads

    monkeypatch.setattr(chainrule.threads, "usable_cpus", lambda: 1)
    cfg = _config(tmp_path, "one", rungs=("ffnn", "gpt"), neural_workers=0)
    data = prepare(cfg)
    assert lane_count(data) == 1
    monkeypatch.setattr(chainrule.threads, "usable_cpus", lambda: 2)
    assert lane_count(data) == 2
    assert lane_count(prepare(_config(tmp_path, "t", neural_workers=0, neural_seconds=5.0))) == 1

    def no_lanes(*a, **k):
        raise AssertionError("one lane runs in this process")

    monkeypatch.setattr(ladder_lanes, "run_lanes", no_lanes)
    seen = []
    out = ladder_lanes.run_neural(data, ["ffnn"], None, print,
                                  lambda r, d, p, log: seen.append(r) or RungResult(r), None)
    assert seen == ["ffnn"] and out["ffnn"].rung == "ffnn"


def test_a_lane_that_dies_without_a_word_skips_its_rungs():
    class Dead:
        exitcode = -9

        def is_alive(self):
            return False

    results: dict[str, RungResult] = {}
    pending, silent = {0}, {0: 0}
    ladder_lanes._check_alive([Dead()], [["ffnn", "lstm"]], pending, silent, results)
    assert pending == {0} and not results  # seen dead once: its last message may be queued
    ladder_lanes._check_alive([Dead()], [["ffnn", "lstm"]], pending, silent, results)
    assert not pending and [r.status for r in results.values()] == ["skipped", "skipped"]
    assert "exit code -9" in results["lstm"].reason


def test_the_cli_passes_workers(monkeypatch, tmp_path):
    import chainrule.cli.demo as cli_demo
    from chainrule.cli import main
    from chainrule.evaluation import demo

    seen = []
    monkeypatch.setattr(cli_demo, "_run_and_print",
                        lambda cfg, as_json, header=None: seen.append(cfg) or 0)
    monkeypatch.setattr(demo, "show_tokenizers", lambda quiet=False: {})
    assert main(["demo", "-o", str(tmp_path / "d"), "--json"]) == 0
    assert seen[-1].neural_workers == 0  # the demo: one lane per usable CPU
    assert main(["demo", "-o", str(tmp_path / "d"), "--workers", "1", "--json"]) == 0
    assert seen[-1].neural_workers == 1
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b\nc d\n")
    assert main(["ladder", "--data", str(corpus), "-o", str(tmp_path / "r"),
                 "--workers", "2"]) == 0
    assert seen[-1].neural_workers == 2
    assert main(["ladder", "--data", str(corpus), "-o", str(tmp_path / "r"),
                 "--workers", "-1"]) != 0


def test_the_ladder_trains_its_recurrent_rungs_with_the_reset(tmp_path):
    from chainrule.evaluation.demo import demo_config
    from chainrule.evaluation.ladder_rungs import _train_config

    data = prepare(_config(tmp_path, "reset", neural_overrides={}))
    assert _train_config("lstm", data, 10).model["reset_at_bos"] is True
    assert _train_config("rnn", data, 10).model["reset_at_bos"] is True
    off = prepare(_config(tmp_path, "off", neural_overrides={"lstm": {"reset_at_bos": False}}))
    assert _train_config("lstm", off, 10).model["reset_at_bos"] is False
    assert "reset_at_bos" not in demo_config("unused").neural_overrides["lstm"]  # the default
