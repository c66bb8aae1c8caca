"""n-gram family: hand-worked estimates, KN properties, pruning, counting in chunks, bad input."""

from __future__ import annotations

import math
import random
import tracemalloc
import warnings

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings

from chainrule.cli import main
from chainrule.errors import ConfigError
from chainrule.models.ngram import NgramModel
from chainrule.models.ngram.counting import ChunkedCounter, count_ngrams, pack, unpack
from chainrule.models.ngram.estimate import DiscountWarning, mkn_discounts
from chainrule.models.ngram.lecture import bigram_table, format_table
from chainrule.models.ngram.train import train_ngram

BOS, EOS = 0, 1


def fit(seqs, order, smoothing, V, **kw):
    framed = [[BOS, *s, EOS] for s in seqs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscountWarning)
        return NgramModel(order, smoothing, vocab_size=V, bos_id=BOS, eos_id=EOS, **kw).fit(framed)


def p(model, context, word):
    """P(word | context) from the model's full distribution."""
    lp, _ = model.start(torch.tensor([[BOS, *context]]))
    return math.exp(lp[0, word].item())


# -- hand-worked examples ------------------------------------------------------------------
CORPUS = [[2, 3, 4], [2, 3], [3, 2, 4]]  # "a b c", "a b", "b a c" over V = 5 ids


def test_mle_bigram_is_relative_frequency():
    m = fit(CORPUS, 2, "mle", 5)
    # c(a) = 3 (each a is followed by something); c(a b) = 2, c(a c) = 1
    assert p(m, [2], 3) == pytest.approx(2 / 3, abs=1e-6)
    assert p(m, [2], 4) == pytest.approx(1 / 3, abs=1e-6)
    assert p(m, [2], 2) == 0.0  # unseen bigram after a seen context: zero
    assert p(m, [], 2) == pytest.approx(2 / 3, abs=1e-6)  # after <s>: a twice, b once
    # unigram MLE: 11 targets (8 words + 3 </s>): P(c) = 2/11
    m1 = fit(CORPUS, 1, "mle", 5)
    assert p(m1, [2], 4) == pytest.approx(2 / 11, abs=1e-6)


def test_addk_matches_the_formula():
    k, V = 0.5, 5
    m = fit(CORPUS, 2, "addk", V, k=k)
    outcomes = V - 1  # <s> is never predicted
    assert p(m, [2], 3) == pytest.approx((2 + k) / (3 + k * outcomes), abs=1e-6)
    m1 = fit(CORPUS, 1, "addk", V, k=1.0)  # Laplace on unigrams: (c + 1) / (N + V')
    assert p(m1, [], 3) == pytest.approx((3 + 1) / (11 + outcomes), abs=1e-6)
    assert p(m1, [], BOS) == 0.0


def test_mkn_discount_formula_hand_example():
    d = mkn_discounts([10, 4, 2, 1])
    y = 10 / 18
    assert d == pytest.approx((1 - 2 * y * 4 / 10, 2 - 3 * y * 2 / 4, 3 - 4 * y * 1 / 2), abs=1e-6)
    assert mkn_discounts([10, 0, 2, 1]) is None
    assert mkn_discounts([1, 1, 1, 100]) is None  # D3 out of range


def test_tiny_corpus_warns_and_uses_fallback_discounts():
    with pytest.warns(DiscountWarning, match="fallback"):
        m = NgramModel(3, "mkn", vocab_size=5).fit([[BOS, *s, EOS] for s in CORPUS])
    assert m.discounts_[0] == [0.5, 1.0, 1.5]


# -- properties ----------------------------------------------------------------------------
corpora = st.lists(st.lists(st.integers(2, 7), min_size=0, max_size=8), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None)
@given(corpora, st.integers(1, 4), st.sampled_from(["mle", "addk", "kn", "mkn"]))
def test_every_distribution_sums_to_one(seqs, order, smoothing):
    m = fit(seqs, order, smoothing, 8)
    x = torch.tensor([[BOS, 2, 3, 4, 5, 6, 7, 2]])
    lp = m.logprobs(x)
    assert torch.logsumexp(lp.double(), -1).abs().max() < 1e-5
    assert torch.isneginf(lp[..., BOS]).all()
    # scoring without (B, T, V) agrees with the full distributions
    gathered = lp[0, :-1].gather(1, x[0, 1:, None]).squeeze(1)
    fast = m.token_logprobs(x)[0]
    both_inf = torch.isneginf(gathered) & torch.isneginf(fast)
    assert torch.allclose(gathered[~both_inf], fast[~both_inf], atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(corpora, st.integers(1, 4), st.integers(1, 5))
def test_chunked_counting_equals_one_chunk(seqs, order, chunk):
    a = count_ngrams(seqs, order, BOS, EOS, chunk_tokens=10**9)
    b = count_ngrams(seqs, order, BOS, EOS, chunk_tokens=chunk)
    assert np.array_equal(a.rows, b.rows) and np.array_equal(a.counts, b.counts)
    assert a.counts.sum() == sum(len(s) + 1 for s in seqs)


@given(st.lists(st.lists(st.integers(0, 2**21 - 1), min_size=5, max_size=5), min_size=1))
def test_pack_round_trip(rows):
    arr = np.asarray(rows, dtype=np.int32)
    assert np.array_equal(unpack(pack(arr), 5), arr)


def test_kn_continuation_counts_drive_the_unigram():
    # "francisco" (3) is frequent but only ever follows "san" (2); 5 is rarer but follows
    # three different words: MLE prefers 3, Kneser-Ney's lower order prefers 5
    seqs = [[2, 3]] * 20 + [[4, 5], [5, 4], [4, 6], [6, 4], [5, 6], [6, 5]]
    mle = fit(seqs, 1, "mle", 7)
    kn = fit(seqs, 2, "kn", 7)
    assert p(mle, [], 3) > p(mle, [], 5)
    assert kn.tables.prob[0][3] < kn.tables.prob[0][5]


def test_pruning_keeps_the_model_normalised_and_smaller(tmp_path):
    rng = random.Random(0)
    seqs = [[rng.randint(2, 9) for _ in range(rng.randint(1, 9))] for _ in range(300)]
    full = fit(seqs, 3, "mkn", 10)
    pruned = fit(seqs, 3, "mkn", 10, prune=[0, 1, 1])
    assert pruned.tables.counts()[2] < full.tables.counts()[2]
    lp = pruned.logprobs(torch.tensor([[BOS, 2, 3, 4, 5, 9, 9]]))
    assert torch.logsumexp(lp.double(), -1).abs().max() < 1e-5
    with pytest.raises(ConfigError, match="must not decrease"):
        fit(seqs, 3, "mkn", 10, prune=[0, 2, 1])


def test_counting_memory_stays_bounded_with_many_chunks():
    # 400k tokens streamed from a generator: the counter holds the distinct n-grams and one
    # chunk, never the corpus (which alone would take 400k * 4 bytes as int32 ids)
    rng = np.random.default_rng(0)

    def corpus():
        for _ in range(40_000):
            yield rng.integers(2, 40, size=9)

    tracemalloc.start()
    counter = ChunkedCounter(2, BOS, EOS, chunk_tokens=5_000)
    counter.add_many(corpus())
    counts = counter.finish()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert counter.chunks >= 70
    assert counts.tokens == 400_000
    assert peak < 1_600_000 / 2, f"peak {peak} bytes: counting kept the corpus in memory"


# -- lecture table -------------------------------------------------------------------------
LECTURE_WORDS = ["i", "want", "to", "eat", "chinese", "food", "lunch", "spend"]
LECTURE_COUNTS = [
    [5, 827, 0, 9, 0, 0, 0, 2], [2, 0, 608, 1, 6, 6, 5, 1], [2, 0, 4, 686, 2, 0, 6, 211],
    [0, 0, 2, 0, 16, 2, 42, 0], [1, 0, 0, 0, 0, 82, 1, 0], [15, 0, 15, 0, 1, 4, 0, 0],
    [2, 0, 0, 0, 0, 1, 0, 0], [1, 0, 1, 0, 0, 0, 0, 0],
]
UNIGRAMS = [2533, 927, 2417, 746, 158, 1093, 341, 278]
LECTURE_PROBS = [
    [0.002, 0.33, 0, 0.0036, 0, 0, 0, 0.00079],
    [0.0022, 0, 0.66, 0.0011, 0.0065, 0.0065, 0.0054, 0.0011],
    [0.00083, 0, 0.0017, 0.28, 0.00083, 0, 0.0025, 0.087],
    [0, 0, 0.0027, 0, 0.021, 0.0027, 0.056, 0],
    [0.0063, 0, 0, 0, 0, 0.52, 0.0063, 0],
    [0.014, 0, 0.014, 0, 0.00092, 0.0037, 0, 0],
    [0.0059, 0, 0, 0, 0, 0.0029, 0, 0],
    [0.0036, 0, 0.0036, 0, 0, 0, 0, 0],
]


def lecture_corpus() -> list[str]:
    """Sentences whose bigram counts are the slide's and whose word counts are J&M's unigrams."""
    left = {(i, j): c for i, row in enumerate(LECTURE_COUNTS) for j, c in enumerate(row) if c}
    out_left = [sum(c for (i, _), c in left.items() if i == v) for v in range(8)]
    in_left = [sum(c for (_, j), c in left.items() if j == v) for v in range(8)]
    sentences, seen = [], [0] * 8
    while left:
        surplus = [v for v in range(8) if out_left[v] > in_left[v]]
        cur = surplus[0] if surplus else next(i for (i, _) in left)
        path = [cur]
        while out_left[cur]:
            nxt = next(j for (i, j) in left if i == cur)
            left[(cur, nxt)] -= 1
            if not left[(cur, nxt)]:
                del left[(cur, nxt)]
            out_left[cur] -= 1
            in_left[nxt] -= 1
            path.append(nxt)
            cur = nxt
        for v in path:
            seen[v] += 1
        sentences.append(" ".join(LECTURE_WORDS[v] for v in path))
    for v in range(8):  # every occurrence is followed by a token, so c(v) = occurrences
        assert seen[v] <= UNIGRAMS[v]
        sentences += [LECTURE_WORDS[v]] * (UNIGRAMS[v] - seen[v])
    return sentences


def test_lecture_bigram_tables(tmp_path):
    corpus = tmp_path / "restaurant.txt"
    corpus.write_text("\n".join(lecture_corpus()) + "\n")
    res = train_ngram(corpus, order=2, smoothing="mle")
    counts = bigram_table(res.model, res.tokenizer, LECTURE_WORDS)
    assert counts.values.tolist() == LECTURE_COUNTS
    probs = bigram_table(res.model, res.tokenizer, LECTURE_WORDS, probabilities=True).values
    expected = np.array(LECTURE_PROBS)
    assert np.all((expected == 0) == (probs == 0))
    nz = expected > 0
    # the slide shows two significant digits: within half a unit of the last digit shown
    # (plus 10%: J&M print 1/1093 = 0.000915 as 0.00092)
    unit = 10.0 ** (np.floor(np.log10(expected[nz])) - 1)
    assert np.all(np.abs(probs[nz] - expected[nz]) <= 0.55 * unit)
    text = format_table(bigram_table(res.model, res.tokenizer, LECTURE_WORDS, probabilities=True))
    rows = [line.split() for line in text.splitlines()[1:9]]
    assert rows[0][0] == "i" and abs(float(rows[0][1]) - probs[0, 0]) < 5e-6
    decimals = {len(cell.rstrip("*").split(".")[1]) for row in rows for cell in row[1:]}
    assert decimals == {5}  # one format: the smallest probability (0.00092) shows 2 digits
    assert "*" not in text  # maximum likelihood does not back off


# -- bad input through the CLI -------------------------------------------------------------
@pytest.fixture
def corpus_file(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("the cat sat\nthe dog sat\na cat ran\n")
    return f


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--order", "0"], "order"),
        (["--smoothing", "mkn", "--k", "2"], "--k applies"),
        (["--prune", "0,x"], "--prune"),
        (["--order", "13"], "fewer than the order"),
    ],
)
def test_bad_training_options(tmp_path, corpus_file, capsys, extra, message):
    code = main(["train", "--family", "ngram", str(corpus_file), "-o", str(tmp_path / "m"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_bad_corpora(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\x00\x01\x02abc")
    for path in (tmp_path / "missing.txt", empty, binary):
        code = main(["train", "--family", "ngram", str(path), "-o", str(tmp_path / "m")])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_unknown_smoothing_is_refused():
    with pytest.raises(ConfigError, match="unknown smoothing"):
        NgramModel(3, "witten-bell", vocab_size=5)


def test_tiny_corpus_cli_warns_and_trains(tmp_path, corpus_file, capsys):
    out = tmp_path / "m"
    assert main(["train", "--family", "ngram", "--order", "3", str(corpus_file), "-o", str(out)]) == 0
    assert "fallback discounts" in capsys.readouterr().err
    assert (out / "model.arpa").exists() and (out / "tokenizer.json").exists()


def test_other_family_directory_is_refused(tmp_path, capsys):
    from chainrule.models.reference import UniformModel

    UniformModel(5).save(tmp_path / "u")
    code = main(["ngram", "export-arpa", str(tmp_path / "u"), "-o", str(tmp_path / "x.arpa")])
    err = capsys.readouterr().err
    assert code == 2 and "not a 'ngram' model" in err


def test_closed_vocabulary_maps_other_words_to_unk(tmp_path, corpus_file):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("the\ncat\nsat\n")
    res = train_ngram(corpus_file, order=2, smoothing="addk", vocab=vocab)
    tok = res.tokenizer
    assert tok.encode("the dog") == [tok.token_to_id("the"), tok.unk_id]
    # <unk> was counted (dog, a, ran): it is more likely than an unseen in-vocabulary word
    m = res.model
    lp, _ = m.start(torch.tensor([[tok.bos_id]]))
    assert lp[0, tok.unk_id] > lp[0, tok.token_to_id("sat")]


def test_ngram_table_marks_backed_off_entries_and_writes_csv(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat\nthe dog sat\na cat ran\n" * 5)
    out = tmp_path / "m"
    assert main(["train", "--family", "ngram", "--order", "2", str(corpus), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["ngram", "table", str(out), "--words", "the", "cat", "--probabilities"]) == 0
    lines = capsys.readouterr().out.splitlines()
    cells = {(r[0], w): c for r in (line.split() for line in lines[1:3])
             for w, c in zip(["the", "cat"], r[1:])}
    assert "*" not in cells[("the", "cat")]  # seen: its own probability
    assert cells[("the", "the")].endswith("*")  # "the the" never occurs: backed off
    assert "backing off" in lines[-1]
    assert main(["ngram", "table", str(out), "--words", "the", "cat", "--probabilities",
                 "--csv"]) == 0
    import csv
    import io

    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["", "the", "cat"] and float(rows[1][2]) == pytest.approx(
        float(cells[("the", "cat")]), abs=1e-3)
