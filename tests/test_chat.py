"""Chat templates (rendered without running Jinja, equal to transformers' apply_chat_template),
recognising a model's template, and ``chainrule chat`` / ``generate --chat`` on a tiny model
trained to answer three questions."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _hf_helpers import (
    CHATML_JINJA,
    CHATML_JINJA_BARE,
    LLAMA3_STYLE_JINJA,
    chat_tokenizer,
)
from chainrule.cli import main
from chainrule.errors import TokenizerError
from chainrule.tokenizers.chat import (
    ChatTemplate,
    chat_prompt_ids,
    detect_template,
    load_chat_template,
    render_chat,
    template_from_jinja,
    write_chat_template,
)

SYSTEM = "You are a small test model."
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Answer in one word."},
     {"role": "user", "content": "Capital of Italy?"}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke\nwith two lines."}],
    [{"role": "user", "content": "Quote: 'x' and {{ not jinja }} — ünïcödé ☃"},
     {"role": "assistant", "content": "  spaced  "},
     {"role": "user", "content": ""}],
]


# -- rendering ---------------------------------------------------------------------------------
def test_chatml_and_plain_by_hand():
    msgs = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]
    assert render_chat(msgs) == (
        "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n")
    assert render_chat(msgs, "plain") == \
        "Be kind.\n\nUser: Hi\nAssistant: Hello.\nUser: Bye\nAssistant:"
    assert render_chat(msgs[1:2], "plain", add_generation_prompt=False) == "User: Hi\n"
    assert ChatTemplate("plain").answer(" Paris.\nUser: more") == "Paris."
    assert ChatTemplate("chatml").answer("Paris.<|im_end|>\n") == "Paris."


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    from chainrule.tokenizers import export_hf

    path = export_hf(chat_tokenizer(), tmp_path_factory.mktemp("tok") / "tokenizer.json")
    return transformers.PreTrainedTokenizerFast(tokenizer_file=str(path))


@pytest.mark.parametrize("jinja", [CHATML_JINJA, CHATML_JINJA_BARE,
                                   CHATML_JINJA.replace("\n", "\\n")],
                         ids=["default-system", "bare", "escaped-newlines"])
@pytest.mark.parametrize("conversation", range(len(CONVERSATIONS)))
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_chatml_rendering_equals_transformers(hf_tokenizer, jinja, conversation,
                                              generation_prompt):
    messages = CONVERSATIONS[conversation]
    hf_tokenizer.chat_template = jinja
    theirs = hf_tokenizer.apply_chat_template(messages, tokenize=False,
                                              add_generation_prompt=generation_prompt)
    template = template_from_jinja(jinja)
    ours = render_chat(messages, template, add_generation_prompt=generation_prompt)
    assert ours == theirs
    tok = chat_tokenizer()
    assert tok.encode(ours, allow_special=True) == \
        hf_tokenizer(theirs, add_special_tokens=False)["input_ids"]


def test_template_detection():
    assert template_from_jinja(CHATML_JINJA) == ChatTemplate("chatml", SYSTEM)
    assert template_from_jinja(CHATML_JINJA_BARE) == ChatTemplate("chatml")
    assert detect_template(CHATML_JINJA) == "chatml"
    # whitespace control that eats the newline after the role is not ChatML any more
    eaten = CHATML_JINJA_BARE.replace("}}\n{{ message.content", "}}\n{{- message.content")
    for jinja in (LLAMA3_STYLE_JINJA, eaten, "", "{{ messages }}"):
        with pytest.raises(TokenizerError, match="--template chatml or --template plain"):
            detect_template(jinja)


def test_bad_messages_and_names():
    with pytest.raises(TokenizerError, match="unknown chat template 'zephyr'"):
        render_chat([], "zephyr")
    with pytest.raises(TokenizerError, match="message 0"):
        render_chat([{"role": "user"}])
    with pytest.raises(TokenizerError, match="role 'tool'"):
        render_chat([{"role": "tool", "content": "x"}], "plain")


def test_load_chat_template(tmp_path):
    assert load_chat_template(tmp_path) == ChatTemplate("plain")
    with pytest.raises(TokenizerError, match="no chat template"):
        load_chat_template(tmp_path, required=True)
    assert load_chat_template(tmp_path, "chatml") == ChatTemplate("chatml")
    write_chat_template(tmp_path, CHATML_JINJA)
    assert load_chat_template(tmp_path) == ChatTemplate("chatml", SYSTEM)
    assert load_chat_template(tmp_path, "chatml") == ChatTemplate("chatml", SYSTEM)
    assert load_chat_template(tmp_path, "plain") == ChatTemplate("plain")
    write_chat_template(tmp_path, LLAMA3_STYLE_JINJA)
    with pytest.raises(TokenizerError, match="--template"):
        load_chat_template(tmp_path)
    assert load_chat_template(tmp_path, "chatml") == ChatTemplate("chatml")
    (tmp_path / "chat_template.json").write_text('{"jinja": 3}')
    with pytest.raises(TokenizerError, match="not a chainrule chat template"):
        load_chat_template(tmp_path)


def test_chat_prompt_ids_do_not_double_bos():
    tok = chat_tokenizer()
    im_start = tok.token_to_id("<|im_start|>")
    text = render_chat(CONVERSATIONS[0])
    ids = tok.encode(text, allow_special=True)
    assert ids[0] == im_start and ids.count(im_start) == 2
    assert chat_prompt_ids(tok, text, bos_id=im_start) == ids[1:]  # SmolLM2: BOS is <|im_start|>
    assert chat_prompt_ids(tok, text, bos_id=tok.bos_id) == ids


# -- the command line on a model that learned three answers ------------------------------------
QA = [("Hello there", "Good day to you."), ("How are you?", "Well, I thank you."),
      ("Who art thou?", "A humble player.")]


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> Path:
    from chainrule.models.neural import build_neural_model

    tok = chat_tokenizer()
    template = ChatTemplate("chatml", SYSTEM)
    torch.manual_seed(0)
    model = build_neural_model("gpt", vocab_size=tok.vocab_size, block_size=128, n_layer=2,
                               n_head=4, n_embd=32, bos_id=tok.bos_id, eos_id=tok.eos_id,
                               positions="rotary", norm="rmsnorm", mlp="swiglu", bias=False)
    rows = [[tok.bos_id, *chat_prompt_ids(tok, template.render(
        [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
        add_generation_prompt=False), tok.bos_id)] for q, a in QA]
    x = torch.full((len(rows), max(map(len, rows))), tok.eos_id)
    for i, r in enumerate(rows):
        x[i, : len(r)] = torch.tensor(r)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):  # memorise the three exchanges
        logits, _ = model(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    directory = tmp_path_factory.mktemp("chat") / "model"
    model.eval().save(directory)
    tok.save(directory / "tokenizer.json")
    write_chat_template(directory, CHATML_JINJA)
    return directory


def _answer(model_dir: Path, messages: list[dict[str, str]]) -> str:
    """The library's greedy answer to ``messages`` (what the CLI must print)."""
    from chainrule.decoding import GenerationConfig, generate
    from chainrule.models import load_model
    from chainrule.tokenizers import load_tokenizer

    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    template = load_chat_template(model_dir)
    ids = chat_prompt_ids(tok, template.render(messages), model.bos_id)
    cfg = GenerationConfig(strategy="greedy", max_new_tokens=24, stop=template.stop)
    [[c]] = generate(model, [ids], cfg, tokenizer=tok)
    return template.answer(c.text)


GREEDY = ["--strategy", "greedy", "--max-tokens", "24"]


@pytest.mark.parametrize("stream", [False, True])
def test_generate_chat_prints_the_answer_only(chat_model, capsys, stream):
    argv = ["generate", str(chat_model), "--chat", "Hello there", *GREEDY]
    assert main(argv + (["--stream"] if stream else [])) == 0
    assert capsys.readouterr().out == "Good day to you.\n"


def test_generate_chat_options(chat_model, capsys):
    assert main(["generate", str(chat_model), "--chat", "Who art thou?", "--json", *GREEDY]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["template"] == "chatml" and out["outputs"][0]["answer"] == "A humble player."
    assert out["outputs"][0]["finish_reason"] in ("stop", "eos")
    assert main(["generate", str(chat_model), "--chat", "Hi", "--system", "Be terse.",
                 "--template", "plain", "--max-tokens", "3", "--seed", "1", "--n", "2"]) == 0
    assert capsys.readouterr().out.count("--- output") == 2
    assert main(["generate", str(chat_model), "--chat", "Hi", "--prompt", "x"]) == 2
    assert "drop --prompt" in capsys.readouterr().err
    assert main(["generate", str(chat_model), "--template", "chatml"]) == 2
    assert "add --chat" in capsys.readouterr().err
    assert main(["generate", str(chat_model), "--chat", "Hi", "--template", "zephyr"]) == 2
    assert "unknown chat template 'zephyr'" in capsys.readouterr().err


def test_chat_loop_keeps_the_conversation_resets_and_ends_at_eof(chat_model, capsys, monkeypatch):
    lines = "Hello there\n\nHow are you?\n/reset\n/nonsense\nWho art thou?\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    assert main(["chat", str(chat_model), *GREEDY]) == 0
    out, err = capsys.readouterr()
    first = "Good day to you."
    # the second answer continues the conversation, the third starts afresh after /reset
    second = _answer(chat_model, [
        {"role": "user", "content": "Hello there"}, {"role": "assistant", "content": first},
        {"role": "user", "content": "How are you?"}])
    third = _answer(chat_model, [{"role": "user", "content": "Who art thou?"}])
    assert third == "A humble player."
    assert out == f"{first}\n{second}\n{third}\n"
    assert "(conversation reset)" in err and "unknown command '/nonsense'" in err
    assert "Traceback" not in err and "error" not in err


def test_chat_exit_and_system(chat_model, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello there\n/exit\nWho art thou?\n"))
    assert main(["chat", str(chat_model), *GREEDY, "--system", SYSTEM]) == 0
    assert capsys.readouterr().out == "Good day to you.\n"  # the same system as the default
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hi\n"))
    assert main(["chat", str(chat_model), "--n", "2"]) == 2
    assert "one answer per turn" in capsys.readouterr().err


def test_chat_as_a_subprocess_with_piped_stdin(chat_model):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    run = subprocess.run([sys.executable, "-m", "chainrule.cli", "chat", str(chat_model),
                          *GREEDY], input="Who art thou?\n", capture_output=True, text=True,
                         check=False, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "A humble player.\n" and "Traceback" not in run.stderr
