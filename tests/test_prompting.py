"""Prompting and in-context learning: templates, demonstrations, multiple-choice scoring
(lm-evaluation-harness's acc / acc_norm), generation, the report, the CLI's bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from chainrule.cli import main
from chainrule.decoding import score_continuations
from chainrule.errors import ConfigError
from chainrule.prompting import (
    ModelEntry,
    PromptBuilder,
    Task,
    evaluate_task,
    load_task,
    plain_prompt,
    render,
    run_condition,
    sample_demos,
    shipped_task_names,
    split_examples,
    template_fields,
    write_report,
)
from chainrule.prompting.harness import condition_scores
from chainrule.prompting.metrics import choice_length, pick, token_f1
from chainrule.tokenizers.char import CharTokenizer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LETTERS = "abcdefghijklmnop"


def copy_task(**kw) -> Task:
    base = {"name": "copy", "kind": "generation", "template": "{x}", "answer": "y",
            "target_delimiter": "=", "separator": ";", "stop": (";",), "max_new_tokens": 3,
            "examples": "x.jsonl"}
    return Task(**{**base, **kw})


# -- templates ----------------------------------------------------------------------------------
def test_render_fills_slots_and_keeps_escaped_braces():
    assert render("{x} → {{y}}", {"x": "Athens", "y": "Greece"}) == "Athens → {y}"
    assert template_fields("Q: {question}\nA: {answer}") == ["question", "answer"]


def test_missing_field_is_one_clear_sentence():
    with pytest.raises(ConfigError, match=r"field 'country'.*lacks.*fields: x, y"):
        render("{country} →", {"x": "a", "y": "b"})
    task = copy_task(template="{word} =")
    with pytest.raises(ConfigError, match=r"template names field 'word' but example 1"):
        task.check_examples([{"x": "a", "y": "a"}], "x.jsonl")


@pytest.mark.parametrize("template", ["{x.__class__}", "{x[0]}", "{x!r}", "{x:>10}", "{0}", "a } b"])
def test_templates_never_reach_into_objects(template):
    # str.format would evaluate attribute access, indexing, conversions: these are refused
    with pytest.raises(ConfigError, match="lone"):
        render(template, {"x": "abc"})


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=30))
def test_text_without_braces_renders_as_itself(text):
    assert render(text, {}) == text


# -- demonstrations -----------------------------------------------------------------------------
EXAMPLES = [{"x": c, "y": c} for c in LETTERS]


def test_demos_never_include_the_test_example_and_a_seed_fixes_them():
    task = copy_task()
    # a pool that contains the test example itself: it must still never be drawn
    for i, ex in enumerate(EXAMPLES):
        for seed in range(5):
            demos = sample_demos(task, EXAMPLES, ex, 8, seed, i)
            assert ex not in demos and len({d["x"] for d in demos}) == 8
            assert demos == sample_demos(task, EXAMPLES, ex, 8, seed, i)
    draws = {tuple(d["x"] for d in sample_demos(task, EXAMPLES, EXAMPLES[0], 4, s, 0))
             for s in range(10)}
    assert len(draws) > 1  # different seeds, different demonstrations


def test_pool_and_test_are_disjoint_and_too_many_shots_is_refused():
    task = copy_task()
    pool, test = split_examples(task, EXAMPLES)
    assert not {e["x"] for e in pool} & {e["x"] for e in test}
    assert len(pool) + len(test) == len(EXAMPLES)
    with pytest.raises(ConfigError, match=r"9 demonstrations.*only 8 usable"):
        sample_demos(task, pool, test[0], 9, 0, 0)


def test_plain_prompt_layout():
    task = copy_task(template="{x} →", target_delimiter=" ", separator="\n")
    demos = [{"x": "Athens", "y": "Greece"}, {"x": "Berlin", "y": "Germany"}]
    assert plain_prompt(task, demos, {"x": "Paris", "y": "France"}) == \
        "Athens → Greece\nBerlin → Germany\nParis →"


# -- multiple choice ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def char_model():
    """A tiny bigram-ish GPT over characters (untrained weights: any fixed scorer will do)."""
    from chainrule.models.neural import build_neural_model

    tok = CharTokenizer(list(LETTERS) + [" ", ":", "\n"])
    torch.manual_seed(0)
    model = build_neural_model("gpt", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                               eos_id=tok.eos_id, n_layer=1, n_head=2, n_embd=16,
                               block_size=128, dropout=0.0).eval()
    return model, tok


def mc_task(**kw) -> Task:
    base = {"name": "mc", "kind": "multiple_choice", "template": "q: {q}", "answer": "a",
            "choices_field": "opts", "target_delimiter": " ", "separator": "\n",
            "examples": "x.jsonl"}
    return Task(**{**base, **kw})


def test_multiple_choice_equals_a_slow_loop_over_choices(char_model):
    model, tok = char_model
    rng = np.random.default_rng(0)
    exs = [{"q": "".join(rng.choice(list(LETTERS), 3)),
            "opts": ["".join(rng.choice(list(LETTERS), n)) for n in (1, 2, 4)], "a": 0}
           for _ in range(20)]
    task = mc_task()
    builder = PromptBuilder(task, tok, "plain")
    recs = run_condition(model, builder, exs[:10], exs[10:], 2, 0)
    for r, ex in zip(recs, exs[10:]):
        slow = []
        for c in ex["opts"]:  # one forward pass per choice, by hand: log P(" c" | BOS prompt)
            p = tok.encode(r.prompt)
            ids = torch.tensor([[model.bos_id, *p, *tok.encode(" " + c)]])
            with torch.no_grad():
                lp = model.logprobs(ids)[0]
            slow.append(sum(float(lp[t - 1, ids[0, t]]) for t in range(len(p) + 1, ids.shape[1])))
        assert r.choice_logprobs == pytest.approx(slow, abs=1e-4)
        assert r.correct == (int(np.argmax(slow)) == 0)
        norm = [s / len(c) for s, c in zip(slow, ex["opts"])]
        assert r.correct_norm == (int(np.argmax(norm)) == 0)


def test_acc_norm_divides_by_the_choice_length_in_characters():
    # hand-worked: sums -3 (1 char), -4 (4 chars), -5 (10 chars)
    assert pick([-3.0, -4.0, -5.0], ["a", "abcd", "abcdefghij"]) == (0, 2)
    assert choice_length("naïve") == 5 and choice_length("") == 1


def test_acc_and_acc_norm_match_a_hand_computed_reference_on_20_examples(char_model):
    """lm-evaluation-harness: acc = argmax sum log P; acc_norm = argmax sum log P / len(choice)."""
    model, tok = char_model
    rng = np.random.default_rng(1)
    exs = [{"q": "".join(rng.choice(list(LETTERS), 2)),
            "opts": ["".join(rng.choice(list(LETTERS), int(n))) for n in rng.integers(1, 6, 3)],
            "a": int(rng.integers(0, 3))} for _ in range(40)]
    task = mc_task()
    pool, test = exs[:20], exs[20:]
    recs = run_condition(model, PromptBuilder(task, tok, "plain"), pool, test, 1, 3)
    acc = acc_norm = 0
    for r, ex in zip(recs, test):
        p = tok.encode(r.prompt)
        lp = score_continuations(model, [(p, tok.encode(" " + c)) for c in ex["opts"]])
        acc += int(np.argmax(lp)) == ex["a"]
        acc_norm += int(np.argmax([v / len(c) for v, c in zip(lp, ex["opts"])])) == ex["a"]
    scores = condition_scores(task, recs)
    assert scores == {"acc": acc / 20, "acc_norm": acc_norm / 20}


# -- generation: a toy trained on "x=x" pairs learns the format from its context ---------------
@pytest.fixture(scope="module")
def pair_lm():
    """A 5-gram character model trained on documents that are 30% "x=x;" pairs and 70% bare
    "x;" words. Without demonstrations the prompt "m" most likely ends a bare word, so the
    answer is empty; after "a=a;k=k;" the context shows the pair format and the model copies.
    (The same test with a small neural model, an LSTM trained here, is in
    test_prompting_reference.py; this n-gram stays as the fast model of the CLI tests.)"""
    from chainrule.models.ngram import NgramModel

    tok = CharTokenizer(list(LETTERS) + ["=", ";"])
    rng = np.random.default_rng(0)
    docs = []
    for _ in range(3000):
        pairs = rng.random() < 0.3
        words = rng.choice(list(LETTERS), size=6)
        text = "".join(f"{w}={w};" if pairs else f"{w};" for w in words)
        docs.append([tok.bos_id, *tok.encode(text), tok.eos_id])
    model = NgramModel(5, "mkn", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                       eos_id=tok.eos_id, discounts=[(0.5, 1.0, 1.5)] * 5).fit(docs)
    return model, tok


def test_toy_gets_the_copy_task_right_with_shots_and_wrong_without(pair_lm):
    model, tok = pair_lm
    task = copy_task()
    pool, test = EXAMPLES[:8], EXAMPLES[8:]
    builder = PromptBuilder(task, tok, "plain")
    zero = run_condition(model, builder, pool, test, 0, 0)
    few = run_condition(model, builder, pool, test, 2, 0)
    assert condition_scores(task, zero)["exact_match"] == 0.0
    assert [r.prediction for r in zero] == [""] * len(test)
    assert condition_scores(task, few)["exact_match"] == 1.0
    assert few[0].prompt.count(";") == 2 and few[0].prompt.endswith(test[0]["x"])


def test_report_files_and_seed_determinism(pair_lm, tmp_path):
    model, tok = pair_lm
    task = copy_task()
    entry = ModelEntry("toy", model, tok)
    reps = [evaluate_task([entry], task, EXAMPLES, [0, 1, 2], seeds=2) for _ in range(2)]
    assert [r.to_dict() for r in reps[0].records] == [r.to_dict() for r in reps[1].records]
    rows = {r["shots"]: r for r in reps[0].rows}
    assert rows[0]["seeds"] == 1 and rows[2]["seeds"] == 2 and rows[2]["exact_match"] == 1.0
    paths = write_report(reps[0], tmp_path / "out", plot=False)
    lines = paths["prompts"].read_text("utf-8").splitlines()
    assert len(lines) == len(reps[0].records) == 8 * (1 + 2 + 2)
    first = json.loads(lines[0])
    assert first["shots"] == 0 and first["prompt"] == first["gold"] and len(first["prompt"]) == 1
    assert "| toy | plain |" in paths["table"].read_text("utf-8")


def test_generation_without_stop_or_end_token_is_refused(pair_lm):
    _, tok = pair_lm

    class NoEnd:  # the same model, minus its end token
        eos_id = None

    builder = PromptBuilder(copy_task(stop=()), tok, "plain")
    with pytest.raises(ConfigError, match="no stop string and the model has no end token"):
        from chainrule.prompting.harness import _generate

        _generate(NoEnd(), builder, ["a"], 4)


def test_token_f1_by_hand():
    assert token_f1("the cat sat", "the cat") == pytest.approx(0.8)
    assert token_f1("dog", "cat") == 0.0


# -- the shipped tasks ----------------------------------------------------------------------------
def test_every_shipped_task_loads():
    names = shipped_task_names()
    assert {"capital-common-countries", "gram9-plural-verbs", "multi30k-de-en", "blimp",
            "brown-genre", "brown-tldr"} <= set(names)
    for n in names:
        assert load_task(n).name == n


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "embeddings").is_dir(), reason="needs ../shared/data")
def test_relation_tasks_are_built_from_the_analogy_file():
    from chainrule.prompting import task_examples

    ex = task_examples(load_task("capital-common-countries"), SHARED)
    assert {"x": "Athens", "y": "Greece"} in ex and len(ex) == len({e["x"] for e in ex})
    genre = task_examples(load_task("brown-genre"), SHARED)
    assert {e["genre"] for e in genre} >= {"news", "humor", "science fiction"}
    pool_files = {e["file"] for e in genre if e["split"] == "pool"}
    assert not pool_files & {e["file"] for e in genre if e["split"] == "test"}


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "blimp-dev").is_dir(), reason="needs ../shared/data")
def test_blimp_as_two_choices_agrees_with_eval_pairs():
    from chainrule.evaluation.pairs import read_pairs, score_pairs
    from chainrule.models.neural import build_neural_model
    from chainrule.prompting.builders import blimp

    files = sorted((SHARED / "blimp-dev").glob("*.jsonl"))[:1]
    tok = CharTokenizer(sorted({ch for p in read_pairs(files) for s in (p.good, p.bad)
                                for ch in s}))
    torch.manual_seed(0)
    model = build_neural_model("gpt", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                               eos_id=tok.eos_id, n_layer=1, n_head=2, n_embd=16,
                               block_size=256, dropout=0.0).eval()
    pairs = read_pairs(files)[:40]
    examples = [{"choices": [p.bad, p.good], "good": p.good} for p in pairs]
    task = load_task("blimp")
    recs = run_condition(model, PromptBuilder(task, tok, "plain"), examples, examples, 0, 0)
    ref = score_pairs(model, tok, pairs, include_eos=False)
    assert [r.correct for r in recs] == ref.correct
    assert len(blimp(SHARED)) >= 1000


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_lists_tasks(capsys):
    assert main(["prompt", "tasks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["tasks"]
    assert any(r["task"] == "gram8-plural" and r["kind"] == "generation" for r in rows)


def test_cli_eval_on_a_task_file(pair_lm, tmp_path, capsys):
    model, tok = pair_lm
    model.save(tmp_path / "m")
    tok.save(tmp_path / "m" / "tokenizer.json")
    (tmp_path / "copy.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    (tmp_path / "copy.toml").write_text(
        'kind = "generation"\ntemplate = "{x}"\nanswer = "y"\ntarget_delimiter = "="\n'
        'separator = ";"\nstop = [";"]\nmax_new_tokens = 3\nexamples = "copy.jsonl"\n')
    code = main(["prompt", "eval", str(tmp_path / "m"), "--task", str(tmp_path / "copy.toml"),
                 "--shots", "0,2", "--seeds", "2", "--format", "plain", "-o",
                 str(tmp_path / "out"), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    by_shots = {r["shots"]: r["exact_match"] for r in out["rows"]}
    assert by_shots == {0: 0.0, 2: 1.0}
    assert (tmp_path / "out" / "prompts.jsonl").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--task", "no-such-task"], "unknown task 'no-such-task'"),
    (["--task", "gram8-plural", "--shots", "1,x"], "--shots takes comma-separated"),
    (["--task", "BAD", "--shots", "0,99"], "99 demonstrations were asked for but the pool of task 'BAD' holds only 8"),
    (["--task", "MISSING"], "template names field 'word' but example 1"),
])
def test_cli_bad_input_is_one_sentence(argv, message, pair_lm, tmp_path, capsys):
    model, tok = pair_lm
    model.save(tmp_path / "m")
    tok.save(tmp_path / "m" / "tokenizer.json")
    (tmp_path / "copy.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    for name, template in (("BAD", "{x}"), ("MISSING", "{word}")):
        (tmp_path / f"{name}.toml").write_text(
            f'kind = "generation"\ntemplate = "{template}"\nanswer = "y"\nstop = [";"]\n'
            'examples = "copy.jsonl"\n')
    argv = [str(tmp_path / f"{a}.toml") if a in ("BAD", "MISSING") else a for a in argv]
    code = main(["prompt", "eval", str(tmp_path / "m"), *argv, "--format", "plain", "-o",
                 str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_chat_text_outside_a_character_vocabulary_is_warned_about(char_model):
    """The plain User:/Assistant: fallback on a model whose characters lack 'U', 's', ...:
    one warning naming the characters, and none for the plain format."""
    import warnings

    from chainrule.prompting.evaluate import ChatUnknownWarning
    from chainrule.tokenizers.chat import ChatTemplate

    model, tok = char_model
    exs = [{"q": "abc", "opts": ["a", "b"], "a": 0, "split": s} for s in ("pool", "test")]
    entry = ModelEntry("char", model, tok, ChatTemplate("plain"))
    with pytest.warns(ChatUnknownWarning, match=r"model 'char'.*'U'.*--format plain"):
        evaluate_task([entry], mc_task(template="{q}"), exs, [0], 1, ("chat",))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChatUnknownWarning)
        evaluate_task([entry], mc_task(template="{q}"), exs, [0], 1, ("plain",))


class _Copier:
    """An ideal induction head: after token A, predict what followed A's previous occurrence."""

    def __init__(self, vocab: int):
        self.vocab = vocab

    def logprobs(self, tokens):
        out = torch.full((*tokens.shape, self.vocab), -30.0)
        for b, row in enumerate(tokens.tolist()):
            last = row[-1]
            prev = [i for i in range(len(row) - 1) if row[i] == last]
            if prev:
                out[b, -1, row[prev[-1] + 1]] = 0.0
        return out


def test_few_shot_pairs_rises_with_demonstrations_for_a_copier():
    from chainrule.prompting.induction import InductionConfig, few_shot_pairs

    cfg = InductionConfig()
    res = few_shot_pairs(_Copier(cfg.vocab + 2), cfg, shots=(0, 1, 4, 16), n=200)
    # a copier answers exactly the queries whose pair was demonstrated: k / 16 of them
    assert res["acc"] == res["in_context"]
    assert res["acc"][0] == 0.0 and res["acc"][16] == 1.0
    assert res["acc_in_context"][1] == res["acc_in_context"][4] == 1.0
    assert res["in_context"][4] == pytest.approx(4 / 16, abs=0.08)
    with pytest.raises(ConfigError, match="at most 16 demonstrations"):
        few_shot_pairs(_Copier(cfg.vocab + 2), cfg, shots=(17,))
