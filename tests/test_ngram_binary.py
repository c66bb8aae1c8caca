"""The compiled n-gram query (bit-identical to the numpy reference) and the binary model file
(ARPA / directory -> binary -> identical scores, round trips, damaged files refused)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainrule.cli import main
from chainrule.errors import ModelFormatError
from chainrule.models.base import load_model, load_model_file
from chainrule.models.ngram import query
from chainrule.models.ngram.binary import read_binary, write_binary
from chainrule.models.ngram.convert import binarize
from chainrule.models.ngram.train import (
    export_arpa,
    import_arpa,
    load_ngram,
    save_ngram,
    train_ngram,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_core = pytest.mark.skipif(query.compiled_core() is None,
                                reason="the compiled query (chainrule._ngram_query_core) is not built")


def corpus_lines(n: int = 600, vocab: int = 40, seed: int = 0) -> list[str]:
    """Zipfian sentences with local structure, so every order has n-grams and discounts."""
    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, vocab + 1)
    lines = []
    for _ in range(n):
        ids = rng.choice(vocab, size=int(rng.integers(1, 12)), p=w / w.sum())
        ids[1::2] = (ids[::2][: ids[1::2].size] + 1) % vocab
        lines.append(" ".join(f"w{i}" for i in ids))
    return lines


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An order-4 mkn model directory (with model.arpa) and its binary files."""
    root = tmp_path_factory.mktemp("ngram_binary")
    (root / "train.txt").write_text("\n".join(corpus_lines()) + "\n")
    res = train_ngram(root / "train.txt", order=4, smoothing="mkn")
    save_ngram(res.model, res.tokenizer, root / "m")
    binarize(root / "m", root / "m.ngram")
    binarize(root / "m" / "model.arpa", root / "arpa.ngram")
    import_arpa(root / "m" / "model.arpa", root / "arpa_dir")
    return root


def rows(model, tok, lines):
    seqs = [[tok.bos_id, *tok.encode(s), tok.eos_id] for s in lines]
    x = np.full((len(seqs), max(map(len, seqs))), tok.eos_id, dtype=np.int64)
    for r, s in enumerate(seqs):
        x[r, : len(s)] = s
    return x


words = st.sampled_from([f"w{i}" for i in range(45)] + ["<unk>", "zzz", "<s>"])
sentences = st.lists(st.lists(words, max_size=14).map(" ".join), min_size=1, max_size=6)


@needs_core
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=sentences)
def test_arpa_and_directory_binaries_score_like_their_sources(trained, lines):
    direct, tok = load_ngram(trained / "m")
    from_dir, tok_b = load_ngram(trained / "m.ngram")
    from_arpa, _ = load_ngram(trained / "arpa.ngram")
    arpa_dir, _ = load_ngram(trained / "arpa_dir")
    assert tok_b.vocab == tok.vocab
    x = rows(direct, tok, lines)
    ref = query.reference_log10probs(direct.tables, x, direct.bos_id)
    assert np.array_equal(direct.token_log10probs(x), ref)  # compiled == numpy, bit for bit
    assert np.array_equal(from_dir.token_log10probs(x), ref)
    xa = rows(arpa_dir, tok, lines)  # the ARPA text rounds to 6 digits: compare with its import
    assert np.array_equal(from_arpa.token_log10probs(xa), arpa_dir.token_log10probs(xa))
    np.testing.assert_allclose(from_arpa.token_log10probs(xa)[np.isfinite(ref)],
                               ref[np.isfinite(ref)], atol=1e-5)


@needs_core
@settings(max_examples=80, deadline=None)
@given(order=st.integers(1, 6), V=st.integers(3, 12), seed=st.integers(0, 10**6),
       shape=st.tuples(st.integers(1, 5), st.integers(1, 40)))
def test_compiled_query_is_bit_identical_to_numpy(order, V, seed, shape):
    """Random id rows (``<s>`` anywhere, repeats, rows of one token) over dense small models,
    where most lookups hit and every backoff path is taken."""
    from chainrule.models.ngram.model import NgramModel

    rng = np.random.default_rng(seed)
    seqs = [[0, *rng.integers(2, V, size=int(rng.integers(0, 9))).tolist(), 1]
            for _ in range(40)]
    model = NgramModel(order, "kn", vocab_size=V, bos_id=0, eos_id=1).fit(seqs)
    x = rng.integers(0, V, size=shape)
    x[:, 0] = 0
    ref = query.reference_log10probs(model.tables, x, 0)
    assert np.array_equal(model.token_log10probs(x), ref)
    lengths = rng.integers(0, shape[1] + 1, size=shape[0])  # padding past them is skipped
    got = model.token_log10probs(x, lengths)
    for b, n in enumerate(lengths):
        assert np.array_equal(got[b, : max(n - 1, 0)], ref[b, : max(n - 1, 0)])


def test_without_the_kernel_scores_and_files_still_work(trained, monkeypatch, tmp_path):
    direct, tok = load_ngram(trained / "m")
    x = rows(direct, tok, corpus_lines(20, seed=3))
    want = direct.token_log10probs(x)
    monkeypatch.setattr(query, "compiled_core", lambda: None)
    m, _ = load_ngram(trained / "m.ngram")  # the stored index is ignored
    assert np.array_equal(m.token_log10probs(x), want)
    write_binary(direct, tok, tmp_path / "plain.ngram")  # written without an index
    monkeypatch.undo()
    plain, _ = load_ngram(tmp_path / "plain.ngram")  # index built on first use
    assert np.array_equal(plain.token_log10probs(x), want)


def test_round_trip_keeps_every_array_config_and_tokenizer(trained, tmp_path):
    direct, tok = load_ngram(trained / "m")
    tables, config, tok_b = read_binary(trained / "m.ngram")
    t = direct.tables
    for name in ("keys", "prob", "backoff", "raw_counts"):
        for a, b in zip(getattr(t, name), getattr(tables, name)):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    assert config["order"] == 4 and config["discounts"] == direct.discounts_
    assert tok_b.serialise() == tok.serialise()
    # binary -> binary gives the same header and arrays (safetensors orders its metadata keys
    # at random, so not the same bytes); binary -> ARPA the same bytes as the directory's
    from safetensors.numpy import load_file

    from chainrule.fileio import read_safetensors_header

    binarize(trained / "m.ngram", tmp_path / "again.ngram")
    assert (read_safetensors_header(tmp_path / "again.ngram")[0]
            == read_safetensors_header(trained / "m.ngram")[0])
    a, b = load_file(str(tmp_path / "again.ngram")), load_file(str(trained / "m.ngram"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    export_arpa(trained / "m.ngram", tmp_path / "b.arpa")
    assert (tmp_path / "b.arpa").read_bytes() == (trained / "m" / "model.arpa").read_bytes()
    model, _ = load_model_file(trained / "m.ngram", family="ngram")
    assert load_model(trained / "m.ngram").order == model.order == 4


@pytest.mark.parametrize("cut", [4, 9, 200, 0.5, -1])
def test_truncated_files_are_refused(trained, tmp_path, cut):
    data = (trained / "m.ngram").read_bytes()
    n = cut if isinstance(cut, int) and cut > 0 else int(len(data) * cut) if cut != -1 else -1
    (tmp_path / "t.ngram").write_bytes(data[:n])
    with pytest.raises(ModelFormatError, match="truncated|no valid header"):
        load_ngram(tmp_path / "t.ngram")


def test_foreign_and_damaged_files_are_refused(trained, tmp_path):
    from safetensors.numpy import load_file, save_file

    with pytest.raises(ModelFormatError, match="ARPA"):
        load_model(trained / "m" / "model.arpa")
    with pytest.raises(ModelFormatError, match="ARPA"):
        load_model_file(trained / "m" / "model.arpa")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(ModelFormatError, match="another tool"):
        load_model(foreign)
    arrays = load_file(str(trained / "m.ngram"))
    from chainrule.fileio import read_safetensors_header

    meta = read_safetensors_header(trained / "m.ngram")[0]
    damaged = dict(arrays)
    damaged["index.slots.3"] = np.zeros((5, 3), np.uint64)  # wrong shape for a hash table
    save_file(damaged, str(tmp_path / "d.ngram"), metadata=meta)
    with pytest.raises(ModelFormatError, match="damaged query index"):
        load_ngram(tmp_path / "d.ngram")
    missing = {k: v for k, v in arrays.items() if k != "prob.2"}
    save_file(missing, str(tmp_path / "p.ngram"), metadata=meta)
    with pytest.raises(ModelFormatError, match="lacks the array 'prob.2'"):
        load_ngram(tmp_path / "p.ngram")
    unsorted = dict(arrays, **{"keys.2": arrays["keys.2"][::-1].copy()})
    save_file(unsorted, str(tmp_path / "u.ngram"), metadata=meta)
    with pytest.raises(ModelFormatError, match="not sorted"):
        load_ngram(tmp_path / "u.ngram")
    # an index of another layout is not trusted: rebuilt, same scores
    other = dict(meta, index="some-future-layout")
    save_file(arrays, str(tmp_path / "o.ngram"), metadata=other)
    direct, tok = load_ngram(trained / "m")
    m, _ = load_ngram(tmp_path / "o.ngram")
    x = rows(direct, tok, corpus_lines(10, seed=5))
    assert np.array_equal(m.token_log10probs(x), direct.token_log10probs(x))
    gpt_like = dict(meta, config=json.dumps({**json.loads(meta["config"]), "family": "gpt"}))
    save_file(arrays, str(tmp_path / "g.ngram"), metadata=gpt_like)
    with pytest.raises(ModelFormatError, match="not a 'ngram' model|saved as directories"):
        load_ngram(tmp_path / "g.ngram")


def test_cli_binarize_then_eval_ppl_and_load(trained, tmp_path, capsys):
    import chainrule

    data = tmp_path / "test.txt"
    data.write_text("\n".join(corpus_lines(50, seed=9)) + "\nw1 unseen w2\n")
    assert main(["ngram", "binarize", str(trained / "m" / "model.arpa"), "-o",
                 str(tmp_path / "a.ngram"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["order"] == 4 and info["bytes"] == (tmp_path / "a.ngram").stat().st_size
    assert main(["eval", "ppl", str(tmp_path / "a.ngram"), str(trained / "arpa_dir"),
                 "--data", str(data), "--json"]) == 0
    a, b = json.loads(capsys.readouterr().out)["models"]
    assert a["perplexity"] == b["perplexity"] and a["oov"] == b["oov"] > 0
    lm = chainrule.load(trained / "m.ngram")
    assert lm.config["order"] == 4
    assert lm.score("w1 w2 w3").total == chainrule.load(trained / "m").score("w1 w2 w3").total


@pytest.mark.shared_data
def test_kenlm_reference_arpa_binary_gives_query_perplexity(tmp_path):
    """lmplz's order-3 ARPA of Brown -> binary -> KenLM ``query``'s perplexity on test.txt."""
    from chainrule.evaluation.perplexity import perplexity_of_file

    arpa = SHARED / "kenlm-reference" / "brown-train.o3.arpa.gz"
    if not arpa.exists():
        pytest.skip("needs ../shared/data/kenlm-reference")
    binarize(arpa, tmp_path / "k3.ngram")
    model, tok = load_ngram(tmp_path / "k3.ngram")
    rep = perplexity_of_file(model, tok, SHARED / "brown" / "test.txt")
    assert rep.tokens == 171297 and rep.oov == 7664
    assert rep.perplexity == pytest.approx(379.17, abs=0.01)
