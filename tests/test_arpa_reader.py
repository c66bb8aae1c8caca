"""The compiled ARPA reader (models/ngram/arpa_fast.py, src/chainrule/_arpa/core.cpp) gives
the Python reader's tables bit for bit, or hands the file to it: on files chainrule writes
(export-arpa -> import-arpa under hypothesis), on KenLM's Brown files, and on damaged files,
where the error is the same sentence whichever reader was built."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainrule.cli import main
from chainrule.errors import ModelFormatError
from chainrule.fileio import read_safetensors
from chainrule.models.ngram import arpa_fast
from chainrule.models.ngram.arpa import read_arpa, write_arpa
from chainrule.models.ngram.train import train_ngram

needs_core = pytest.mark.skipif(arpa_fast.core() is None,
                                reason="the compiled ARPA reader (chainrule._arpa_core) is not built")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
WORDS = ["the", "cat", "sat", "naïve", "日本", "a" * 11, "x", "<unk>"]


def read_both(path, vocab=None):
    """(compiled result, Python result): tables as bytes and spellings, or the error text."""
    def run():
        try:
            tables, spell = read_arpa(path, vocab)
        except ModelFormatError as e:
            return str(e)
        return ([a.dtype.str + a.tobytes().hex() for arrays in (tables.keys, tables.prob,
                 tables.backoff) for a in arrays], spell)

    fast = run()
    real = arpa_fast.core
    arpa_fast.core = lambda: None
    try:
        slow = run()
    finally:
        arpa_fast.core = real
    return fast, slow


def written_arpa(tmp: Path, sentences: list[list[int]], order: int, smoothing: str) -> Path:
    corpus = tmp / "c.txt"
    sentences = [[0, 1, 2, 3, 4, 5, 6], *sentences]  # at least `order` tokens
    corpus.write_text("\n".join(" ".join(WORDS[i] for i in s) for s in sentences) + "\n",
                      encoding="utf-8")
    res = train_ngram(corpus, order=order, smoothing=smoothing)
    words = [res.tokenizer.id_to_token(i) for i in range(res.model.vocab_size)]
    return write_arpa(res.model.tables, words, tmp / "m.arpa", omit=[res.tokenizer.pad_id])


sentences = st.lists(st.lists(st.integers(0, len(WORDS) - 1), max_size=7), min_size=1,
                     max_size=12)


@needs_core
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(sents=sentences, order=st.integers(1, 5), smoothing=st.sampled_from(["mkn", "kn", "mle"]))
def test_round_trip_export_then_import_is_the_same_either_way(tmp_path, sents, order, smoothing):
    path = written_arpa(tmp_path, sents, order, smoothing)
    assert arpa_fast.parse(path.read_bytes()) is not None  # chainrule's own layout: compiled
    fast, slow = read_both(path)
    assert fast == slow and not isinstance(fast, str)
    corpus = tmp_path / "c.txt"
    res = train_ngram(corpus, order=order, smoothing=smoothing)
    tables, _ = read_arpa(path, {res.tokenizer.id_to_token(i): i
                                 for i in range(res.model.vocab_size)})
    ours = res.model.tables
    for k in range(order):  # %.8g keeps 8 digits; zero probabilities are written as -99
        assert np.array_equal(tables.keys[k], ours.keys[k])
        for got, want in ((tables.prob[k], ours.prob[k]), (tables.backoff[k], ours.backoff[k])):
            zero = np.isneginf(want)
            assert np.allclose(got[~zero], want[~zero], rtol=1e-7, atol=1e-12)
            assert np.isin(got[zero], [-99.0, -np.inf]).all()


EDITS = ["\t", " ", "  ", "\n", "\r", "\xa0", "\u3000", "0", "-", "+", ".", "e", "5", "9e9",
         "nan", "inf", "(", "_", "x", "the", "\\", "=", "ngram 9=1", "\ufeff", "\udcff"]


@needs_core
@pytest.mark.filterwarnings("ignore:overflow encountered")  # a damaged number like 9e99
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_files_read_or_fail_the_same_either_way(tmp_path, data):
    base = tmp_path / "base.arpa"
    if not base.exists():
        written_arpa(tmp_path, [[0, 1, 2], [3, 4, 0, 1], [5, 6, 7, 2]], 3, "mkn").rename(base)
    text = base.read_text(encoding="utf-8")
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 3))
        text = text[:at] + data.draw(st.sampled_from(EDITS + [""])) + text[at + cut:]
    path = tmp_path / "damaged.arpa"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    fast, slow = read_both(path)
    assert fast == slow


@needs_core
@pytest.mark.parametrize("text", [
    # SRILM-style: lower-order lines without a backoff (both readers read these)
    ("\\data\\\nngram 1=3\nngram 2=2\n\n\\1-grams:\n-1\t<s>\t-0.5\n-0.5\ta\n-0.5\t</s>\n\n"
     "\\2-grams:\n-0.2\t<s> a\n-0.1\ta </s>\n\n\\end\\\n"),
    # a word with no unigram line, a duplicate unigram, a missing suffix, a positive log10 p
    ("\\data\\\nngram 1=2\nngram 2=1\n\n\\1-grams:\n-1\t<s>\t0\n-1\t</s>\t0\n\n"
     "\\2-grams:\n-0.2\t<s> b\n\n\\end\\\n"),
    "\\data\\\nngram 1=2\n\n\\1-grams:\n-1\ta\n-1\ta\n\n\\end\\\n",
    ("\\data\\\nngram 1=3\nngram 2=1\nngram 3=1\n\n\\1-grams:\n-1\ta\t0\n-1\tb\t0\n-1\tc\t0\n\n"
     "\\2-grams:\n-1\ta b\t0\n\n\\3-grams:\n-1\ta b c\n\n\\end\\\n"),
    "\\data\\\nngram 1=2\n\n\\1-grams:\n-1\ta\n0.5\tb\n\n\\end\\\n",
    # a bigram listed twice below the top order (the compiled suffix table sees it first)
    ("\\data\\\nngram 1=2\nngram 2=2\nngram 3=1\n\n\\1-grams:\n-1\ta\t0\n-1\tb\t0\n\n"
     "\\2-grams:\n-1\ta b\t0\n-1\ta b\t0\n\n\\3-grams:\n-1\tb a b\n\n\\end\\\n"),
    # comments before \data\, trailing text after \end\, CRLF line ends, no final newline
    "made by hand\n\\data\\\nngram 1=2\n\n\\1-grams:\n-1\ta\n-2\tb\n\n\\end\\\n",
    "\\data\\\nngram 1=2\n\n\\1-grams:\n-1\ta\n-2\tb\n\n\\end\\\ntrailing words\n",
    "\\data\\\r\nngram 1=2\r\n\r\n\\1-grams:\r\n-1\ta\r\n-2\tb\r\n\r\n\\end\\\r\n",
    "\\data\\\nngram 1=2\n\n\\1-grams:\n-1\ta\n-2\tb\n\n\\end\\",
])
def test_hand_written_files_read_or_fail_the_same_either_way(tmp_path, text):
    path = tmp_path / "h.arpa"
    path.write_text(text, encoding="utf-8")
    fast, slow = read_both(path)
    assert fast == slow


@needs_core
def test_not_utf8_and_gzip_are_handled_like_the_python_reader(tmp_path, capsys):
    good = "\\data\\\nngram 1=2\n\n\\1-grams:\n-1\tcafé\n-2\tb\n\n\\end\\\n"
    (tmp_path / "g.arpa.gz").write_bytes(gzip.compress(good.encode()))
    fast, slow = read_both(tmp_path / "g.arpa.gz")
    assert fast == slow and fast[1] == ["café", "b"]
    for name, raw in [("u1.arpa", good.encode().replace("é".encode(), b"\xe9")),
                      ("u2.arpa", good.encode() + b"\xff")]:
        (tmp_path / name).write_bytes(raw)
        fast, slow = read_both(tmp_path / name)
        assert fast == slow and "is not UTF-8 text" in fast
        assert main(["ngram", "import-arpa", str(tmp_path / name), "-o", str(tmp_path / "m")]) == 2
        err = capsys.readouterr().err
        assert "is not UTF-8 text" in err and "Traceback" not in err


@needs_core
def test_hand_example_values_and_ids(tmp_path):
    path = tmp_path / "h.arpa"
    path.write_text("\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-0.5\t<s>\t-0.25\n-1e-1\ta\t0\n"
                    "-99\t</s>\t0\n\n\\2-grams:\n-0.125\t<s> a\n\n\\end\\\n", encoding="utf-8")
    parsed = arpa_fast.parse(path.read_bytes())
    assert parsed.unigrams == ["<s>", "a", "</s>"]
    assert parsed.rows[1].tolist() == [[0, 1]]
    assert parsed.probs[0].tolist() == [-0.5, np.float32(-0.1), -99.0]
    tables, spell = read_arpa(path)
    assert spell == ["<s>", "a", "</s>"]
    assert tables.keys[1].tolist() == [1 * 3 + 0]  # suffix "a" (id 1) * V + first word "<s>"
    assert tables.prob[1].tolist() == [-0.125] and tables.backoff[0].tolist() == [-0.25, 0, 0]


@needs_core
@pytest.mark.parametrize("seed", [0, 1])
def test_many_words_sharing_prefixes_hash_apart(tmp_path, seed):
    # words of 1-20 bytes, many with the same first eight bytes (the word table keeps those
    # inline) or differing only in length; bigrams and suffix-complete trigrams in random order
    rng = np.random.default_rng(seed)
    stems = ["prefix00", "prefix0", "p", "日本語", "a\x01b"]
    words = sorted({stems[i % len(stems)] + "".join(rng.choice(list("xyz"), size=int(n)))
                    for i, n in enumerate(rng.integers(0, 12, 3000))} | {"<s>", "</s>"})
    pick = lambda n: rng.integers(0, len(words), n)
    bigrams = sorted({(int(a), int(b)) for a, b in zip(pick(4000), pick(4000))})
    trigrams = sorted({(int(x), *bigrams[int(i)]) for x, i in
                       zip(pick(3000), rng.integers(0, len(bigrams), 3000))})
    rng.shuffle(bigrams)
    num = lambda: f"{-rng.uniform(0.01, 7):.7g}"
    lines = ["\\data\\", f"ngram 1={len(words)}", f"ngram 2={len(bigrams)}",
             f"ngram 3={len(trigrams)}", "", "\\1-grams:"]
    lines += [f"{num()}\t{w}\t{num()}" for w in words] + ["", "\\2-grams:"]
    lines += [f"{num()}\t{words[a]} {words[b]}\t{num()}" for a, b in bigrams] + ["", "\\3-grams:"]
    lines += [f"{num()}\t{' '.join(words[i] for i in t)}" for t in trigrams] + ["", "\\end\\", ""]
    path = tmp_path / "many.arpa"
    path.write_text("\n".join(lines), encoding="utf-8")
    parsed = arpa_fast.parse(path.read_bytes())
    assert parsed is not None and parsed.unigrams == words
    assert parsed.rows[1].tolist() == [list(b) for b in bigrams]
    fast, slow = read_both(path)
    assert fast == slow and not isinstance(fast, str)


@pytest.mark.shared_data
@needs_core
def test_kenlm_brown_file_reads_the_same_either_way():
    arpa = SHARED / "kenlm-reference" / "brown-train.o3.arpa.gz"
    if not arpa.exists():
        pytest.skip("shared data (kenlm-reference) not available")
    assert arpa_fast.parse(gzip.decompress(arpa.read_bytes())) is not None
    fast, slow = read_both(arpa)
    assert fast == slow


@needs_core
def test_cli_import_arpa_writes_the_same_model_either_way(tmp_path, monkeypatch):
    path = written_arpa(tmp_path, [[0, 1, 2, 3], [4, 5, 6, 7, 0]] * 5, 4, "mkn")
    assert main(["ngram", "import-arpa", str(path), "-o", str(tmp_path / "fast")]) == 0
    monkeypatch.setattr(arpa_fast, "core", lambda: None)
    assert main(["ngram", "import-arpa", str(path), "-o", str(tmp_path / "slow")]) == 0
    for name in ("tokenizer.json", "config.json", "model.arpa"):
        assert (tmp_path / "fast" / name).read_bytes() == (tmp_path / "slow" / name).read_bytes()
    fast, slow = (read_safetensors(tmp_path / d / "model.safetensors", numpy=True)
                  for d in ("fast", "slow"))  # (header keys come out in any order)
    assert fast.keys() == slow.keys()
    assert all(fast[k].dtype == slow[k].dtype and fast[k].tobytes() == slow[k].tobytes()
               for k in fast)
