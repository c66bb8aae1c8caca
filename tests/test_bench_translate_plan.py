"""bench/bench_translate.py's plan arithmetic and GPU table (the logic bench/gpu_translate.sh
relies on when it runs once, unattended, on a GPU machine)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_translate.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_translate_under_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fit_stop_ends_where_the_budget_runs_out(bench):
    # 500 steps in 50 s = 10 steps/s; 150 s left -> 1,500 more steps
    assert bench.fit_stop(500, 50.0, 200.0, 8000, 500, 500) == 2000
    # faster than planned: the preset's max_iters caps it
    assert bench.fit_stop(500, 5.0, 200.0, 6000, 500, 500) == 6000


def test_fit_stop_gives_one_more_chunk_but_never_passes_max_iters(bench):
    # the budget is spent already: still one more chunk past the step reached
    assert bench.fit_stop(1000, 210.0, 200.0, 8000, 1000, 500) == 1500
    # ... unless that would pass max_iters (5,800 + 500 > 6,000)
    assert bench.fit_stop(5800, 210.0, 200.0, 6000, 5800, 500) == 6000


def _result(model, bleu, tok_s):
    return {"model": model, "preset": f"multi30k-{model}", "parameters": 6.0e6, "steps": 4000,
            "planned_steps": 8000, "train_wall_s": 390.0, "target_tokens_per_s": tok_s,
            "best_val_loss": 2.5, "bleu": bleu, "chrf": 60.0, "device": "cuda",
            "test_sentences": 1000, "bleu_signature": "nrefs:1|case:mixed"}


def test_gpu_table_marks_each_target_and_states_the_peer_ratios(bench):
    rows = [_result("gru", 20.0, 9000), _result("attn", 27.99, 7000),
            _result("transformer", 36.5, 1200), _result("torch", 30.0, 1000),
            _result("t2", 37.0, 1100)]  # a variant (LABEL=NAME:KEY=VALUE) has no target
    text = bench.gpu_table(rows)
    lines = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()
             if line.startswith("| ") and not line.startswith("| model")}
    assert lines["gru"].endswith("| >= 20 | yes |")  # the target itself counts as met
    assert lines["attn"].endswith("| >= 28 | **no** |")
    assert lines["transformer"].endswith("| >= 36 | yes |")
    assert lines["torch"].endswith("| peer | -- |")
    assert lines["t2"].endswith("| -- | -- |")
    assert "target tokens/s 1.20x, BLEU 1.22x" in text
