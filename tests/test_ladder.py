"""The ladder on a tiny corpus with tiny budgets: the report files, finite perplexities, and the
first lesson of the lecture's table (a bigram beats a unigram on held-out text)."""

from __future__ import annotations

import csv
import json
import math
import random

import numpy as np
import pytest

from chainrule.cli import main
from chainrule.evaluation.ladder import LadderConfig, prepare, run_ladder, split_lines
from chainrule.evaluation.perplexity import perplexity

NOUNS = ["cat", "dog", "king", "queen", "horse", "lord"]
VERBS = ["sees", "loves", "fears", "follows"]
PREPS = ["with", "near", "behind"]


def _corpus(path, n=300, seed=0):
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = ["the", rng.choice(NOUNS), rng.choice(VERBS), "the", rng.choice(NOUNS)]
        if rng.random() < 0.5:
            words += [rng.choice(PREPS), "a", rng.choice(NOUNS)]
        lines.append(" ".join(words) + " .")
    path.write_text("\n".join(lines) + "\n\n")  # a trailing blank line is skipped
    return path


TINY = {"ffnn": {"n_embd": 8, "n_hidden": 16, "block_size": 8, "batch_size": 4},
        "lstm": {"n_embd": 8, "n_hidden": 8, "block_size": 8, "batch_size": 4},
        "gpt": {"n_embd": 8, "n_head": 2, "n_layer": 1, "block_size": 8, "batch_size": 4}}


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    pytest.importorskip("matplotlib")
    tmp = tmp_path_factory.mktemp("ladder")
    corpus = _corpus(tmp / "corpus.txt")
    pairs = tmp / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps({
        "sentence_good": g, "sentence_bad": b, "UID": "order", "field": "syntax",
        "linguistics_term": "word_order"}) for g, b in [
        ("the cat sees the dog .", "cat the sees dog the ."),
        ("the king fears the queen .", "the fears king queen the ."),
    ]) + "\n")
    cfg = LadderConfig(data=(str(corpus),), output=str(tmp / "report"), min_count=1,
                       neural_iters=20, neural_overrides=TINY, pairs=(str(pairs),),
                       sample_tokens=8)
    return run_ladder(cfg)


def test_report_files_and_every_rung_is_finite(ladder):
    data, results = ladder
    out = data.out_dir
    for name in ("report.md", "results.csv", "results.json", "ladder.png", "tokenizer.json"):
        assert (out / name).is_file(), name
    assert [r.rung for r in results] == ["unigram", "bigram", "trigram", "kn5", "ffnn", "lstm",
                                         "gpt"]
    for r in results:
        assert r.status == "ok", (r.rung, r.reason)
        assert math.isfinite(r.test_ppl) and r.test_ppl >= 1.0
        assert r.test_tokens == data.test_tokens and r.test_oov == data.test_oov
        assert r.tokens_seen and r.tokens_seen > 0
        assert math.isfinite(r.test_bits_per_byte) and math.isfinite(r.test_ppl_per_word)
        assert r.parameters is not None and r.parameters > 0
        assert r.train_seconds is not None and r.train_seconds >= 0
        assert 0.0 <= r.pairs_accuracy <= 1.0
        assert (out / "models" / r.rung / "config.json").is_file()
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [row["rung"] for row in rows] == [r.rung for r in results]
    md = (out / "report.md").read_text()
    assert "| unigram |" in md and "ladder.png" in md


def test_bigram_beats_unigram_on_held_out_text(ladder):
    _, results = ladder
    ppl = {r.rung: r.test_ppl for r in results}
    assert ppl["bigram"] < ppl["unigram"]
    # the perplexity is no larger than the vocabulary a uniform guess would give
    assert ppl["unigram"] < ladder[0].tokenizer.vocab_size


def test_word_order_pairs_are_solved_by_the_ngrams(ladder):
    _, results = ladder
    acc = {r.rung: r.pairs_accuracy for r in results}
    assert acc["trigram"] == 1.0 and acc["unigram"] == 0.0  # unigram: equal bags of words tie


def test_ladder_cli_json_and_saved_models_work_with_eval(tmp_path, capsys):
    corpus = _corpus(tmp_path / "c.txt", n=120)
    rc = main(["ladder", "--data", str(corpus), "-o", str(tmp_path / "r"),
               "--rungs", "unigram,bigram", "--min-count", "1", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["rung"] for r in out["results"]] == ["unigram", "bigram"]
    # a rung's model directory is a normal model: surprisal works on it
    rc = main(["eval", "surprisal", str(tmp_path / "r" / "models" / "bigram"), "--data",
               str(corpus), "--words", "-o", str(tmp_path / "s.csv")])
    assert rc == 0
    with (tmp_path / "s.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["word"] == "the" and float(rows[0]["surprisal_bits"]) >= 0


def test_bad_rung_and_bad_split_are_one_sentence(tmp_path, capsys):
    corpus = _corpus(tmp_path / "c.txt", n=20)
    assert main(["ladder", "--data", str(corpus), "-o", str(tmp_path / "r"),
                 "--rungs", "unigram,septagram"]) == 2
    err = capsys.readouterr().err
    assert "septagram" in err and "Traceback" not in err
    assert main(["ladder", "--data", str(corpus), "-o", str(tmp_path / "r"),
                 "--split", "0.5,0.5"]) == 2
    assert "--split" in capsys.readouterr().err


def test_split_is_contiguous_by_lines():
    lines = [str(i) for i in range(10)]
    assert split_lines(lines, (0.8, 0.1, 0.1)) == (lines[:8], lines[8:9], lines[9:])


def test_rows_are_the_perplexity_evaluators_figures(ladder):
    """The ladder scores through chainrule.evaluation.perplexity: same numbers, every field."""
    from chainrule.models.base import load_model

    data, results = ladder
    for r in results:
        rep = perplexity(load_model(r.model_dir), data.tokenizer, data.test_lines)
        assert r.test_ppl == pytest.approx(rep.perplexity, rel=1e-9)
        assert r.test_ppl_excl_oov == pytest.approx(rep.perplexity_excl_oov, rel=1e-9, nan_ok=True)
        assert r.test_ppl_per_word == pytest.approx(rep.perplexity_per_word, rel=1e-9)
        assert r.test_bits_per_byte == pytest.approx(rep.bits_per_byte, rel=1e-9)
        assert (r.test_tokens, r.test_oov) == (rep.tokens, rep.oov)


def _hand_counted_bigram(train: list[list[str]], test: list[str], vocab: set[str]) -> float:
    """MLE bigram perplexity of ``test`` scored as one stream, from hand counts of ``train``
    laid end to end as one stream."""
    from collections import Counter
    from itertools import pairwise

    def m(w: str) -> str:
        return w if w in vocab else "<unk>"

    stream = ["<s>", *[m(w) for s in train for w in s], "</s>"]
    big = Counter(pairwise(stream))
    ctx = Counter(stream[:-1])
    seq = ["<s>", *[m(w) for w in test], "</s>"]
    lp = sum(math.log(big[a, b] / ctx[a]) for a, b in pairwise(seq))
    return math.exp(-lp / (len(seq) - 1))


def test_bengio_protocol_whole_corpus_vocabulary_and_one_stream(tmp_path):
    """vocab_from=all counts words in train+valid+test; stream=True frames each part as ONE
    sequence; checked against hand counts (an order-2 MLE through the n-gram family)."""
    train = ["a b a c", "b a d", "a b a b"]
    test = ["e b a", "a e"]  # e: 2 in test only; d: once in train
    (tmp_path / "train.txt").write_text("\n".join(train) + "\n")
    (tmp_path / "test.txt").write_text("\n".join(test) + "\n")
    cfg = LadderConfig(data=(str(tmp_path / "train.txt"),), test=(str(tmp_path / "test.txt"),),
                       output=str(tmp_path / "r"), rungs=("bigram",), word_mode="whitespace",
                       min_count=2, vocab_from="all", stream=True)
    data = prepare(cfg)
    words = set(data.tokenizer.vocab) - {"<s>", "</s>", "<unk>", "<pad>"}
    assert words == {"a", "b", "e"}  # e counts twice in the whole corpus, d and c once
    assert len(data.train_seqs) == 1 and data.test_tokens == 5 + 1  # one </s> for the stream
    assert data.test_oov == 0
    train_only = prepare(LadderConfig(**{**cfg.__dict__, "vocab_from": "train",
                                         "output": str(tmp_path / "r2")}))
    assert "e" not in train_only.tokenizer.vocab and train_only.test_oov == 2

    from chainrule.models.ngram import NgramModel

    tok = data.tokenizer
    mle = NgramModel(2, "mle", vocab_size=tok.vocab_size, bos_id=tok.bos_id, eos_id=tok.eos_id,
                     unk_id=tok.unk_id, pad_id=tok.pad_id).fit(data.train_seqs)
    # the stream's bigram "e b" is unseen: MLE gives it 0, so score a seen stream instead
    seen = ["a b", "a b"]
    ppl = perplexity(mle, tok, data.eval_lines(seen)).perplexity
    assert ppl == pytest.approx(_hand_counted_bigram([s.split() for s in train],
                                                     " ".join(seen).split(), words))


def test_long_stream_scores_like_one_pass(tmp_path):
    """A stream longer than the scoring window gives the same log-probs as one full pass."""
    from chainrule.models.ngram import NgramModel
    from chainrule.models.scoring import SCORE_WINDOW, score_sequences

    rng = np.random.default_rng(0)
    train = [[0, *rng.integers(3, 20, size=30).tolist(), 1] for _ in range(50)]
    m = NgramModel(3, "mkn", vocab_size=20, bos_id=0, eos_id=1, unk_id=2).fit(train)
    seq = [0, *rng.integers(3, 20, size=3 * SCORE_WINDOW + 17).tolist(), 1]
    [windowed] = score_sequences(m, [seq])
    whole = m.token_logprobs(np.array([seq]))[0].double().numpy()
    np.testing.assert_allclose(windowed, whole, atol=1e-6)


def test_time_budget_is_kept(tmp_path):
    """A timed neural rung stops near its budget (one chunk of slack) and decays its LR."""
    from chainrule.evaluation.ladder_rungs import PROBE_STEPS, TRY_STEPS

    corpus = _corpus(tmp_path / "c.txt", n=200)
    budget = 5.0
    cfg = LadderConfig(data=(str(corpus),), output=str(tmp_path / "r"), rungs=("gpt",),
                       min_count=1, neural_iters=100_000, neural_seconds=budget,
                       neural_overrides={"gpt": {k: v for k, v in TINY["gpt"].items()}},
                       sample_tokens=4)
    _, [r] = run_ladder(cfg)
    assert r.status == "ok", r.reason
    assert r.steps >= PROBE_STEPS
    assert r.train_seconds < budget + 8.0  # probe start-up + one chunk of slack on a busy CPU
    assert r.tokens_seen == r.steps * 4 * 8
    rows = [json.loads(x) for x in (tmp_path / "r" / "models" / "gpt" / "metrics.jsonl")
            .read_text().splitlines()]
    lrs = [row["lr"] for row in rows if "lr" in row]
    if r.steps > PROBE_STEPS + TRY_STEPS:  # (a crowded machine may spend the budget probing)
        assert lrs[-1] < 0.5 * max(lrs)  # the schedule was re-planned to end with the budget


def test_ladder_cli_bengio_options(tmp_path, capsys):
    corpus = _corpus(tmp_path / "c.txt", n=120)
    rc = main(["ladder", "--data", str(corpus), "-o", str(tmp_path / "r"), "--rungs", "bigram",
               "--min-count", "1", "--vocab-from", "all", "--stream", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    [row] = out["results"]
    assert row["test_tokens"] == sum(len(x.split()) for x in
                                     split_lines(corpus.read_text().split("\n")[:-2],
                                                 (0.8, 0.1, 0.1))[2]) + 1
    assert main(["ladder", "--data", str(corpus), "-o", str(tmp_path / "r"),
                 "--vocab-from", "everything"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_pretrained_rung_is_scored_with_its_own_tokenizer_and_marked(tmp_path):
    """A model trained elsewhere (here: a char-level unigram) joins the table; its per-word and
    per-byte figures are what compare, and nothing is trained or rewritten in its directory."""
    from chainrule.evaluation.textscore import load_model_and_tokenizer
    from chainrule.models.reference import UnigramModel
    from chainrule.tokenizers import train_tokenizer

    corpus = _corpus(tmp_path / "c.txt", n=120)
    lines = [ln for ln in corpus.read_text().splitlines() if ln]
    tok = train_tokenizer("char", lines)
    elsewhere = tmp_path / "elsewhere"
    seqs = [[tok.bos_id, *tok.encode(x), tok.eos_id] for x in lines[:50]]
    UnigramModel(tok.vocab_size, tok.bos_id, tok.eos_id).fit(seqs).save(elsewhere)
    tok.save(elsewhere / "tokenizer.json")
    before = (elsewhere / "model.safetensors").read_bytes()

    cfg = LadderConfig(data=(str(corpus),), output=str(tmp_path / "r"),
                       rungs=("unigram", "pretrained"), pretrained=str(elsewhere), min_count=1,
                       sample_tokens=3)
    data, (word_uni, pre) = run_ladder(cfg)
    model, its_tok = load_model_and_tokenizer(elsewhere)
    expected = perplexity(model, its_tok, data.eval_lines(data.test_lines))
    assert pre.test_ppl_per_word == pytest.approx(expected.perplexity_per_word)
    assert pre.test_bits_per_byte == pytest.approx(expected.bits_per_byte)
    assert pre.test_tokens != word_uni.test_tokens  # characters, not words
    assert "not on this corpus" in pre.notes and pre.steps is None
    assert (elsewhere / "model.safetensors").read_bytes() == before
    from chainrule.evaluation.ladder_report import table_rows

    assert table_rows([word_uni, pre])[1]["status"] == "ok (pretrained elsewhere)"
    with pytest.raises(Exception, match="--pretrained"):
        LadderConfig(data=(str(corpus),), output=str(tmp_path / "x"), rungs=("pretrained",))


def test_a_note_several_rungs_share_is_stated_once():
    from chainrule.evaluation.ladder_config import RungResult
    from chainrule.evaluation.ladder_report import _grouped_notes

    fallback = "could not estimate Kneser-Ney discounts for 1-grams (x); using the fallback"
    rungs = [RungResult(name) for name in ("unigram", "bigram", "kn5", "gpt")]
    rungs[0].notes = "could not estimate Kneser-Ney discounts for 1-grams (y); using the fallback"
    rungs[1].notes = rungs[2].notes = fallback
    grouped = _grouped_notes(rungs)
    assert grouped == {rungs[0].notes: ["unigram"], fallback: ["bigram", "kn5"]}
