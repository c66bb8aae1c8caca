"""The public API is exactly what ``chainrule.__init__`` exports (httpx's habit)."""

import chainrule


def test_all_names_exist_and_are_public():
    for name in chainrule.__all__:
        assert hasattr(chainrule, name), name
    public = {n for n in dir(chainrule) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(chainrule, n)).__name__ == "module"}
    assert public - modules == set(chainrule.__all__) - {"__version__"}


def test_unknown_family_is_a_clear_error(tmp_path):
    import json

    import pytest

    from chainrule.errors import ModelFormatError

    (tmp_path / "config.json").write_text(
        json.dumps({"format": "chainrule-model", "format_version": 1, "family": "nope"})
    )
    with pytest.raises(ModelFormatError, match="unknown model family 'nope'"):
        chainrule.load_model(tmp_path)


def test_load_gives_model_tokenizer_config_and_shortcuts(tmp_path):
    """chainrule.load(dir): one object with .model, .tokenizer, .config (an attribute) and
    generate / score / surprisal that agree with the library functions they call."""
    import pytest

    from chainrule.decoding import GenerationConfig, generate
    from chainrule.models.reference import UnigramModel
    from chainrule.tokenizers import train_tokenizer

    tok = train_tokenizer("word", ["the cat sat", "the dog ran"])
    seqs = [[tok.bos_id, *tok("the cat sat"), tok.eos_id]]
    UnigramModel(tok.vocab_size, tok.bos_id, tok.eos_id).fit(seqs).save(tmp_path / "m")
    tok.save(tmp_path / "m" / "tokenizer.json")

    lm = chainrule.load(tmp_path / "m")
    assert lm.config["family"] == "unigram" and lm.tokenizer("the cat") == tok.encode("the cat")
    outs = lm.generate("the", max_new_tokens=4, seed=3, num_return_sequences=2)
    ref = generate(lm.model, ["the"], GenerationConfig(max_new_tokens=4, seed=3, n=2),
                   tokenizer=tok)[0]
    assert [o.token_ids for o in outs] == [o.token_ids for o in ref]
    greedy = lm.generate(["the", "a"], max_new_tokens=3, do_sample=False)
    assert len(greedy) == 2 and greedy[0][0].finish_reason in ("eos", "length")
    assert lm.score("the cat").total == pytest.approx(float(lm.score(["the cat"])[0].total))
    [s] = lm.surprisal("the cat sat")
    assert [w.word for w in s.words if not w.is_eos] == ["the", "cat", "sat"]
    assert GenerationConfig(do_sample=False).strategy == "greedy"
