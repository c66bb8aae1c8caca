"""Text in for n-gram models (models/ngram/lines.py): the compiled word split + lookup equals
``WordTokenizer.encode`` (Python's ``str.split()``), the flat kernel equals the padded one, and
the perplexity evaluator's fast path gives the general path's report bit for bit."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainrule.evaluation import perplexity as ppl_mod
from chainrule.evaluation.perplexity import perplexity
from chainrule.models.ngram import query
from chainrule.models.ngram.lines import encode_lines, fast_path_applies, score_lines
from chainrule.models.ngram.train import train_ngram
from chainrule.tokenizers import WordTokenizer

needs_core = pytest.mark.skipif(
    getattr(query.compiled_core(), "WordIds", None) is None,
    reason="the compiled query (chainrule._ngram_query_core) is not built")

# every code point str.split() splits on, some that look like space but are not, specials
SPACES = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
NEAR = ["\x00", "\x1b", "\u200b", "\ufeff", "\u180e", "\xad", "é", "ß", "İ", "日本", "😀"]
WORDS = ["the", "cat", "sat", "Cat", "ÉTÉ", "naïve", "日本", "<s>", "</s>", "<unk>", "<pad>",
         "a" * 9, "a" * 17, "x"]


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "naïve", "日本", "ÉTÉ"]
    out = []
    for _ in range(n):
        ids = rng.integers(0, len(vocab), size=int(rng.integers(0, 9)))
        out.append(" ".join(vocab[i] for i in ids))
    return out


@pytest.fixture(scope="module")
def model_tok(tmp_path_factory):
    path = tmp_path_factory.mktemp("ngram_lines") / "train.txt"
    path.write_text("\n".join(corpus()) + "\n", encoding="utf-8")
    res = train_ngram(path, order=4, smoothing="mkn")
    return res.model, res.tokenizer


text = st.lists(st.sampled_from(SPACES + NEAR + WORDS + [" ", " ", "\t"]), max_size=14).map("".join)


@needs_core
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(text, max_size=6), lowercase=st.booleans())
def test_compiled_split_equals_encode(lines, lowercase):
    tok = WordTokenizer.from_vocab(WORDS, mode="whitespace", lowercase=lowercase)
    ids, offsets, nbytes = encode_lines(tok, lines, tok.bos_id, tok.eos_id)
    assert offsets[0] == 0 and offsets[-1] == ids.size and offsets.size == len(lines) + 1
    for r, line in enumerate(lines):
        assert ids[offsets[r]:offsets[r + 1]].tolist() == [tok.bos_id, *tok.encode(line),
                                                            tok.eos_id]
    assert nbytes == sum(len(s.encode("utf-8")) for s in lines)


@needs_core
def test_split_hand_example():
    tok = WordTokenizer.from_vocab(["the", "cat"], mode="whitespace")
    ids, offsets, nbytes = encode_lines(tok, ["the\u3000cat <s> dog", "", " the "], 2, 3)
    # <s> in text is an ordinary (unknown) word, as in WordTokenizer.encode
    assert ids.tolist() == [2, 4, 5, 1, 1, 3, 2, 3, 2, 4, 3]
    assert offsets.tolist() == [0, 6, 8, 11]
    assert nbytes == len("the\u3000cat <s> dog".encode()) + 5
    # each of the 29 space characters splits; look-alikes do not
    lines = [f"the{c}cat" for c in SPACES] + [f"the{c}cat" for c in NEAR]
    ids, offsets, _ = encode_lines(tok, lines, 2, 3)
    rows = [ids[offsets[r]:offsets[r + 1]].tolist() for r in range(len(lines))]
    assert rows == [[2, 4, 5, 3]] * len(SPACES) + [[2, 1, 3]] * len(NEAR)


@needs_core
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(seqs=st.lists(st.lists(st.integers(0, 14), min_size=1, max_size=12), min_size=1,
                     max_size=8))
def test_flat_kernel_equals_padded(model_tok, seqs):
    model, _ = model_tok
    index = query.query_index(model.tables, model.bos_id)
    flat = np.array([i for s in seqs for i in s], dtype=np.int64)
    offsets = np.cumsum([0] + [len(s) for s in seqs]).astype(np.int64)
    got = index.score_flat(flat, offsets)
    x = np.full((len(seqs), max(map(len, seqs))), model.eos_id, dtype=np.int64)
    for r, s in enumerate(seqs):
        x[r, :len(s)] = s
    want = query.reference_log10probs(model.tables, x, model.bos_id)
    expect = np.concatenate([want[r, :len(s) - 1] for r, s in enumerate(seqs)])
    assert got.tobytes() == expect.tobytes()


@needs_core
def test_flat_kernel_refuses_bad_layout(model_tok):
    index = query.query_index(model_tok[0].tables, model_tok[0].bos_id)
    ids = np.array([2, 4, 3], dtype=np.int64)
    with pytest.raises(ValueError, match="at least one id"):
        index.score_flat(ids, np.array([0, 0, 3], dtype=np.int64))
    with pytest.raises(ValueError, match="start at 0"):
        index.score_flat(ids, np.array([0, 2], dtype=np.int64))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        index.score_flat(np.array([2, 10**6], dtype=np.int64), np.array([0, 2], dtype=np.int64))


@needs_core
def test_perplexity_fast_path_is_bit_identical(model_tok, monkeypatch):
    model, tok = model_tok
    lines = corpus(60, seed=1) + ["", "unseen words here", "the  cat\tsat\u00a0on", "<s> the",
                                  " ".join(["the cat sat on a mat"] * 300)]  # scored in windows
    fast = score_lines(model, tok, lines)
    assert fast is not None
    assert fast.offsets.tolist()[-1] == fast.targets.size == fast.logprobs.size
    got = perplexity(model, tok, lines)
    monkeypatch.setattr(type(model), "score_lines", lambda self, t, x: None)
    monkeypatch.setattr(type(model), "score_ids", None)  # the torch path
    general = perplexity(model, tok, lines)
    assert got == general  # every field, floats bit for bit
    lp, targets, words, nbytes = ppl_mod._score_framed(model, tok, lines, None)
    assert lp.tobytes() == fast.logprobs.tobytes() and np.array_equal(targets, fast.targets)
    assert (words, nbytes) == (fast.words, fast.bytes)


@needs_core
def test_fast_path_declines_other_tokenizers(model_tok):
    model, tok = model_tok
    regex_tok = WordTokenizer(tok.vocab[4:], mode="regex")
    assert not fast_path_applies(model, regex_tok)
    assert score_lines(model, regex_tok, ["the cat"]) is None
    bigger = WordTokenizer.from_vocab(tok.vocab[4:] + [f"extra{i}" for i in range(50)])
    assert score_lines(model, bigger, ["the cat"]) is None
    # declined, the evaluator still scores (the general path)
    assert perplexity(model, regex_tok, ["the cat"]).tokens == 3
