"""Every ``eval`` subcommand that scores text (surprisal, pairs, suite, reading-times) runs on
an n-gram model without importing torch, for word, BPE and character tokenizers (and ``eval
bleu --hypotheses`` needs no model, so no torch either), and prints what the torch path prints
(issue 21): ``score_sequences`` / ``score_with_mass`` hand an
n-gram model's work to :meth:`NgramModel.score_ids` / ``score_ids_with_mass`` (numpy,
models/ngram/lines.py); with those hooks removed the same commands take the torch path."""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainrule.models.ngram.model import NgramModel
from chainrule.models.ngram.train import save_ngram, train_ngram
from chainrule.models.scoring import score_sequences, score_with_mass
from chainrule.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer

TEXT = ["the cat sat on the mat .", "the dog sat on a mat .", "a cat ran to the dog .",
        "the dogs sat on the mats .", "a mat on the cat ."]
KINDS = ("word", "bpe", "char")


def _tokenizer(kind: str, text: str):
    if kind == "word":
        return WordTokenizer.train([text])
    if kind == "bpe":
        return BPETokenizer.train([text], vocab_size=60)
    return CharTokenizer.train([text])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("torchfree")
    rng = np.random.default_rng(0)
    corpus = tmp / "train.txt"
    corpus.write_text("\n".join(TEXT[i] for i in rng.integers(0, len(TEXT), 200)) + "\n",
                      encoding="utf-8")
    text = corpus.read_text(encoding="utf-8")
    models = {}
    for kind in KINDS:
        res = train_ngram(corpus, order=3, smoothing="mkn", tokenizer=_tokenizer(kind, text))
        save_ngram(res.model, res.tokenizer, tmp / kind)
        models[kind] = res
    (tmp / "s.txt").write_text("the cat sat on the mat .\na dog ran .\nthe zebra sat .\n",
                               encoding="utf-8")
    (tmp / "hyp.txt").write_text("the cat sat on a mat .\na dog ran .\nthe cat sat .\n",
                                 encoding="utf-8")
    with open(tmp / "ctx.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["context", "sentence"])
        w.writerows([["the cat sat .", "the dog ran ."], ["", "a mat on the cat ."]])
    pairs = [{"sentence_good": "the cat sat on the mat .", "sentence_bad": "the cat sat the mat .",
              "UID": "toy", "linguistics_term": "arg", "field": "syntax",
              "one_prefix_prefix": "the cat", "one_prefix_word_good": "sat",
              "one_prefix_word_bad": "mat"},
             {"sentence_good": "a dog ran .", "sentence_bad": "a dogs ran .", "UID": "toy2",
              "linguistics_term": "agr", "field": "morphology",
              "one_prefix_prefix": "a", "one_prefix_word_good": "dog",
              "one_prefix_word_bad": "dogs"}]
    (tmp / "p.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")

    def cond(name, verb):
        return {"condition_name": name, "regions": [
            {"region_number": 1, "content": "the cat"}, {"region_number": 2, "content": verb},
            {"region_number": 3, "content": "the mat"}, {"region_number": 4, "content": "."}]}
    suite = {"meta": {"name": "toy", "metric": "sum"}, "region_meta": {"2": "verb"},
             "predictions": [{"type": "formula", "formula": "[(2;%good%) < (2;%bad%)]"}],
             "items": [{"item_number": 1, "conditions": [cond("good", "sat on"),
                                                         cond("bad", "sat")]}]}
    (tmp / "suite.json").write_text(json.dumps(suite), encoding="utf-8")
    words = " ".join(TEXT * 4).split()
    rows = ["word\tzone\titem\tmeanItemRT"]
    for doc in (1, 2):
        rows += [f"{w}\t{z}\t{doc}\t{300 + 20 * len(w) + rng.normal(0, 10):.1f}"
                 for z, w in enumerate(words, 1)]
    (tmp / "rt.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return tmp, models


def _commands(tmp, out) -> list[tuple[str, list[str]]]:
    """(output name, argv) for every scoring eval subcommand and every tokenizer kind."""
    cmds = []
    for k in KINDS:
        m = str(tmp / k)
        unk = ["--unk", "score"]
        cmds += [
            (f"{k}-tokens.jsonl", ["eval", "surprisal", m, "--data", str(tmp / "s.txt"),
                                   "-o", str(out / f"{k}-tokens.jsonl"), *unk]),
            (f"{k}-words.jsonl", ["eval", "surprisal", m, "--data", str(tmp / "ctx.csv"),
                                  "--context-column", "context", "--words",
                                  "-o", str(out / f"{k}-words.jsonl"), *unk]),
            (f"{k}-pairs.json", ["eval", "--threads", "1", "pairs", m, "--data",
                                 str(tmp / "p.jsonl"), "--json", *unk,
                                 *(["--plot", str(out / "pairs.png")] if k == "char" else [])]),
            (f"{k}-prefix.json", ["eval", "pairs", m, "--data", str(tmp / "p.jsonl"),
                                  "--method", "prefix", "--json",
                                  "--items", str(out / f"{k}-prefix-items.csv"), *unk]),
            (f"{k}-suite.json", ["eval", "suite", m, "--suite", str(tmp / "suite.json"),
                                 "--json", "--items", str(out / f"{k}-suite-items.csv"),
                                 *unk]),
            (f"{k}-rt.json", ["eval", "reading-times", m, "--data", str(tmp / "rt.tsv"),
                              "--freq-corpus", str(tmp / "train.txt"), "--folds", "3",
                              "--json", "--items", str(out / f"{k}-rt-items.csv"), *unk]),
        ]
    if importlib.util.find_spec("sacrebleu") is not None:  # the mt extra; no model, no torch
        cmds.append(("bleu.json", ["eval", "bleu", "--reference", str(tmp / "s.txt"),
                                   "--hypotheses", str(tmp / "hyp.txt"), "--json"]))
    return cmds


def _run(tmp, out, *, torch_path: bool) -> dict:
    """Run every command in one fresh interpreter; stdout of each goes to out/<name>."""
    out.mkdir()
    code = textwrap.dedent(f"""
        import contextlib, io, json, sys
        from chainrule.cli import main
        if {torch_path!r}:  # the general path: no numpy hooks, torch tensors
            from chainrule.models.ngram.model import NgramModel
            NgramModel.score_ids = None
            NgramModel.score_ids_with_mass = None
        codes = []
        for name, argv in {_commands(tmp, out)!r}:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                codes.append(main(argv))
            if name.endswith(".json"):
                open({str(out)!r} + "/" + name, "w").write(buf.getvalue())
        print(json.dumps({{"codes": codes, "torch": "torch" in sys.modules}}))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _numbers(path):
    """Every value of a JSON / JSONL / CSV output, in order, numbers as floats."""
    text = path.read_text(encoding="utf-8").replace(str(path.parent), "OUT")
    if path.suffix == ".csv":
        vals = [v for row in csv.reader(text.splitlines()) for v in row]
    else:
        docs = [json.loads(x) for x in text.splitlines() if x.strip()] \
            if path.suffix == ".jsonl" else [json.loads(text)]
        vals = []

        def walk(x):
            if isinstance(x, dict):
                for k in sorted(x):
                    vals.append(k)
                    walk(x[k])
            elif isinstance(x, list):
                for y in x:
                    walk(y)
            else:
                vals.append(x)
        for d in docs:
            walk(d)
    out = []
    for v in vals:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            out.append(v)
    return out


def test_eval_commands_on_ngrams_import_no_torch_and_match_the_torch_path(setup):
    tmp, _ = setup
    fast = _run(tmp, tmp / "numpy", torch_path=False)
    general = _run(tmp, tmp / "torch", torch_path=True)
    n = len(_commands(tmp, tmp))
    assert fast == {"codes": [0] * n, "torch": False}, "an eval command on an n-gram imported torch"
    assert general == {"codes": [0] * n, "torch": True}
    files = sorted(p.name for p in (tmp / "numpy").iterdir() if p.suffix != ".png")
    assert files == sorted(p.name for p in (tmp / "torch").iterdir() if p.suffix != ".png")
    assert len(files) == 27 + (n == 19) and (tmp / "numpy" / "pairs.png").stat().st_size > 0
    for name in files:
        a, b = _numbers(tmp / "numpy" / name), _numbers(tmp / "torch" / name)
        assert len(a) == len(b), name
        # the word-boundary correction (character models' word surprisals) sums the set's
        # probability in float64 where the torch path sums float32: equal to float32 rounding
        corrected = name.startswith("char-") and any(
            t in name for t in ("words", "suite", "rt"))
        for x, y in zip(a, b):
            if isinstance(x, float) and isinstance(y, float) and corrected:
                assert x == y or math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-5), (name, x, y)
            else:
                same_nan = isinstance(x, float) and isinstance(y, float) and math.isnan(x) \
                    and math.isnan(y)
                assert x == y or same_nan, (name, x, y)
    # the correction did apply to the character model (and only there), both ways
    words = [json.loads(x) for x in (tmp / "numpy" / "char-words.jsonl").read_text().splitlines()]
    assert words and all(w["corrected"] == 1 for w in words)
    word_rows = (tmp / "numpy" / "word-words.jsonl").read_text().splitlines()
    assert all(json.loads(x)["corrected"] == 0 for x in word_rows)


seq = st.lists(st.integers(0, 10_000), min_size=1, max_size=40)  # framed: never empty


@contextlib.contextmanager
def _torch_path():
    """The general path: NgramModel without its numpy hooks (restored on exit)."""
    saved = NgramModel.score_ids, NgramModel.score_ids_with_mass
    NgramModel.score_ids = NgramModel.score_ids_with_mass = None
    try:
        yield
    finally:
        NgramModel.score_ids, NgramModel.score_ids_with_mass = saved


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(raw=st.lists(seq, min_size=1, max_size=6), bos_first=st.booleans())
def test_score_ids_equal_the_torch_path_bit_for_bit(setup, kind, raw, bos_first):
    _, models = setup
    model = models[kind].model
    V = model.vocab_size
    seqs = [([model.bos_id] if bos_first else []) + [t % V for t in s] for s in raw]
    mask = np.zeros(V, dtype=bool)
    mask[[model.eos_id, V // 2, V - 1]] = True
    got = score_sequences(model, seqs)
    got_mass = score_with_mass(model, seqs, mask)
    with _torch_path():
        ref = score_sequences(model, seqs)
        ref_mass = score_with_mass(model, seqs, mask)
    for g, r, (gl, gm), (rl, rm), s in zip(got, ref, got_mass, ref_mass, seqs):
        assert g.tobytes() == r.tobytes() and gl.tobytes() == r.tobytes()
        assert len(g) == max(0, len(s) - 1) and len(gm) == len(rm) == len(s)
        assert rl.tobytes() == r.tobytes()
        np.testing.assert_allclose(gm, rm, rtol=1e-6, atol=1e-6)


def test_long_sequences_and_the_mass_by_hand(setup):
    # one sequence longer than a scoring window (the torch path cuts it into windows) and the
    # mass of a set holding every token but <s> is log 1 = 0 after every prefix
    _, models = setup
    model = models["char"].model
    rng = np.random.default_rng(3)
    seq = [model.bos_id, *rng.integers(4, model.vocab_size, 2500).tolist()]
    full = np.ones(model.vocab_size, dtype=bool)
    full[model.bos_id] = False
    [(lp, mass)] = score_with_mass(model, [seq], full)
    np.testing.assert_allclose(mass, 0.0, atol=1e-6)
    with _torch_path():
        [ref] = score_sequences(model, [seq])  # cut into windows of 1,024 positions
    assert lp.tobytes() == ref.tobytes()


def test_conformance_check_of_own_scoring_can_fail(setup):
    # the conformance suite runs check_own_scoring on every family with score_ids (n-grams);
    # a hook that is off by one ulp, or a mass that is not the set's, must be caught
    from chainrule.testing.conformance import check_own_scoring, checks_for
    from chainrule.testing.families import FAMILY_SPECS
    from chainrule.testing.probes import TinyTask

    task = TinyTask(seed=0)
    model = FAMILY_SPECS["ngram"].make(task)
    assert "own_scoring" in checks_for(type(model))
    check_own_scoring(model, task)
    good_ids, good_mass = model.score_ids, model.score_ids_with_mass
    model.score_ids = lambda seqs: [np.nextafter(x, 0) for x in good_ids(seqs)]
    with pytest.raises(AssertionError, match="score_ids differs"):
        check_own_scoring(model, task)
    model.score_ids = good_ids
    model.score_ids_with_mass = lambda seqs, mask: good_mass(seqs, ~mask)
    with pytest.raises(AssertionError, match="set's log-probability"):
        check_own_scoring(model, task)
