"""Bad input that used to pass silently or end in "internal error" (issue 22's first cases):
each is one sentence, a non-zero exit, and nothing written where it should not be."""

from __future__ import annotations

import math

import pytest
import torch

from chainrule.cli import main
from chainrule.errors import ModelFormatError


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.err


def test_split_names_cannot_leave_the_output_directory(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\n" * 20)
    out = tmp_path / "deep" / "out"
    code, err = _run(capsys, "corpus", "split", corpus, "-o", out, "--fractions", "0.5", "0.5",
                     "--names", "../../evil", "ok")
    assert code == 2 and "plain file name" in err and "internal error" not in err
    assert not (tmp_path / "evil.txt").exists() and not list(tmp_path.rglob("evil*"))


def test_nan_split_fractions_are_refused(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\n" * 20)
    code, err = _run(capsys, "corpus", "split", corpus, "-o", tmp_path / "o", "--fractions",
                     "nan", "nan")
    assert code == 2 and "finite" in err


def test_weights_with_nan_are_refused_at_load(tmp_path):
    from chainrule.fileio import read_safetensors, write_safetensors
    from chainrule.models import load_model
    from chainrule.models.neural import build_neural_model

    m = build_neural_model("gpt", vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
    m.save(tmp_path / "m")
    tensors = read_safetensors(tmp_path / "m" / "model.safetensors")
    name = min(tensors)
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = math.nan
    write_safetensors(tmp_path / "m" / "model.safetensors", tensors)
    with pytest.raises(ModelFormatError, match="NaN or infinite"):
        load_model(tmp_path / "m")


def test_an_arpa_file_with_a_positive_log_probability_is_refused(tmp_path):
    from chainrule.models.ngram.arpa import read_arpa

    arpa = tmp_path / "bad.arpa"
    arpa.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\t<s>\n0.5\ta\n-0.3\t</s>\n\n\\end\\\n")
    with pytest.raises(ModelFormatError, match="above 0"):
        read_arpa(arpa)
    arpa.write_text(arpa.read_text().replace("0.5\ta", "-0.5\ta"))
    read_arpa(arpa)  # the same file with a proper probability reads


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_generate_on_a_missing_gpu_is_one_sentence(tmp_path, capsys):
    from chainrule.models.reference import UniformModel
    from chainrule.tokenizers import train_tokenizer

    tok = train_tokenizer("word", ["a b c"])
    UniformModel(tok.vocab_size, tok.bos_id, tok.eos_id).save(tmp_path / "u")
    tok.save(tmp_path / "u" / "tokenizer.json")
    code, err = _run(capsys, "generate", tmp_path / "u", "--device", "cuda")
    assert code == 2 and "no CUDA GPU" in err and "internal error" not in err


def test_an_edited_config_is_refused_before_the_model_is_built(tmp_path):
    """config.json asking for a huge model fails on the weights' shapes, not after allocating."""
    import json
    import time

    from chainrule.models import load_model
    from chainrule.models.neural import build_neural_model

    build_neural_model("gpt", vocab_size=11, block_size=8, n_layer=1, n_head=2,
                       n_embd=8).save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg.update(n_embd=65536, n_layer=64)  # ~3e12 parameters if it were built
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    t = time.perf_counter()
    with pytest.raises(ModelFormatError, match="does not match config.json"):
        load_model(tmp_path / "m")
    assert time.perf_counter() - t < 5


def test_special_tokens_are_never_generated_as_text():
    """A model that loves <pad>, <unk> and <s> still samples only words (and </s> to stop);
    allow_special=True shows the model really does put its mass there."""
    from chainrule.decoding import GenerationConfig, generate
    from chainrule.models.reference import UnigramModel
    from chainrule.tokenizers import train_tokenizer

    tok = train_tokenizer("word", ["a b c d"])
    specials = set(tok.special_tokens.values()) - {tok.eos_id}
    seqs = [[tok.bos_id, *sorted(specials) * 20, *tok.encode("a b"), tok.eos_id]]
    model = UnigramModel(tok.vocab_size, tok.bos_id, tok.eos_id).fit(seqs)
    cfg = GenerationConfig(max_new_tokens=30, seed=0, n=4, ignore_eos=True)
    outs = generate(model, [""], cfg, tokenizer=tok)[0]
    assert all(not specials & set(c.token_ids) for c in outs)
    raw = generate(model, [""], GenerationConfig(max_new_tokens=30, seed=0, n=4,
                                                 ignore_eos=True, allow_special=True),
                   tokenizer=tok)[0]
    assert any(specials & set(c.token_ids) for c in raw)


def test_two_writers_into_one_directory_the_second_is_refused(tmp_path, capsys):
    """While one run holds the output directory, another run into it fails at once, naming it."""
    from chainrule.fileio import hold_directory

    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat .\nthe dog ran .\n" * 30)
    out = tmp_path / "m"
    with hold_directory(out):  # the first writer (this process)
        code, err = _run(capsys, "train", "--family", "ngram", "--order", "2", corpus, "-o", out)
    assert code == 2 and "being written by another chainrule run" in err
    assert f"pid {__import__('os').getpid()}" in err
    assert not (out / "config.json").exists()
    code, err = _run(capsys, "train", "--family", "ngram", "--order", "2", corpus, "-o", out)
    assert code == 0, err  # released: the next run goes ahead


def test_another_kind_of_model_is_not_overwritten_silently(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat .\nthe dog ran .\n" * 30)
    out = tmp_path / "m"
    code, err = _run(capsys, "train", "--family", "gpt", "-o", out, "--json", corpus,
                     "max_iters=2", "eval_interval=2", "eval_iters=1", "block_size=8",
                     "batch_size=2", "n_layer=1", "n_embd=8", "n_head=2")
    assert code == 0, err
    capsys.readouterr()
    code, err = _run(capsys, "train", "--family", "ngram", corpus, "-o", out)
    assert code == 2 and "holds a gpt model" in err and "--overwrite" in err
    assert (out / "model.safetensors").exists()
    code, err = _run(capsys, "train", "--family", "ngram", corpus, "-o", out, "--overwrite")
    assert code == 0, err


def test_a_char_ngram_leaves_no_stale_arpa_behind(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat .\nthe dog ran .\n" * 30)
    out = tmp_path / "m"
    assert _run(capsys, "train", "--family", "ngram", corpus, "-o", out)[0] == 0
    assert (out / "model.arpa").exists()
    tok = tmp_path / "char.json"
    assert _run(capsys, "tokenizer", "train", "--kind", "char", corpus, "-o", tok)[0] == 0
    code, err = _run(capsys, "train", "--family", "ngram", corpus, "-o", out, "--tokenizer", tok)
    assert code == 0, err
    assert not (out / "model.arpa").exists()  # char models have no ARPA form; the old one went


def test_a_contradicting_family_override_is_refused(capsys, tmp_path):
    from chainrule.errors import ConfigError
    from chainrule.training.config import make_config

    with pytest.raises(ConfigError, match="contradicts --family gpt"):
        make_config("gpt", overrides=["family=lstm"])


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_a_jsonl_corpus_is_read_by_its_text_field_everywhere(tmp_path, capsys, kind):
    """`tokenizer train` and `train` read a .jsonl file's "text" fields, as `corpus stats` does,
    never the raw JSON (which taught vocabularies `{"text":`)."""
    import json

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"text": t, "id": i}) + "\n"
                              for i, t in enumerate(["the cat sat", "the dog ran"] * 20)))
    tok_path = tmp_path / "t.json"
    code, err = _run(capsys, "tokenizer", "train", "--kind", kind, "--vocab-size", "40", corpus,
                     "-o", tok_path)
    assert code == 0, err
    from chainrule.tokenizers import load_tokenizer

    vocab = load_tokenizer(tok_path).vocab
    assert not any(ch in "".join(vocab) for ch in '{}"'), vocab
    out = tmp_path / "m"
    code, err = _run(capsys, "train", "--family", "gpt", "-o", out, "--tokenizer", tok_path,
                     "--json", corpus, "max_iters=1", "eval_interval=1", "eval_iters=1",
                     "block_size=4", "batch_size=1", "n_layer=1", "n_embd=8", "n_head=2")
    assert code == 0, err
    from chainrule.data import load_tokenized

    text = load_tokenizer(tok_path).decode(load_tokenized(out / "data" / "train").ids.tolist())
    assert "the cat sat" in text and "{" not in text and "id" not in text


def test_file_system_refusals_are_one_sentence_not_internal_errors(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat\n" * 10)
    a_dir = tmp_path / "d"
    a_dir.mkdir()
    code, err = _run(capsys, "tokenizer", "train", "--kind", "char", corpus, "-o", a_dir)
    assert code != 0 and "internal error" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("error:")
    a_file = tmp_path / "f"
    a_file.write_text("x")
    code, err = _run(capsys, "tokenizer", "train", "--kind", "char", corpus, "-o",
                     a_file / "tok.json")
    assert code != 0 and "internal error" not in err and str(a_file) in err


def test_resume_with_another_corpus_is_refused(tmp_path, capsys):
    corpus, other = tmp_path / "c.txt", tmp_path / "o.txt"
    corpus.write_text("the cat sat on the mat .\n" * 40)
    other.write_text("a completely different text .\n" * 50)
    keys = ["max_iters=2", "eval_interval=1", "eval_iters=1", "block_size=4", "batch_size=1",
            "n_layer=1", "n_embd=8", "n_head=2"]
    out = tmp_path / "m"
    assert _run(capsys, "train", "--family", "gpt", "-o", out, "--json", corpus, *keys)[0] == 0
    code, err = _run(capsys, "train", "--family", "gpt", "-o", out, "--resume", "--json",
                     other, "max_iters=4")
    assert code == 2 and "different corpus" in err
    code, err = _run(capsys, "train", "--family", "gpt", "-o", out, "--resume", "--json",
                     corpus, "max_iters=4")
    assert code == 0, err


@pytest.mark.parametrize(("flags", "words"), [
    (["--order", "1000"], "from 1 to 20"),
    (["--order", "2", "--prune", "0,1,1,1"], "at most 2"),
    (["--vocab", "missing-vocab.txt"], "vocabulary file"),
])
def test_ngram_option_mistakes_are_one_sentence(tmp_path, capsys, flags, words):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat .\n" * 20)
    code, err = _run(capsys, "train", "--family", "ngram", *flags, "-o", tmp_path / "m", corpus)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags", [["--strategy", "beam", "--beams", "100000000"],
                                   ["--n", "100000000"]])
def test_a_generation_batch_that_cannot_fit_is_refused_before_any_work(tmp_path, capsys, flags):
    from chainrule.models.reference import UniformModel
    from chainrule.tokenizers import train_tokenizer

    tok = train_tokenizer("word", ["a b c d e f"])
    UniformModel(tok.vocab_size, tok.bos_id, tok.eos_id).save(tmp_path / "u")
    tok.save(tmp_path / "u" / "tokenizer.json")
    code, err = _run(capsys, "generate", tmp_path / "u", *flags, "--max-tokens", "3")
    assert code == 2 and "would need about" in err and "internal error" not in err


def test_key_value_overrides_may_follow_the_options(tmp_path, capsys):
    """`train CORPUS -o D KEY=VALUE`: argparse stops the positional list at -o; the overrides
    after it still count (they used to be 'unrecognized arguments')."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat .\n" * 40)
    code, err = _run(capsys, "train", "--family", "gpt", str(corpus), "-o", tmp_path / "m",
                     "--json", "max_iters=2", "eval_interval=2", "eval_iters=1", "block_size=4",
                     "batch_size=1", "n_layer=1", "n_embd=8", "n_head=2")
    assert code == 0, err
    import json

    assert json.loads((tmp_path / "m" / "train_state.json").read_text())["summary"]["steps"] == 2
    with pytest.raises(SystemExit):
        main(["train", "--family", "gpt", str(corpus), "-o", str(tmp_path / "n"), "--bogus"])


def test_a_prompt_with_unknown_words_warns_naming_them(tmp_path, capsys):
    from chainrule.models.reference import UniformModel
    from chainrule.tokenizers import train_tokenizer

    tok = train_tokenizer("word", ["a b c d"])
    UniformModel(tok.vocab_size, tok.bos_id, tok.eos_id).save(tmp_path / "u")
    tok.save(tmp_path / "u" / "tokenizer.json")
    code, err = _run(capsys, "generate", tmp_path / "u", "--prompt", "a zebra b", "--max-tokens",
                     "2", "--seed", "1")
    assert code == 0 and "'zebra'" in err and "<unk>" in err and err.startswith("warning:")
