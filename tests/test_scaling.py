"""Scaling laws (issue 17): FLOP counts, the fitters, the frontier, sweeps that resume, bad input."""

import json
import math
import os
import types

import numpy as np
import pytest

from chainrule.cli import main
from chainrule.errors import ConfigError
from chainrule.fileio import write_json
from chainrule.models.neural import build_neural_model
from chainrule.scaling import fit as F
from chainrule.scaling.analysis import fit_sweep, holdout_report, predict_loss
from chainrule.scaling.flops import model_size
from chainrule.scaling.frontier import frontier, lower_envelope
from chainrule.scaling.grid import SweepPoint, grid_points, learning_rate_for
from chainrule.scaling.plan import Throughput, plan_sweep

TRUE = {"E": 1.2, "A": 30.0, "B": 60.0, "alpha": 0.3, "beta": 0.3}


# -- FLOPs and N from the model's shapes --------------------------------------------------------
def test_gpt_flops_and_params_equal_a_hand_count():
    m = build_neural_model("gpt", vocab_size=10, n_layer=1, n_embd=8, n_head=2, block_size=4)
    s = model_size(m, context=4)
    # q/k/v 2*8*24, c_proj 2*8*8, MLP 2*8*32*2, attention 2*2*8*(4+1)/2, head 2*8*10
    assert s.forward_flops == 384 + 128 + 1024 + 80 + 160 == 1776
    assert s.train_flops == 3 * 1776
    # block: ln 16 + c_attn 8*24+24 + c_proj 64+8 + ln 16 + c_fc 256+32 + proj 256+8; ln_f 16
    assert s.non_embedding == 16 + 216 + 72 + 16 + 288 + 264 + 16 == 888
    assert s.params == 888 + 10 * 8 + 4 * 8  # + token and position embeddings (head tied)
    assert s.compute_6nd(1000) == 6 * 888 * 1000


def test_lstm_flops_and_params_equal_a_hand_count():
    m = build_neural_model("lstm", vocab_size=10, n_layer=1, n_embd=4, n_hidden=4, dropout=0.0)
    s = model_size(m, context=16)
    assert s.forward_flops == 2 * 4 * 4 * (4 + 4) + 2 * 4 * 10  # gates, then the tied head
    assert s.non_embedding == 4 * 4 * 4 * 2 + 2 * 16 + 10  # W_ih, W_hh, two biases, head bias


# -- fitters ------------------------------------------------------------------------------------
def _law(N, D, p=TRUE):
    return p["E"] + p["A"] / np.asarray(N, float) ** p["alpha"] + p["B"] / np.asarray(
        D, float) ** p["beta"]


def test_chinchilla_fit_recovers_known_parameters_from_noisy_data():
    rng = np.random.default_rng(0)
    N = np.repeat(np.logspace(4, 6, 5), 5)
    D = np.tile(np.logspace(5, 7, 5), 5)
    L = _law(N, D) * np.exp(rng.normal(0, 0.005, len(N)))
    f = F.chinchilla(N, D, L, refine=3)
    assert f.alpha == pytest.approx(TRUE["alpha"], abs=0.05)
    assert f.beta == pytest.approx(TRUE["beta"], abs=0.05)
    assert f.E == pytest.approx(TRUE["E"], rel=0.15)
    assert f.r2 > 0.99
    # and the fitted law predicts a point outside the grid within 1%
    assert f(3e6, 3e7) == pytest.approx(_law(3e6, 3e7), rel=0.01)
    a, b = f.exponents
    assert a + b == pytest.approx(1.0)
    n_opt, d_opt = f.optimal(1e13)
    assert 6 * n_opt * d_opt == pytest.approx(1e13, rel=1e-9)


def test_power_laws_recover_exact_exponents():
    x = np.logspace(10, 12, 8)
    pl = F.power_law(x, (3e13 / x) ** 0.07)
    assert pl.alpha == pytest.approx(0.07, abs=1e-9) and pl.r2 == pytest.approx(1.0)
    flat = F.power_law([1e4, 1e5, 1e6], [2.0, 2.0, 2.0 - 1e-12])  # nearly flat: x_c overflows
    assert flat.alpha == pytest.approx(0.0, abs=1e-9) and flat.x_c == math.inf
    off = F.offset_power_law(x, 1.3 + (1e9 / x) ** 0.3, refine=2)
    assert off.E == pytest.approx(1.3, rel=1e-3) and off.alpha == pytest.approx(0.3, rel=1e-2)


# -- the frontier -------------------------------------------------------------------------------
def test_frontier_of_hand_made_curves_is_their_lower_envelope():
    a = (np.array([1.0, 10.0, 100.0]), np.array([4.0, 3.0, 2.0]))
    b = (np.array([10.0, 1000.0]), np.array([2.5, 1.5]))  # starts later, ends later
    c = (np.array([1.0, 1000.0]), np.array([5.0, 1.0]))  # lowest only at the very end
    grid = [1.0, 10.0, 100.0, 1000.0, 5000.0]
    env, who = lower_envelope([a, b, c], grid)
    # at 100: a = 2.0, b = 2.0 (halfway in log between 2.5 and 1.5), c = 3.0 -> a (first)
    assert env[:4].tolist() == [4.0, 2.5, 2.0, 1.0]
    assert who.tolist() == [0, 1, 0, 2, -1]
    assert math.isnan(env[4])  # past every curve
    for i, g in enumerate(grid[:4]):  # nothing any curve reaches is below the envelope
        for cc, ll in (a, b, c):
            if cc[0] <= g <= cc[-1]:
                assert np.interp(np.log(g), np.log(cc), ll) >= env[i] - 1e-12


# -- synthetic sweeps (results written as a sweep would) ---------------------------------------
def _fake_sweep(root, budgets=(1e10, 3e10, 1e11, 3e11), sizes=(1 / 3, 1, 3), diverged=0):
    runs = root / "runs"
    n = 0
    for c in budgets:
        n_opt = math.sqrt(c / 120)
        for k in sizes:
            N = int(n_opt * k)
            D = int(c / (6 * N))
            curve = [{"step": j, "tokens": D * j / 8, "compute": 6 * N * D * j / 8,
                      "compute_exact": 6.6 * N * D * j / 8, "val_loss": float(_law(N, D * j / 8))}
                     for j in range(1, 9)]
            bad = n < diverged
            name = f"gpt-{N}-{D}"
            write_json(runs / name / "result.json", {
                "name": name, "family": "gpt", "N": N, "D": D, "C": 6 * N * D,
                "C_exact": 6.6 * N * D, "budget": c, "status": "diverged" if bad else "ok",
                "val_loss": None if bad else curve[-1]["val_loss"],
                "bpb": None if bad else curve[-1]["val_loss"] / math.log(2),
                "bytes_per_token": 1.0, "learning_rate": 1e-3, "seconds": 1.0,
                "curve": [] if bad else curve})
            n += 1
    return root


def test_fit_sweep_reports_laws_frontier_and_holdout(tmp_path, capsys):
    d = _fake_sweep(tmp_path / "s", diverged=1)
    assert main(["scale", "fit", str(d), "--holdout", "--json", "--bootstrap", "4",
                 "--no-plots"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["n_runs"] == 11 and [e["name"] for e in rep["excluded"]] == ["gpt-3042-547885"]
    assert rep["chinchilla"]["alpha"] == pytest.approx(0.3, abs=0.02)
    assert rep["frontier"]["fit"]["r2"] > 0.95
    ho = rep["holdout"]
    assert len(ho["held_out"]) == 3 and ho["fitted_on"] == 8
    assert abs(ho["frontier_power"]["error"]) < 0.03
    assert abs(ho["chinchilla"]["best_error"]) < 0.01
    out = predict_loss(d, 1e5, 1e6)
    assert out["loss"] == pytest.approx(float(_law(1e5, 1e6)), rel=0.01)
    lo, hi = out["interval"]
    assert lo - 1e-6 <= out["loss"] <= hi + 1e-6 and hi - lo < 0.05
    assert main(["scale", "predict", str(d), "1e5", "1e6"]) == 0
    assert "nats/token" in capsys.readouterr().out


def test_frontier_and_holdout_pick_the_right_runs(tmp_path):
    d = _fake_sweep(tmp_path / "s")
    from chainrule.scaling.sweep import load_results

    runs = load_results(d)
    fr = frontier(runs)
    assert fr.compute[0] == pytest.approx(min(r["C"] for r in runs))
    assert fr.compute[-1] == pytest.approx(max(r["C"] for r in runs))
    # every frontier value is the lowest any run reaches there
    assert all(lv <= min(r["val_loss"] for r in runs if r["C"] <= c * (1 + 1e-9))
               for c, lv in zip(fr.compute, fr.loss))
    ho = holdout_report(runs)
    top = max(r["budget"] for r in runs)
    assert sorted(ho["held_out"]) == sorted(r["name"] for r in runs if r["budget"] == top)


# -- sweeps: a killed sweep resumes without re-running finished runs ----------------------------
@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    words = ["the", "king", "shall", "speak", "and", "we", "go", "home", "now"]
    text = "\n".join(" ".join(rng.choice(words, 8)) for _ in range(400)) + "\n"
    p = tmp_path / "corpus.txt"
    p.write_text(text, "utf-8")
    return p


TINY = {"batch_size": 4, "block_size": 16, "eval_iters": 2, "device": "cpu"}


def test_killed_sweep_resumes_without_rerunning_finished_runs(tmp_path, corpus, monkeypatch):
    from chainrule.scaling.run import sweep_corpus
    from chainrule.training import loop

    real = loop.train
    calls = []

    def killed_on_second(cfg, *a, **kw):
        calls.append((os.path.basename(str(a[2])), kw["resume"]))
        if len(calls) == 2:  # killed half-way through the second run, after a checkpoint
            hook = kw["on_evaluate"]

            def dying(model, step):
                if step > 0:
                    raise KeyboardInterrupt
                return hook(model, step)

            kw["on_evaluate"] = dying
        return real(cfg, *a, **kw)

    monkeypatch.setattr(loop, "train", killed_on_second)
    points = grid_points("gpt", [1], [8, 16, 24], [1024])
    out = tmp_path / "sweep"
    with pytest.raises(KeyboardInterrupt):
        sweep_corpus([corpus], out, points, settings=TINY, device="cpu")
    first = out / "runs" / points[0].name / "result.json"
    stamp = first.stat().st_mtime_ns
    assert not (out / "runs" / points[1].name / "result.json").exists()
    calls.clear()
    monkeypatch.setattr(loop, "train", lambda cfg, *a, **kw: (
        calls.append((os.path.basename(str(a[2])), kw["resume"])), real(cfg, *a, **kw))[1])
    results = sweep_corpus([corpus], out, None, device="cpu")  # the saved grid, resumed
    assert calls == [(points[1].name, True), (points[2].name, False)]
    assert first.stat().st_mtime_ns == stamp
    assert len(results) == 3 and all(r["status"] == "ok" for r in results)
    r = results[0]
    assert r["C"] == 6 * r["N"] * r["D"] and r["C_exact"] > 0
    assert r["bpb"] == pytest.approx(r["val_loss"] / math.log(2) / r["bytes_per_token"])
    assert [p["step"] for p in r["curve"]][-1] == r["steps"]  # val loss logged along training


# -- bad input ------------------------------------------------------------------------------------
def test_too_few_runs_diverged_runs_and_small_budgets_are_one_sentence(tmp_path, capsys):
    d = _fake_sweep(tmp_path / "few", budgets=(1e10,), sizes=(1, 3), diverged=1)
    with pytest.raises(ConfigError, match="1 usable gpt runs .*1 diverged: gpt-.*fewer than"):
        fit_sweep(d, n_boot=0)
    assert main(["scale", "fit", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    data = types.SimpleNamespace(vocab_size=65)
    with pytest.raises(ConfigError, match="time budget of 5 s is too small"):
        plan_sweep(data, 5, speed=Throughput(0.05, 1e-10))
    with pytest.raises(ConfigError, match="give --depths, --widths and --tokens together"):
        _raise_cli(["scale", "sweep", "x.txt", "-o", str(tmp_path / "x"), "--widths", "8"])


def _raise_cli(argv):
    from chainrule.cli import build_parser

    args = build_parser().parse_args(argv)
    return args.func(args)


def test_a_plan_fits_its_budget_and_spans_its_decades():
    data = types.SimpleNamespace(vocab_size=65)
    speed = Throughput(0.005, 1 / 20e9)
    pts, rec = plan_sweep(data, 600, speed=speed, jobs=2, base={"block_size": 64})
    budgets = sorted({p.budget for p in pts})
    assert len(pts) >= 12 and len(budgets) == 5
    assert math.log10(budgets[-1] / budgets[0]) == pytest.approx(1.5)
    assert rec["predicted_s"] <= 0.7 * 600
    assert learning_rate_for(10**5) == pytest.approx(0.003239 - 0.0001395 * math.log(1e5))


def test_sweep_points_round_trip_through_json():
    p = SweepPoint("gpt", 1, 8, 100, budget=1e9)
    assert SweepPoint.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert p.name == "gpt-L1-d8-D100"
