"""The lecture's readable references agree with the fast paths they explain.

Attention written out against ``CausalSelfAttention`` and SDPA; the Elman and LSTM cells against
``torch.nn.RNN`` / ``torch.nn.LSTM`` and the project's recurrent models; n-gram counts and
MLE / add-k / Kneser-Ney with dictionaries against ``NgramModel``; the BPE loop against the
compiled trainer. Every comparison is of computed numbers: nothing is hard-coded except the
lecture's own BPE merges.
"""

from __future__ import annotations

import math
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from chainrule.models.layers import CausalSelfAttention
from chainrule.models.lecture_attention import (
    attention,
    attention_weights,
    causal_mask,
    lecture_weights,
    multi_head_attention,
)
from chainrule.models.lecture_cells import (
    elman_cell,
    elman_layers,
    lstm_cell,
    lstm_layers,
    run_elman,
    run_lstm,
)
from chainrule.models.neural import build_neural_model
from chainrule.models.ngram import NgramModel
from chainrule.models.ngram import counting as fast_counting
from chainrule.models.ngram.estimate import DiscountWarning
from chainrule.models.ngram.lecture_counts import (
    MLE,
    AddK,
    KneserNey,
    count_all_orders,
    count_ngrams,
)
from chainrule.tokenizers import BPETokenizer
from chainrule.tokenizers.bpe_lecture import learn_bpe, word_frequencies

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BROWN = SHARED / "brown" / "train.txt"
SHAKESPEARE = (
    Path(__file__).resolve().parents[1] / "src" / "chainrule" / "resources" / "tinyshakespeare.txt"
)


def _rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


# -- attention -----------------------------------------------------------------------------------
@pytest.mark.parametrize("masking", ["none", "causal", "random"])
def test_attention_equals_sdpa(masking):
    B, nh, T, d_k, d_v = 2, 3, 7, 5, 4
    Q, K, V = _rand(B, nh, T, d_k, seed=1), _rand(B, nh, T, d_k, seed=2), _rand(B, nh, T, d_v, seed=3)
    mask = None
    if masking == "causal":
        mask = causal_mask(T)
    elif masking == "random":
        g = torch.Generator().manual_seed(4)
        mask = (torch.rand(B, nh, T, T, generator=g) < 0.5) | torch.eye(T, dtype=torch.bool)
    ours = attention(Q, K, V, mask)
    theirs = F.scaled_dot_product_attention(Q, K, V, attn_mask=mask)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)
    alpha = attention_weights(Q, K, mask)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(B, nh, T, dtype=torch.float64))
    if mask is not None:
        assert (alpha[~mask.expand_as(alpha)] == 0).all()


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("T", "n_embd", "n_head"), [(1, 4, 1), (6, 12, 3), (9, 16, 4)])
def test_multi_head_attention_equals_causal_self_attention(T, n_embd, n_head, bias):
    torch.manual_seed(T * 100 + n_embd)
    module = CausalSelfAttention(n_embd, n_head, dropout=0.0, bias=bias).double().eval()
    if bias:  # nn.Linear draws its biases; make sure they are far from zero
        for b in (module.c_attn.bias, module.c_proj.bias):
            nn.init.normal_(b)
    x = _rand(2, T, n_embd, seed=T)
    with torch.no_grad():
        fast = module(x)
        ours = multi_head_attention(x, n_head=n_head, **lecture_weights(module))
    torch.testing.assert_close(ours, fast, rtol=0, atol=1e-10)
    if T > 1:  # the mask matters: attending to the future gives other numbers
        with torch.no_grad():
            full = multi_head_attention(x, n_head=n_head, causal=False, **lecture_weights(module))
        assert not torch.allclose(full[:, :-1], fast[:, :-1], atol=1e-6)


def test_multi_head_attention_is_causal():
    torch.manual_seed(0)
    W = [_rand(8, 8, seed=s) / 3 for s in range(4)]
    x = _rand(1, 5, 8, seed=9)
    y = multi_head_attention(x, *W, n_head=2)
    x2 = x.clone()
    x2[:, 3:] += 1.0  # change the future
    y2 = multi_head_attention(x2, *W, n_head=2)
    torch.testing.assert_close(y[:, :3], y2[:, :3], rtol=0, atol=1e-12)
    assert not torch.allclose(y[:, 3:], y2[:, 3:])


# -- recurrent cells -----------------------------------------------------------------------------
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_elman_cells_equal_torch_rnn(nonlinearity, bias):
    torch.manual_seed(1)
    rnn = nn.RNN(5, 6, num_layers=2, nonlinearity=nonlinearity, bias=bias,
                 batch_first=True).double()
    x, h0 = _rand(3, 8, 5, seed=1), _rand(2, 3, 6, seed=2)
    with torch.no_grad():
        fast_out, fast_h = rnn(x, h0)
        act = torch.tanh if nonlinearity == "tanh" else torch.relu
        out, h = run_elman(x, elman_layers(rnn), h0, nonlinearity=act)
    torch.testing.assert_close(out, fast_out, rtol=0, atol=1e-10)
    torch.testing.assert_close(h, fast_h, rtol=0, atol=1e-10)


def test_one_elman_step_is_the_slide():
    U, W, b = _rand(4, 3, seed=1), _rand(4, 4, seed=2), _rand(4, seed=3)
    i_t, h_prev = _rand(3, seed=4), _rand(4, seed=5)
    expected = torch.tanh(U @ i_t + W @ h_prev + b)  # column vectors, as on the slide
    torch.testing.assert_close(elman_cell(i_t, h_prev, U, W, b), expected)


def test_lstm_cells_equal_torch_lstm():
    torch.manual_seed(2)
    lstm = nn.LSTM(5, 6, num_layers=3, batch_first=True).double()
    x = _rand(2, 7, 5, seed=1)
    h0, c0 = _rand(3, 2, 6, seed=2), _rand(3, 2, 6, seed=3)
    with torch.no_grad():
        fast_out, (fast_h, fast_c) = lstm(x, (h0, c0))
        out, (h, c) = run_lstm(x, lstm_layers(lstm), (h0, c0))
    torch.testing.assert_close(out, fast_out, rtol=0, atol=1e-10)
    torch.testing.assert_close(h, fast_h, rtol=0, atol=1e-10)
    torch.testing.assert_close(c, fast_c, rtol=0, atol=1e-10)
    # one step by hand through torch's own cell
    cell = nn.LSTMCell(5, 6).double()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).data.copy_(getattr(lstm, f"{name}_l0"))
    with torch.no_grad():
        torch.testing.assert_close(lstm_cell(x[:, 0], (h0[0], c0[0]), lstm_layers(lstm)[0]),
                                   cell(x[:, 0], (h0[0], c0[0])), rtol=0, atol=1e-10)


@pytest.mark.parametrize("family", ["rnn", "lstm"])
@pytest.mark.parametrize("n_layer", [1, 2])
def test_cells_reproduce_the_projects_recurrent_models(family, n_layer):
    torch.manual_seed(n_layer)
    extra = {"tie_weights": True} if family == "lstm" else {}  # n_hidden != n_embd: a projection
    model = build_neural_model(family, vocab_size=23, n_embd=10, n_hidden=14, n_layer=n_layer,
                               dropout=0.0, **extra).double().eval()
    idx = torch.randint(0, 23, (3, 11), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        fast, state = model.hidden(idx)
        x = model.embedding(idx)
        if family == "rnn":
            ours, h = run_elman(x, elman_layers(model.cell))
            torch.testing.assert_close(h, state, rtol=0, atol=1e-10)
        else:
            ours, (h, c) = run_lstm(x, lstm_layers(model.cell))
            torch.testing.assert_close(h, state[0], rtol=0, atol=1e-10)
            torch.testing.assert_close(c, state[1], rtol=0, atol=1e-10)
        if model.proj is not None:
            ours = model.proj(ours)
    torch.testing.assert_close(ours, fast, rtol=0, atol=1e-10)


# -- n-grams -------------------------------------------------------------------------------------
BOS, EOS, UNK = 0, 1, 2  # UNK never occurs in training: it only gets smoothed mass
# "a b c", "a b", "b a c", ... over ids 3..7, with repeats so that counts reach 3 and more
HANDMADE = [[3, 4, 5], [3, 4], [4, 3, 5], [3, 4, 5, 6], [6, 6, 3], [], [7, 3, 4, 5],
            [3, 4, 5], [5, 6, 7, 3, 4]]
HELD_OUT = [[5, 5, 4, 7, 7], [UNK, 3, 4, UNK, 6], [7]]


def _random_corpus(seed, n=25, V=10):
    rng = random.Random(seed)
    return [[rng.randrange(3, V) for _ in range(rng.randrange(0, 7))] for _ in range(n)]


def _fit(seqs, order, smoothing, V, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscountWarning)
        model = NgramModel(order, smoothing, vocab_size=V, bos_id=BOS, eos_id=EOS, **kw)
        return model.fit([[BOS, *s, EOS] for s in seqs])


def _positions(model, sentences):
    """(context, model's natural-log distribution (V,)) after every prefix of every sentence."""
    for s in sentences:
        seq = [BOS, *s, EOS]
        lp = model.logprobs(torch.tensor([seq]))[0].double().numpy()
        for t in range(len(seq) - 1):
            yield seq[: t + 1], seq[t + 1], lp[t]


def _as_log_array(dist: dict, V: int) -> np.ndarray:
    p = np.zeros(V)
    for w, pw in dist.items():
        p[w] = pw
    with np.errstate(divide="ignore"):
        return np.log(p)


def _assert_same_distributions(model, reference, sentences, V):
    n = 0
    for context, _, lp in _positions(model, sentences):
        ours = _as_log_array(reference.distribution(context), V)
        assert np.array_equal(np.isneginf(ours), np.isneginf(lp)), context
        finite = np.isfinite(lp)
        np.testing.assert_allclose(ours[finite], lp[finite], rtol=0, atol=1e-5)
        n += 1
    assert n > 0


def test_dictionary_windows_equal_the_vectorised_counts():
    for seqs in (HANDMADE, _random_corpus(1), _random_corpus(2, V=5)):
        for order in (1, 2, 3, 4):
            fast = fast_counting.count_ngrams(seqs, order, BOS, EOS)
            as_dict = {tuple(int(x) for x in row): int(c) for row, c in zip(fast.rows, fast.counts)}
            assert dict(count_ngrams(seqs, order, BOS, EOS)) == as_dict


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_dictionary_counts_equal_the_models_counts(order):
    V = 10
    for seqs in (HANDMADE, _random_corpus(order)):
        tables = _fit(seqs, order, "mkn", V).tables
        counts = count_all_orders(seqs, order, BOS, EOS)
        assert sorted(counts) == list(range(1, order + 1))
        for k in range(1, order + 1):
            stored = {tuple(int(x) for x in row): int(c)
                      for row, c in zip(tables.words(k), tables.raw_counts[k - 1]) if c > 0}
            assert dict(counts[k]) == stored, k


@pytest.mark.parametrize("order", [1, 2, 3])
def test_mle_is_relative_frequency_like_the_model(order):
    V = 8
    model = _fit(HANDMADE, order, "mle", V)
    reference = MLE(count_all_orders(HANDMADE, order, BOS, EOS))
    _assert_same_distributions(model, reference, HANDMADE + HELD_OUT, V)
    assert reference.prob([BOS, 3], 4) == pytest.approx(
        math.exp(model.logprobs(torch.tensor([[BOS, 3]]))[0, 1, 4].item()), abs=1e-6)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_add_k_matches_the_model_on_seen_ngrams(order):
    V, k = 8, 0.5
    model = _fit(HANDMADE, order, "addk", V, k=k)
    reference = AddK(count_all_orders(HANDMADE, order, BOS, EOS), range(1, V), k)
    for context, target, lp in _positions(model, HANDMADE):  # every n-gram seen in training
        assert math.log(reference.prob(context, target)) == pytest.approx(lp[target], abs=1e-5)
        if order == 1:  # unigrams: the formula holds for every word, seen or not
            ours = np.log([reference.prob(context, w) for w in range(1, V)])
            np.testing.assert_allclose(ours, lp[1:], rtol=0, atol=1e-5)


@pytest.mark.parametrize("modified", [True, False])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_equals_the_model_with_given_discounts(order, modified):
    V = 10
    given = [(0.5, 1.0, 1.5) if modified else (0.75,)] * order
    for seqs in (HANDMADE, _random_corpus(10 + order)):
        model = _fit(seqs, order, "mkn" if modified else "kn", V, discounts=given)
        reference = KneserNey(count_all_orders(seqs, order, BOS, EOS), range(V),
                              discounts=given, modified=modified, bos=BOS)
        _assert_same_distributions(model, reference, seqs + HELD_OUT, V)


def test_kneser_ney_discounts_matter():
    """Sanity: another discount gives other numbers, so the comparisons above can fail."""
    counts = count_all_orders(HANDMADE, 3, BOS, EOS)
    a = KneserNey(counts, range(10), discounts=[(0.5, 1.0, 1.5)] * 3, bos=BOS)
    b = KneserNey(counts, range(10), discounts=[(0.5, 1.0, 1.4)] * 3, bos=BOS)
    assert a.prob([BOS, 3, 4], 5) != pytest.approx(b.prob([BOS, 3, 4], 5), abs=1e-6)


@pytest.fixture(scope="module")
def brown_ids():
    if not BROWN.exists():
        pytest.skip("../shared/data/brown is absent")
    with BROWN.open(encoding="utf-8") as f:
        lines = [next(f) for _ in range(100)]
    ids = {"<s>": BOS, "</s>": EOS, "<unk>": UNK}
    sentences = [[ids.setdefault(w, len(ids)) for w in line.split()] for line in lines]
    return sentences, len(ids)


@pytest.mark.shared_data
@pytest.mark.parametrize(("order", "smoothing"), [(3, "mkn"), (2, "kn"), (3, "mle")])
def test_dictionaries_equal_the_model_on_brown(brown_ids, order, smoothing):
    seqs, V = brown_ids
    train, held_out = seqs[:80], seqs[80:]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiscountWarning)  # the discounts are estimated here
        model = _fit(train, order, smoothing, V)
    counts = count_all_orders(train, order, BOS, EOS)
    if smoothing == "mle":
        reference = MLE(counts)
    else:
        reference = KneserNey(counts, range(V), modified=smoothing == "mkn", bos=BOS)
        estimated = [reference.D[k][: len(d)] for k, d in enumerate(model.discounts_, 1)]
        np.testing.assert_allclose(estimated, model.discounts_, rtol=1e-6)
    _assert_same_distributions(model, reference, train[:40] + held_out, V)


# -- BPE -----------------------------------------------------------------------------------------
LECTURE = "low " * 5 + "lowest " * 2 + "newer " * 6 + "wider " * 3 + "new " * 2
LECTURE_MERGES = [("e", "r"), ("er", "_"), ("n", "e"), ("ne", "w"),
                  ("l", "o"), ("lo", "w"), ("new", "er_"), ("low", "_")]


def test_learn_bpe_gives_the_lectures_first_eight_merges():
    assert learn_bpe(LECTURE, 8) == LECTURE_MERGES
    table = {"low": 5, "lowest": 2, "newer": 6, "wider": 3, "new": 2}  # the slide's corpus
    assert learn_bpe(table, 8) == LECTURE_MERGES
    assert word_frequencies(table)[("n", "e", "w", "e", "r", "_")] == 6


def test_learn_bpe_equals_the_trainer_until_it_stops():
    # with room for 100 merges, both stop when the best pair occurs once (min_count 2)
    tok = BPETokenizer.train([LECTURE], vocab_size=100)
    assert learn_bpe(LECTURE, 100) == tok.merges
    assert tok.merges[:8] == LECTURE_MERGES


def test_learn_bpe_equals_the_trainer_on_shakespeare():
    lines = SHAKESPEARE.read_text(encoding="utf-8").splitlines()[:2000]
    text = "\n".join(lines)
    tok = BPETokenizer.train([text], vocab_size=len(_base_vocab(text)) + 300)
    assert len(tok.merges) >= 300
    assert learn_bpe(text, len(tok.merges)) == tok.merges


@pytest.mark.shared_data
def test_learn_bpe_equals_the_trainer_on_brown():
    if not BROWN.exists():
        pytest.skip("../shared/data/brown is absent")
    with BROWN.open(encoding="utf-8") as f:
        text = "".join(next(f) for _ in range(500))
    tok = BPETokenizer.train([text], vocab_size=len(_base_vocab(text)) + 200)
    assert len(tok.merges) >= 200
    assert learn_bpe(text, len(tok.merges)) == tok.merges


def _base_vocab(text: str) -> set[str]:
    """What BPETokenizer starts from: 4 specials, the marker, the characters, whitespace."""
    return {"<pad>", "<unk>", "<s>", "</s>", "_"} | set(text) | set(" \t\n\r")
