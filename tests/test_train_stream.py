"""Neural training reads its corpus from the token cache: memory-mapped ids, equal to the
in-memory path (``read_corpus`` -> ``split_text`` -> ``encode_text``) for the same text."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainrule.data import iter_text_pieces, load_tokenized, split_text
from chainrule.errors import DataError
from chainrule.tokenizers import train_tokenizer
from chainrule.training.data import (
    EvalSampler,
    StreamSampler,
    WindowSampler,
    corpus_ids,
    encode_text,
    read_corpus,
)

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT / "src" / "chainrule" / "resources" / "tinyshakespeare.txt"

# every line break str.splitlines knows, blank and whitespace-only lines, a line with spaces
# around it, a special-token spelling, and a file that does not end in a newline
AWKWARD = [
    "first line\r\nsecond\rthird\x0cfourth\x0bfifth\x1csixth\x85seventh\u2028eighth\u2029nine\n",
    "\n   \n\t\n  padded line  \nwith <s> inside </s>\n\nlast line without newline",
    "third file\r\n\r\nends\r\n",
]


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))  # bytes: no newline translation
    return path


def files_of(tmp_path: Path, texts: list[str]) -> list[Path]:
    return [write(tmp_path / f"f{i}.txt", t) for i, t in enumerate(texts)]


@pytest.mark.parametrize("kind", ["char", "word"])
def test_lines_ids_equal_encode_text(tmp_path, kind):
    files = files_of(tmp_path, AWKWARD)
    tok = train_tokenizer(kind, files)
    data = corpus_ids(files, tok, tmp_path / "cache", boundaries="lines", val_fraction=0)
    expected = encode_text(read_corpus(files), tok, "lines")
    assert data.val is None
    assert data.train.tolist() == expected.tolist()
    assert isinstance(data.train, np.memmap)


def test_stream_ids_equal_encode_text(tmp_path):
    texts = [t if t.endswith("\n") else t + "\n" for t in AWKWARD]  # the stream ends each file
    files = files_of(tmp_path, texts)
    tok = train_tokenizer("bytebpe", files, vocab_size=300)
    data = corpus_ids(files, tok, tmp_path / "cache", boundaries="none", val_fraction=0)
    assert data.train.tolist() == encode_text(read_corpus(files), tok, "none").tolist()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(alphabet="ab \t\n\r\x0c\x85\u2028", min_size=1, max_size=40),
                min_size=1, max_size=3))
def test_lines_ids_equal_encode_text_for_any_line_breaks(tmp_path_factory, texts):
    if not "".join(texts).strip():
        return
    tmp = tmp_path_factory.mktemp("c")
    files = files_of(tmp, texts)
    tok = train_tokenizer("char", ["ab \t"])
    data = corpus_ids(files, tok, tmp / "cache", boundaries="lines", val_fraction=0)
    assert data.train.tolist() == encode_text(read_corpus(files), tok, "lines").tolist()


def test_tiny_shakespeare_char_split_is_nanogpts_and_a_view(tmp_path):
    tok = train_tokenizer("char", [SHAKESPEARE])
    data = corpus_ids([SHAKESPEARE], tok, tmp_path / "cache", boundaries="none", val_fraction=0.1)
    assert (len(data.train), len(data.val)) == (1_003_854, 111_540)
    whole = data.caches[0].ids
    for part in (data.train, data.val):
        assert isinstance(part, np.memmap) and np.shares_memory(part, whole)
        assert np.shares_memory(np.asarray(part), whole)  # what the training loop does with it
    train_text, val_text = split_text(read_corpus([SHAKESPEARE]), [0.9, 0.1])
    assert data.val.tolist() == encode_text(val_text, tok, "none").tolist()
    assert data.train[-1000:].tolist() == encode_text(train_text[-1000:], tok, "none").tolist()


def test_lines_split_cuts_at_a_line_start(tmp_path):
    lines = [f"line number {i}" for i in range(10)]
    files = files_of(tmp_path, ["\n".join(lines) + "\n"])
    tok = train_tokenizer("word", files)
    data = corpus_ids(files, tok, tmp_path / "cache", boundaries="lines", val_fraction=0.2)
    assert data.val.tolist() == encode_text("\n".join(lines[8:]), tok, "lines").tolist()
    assert data.train.tolist() == encode_text("\n".join(lines[:8]), tok, "lines").tolist()
    assert data.val[0] == tok.bos_id and np.shares_memory(data.val, data.caches[0].ids)


def test_val_data_gets_its_own_cache_and_caches_are_reused(tmp_path):
    train_file = write(tmp_path / "train.txt", "the cat sat\non the mat\n")
    val_file = write(tmp_path / "valid.txt", "the mat sat\n")
    tok = train_tokenizer("word", [train_file])
    first = corpus_ids([train_file], tok, tmp_path / "c", boundaries="lines", val_data=val_file)
    assert [c.directory.name for c in first.caches] == ["train", "valid"]
    assert not any(c.reused for c in first.caches)
    assert first.val.tolist() == encode_text("the mat sat\n", tok, "lines").tolist()
    again = corpus_ids([train_file], tok, tmp_path / "c", boundaries="lines", val_data=val_file)
    assert all(c.reused for c in again.caches)
    assert again.train.tolist() == first.train.tolist()


def test_lines_need_bos_and_eos(tmp_path):
    class NoSpecials:
        bos_id = eos_id = None

    with pytest.raises(DataError, match="boundaries=lines needs a tokenizer with <s>"):
        corpus_ids(files_of(tmp_path, ["a\n"]), NoSpecials(), tmp_path / "c", boundaries="lines")


def rss_file_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("RssFile:")).split()[1]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("sampler", ["window", "stream", "eval"])
def test_sampling_does_not_keep_the_token_file_mapped(tmp_path, sampler):
    """Each batch's pages of tokens.bin are unmapped again, so the resident size stays flat
    however many random windows a long run reads (a fault maps a whole page-cache folio)."""
    import torch

    path = tmp_path / "tokens.bin"
    np.arange(1 << 25, dtype=np.uint16).tofile(path)  # 64 MB, in the page cache after writing
    ids = np.asarray(np.memmap(path, dtype=np.uint16, mode="r")[1000:])  # as the loop gets it
    cpu = torch.device("cpu")
    s = {"window": lambda: WindowSampler(ids, 12, 64, 0, cpu),
         "stream": lambda: StreamSampler(ids, 96, 64, micro_batches=1, device=cpu),
         "eval": lambda: EvalSampler(ids, 12, 64, 0, cpu, "training corpus")}[sampler]()
    before = rss_file_mb()
    batches = [s.batch(step, 0) for step in range(150)]
    assert rss_file_mb() - before < 8
    assert all(((b.y - b.x) % 65536 == 1).all() for b in batches)  # windows of the file's ids


# -- tokenizer training reads files piece by piece ----------------------------------------------
def test_text_pieces_join_to_the_file_and_count_the_same_words(tmp_path):
    text = "".join(f"word{i % 13} and  more\n{'  ' if i % 5 == 0 else ''}" for i in range(400))
    path = write(tmp_path / "t.txt", text)
    pieces = list(iter_text_pieces(path, chunk_chars=64))
    assert len(pieces) > 10 and "".join(pieces) == text
    assert sum((Counter(p.split()) for p in pieces), Counter()) == Counter(text.split())


@pytest.mark.parametrize("kind", ["char", "word"])
def test_tokenizer_from_files_equals_from_text(tmp_path, kind):
    texts = ["to be or not to be\nthat is the question\n", "whether tis nobler\n"]
    files = files_of(tmp_path, texts)
    assert train_tokenizer(kind, files).to_dict() == train_tokenizer(kind, texts).to_dict()


def test_tokenizer_from_an_empty_file_is_one_sentence(tmp_path):
    empty = write(tmp_path / "empty.txt", " \n\n")
    with pytest.raises(Exception, match="is empty or only whitespace"):
        train_tokenizer("char", [empty])


# -- the command ------------------------------------------------------------------------------
TINY = ["n_layer=1", "n_embd=16", "n_head=2", "block_size=16", "batch_size=4", "max_iters=4",
        "eval_interval=2", "eval_iters=2", "device=cpu"]


def corpus_file(tmp_path: Path) -> Path:
    return write(tmp_path / "c.txt", "".join(f"line {i % 7} of the corpus\n" for i in range(300)))


def test_cli_hands_the_loop_memory_mapped_views(tmp_path, monkeypatch, capsys):
    from chainrule.cli import main
    from chainrule.training import loop

    seen = {}

    def fake_train(cfg, train_ids, val_ids, out_dir, **kwargs):
        seen.update(train=train_ids, val=val_ids)
        return {"steps": 0, "best_val_loss": None, "parameters": 0, "tokens_per_s": 0.0,
                "ms_per_iter": 0.0, "best_step": -1}

    monkeypatch.setattr(loop, "train", fake_train)
    text = corpus_file(tmp_path)
    code = main(["train", "--family", "gpt", "--kind", "char", *TINY, str(text),
                 "-o", str(tmp_path / "m"), "--json"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    cache = tmp_path / "m" / "data" / "train"
    assert (cache / "tokens.bin").is_file() and (cache / "tokens.json").is_file()
    ids = load_tokenized(cache).ids
    for part in (seen["train"], seen["val"]):  # memmap keeps filename only on views, not copies
        assert isinstance(part, np.memmap)
        assert Path(part.filename) == (cache / "tokens.bin").resolve()
    assert summary["train_tokens"] + summary["val_tokens"] == len(ids) == len(text.read_text())


def test_cli_trains_from_the_cache_and_resume_reuses_it(tmp_path, capsys):
    from chainrule.cli import main

    text, out, cache = corpus_file(tmp_path), tmp_path / "m", tmp_path / "ids"
    opts = ["--family", "gpt", "--kind", "char", "-o", str(out), "--cache", str(cache)]
    argv = ["train", *opts, *TINY, str(text)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"tokenised into {cache / 'train'}" in err
    assert (cache / "train" / "tokens.bin").is_file() and not (out / "data").exists()
    assert main([*argv, "max_iters=6", "--resume"]) == 0
    assert f"reused {cache / 'train'}" in capsys.readouterr().err
    code = main(argv)  # a new run into a model directory that holds one: refused at once
    err = capsys.readouterr().err
    assert code == 2 and "already holds a training run" in err and "tokenised" not in err


def test_cli_cache_option_is_neural_only(tmp_path, capsys):
    from chainrule.cli import main

    code = main(["train", "--family", "ngram", str(corpus_file(tmp_path)), "-o",
                 str(tmp_path / "m"), "--cache", str(tmp_path / "c")])
    assert code == 2 and "--cache applies to neural families" in capsys.readouterr().err
