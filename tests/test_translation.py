"""Encoder-decoders (seq2seq, transformer-ed), parallel data, translation and BLEU."""

from __future__ import annotations

import gzip
import json
import math
import re

import pytest
import torch

from _decoding_helpers import assert_one_beam_is_greedy
from chainrule.cli import main
from chainrule.data.parallel import read_parallel
from chainrule.errors import ConfigError, DataError
from chainrule.models.neural import build_neural_model
from chainrule.testing.conditional import (
    copy_task,
    fit_conditional,
    fit_on_tiny_task,
    reversal_task,
    token_accuracy,
)
from chainrule.testing.conformance import TinyTask

TASK = TinyTask(seed=0)


def _tiny(family: str, **kw):
    torch.manual_seed(0)
    return build_neural_model(family, vocab_size=12, **kw)


# -- the lecture's claims on toy tasks -------------------------------------------------------
def test_copy_task_is_learned_to_almost_every_token():
    torch.set_num_threads(1)
    src, tgt = copy_task(300, 8, 2, 5, seed=0)
    torch.manual_seed(0)
    model = build_neural_model("seq2seq", vocab_size=8, attention="dot", n_embd=16,
                               n_hidden=32, max_len=16)
    fit_conditional(model, tgt, src, steps=200, lr=3e-2, batch_size=64)
    test_src, test_tgt = copy_task(100, 8, 2, 5, seed=1)  # unseen sentences
    assert token_accuracy(model, test_src, test_tgt) >= 0.95


def test_attention_learns_reversal_better_than_the_bottleneck():
    torch.set_num_threads(1)
    src, tgt = reversal_task(400, 12, 4, 9, seed=0)
    test_src, test_tgt = reversal_task(100, 12, 4, 9, seed=1)
    acc = {}
    for attention in ("none", "mlp"):
        model = _tiny("seq2seq", attention=attention, n_embd=16, n_hidden=32, max_len=16)
        fit_conditional(model, tgt, src, steps=200, lr=2e-2, batch_size=64)
        acc[attention] = token_accuracy(model, test_src, test_tgt)
    assert acc["mlp"] >= 0.85, acc
    assert acc["mlp"] > acc["none"] + 0.2, acc


# -- attention weights, decoding -------------------------------------------------------------
@pytest.mark.parametrize("kw", [
    {"family": "seq2seq", "attention": "mlp", "bidirectional": True, "cell": "lstm"},
    {"family": "seq2seq", "attention": "dot"},
    {"family": "seq2seq", "attention": "scaled", "n_layer": 2},
    {"family": "transformer-ed", "n_layer": 2, "n_head": 2, "n_embd": 16},
    {"family": "transformer-ed", "n_layer": 1, "n_head": 2, "n_embd": 16, "post_norm": True},
])
def test_attention_weights_sum_to_one_and_skip_padding(kw):
    kw = dict(kw)
    family = kw.pop("family")
    if family == "seq2seq":
        kw.update(n_embd=8, n_hidden=12)
    model = _tiny(family, max_len=16, **kw).eval()
    sources = [[2, 3, 4, 5, 6], [7, 8]]
    tokens = torch.tensor([[0, 3, 4, 5], [0, 9, 10, 11]])
    maps = model.attention(tokens, sources)  # (L, H, B, T, S + 1)
    assert maps.shape[2:] == (2, 4, 6)
    assert torch.allclose(maps.sum(-1), torch.ones(maps.shape[:-1]), atol=1e-5)
    assert float(maps[:, :, 1, :, 3:].abs().max()) == 0.0  # row 2's padding (it has 2 + end)
    assert float(maps.min()) >= 0.0


def test_seq2seq_without_attention_has_no_map_to_draw():
    with pytest.raises(ConfigError, match="no attention"):
        _tiny("seq2seq", n_embd=8, n_hidden=8).attention(torch.tensor([[0, 2]]), [[3]])


@pytest.mark.parametrize("family,kw", [
    ("seq2seq", {"attention": "mlp", "n_embd": 8, "n_hidden": 12}),
    ("transformer-ed", {"n_layer": 1, "n_head": 2, "n_embd": 16, "max_len": 16}),
])
def test_beam_search_with_one_beam_is_greedy(family, kw):
    model = fit_on_tiny_task(family, TASK, steps=30, **kw)
    assert_one_beam_is_greedy(model, TASK.sources[:6], max_new_tokens=12)


def test_transformer_decoding_past_its_first_cache_equals_the_full_pass():
    model = _tiny("transformer-ed", n_layer=1, n_head=2, n_embd=16, max_len=48).eval()
    g = torch.Generator().manual_seed(3)
    x = torch.randint(2, 12, (2, 40), generator=g)
    x[:, 0] = 0
    src = [[3, 4, 5], [6]]
    full = model.logprobs(x, src)
    lp, state = model.start(x[:, :1], None, src)  # a cache of 16 slots, grown twice
    for t in range(1, 40):
        lp, state = model.step(state, x[:, t])
        assert torch.allclose(lp, full[:, t], atol=1e-4), t
    with pytest.raises(ConfigError, match="longer than max_len 48"):
        model.logprobs(torch.zeros(1, 49, dtype=torch.long), [[3]])


def test_label_smoothing_matches_its_formula():
    from chainrule.models.base import Source
    from chainrule.training.objectives import TrainBatch
    from chainrule.training.translation import TeacherForcedCE

    model = _tiny("seq2seq", n_embd=8, n_hidden=8)
    x = torch.tensor([[0, 3, 4]])
    y = torch.tensor([[3, 4, 1]])
    batch = TrainBatch(x, y, source=Source(torch.tensor([[5, 6]]), torch.tensor([2])))
    eps = 0.2
    got = TeacherForcedCE(eps).loss(model, batch)
    logp = torch.log_softmax(model(x, None, source=batch.source)[0], -1)[0]
    want = -((1 - eps) * logp.gather(-1, y[0, :, None]).squeeze(-1) + eps * logp.mean(-1)).mean()
    assert torch.allclose(got, want, atol=1e-6)


def test_transformer_ed_is_built_from_the_decoder_only_blocks():
    from chainrule.models.gpt import Block
    from chainrule.models.transformer_ed import DecoderBlock

    model = _tiny("transformer-ed", n_layer=2, n_dec_layer=1, n_head=2, n_embd=16)
    assert [type(b) for b in model.enc] == [Block, Block]
    assert all(not b.attn.causal for b in model.enc)
    assert [type(b) for b in model.dec] == [DecoderBlock] and issubclass(DecoderBlock, Block)


def test_transformer_ed_initialisations():
    """gpt2: N(0, 0.02), residual projections N(0, 0.02 / sqrt(2 * depth)); xavier:
    Glorot-uniform in the blocks (|w| <= sqrt(6 / (fan_in + fan_out)), std = bound / sqrt(3));
    the embeddings are N(0, 0.02) in both."""
    kw = {"n_layer": 2, "n_dec_layer": 2, "n_head": 4, "n_embd": 64, "n_inner": 128}
    gpt2 = _tiny("transformer-ed", **kw)
    w = gpt2.enc[0].attn.c_proj.weight
    assert w.std().item() == pytest.approx(0.02 / math.sqrt(8), rel=0.1)
    assert gpt2.dec[1].cross.c_q.weight.std().item() == pytest.approx(0.02, rel=0.1)
    xav = _tiny("transformer-ed", init="xavier", **kw)
    for lin in (xav.enc[0].attn.c_proj, xav.dec[1].cross.c_kv, xav.dec[0].mlp.c_fc):
        out_f, in_f = lin.weight.shape
        bound = math.sqrt(6 / (in_f + out_f))
        assert lin.weight.abs().max().item() <= bound
        assert lin.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    assert xav.src_emb.weight.std().item() == pytest.approx(0.02, rel=0.1)
    with pytest.raises(ConfigError, match="init must be one of gpt2, xavier"):
        _tiny("transformer-ed", init="kaiming", **kw)


def test_scaled_embeddings_equal_embeddings_multiplied_by_sqrt_d():
    kw = {"n_layer": 1, "n_head": 2, "n_embd": 16, "tie_weights": False, "dropout": 0.0,
          "max_len": 16}
    scaled = _tiny("transformer-ed", scale_embeddings=True, **kw).eval()
    plain = _tiny("transformer-ed", **kw).eval()
    state = scaled.state_dict()
    for name in ("src_emb.weight", "tgt_emb.weight"):
        state[name] = state[name] * 4.0  # sqrt(16)
    plain.load_state_dict(state)
    x = torch.tensor([[0, 3, 4, 5]])
    src = torch.tensor([[6, 7, 8, 1]])
    from chainrule.models.base import Source

    source = Source(src, torch.tensor([4]))
    assert torch.allclose(scaled(x, None, source=source)[0], plain(x, None, source=source)[0],
                          atol=1e-5)


def test_shared_embeddings_are_one_matrix_that_both_sides_train(tmp_path):
    from chainrule.models.base import Source, load_model

    kw = {"n_layer": 1, "n_head": 2, "n_embd": 16, "dropout": 0.0, "max_len": 16,
          "joint_vocab": True}
    shared = _tiny("transformer-ed", share_embeddings=True, **kw)
    apart = _tiny("transformer-ed", **kw)
    assert shared.src_emb.weight is shared.tgt_emb.weight is shared.lm_head.weight
    assert apart.num_parameters() - shared.num_parameters() == 12 * 16
    source = Source(torch.tensor([[6, 7, 8, 1]]), torch.tensor([4]))
    x = torch.tensor([[0, 3, 4]])
    shared.decode(x, shared.memory(source, 1)).sum().backward()
    grad = shared.tgt_emb.weight.grad
    assert grad[6:9].abs().sum() > 0  # rows only the source read
    shared.save(tmp_path / "m")
    back = load_model(tmp_path / "m").eval()
    assert back.src_emb.weight is back.tgt_emb.weight
    shared.eval()
    assert torch.equal(back(x, None, source=source)[0], shared(x, None, source=source)[0])
    with pytest.raises(ConfigError, match="set joint_vocab=true"):
        _tiny("transformer-ed", share_embeddings=True, n_layer=1, n_head=2, n_embd=16)
    with pytest.raises(ConfigError, match="of one size, got 20 and 12"):
        _tiny("transformer-ed", share_embeddings=True, source_vocab_size=20, **kw)


def test_sinusoidal_positions_are_the_papers_fixed_table():
    kw = {"n_layer": 1, "n_head": 2, "n_embd": 16, "dropout": 0.0, "max_len": 16}
    model = _tiny("transformer-ed", positions="sinusoidal", **kw)
    learned = _tiny("transformer-ed", **kw)
    assert learned.num_parameters() - model.num_parameters() == 2 * 16 * 16  # two tables
    table = model.tgt_pos(torch.arange(16))
    assert model.src_pos is model.tgt_pos and not table.requires_grad
    for p, i in [(0, 0), (3, 2), (7, 5), (15, 14)]:
        angle = p / 10000 ** ((i - i % 2) / 16)
        want = math.sin(angle) if i % 2 == 0 else math.cos(angle)
        assert table[p, i].item() == pytest.approx(want, abs=1e-6)
    assert "tgt_pos.table" not in model.state_dict()
    with pytest.raises(ConfigError, match="positions must be one of learned, sinusoidal"):
        _tiny("transformer-ed", positions="rotary", **kw)


def test_joint_or_separate_vocabularies():
    from chainrule.training.config import make_config
    from chainrule.training.translation import train_tokenizers

    src, tgt = ["ein Hund", "eine Katze"], ["a dog", "a cat"]
    cfg = make_config("seq2seq", None, ["tokenizer_kind=char"])
    s, t = train_tokenizers(cfg, src, tgt)
    assert s is not t and s.token_to_id("ü") is None and s.token_to_id("K") is not None
    assert t.token_to_id("K") is None
    cfg = make_config("transformer-ed", None, ["tokenizer_kind=char", "joint_vocab=true"])
    s, t = train_tokenizers(cfg, src, tgt)
    assert s is t and t.token_to_id("K") is not None and t.token_to_id("o") is not None


@pytest.mark.parametrize("size", ["", "-cpu"])
@pytest.mark.parametrize("kind", ["gru", "attn", "transformer"])
def test_the_multi30k_presets_build_their_models(kind, size):
    """Each Multi30k preset is a valid configuration of its family whose cosine ends at its
    last step, and builds its model (with a small vocabulary); the transformers start from
    Glorot-uniform blocks."""
    from chainrule.training.build import model_kwargs
    from chainrule.training.config import load_preset, make_config

    name = f"multi30k-{kind}{size}"
    family = load_preset(name)["family"]
    cfg = make_config(family, name)
    assert cfg.lr_decay_iters == cfg.max_iters > cfg.warmup_iters
    kw = model_kwargs(cfg, 40, 0, 1) | {"source_vocab_size": 40, "source_eos_id": 1,
                                         "source_pad_id": 1}
    model = build_neural_model(family, **kw)
    assert model.conditional and model.cfg.n_embd == load_preset(name)["n_embd"]
    if kind == "transformer":
        assert model.cfg.init == "xavier"
    else:
        assert (model.cfg.attention == "none") == (kind == "gru")


# -- parallel data ---------------------------------------------------------------------------
def test_parallel_readers_agree_across_layouts(tmp_path):
    pairs = [("ein Haus", "a house"), ("zwei Katzen", "two cats")]
    with gzip.open(tmp_path / "a.de.gz", "wt", encoding="utf-8") as f:
        f.write("".join(s + "\n" for s, _ in pairs))
    (tmp_path / "a.en").write_text("".join(t + "\n" for _, t in pairs), "utf-8")
    (tmp_path / "a.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs), "utf-8")
    (tmp_path / "a.jsonl").write_text(
        "".join(json.dumps({"de": s, "en": t}) + "\n" for s, t in pairs), "utf-8")
    assert read_parallel(tmp_path / "a.de.gz", tmp_path / "a.en") == pairs
    assert read_parallel(tmp_path / "a.tsv") == pairs
    assert read_parallel(tmp_path / "a.jsonl", fields=("de", "en")) == pairs


def test_misaligned_files_are_refused_with_both_counts(tmp_path):
    (tmp_path / "s").write_text("a\nb\nc\n", "utf-8")
    (tmp_path / "t").write_text("x\ny\n", "utf-8")
    with pytest.raises(DataError, match="has 3 lines but the target .* has 2"):
        read_parallel(tmp_path / "s", tmp_path / "t")


def test_an_empty_source_line_is_refused_with_its_number(tmp_path):
    (tmp_path / "s").write_text("a\n \nc\n", "utf-8")
    (tmp_path / "t").write_text("x\ny\nz\n", "utf-8")
    with pytest.raises(DataError, match="line 2 .* empty source"):
        read_parallel(tmp_path / "s", tmp_path / "t")


# -- the command line, end to end ------------------------------------------------------------
SRC = ["ein Hund läuft", "eine Katze schläft", "ein Mann liest", "zwei Hunde laufen",
       "eine Frau singt", "ein Kind spielt"] * 3
TGT = ["a dog runs", "a cat sleeps", "a man reads", "two dogs run", "a woman sings",
       "a child plays"] * 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("mt")
    (d / "src.txt").write_text("\n".join(SRC) + "\n", "utf-8")
    (d / "tgt.txt").write_text("\n".join(TGT) + "\n", "utf-8")
    rc = main(["--threads", "1", "train", "--family", "seq2seq", "--source", str(d / "src.txt"),
               "--target", str(d / "tgt.txt"), "--kind", "char", "attention=dot", "n_embd=16",
               "n_hidden=24", "max_len=24", "max_iters=40", "batch_size=6",
               "learning_rate=0.02", "eval_interval=40", "eval_iters=1", "device=cpu",
               "label_smoothing=0.1", "-o", str(d / "m"), "--json"])
    assert rc == 0
    return d


def test_train_translate_and_score_from_the_command_line(trained, capsys):
    d = trained
    assert (d / "m" / "source_tokenizer.json").exists()
    capsys.readouterr()
    assert main(["translate", str(d / "m"), "--source", str(d / "src.txt"), "--json",
                 "--beams", "3"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(SRC) and all(r["logprob"] <= 0 for r in rows)
    assert main(["eval", "bleu", str(d / "m"), "--source", str(d / "src.txt"), "--reference",
                 str(d / "tgt.txt"), "--strategy", "greedy", "--output", str(d / "hyp.txt"),
                 "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["bleu_signature"].startswith("nrefs:1|case:mixed")
    assert main(["eval", "ppl", str(d / "m"), "--data", str(d / "tgt.txt"), "--source",
                 str(d / "src.txt"), "--json"]) == 0
    ppl = json.loads(capsys.readouterr().out)["models"][0]["perplexity"]
    assert 1.0 < ppl < 30.0  # a char vocabulary of ~30; training helped


def test_eval_bleu_equals_sacrebleu_on_a_hypothesis_file(tmp_path, capsys):
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps = ["a dog runs in the park", "the cat sleeps", "two men read a book ."]
    refs = ["a dog is running in the park", "the cat is sleeping", "two men read books ."]
    (tmp_path / "h").write_text("\n".join(hyps) + "\n", "utf-8")
    (tmp_path / "r").write_text("\n".join(refs) + "\n", "utf-8")
    assert main(["eval", "bleu", "--hypotheses", str(tmp_path / "h"), "--reference",
                 str(tmp_path / "r"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-9)
    assert got["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=1e-9)


def test_translate_draws_the_attention(trained, capsys):
    pytest.importorskip("matplotlib")
    d = trained
    assert main(["translate", str(d / "m"), "--source", str(d / "src.txt"), "--strategy",
                 "greedy", "--attention", str(d / "att.png")]) == 0
    assert (d / "att.png").read_bytes()[:4] == b"\x89PNG"


def _fails(capsys, argv, pattern):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(pattern, err), err


def test_a_joint_vocabulary_trains_one_shared_embedding_from_the_command_line(trained, tmp_path,
                                                                            capsys):
    from chainrule.models.base import load_model

    d = trained
    argv = ["--threads", "1", "train", "--family", "transformer-ed", "--source",
            str(d / "src.txt"), "--target", str(d / "tgt.txt"), "--kind", "char", "n_layer=1",
            "n_head=2", "n_embd=16", "max_len=24", "max_iters=4", "batch_size=6",
            "eval_interval=4", "eval_iters=1", "device=cpu", "share_embeddings=true",
            "positions=sinusoidal"]
    _fails(capsys, [*argv, "-o", str(tmp_path / "x")], r"set joint_vocab=true as well")
    assert main([*argv, "joint_vocab=true", "-o", str(tmp_path / "m")]) == 0
    model = load_model(tmp_path / "m")
    assert model.src_emb.weight is model.tgt_emb.weight
    assert (tmp_path / "m" / "source_tokenizer.json").read_text("utf-8") == \
        (tmp_path / "m" / "tokenizer.json").read_text("utf-8")
    capsys.readouterr()
    assert main(["translate", str(tmp_path / "m"), "--source", str(d / "src.txt"),
                 "--strategy", "greedy"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(SRC)


def test_bad_inputs_get_one_sentence(trained, tmp_path, capsys):
    d = trained
    (tmp_path / "long.txt").write_text("ein Hund " * 40 + "\n", "utf-8")
    (tmp_path / "two.txt").write_text("a\nb\n", "utf-8")
    _fails(capsys, ["train", "--family", "seq2seq", "--source", str(d / "src.txt"), "--target",
                    str(tmp_path / "two.txt"), "-o", str(tmp_path / "x")],
           r"has 18 lines but the target .* has 2")
    _fails(capsys, ["translate", str(d / "m"), "--source", str(tmp_path / "long.txt"),
                    "--no-truncate"], r"more than the model's maximum of 23")
    capsys.readouterr()
    assert main(["translate", str(d / "m"), "--source", str(tmp_path / "long.txt"),
                 "--strategy", "greedy"]) == 0
    assert "cut to the model's maximum" in capsys.readouterr().err
    from chainrule.tokenizers import train_tokenizer

    tok = train_tokenizer("char", ["abcdefghij"])
    gpt = build_neural_model("gpt", vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_embd=8,
                             block_size=8)
    gpt.save(tmp_path / "gpt")
    tok.save(tmp_path / "gpt" / "tokenizer.json")
    _fails(capsys, ["translate", str(tmp_path / "gpt"), "--source", str(tmp_path / "two.txt")],
           r"decoder-only: it translates only inside a prompt, so pass --template")
    (tmp_path / "empty.txt").write_text("ein Hund\n\n", "utf-8")
    _fails(capsys, ["translate", str(d / "m"), "--source", str(tmp_path / "empty.txt")],
           r"source sentence 2 is empty")


def test_a_decoder_only_model_translates_through_a_template(tmp_path):
    from chainrule.evaluation.translation import Translator, translate
    from chainrule.tokenizers import train_tokenizer

    tok = train_tokenizer("char", ["German: ein Hund\nEnglish: a dog\n"])
    torch.manual_seed(0)
    gpt = build_neural_model("gpt", vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_embd=8,
                             block_size=64, bos_id=tok.bos_id, eos_id=tok.eos_id)
    tr = Translator(gpt, tok, template="German: {source}\nEnglish:")
    [out] = translate(tr, ["ein Hund"], strategy="greedy", max_new_tokens=5)
    assert "\n" not in out.text and len(out.token_ids) <= 5


def test_a_translation_run_starts_over_only_with_overwrite(trained, tmp_path, capsys):
    import shutil

    d = tmp_path / "again"
    shutil.copytree(trained / "m", d)
    argv = ["--threads", "1", "train", "--family", "seq2seq", "--source",
            str(trained / "src.txt"), "--target", str(trained / "tgt.txt"), "--kind", "char",
            "n_embd=8", "n_hidden=8", "max_len=24", "max_iters=2", "batch_size=6",
            "eval_interval=2", "eval_iters=1", "device=cpu", "-o", str(d), "--json"]
    _fails(capsys, argv, r"already holds a training run.*--overwrite")
    _fails(capsys, [*argv, "--resume", "--overwrite"], r"choose one")
    capsys.readouterr()
    assert main([*argv, "--overwrite"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2
    assert (d / "source_tokenizer.json").exists()  # written after the old run was removed
    records = (d / "metrics.jsonl").read_text().splitlines()
    assert max(json.loads(r)["step"] for r in records) == 2


def test_the_loop_measures_target_tokens_per_second_of_translation(tmp_path):
    """tokens_per_s counts the predicted target tokens of the batches trained on (eos in,
    padding out), not batch_size x block_size: with one batch of every pair per step, the
    tokens of a step are the sum over the pairs of (target tokens + 1)."""
    from chainrule.tokenizers import train_tokenizer
    from chainrule.training.config import make_config
    from chainrule.training.translation import train_translation

    torch.set_num_threads(1)
    pairs = list(zip(SRC[:6], TGT[:6]))
    tok = train_tokenizer("char", TGT + SRC)
    per_step = sum(len(tok.encode(t)) + 1 for _, t in pairs)
    cfg = make_config("seq2seq", None, {"n_embd": 8, "n_hidden": 8, "max_len": 24,
                                        "max_iters": 4, "batch_size": 6, "log_interval": 2,
                                        "eval_interval": 4, "eval_iters": 1, "device": "cpu"})
    assert per_step != cfg.tokens_per_step
    summary = train_translation(cfg, pairs, None, tmp_path / "m", tokenizer=tok,
                                source_tokenizer=tok, progress=False, plot=False)
    logged = [json.loads(r) for r in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    speeds = [r for r in logged if "tokens_per_s" in r]
    assert len(speeds) == 2
    for r in speeds:
        assert r["tokens_per_s"] * r["ms_per_iter"] / 1000 == pytest.approx(per_step)
    assert summary["tokens_per_s"] * summary["ms_per_iter"] / 1000 == pytest.approx(per_step)
    assert summary["target_tokens_per_s"] == summary["tokens_per_s"]
