"""Interface v2 end to end: a conditional and a masked toy through the library and the CLI,
training objectives, the registry as the one list of families."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from chainrule.cli import main
from chainrule.models.base import families, get_family, load_model
from chainrule.models.scoring import score_sequences
from chainrule.testing.toys import NeighbourMaskedLM, SourceBigramLM, ToyConfig, fit_toy
from chainrule.tokenizers import train_tokenizer

TARGETS = ["the cat sat", "a dog ran", "the dog sat", "a cat ran", "the cat ran",
           "a dog sat"] * 3


def _source_of(line: str) -> str:
    return " ".join(reversed(line.split()))  # the toy "translation": words reversed


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer("word", TARGETS)


def _framed(tok, lines):
    return [[tok.bos_id, *tok.encode(x), tok.eos_id] for x in lines]


@pytest.fixture(scope="module")
def conditional_dir(tmp_path_factory, tok):
    torch.manual_seed(0)
    model = SourceBigramLM(ToyConfig(tok.vocab_size, tok.bos_id, tok.eos_id))
    fit_toy(model, _framed(tok, TARGETS), [tok.encode(_source_of(x)) for x in TARGETS])
    d = tmp_path_factory.mktemp("cond") / "m"
    model.save(d)
    tok.save(d / "tokenizer.json")
    return d


@pytest.fixture(scope="module")
def masked_dir(tmp_path_factory, tok):
    torch.manual_seed(0)
    model = NeighbourMaskedLM(ToyConfig(tok.vocab_size, tok.bos_id, tok.eos_id))
    fit_toy(model, _framed(tok, TARGETS))
    d = tmp_path_factory.mktemp("masked") / "m"
    model.save(d)
    tok.save(d / "tokenizer.json")
    return d


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


# -- the conditional toy ---------------------------------------------------------------------
def test_eval_ppl_with_a_source_scores_p_y_given_x(tmp_path, capsys, conditional_dir, tok):
    data, src = tmp_path / "t.txt", tmp_path / "s.txt"
    lines = ["the cat sat", "a dog ran"]
    data.write_text("\n".join(lines) + "\n")
    src.write_text("\n".join(_source_of(x) for x in lines) + "\n")
    code, out, err = _run(capsys, "eval", "ppl", conditional_dir, "--data", data,
                          "--source", src, "--json")
    assert code == 0, err
    [report] = json.loads(out)["models"]
    model = load_model(conditional_dir)
    scores = score_sequences(model, _framed(tok, lines),
                             sources=[tok.encode(_source_of(x)) for x in lines])
    lp = np.concatenate(scores)
    assert report["conditional"] is True
    assert report["perplexity"] == pytest.approx(math.exp(-lp.mean()), rel=1e-9)
    # the right source helps: swapping the sources makes the targets less likely
    src.write_text("\n".join(_source_of(x) for x in reversed(lines)) + "\n")
    _, out2, _ = _run(capsys, "eval", "ppl", conditional_dir, "--data", data, "--source", src,
                      "--json")
    assert json.loads(out2)["models"][0]["perplexity"] > report["perplexity"]


def test_conditional_models_refuse_to_run_without_a_source(tmp_path, capsys, conditional_dir):
    data = tmp_path / "t.txt"
    data.write_text("the cat sat\n")
    code, _, err = _run(capsys, "eval", "ppl", conditional_dir, "--data", data)
    assert code == 2 and "needs a source" in err and "Traceback" not in err
    code, _, err = _run(capsys, "generate", conditional_dir, "--strategy", "greedy")
    assert code == 2 and "--source" in err
    short = tmp_path / "s.txt"
    short.write_text("")
    code, _, err = _run(capsys, "eval", "ppl", conditional_dir, "--data", data, "--source",
                        short)
    assert code == 2 and err.startswith("error:")


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
def test_generate_with_a_source_agrees_with_scoring(capsys, conditional_dir, tok, strategy):
    code, out, err = _run(capsys, "generate", conditional_dir, "--source", "sat cat the",
                          "--source", "ran dog a", "--strategy", strategy, "--max-tokens", "6",
                          "--seed", "3", "--json")
    assert code == 0, err
    result = json.loads(out)
    model = load_model(conditional_dir)
    for p, src in zip(result["prompts"], ["sat cat the", "ran dog a"]):
        assert p["source"] == src
        c = p["outputs"][0]
        ids = [tok.bos_id, *c["token_ids"]] + ([tok.eos_id] if c["finish_reason"] == "eos"
                                               else [])
        [lp] = score_sequences(model, [ids], sources=[tok.encode(src)])
        assert c["logprob"] == pytest.approx(float(lp.sum()), abs=1e-4)


def test_greedy_translation_depends_on_the_source(conditional_dir, tok):
    from chainrule.decoding import GenerationConfig, generate

    model = load_model(conditional_dir)
    cfg = GenerationConfig(strategy="greedy", max_new_tokens=5)
    outs = generate(model, ["", ""], cfg, tokenizer=tok,
                    sources=["sat cat the", "ran dog a"])
    texts = [o[0].text for o in outs]
    assert texts[0] != texts[1]
    assert texts[0].split()[0] == "the" and texts[1].split()[0] == "a"


def test_unconditional_models_refuse_a_source(capsys, tmp_path, tok):
    from chainrule.models.reference import UnigramModel

    d = tmp_path / "uni"
    UnigramModel(tok.vocab_size, tok.bos_id, tok.eos_id).fit(_framed(tok, TARGETS)).save(d)
    tok.save(d / "tokenizer.json")
    code, _, err = _run(capsys, "generate", d, "--source", "x")
    assert code == 2 and "conditional" in err


# -- the masked toy ---------------------------------------------------------------------------
def test_masked_scorer_runs_minimal_pairs_and_ppl(tmp_path, capsys, masked_dir):
    pairs = tmp_path / "p.jsonl"
    rows = [{"sentence_good": g, "sentence_bad": b, "UID": "order"}
            for g, b in [("the cat sat", "cat the sat"), ("a dog ran", "dog a ran"),
                         ("the dog sat", "sat dog the")]]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = _run(capsys, "eval", "pairs", masked_dir, "--data", pairs, "--json")
    assert code == 0, err
    [scores] = json.loads(out)["models"].values()
    assert scores["overall"]["n"] == 3 and scores["overall"]["accuracy"] == 1.0
    data = tmp_path / "t.txt"
    data.write_text("the cat sat\n")
    code, out, err = _run(capsys, "eval", "ppl", masked_dir, "--data", data, "--json")
    assert code == 0, err
    assert json.loads(out)["models"][0]["pseudo"] is True


def test_masked_scorer_cannot_generate(capsys, masked_dir):
    code, _, err = _run(capsys, "generate", masked_dir)
    assert code == 2 and "only scores" in err and "Traceback" not in err


# -- objectives ---------------------------------------------------------------------------------
def test_next_token_loss_with_a_mask_is_cross_entropy_over_the_kept_targets():
    from chainrule.training.objectives import CompletionCE, NextTokenCE, TrainBatch

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)

    def model(x, state=None):
        return logits, None

    x = torch.zeros(2, 5, dtype=torch.long)
    y = torch.randint(0, 7, (2, 5))
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]], dtype=torch.bool)
    lp = torch.log_softmax(logits, -1).gather(-1, y[..., None]).squeeze(-1)
    by_hand = -lp[mask].mean()
    batch = TrainBatch(x, y, loss_mask=mask)
    assert torch.allclose(NextTokenCE().loss(model, batch), by_hand)
    assert torch.allclose(CompletionCE().loss(model, batch), by_hand)
    assert torch.allclose(NextTokenCE().loss(model, TrainBatch(x, y)), -lp.mean())
    with pytest.raises(Exception, match="loss mask"):
        CompletionCE().loss(model, TrainBatch(x, y))


def test_masked_lm_objective_corrupts_as_bert_and_trains_the_masked_toy(tok):
    from chainrule.training.objectives import IGNORE, MaskedLMLoss, NextTokenCE, TrainBatch

    g = torch.Generator().manual_seed(0)
    obj = MaskedLMLoss(mask_id=0, vocab_size=50, rate=0.15, first_random=4, generator=g)
    x = torch.randint(4, 50, (200, 50), generator=torch.Generator().manual_seed(1))
    corrupted, targets = obj.corrupt(x)
    chosen = targets != IGNORE
    assert 0.13 < chosen.float().mean() < 0.17
    assert torch.equal(targets[chosen], x[chosen])
    masked = (corrupted == 0) & chosen
    kept = (corrupted == x) & chosen
    assert 0.77 < masked.sum() / chosen.sum() < 0.83
    assert 0.07 < kept.sum() / chosen.sum() < 0.14  # 10% kept + random ids that equal the original
    assert torch.equal(corrupted[~chosen], x[~chosen])

    torch.manual_seed(0)
    model = NeighbourMaskedLM(ToyConfig(tok.vocab_size, tok.bos_id, tok.eos_id))
    seqs = torch.tensor(_framed(tok, ["the cat sat", "a dog ran", "the dog sat"]) * 8)
    obj = MaskedLMLoss(mask_id=tok.unk_id, vocab_size=tok.vocab_size, rate=0.3,
                       generator=torch.Generator().manual_seed(0))
    batch = TrainBatch(seqs, seqs)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    first = obj.loss(model, batch).item()
    for _ in range(40):
        loss = obj.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert obj.loss(model, batch).item() < first - 0.5
    with pytest.raises(Exception, match="masked"):
        NextTokenCE().check(model)
    with pytest.raises(Exception, match="masked"):
        obj.check(SourceBigramLM(ToyConfig(tok.vocab_size)))


def test_training_loop_calls_the_objective(tmp_path):
    """A custom objective reaches the loop: scaling the loss by 0 leaves the weights alone."""
    from chainrule.training import make_config, train
    from chainrule.training.objectives import NextTokenCE

    class Frozen(NextTokenCE):
        def compute(self, model, batch):
            out = super().compute(model, batch)
            out.loss = out.loss * 0.0
            return out

    cfg = make_config("gpt", overrides={"n_layer": 1, "n_head": 1, "n_embd": 8,
                                        "block_size": 8, "batch_size": 2, "max_iters": 3,
                                        "eval_interval": 3, "eval_iters": 1, "device": "cpu",
                                        "weight_decay": 0.0, "log_interval": 1})
    ids = np.arange(200, dtype=np.int32) % 9
    summary = train(cfg, ids, None, tmp_path / "m", vocab_size=9, progress=False, plot=False,
                    objective=Frozen())
    assert summary["last_loss"] == 0.0


# -- the registry -------------------------------------------------------------------------------
def test_registry_knows_config_classes_and_kinds():
    neural = {f.name for f in families(trainer="neural")}
    assert {"ffnn", "rnn", "lstm", "gpt"} <= neural
    assert get_family("ngram").trainer == "ngram"
    assert get_family("gpt").config_class.__name__ == "GPTConfig"
    assert get_family("toy-masked").kind == "masked scorer"
    assert get_family("toy-source-bigram").kind == "conditional generator"


def test_every_model_setting_is_reachable_from_training_overrides():
    import dataclasses

    from chainrule.training.config import make_config, model_key_types

    for info in families(trainer="neural"):
        keys = model_key_types(info.name)
        names = {f.name for f in dataclasses.fields(info.config_class)}
        assert names - set(keys) <= {"vocab_size", "bos_id", "eos_id", "block_size"}
    cfg = make_config("gpt", overrides=["rope_theta=500000", "layer_norm_eps=1e-6",
                                        "positions=rotary"])
    assert cfg.model_settings()["rope_theta"] == 500000.0
    assert cfg.layer_norm_eps == 1e-6
    with pytest.raises(Exception, match="n_head"):
        make_config("rnn", overrides=["n_head=4"])  # not an rnn setting: refused, not ignored
