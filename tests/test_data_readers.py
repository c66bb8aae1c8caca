"""Corpus readers: text files, directories, globs, .gz, JSONL, the NLTK tagged format, bad input."""

import gzip
import io
import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule.data import (
    corpus_stats,
    iter_chunks,
    iter_documents,
    iter_lines,
    iter_sentences,
    iter_stream_text,
    read_nltk_tagged,
    read_text,
    resolve_paths,
)
from chainrule.data.readers import _split_lines
from chainrule.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BROWN = SHARED / "brown"
needs_brown = pytest.mark.skipif(
    not (BROWN / "nltk-brown.zip").exists(), reason="../shared/data/brown is absent"
)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


# -- paths ---------------------------------------------------------------------------------------
def test_resolve_paths_file_directory_glob(tmp_path):
    a = write(tmp_path / "a.txt", "a\n")
    write(tmp_path / "d" / "z.txt", "z\n")
    write(tmp_path / "d" / "sub" / "b.txt", "b\n")
    write(tmp_path / "d" / ".hidden", "h\n")
    write(tmp_path / "d" / "tokens.bin", b"\x01\x00\x02\x00")
    got = resolve_paths([a, tmp_path / "d", str(tmp_path / "*.txt")])
    # the directory is walked recursively in sorted order, hidden and binary files skipped;
    # the glob's match a.txt is already listed, so it is not repeated
    assert got == [a, tmp_path / "d" / "sub" / "b.txt", tmp_path / "d" / "z.txt"]


def test_missing_path_and_empty_glob_are_clear(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        resolve_paths([tmp_path / "nope.txt"])
    with pytest.raises(DataError, match="matches no files"):
        resolve_paths([str(tmp_path / "*.nothing")])
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="no corpus files"):
        resolve_paths([tmp_path / "empty_dir"])


# -- text ----------------------------------------------------------------------------------------
def test_gz_reads_like_plain(tmp_path):
    text = "first line\nsecond line é\n\nlast"
    plain = write(tmp_path / "c.txt", text)
    gz = tmp_path / "c.txt.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    assert read_text(gz) == read_text(plain) == text
    assert list(iter_lines([gz])) == text.splitlines()
    assert list(iter_sentences(gz)) == ["first line", "second line é", "last"]


def test_documents_sentences_and_stream_text(tmp_path):
    write(tmp_path / "d" / "1.txt", "a b\n\nc\n")
    write(tmp_path / "d" / "2.txt", "d e")  # no final newline
    assert list(iter_documents(tmp_path / "d")) == ["a b\n\nc\n", "d e"]
    assert list(iter_sentences(tmp_path / "d")) == ["a b", "c", "d e"]
    # stream text: every document ends with a newline
    assert "".join(iter_stream_text(tmp_path / "d")) == "a b\n\nc\nd e\n"


def test_crlf_lines(tmp_path):
    write(tmp_path / "w.txt", "one\r\ntwo\r\n\r\nthree")
    assert list(iter_sentences(tmp_path / "w.txt")) == ["one", "two", "three"]


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet="ab \n\r\x0c\u2028", max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=4),
)
def test_split_lines_ignores_chunk_boundaries(text, cuts):
    cuts = sorted({min(c, len(text)) for c in cuts})
    parts = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    assert list(_split_lines(parts, universal=True)) == text.splitlines()
    expected = text.split("\n")
    if expected[-1] == "":
        expected.pop()
    assert list(_split_lines(parts)) == [e.removesuffix("\r") for e in expected]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab \n\t€"), max_size=300), st.integers(4, 40))
def test_chunks_reassemble_the_document(tmp_path_factory, text, chunk_chars):
    path = tmp_path_factory.mktemp("chunks") / "c.txt"
    path.write_text(text + "x", encoding="utf-8", newline="")  # never empty
    chunks = list(iter_chunks(path, chunk_chars=chunk_chars))
    assert "".join(c.text for c in chunks) == text + "x"
    assert [c.last for c in chunks] == [False] * (len(chunks) - 1) + [True]
    # pieces stay bounded: a hard cut happens at the latest at 8x the target
    assert max(len(c.text) for c in chunks) <= 8 * chunk_chars + 8 * chunk_chars


def test_chunks_cut_after_newlines_followed_by_text(tmp_path):
    lines = [f"line number {i} " * 3 for i in range(200)]
    path = write(tmp_path / "c.txt", "\n".join(lines) + "\n")
    chunks = list(iter_chunks(path, chunk_chars=100))
    assert len(chunks) > 10
    for c in chunks[:-1]:
        assert c.text.endswith("\n")


# -- JSONL ---------------------------------------------------------------------------------------
def test_jsonl_field_and_documents(tmp_path):
    recs = [{"text": "hello world", "id": 1}, {"text": "two\nlines", "id": 2}]
    path = write(tmp_path / "r.jsonl", "\n".join(json.dumps(r) for r in recs) + "\n\n")
    assert list(iter_documents(path)) == ["hello world", "two\nlines"]
    assert list(iter_sentences(path)) == ["hello world", "two", "lines"]
    other = write(tmp_path / "r2.jsonl", json.dumps({"body": "x y z"}) + "\n")
    assert list(iter_documents(other, field="body")) == ["x y z"]


def test_jsonl_bad_line_and_missing_field_name_file_and_line(tmp_path):
    bad = write(tmp_path / "bad.jsonl", '{"text": "ok"}\n\n{"text": broken}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl' line 3 is not valid JSON"):
        list(iter_documents(bad))
    missing = write(tmp_path / "m.jsonl", '{"text": "ok"}\n{"body": "no"}\n')
    with pytest.raises(DataError, match=r"m\.jsonl' line 2 has no field 'text' \(it has: 'body'\)"):
        list(iter_documents(missing))
    number = write(tmp_path / "n.jsonl", '{"text": 5}\n')
    with pytest.raises(DataError, match=r"field .text. is not a string \(it is int\)"):
        list(iter_documents(number))


# -- bad input -----------------------------------------------------------------------------------
def test_invalid_utf8_names_file_and_byte_offset(tmp_path):
    path = write(tmp_path / "latin.txt", b"caf" + b"\xe9 ok\n")
    with pytest.raises(DataError, match=r"latin\.txt' is not valid UTF-8 \(byte offset 3\)"):
        read_text(path)


def test_invalid_utf8_offset_across_read_chunks(tmp_path):
    # a 3-byte character split over two reads, then a bad byte far into the file
    from chainrule.data.readers import _decode_stream

    data = ("ab€" * 1000).encode() + b"\xff"
    with pytest.raises(DataError, match=f"byte offset {len(data) - 1}"):
        list(_decode_stream(io.BytesIO(data), "x", chunk_bytes=7))
    assert "".join(_decode_stream(io.BytesIO(data[:-1]), "x", chunk_bytes=7)) == "ab€" * 1000


def test_binary_and_empty_corpus(tmp_path):
    binary = write(tmp_path / "model.bin", b"\x00\x01\x02text")
    with pytest.raises(DataError, match="binary file"):
        list(iter_sentences(binary))
    empty = write(tmp_path / "empty.txt", "\n  \n")
    with pytest.raises(DataError, match="is empty"):
        list(iter_sentences(empty))
    with pytest.raises(DataError, match="is empty"):
        list(iter_documents(empty))


def test_truncated_gz_and_broken_zip(tmp_path):
    gz = tmp_path / "c.txt.gz"
    gz.write_bytes(gzip.compress(b"some text\n" * 100)[:30])
    with pytest.raises(DataError, match=r"c\.txt\.gz' cannot be read .*corrupt or truncated"):
        read_text(gz)
    bad_zip = write(tmp_path / "b.zip", b"PK not really a zip")
    with pytest.raises(DataError, match="not a readable zip archive"):
        list(read_nltk_tagged(bad_zip))


def test_zip_given_as_text_is_explained(tmp_path):
    path = tmp_path / "c.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("c/ca01", "The/at dog/nn ./.\n")
    with pytest.raises(DataError, match="--format nltk"):
        list(iter_sentences(path, format="text"))


# -- NLTK tagged ---------------------------------------------------------------------------------
def make_nltk_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("brown/", "")
        z.writestr("brown/README", "not a sentence\n")
        z.writestr("brown/CONTENTS", "nor this\n")
        z.writestr("brown/cats.txt", "ca01 news\n")
        z.writestr("brown/cb01", "\n\n\tLater/rb text/nn ./.\n")
        z.writestr(
            "brown/ca01",
            "\n\n\tThe/at jury/nn said/vbd ./.\n\n\n\tIt/pps cost/vbd 1/2/cd dollar/nn ./.\n"
            "Headline/nn-hl here/rb\n",
        )
    return path


def test_nltk_zip_sentences_tags_dropped(tmp_path):
    z = make_nltk_zip(tmp_path / "mini.zip")
    assert list(read_nltk_tagged(z)) == [
        ["The", "jury", "said", "."],
        ["It", "cost", "1/2", "dollar", "."],
        ["Headline", "here"],
        ["Later", "text", "."],
    ]
    # auto-detected as NLTK; a document is one member file
    docs = list(iter_documents(z))
    assert docs == ["The jury said .\nIt cost 1/2 dollar .\nHeadline here\n", "Later text .\n"]


def test_nltk_token_without_tag(tmp_path):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("brown/ca01", "The/at dog ./.\n")
    with pytest.raises(DataError, match=r"line 1: token 'dog' is not word/TAG"):
        list(read_nltk_tagged(path))


@pytest.mark.shared_data
@needs_brown
def test_brown_zip_matches_the_distributed_sentences():
    ours = [" ".join(s) for s in read_nltk_tagged(BROWN / "nltk-brown.zip")]
    theirs = []
    for name in ("train", "valid", "test"):
        theirs += (BROWN / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    assert ours == theirs


@pytest.mark.shared_data
@needs_brown
def test_brown_stats_match_wc():
    text = "".join((BROWN / f"{n}.txt").read_text(encoding="utf-8") for n in ("train", "valid", "test"))
    stats = corpus_stats(BROWN / "nltk-brown.zip")
    assert stats.documents == 500
    assert stats.lines == text.count("\n")
    assert stats.words == len(text.split())
    assert stats.characters == len(text)
    assert stats.distinct_characters == len(set(text))


def test_data_public_api_is_all():
    import types

    from chainrule import data

    public = {
        n for n in dir(data)
        if not n.startswith("_") and not isinstance(getattr(data, n), types.ModuleType)
    }
    assert public == set(data.__all__)
