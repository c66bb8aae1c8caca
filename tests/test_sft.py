"""Supervised fine-tuning: answer masks, packing with document masks, bad input, learning."""

from __future__ import annotations

import json
import random

import pytest
import torch

from _hf_helpers import IM_END, chat_tokenizer
from chainrule.cli import main
from chainrule.errors import DataError
from chainrule.models import load_model
from chainrule.models.neural import build_neural_model
from chainrule.tokenizers import train_tokenizer
from chainrule.tokenizers.chat import render_chat
from chainrule.training.objectives import CompletionCE
from chainrule.training.sft import (
    SFTData,
    encode_chat,
    encode_examples,
    read_sft_jsonl,
)

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hello."},
    {"role": "assistant", "content": "Hello there!"},
    {"role": "user", "content": "Again, in French."},
    {"role": "assistant", "content": "Bonjour !"},
]


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    out, start = [], None
    for i, f in enumerate([*flags, False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    return out


def test_completion_mask_covers_exactly_the_assistant_tokens_chatml():
    tok = chat_tokenizer()
    ex = encode_chat(CHAT, tok, "chatml", bos_id=tok.bos_id, eos_id=tok.eos_id)
    assert ex.ids[0] == tok.bos_id and not ex.answer[0]
    # the ids are the rendered chat, cut where decoding cuts a prompt from its answer
    assert tok.decode(ex.ids[1:]) == render_chat(CHAT, "chatml", add_generation_prompt=False)
    answers = [tok.decode(ex.ids[a:b]) for a, b in _runs(ex.answer)]
    assert answers == ["Hello there!" + IM_END, "Bonjour !" + IM_END]
    # the template's own tokens (<|im_start|>assistant\n, the newline after <|im_end|>) are out
    whole = encode_chat(CHAT, tok, "chatml", bos_id=tok.bos_id, completion_only=False)
    assert whole.ids == ex.ids and all(whole.answer[1:]) and not whole.answer[0]


def test_completion_mask_plain_template_ends_with_eos():
    tok = train_tokenizer("char", [("User: Assistant:\n Be brief.Say hello.Hello there!"
                                   "Again, in French.Bonjour !")])
    ex = encode_chat(CHAT, tok, "plain", bos_id=tok.bos_id, eos_id=tok.eos_id)
    runs = _runs(ex.answer)
    assert [tok.decode(ex.ids[a:b]) for a, b in runs[:1]] == [" Hello there!\n"]
    assert ex.ids[-1] == tok.eos_id and ex.answer[-1]
    assert tok.decode(ex.ids[runs[1][0]:runs[1][1] - 1]) == " Bonjour !\n"


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_packed_loss_equals_unpacked_loss(positions):
    tok = chat_tokenizer()
    rng = random.Random(0)
    chats = [[{"role": "user", "content": " ".join(rng.choice(["to", "be", "or", "not"])
                                                     for _ in range(rng.randint(1, 6)))},
              {"role": "assistant", "content": rng.choice(["yes", "no, never", "maybe so"])}]
             for _ in range(7)]
    ex, _ = encode_examples(chats, tok, "chatml", bos_id=tok.bos_id, eos_id=tok.eos_id,
                            max_length=64)
    torch.manual_seed(0)
    model = build_neural_model("gpt", vocab_size=tok.vocab_size, n_layer=2, n_head=2,
                               n_embd=32, block_size=64, positions=positions).eval()
    packed = SFTData(ex, 64, pack=True, pad_id=tok.eos_id)
    alone = SFTData(ex, 64, pack=False, pad_id=tok.eos_id)
    assert len(packed) < len(alone) == 7
    with torch.no_grad():
        a = CompletionCE().loss(model, packed.collate(packed.rows))
        b = CompletionCE().loss(model, alone.collate(alone.rows))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bad_inputs_are_one_sentence_each(tmp_path):
    tok = chat_tokenizer()
    kw = {"bos_id": tok.bos_id, "eos_id": tok.eos_id}
    with pytest.raises(DataError, match="no assistant turn"):
        encode_chat([{"role": "user", "content": "hi"}], tok, "chatml", **kw)
    with pytest.raises(DataError, match="role 'robot'"):
        encode_chat([{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}],
                    tok, "chatml", **kw)
    long = [[{"role": "user", "content": "word " * 40}, {"role": "assistant", "content": "ok"}],
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok " * 40}],
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]]
    with pytest.raises(DataError, match="example 0 is .* tokens long"):
        encode_examples(long, tok, "chatml", max_length=32, too_long="refuse", **kw)
    kept, report = encode_examples(long, tok, "chatml", max_length=32, **kw)
    assert (report.kept, report.cut, report.dropped) == (2, 2, 1)  # the first lost its answer
    assert all(len(e.ids) <= 33 for e in kept)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"text": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2 is neither"):
        read_sft_jsonl(bad)


def _reverse_data(path, n, seed):
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            w = "".join(rng.choice("abc") for _ in range(rng.randint(3, 3)))
            f.write(json.dumps({"prompt": w, "completion": w[::-1]}) + "\n")


def _tiny_base(tmp_path):
    tok = train_tokenizer("char", ["User: Assistant:\n abc"])
    torch.manual_seed(0)
    model = build_neural_model("gpt", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                               eos_id=tok.eos_id, n_layer=2, n_head=4, n_embd=64, block_size=32)
    base = tmp_path / "base"
    model.save(base)
    tok.save(base / "tokenizer.json")
    return base, tok


def test_tiny_model_learns_to_reverse(tmp_path, capsys):
    from chainrule.decoding.config import GenerationConfig
    from chainrule.decoding.generate import generate
    from chainrule.tokenizers.chat import chat_prompt_ids

    base, tok = _tiny_base(tmp_path)
    data = tmp_path / "rev.jsonl"
    _reverse_data(data, 300, 0)
    keys = ["max_iters=160", "learning_rate=3e-3", "batch_size=16", "eval_interval=80",
            "warmup_iters=10", "lr_decay_iters=400"]
    out = tmp_path / "out"
    assert main(["sft", str(base), *keys, "--data", str(data), "-o", str(out), "--no-pack",
                 "--samples", "1"]) == 0
    err = capsys.readouterr().err
    assert "step 160 sample:" in err and "examples: 270 train, 30 held out" in err
    model = load_model(out)
    right = 0
    words = ["abc", "bca", "aab", "cab", "bba", "acc"]
    for w in words:
        ids = chat_prompt_ids(tok, render_chat([{"role": "user", "content": w}], "plain"),
                              tok.bos_id)
        text = generate(model, [ids], GenerationConfig(strategy="greedy", max_new_tokens=8,
                                                       stop=("\nUser:",)), tokenizer=tok)[0][0]
        right += text.text.strip() == w[::-1]
    assert right >= 5, (right, err[-600:])
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("samples" in r for r in metrics)


@pytest.mark.parametrize("lora", [False, True])
def test_resume_is_exact(tmp_path, lora):
    base, _ = _tiny_base(tmp_path)
    data = tmp_path / "rev.jsonl"
    _reverse_data(data, 60, 1)
    keys = ["batch_size=4", "eval_interval=3", "lr_decay_iters=6", "warmup_iters=2"]
    extra = ["--lora", "--lora-targets", "q,v,mlp.c_proj"] if lora else []
    whole, part = tmp_path / "whole", tmp_path / "part"
    args = ["--data", str(data), "--samples", "0", *extra]
    assert main(["sft", str(base), *keys, "max_iters=6", *args, "-o", str(whole)]) == 0
    assert main(["sft", str(base), *keys, "max_iters=3", *args, "-o", str(part)]) == 0
    assert main(["sft", str(base), "max_iters=6", *args, "-o", str(part), "--resume"]) == 0
    a, b = load_model(whole / "last"), load_model(part / "last")
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), n
    if lora:
        assert (whole / "adapter" / "adapter.safetensors").exists()


def test_instruction_data_is_split_by_task(tmp_path):
    table = tmp_path / "t.jsonl"
    table.write_text("".join(json.dumps({"task": t, "input": w, "output": o}) + "\n"
                             for t in ("reverse", "upper", "double")
                             for w, o in (("ab", {"reverse": "ba", "upper": "AB",
                                                  "double": "abab"}[t]),) * 4),
                     encoding="utf-8")
    phr = tmp_path / "p.json"
    phr.write_text(json.dumps({"reverse": ["Reverse {input}.", "Write {input} backwards."],
                               "upper": ["Uppercase {input}."], "double": ["Say it twice:"]}))
    out = tmp_path / "data"
    assert main(["sft-data", str(table), "--instructions", str(phr), "-o", str(out),
                 "--held-out-tasks", "upper"]) == 0
    held_in, held_out = read_sft_jsonl(out / "held_in.jsonl"), read_sft_jsonl(out / "held_out.jsonl")
    assert len(held_in) == 8 and len(held_out) == 4
    assert {m[0]["content"] for m in held_out} == {"Uppercase ab."}
    assert "Say it twice:\nab" in {m[0]["content"] for m in held_in}
    with pytest.raises(DataError, match="held-out tasks nope are not in the table"):
        from chainrule.data.instructions import build_instruction_data, read_table

        build_instruction_data(read_table(table), json.loads(phr.read_text()),
                               held_out_tasks=["nope"])


def test_sft_synth_counts_every_candidate(tmp_path, capsys):
    base, _ = _tiny_base(tmp_path)
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("abc\ncab\nbca\n", encoding="utf-8")
    out = tmp_path / "synth.jsonl"
    assert main(["sft-synth", str(base), "--seeds", str(seeds), "-o", str(out), "--n", "6",
                 "--max-tokens", "12", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["asked"] == 6 == report["kept"] + sum(report["dropped"].values())
    assert len(out.read_text().splitlines()) == report["kept"]
