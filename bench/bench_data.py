"""Benchmark the corpus layer against peers, measured in the same run.

1. Reading the NLTK Brown zip: ``chainrule.data.read_nltk_tagged`` vs NLTK's own
   ``TaggedCorpusReader`` on the same zip (and a check that both give the same sentences).
2. Counting: ``corpus_stats`` vs ``wc -lwm`` on the Brown training text.
3. Tokenising a corpus into the id cache (``tokenize_corpus``, 1 and N workers) vs one plain
   ``tokenizer.encode`` of the whole text (the cache's overhead), with a byte-level BPE trained
   here on the same text.

Run by hand (not from the tests)::

    .venv/bin/python bench/bench_data.py [--repeat 3] [--vocab-size 2048] [--workers 2]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def best_of(repeat: int, fn):
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def bench_nltk(repeat: int) -> None:
    from chainrule.data import read_nltk_tagged

    zip_path = DATA / "brown" / "nltk-brown.zip"
    ours_s, ours = best_of(repeat, lambda: list(read_nltk_tagged(zip_path)))
    try:
        from nltk.corpus.reader import TaggedCorpusReader
        from nltk.data import ZipFilePathPointer
    except ImportError:
        print("nltk is not installed (pip install chainrule[bench]); skipping the peer")
        return

    import nltk

    nltk.data.path.append(str(zip_path.parent))  # NLTK only opens files under its data paths

    def nltk_read():
        reader = TaggedCorpusReader(ZipFilePathPointer(str(zip_path), "brown/"), r"c[a-z]\d\d",
                                    encoding="ascii")
        return [list(s) for s in reader.sents()]

    peer_s, peer = best_of(repeat, nltk_read)
    words = sum(map(len, ours))
    print(f"read Brown zip: {len(ours):,} sentences, {words:,} words; identical to NLTK: "
          f"{ours == peer}")
    print(f"  chainrule {ours_s:.3f} s ({words / ours_s / 1e6:.2f} M words/s)   "
          f"NLTK {peer_s:.3f} s ({words / peer_s / 1e6:.2f} M words/s)   "
          f"ratio NLTK/chainrule {peer_s / ours_s:.1f}x")


def bench_stats(repeat: int) -> None:
    from chainrule.data import corpus_stats

    path = DATA / "brown" / "train.txt"
    ours_s, stats = best_of(repeat, lambda: corpus_stats(path))
    peer_s, out = best_of(repeat, lambda: subprocess.run(
        ["wc", "-lwm", str(path)], capture_output=True, text=True, check=True).stdout)
    lines, words, chars = map(int, out.split()[:3])
    same = (stats.lines, stats.words, stats.characters) == (lines, words, chars)
    mb = stats.bytes / 1e6
    print(f"stats of brown/train.txt ({mb:.1f} MB): same counts as wc: {same}")
    print(f"  chainrule {ours_s:.3f} s ({mb / ours_s:.0f} MB/s)   wc -lwm {peer_s:.3f} s "
          f"({mb / peer_s:.0f} MB/s)   ratio chainrule/wc {ours_s / peer_s:.1f}x slower")


def bench_tokenize(repeat: int, vocab_size: int, workers: int) -> None:
    from chainrule.data import tokenize_corpus
    from chainrule.tokenizers import train_tokenizer

    path = DATA / "brown" / "train.txt"
    text = path.read_text(encoding="utf-8")
    tok = train_tokenizer("bytebpe", [text], vocab_size=vocab_size)
    mb = len(text.encode()) / 1e6
    plain_s, plain = best_of(repeat, lambda: tok.encode(text))
    tmp = Path(tempfile.mkdtemp(prefix="bench_data_"))
    try:
        line = []
        for w in (1, workers):
            s, tc = best_of(repeat, lambda w=w: tokenize_corpus(
                path, tok, tmp / f"w{w}", frame="stream", workers=w, force=True))
            same = tc.ids.tolist() == plain
            line.append(f"{w} worker(s) {s:.2f} s ({mb / s:.2f} MB/s, ids == encode: {same})")
        reuse_s, tc = best_of(repeat, lambda: tokenize_corpus(path, tok, tmp / "w1",
                                                              frame="stream"))
        assert tc.reused
    finally:
        shutil.rmtree(tmp)
    print(f"tokenize brown/train.txt ({mb:.1f} MB) with bytebpe {vocab_size}: "
          f"{len(plain):,} tokens")
    print(f"  plain tok.encode(text) {plain_s:.2f} s ({mb / plain_s:.2f} MB/s)")
    print("  tokenize_corpus " + ";  ".join(line))
    print(f"  reuse of a valid cache {reuse_s * 1e3:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--vocab-size", type=int, default=2048)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if not (DATA / "brown" / "nltk-brown.zip").exists():
        raise SystemExit(f"{DATA} is absent; this benchmark needs ../shared/data")
    bench_nltk(args.repeat)
    bench_stats(args.repeat)
    bench_tokenize(args.repeat, args.vocab_size, args.workers)


if __name__ == "__main__":
    main()
