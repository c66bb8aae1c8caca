"""In-context learning in a small neural model trained here, and the multiple-choice harness on
the real SmolLM2-135M-Instruct against an independent ``transformers`` reference
(lm-evaluation-harness's acc / acc_norm computed the slow way, one forward pass per choice)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from chainrule.prompting import PromptBuilder, Task, load_task, run_condition, split_examples
from chainrule.prompting.harness import condition_scores
from chainrule.prompting.metrics import pick
from chainrule.testing.mc_reference import reference_multiple_choice
from chainrule.tokenizers.char import CharTokenizer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ALPHABET = "abcdefgh"


# -- "x=x" pairs: the format comes from the context, the answer from copying ---------------------
@pytest.fixture(scope="module")
def pair_lstm(tmp_path_factory):
    """A one-layer LSTM (≈28k parameters) trained by the training loop for 700 steps (≈7
    CPU-seconds) on documents that are 40% "x=x;" pair lists and 60% bare "x;" word lists. After
    "<s>e" a bare word is the more likely document, so zero-shot the model closes the word (an
    empty answer); after "a=a;c=c;" the state has seen the pair format, so it writes "=e"."""
    from chainrule.training import train
    from chainrule.training.config import make_config

    tok = CharTokenizer(list(ALPHABET) + ["=", ";"])
    rng = np.random.default_rng(0)
    ids: list[int] = []
    for _ in range(3000):
        pairs = rng.random() < 0.4
        words = rng.choice(list(ALPHABET), size=12 if pairs else 6)
        text = "".join(f"{w}={w};" if pairs else f"{w};" for w in words)
        ids += [tok.bos_id, *tok.encode(text), tok.eos_id]
    steps = 700
    cfg = make_config("lstm", overrides={
        "n_layer": 1, "n_embd": 32, "n_hidden": 64, "dropout": 0.0, "block_size": 32,
        "batch_size": 32, "max_iters": steps, "learning_rate": 1e-2, "decay_lr": False,
        "warmup_iters": 20, "lr_decay_iters": steps, "weight_decay": 0.0,
        "eval_interval": steps, "eval_iters": 2, "device": "cpu", "seed": 0})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic on every machine
    try:
        res = train(cfg, np.array(ids), None, tmp_path_factory.mktemp("pair_lstm"),
                    tokenizer=tok, progress=False, plot=False)
    finally:
        torch.set_num_threads(threads)
    return res.model.eval(), tok


def test_neural_toy_gets_the_copy_task_right_with_shots_and_wrong_without(pair_lstm):
    model, tok = pair_lstm
    task = Task(name="copy", kind="generation", template="{x}", answer="y",
                target_delimiter="=", separator=";", stop=(";",), max_new_tokens=3,
                examples="x.jsonl")
    examples = [{"x": c, "y": c} for c in ALPHABET]
    builder = PromptBuilder(task, tok, "plain")
    # the pool is every pair; a test example is never its own demonstration
    zero = run_condition(model, builder, examples, examples, 0, 0)
    assert [r.prediction for r in zero] == [""] * len(examples)
    assert condition_scores(task, zero)["exact_match"] == 0.0
    for k in (2, 4):
        few = run_condition(model, builder, examples, examples, k, 0)
        assert all(r.prompt.count("=") == k for r in few)
        assert condition_scores(task, few)["exact_match"] >= 0.75, [r.prediction for r in few]


# -- SmolLM2 on 20 BLiMP pairs: our acc / acc_norm against transformers, by hand ----------------
@pytest.mark.slow
@pytest.mark.xdist_group("smollm2")  # shares conftest.py's session fixtures
@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "blimp-dev").is_dir(), reason="needs ../shared/data")
def test_smollm2_acc_and_acc_norm_equal_a_transformers_reference_on_20_blimp_pairs(ours, hf):
    from chainrule.prompting import task_examples

    pytest.importorskip("gguf")
    (model, tok), (hf, hf_tok) = ours, hf
    task = load_task("blimp")
    _, pairs = split_examples(task, task_examples(task, SHARED))  # BLiMP: every pair is "test"
    # zero shots (BLiMP's template is empty, so every pair's prompt equals every other's and
    # none may demonstrate another): the context is <s> alone, the choices whole sentences
    test = pairs[:20]
    recs = run_condition(model, PromptBuilder(task, tok, "plain", None, model.bos_id),
                         pairs[20:], test, 0, 0)
    choices = [task.choices_of(ex) for ex in test]
    ref = reference_multiple_choice(
        lambda ids: hf(ids).logits, lambda s: hf_tok(s, add_special_tokens=False).input_ids,
        [r.prompt for r in recs], choices, [c.index(task.gold(ex)) for c, ex in
                                            zip(choices, test)],
        delimiter=task.target_delimiter, prefix=[model.bos_id])
    worst = max(abs(a - b) for r, lp in zip(recs, ref["logprobs"])
                for a, b in zip(r.choice_logprobs, lp))
    print(f"max |log P ours - log P reference| = {worst:.1e}")
    assert worst < 2e-3, worst  # float32 sums of ~10-token choices, two implementations
    # the same picks (not only the same right/wrong), by our normaliser on our log-probs
    assert [c.index(r.prediction) for c, r in zip(choices, recs)] == ref["pred"]
    assert [pick(r.choice_logprobs, c)[1] for c, r in zip(choices, recs)] == ref["pred_norm"]
    assert [int(r.correct) for r in recs] == ref["acc"]
    assert [int(r.correct_norm) for r in recs] == ref["acc_norm"]
    assert condition_scores(task, recs) == {"acc": np.mean(ref["acc"]),
                                            "acc_norm": np.mean(ref["acc_norm"])}
