"""The out-of-core estimator (tables on disk, Kneser-Ney order by order) gives the in-memory
model bit for bit: every array, the discounts, the warnings, the files written."""

from __future__ import annotations

import gc
import json
import os
import warnings

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from _ngram_helpers import zipf_text
from chainrule.cli import main
from chainrule.fileio import read_safetensors
from chainrule.models.ngram import fastcount, outofcore
from chainrule.models.ngram.estimate import estimate
from chainrule.models.ngram.outofcore import DiskTables, estimate_on_disk
from chainrule.models.ngram.train import load_ngram, train_ngram

pytestmark = pytest.mark.skipif(fastcount.core() is None,
                                reason="the compiled n-gram counter is not built")


def assert_same_tables(a, b):
    assert a.vocab_size == b.vocab_size and a.counts() == b.counts()
    for name in ("keys", "prob", "backoff", "raw_counts"):
        for k, (x, y) in enumerate(zip(getattr(a, name), getattr(b, name)), start=1):
            assert x.dtype == y.dtype, (name, k)
            np.testing.assert_array_equal(x, y, err_msg=f"{name} of order {k}")


def counted(sentences, order, V, bos, eos, memory, to_disk):
    counter = fastcount.CompiledCounter(order, bos, eos, memory=memory)
    for s in sentences:
        counter.add_sentences([np.array(s, dtype=np.int32)])
    return counter.finish_to_disk(V) if to_disk else counter.finish(V)


def estimated(fn, counts, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tables, used = fn(counts, *args, **kwargs)
    return tables, used, [str(w.message) for w in caught]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 7), max_size=10), min_size=1, max_size=40),
       st.integers(2, 6), st.sampled_from(["mkn", "kn"]), st.integers(1, 6),
       st.sampled_from([None, [[0.3, 0.9, 1.4]]]), st.sampled_from([None, [0, 1], [0, 0, 2]]))
def test_disk_estimate_equals_memory_estimate_for_any_ids(sentences, order, smoothing, chunk,
                                                          given_discounts, prune):
    # ids 0..7: 0 is <s> and 1 </s> (also inside sentences: the padding rules apply), 8 is a
    # <pad> never predicted; chunks of 1..6 n-grams, so every pass crosses chunk boundaries;
    # memory=1 byte: a buffer of 16 windows, so the counter spills and merges runs; pruning
    # renumbers the keys of the orders above the first pruned one
    V, bos, eos = 9, 0, 1
    discounts = given_discounts if smoothing == "mkn" else ([[0.6]] if given_discounts else None)
    kw = {"smoothing": smoothing, "discounts": discounts, "never": (8,),
          "prune": prune and prune[:order]}
    mem = estimated(estimate, counted(sentences, order, V, bos, eos, None, False), V, bos, **kw)
    disk_counts = counted(sentences, order, V, bos, eos, 1, True)
    disk = estimated(estimate_on_disk, disk_counts, V, bos, chunk=chunk, **kw)
    assert isinstance(disk[0], DiskTables)
    assert_same_tables(disk[0], mem[0])
    assert disk[1:] == mem[1:]  # discounts and warnings


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(zipf_text(3000, 5, vocab=300, max_words=16), encoding="utf-8")
    return path


def test_train_with_a_tiny_budget_gives_the_in_memory_model(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(outofcore, "CHUNK", 997)  # many chunks per order
    spill = tmp_path / "spill"
    spill.mkdir()
    full = train_ngram(corpus, order=5)
    small = train_ngram(corpus, order=5, memory="1M", temp_dir=spill)
    assert isinstance(small.model.tables, DiskTables) and any(spill.iterdir())
    assert_same_tables(small.model.tables, full.model.tables)
    assert small.model.discounts_ == full.model.discounts_
    assert (small.tokens, small.sentences, small.warnings) == (full.tokens, full.sentences,
                                                               full.warnings)
    x = np.array([[1, 5, 6, 7, 5, 2], [1, 9, 4, 4, 4, 2]])
    np.testing.assert_array_equal(small.model.token_log10probs(x), full.model.token_log10probs(x))
    del small
    gc.collect()
    assert not any(spill.iterdir())  # the tables' files go with the model


def test_pruned_and_backoff_models_agree(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(outofcore, "CHUNK", 1999)
    for kw, on_disk in (({"smoothing": "kn", "prune": [0, 1, 2]}, True), ({"smoothing": "mle"}, False),
                        ({"smoothing": "addk", "k": 0.5}, False), ({"order": 1}, False)):
        kw = {"order": 4, **kw}
        full = train_ngram(corpus, **kw)
        small = train_ngram(corpus, memory="1M", temp_dir=tmp_path, **kw)
        assert isinstance(small.model.tables, DiskTables) == on_disk  # else: in memory
        assert_same_tables(small.model.tables, full.model.tables)


def test_a_tokenizer_and_a_closed_vocabulary_out_of_core(corpus, tmp_path):
    tok = tmp_path / "tok.json"
    assert main(["tokenizer", "train", str(corpus), "--kind", "char", "-o", str(tok)]) == 0
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(f"w{i}" for i in range(0, 300, 2)), encoding="utf-8")
    for kw in ({"tokenizer": str(tok)}, {"vocab": vocab}):
        full = train_ngram(corpus, order=4, **kw)
        small = train_ngram(corpus, order=4, memory="1M", temp_dir=tmp_path, **kw)
        assert isinstance(small.model.tables, DiskTables)
        assert_same_tables(small.model.tables, full.model.tables)


def test_cli_with_memory_writes_the_same_files(corpus, tmp_path):
    spill = tmp_path / "spill"
    spill.mkdir()
    a, b = tmp_path / "mem", tmp_path / "disk"
    assert main(["train", "--family", "ngram", "--order", "4", str(corpus), "-o", str(a)]) == 0
    assert main(["train", "--family", "ngram", "--order", "4", str(corpus), "-o", str(b),
                 "--memory", "2M", "--temp-dir", str(spill)]) == 0
    assert (a / "model.arpa").read_bytes() == (b / "model.arpa").read_bytes()
    assert json.loads((a / "config.json").read_text()) == json.loads((b / "config.json").read_text())
    ta, tb = read_safetensors(a / "model.safetensors", numpy=True), \
        read_safetensors(b / "model.safetensors", numpy=True)
    assert sorted(ta) == sorted(tb)
    for name in ta:
        assert ta[name].dtype == tb[name].dtype
        np.testing.assert_array_equal(ta[name], tb[name], err_msg=name)
    model, _ = load_ngram(b)
    assert model.tables.counts() == load_ngram(a)[0].tables.counts()
    gc.collect()
    assert not any(spill.iterdir())


def test_key_index_finds_positions_and_misses():
    rng = np.random.default_rng(1)
    keys = np.unique(rng.integers(0, 1 << 40, 5000))
    q = np.concatenate([keys[rng.integers(0, keys.size, 300)], [-5, (1 << 41) + 3]])
    got = fastcount.core().KeyIndex(keys).find(q)
    want = np.searchsorted(keys, q)
    want = np.where(keys[np.minimum(want, keys.size - 1)] == q, want, -1)
    np.testing.assert_array_equal(got, want)


def test_the_counter_gets_what_the_interpreter_does_not_hold():
    assert fastcount.counter_budget(1 << 20) == 1 << 18  # below the interpreter: a quarter
    big = 1 << 36
    with open("/proc/self/statm", encoding="ascii") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    held = big - fastcount.SLACK - fastcount.counter_budget(big)
    assert abs(held - rss) < 32 << 20
