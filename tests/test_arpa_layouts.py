"""ARPA files in layouts other than KenLM's are read by the compiled reader too
(src/chainrule/_arpa/core.cpp), with the Python reader's result bit for bit: n-grams shuffled
within each section, SRILM's lines without a backoff, missing context (prefix) n-grams, CRLF,
runs of tabs and spaces, text before ``\\data\\``; and damaged files in those layouts fail with
the same one sentence either way."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainrule.cli import main
from chainrule.errors import ModelFormatError
from chainrule.models.ngram import arpa_fast
from chainrule.models.ngram.arpa import read_arpa, write_arpa
from chainrule.models.ngram.train import read_arpa_model, train_ngram

needs_core = pytest.mark.skipif(
    arpa_fast.core() is None, reason="the compiled ARPA reader (chainrule._arpa_core) is not built")
WORDS = ["the", "cat", "sat", "naïve", "日本", "a" * 11, "x", "<unk>"]
SLOW = {"deadline": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]}


def tables_of(path, python: bool, vocab=None):
    """The tables as bytes and the spellings, or the error's text (ids from ``vocab``, or by
    default in the order of the unigram lines)."""
    real = arpa_fast.core
    if python:
        arpa_fast.core = lambda: None
    try:
        tables, spell = read_arpa(path, vocab)
    except ModelFormatError as e:
        return str(e)
    finally:
        arpa_fast.core = real
    return ([a.dtype.str + a.tobytes().hex() for arrays in (tables.keys, tables.prob,
             tables.backoff) for a in arrays], spell)


def scores_of(path, python: bool, sentences: list[list[str]]):
    real = arpa_fast.core
    if python:
        arpa_fast.core = lambda: None
    try:
        model, tok = read_arpa_model(path)
    finally:
        arpa_fast.core = real
    ids = [[tok.bos_id] + [tok.token_to_id(w) for w in s] + [tok.eos_id] for s in sentences]
    return [x.tobytes() for x in model.score_ids(ids)]


def canonical(tmp: Path, sentences: list[list[int]], order: int) -> str:
    """chainrule's own ARPA text (KenLM's layout) of an mKN model of ``sentences``."""
    corpus = tmp / "c.txt"
    sentences = [[0, 1, 2, 3, 4, 5, 6], *sentences]  # at least `order` tokens
    corpus.write_text("\n".join(" ".join(WORDS[i] for i in s) for s in sentences) + "\n",
                      encoding="utf-8")
    res = train_ngram(corpus, order=order, smoothing="mkn")
    words = [res.tokenizer.id_to_token(i) for i in range(res.model.vocab_size)]
    path = write_arpa(res.model.tables, words, tmp / "m.arpa", omit=[res.tokenizer.pad_id])
    return path.read_text(encoding="utf-8")


def sections(text: str) -> tuple[list[str], list[list[str]]]:
    """(count lines, the entry lines of each section) of a canonical file."""
    lines = text.split("\n")
    counts = [ln for ln in lines if ln.startswith("ngram ")]
    out, cur = [], None
    for ln in lines:
        if ln.endswith("-grams:"):
            cur = []
            out.append(cur)
        elif ln == "\\end\\":
            break
        elif ln and cur is not None:
            cur.append(ln)
    return counts, out


def relayout(text: str, rng: random.Random, *, shuffle: bool, srilm: bool, spaces: bool,
             crlf: bool, junk: bool) -> str:
    """The same model in another layout: sections shuffled, zero backoffs left out (SRILM),
    fields separated by runs of spaces and tabs, CRLF line ends, text around the model."""
    counts, secs = sections(text)
    gap = (lambda: rng.choice([" ", "\t", "  ", " \t ", "\t\t"])) if spaces else (lambda: " ")
    out = (["written by hand", "", "\\data\\ is below"] if junk else []) + ["\\data\\"] + counts
    for k, lines in enumerate(secs, start=1):
        lines = list(lines)
        if shuffle:
            rng.shuffle(lines)
        out += ["", "  " if spaces else "", f"\\{k}-grams:"]
        for ln in lines:
            f = ln.split("\t")
            if srilm and len(f) == 3 and float(f[2]) == 0:
                f = f[:2]
            words = f[1].split(" ")
            fields = [f[0], *words, *f[2:]]
            lead = gap() if spaces and rng.random() < 0.3 else ""
            out.append(lead + "".join(x + gap() for x in fields[:-1]) + fields[-1]
                       + (gap() if spaces and rng.random() < 0.3 else ""))
    out += ["", "\\end\\", "trailing text" if junk else ""]
    end = "\r\n" if crlf else "\n"
    return end.join(out)


sentence_lists = st.lists(st.lists(st.integers(0, len(WORDS) - 1), max_size=7), min_size=1,
                          max_size=10)


@needs_core
@settings(max_examples=40, **SLOW)
@given(sents=sentence_lists, order=st.integers(1, 4), seed=st.integers(0, 2**16),
       flags=st.tuples(*[st.booleans()] * 5))
def test_any_layout_reads_compiled_as_the_python_reader_and_the_original(tmp_path, sents, order,
                                                                          seed, flags):
    text = canonical(tmp_path, sents, order)
    shuffle, srilm, spaces, crlf, junk = flags
    other = relayout(text, random.Random(seed), shuffle=shuffle, srilm=srilm, spaces=spaces,
                     crlf=crlf, junk=junk)
    path = tmp_path / "other.arpa"
    path.write_bytes(other.encode("utf-8"))
    assert arpa_fast.parse(path.read_bytes()) is not None  # the compiled reader took it
    fast, slow = tables_of(path, False), tables_of(path, True)
    assert fast == slow and not isinstance(fast, str)
    original = tables_of(tmp_path / "m.arpa", True)  # the same model as the original file
    ids = {w: i for i, w in enumerate(original[1])}
    assert tables_of(path, False, ids) == original == tables_of(path, True, ids)
    probe = [[WORDS[i] for i in s] for s in sents[:3]] + [["the", "cat", "sat", "x"]]
    assert scores_of(path, False, probe) == scores_of(path, True, probe)


@needs_core
def test_missing_context_ngrams_read_the_same_either_way(tmp_path):
    # ARPA needs every n-gram's suffix (backoff goes to it) but not its prefix (the context, whose
    # backoff weight is then 0): drop bigrams that are only prefixes of trigrams
    text = canonical(tmp_path, [[0, 1, 2], [1, 2, 3, 4], [5, 0, 1, 6]], 3)
    counts, (uni, bi, tri) = sections(text)
    suffixes = {" ".join(ln.split("\t")[1].split(" ")[1:]) for ln in tri}
    prefixes = {" ".join(ln.split("\t")[1].split(" ")[:2]) for ln in tri}
    drop = [ln for ln in bi if ln.split("\t")[1] in prefixes - suffixes]
    assert drop  # the example has some
    bi = [ln for ln in bi if ln not in drop]
    lines = ["\\data\\", counts[0], f"ngram 2={len(bi)}", counts[2], "", "\\1-grams:", *uni, "",
             "\\2-grams:", *bi[::-1], "", "\\3-grams:", *tri[::-1], "", "\\end\\", ""]
    path = tmp_path / "pruned.arpa"
    path.write_text("\n".join(lines), encoding="utf-8")
    assert arpa_fast.parse(path.read_bytes()) is not None
    fast, slow = tables_of(path, False), tables_of(path, True)
    assert fast == slow and not isinstance(fast, str)
    probe = [["the", "cat", "sat"], ["cat", "sat", "naïve", "日本"], ["x", "the", "cat", "x"]]
    assert scores_of(path, False, probe) == scores_of(path, True, probe)


@needs_core
def test_srilm_style_hand_example_values(tmp_path):
    # SRILM: a blank line first, no backoff where it is 0, spaces for tabs, unsorted n-grams
    path = tmp_path / "srilm.arpa"
    path.write_text("\n\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n-0.5 </s>\n-99 <s> -0.25\n"
                    "-1e-1 a\u00a0b   -0.5\n-0.75 <unk>\n\n\\2-grams:\n-0.125 a\u00a0b </s>\n"
                    "-0.375\t<s>\ta\u00a0b\n\n\\end\\\n", encoding="utf-8")
    parsed = arpa_fast.parse(path.read_bytes())
    assert parsed.unigrams == ["</s>", "<s>", "a\xa0b", "<unk>"]  # Unicode spaces are word bytes
    assert parsed.rows[1].tolist() == [[2, 0], [1, 2]]
    assert parsed.backs[0].tolist() == [0, -0.25, -0.5, 0]
    tables, spell = read_arpa(path)
    assert spell == ["</s>", "<s>", "a\xa0b", "<unk>"]
    # keys: suffix id * V + first word id, sorted
    assert tables.keys[1].tolist() == [0 * 4 + 2, 2 * 4 + 1]
    assert tables.prob[1].tolist() == [-0.125, -0.375]
    assert tables_of(path, False) == tables_of(path, True)


BAD_EDITS = ["\t", " ", "\n", "\r\n", "\xa0", "\x0b", "\x1c", "\ufeff", "0", "-", "+", "e", "nan",
             "\\", "=", "_", "x", "ngram 9=1", "\\data\\"]


@needs_core
@pytest.mark.filterwarnings("ignore:overflow encountered")
@settings(max_examples=150, **SLOW)
@given(data=st.data())
def test_damaged_files_in_other_layouts_fail_or_read_the_same_either_way(tmp_path, data):
    crlf = data.draw(st.booleans())
    base = tmp_path / f"base{int(crlf)}.arpa"
    if not base.exists():
        text = canonical(tmp_path, [[0, 1, 2], [3, 4, 0, 1], [5, 6, 7, 2]], 3)
        base.write_bytes(relayout(text, random.Random(0), shuffle=True, srilm=True, spaces=True,
                                  crlf=crlf, junk=True).encode("utf-8"))
    text = base.read_bytes().decode("utf-8")
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 3))
        text = text[:at] + data.draw(st.sampled_from(BAD_EDITS + [""])) + text[at + cut:]
    path = tmp_path / "damaged.arpa"
    path.write_bytes(text.encode("utf-8"))
    fast, slow = tables_of(path, False), tables_of(path, True)
    assert fast == slow
    if isinstance(fast, str):  # one line, naming the file
        assert "\n" not in fast and repr(str(path)) in fast


@needs_core
def test_cli_refuses_a_shuffled_file_missing_a_suffix_in_one_sentence(tmp_path, capsys):
    path = tmp_path / "bad.arpa"
    path.write_text("\\data\\\nngram 1=5\nngram 2=1\nngram 3=1\n\n\\1-grams:\n-1 c 0\n-1  a\n"
                    "-1\tb\r\n-1 </s>\n-1 <s>\n\n\\2-grams:\n-1 a b 0\n\n\\3-grams:\n"
                    "-1 a b c\n\n\\end\\\n",
                    encoding="utf-8")
    assert arpa_fast.parse(path.read_bytes()) is None  # "b c" is missing: the Python reader
    assert main(["ngram", "import-arpa", str(path), "-o", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "'a b c' has no entry for its 2-word suffix" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_python_fast_path_never_misaligns_lines(tmp_path):
    # one line with a field too many and one without its backoff add up to the right count of
    # tab-separated fields; the reader must still name the bad line, not shift the numbers
    path = tmp_path / "shift.arpa"
    path.write_text("\\data\\\nngram 1=2\nngram 2=1\n\n\\1-grams:\n-1\ta\t-0.5\t-7\nb\t-2\n\n"
                    "\\2-grams:\n-1\ta b\n\n\\end\\\n", encoding="utf-8")
    with pytest.raises(ModelFormatError, match="line 6"):
        read_arpa(path)
