"""BERT extras: whole-word masking in the masked-LM objective; probing recurrent models."""

from __future__ import annotations

import json

import pytest
import torch

from chainrule.cli import main
from chainrule.errors import ConfigError
from chainrule.models.bert import BERT, BertConfig
from chainrule.training.objectives import IGNORE, MaskedLMLoss, default_objective

TEXT = ("the unbelievable cartographers reconsidered everything . "
        "a dog ran to the extraordinary mountains quickly . "
        "international correspondents telegraphed the newsroom . ") * 40


def _bytebpe():
    from chainrule.tokenizers import train_tokenizer

    return train_tokenizer("bytebpe", [TEXT], vocab_size=300)


def _bert(tok, **kw) -> BERT:
    cfg = BertConfig(vocab_size=tok.vocab_size, bos_id=tok.bos_id, eos_id=tok.eos_id,
                     n_layer=1, n_head=2, n_embd=16, block_size=64, **kw)
    return BERT(cfg).set_word_boundaries(tok)


def _stream(tok, rows=60, width=48) -> torch.Tensor:
    """Rows cut from a stream of <s> sentence </s> ... as the training sampler draws them."""
    ids: list[int] = []
    for sent in TEXT.split(" . "):
        ids += [tok.bos_id, *tok.encode(sent.strip() + " ."), tok.eos_id]
    ids = (ids * (rows * width // len(ids) + 1))[: rows * width]
    return torch.tensor(ids).view(rows, width)


# -- whole-word masking --------------------------------------------------------------------------
def test_whole_word_masking_chooses_words_with_all_their_pieces():
    tok = _bytebpe()
    model = _bert(tok, whole_word_masking=True)
    loss = default_objective(model)
    assert isinstance(loss, MaskedLMLoss) and loss.word_ids is not None
    loss.generator = torch.Generator().manual_seed(3)
    tokens = _stream(tok)
    words = model.word_ids(tokens)  # (B, T) 1, 2, ... along each row
    special = torch.isin(tokens, torch.tensor([tok.bos_id, tok.eos_id]))
    # one group per (row, word); a special is a word of its own
    group = (torch.arange(tokens.shape[0])[:, None] * (tokens.shape[1] + 1) + words).flatten()
    size = torch.zeros(int(group.max()) + 1).index_add_(0, group, torch.ones(group.numel()))
    ordinary = torch.zeros_like(size, dtype=torch.bool)
    ordinary[group[~special.flatten()]] = True
    assert (size[ordinary] > 1).sum() > 100, "the test needs words of several pieces"
    chosen_words = total_words = multi = 0
    for _ in range(10):
        out, targets = loss.corrupt(tokens)
        picked = targets != IGNORE
        assert not picked[special].any(), "a special token was chosen"
        assert torch.equal(out[~picked], tokens[~picked])
        n = torch.zeros_like(size).index_add_(0, group, picked.flatten().float())
        assert torch.all((n == 0) | (n == size)), "a word was masked only in part"
        chosen_words += int((n[ordinary] > 0).sum())
        total_words += int(ordinary.sum())
        multi += int(((n > 0) & (size > 1)).sum())
    assert abs(chosen_words / total_words - 0.15) < 0.01
    assert multi > 0


def test_default_masking_is_unchanged_per_token():
    """Without whole words the choice is the old per-token draw from the same generator."""
    tok = _bytebpe()
    model = _bert(tok)
    loss = default_objective(model)
    assert loss.word_ids is None
    tokens = _stream(tok)
    loss.generator = torch.Generator().manual_seed(5)
    _, targets = loss.corrupt(tokens)
    g = torch.Generator().manual_seed(5)
    special = torch.isin(tokens, torch.tensor([tok.bos_id, tok.eos_id, model.mask_id]))
    expected = (torch.rand(tokens.shape, generator=g) < 0.15) & ~special
    assert torch.equal(targets != IGNORE, expected)
    # and whole-word masking does split words differently from it somewhere
    wwm = default_objective(_bert(tok, whole_word_masking=True))
    wwm.generator = torch.Generator().manual_seed(5)
    assert not torch.equal(wwm.corrupt(tokens)[1] != IGNORE, expected)


def test_whole_word_masking_needs_word_boundaries():
    tok = _bytebpe()
    cfg = BertConfig(vocab_size=tok.vocab_size, bos_id=tok.bos_id, eos_id=tok.eos_id,
                     n_layer=1, n_head=2, n_embd=16, whole_word_masking=True)
    with pytest.raises(ConfigError, match="whole-word masking need word boundaries"):
        default_objective(BERT(cfg)).check(BERT(cfg))


def test_training_with_whole_word_masking(tmp_path):
    """``whole_word_masking=true`` trains through the one loop, which hands the model its
    tokenizer's word boundaries (without them the objective refuses to start)."""
    from chainrule.tokenizers import train_tokenizer
    from chainrule.training.config import make_config
    from chainrule.training.loop import train

    tok = train_tokenizer("char", [TEXT])
    cfg = make_config("bert", overrides=[
        "max_iters=3", "n_layer=1", "n_head=2", "n_embd=16", "block_size=32", "batch_size=4",
        "eval_interval=3", "eval_iters=1", "warmup_iters=1", "whole_word_masking=true",
        "device=cpu"])
    assert cfg.model["whole_word_masking"] is True
    ids = torch.tensor(tok.encode(TEXT)).numpy()
    result = train(cfg, ids, None, tmp_path / "m", tokenizer=tok, progress=False, plot=False)
    assert result.model.whole_word_masking
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert "true" in json.dumps(config).lower() and "whole_word_masking" in json.dumps(config)


# -- probing recurrent models --------------------------------------------------------------------
@pytest.mark.parametrize("family", ["lstm", "rnn"])
def test_layer_outputs_match_the_stacked_cell(family):
    from chainrule.models.neural import build_neural_model

    torch.manual_seed(0)
    model = build_neural_model(family, vocab_size=20, bos_id=2, eos_id=3, n_layer=3, n_embd=8,
                               n_hidden=12).eval()
    x = torch.randint(4, 20, (2, 9))
    with torch.no_grad():
        outs = model.layer_outputs(x)
        emb = model.embedding(x)
        top, _ = model.cell(emb)
        two = type(model.cell)(8, 12, num_layers=2, batch_first=True,
                               **({"nonlinearity": model.cell.nonlinearity}
                                  if family == "rnn" else {}))
        two.load_state_dict({k: v for k, v in model.cell.state_dict().items()
                             if not k.endswith("2")})
        second, _ = two(emb)
    assert [tuple(o.shape) for o in outs] == [(2, 9, 8)] + [(2, 9, 12)] * 3
    assert torch.equal(outs[0], emb)
    assert torch.allclose(outs[2], second, atol=1e-6)  # layer 2 of 3: the first two layers
    assert torch.allclose(outs[3], top, atol=1e-6)


def _lstm_dir(tmp_path, words):
    from chainrule.models.neural import build_neural_model
    from chainrule.tokenizers import train_tokenizer

    tok = train_tokenizer("word", [" ".join(words)])
    torch.manual_seed(0)
    d = tmp_path / "lstm"
    model = build_neural_model("lstm", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                               eos_id=tok.eos_id, n_layer=2, n_embd=16, n_hidden=32)
    with torch.no_grad():  # inputs of unit scale, so a random cell is not near-linear
        model.embedding.weight.normal_()
    model.save(d)
    tok.save(d / "tokenizer.json")
    return d


def _corpus(tmp_path, rule, seed=0):
    """10 files of 12 sentences of random words, each word tagged by ``rule(prev, word, rng)``."""
    import random

    rng = random.Random(seed)
    words = [f"w{i}" for i in range(8)]
    d = tmp_path / "corpus"
    d.mkdir()
    for f in range(10):
        lines = []
        for _ in range(12):
            sent = [rng.choice(words) for _ in range(8)]
            tags = [rule(sent[i - 1] if i else None, w, rng) for i, w in enumerate(sent)]
            lines.append(" ".join(f"{w}/{t}" for w, t in zip(sent, tags)))
        (d / f"f{f}").write_text("\n".join(lines) + "\n")
    return d, words


def test_probing_an_lstm_random_tags_are_at_chance(tmp_path, capsys):
    data, words = _corpus(tmp_path, lambda prev, w, rng: rng.choice("ab"))
    model = _lstm_dir(tmp_path, words)
    assert main(["probe", str(model), "--data", str(data), "--steps", "100", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["family"] == "lstm" and [r["layer"] for r in report["layers"]] == [0, 1, 2]
    for r in report["layers"]:
        assert abs(r["accuracy"] - 0.5) < 0.12, r


def test_probing_an_lstm_finds_the_left_context_above_the_embeddings(tmp_path, capsys):
    """The tag is the previous word's class: invisible in layer 0 (the word's own embedding),
    linearly readable (if not perfectly) from an LSTM layer's h_t, even with random weights."""
    data, words = _corpus(tmp_path, lambda prev, w, rng: "x" if prev in {"w0", "w1", "w2",
                                                                          "w3"} else "y")
    model = _lstm_dir(tmp_path, words)
    assert main(["probe", str(model), "--data", str(data), "--steps", "100", "--json"]) == 0
    acc = [r["accuracy"] for r in json.loads(capsys.readouterr().out)["layers"]]
    assert acc[0] < 0.6 and min(acc[1:]) > 0.7, acc


def test_probing_a_model_without_layers_is_one_sentence(tmp_path, capsys):
    from chainrule.models.neural import build_neural_model
    from chainrule.tokenizers import train_tokenizer

    tok = train_tokenizer("word", ["the cat sat"])
    d = tmp_path / "ffnn"
    build_neural_model("ffnn", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                       eos_id=tok.eos_id).save(d)
    tok.save(d / "tokenizer.json")
    assert main(["probe", str(d), "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ffnn" in err[0] and "rnn, lstm" in err[0]
