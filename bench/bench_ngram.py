"""n-gram benchmarks: estimation time / peak memory, scoring speed, and peers in the same run.

    .venv/bin/python bench/bench_ngram.py                 # everything (about a minute)
    .venv/bin/python bench/bench_ngram.py --nltk-sentences 300

* estimation: modified Kneser-Ney, order 3 and 5, on ../shared/data/brown/train.txt, each in a
  fresh subprocess so its peak RSS is its own (with and without writing model.arpa). KenLM's
  ``lmplz`` is not on PyPI, so its figures (measured on this machine class, issue 3) are quoted:
  order 3 2.4 s, order 5 4.4-5.2 s, 230-280 MB.
* scoring: tokens/s of ``NgramModel.token_logprobs`` on brown/test.txt (order 5), and of the whole
  perplexity evaluator, against the ``kenlm`` PyPI module scoring the same sentences on the
  same ARPA file (``Model.score`` per sentence, as a Python user calls it).
* NLTK: ``KneserNeyInterpolated(3)`` fit and scoring on a subset, against ours on that subset.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "brown"


def estimate_once(order: int, arpa: bool) -> dict:
    from chainrule.models.ngram.train import save_ngram, train_ngram

    t0, c0 = time.perf_counter(), time.process_time()
    res = train_ngram(DATA / "train.txt", order=order, smoothing="mkn")
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        save_ngram(res.model, res.tokenizer, Path(tmp) / "m", arpa=arpa)
    t2, c2 = time.perf_counter(), time.process_time()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"order": order, "arpa": arpa, "estimate_s": t1 - t0, "total_s": t2 - t0,
            "cpu_s": c2 - c0, "peak_mb": peak_mb, "ngrams": res.model.tables.counts()}


def run_estimation() -> list[dict]:
    out = []
    for order in (3, 5):
        for arpa in (False, True):
            cmd = [sys.executable, __file__, "--child", str(order), *(["--arpa"] if arpa else [])]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            lmplz = {3: "2.4 s", 5: "4.4-5.2 s"}[order]
            print(f"estimate order {order} {'+ write ARPA' if arpa else '(safetensors)  '}: "
                  f"wall {r['total_s']:.2f} s (estimate {r['estimate_s']:.2f} s, cpu "
                  f"{r['cpu_s']:.2f} s), peak {r['peak_mb']:.0f} MB   | lmplz (quoted): {lmplz}, "
                  f"230-280 MB")
            out.append(r)
    return out


def run_scoring() -> dict:
    import kenlm
    import numpy as np

    from chainrule.evaluation.perplexity import perplexity
    from chainrule.models.ngram.train import save_ngram, train_ngram

    res = train_ngram(DATA / "train.txt", order=5, smoothing="mkn")
    model, tok = res.model, res.tokenizer
    lines = (DATA / "test.txt").read_text(encoding="utf-8").splitlines()
    seqs = [[tok.bos_id, *tok.encode(s), tok.eos_id] for s in lines]
    n_tokens = sum(len(s) - 1 for s in seqs)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    batches, cur = [], []
    for i in order:  # length-sorted batches, little padding
        cur.append(seqs[i])
        if sum(map(len, cur)) > 1 << 16:
            batches.append(cur)
            cur = []
    batches.append(cur)
    arrays = []
    for b in batches:
        x = np.full((len(b), max(map(len, b))), tok.eos_id, dtype=np.int64)
        for r, s in enumerate(b):
            x[r, : len(s)] = s
        arrays.append(x)
    t0, c0 = time.perf_counter(), time.process_time()
    for x in arrays:
        model.token_log10probs(x)
    ours_s, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    rep = perplexity(model, tok, lines)
    eval_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        save_ngram(model, tok, Path(tmp) / "m")
        km = kenlm.Model(str(Path(tmp) / "m" / "model.arpa"))
    t0, c0 = time.perf_counter(), time.process_time()
    total = sum(km.score(s, bos=True, eos=True) for s in lines)
    kenlm_s, kenlm_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"scoring {n_tokens} tokens: ours token_logprobs {n_tokens / ours_s:,.0f} tok/s, "
          f"whole evaluator (encode + batch + score) {n_tokens / eval_s:,.0f} tok/s; "
          f"kenlm module {n_tokens / kenlm_s:,.0f} tok/s; ratio ours/kenlm "
          f"{kenlm_s / ours_s:.2f} (cpu time: ours {n_tokens / ours_cpu:,.0f} tok/s, kenlm "
          f"{n_tokens / kenlm_cpu:,.0f} tok/s); ppl ours {rep.perplexity:.2f} kenlm "
          f"{10 ** (-total / n_tokens):.2f}")
    return {"tokens": n_tokens, "ours_tok_s": n_tokens / ours_s, "eval_tok_s": n_tokens / eval_s,
            "kenlm_tok_s": n_tokens / kenlm_s}


def run_nltk(n_sentences: int) -> dict:
    from nltk.lm import KneserNeyInterpolated
    from nltk.lm.preprocessing import padded_everygram_pipeline

    from chainrule.models.ngram.train import train_ngram

    lines = (DATA / "train.txt").read_text(encoding="utf-8").splitlines()[:n_sentences]
    sub = Path(tempfile.mkdtemp()) / "sub.txt"
    sub.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sents = [s.split() for s in lines]
    t0 = time.perf_counter()
    train, vocab = padded_everygram_pipeline(3, sents)
    lm = KneserNeyInterpolated(3)
    lm.fit(train, vocab)
    nltk_fit = time.perf_counter() - t0
    probe = [w for s in sents[:20] for w in s][:100]
    t0 = time.perf_counter()
    for i in range(2, len(probe)):
        lm.logscore(probe[i], probe[i - 2 : i])
    nltk_tok_s = (len(probe) - 2) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    train_ngram(sub, order=3, smoothing="kn")
    ours_fit = time.perf_counter() - t0
    print(f"NLTK KneserNeyInterpolated(3) on {n_sentences} sentences: fit {nltk_fit:.2f} s, "
          f"scoring {nltk_tok_s:.1f} tok/s; ours (kn) fit {ours_fit:.3f} s; fit ratio "
          f"{nltk_fit / ours_fit:.0f}x")
    return {"sentences": n_sentences, "nltk_fit_s": nltk_fit, "nltk_tok_s": nltk_tok_s,
            "ours_fit_s": ours_fit}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--arpa", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--nltk-sentences", type=int, default=500)
    ap.add_argument("--skip", nargs="*", default=[], choices=["estimate", "score", "nltk"])
    args = ap.parse_args()
    if args.child:
        print(json.dumps(estimate_once(args.child, args.arpa)))
        return
    if not DATA.exists():
        sys.exit(f"needs {DATA} (the shared Brown data)")
    if "estimate" not in args.skip:
        run_estimation()
    if "score" not in args.skip:
        run_scoring()
    if "nltk" not in args.skip:
        run_nltk(args.nltk_sentences)


if __name__ == "__main__":
    main()
