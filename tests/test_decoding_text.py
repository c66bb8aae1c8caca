"""Text-level decoding: stop strings, streaming, prompt truncation, scoring helpers, the CLI."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import chainrule.cli
from _decoding_helpers import FAMILIES, TASK, LetterTokenizer, fitted
from chainrule.decoding import (
    GenerationConfig,
    PromptTruncatedWarning,
    continuation_logprob,
    generate,
    score_continuations,
    score_text,
    score_tokens,
    split_continuation,
    stream,
    text_continuation_logprob,
)
from chainrule.errors import ConfigError

TOK = LetterTokenizer()
PROMPTS = ["", "ab", "efgh"]
pytestmark = pytest.mark.filterwarnings("ignore::chainrule.decoding.PromptTruncatedWarning")


@pytest.mark.parametrize("family", ["unigram", "gpt"])
def test_stop_strings_cut_the_text_where_they_first_appear(family):
    if family not in FAMILIES:
        pytest.skip(f"{family} is not registered")
    model = fitted(family)
    base = GenerationConfig(seed=4, n=6, max_new_tokens=12, ignore_eos=True)
    free = generate(model, PROMPTS, base, tokenizer=TOK)
    stops = ("c", "ji")
    stopped = generate(model, PROMPTS, GenerationConfig(**{**base.__dict__, "stop": stops}),
                       tokenizer=TOK)
    n_stopped = 0
    for outs_free, outs_stop in zip(free, stopped):
        for f, s in zip(outs_free, outs_stop):
            hits = [i for i in (f.text.find(x) for x in stops) if i >= 0]
            if hits:
                n_stopped += 1
                assert s.finish_reason == "stop"
                assert s.text == f.text[: min(hits)]
            else:
                assert (s.text, s.finish_reason) == (f.text, "length")
            assert not any(x in s.text for x in stops)
    assert n_stopped > 0, "the test never exercised a stop string"


@pytest.mark.parametrize("family", FAMILIES)
def test_stream_pieces_add_up_to_the_outputs(family):
    model = fitted(family)
    for cfg in (GenerationConfig(seed=2, n=2, max_new_tokens=8, stop=("ce",)),
                GenerationConfig(strategy="greedy", max_new_tokens=8),
                GenerationConfig(strategy="beam", num_beams=2, n=2, max_new_tokens=8)):
        results: list = []
        pieces: dict = {}
        finished = set()
        for ev in stream(model, PROMPTS, cfg, tokenizer=TOK, results=results):
            key = (ev.prompt, ev.sample)
            assert key not in finished, "an output went on after it finished"
            pieces[key] = pieces.get(key, "") + ev.text
            if ev.finish_reason:
                finished.add(key)
        assert results == generate(model, PROMPTS, cfg, tokenizer=TOK)
        for i, outs in enumerate(results):
            for j, c in enumerate(outs):
                assert pieces[(i, j)] == c.text
                assert "ce" not in pieces[(i, j)] or cfg.strategy != "sample"


def test_stream_yields_before_generation_ends():
    """Streaming is incremental: the first piece arrives after one model step, not at the end."""
    model = fitted("unigram")
    steps = []
    original = model.step

    def counting_step(state, token):
        steps.append(1)
        return original(state, token)

    model.step = counting_step
    try:
        events = stream(model, ["a"], GenerationConfig(strategy="greedy", max_new_tokens=50,
                                                       ignore_eos=True), tokenizer=TOK)
        first = next(events)
        assert first.token_id is not None and len(steps) == 0
        next(events)
        assert len(steps) == 1
        assert len(list(events)) == 49  # 48 more tokens, then the final "length" event
    finally:
        del model.step


def test_long_prompts_are_cut_from_the_left_with_a_warning_or_refused():
    model = fitted("gpt") if "gpt" in FAMILIES else None
    if model is None:
        pytest.skip("no family with a bounded context is registered")
    ctx = model.max_context
    long = [2 + i % 10 for i in range(ctx + 5)]
    cfg = GenerationConfig(strategy="greedy", max_new_tokens=3)
    with pytest.warns(PromptTruncatedWarning, match="the model conditions on"):
        [[c]] = generate(model, [long], cfg)
    assert c.prompt_ids == long[-ctx:]
    fits = long[-(ctx - 1) :]  # with BOS exactly the context: kept whole, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        [[ref]] = generate(model, [fits], GenerationConfig(strategy="greedy", truncate=False))
    assert ref.prompt_ids == [TASK.bos_id, *fits]
    with pytest.raises(ConfigError, match="reads at most"):
        generate(model, [long], GenerationConfig(strategy="greedy", truncate=False))


def test_bad_prompts():
    model = fitted("unigram")
    with pytest.raises(ConfigError, match="outside the model's vocabulary"):
        generate(model, [[99]], GenerationConfig(strategy="greedy"))
    with pytest.raises(ConfigError, match="need a tokenizer"):
        generate(model, ["ab"], GenerationConfig(strategy="greedy"))
    with pytest.raises(ConfigError, match="no prompts"):
        generate(model, [], GenerationConfig(strategy="greedy"))


@pytest.mark.parametrize("family", FAMILIES)
def test_scoring_helpers_agree_with_the_full_pass(family):
    model = fitted(family)
    seqs = [[2, 3, 4], [7], [5, 6, 7, 8, 9, 10, 11, 2, 3]]
    batch = score_tokens(model, seqs, add_eos=True, max_tokens=16)
    for s, got in zip(seqs, batch):
        x = torch.tensor([[TASK.bos_id, *s, TASK.eos_id]])
        with torch.no_grad():
            lp = model.logprobs(x[:, :-1])[0]
        want = lp.gather(1, x[0, 1:, None])[:, 0]
        assert torch.allclose(got, want.float(), atol=1e-5)
        assert got.shape == (len(s) + 1,)
    prompt, cont = [2, 3], [4, 5]
    whole = score_tokens(model, [prompt + cont])[0]
    assert continuation_logprob(model, prompt, cont) == pytest.approx(
        float(whole[2:].double().sum()), abs=1e-5)
    assert score_continuations(model, [(prompt, cont), ([], [2]), ([3], [])]) == pytest.approx(
        [float(whole[2:].double().sum()), float(score_tokens(model, [[2]])[0][0]), 0.0], abs=1e-5)
    ts = score_text(model, TOK, "abc", add_eos=True)
    assert ts.ids == [2, 3, 4, 1] and ts.tokens == ["a", "b", "c", "</s>"]
    assert ts.total == pytest.approx(float(score_tokens(model, [[2, 3, 4]], add_eos=True)[0]
                                           .double().sum()), abs=1e-5)
    assert text_continuation_logprob(model, TOK, "ab", "cd") == pytest.approx(
        continuation_logprob(model, [2, 3], [4, 5]), abs=1e-6)


def test_split_continuation_keeps_the_joint_tokenisation():
    class Pairs(LetterTokenizer):
        """Merges "ab" into one token (id 12), like a subword tokenizer would."""

        def encode(self, text, *, allow_special=False):
            out, i = [], 0
            while i < len(text):
                if text[i : i + 2] == "ab":
                    out.append(12)
                    i += 2
                else:
                    out.append(ord(text[i]) - ord("a") + 2)
                    i += 1
            return out

    tok = Pairs(13)
    assert split_continuation(tok, "c", "ab") == ([4], [12])
    assert split_continuation(tok, "ca", "bc") == ([4, 2], [3, 4])  # "ab" spans the boundary


# -- the CLI ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("m") / "unigram"
    fitted("unigram").save(d)
    TOK.save(d / "tokenizer.json")
    return d


def test_cli_generates_json_reproducibly(model_dir, capsys):
    argv = ["generate", str(model_dir), "--prompt", "ab", "--prompt", "", "--n", "2",
            "--max-tokens", "6", "--seed", "3", "--top-k", "5", "--json"]
    assert chainrule.cli.main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert chainrule.cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out) == first
    assert first["seed"] == 3 and len(first["prompts"]) == 2
    for p in first["prompts"]:
        assert len(p["outputs"]) == 2
        for o in p["outputs"]:
            assert o["text"] == TOK.decode(o["token_ids"])
            assert o["finish_reason"] in {"eos", "length", "stop"}


def test_cli_stream_prints_the_same_text(model_dir, capsys):
    base = ["generate", str(model_dir), "--prompt", "ab", "--max-tokens", "8", "--seed", "9"]
    assert chainrule.cli.main(base) == 0
    plain = capsys.readouterr().out
    assert chainrule.cli.main([*base, "--stream"]) == 0
    assert capsys.readouterr().out == plain
    assert plain.startswith("ab")
    assert chainrule.cli.main([*base, "--strategy", "beam", "--beams", "3", "--n", "2"]) == 0
    assert capsys.readouterr().out.count("score") == 2


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--strategy", "nucleus"], "unknown decoding strategy"),
        (["--top-p", "1.5"], "top_p must be in (0, 1]"),
        (["--top-p", "0"], "top_p must be in (0, 1]"),
        (["--temperature", "-0.5"], "temperature must be >= 0"),
        (["--strategy", "beam", "--beams", "0"], "beams must be"),
        (["--top-k", "0"], "top_k must be"),
        (["--stream", "--json"], "choose one"),
    ],
)
def test_cli_bad_options_are_one_sentence_and_exit_2(model_dir, capsys, flags, words):
    assert chainrule.cli.main(["generate", str(model_dir), *flags]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_cli_missing_model_dir(tmp_path, capsys):
    assert chainrule.cli.main(["generate", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_stream_of_several_outputs_matches_the_plain_output(model_dir, capsys):
    base = ["generate", str(model_dir), "--prompt", "ab", "--prompt", "c", "--n", "2",
            "--max-tokens", "8", "--seed", "5", "--stop", r"\n", "ce"]
    assert chainrule.cli.main(base) == 0
    plain = capsys.readouterr().out
    assert chainrule.cli.main([*base, "--stream"]) == 0
    assert capsys.readouterr().out == plain
    assert plain.count("--- prompt") == 4


def test_cli_stop_strings_understand_backslash_escapes():
    from chainrule.cli.generate import _unescape

    assert _unescape(r"a\nb\tc\\n\x") == "a\nb\tc\\n\\x"


def test_a_model_without_context_starts_from_bos_without_a_warning():
    """An order-1 model reads no context (max_context 0) but still needs BOS to start from."""
    from chainrule.models.reference import UnigramModel

    model = UnigramModel(TASK.vocab_size).fit(TASK.sequences)
    model.max_context = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        [[c]] = generate(model, [[]], GenerationConfig(seed=0, max_new_tokens=5))
    assert c.prompt_ids == [TASK.bos_id]
    # a context-free (Markov) model never looks back: the cut is silent, even with truncate=False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        [[c]] = generate(model, [[2, 3]], GenerationConfig(seed=0, max_new_tokens=5))
        [[d]] = generate(
            model, [[2, 3]], GenerationConfig(seed=0, max_new_tokens=5, truncate=False)
        )
    assert c.prompt_ids == d.prompt_ids == [3]
