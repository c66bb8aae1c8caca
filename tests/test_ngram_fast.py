"""The compiled n-gram counter and ARPA writer against the numpy reference; out-of-core counting
under a tiny memory budget; commands that need no torch do not import it."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from _ngram_helpers import zipf_text
from chainrule.cli import main
from chainrule.errors import ConfigError
from chainrule.models.ngram import fastcount
from chainrule.models.ngram.arpa import write_arpa
from chainrule.models.ngram.counting import count_ngrams
from chainrule.models.ngram.estimate import derive_orders
from chainrule.models.ngram.tables import NgramTables
from chainrule.models.ngram.train import arpa_words, train_ngram

pytestmark = pytest.mark.skipif(fastcount.core() is None,
                                reason="the compiled n-gram counter is not built")

# every kind of line break str.splitlines knows, the whitespace str.split knows, specials in the
# text (skipped), blank lines, and a last line without its newline
TRICKY = ("the cat sat\r\non the mat\rthe dog\x0bsat\x0c\x1cthe\x1dcat\x1e"
          "a\u0085b\u2028c\u2029d\n\n  \n"
          "x\u00a0y\u1680z\u2000w\u200ax\u202fy\u205fz\u3000w\x1fq\tr\n"
          "<s> the </s> <unk> <pad> cat\nénorme 猫 the cat")


def both_ways(monkeypatch, *args, **kwargs):
    """The model trained through the compiled counter and through numpy."""
    fast = train_ngram(*args, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(fastcount, "available", lambda order: False)
        slow = train_ngram(*args, **kwargs)
    return fast, slow


def assert_same(fast, slow):
    assert fast.tokenizer.vocab == slow.tokenizer.vocab
    assert (fast.tokens, fast.sentences, fast.warnings) == (slow.tokens, slow.sentences,
                                                            slow.warnings)
    a, b = fast.model.tables, slow.model.tables
    assert a.counts() == b.counts()
    for k in range(a.order):
        for x, y in ((a.keys, b.keys), (a.prob, b.prob), (a.backoff, b.backoff),
                     (a.raw_counts, b.raw_counts)):
            np.testing.assert_array_equal(x[k], y[k])
    assert fast.model.discounts_ == slow.model.discounts_


@pytest.mark.parametrize("order", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("smoothing", ["mkn", "mle"])
def test_compiled_counting_gives_the_numpy_model(tmp_path, monkeypatch, order, smoothing):
    path = tmp_path / "c.txt"
    path.write_text(zipf_text(400, order) + TRICKY, encoding="utf-8")
    fast, slow = both_ways(monkeypatch, path, order=order, smoothing=smoothing)
    assert_same(fast, slow)
    assert "<s>" in fast.warnings[0]  # the specials in the text were skipped, and said so


def test_closed_vocabulary_gzip_several_files_and_a_tokenizer(tmp_path, monkeypatch):
    a, b = tmp_path / "a.txt.gz", tmp_path / "b.txt"
    with gzip.open(a, "wt", encoding="utf-8") as f:
        f.write(zipf_text(300, 1))
    b.write_text(zipf_text(300, 2) + TRICKY, encoding="utf-8")
    vocab = [f"w{i}" for i in range(0, 40, 2)] + ["the", "<s>", "w2"]  # a duplicate, a special
    assert_same(*both_ways(monkeypatch, [a, b], order=3, vocab=vocab))
    tok = tmp_path / "tok.json"
    assert main(["tokenizer", "train", str(b), "--kind", "char", "-o", str(tok)]) == 0
    assert_same(*both_ways(monkeypatch, [a, b], order=4, tokenizer=str(tok)))


def test_a_tiny_memory_budget_spills_runs_and_gives_the_same_model(tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text(zipf_text(6000, 3, vocab=400), encoding="utf-8")
    spill = tmp_path / "spill"
    spill.mkdir()
    counter = fastcount.CompiledCounter(5, 1, 2, memory=1 << 19, temp_dir=str(spill))
    counter.set_vocab(["<pad>", "<s>", "</s>", "<unk>"], [0, 1, 2, 3], 3, True)
    counter.add_file(path)
    counts = counter.finish(4 + len(counter.new_words()))
    assert counts.spilled and counts.runs >= 2  # ~48k windows of 16 bytes > 512 KB
    assert not any(spill.iterdir())  # the runs are removed
    full = train_ngram(path, order=5)
    small = train_ngram(path, order=5, memory="1M", temp_dir=spill)
    assert_same(small, full)
    assert_same(*both_ways(monkeypatch, path, order=3, memory="1M"))  # numpy: smaller chunks


def test_compiled_arpa_writer_writes_the_python_writers_bytes(tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text(zipf_text(500, 4) + TRICKY, encoding="utf-8")
    for smoothing, prune in (("mkn", None), ("mle", None), ("kn", [0, 1, 1])):
        res = train_ngram(path, order=3, smoothing=smoothing, prune=prune)
        words = arpa_words(res.tokenizer, res.model.vocab_size)
        fast = write_arpa(res.model.tables, words, tmp_path / "fast.arpa.gz", omit=[0])
        with monkeypatch.context() as m:
            m.setattr(fastcount, "core", lambda: None)
            slow = write_arpa(res.model.tables, words, tmp_path / "slow.arpa.gz", omit=[0])
        text = gzip.decompress(fast.read_bytes())
        assert text == gzip.decompress(slow.read_bytes())
        assert (b"-99\t" in text) == (smoothing == "mle")  # zero probabilities, as KenLM


def test_compiled_number_format_is_pythons_percent_8g():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    values = np.concatenate([values[np.isfinite(values)], rng.uniform(-12, 2, 50_000),
                             [0.0, -0.0, -np.inf, 1e8, 99999999, 1e-18, -99, 0.5, 1e-5, 1e-4,
                              123456789, 0.1, 9.9999999e-5]]).astype(np.float32)
    got = fastcount.core().format_floats(values).decode().split("\n")[:-1]
    want = ["%.8g" % (-99.0 if np.isneginf(v) else float(v) + 0.0) for v in values]
    assert got == want


def test_memory_sizes_and_bad_values(tmp_path, capsys):
    assert fastcount.parse_memory("1G") == 1 << 30
    assert fastcount.parse_memory("1.5m") == 3 << 19
    assert fastcount.parse_memory("2048KiB") == 2 << 20 and fastcount.parse_memory(None) is None
    for bad in ("lots", "-1G", "10"):
        with pytest.raises(ConfigError):
            fastcount.parse_memory(bad)
    corpus = tmp_path / "c.txt"
    corpus.write_text(zipf_text(50, 5), encoding="utf-8")
    assert main(["train", "--family", "ngram", str(corpus), "-o", str(tmp_path / "m"),
                 "--memory", "lots"]) == 2
    assert "--memory takes a size" in capsys.readouterr().err
    assert main(["train", "--family", "gpt", str(corpus), "-o", str(tmp_path / "g"),
                 "--temp-dir", str(tmp_path)]) == 2
    assert "--temp-dir applies to --family ngram" in capsys.readouterr().err


def _run_without_torch(tmp_path, commands: list[list[str]]) -> dict:
    """Run CLI commands in a fresh interpreter; report which heavy modules got imported."""
    code = textwrap.dedent(f"""
        import json, sys
        from chainrule.cli import main
        codes = []
        for argv in {commands!r}:
            try:
                codes.append(main(argv))
            except SystemExit as e:
                codes.append(e.code)
        print(json.dumps({{"codes": codes, "torch": "torch" in sys.modules,
                           "numpy": "numpy" in sys.modules}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_ngram_tokenizer_and_corpus_commands_do_not_import_torch(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(zipf_text(200, 6), encoding="utf-8")
    c, m = str(corpus), str(tmp_path / "m")
    report = _run_without_torch(tmp_path, [
        ["train", "--family", "ngram", "--order", "3", c, "-o", m, "--json"],
        ["ngram", "table", m, "--words", "w0", "w1", "w2"],
        ["ngram", "export-arpa", m, "-o", str(tmp_path / "m.arpa")],
        ["ngram", "import-arpa", str(tmp_path / "m.arpa"), "-o", str(tmp_path / "imported")],
        ["tokenizer", "train", c, "--kind", "bpe", "--vocab-size", "80", "-o",
         str(tmp_path / "tok.json")],
        ["tokenizer", "inspect", str(tmp_path / "tok.json")],
        ["corpus", "stats", c],
        ["train", "--family", "ngram", "--order", "2", "--tokenizer", str(tmp_path / "tok.json"),
         c, "-o", str(tmp_path / "m2"), "--memory", "2M"],
        ["ngram", "binarize", m, "-o", str(tmp_path / "m.ngram")],
        ["eval", "ppl", m, "--data", c, "--json"],
        ["eval", "ppl", str(tmp_path / "m.ngram"), "--data", c, "--json"],
        # BPE and character tokenizers: scored through numpy too (models/ngram/lines.py)
        ["eval", "ppl", str(tmp_path / "m2"), "--data", c, "--json"],
        ["tokenizer", "train", c, "--kind", "char", "-o", str(tmp_path / "char.json")],
        ["train", "--family", "ngram", "--order", "4", "--tokenizer", str(tmp_path / "char.json"),
         c, "-o", str(tmp_path / "m3")],
        ["eval", "ppl", str(tmp_path / "m3"), str(tmp_path / "m2"), "--data", c],
    ])
    assert report["codes"] == [0] * 15
    assert not report["torch"], "an n-gram, tokenizer or corpus command imported torch"


def test_help_imports_neither_torch_nor_numpy(tmp_path):
    report = _run_without_torch(tmp_path, [["--help"], ["ngram", "--help"]])
    assert report == {"codes": [0, 0], "torch": False, "numpy": False}


def test_threads_still_reach_torch_when_a_command_imports_it_later(tmp_path):
    code = ("from chainrule.cli import _apply_threads; _apply_threads('1'); import torch; "
            "print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    assert out.stdout.strip() == "1"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), max_size=9), min_size=1, max_size=30),
       st.integers(1, 6), st.sampled_from([0, 1]))
def test_compiled_orders_equal_numpy_derivation_for_any_ids(sentences, order, memory):
    # ids may include <s> (0) and </s> (1) inside a sentence: padding rules still apply;
    # memory=1 byte: a buffer of 16 windows, so most examples spill several runs and merge them
    V, bos, eos = 7, 0, 1
    counter = fastcount.CompiledCounter(order, bos, eos, memory=memory or None)
    for s in sentences:
        counter.add_sentences([np.array(s, dtype=np.int32)])
    fast = counter.finish(V)
    if memory and fast.tokens > 16:
        assert fast.spilled and fast.runs >= 2
    ref = derive_orders(count_ngrams(sentences, order, bos, eos), V, bos)
    assert fast.tokens == sum(len(s) + 1 for s in sentences)
    assert fast.sentences == len(sentences)
    tables = NgramTables(V, [o.keys for o in ref], [], [])
    for k in range(1, order + 1):
        np.testing.assert_array_equal(fast.orders[k - 1].keys, ref[k - 1].keys)
        np.testing.assert_array_equal(fast.orders[k - 1].raw, ref[k - 1].raw)
        if k >= 2:
            np.testing.assert_array_equal(fast.contexts[k - 2], tables.context(k))
