"""BERT: the masked-LM objective, pseudo-log-likelihood scoring, transformers parity, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from chainrule.cli import main
from chainrule.errors import ConfigError
from chainrule.models.base import get_family, load_model
from chainrule.models.bert import BERT, BertConfig, word_flags
from chainrule.training.objectives import IGNORE, MaskedLMLoss, default_objective


def _bert(**kw) -> BERT:
    torch.manual_seed(0)
    cfg = {"vocab_size": 23, "bos_id": 2, "eos_id": 3, "mask_id": 0, "block_size": 12,
           "n_layer": 2, "n_head": 2, "n_embd": 16, "dropout": 0.0}
    model = BERT(BertConfig(**{**cfg, **kw}))
    with torch.no_grad():  # weights large enough that context matters; biases, norms moved
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p)) if p.dim() == 1 else p.mul_(10)
    return model.eval()


def _batch():
    tokens = torch.tensor([[2, 5, 9, 11, 7, 3, 1, 1], [2, 4, 6, 3, 1, 1, 1, 1],
                           [2, 8, 8, 12, 13, 14, 15, 3]])
    return tokens, torch.tensor([6, 4, 8])


# -- the family ----------------------------------------------------------------------------------
def test_registered_as_masked_scorer():
    info = get_family("bert")
    assert info.kind == "masked scorer" and info.trainer == "neural"
    assert not info.is_generator
    assert isinstance(default_objective(_bert()), MaskedLMLoss)


def test_bad_configs_are_refused_together():
    with pytest.raises(ConfigError) as e:
        BertConfig(vocab_size=10, mask_id=10, scoring="left-to-right", n_embd=10, n_head=4)
    text = str(e.value)
    assert "mask_id" in text and "scoring" in text and "multiple" in text


# -- masking statistics --------------------------------------------------------------------------
def test_masking_statistics_and_specials():
    V, mask, specials = 40, 0, (0, 2, 3)
    loss = MaskedLMLoss(mask, V, never=specials, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    tokens = torch.randint(4, V, (200, 100), generator=g)
    tokens[:, 0], tokens[:, -1], tokens[:, 50] = 2, 3, 0  # bos, eos and a [MASK] in the text
    chosen = kept = masked = random = eligible = 0
    for _ in range(5):
        out, targets = loss.corrupt(tokens)
        picked = targets != IGNORE
        assert not picked[:, [0, 50, -1]].any(), "a special token was chosen"
        assert torch.equal(targets[picked], tokens[picked])
        assert torch.equal(out[~picked], tokens[~picked]), "an unchosen token changed"
        replaced = out[picked & (out != tokens) & (out != mask)]
        assert not torch.isin(replaced, torch.tensor(specials)).any(), "a special was drawn"
        eligible += tokens.numel() - 3 * tokens.shape[0]
        chosen += int(picked.sum())
        masked += int((out[picked] == mask).sum())
        kept += int((out[picked] == tokens[picked]).sum())
        random += int(((out[picked] != mask) & (out[picked] != tokens[picked])).sum())
    assert abs(chosen / eligible - 0.15) < 0.005
    p_same = 1 / (V - len(specials))  # a random draw may give the token back
    assert abs(masked / chosen - 0.8) < 0.01
    assert abs(kept / chosen - (0.1 + 0.1 * p_same)) < 0.01
    assert abs(random / chosen - 0.1 * (1 - p_same)) < 0.01


# -- pseudo-log-likelihood -----------------------------------------------------------------------
def _slow_pll(model: BERT, tokens, lengths, word_starts=None):
    """Mask one token at a time (and, with word_starts, the rest of its word), run the whole
    encoder on that one copy, read the masked token's log-probability."""
    out = torch.zeros(tokens.shape[0], tokens.shape[1] - 1)
    for b in range(tokens.shape[0]):
        n = int(lengths[b])
        for t in range(1, n):
            x = tokens[b, :n].clone()
            x[t] = model.mask_id
            if word_starts is not None:
                u = t + 1
                while u < n and not word_starts[b, u]:
                    x[u] = model.mask_id
                    u += 1
            with torch.no_grad():
                logits, _ = model(x[None])
            out[b, t - 1] = torch.log_softmax(logits[0, t], -1)[tokens[b, t]]
    return out


def _real(lp, lengths):
    return torch.cat([lp[b, : int(n) - 1] for b, n in enumerate(lengths)])


def test_pll_equals_the_slow_loop():
    model = _bert()
    tokens, lengths = _batch()
    fast = model.token_logprobs(tokens, lengths)
    assert torch.allclose(_real(fast, lengths), _real(_slow_pll(model, tokens, lengths), lengths),
                          atol=1e-5)


def test_pll_word_l2r_equals_the_slow_loop_and_differs_from_pll():
    model = _bert()
    tokens, lengths = _batch()
    starts = torch.ones_like(tokens, dtype=torch.bool)
    starts[0, 2] = starts[0, 3] = False  # tokens 1-3 of row 0 are one word
    starts[2, 2] = False
    pll = model.token_logprobs(tokens, lengths, word_starts=starts)
    model.scoring = "pll-word-l2r"
    l2r = model.token_logprobs(tokens, lengths, word_starts=starts)
    slow = _slow_pll(model, tokens, lengths, starts)
    assert torch.allclose(_real(l2r, lengths), _real(slow, lengths), atol=1e-5)
    assert not torch.allclose(l2r[0, :2], pll[0, :2])  # the word's first pieces see less
    assert torch.allclose(l2r[1], pll[1], atol=1e-6)  # one-token words: no difference


def test_word_boundaries_from_the_tokenizer():
    from chainrule.tokenizers import train_tokenizer

    text = ["the cat sat on the mat", "the lowest lower cats"] * 10
    word = train_tokenizer("word", text)
    assert set(word_flags(word)) == {3}
    bpe = train_tokenizer("bpe", text, vocab_size=30)
    ids = bpe.encode("lowest cats")
    model = _bert(vocab_size=bpe.vocab_size, bos_id=bpe.bos_id, eos_id=bpe.eos_id)
    model.set_word_boundaries(bpe)
    words = model.word_ids(torch.tensor([[bpe.bos_id, *ids, bpe.eos_id]]))[0].tolist()
    pieces = [bpe.id_to_token(i) for i in ids]
    assert words[0] == 1 and words[-1] == max(words)  # <s> and </s> are words of their own
    assert len(set(words[1:-1])) == 2, (pieces, words)  # "lowest" and "cats"
    model.scoring = "pll-word-l2r"
    with pytest.raises(ConfigError, match="word boundaries"):
        _bert().__class__(BertConfig(vocab_size=23, scoring="pll-word-l2r")).token_logprobs(
            torch.tensor([[2, 5, 3]]))


def test_long_inputs_are_scored_in_windows():
    model = _bert(block_size=8)
    tokens = torch.randint(4, 23, (1, 21), generator=torch.Generator().manual_seed(0))
    lp = model.token_logprobs(tokens)
    assert lp.shape == (1, 20) and torch.isfinite(lp).all() and (lp < 0).all()
    # a long row and a short row in one batch: the short one scores as alone
    batch = torch.cat([tokens, tokens], 0)
    both = model.token_logprobs(batch, torch.tensor([21, 6]))
    assert torch.allclose(both[1, :5], model.token_logprobs(tokens[:, :6])[0], atol=1e-6)
    assert torch.allclose(both[0], lp[0], atol=1e-6)


# -- transformers parity -------------------------------------------------------------------------
def test_weights_copied_into_transformers_give_the_same_logits():
    pytest.importorskip("transformers")
    from chainrule.models.bert import to_hf_bert

    model = _bert()
    hf = to_hf_bert(model)
    tokens, lengths = _batch()
    attention = (torch.arange(tokens.shape[1])[None] < lengths[:, None]).long()
    with torch.no_grad():
        ours, _ = model(tokens, None, lengths)
        theirs = hf(input_ids=tokens, attention_mask=attention).logits
    real = attention.bool()
    assert (ours[real] - theirs[real]).abs().max() < 1e-5
    # so PLL from transformers' logits equals ours
    slow = torch.zeros(3, 7)
    for b in range(3):
        n = int(lengths[b])
        for t in range(1, n):
            x = tokens[b : b + 1, :n].clone()
            x[0, t] = model.mask_id
            with torch.no_grad():
                slow[b, t - 1] = torch.log_softmax(hf(input_ids=x).logits[0, t], -1)[tokens[b, t]]
    fast = model.token_logprobs(tokens, lengths)
    assert torch.allclose(_real(fast, lengths), _real(slow, lengths), atol=1e-5)


# -- the command line, end to end ----------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny BERT trained through `chainrule train` on one sentence repeated."""
    d = tmp_path_factory.mktemp("bert")
    corpus = d / "corpus.txt"
    corpus.write_text("the cat sat on the mat .\n" * 300)
    code = main(["train", "--family", "bert", "-o", str(d / "m"), str(corpus), "max_iters=300",
                 "n_layer=2", "n_head=2", "n_embd=32", "block_size=16", "batch_size=16",
                 "eval_interval=300", "eval_iters=2", "warmup_iters=20", "learning_rate=3e-3",
                 "decay_lr=false",
                 "dropout=0.0", "tokenizer_kind=word", "boundaries=lines", "--device", "cpu",
                 "--json"])
    assert code == 0
    return d


def test_fill_mask_finds_the_obvious_word(trained, capsys):
    capsys.readouterr()
    assert main(["fill-mask", str(trained / "m"), "the cat sat on the [MASK] .", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    best = out["masks"][0][0]
    assert best["token"] == "mat" and best["prob"] > 0.5
    assert main(["fill-mask", str(trained / "m"), "the [MASK] sat on the mat ."]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[1].split()[1] == "cat"


def test_fill_mask_refuses_a_sentence_without_mask(trained, capsys):
    assert main(["fill-mask", str(trained / "m"), "the cat sat ."]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[MASK]" in err[0]


def test_fill_mask_refuses_a_left_to_right_model(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat .\n" * 20)
    assert main(["train", "--family", "ngram", str(corpus), "-o", str(tmp_path / "ng")]) == 0
    capsys.readouterr()
    assert main(["fill-mask", str(tmp_path / "ng"), "the [MASK] sat ."]) == 2
    assert "masked model" in capsys.readouterr().err
    assert main(["eval", "ppl", str(tmp_path / "ng"), "--data", str(corpus), "--scoring",
                 "pll"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--scoring" in err[0]


def test_eval_commands_accept_bert(trained, capsys):
    m = str(trained / "m")
    data = trained / "eval.txt"
    data.write_text("the cat sat on the mat .\nthe mat sat on the cat .\n")
    pairs = trained / "pairs.jsonl"
    pairs.write_text(json.dumps({"sentence_good": "the cat sat on the mat .",
                                 "sentence_bad": "the cat on sat the mat ."}) + "\n")
    capsys.readouterr()
    assert main(["eval", "ppl", m, "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["models"][0]
    assert report["pseudo"] is True and report["tokens"] == 16
    assert main(["eval", "ppl", m, "--data", str(data)]) == 0
    assert "pseudo-perplexity" in capsys.readouterr().out
    assert main(["eval", "pairs", m, "--data", str(pairs), "--json", "--scoring",
                 "pll-word-l2r"]) == 0
    assert json.loads(capsys.readouterr().out)["models"]["m"]["scoring"] == "pll-word-l2r"
    assert main(["eval", "surprisal", m, "--data", str(data), "-o",
                 str(trained / "s.csv")]) == 0
    assert len((trained / "s.csv").read_text().splitlines()) == 17


def test_save_load_keeps_word_boundaries(trained):
    model = load_model(trained / "m")
    model.scoring = "pll-word-l2r"
    x = torch.tensor([[model.bos_id, 4, 5, 6, model.eos_id]])
    assert torch.isfinite(model.token_logprobs(x)).all()


# -- attention maps ------------------------------------------------------------------------------
def _gpt(**kw):
    from chainrule.models.neural import build_neural_model

    torch.manual_seed(0)
    return build_neural_model("gpt", vocab_size=23, bos_id=2, eos_id=3, block_size=12, n_layer=2,
                              n_head=2, n_embd=16, **kw).eval()


@pytest.mark.parametrize("make", [_bert, _gpt, lambda: _gpt(positions="rotary", n_kv_head=1)],
                         ids=["bert", "gpt", "gpt-rotary-gqa"])
def test_attention_maps_reproduce_each_layer(make):
    """weights @ values, projected, is the block's own attention output (the fused kernel)."""
    from chainrule.models.attention_maps import attention_maps

    model = make()
    ids = torch.tensor([2, 5, 9, 11, 7, 3])
    maps = attention_maps(model, ids)
    L, H, T = model.cfg.n_layer, model.cfg.n_head, len(ids)
    assert maps.shape == (L, H, T, T)
    assert torch.allclose(maps.sum(-1), torch.ones(L, H, T), atol=1e-5)
    upper = torch.ones(T, T, dtype=torch.bool).triu(1)
    assert (maps[..., upper] == 0).all() == (not model.masked)  # causal only in a decoder
    seen = []
    hooks = [b.attn.register_forward_hook(lambda m, a, out: seen.append((m, a[0], out)))
             for b in model.transformer.h]
    with torch.no_grad():
        model(ids[None])
    for h in hooks:
        h.remove()
    for layer, (attn, x, out) in enumerate(seen):
        _, _, v = attn._qkv(x, None if model.masked or model.rotary is None
                            else model.rotary.tables(T))
        v = v.repeat_interleave(attn.n_head // attn.n_kv_head, dim=1)
        mine = attn._out(maps[layer][None] @ v)
        assert torch.allclose(mine, out, atol=1e-5)


def test_attention_command(trained, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    m = str(trained / "m")
    assert main(["attention", m, "the cat sat", "-o", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "a.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["attention", m, "the cat", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens"] == ["<s>", "the", "cat", "</s>"]
    assert len(out["weights"]) == 2 and len(out["weights"][0][0]) == 4


def test_attention_refuses_a_model_without_attention(tmp_path, capsys):
    from chainrule.models.neural import build_neural_model
    from chainrule.tokenizers import train_tokenizer

    tok = train_tokenizer("word", ["the cat sat"])
    build_neural_model("lstm", vocab_size=tok.vocab_size).save(tmp_path / "lstm")
    tok.save(tmp_path / "lstm" / "tokenizer.json")
    assert main(["attention", str(tmp_path / "lstm"), "the cat", "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "attention" in err[0]


# -- probing -------------------------------------------------------------------------------------
def test_a_probe_on_random_features_is_at_chance():
    from chainrule.evaluation.probe import accuracy, train_probe

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 16, generator=g)
    y = torch.randint(0, 4, (2000,), generator=g)
    probe = train_probe(x[:1000], y[:1000], 4)
    assert abs(accuracy(probe, x[1000:], y[1000:]) - 0.25) < 0.05
    informative = x.clone()
    informative[:, 0] += 4 * y  # a feature that carries the label
    probe = train_probe(informative[:1000], y[:1000], 4)
    assert accuracy(probe, informative[1000:], y[1000:]) > 0.9


def test_control_task_gives_each_word_type_one_tag():
    from chainrule.data.tagged import TaggedSentence
    from chainrule.evaluation.probe import control_tags

    sents = [TaggedSentence(("the", "cat", "the"), ("at", "nn", "at"), "f1")] * 3
    control = control_tags(sents, seed=1)
    assert set(control) == {"the", "cat"} and set(control.values()) <= {"at", "nn"}


def _tagged_dir(tmp_path, line="the/at cat/nn sat/vbd on/in the/at mat/nn ./.\n"):
    d = tmp_path / "tagged"
    d.mkdir()
    for i in range(3):
        (d / f"f{i}").write_text(line * 10)
    return d


def test_probe_command(trained, tmp_path, capsys):
    capsys.readouterr()
    data = _tagged_dir(tmp_path)
    assert main(["probe", str(trained / "m"), "--data", str(data), "--steps", "50",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in report["layers"]] == [0, 1, 2]
    assert report["test_words"] == 70 and report["tags"] == 5
    assert max(r["accuracy"] for r in report["layers"]) == 1.0  # each word has one tag


def test_probe_refuses_a_token_without_tag(trained, tmp_path, capsys):
    data = _tagged_dir(tmp_path, "the/at cat sat/vbd\n")
    assert main(["probe", str(trained / "m"), "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'cat' has no /TAG" in err[0]
