"""n-gram scoring speed and model loading, against KenLM in the same run (issue 21, target 2).

    .venv/bin/python bench/bench_ngram_query.py --build-binary /work/peers/kenlm/build/bin/build_binary
    .venv/bin/python bench/bench_ngram_query.py --rounds 7 --skip load

* scoring: tokens/s of ``NgramModel.token_log10probs`` on brown/test.txt (order 5, mkn, trained
  on brown/train.txt; length-sorted batches of ids, as ``bench_ngram.py`` measures it), the
  numpy reference on the same batches, text in (``NgramModel.score_lines``: the compiled
  whitespace split + word lookup, then the flat kernel, one call for all lines) and the whole
  ``perplexity()`` evaluator (text in, the report included), against the ``kenlm`` module's
  ``Model.score`` per sentence (text in) on the same model's ARPA file. Rounds alternate ours / kenlm so both see the same load;
  the median round is reported, with the ratio of each round.
* load: a fresh process per measurement, timing only the load call (imports excluded), then
  the first sentence scored: our binary file (``chainrule ngram binarize``), our model directory,
  our ARPA reader, against ``kenlm.Model`` on KenLM's own binary (``build_binary``, probing) and
  on the ARPA file. ``--build-binary`` is KenLM's tool (built from source, outside the repo);
  without it the KenLM binary row is skipped with a reason.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "brown"
PROBE = "the jury said it did find that many of the city 's election laws are outmoded"

CHILD = r"""
import json, sys, time
kind, path = sys.argv[1], sys.argv[2]
if kind.startswith("kenlm"):
    import kenlm
    t0 = time.perf_counter(); m = kenlm.Model(path); t1 = time.perf_counter()
    m.score(PROBE, bos=True, eos=True); t2 = time.perf_counter()
else:
    from chainrule.models.ngram.train import load_ngram, read_arpa_model
    import chainrule.models.ngram.binary, numpy as np
    t0 = time.perf_counter()
    m, tok = read_arpa_model(path) if kind == "ours-arpa" else load_ngram(path)
    t1 = time.perf_counter()
    m.token_log10probs(np.array([[tok.bos_id, *tok.encode(PROBE), tok.eos_id]])); t2 = time.perf_counter()
print(json.dumps({"load_s": t1 - t0, "first_score_s": t2 - t1}))
""".replace("PROBE", repr(PROBE))


def batches_of(seqs, eos_id, budget=1 << 16):
    import numpy as np

    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    groups, cur = [], []
    for i in order:  # length-sorted batches, little padding
        cur.append(seqs[i])
        if sum(map(len, cur)) > budget:
            groups.append(cur)
            cur = []
    groups.append(cur)
    out = []
    for b in groups:
        x = np.full((len(b), max(map(len, b))), eos_id, dtype=np.int64)
        for r, s in enumerate(b):
            x[r, : len(s)] = s
        out.append(x)
    return out


def run_scoring(model_dir: Path, rounds: int) -> dict:
    import kenlm

    from chainrule.evaluation.perplexity import perplexity
    from chainrule.models.ngram.query import reference_log10probs
    from chainrule.models.ngram.train import load_ngram

    model, tok = load_ngram(model_dir)
    km = kenlm.Model(str(model_dir / "model.arpa"))
    lines = (DATA / "test.txt").read_text(encoding="utf-8").splitlines()
    seqs = [[tok.bos_id, *tok.encode(s), tok.eos_id] for s in lines]
    n = sum(len(s) - 1 for s in seqs)
    arrays = batches_of(seqs, tok.eos_id)
    model.token_log10probs(arrays[0])  # builds the query index (timed separately below)
    model.score_lines(tok, lines[:1])  # builds the compiled word table (kenlm's is loaded)
    rows = []
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        for x in arrays:
            model.token_log10probs(x)
        ours, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        ken_total = sum(km.score(s, bos=True, eos=True) for s in lines)
        ken, ken_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        model.score_lines(tok, lines)
        text, text_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        rep = perplexity(model, tok, lines)
        evaluator, eval_cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append({"ours": n / ours, "kenlm": n / ken, "evaluator": n / evaluator,
                     "ratio": ken / ours, "eval_ratio": ken / evaluator,
                     "cpu_ratio": ken_cpu / ours_cpu, "text": n / text,
                     "text_ratio": ken / text, "text_cpu_ratio": ken_cpu / text_cpu,
                     "eval_cpu_ratio": ken_cpu / eval_cpu})
        print(f"  round: ours {n / ours:,.0f} tok/s, kenlm {n / ken:,.0f} tok/s, ratio "
              f"{ken / ours:.2f} (CPU time ratio {ken_cpu / ours_cpu:.2f}); text in "
              f"(score_lines) {n / text:,.0f} tok/s, ratio {ken / text:.2f} (CPU "
              f"{ken_cpu / text_cpu:.2f}); evaluator (text in) {n / evaluator:,.0f} tok/s, "
              f"ratio {ken / evaluator:.2f} (CPU {ken_cpu / eval_cpu:.2f})", flush=True)
    t0 = time.perf_counter()
    for x in arrays:
        reference_log10probs(model.tables, x, model.bos_id)
    numpy_tok_s = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    fresh, _ = load_ngram(model_dir)
    fresh.token_log10probs(arrays[0][:1])
    index_s = time.perf_counter() - t0
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"scoring {n} tokens (order 5), median of {rounds} rounds: ours {med['ours']:,.0f} "
          f"tok/s, kenlm module {med['kenlm']:,.0f} tok/s, ratio {med['ratio']:.2f} (rounds "
          f"{min(r['ratio'] for r in rows):.2f}-{max(r['ratio'] for r in rows):.2f}; CPU time "
          f"{med['cpu_ratio']:.2f}); text in (score_lines: split + lookup + score) "
          f"{med['text']:,.0f} tok/s (ratio {med['text_ratio']:.2f}, rounds "
          f"{min(r['text_ratio'] for r in rows):.2f}-{max(r['text_ratio'] for r in rows):.2f}; "
          f"CPU time {med['text_cpu_ratio']:.2f}); whole evaluator perplexity() "
          f"{med['evaluator']:,.0f} tok/s (ratio {med['eval_ratio']:.2f}, rounds "
          f"{min(r['eval_ratio'] for r in rows):.2f}-{max(r['eval_ratio'] for r in rows):.2f}; "
          f"CPU time {med['eval_cpu_ratio']:.2f}); numpy "
          f"reference {numpy_tok_s:,.0f} tok/s; directory load + index build {index_s:.2f} s; "
          f"ppl ours {rep.perplexity:.2f} kenlm {10 ** (-ken_total / n):.2f}")
    return {"tokens": n, "median": med, "rounds": rows, "numpy_tok_s": numpy_tok_s,
            "dir_load_and_index_s": index_s}


def time_load(kind: str, path: Path, reps: int) -> dict:
    runs = []
    for _ in range(reps):
        out = subprocess.run([sys.executable, "-c", CHILD, kind, str(path)], check=True,
                             capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return {"load_s": statistics.median(r["load_s"] for r in runs),
            "first_score_s": statistics.median(r["first_score_s"] for r in runs),
            "runs": runs}


def run_load(model_dir: Path, tmp: Path, build_binary: str | None, reps: int) -> dict:
    from chainrule.models.ngram.convert import binarize

    t0 = time.perf_counter()
    binarize(model_dir, tmp / "brown5.ngram")
    ours_build = time.perf_counter() - t0
    res = {"binarize_s": ours_build, "bytes": (tmp / "brown5.ngram").stat().st_size}
    todo = [("ours binary", "ours", tmp / "brown5.ngram"),
            ("ours directory", "ours", model_dir),
            ("ours ARPA", "ours-arpa", model_dir / "model.arpa"),
            ("kenlm ARPA", "kenlm", model_dir / "model.arpa")]
    if build_binary and Path(build_binary).exists():
        t0 = time.perf_counter()
        subprocess.run([build_binary, str(model_dir / "model.arpa"), str(tmp / "kenlm5.binary")],
                       check=True, capture_output=True)
        res["kenlm_build_binary_s"] = time.perf_counter() - t0
        res["kenlm_bytes"] = (tmp / "kenlm5.binary").stat().st_size
        todo.insert(1, ("kenlm binary", "kenlm", tmp / "kenlm5.binary"))
    else:
        print(f"  KenLM binary skipped: build_binary not found ({build_binary!r}); pass "
              "--build-binary PATH (KenLM built from source, outside the repo)")
    for name, kind, path in todo:
        r = time_load(kind, path, reps if "ARPA" not in name else 1)
        res[name] = r
        print(f"  load {name:15s} {r['load_s']:7.3f} s, then first sentence "
              f"{r['first_score_s'] * 1e3:7.2f} ms", flush=True)
    print(f"binarize (ours) {ours_build:.2f} s -> {res['bytes'] / 2**20:.1f} MiB"
          + (f"; KenLM build_binary {res['kenlm_build_binary_s']:.2f} s -> "
             f"{res['kenlm_bytes'] / 2**20:.1f} MiB" if "kenlm_bytes" in res else ""))
    if "kenlm binary" in res:
        print(f"load ratio (ours binary / kenlm binary): "
              f"{res['ours binary']['load_s'] / res['kenlm binary']['load_s']:.2f}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, help="an order-5 model directory with model.arpa "
                    "(default: train one on brown/train.txt)")
    ap.add_argument("--build-binary", default="/work/peers/kenlm/build/bin/build_binary",
                    help="KenLM's build_binary (for the KenLM binary load row)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--load-reps", type=int, default=3)
    ap.add_argument("--skip", nargs="*", default=[], choices=["score", "load"])
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"needs {DATA} (the shared Brown data)")
    print(f"uptime: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        model_dir = args.model
        if model_dir is None:
            from chainrule.models.ngram.train import save_ngram, train_ngram

            res = train_ngram(DATA / "train.txt", order=5, smoothing="mkn")
            model_dir = tmp / "brown5"
            save_ngram(res.model, res.tokenizer, model_dir)
        out = {"loadavg_before": os.getloadavg()}
        if "score" not in args.skip:
            out["scoring"] = run_scoring(model_dir, args.rounds)
        if "load" not in args.skip:
            out["load"] = run_load(model_dir, tmp, args.build_binary, args.load_reps)
        out["loadavg_after"] = os.getloadavg()
    print(f"uptime: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
