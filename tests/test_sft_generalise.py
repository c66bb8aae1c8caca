"""Issue 18's generalisation experiment, the library parts: prompting tasks as instruction
tables (`chainrule sft-data --tasks`) and LoRA adapters evaluated by `chainrule prompt eval
--adapter` (equal to the merged model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from chainrule.cli import main
from chainrule.models.lora import LoRAConfig, add_lora, merge_lora, save_adapter
from chainrule.models.neural import build_neural_model
from chainrule.prompting import chat_messages, load_task, split_examples
from chainrule.prompting.instruction_rows import harness_phrasing, split_rows, task_rows
from chainrule.tokenizers.char import CharTokenizer

WORDS = ["abc", "bad", "cab", "dace", "face", "bead", "deaf", "fade", "aced", "cafe"]


def _task_files(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "w.jsonl").write_text("".join(
        json.dumps({"x": w, "up": w.upper(), "rev": w[::-1]}) + "\n" for w in WORDS))
    up = tmp_path / "upper.toml"
    up.write_text('kind = "generation"\ntemplate = "{x} ->"\nanswer = "up"\n'
                  'instruction = "Uppercase the word."\nexamples = "w.jsonl"\n')
    rev = tmp_path / "reverse.toml"
    rev.write_text('kind = "generation"\ntemplate = "{x} ->"\nanswer = "rev"\n'
                   'instruction = "Reverse the word."\nexamples = "w.jsonl"\n')
    return up, rev


def test_rows_and_the_harness_phrasing_match_the_zero_shot_chat_prompt(tmp_path):
    up, _ = _task_files(tmp_path)
    task = load_task(up)
    examples = [json.loads(line) for line in (tmp_path / "w.jsonl").read_text().splitlines()]
    rows = task_rows(task, examples)
    assert rows[1] == {"task": "upper", "input": "bad", "output": "BAD"}
    phrasing = harness_phrasing(task)
    assert phrasing == "Uppercase the word.\n\n{input} ->"
    for ex, row in zip(examples, rows):  # the tuned form is exactly what the harness asks
        assert phrasing.replace("{input}", row["input"]) == \
            chat_messages(task, [], ex)[-1]["content"]
    pool, test = split_examples(task, examples)
    assert [r["input"] for r in split_rows(task, examples, "pool")] == [e["x"] for e in pool]
    assert [r["input"] for r in split_rows(task, examples, "test")] == [e["x"] for e in test]


def test_sft_data_from_tasks_keeps_test_sets_out_and_splits_by_task(tmp_path, capsys):
    up, rev = _task_files(tmp_path)
    extra = tmp_path / "p.json"
    extra.write_text(json.dumps({"upper": ["Capitals: {input}"]}))
    assert main(["sft-data", "--tasks", f"{up},{rev}", "--instructions", str(extra),
                 "--held-out-tasks", "reverse", "-o", str(tmp_path / "d")]) == 0
    held_in = [json.loads(x) for x in (tmp_path / "d/held_in.jsonl").read_text().splitlines()]
    held_out = [json.loads(x) for x in (tmp_path / "d/held_out.jsonl").read_text().splitlines()]
    assert {c["task"] for c in held_in} == {"upper"} and {c["task"] for c in held_out} == \
        {"reverse"}
    task = load_task(up)
    pool, test = split_examples(task, [json.loads(x) for x in
                                       (tmp_path / "w.jsonl").read_text().splitlines()])
    answers = [c["messages"][1]["content"] for c in held_in]
    assert sorted(answers) == sorted(e["up"] for e in pool)  # the pool, never the test set
    assert not {e["up"] for e in test} & set(answers)
    users = {c["messages"][0]["content"].split("\n")[0].split(":")[0] for c in held_in}
    assert users <= {"Uppercase the word.", "Capitals"}
    code = main(["sft-data", "--tasks", str(up), "--per-task", "2", "-o", str(tmp_path / "e")])
    assert code == 0 and len((tmp_path / "e/held_in.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("argv, message", [
    (["--tasks", "gram8-plural", "T"], "give either a TABLE or --tasks NAMES"),
    ([], "give either a TABLE or --tasks NAMES (prompting tasks), not neither"),
    (["T"], "a TABLE needs --instructions"),
    (["--tasks", "no-such-task"], "unknown task 'no-such-task'"),
])
def test_sft_data_bad_input_is_one_sentence(argv, message, tmp_path, capsys):
    table = tmp_path / "t.jsonl"
    table.write_text(json.dumps({"task": "a", "input": "x", "output": "y"}) + "\n")
    argv = [str(table) if a == "T" else a for a in argv]
    code = main(["sft-data", *argv, "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def _char_gpt(seed: int):
    tok = CharTokenizer(list("abcdef") + [" ", "-", ">", "\n"])
    torch.manual_seed(seed)
    model = build_neural_model("gpt", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                               eos_id=tok.eos_id, n_layer=1, n_head=2, n_embd=16,
                               block_size=64, dropout=0.0).eval()
    return model, tok


def test_prompt_eval_adapter_scores_like_the_merged_model(tmp_path, capsys):
    (tmp_path / "mc.jsonl").write_text("".join(
        json.dumps({"x": w, "opts": ["a", "b", "ce"], "a": "b"}) + "\n" for w in WORDS))
    (tmp_path / "mc.toml").write_text(
        'kind = "multiple_choice"\ntemplate = "{x} ->"\nanswer = "a"\n'
        'choices_field = "opts"\nexamples = "mc.jsonl"\n')
    model, tok = _char_gpt(0)
    for d in ("base", "merged"):
        tok.save(tmp_path / d / "tokenizer.json")
    model.save(tmp_path / "base")
    add_lora(model, LoRAConfig(rank=2, alpha=4.0, targets=("q", "v", "mlp.c_proj")))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # as training would: B away from zero
        for k, v in model.state_dict().items():
            if k.endswith(".B"):
                v.copy_(torch.randn(v.shape, generator=g))
    save_adapter(model, tmp_path / "run" / "adapter")
    merge_lora(model).save(tmp_path / "merged")
    assert main(["prompt", "eval", str(tmp_path / "base"), str(tmp_path / "merged"),
                 "--adapter", str(tmp_path / "run" / "adapter"), "--task",
                 str(tmp_path / "mc.toml"), "--shots", "0", "--format", "plain", "-o",
                 str(tmp_path / "out"), "--json"]) == 0
    assert {r["model"] for r in json.loads(capsys.readouterr().out)["rows"]} == \
        {"base", "merged", "base+run"}
    recs = [json.loads(x) for x in (tmp_path / "out/prompts.jsonl").read_text().splitlines()]
    lp = {m: torch.tensor([r["choice_logprobs"] for r in recs if r["model"] == m])
          for m in ("base", "merged", "base+run")}
    assert torch.allclose(lp["base+run"], lp["merged"], atol=1e-5)
    assert not torch.allclose(lp["base+run"], lp["base"], atol=1e-2)

    other, tok2 = _char_gpt(7)  # another base: the adapter names none of the models given
    other.save(tmp_path / "other")
    tok2.save(tmp_path / "other" / "tokenizer.json")
    code = main(["prompt", "eval", str(tmp_path / "other"), "--adapter",
                 str(tmp_path / "run" / "adapter"), "--task", str(tmp_path / "mc.toml"),
                 "--shots", "0", "--format", "plain", "-o", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert code == 2 and "matches no MODEL_DIR" in err and "Traceback" not in err
