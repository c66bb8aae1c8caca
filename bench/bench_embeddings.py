"""Word vectors on Brown: chainrule's SGNS/CBOW against gensim's Word2Vec in the same run, PPMI-SVD,
and the input embeddings of neural LMs, all on WordSim-353, SimLex-999 and Google analogies.

    nice -n 10 .venv/bin/python bench/bench_embeddings.py --threads 1 [--models] [--repeat 2]

Same settings on both sides: d = 100, window 5, 5 epochs, negative 5, min_count 5, sample 1e-3,
alpha 0.025 -> 0.0001, the same number of threads. Times are training only (the vocabulary is
built before the clock starts on both sides); words/s = corpus words (after min_count) x
epochs / seconds. ``--models`` also trains the brown-ffnn/lstm/gpt presets briefly
(``--model-iters``, batch 16) and extracts their input embeddings, plus SmolLM2-135M's when it is cached.
Needs the ``bench`` and ``embed`` extras (gensim, scipy).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def evaluate(vectors) -> dict:
    from chainrule.embeddings.evaluate import evaluate_all

    r = evaluate_all(vectors, DATA / "embeddings")
    return {"ws353": r["wordsim353"]["rho"], "ws353_cov": r["wordsim353"]["covered"],
            "simlex": r["simlex999"]["rho"], "simlex_cov": r["simlex999"]["covered"],
            "analogy": r["analogy"]["overall"]["accuracy"],
            "analogy_cov": r["analogy"]["overall"]["covered"],
            "sem": r["analogy"]["semantic"]["accuracy"], "syn": r["analogy"]["syntactic"]["accuracy"]}


def run_ours(corpus, method, args):
    from chainrule.embeddings.word2vec import train_word2vec

    return train_word2vec(corpus, method=method, dim=100, window=5, epochs=args.epochs,
                          negative=5, sample=1e-3, threads=args.threads, seed=args.seed)


def run_gensim(sentences, method, args):
    from gensim.models import Word2Vec

    from chainrule.embeddings.vectors import WordVectors

    m = Word2Vec(vector_size=100, window=5, min_count=5, sg=int(method == "sgns"), negative=5,
                 hs=0, sample=1e-3, alpha=0.025, min_alpha=0.0001, workers=args.threads,
                 seed=args.seed)
    m.build_vocab(sentences)
    t0 = time.perf_counter()
    m.train(sentences, total_examples=m.corpus_count, epochs=args.epochs)
    seconds = time.perf_counter() - t0
    words = sum(m.wv.get_vecattr(w, "count") for w in m.wv.index_to_key) * args.epochs
    return WordVectors(list(m.wv.index_to_key), m.wv.vectors), {
        "seconds": seconds, "words_per_second": words / seconds}


def train_model(family: str, out: Path, iters: int, threads: int) -> Path:
    cmd = [str(ROOT / ".venv/bin/chainrule"), "train", "--family", family, "--preset",
           f"brown-{family}", str(DATA / "brown/train.txt"), "-o", str(out), "--overwrite",
           "--threads", str(threads), f"max_iters={iters}", f"lr_decay_iters={iters}",
           f"eval_interval={iters}", "eval_iters=5", "warmup_iters=20", "batch_size=16"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--models", action="store_true")
    ap.add_argument("--model-iters", type=int, default=200)
    ap.add_argument("--skip-word2vec", action="store_true", help="only PPMI-SVD and the models")
    ap.add_argument("--out", default=str(ROOT / "bench/out/embeddings"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from chainrule.embeddings.corpus import encode, read_sentences
    from chainrule.embeddings.counts import ppmi_svd

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("load:", os.getloadavg(), flush=True)
    sentences = read_sentences(DATA / "brown/train.txt")
    corpus = encode(sentences, 5)
    rows, timing = {}, {}
    for method in () if args.skip_word2vec else ("sgns", "cbow"):
        best, pairs = {}, []
        for _ in range(args.repeat):
            pair = []
            for side in ("chainrule", "gensim"):
                v, st = (run_ours(corpus, method, args) if side == "chainrule"
                         else run_gensim(sentences, method, args))
                if side not in best or st["seconds"] < best[side][1]["seconds"]:
                    best[side] = (v, st)
                pair.append(st["seconds"])
                print(f"{method} {side}: {st['seconds']:.2f}s {st['words_per_second']:,.0f} w/s",
                      flush=True)
            pairs.append(pair[0] / pair[1])  # the two sides back to back: same load
        timing[f"{method} paired time ratios"] = pairs
        for side, (v, st) in best.items():
            rows[f"{method.upper()} ({side})"] = evaluate(v)
            timing[f"{method} {side}"] = st
        ratio = best["chainrule"][1]["seconds"] / best["gensim"][1]["seconds"]
        timing[f"{method} time ratio chainrule/gensim"] = ratio
        print(f"{method}: time ratio chainrule/gensim = {ratio:.2f}", flush=True)
        best["chainrule"][0].save(out / f"{method}.bin")
    t0 = time.perf_counter()
    v = ppmi_svd(corpus, dim=100, window=5)
    timing["ppmi-svd seconds"] = time.perf_counter() - t0
    rows["PPMI-SVD (α=0.75, window 5)"] = evaluate(v)
    if args.models:
        from chainrule.embeddings.extract import input_embeddings
        from chainrule.evaluation.textscore import load_model_and_tokenizer

        for fam in ("ffnn", "lstm", "gpt"):
            t0 = time.perf_counter()
            d = train_model(fam, out / f"brown-{fam}", args.model_iters, args.threads)
            model, tok = load_model_and_tokenizer(d)
            rows[f"{fam.upper()} input embeddings ({args.model_iters} steps)"] = evaluate(
                input_embeddings(model, tok))
            timing[f"{fam} train seconds"] = time.perf_counter() - t0
        from chainrule.models.pretrained import smollm2_path

        smol = Path.home() / ".cache/chainrule/models/smollm2-135m-instruct"
        if smollm2_path() and smol.is_dir():
            model, tok = load_model_and_tokenizer(smol)
            rows["SmolLM2-135M input embeddings"] = evaluate(input_embeddings(model, tok))
    print("load:", os.getloadavg())
    print("\n| vectors | WS-353 ρ (cov) | SimLex ρ (cov) | analogy acc (cov) | sem | syn |")
    print("|---|---|---|---|---|---|")

    def f(x):
        return "n/a" if x is None else f"{x:.3f}"

    for name, r in rows.items():
        print(f"| {name} | {f(r['ws353'])} ({r['ws353_cov']}) | {f(r['simlex'])} "
              f"({r['simlex_cov']}) | {f(r['analogy'])} ({r['analogy_cov']}) | {f(r['sem'])} "
              f"| {f(r['syn'])} |")
    print(json.dumps(timing, indent=1))
    (out / "results.json").write_text(json.dumps({"rows": rows, "timing": timing}, indent=1))


if __name__ == "__main__":
    main()
