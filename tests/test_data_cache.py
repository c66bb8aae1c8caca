"""The tokenised-corpus cache (tokens.bin + tokens.json), streaming in bounded memory, and the
``chainrule corpus`` commands."""

import json
import os
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import regex

from chainrule.cli import main
from chainrule.data import load_tokenized, tokenize_corpus
from chainrule.errors import DataError, TokenizerError
from chainrule.tokenizers.base import BOS, EOS, Tokenizer, register_tokenizer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


_SHIFT = list(range(2, 258))


@register_tokenizer
class ByteTestTokenizer(Tokenizer):
    """UTF-8 bytes shifted past two specials: <s>=0, </s>=1, byte b -> b + 2."""

    kind = "test-bytes"

    def __init__(self, salt: str = ""):
        self.salt = salt  # changes the fingerprint without changing the ids
        self.special_tokens = {BOS: 0, EOS: 1}

    @property
    def vocab_size(self) -> int:
        return 258

    def encode(self, text, *, allow_special=False):
        return list(map(_SHIFT.__getitem__, text.encode("utf-8")))

    def decode(self, ids):
        return bytes(i - 2 for i in ids if i >= 2).decode("utf-8")

    def id_to_token(self, idx):
        return {0: BOS, 1: EOS}.get(idx, chr(idx - 2))

    def token_to_id(self, token):
        return self.special_tokens.get(token)

    def to_dict(self):
        return {"salt": self.salt}

    @classmethod
    def from_dict(cls, data):
        return cls(data["salt"])


class WideTestTokenizer(ByteTestTokenizer):
    """One id per code point (ord + 2) and a vocabulary too big for uint16."""

    kind = "test-wide"

    @property
    def vocab_size(self) -> int:
        return 70_000

    def encode(self, text, *, allow_special=False):
        return [ord(c) + 2 for c in text]


class PretokTestTokenizer(ByteTestTokenizer):
    """GPT-2's pre-tokenisation pattern, each piece hashed to an id: cutting the text at the
    wrong place (e.g. between ' ' and a word) changes the ids."""

    kind = "test-pretok"
    PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

    @property
    def vocab_size(self) -> int:
        return 1000

    def encode(self, text, *, allow_special=False):
        return [2 + zlib.crc32(p.encode()) % 998 for p in self.PATTERN.findall(text)]


def make_corpus(tmp_path: Path) -> Path:
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "a.txt").write_text("héllo world\n\nsecond line\n", encoding="utf-8")
    (d / "b.txt").write_text("third", encoding="utf-8")
    return d


def enc(text: str) -> list[int]:
    return ByteTestTokenizer().encode(text)


# -- frames and framing --------------------------------------------------------------------------
def test_lines_frame_with_bos_eos(tmp_path):
    d = make_corpus(tmp_path)
    tc = tokenize_corpus(d, ByteTestTokenizer(), tmp_path / "cache", bos=True, eos=True)
    expected, offsets = [], []
    for line in ("héllo world", "second line", "third"):
        offsets.append(len(expected))
        expected += [0, *enc(line), 1]
    assert tc.ids.tolist() == expected
    assert tc.doc_offsets.tolist() == offsets
    assert tc.document(1).tolist() == [0, *enc("second line"), 1]
    assert tc.ids.dtype == np.uint16 and not tc.reused
    # the files on disk are what the header says
    header = json.loads((tmp_path / "cache" / "tokens.json").read_text())
    assert header["count"] == len(expected) and header["dtype"] == "uint16"
    assert os.path.getsize(tmp_path / "cache" / "tokens.bin") == 2 * len(expected)
    raw = np.fromfile(tmp_path / "cache" / "tokens.bin", dtype="<u2")
    assert raw.tolist() == expected


def test_documents_and_stream_frames(tmp_path):
    d = make_corpus(tmp_path)
    docs = ["héllo world\n\nsecond line\n", "third"]
    tc = tokenize_corpus(d, ByteTestTokenizer(), tmp_path / "c1", frame="documents", eos=True)
    assert tc.ids.tolist() == enc(docs[0]) + [1] + enc(docs[1]) + [1]
    tc = tokenize_corpus(d, ByteTestTokenizer(), tmp_path / "c2", frame="stream", bos=True,
                         eos=True)
    # one stream: documents end in a newline, BOS/EOS only around the whole corpus
    assert tc.ids.tolist() == [0, *enc(docs[0] + "third\n"), 1]
    assert tc.doc_offsets.tolist() == [0, 1 + len(enc(docs[0]))]


def test_stream_frame_in_small_chunks_equals_one_encode(tmp_path):
    lines = [f"Line {i}: it's  a test,\tof {i * 7} words!" for i in range(400)]
    text = "\n".join(lines) + "\n\n\n  indented tail\n"
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    tok = PretokTestTokenizer()
    tc = tokenize_corpus(tmp_path / "c.txt", tok, tmp_path / "cache", frame="stream",
                         chunk_chars=64, batch_chars=200)
    assert tc.ids.tolist() == tok.encode(text)


def test_uint32_when_the_vocabulary_needs_it(tmp_path):
    (tmp_path / "c.txt").write_text("a\U00010000b\n", encoding="utf-8")
    tc = tokenize_corpus(tmp_path / "c.txt", WideTestTokenizer(), tmp_path / "cache")
    assert tc.ids.dtype == np.uint32
    assert tc.ids.tolist() == [ord("a") + 2, 0x10000 + 2, ord("b") + 2]


def test_parallel_workers_give_identical_ids(tmp_path):
    (tmp_path / "c.txt").write_text("".join(f"sentence {i} ü\n" for i in range(3000)))
    tok = ByteTestTokenizer()
    one = tokenize_corpus(tmp_path / "c.txt", tok, tmp_path / "one", eos=True, batch_chars=2000)
    two = tokenize_corpus(tmp_path / "c.txt", tok, tmp_path / "two", eos=True, batch_chars=2000,
                          workers=2)
    assert np.array_equal(one.ids, two.ids)
    assert np.array_equal(one.doc_offsets, two.doc_offsets)


# -- reuse and rebuild ---------------------------------------------------------------------------
def test_cache_reused_until_corpus_or_tokenizer_changes(tmp_path):
    d = make_corpus(tmp_path)
    cache = tmp_path / "cache"
    first = tokenize_corpus(d, ByteTestTokenizer(), cache)
    assert not first.reused and first.rebuilt_because == "no cache yet"
    again = tokenize_corpus(d, ByteTestTokenizer(), cache)
    assert again.reused and again.ids.tolist() == first.ids.tolist()

    other = tokenize_corpus(d, ByteTestTokenizer(salt="v2"), cache)
    assert not other.reused and other.rebuilt_because == "tokenizer changed"

    (d / "b.txt").write_text("third, changed", encoding="utf-8")
    changed = tokenize_corpus(d, ByteTestTokenizer(salt="v2"), cache)
    assert changed.rebuilt_because == "corpus changed"
    assert changed.ids.tolist()[-len(enc("third, changed")):] == enc("third, changed")

    framed = tokenize_corpus(d, ByteTestTokenizer(salt="v2"), cache, eos=True)
    assert framed.rebuilt_because == "eos changed"


def test_corrupt_header_or_truncated_ids_are_rebuilt_or_reported(tmp_path):
    d = make_corpus(tmp_path)
    cache = tmp_path / "cache"
    good = tokenize_corpus(d, ByteTestTokenizer(), cache).ids.tolist()

    bin_path = cache / "tokens.bin"
    bin_path.write_bytes(bin_path.read_bytes()[:-2])
    with pytest.raises(DataError, match="has .* bytes but its header promises"):
        load_tokenized(cache)
    rebuilt = tokenize_corpus(d, ByteTestTokenizer(), cache)
    assert "truncated or corrupt" in rebuilt.rebuilt_because
    assert rebuilt.ids.tolist() == good

    (cache / "tokens.json").write_text('{"format": "chainrule-tokens", "vers')
    with pytest.raises(DataError, match="header .* is corrupt"):
        load_tokenized(cache)
    assert tokenize_corpus(d, ByteTestTokenizer(), cache).ids.tolist() == good
    assert load_tokenized(cache, ByteTestTokenizer()).ids.tolist() == good
    with pytest.raises(DataError, match="another tokenizer"):
        load_tokenized(cache, ByteTestTokenizer(salt="x"))
    with pytest.raises(DataError, match="no tokenised corpus"):
        load_tokenized(tmp_path / "nowhere")


def test_many_offsets_go_to_offsets_bin(tmp_path, monkeypatch):
    from chainrule.data import cache

    d = make_corpus(tmp_path)
    inline = tokenize_corpus(d, ByteTestTokenizer(), tmp_path / "c1", bos=True)
    monkeypatch.setattr(cache, "INLINE_OFFSETS", 2)
    stored = tokenize_corpus(d, ByteTestTokenizer(), tmp_path / "c2", bos=True)
    assert stored.header["doc_offsets"] is None and (tmp_path / "c2" / "offsets.bin").exists()
    assert not (tmp_path / "c1" / "offsets.bin").exists()
    reopened = load_tokenized(tmp_path / "c2")
    assert reopened.doc_offsets.tolist() == inline.doc_offsets.tolist() == [0, 13, 25]
    assert reopened.document(2).tolist() == [0, *enc("third")]
    (tmp_path / "c2" / "offsets.bin").write_bytes(b"\0" * 8)
    with pytest.raises(DataError, match="should hold 3 document offsets"):
        load_tokenized(tmp_path / "c2")


def test_framing_needs_the_special_token(tmp_path):
    d = make_corpus(tmp_path)
    tok = ByteTestTokenizer()
    tok.special_tokens = {}
    with pytest.raises(TokenizerError, match="no <s> token"):
        tokenize_corpus(d, tok, tmp_path / "cache", bos=True)


# -- bounded memory ------------------------------------------------------------------------------
def test_streaming_memory_is_bounded(tmp_path):
    """A 4 MB corpus is counted and tokenised (per document and per line) with a Python-heap
    peak (numpy buffers included) below 0.5 MB: memory follows the chunk size, not the corpus."""
    from chainrule.data import corpus_stats

    line = "the quick brown fox jumps over the lazy dog; ünïcödé costs more bytes " * 2 + "\n"
    path = tmp_path / "big.txt"
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(line for _ in range(4_000_000 // len(line)))
    size = path.stat().st_size
    cap = 500_000
    assert size > 8 * cap
    small = {"chunk_chars": 1 << 12, "batch_chars": 1 << 12}
    peaks = {}
    tracemalloc.start()
    try:
        stats = corpus_stats(path, chunk_chars=1 << 12)
        peaks["stats"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        docs = tokenize_corpus(path, ByteTestTokenizer(), tmp_path / "c1", frame="documents",
                               **small)
        peaks["documents"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        lines = tokenize_corpus(path, ByteTestTokenizer(), tmp_path / "c2", eos=True, **small)
        peaks["lines"] = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    n_lines = size // len(line.encode())
    assert stats.bytes == size and stats.lines == n_lines
    assert docs.count == size
    # one EOS per line replaces its newline
    assert lines.count == size and lines.n_documents == n_lines
    assert lines.document(n_lines - 1)[-1] == 1
    assert max(peaks.values()) < cap, peaks


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_tokenize_then_reuse(tmp_path, capsys):
    d = make_corpus(tmp_path)
    tok_path = ByteTestTokenizer().save(tmp_path / "tok.json")
    argv = ["corpus", "tokenize", str(d), "--tokenizer", str(tok_path), "-o",
            str(tmp_path / "cache"), "--eos", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["reused"] is False and first["documents"] == 3 and first["dtype"] == "uint16"
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["reused"] is True and second["tokens"] == first["tokens"]
    assert load_tokenized(tmp_path / "cache").count == first["tokens"]


def test_cli_stats_and_split(tmp_path, capsys):
    d = make_corpus(tmp_path)
    assert main(["corpus", "stats", str(d), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    text = "héllo world\n\nsecond line\n" + "third"
    assert stats == {"files": 2, "documents": 2, "lines": 3, "words": 5, "characters": 30,
                     "bytes": 31, "distinct_characters": len(set(text))}
    assert main(["corpus", "split", str(d / "a.txt"), "--fractions", "0.5", "0.5", "--by",
                 "lines", "-o", str(tmp_path / "out"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (tmp_path / "out" / "train.txt").read_text() == "héllo world\n"
    assert (tmp_path / "out" / "valid.txt").read_text() == "second line\n"
    assert out["splits"]["valid"]["words"] == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["corpus", "stats", "{tmp}/missing.txt"], "does not exist"),
        (["corpus", "stats", "{tmp}/latin1.txt"], "not valid UTF-8 (byte offset 3)"),
        (["corpus", "stats", "{tmp}/blank.txt"], "is empty"),
        (["corpus", "split", "{tmp}/blank.txt", "--fractions", "0.5", "0.6", "-o", "{tmp}/o"],
         "add up to 1"),
        (["corpus", "tokenize", "{tmp}/blank.txt", "--tokenizer", "{tmp}/missing.json", "-o",
          "{tmp}/c"], "does not exist"),
    ],
)
def test_cli_bad_input_is_one_sentence(tmp_path, capsys, argv, message):
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    (tmp_path / "blank.txt").write_text("\n\n")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert err.count("\n") == 1


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "brown" / "train.txt").exists(), reason="brown data absent")
def test_brown_tokenised_round_trip(tmp_path):
    path = SHARED / "brown" / "valid.txt"
    tok = ByteTestTokenizer()
    tc = tokenize_corpus(path, tok, tmp_path / "cache", eos=True)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert tc.n_documents == len(lines)
    for i in (0, len(lines) // 2, len(lines) - 1):
        assert tok.decode(tc.document(i).tolist()[:-1]) == lines[i]


@pytest.mark.parametrize("kind", ["char", "bytebpe"])
def test_real_tokenizers_stream_in_chunks_like_one_encode(tmp_path, kind):
    tokenizers = pytest.importorskip("chainrule.tokenizers")
    if not hasattr(tokenizers, "train_tokenizer"):
        pytest.skip("chainrule.tokenizers has no train_tokenizer yet")
    text = "".join(f"Speaker {i % 7}:\n  It's {i * 13} o'clock,  isn't it?\n\n" for i in range(300))
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    tok = tokenizers.train_tokenizer(kind, [text], vocab_size=300 if kind == "bytebpe" else None)
    tc = tokenize_corpus(tmp_path / "c.txt", tok, tmp_path / "s", frame="stream",
                         chunk_chars=100, batch_chars=300)
    assert tc.ids.tolist() == tok.encode(text)
    lines = tokenize_corpus(tmp_path / "c.txt", tok, tmp_path / "l", bos=True, eos=True)
    expected = []
    for line in text.split("\n"):
        if line.strip():
            expected += [tok.bos_id, *tok.encode(line), tok.eos_id]
    assert lines.ids.tolist() == expected
