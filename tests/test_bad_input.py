"""The bad-input suite (issue 22): one row per class of bad input or fault, run through the CLI.

Every row asserts the same three things: a non-zero exit, stderr that says what is wrong in
exactly one ``error:`` line (no traceback, no "internal error"), and that nothing outside the
row's own output directory changed. The count of rows is the "classes tried" of the closing note.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from chainrule.cli import main

CORPUS = "the cat sat on the mat .\nthe dog sat on the log .\na cat saw a dog .\n" * 30


@dataclass
class Case:
    id: str
    argv: list[str]                 # {corpus} {gpt} {ngram} {tok} {out} {case} are filled in
    phrase: str                     # a piece of the one error sentence
    setup: Callable[[Path], None] | None = None   # writes the row's own inputs under {case}
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    codes: tuple[int, ...] = (1, 2)
    marks: list = field(default_factory=list)


def _write(name: str, data: bytes | str):
    def setup(case: Path):
        p = case / name
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(data, bytes) else p.write_text)(data)
    return setup


def _copy_model(src_key: str, edit: Callable[[Path], None]):
    def setup(case: Path):
        import shutil
        shutil.copytree(BASE[src_key], case / "m")
        edit(case / "m")
    return setup


def _edit_json(name: str, change: Callable[[dict], object]):
    def edit(d: Path):
        obj = json.loads((d / name).read_text())
        change(obj)
        (d / name).write_text(json.dumps(obj))
    return edit


def _truncate(name: str, keep: int):
    def edit(d: Path):
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[:keep])
    return edit


def _binary_ngram(drop: int):
    """The base n-gram model as a binary file {case}/m.ngram without its last ``drop`` bytes."""
    def setup(case: Path):
        from chainrule.models.ngram.convert import binarize

        binarize(BASE["ngram"], case / "m.ngram")
        (case / "m.ngram").write_bytes((case / "m.ngram").read_bytes()[:-drop or None])
    return setup


def _nan_weights(d: Path):
    from chainrule.fileio import read_safetensors, write_safetensors

    tensors = read_safetensors(d / "model.safetensors")
    name = min(tensors)
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    write_safetensors(d / "model.safetensors", tensors)


def _pickle_checkpoint(d: Path):
    (d / "model.safetensors").unlink()
    torch.save({"weight": torch.zeros(2)}, d / "pytorch_model.bin")


def _positive_arpa(d: Path):
    text = (d / "model.arpa").read_text()
    lines = text.splitlines()
    i = lines.index("\\1-grams:") + 2  # the second unigram
    _, rest = lines[i].split("\t", 1)
    lines[i] = "0.5\t" + rest
    (d / "model.arpa").write_text("\n".join(lines) + "\n")


def _huge_config(d: Path):
    cfg = json.loads((d / "config.json").read_text())
    cfg["n_embd"] = 65536
    (d / "config.json").write_text(json.dumps(cfg))


def _resumable_run(change: Callable[[dict], object]):
    """A finished 2-step GPT run whose train_state.json is then edited."""
    def setup(case: Path):
        out = case / "run"
        assert main(["train", "--family", "gpt", str(BASE["corpus"]), "-o", str(out), "--json",
                     "max_iters=2", "n_layer=1", "n_embd=8", "n_head=2", "block_size=8",
                     "batch_size=2", "eval_interval=1", "eval_iters=1", "--kind", "word"]) == 0
        state = json.loads((out / "last" / "train_state.json").read_text())
        change(state)
        (out / "last" / "train_state.json").write_text(json.dumps(state))
    return setup


def _raise_on_replace(code: int):
    def patch(mp: pytest.MonkeyPatch):
        def fail(src, dst, *a, **k):
            raise OSError(code, os.strerror(code), str(dst))
        mp.setattr(os, "replace", fail)
    return patch


def _allocation_failure(mp: pytest.MonkeyPatch):
    from chainrule.models import neural

    def fail(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 1099511627776 bytes.")
    mp.setattr(neural, "build_neural_model", fail)


def _hold_lock(case: Path):
    """A second writer: another process holds the lock of {out}."""
    import subprocess
    import sys
    import time

    out = case / "out"
    out.mkdir(parents=True)
    script = ("import sys, time; from chainrule.fileio import hold_directory\n"
              "with hold_directory(sys.argv[1]):\n print('held', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    HOLDERS.append(proc)
    time.sleep(0.05)


def _fifo(case: Path):
    os.mkfifo(case / "fifo.txt")


TRAIN_NGRAM = ["train", "--family", "ngram", "--order", "2", "{corpus}", "-o", "{out}"]
TRAIN_GPT = ["train", "--family", "gpt", "{corpus}", "-o", "{out}", "--kind", "word",
             "max_iters=1", "n_layer=1", "n_embd=8", "n_head=2", "block_size=8"]
TOK = ["tokenizer", "train", "--kind", "bpe", "--vocab-size", "40"]

CASES = [
    # --- corpora ---------------------------------------------------------------------------
    Case("corpus-missing", [*TOK, "{case}/nope.txt", "-o", "{out}/t.json"], "does not exist"),
    Case("corpus-empty", [*TOK, "{case}/e.txt", "-o", "{out}/t.json"], "empty",
         setup=_write("e.txt", "")),
    Case("corpus-whitespace-only", [*TOK, "{case}/e.txt", "-o", "{out}/t.json"], "empty",
         setup=_write("e.txt", " \n\n \t\n")),
    Case("corpus-binary", [*TOK, "{case}/b.bin", "-o", "{out}/t.json"], "binary",
         setup=_write("b.bin", bytes(range(256)) * 40)),
    Case("corpus-invalid-utf8", [*TOK, "{case}/l1.txt", "-o", "{out}/t.json"], "UTF-8",
         setup=_write("l1.txt", "caf\xe9 cr\xe8me\n".encode("latin-1") * 20)),
    Case("corpus-is-a-directory", [*TOK, "{case}", "-o", "{out}/t.json"], "directory"),
    Case("corpus-bad-gzip", [*TOK, "{case}/c.txt.gz", "-o", "{out}/t.json"], "gzip",
         setup=_write("c.txt.gz", b"\x1f\x8b\x08\x00 this is not gzip data")),
    Case("corpus-jsonl-without-field", [*TOK, "{case}/c.jsonl", "-o", "{out}/t.json"], "text",
         setup=_write("c.jsonl", '{"body": "a b c"}\n' * 5)),
    Case("corpus-jsonl-invalid-line", [*TOK, "{case}/c.jsonl", "-o", "{out}/t.json"], "line 2",
         setup=_write("c.jsonl", '{"text": "a b c"}\n{"text": oops\n')),
    Case("corpus-fifo", [*TRAIN_NGRAM[:5], "{case}/fifo.txt", "-o", "{out}"], "pipe",
         setup=_fifo),
    Case("corpus-stdin-for-training", [*TRAIN_GPT[:3], "-", *TRAIN_GPT[4:]], "standard input"),
    Case("vocab-too-small", ["tokenizer", "train", "--kind", "bpe", "--vocab-size", "3",
                             "{corpus}", "-o", "{out}/t.json"], "vocab"),
    Case("vocab-file-missing", [*TRAIN_NGRAM, "--vocab", "{case}/none.txt"], "vocabulary file"),
    # --- options ----------------------------------------------------------------------------
    Case("unknown-flag", [*TRAIN_NGRAM, "--bogus"], "unrecognized", codes=(2,)),
    Case("unknown-key", [*TRAIN_GPT, "n_layr=2"], "n_layr"),
    Case("key-wrong-type", [*TRAIN_GPT, "n_layer=two"], "n_layer"),
    Case("key-negative", [*TRAIN_GPT, "n_embd=-8"], "n_embd"),
    Case("heads-do-not-divide", [*TRAIN_GPT, "n_head=3"], "n_head"),
    Case("family-contradiction", [*TRAIN_GPT, "family=lstm"], "family"),
    Case("order-to-neural", [*TRAIN_GPT, "--order", "3"], "--order"),
    Case("order-zero", [*TRAIN_NGRAM[:4], "0", *TRAIN_NGRAM[5:]], "order"),
    Case("order-huge", [*TRAIN_NGRAM[:4], "1000", *TRAIN_NGRAM[5:]], "order"),
    Case("prune-too-many", [*TRAIN_NGRAM, "--prune", "0,1,1,1"], "prune"),
    Case("threads-bad", ["--threads", "lots", *TRAIN_NGRAM], "threads"),
    Case("split-fractions-nan", ["corpus", "split", "{corpus}", "-o", "{out}", "--fractions",
                                 "nan", "nan"], "finite"),
    Case("split-name-escapes", ["corpus", "split", "{corpus}", "-o", "{out}/deep", "--fractions",
                                "0.5", "0.5", "--names", "../../evil", "ok"], "plain file name"),
    Case("resume-and-overwrite", [*TRAIN_GPT, "--resume", "--overwrite"], "choose one"),
    Case("unknown-preset", [*TRAIN_GPT, "--preset", "no-such-preset"], "preset"),
    # --- checkpoints --------------------------------------------------------------------------
    Case("model-missing", ["eval", "ppl", "{case}/nomodel", "--data", "{corpus}"],
         "does not exist"),
    Case("model-no-config", ["eval", "ppl", "{case}/m", "--data", "{corpus}"], "config.json",
         setup=_copy_model("gpt", lambda d: (d / "config.json").unlink())),
    Case("config-not-json", ["eval", "ppl", "{case}/m", "--data", "{corpus}"], "config.json",
         setup=_copy_model("gpt", lambda d: (d / "config.json").write_text("{oops"))),
    Case("config-foreign-family", ["eval", "ppl", "{case}/m", "--data", "{corpus}"], "family",
         setup=_copy_model("gpt", _edit_json("config.json",
                                             lambda c: c.update(family="mamba")))),
    Case("config-edited-huge", ["eval", "ppl", "{case}/m", "--data", "{corpus}"], "shape",
         setup=_copy_model("gpt", _huge_config)),
    Case("weights-truncated", ["eval", "ppl", "{case}/m", "--data", "{corpus}"],
         "model.safetensors", setup=_copy_model("gpt", _truncate("model.safetensors", 100))),
    Case("weights-nan", ["eval", "ppl", "{case}/m", "--data", "{corpus}"], "NaN",
         setup=_copy_model("gpt", _nan_weights)),
    Case("weights-pickle-only", ["eval", "ppl", "{case}/m", "--data", "{corpus}"],
         "safetensors", setup=_copy_model("gpt", _pickle_checkpoint)),
    Case("tokenizer-corrupt", ["eval", "ppl", "{case}/m", "--data", "{corpus}"],
         "tokenizer", setup=_copy_model("gpt", lambda d: (d / "tokenizer.json").write_text("[]"))),
    Case("arpa-positive-logprob", ["ngram", "import-arpa", "{case}/m/model.arpa", "-o", "{out}"],
         "above 0", setup=_copy_model("ngram", _positive_arpa)),
    Case("arpa-truncated", ["ngram", "import-arpa", "{case}/m/model.arpa", "-o", "{out}"],
         "ARPA", setup=_copy_model("ngram", _truncate("model.arpa", 60))),
    Case("ngram-binary-truncated", ["eval", "ppl", "{case}/m.ngram", "--data", "{corpus}"],
         "truncated", setup=_binary_ngram(16)),
    Case("ngram-binary-foreign", ["eval", "ppl", "{case}/m/model.safetensors", "--data",
                                  "{corpus}"], "not a model directory or chainrule model file",
         setup=_copy_model("gpt", lambda d: None)),
    Case("ngram-binary-is-arpa", ["eval", "ppl", "{case}/m/model.arpa", "--data", "{corpus}"],
         "ARPA", setup=_copy_model("ngram", lambda d: None)),
    Case("ngram-binarize-not-arpa", ["ngram", "binarize", "{corpus}", "-o", "{out}/m.ngram"],
         "ARPA"),
    Case("resume-step-not-a-number",
         [*TRAIN_GPT[:5], "{case}/run", *TRAIN_GPT[6:], "--resume"], "step",
         setup=_resumable_run(lambda s: s.update(step="x"))),
    Case("resume-without-rng", [*TRAIN_GPT[:5], "{case}/run", *TRAIN_GPT[6:], "--resume"],
         "rng", setup=_resumable_run(lambda s: s.pop("rng", None))),
    Case("resume-other-corpus", ["train", "--family", "gpt", "{case}/other.txt", "-o",
                                 "{case}/run", "--kind", "word", "max_iters=2", "n_layer=1",
                                 "n_embd=8", "n_head=2", "block_size=8", "--resume"], "corpus",
         setup=lambda c: (_resumable_run(lambda s: None)(c),
                          (c / "other.txt").write_text(CORPUS.replace("cat", "cow")))),
    # --- outputs ------------------------------------------------------------------------------
    Case("output-parent-is-a-file", [*TOK, "{corpus}", "-o", "{case}/f.txt/t.json"],
         "not a directory", setup=_write("f.txt", "x")),
    Case("tokenizer-output-is-a-directory", [*TOK, "{corpus}", "-o", "{out}"], "directory",
         setup=lambda c: (c / "out").mkdir()),
    Case("output-read-only", [*TOK, "{corpus}", "-o", "{out}/t.json"], "read-only",
         patch=_raise_on_replace(errno.EROFS)),
    Case("output-disk-full", [*TOK, "{corpus}", "-o", "{out}/t.json"], "disk is full",
         patch=_raise_on_replace(errno.ENOSPC)),
    Case("two-writers", TRAIN_NGRAM, "another chainrule run", setup=_hold_lock),
    Case("two-writers-split", ["corpus", "split", "{corpus}", "-o", "{out}", "--fractions", "0.5",
                               "0.5"], "another chainrule run", setup=_hold_lock),
    Case("two-writers-scale-sweep", ["scale", "sweep", "{corpus}", "-o", "{out}", "--depths", "1",
                                     "--widths", "8", "--tokens", "1000"], "another chainrule run",
         setup=_hold_lock),
    Case("two-writers-dpo", ["dpo", "{gpt}", "--data", "{case}/p.jsonl", "-o", "{out}"],
         "another chainrule run", setup=lambda c: _hold_lock(c)),
    Case("other-kind-of-model", [*TRAIN_NGRAM[:7], "{case}/m"], "--overwrite",
         setup=_copy_model("gpt", lambda d: None)),
    # --- resources and decoding ---------------------------------------------------------------
    Case("no-cuda", ["generate", "{gpt}", "--device", "cuda", "--max-tokens", "2"], "CUDA",
         marks=[pytest.mark.skipif(torch.cuda.is_available(), reason="needs no CUDA")]),
    Case("ppl-no-cuda", ["eval", "ppl", "{gpt}", "--data", "{corpus}", "--device", "cuda"], "CUDA",
         marks=[pytest.mark.skipif(torch.cuda.is_available(), reason="needs no CUDA")]),
    Case("allocation-failure", [*TRAIN_GPT], "out of memory", patch=_allocation_failure),
    Case("beams-cannot-fit", ["generate", "{gpt}", "--strategy", "beam", "--beams", "1000000000",
                              "--max-tokens", "2"], "GB"),
    Case("n-cannot-fit", ["generate", "{gpt}", "--strategy", "sample", "--n", "100000000",
                          "--max-tokens", "2"], "GB"),
    Case("max-tokens-negative", ["generate", "{ngram}", "--max-tokens", "-1"], "max_new_tokens"),
    Case("pairs-missing-fields", ["eval", "pairs", "{gpt}", "--data", "{case}/p.jsonl"],
         "sentence_good", setup=_write("p.jsonl", '{"good": "a cat", "bad": "cat a"}\n')),
    Case("pairs-unk-refused", ["eval", "pairs", "{ngram}", "--data", "{case}/p.jsonl"],
         "--allow-unk", setup=_write("p.jsonl", json.dumps(
             {"sentence_good": "the zebra sat", "sentence_bad": "zebra the sat"}) + "\n")),
    Case("surprisal-unk-refused", ["eval", "surprisal", "{ngram}", "--data", "{case}/s.txt",
                                   "--refuse-unk", "-o", "{out}/s.csv"], "<unk>",
         setup=_write("s.txt", "the zebra sat\n")),
    Case("ppl-empty-test", ["eval", "ppl", "{ngram}", "--data", "{case}/e.txt"], "empty",
         setup=_write("e.txt", "\n\n")),
]


HOLDERS: list = []
BASE: dict[str, Path] = {}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from chainrule.models.neural import build_neural_model
    from chainrule.tokenizers import train_tokenizer

    root = tmp_path_factory.mktemp("bad_input")
    corpus = root / "corpus.txt"
    corpus.write_text(CORPUS)
    tok = train_tokenizer("word", [CORPUS])
    gpt = root / "gpt"
    build_neural_model("gpt", vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2,
                       n_embd=8).save(gpt)
    tok.save(gpt / "tokenizer.json")
    ngram = root / "ngram"
    assert main(["train", "--family", "ngram", "--order", "2", str(corpus), "-o", str(ngram)]) == 0
    BASE.update(corpus=corpus, gpt=gpt, ngram=ngram, root=root)
    yield BASE
    for p in HOLDERS:
        p.kill()
        p.wait()
        p.stdout.close()
    HOLDERS.clear()


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for p in root.rglob("*"):
        if p.is_file() and skip not in p.parents and not p.name.endswith(".lock"):
            st = p.stat()
            out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input_is_one_sentence(case: Case, base, capsys, monkeypatch):
    root = base["root"]
    case_dir = root / "cases" / case.id
    case_dir.mkdir(parents=True)
    if case.setup:
        case.setup(case_dir)
    capsys.readouterr()
    fill = {k: str(v) for k, v in base.items()} | {"case": str(case_dir),
                                                   "out": str(case_dir / "out")}
    argv = [a.format(**fill) for a in case.argv]
    before = _snapshot(root, case_dir)
    if case.patch:
        case.patch(monkeypatch)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    monkeypatch.undo()
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code in case.codes, f"exit {code}; stderr: {err}"
    assert len(errors) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert case.phrase.lower() in errors[0].lower(), errors[0]
    assert _snapshot(root, case_dir) == before, "files outside the output directory changed"


def test_the_suite_covers_every_class_of_the_issue():
    """Issue 22 tried 43 classes; this table must not shrink below that."""
    assert len(CASES) >= 43 and len({c.id for c in CASES}) == len(CASES)


def test_gzip_corpus_is_read_not_refused(tmp_path, capsys):
    """The gzip row above refuses a broken file; a proper one trains."""
    p = tmp_path / "c.txt.gz"
    with gzip.open(p, "wt") as f:
        f.write(CORPUS)
    assert main([*TOK, str(p), "-o", str(tmp_path / "t.json")]) == 0


def test_force_lets_a_large_batch_through(base, capsys, monkeypatch):
    import sys

    import chainrule.decoding.generate  # noqa: F401  (the module, not the function)

    monkeypatch.setattr(sys.modules["chainrule.decoding.generate"], "MAX_BATCH_BYTES", 16)  # every batch now "cannot fit"
    argv = ["generate", str(base["gpt"]), "--max-tokens", "2", "--seed", "1"]
    assert main(argv) == 2 and "--force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0


def test_pipes_are_read_where_one_pass_is_enough(base, tmp_path, capsys, monkeypatch):
    """`eval pairs` from a FIFO (as `<(...)` gives) and `eval ppl --data -` from stdin work."""
    import io
    import threading

    fifo = tmp_path / "pairs.fifo"
    os.mkfifo(fifo)
    line = json.dumps({"sentence_good": "the cat sat", "sentence_bad": "cat the sat"}) + "\n"
    writer = threading.Thread(target=lambda: fifo.write_text(line * 3))
    writer.start()
    code = main(["eval", "pairs", str(base["gpt"]), "--data", str(fifo), "--json"])
    writer.join()
    assert code == 0
    assert json.loads(capsys.readouterr().out)["models"]["gpt"]["overall"]["n"] == 3
    r, w = os.pipe()
    os.write(w, b"the cat sat on the mat .\n")
    os.close(w)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(os.fdopen(r, "rb")))
    assert main(["eval", "ppl", str(base["gpt"]), "--data", "-", "--json"]) == 0
    assert '"sentences": 1' in capsys.readouterr().out
