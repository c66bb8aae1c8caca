"""Reading-time ΔLL against model quality on a Brown ladder (issue 13's last target).

A ladder of models of increasing quality, all trained on Brown ``train.txt`` with ONE word
vocabulary (whitespace words seen >= ``--min-count`` times; the rest ``<unk>``), one sentence
per line:

* n-grams: a Laplace (add-one) bigram and interpolated modified Kneser-Ney of orders 1-5;
* neural rungs (FFNN, LSTM, GPT; small, see ``NEURAL``): each family is trained once with a
  cosine schedule that ends at the largest of ``--steps``, and a snapshot of the weights is kept
  at every step count in ``--steps`` (like the intermediate checkpoints of Oh & Schuler 2023),
  so each family gives several points of different quality for the cost of its longest run.

Each rung is then scored twice: test perplexity on Brown ``test.txt`` (per token, ``<unk>``
included, the ladder's figure) and word surprisal over each Natural Stories story (whole story
as context, punctuation split off and summed back, ``<unk>`` scored and flagged), from which its
per-word perplexity on the Natural Stories text follows. Last, one regression per rung on the
SAME rows (words with ``<unk>`` at t or t-1 under the shared vocabulary are left out for all):
baseline length + log2 frequency (Brown train) of t and t-1, full = + surprisal of t and t-1,
ΔLL per word over 10 folds (``chainrule.evaluation.reading_times.regress_surprisals``); the
correlation of ΔLL with log perplexity (``chainrule.evaluation.rt_quality``), a table and two
plots (ΔLL against Brown test perplexity and against Natural Stories perplexity).

Restartable: every finished stage is kept under ``--out`` (models/RUNG, scores/RUNG.json and
.npz) and skipped on the next run; a neural family resumes its training checkpoint. Run by hand
on one thread (never from tests):

    nice -n 10 .venv/bin/python bench/bench_brown_rt_ladder.py --out /work/exp/i13/brownrt \\
        --families gpt,lstm,ffnn --steps 150,500,1500 --test-lines 2500 --threads 1
    .venv/bin/chainrule eval reading-times SMOLLM2_DIR --name smol --data \\
        ../shared/data/naturalstories --freq-corpus ../shared/data/brown/train.txt \\
        --items smol_items.csv                    # a reference outside the ladder (optional)
    .venv/bin/python bench/bench_brown_rt_ladder.py --out /work/exp/i13/brownrt --report-only \\
        --families gpt,lstm,ffnn --suites --reference smollm2-135m=smol_items.csv

GPU: ``--device cuda --steps 1000,3000,10000`` (untested here: no GPU was lent).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

NGRAMS = {"laplace2": (2, "addk"), "kn1": (1, "mkn"), "kn2": (2, "mkn"), "kn3": (3, "mkn"),
          "kn4": (4, "mkn"), "kn5": (5, "mkn")}
# small models: ~0.1-0.3 s per step on one loaded CPU core with a 14k-word vocabulary
NEURAL = {
    "ffnn": {"order": 5, "n_embd": 96, "n_hidden": 192, "dropout": 0.1, "direct": False,
             "learning_rate": 3e-3, "block_size": 32, "batch_size": 16},
    "lstm": {"n_layer": 1, "n_embd": 128, "n_hidden": 128, "dropout": 0.1, "tie_weights": True,
             "learning_rate": 1e-2, "block_size": 32, "batch_size": 16},
    "gpt": {"n_layer": 2, "n_head": 2, "n_embd": 128, "dropout": 0.1, "bias": False,
            "learning_rate": 5e-3, "block_size": 64, "batch_size": 8},
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def prepare(out: Path, min_count: int):
    from chainrule.evaluation.ladder import prepare as ladder_prepare
    from chainrule.evaluation.ladder_config import LadderConfig

    b = SHARED / "brown"
    cfg = LadderConfig(data=(str(b / "train.txt"),), valid=(str(b / "valid.txt"),),
                       test=(str(b / "test.txt"),), output=str(out), min_count=min_count,
                       word_mode="whitespace")
    return ladder_prepare(cfg)


def train_ngrams(data, out: Path, names) -> None:
    from chainrule.models.ngram import NgramModel

    tok = data.tokenizer
    for name in names:
        d = out / "models" / name
        if (d / "config.json").is_file():
            continue
        order, smoothing = NGRAMS[name]
        c0, w0 = time.process_time(), time.perf_counter()
        model = NgramModel(order, smoothing, vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                           eos_id=tok.eos_id, unk_id=tok.unk_id, pad_id=tok.pad_id)
        model.fit(data.train_seqs)
        tmp = d.with_name(d.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save(tmp)
        tok.save(tmp / "tokenizer.json")
        _info(tmp, {"rung": name, "family": "ngram", "order": order, "smoothing": smoothing,
                    "steps": None, "train_cpu_s": time.process_time() - c0,
                    "train_wall_s": time.perf_counter() - w0})
        os.replace(tmp, d)
        log(f"{name}: trained in {time.perf_counter() - w0:.0f} s")


def _info(d: Path, info: dict) -> None:
    from chainrule.fileio import write_json

    write_json(d / "rung.json", info)


def train_neural(data, out: Path, family: str, steps: list[int], device: str) -> None:
    """One run per family, cosine to max(steps); the weights at each step count are kept."""
    import numpy as np

    from chainrule.fileio import read_json
    from chainrule.training.checkpoint import find_checkpoint
    from chainrule.training.config import make_config
    from chainrule.training.loop import train

    tdir = out / "train" / family
    total = max(steps)
    stream = lambda seqs: np.fromiter((t for s in seqs for t in s), dtype=np.int32)
    train_ids, val_ids = None, None
    cpu_before = 0.0
    for step in sorted(steps):
        d = out / "models" / f"{family}-{step}"
        if (d / "config.json").is_file():
            cpu_before = read_json(d / "rung.json")["train_cpu_s"]
            continue
        if train_ids is None:
            train_ids, val_ids = stream(data.train_seqs), stream(data.valid_seqs)
        settings = {"family": family, "max_iters": step, "lr_decay_iters": total,
                    "warmup_iters": min(100, max(1, total // 20)), "eval_interval": step,
                    "eval_iters": 8, "log_interval": 50, "boundaries": "lines",
                    "tokenizer_kind": "word", "seed": 1337, "device": device, **NEURAL[family]}
        tc = make_config(family, overrides=settings)
        c0, w0 = time.process_time(), time.perf_counter()
        summary = train(tc, train_ids, val_ids, tdir, tokenizer=data.tokenizer,
                        resume=find_checkpoint(tdir) is not None, progress=False, plot=False)
        cpu = cpu_before + time.process_time() - c0
        last = find_checkpoint(tdir)
        tmp = d.with_name(d.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in ("config.json", "model.safetensors", "tokenizer.json"):
            shutil.copyfile(last / f, tmp / f)
        _info(tmp, {"rung": f"{family}-{step}", "family": family, "steps": summary["steps"],
                    "schedule_steps": total, "tokens_seen": summary["steps"] * tc.tokens_per_step,
                    "parameters": summary["parameters"], "train_cpu_s": cpu,
                    "stage_wall_s": time.perf_counter() - w0,
                    "ms_per_iter": summary["ms_per_iter"],
                    "final_val_loss": summary["final_val_loss"], "settings": NEURAL[family]})
        os.replace(tmp, d)
        cpu_before = cpu
        log(f"{family}-{step}: {summary['steps']} steps, val loss "
            f"{summary['final_val_loss']}, {summary['ms_per_iter']:.0f} ms/step, "
            f"{cpu:.0f} CPU-s so far; load {os.getloadavg()[0]:.1f}")


def score_rung(data, out: Path, name: str, words, test_lines: int) -> None:
    """Brown test perplexity and Natural Stories word surprisals of one rung (kept)."""
    import numpy as np

    from chainrule.evaluation.perplexity import perplexity
    from chainrule.evaluation.reading_times import story_surprisals
    from chainrule.evaluation.rt_quality import text_perplexity
    from chainrule.evaluation.textscore import load_model_and_tokenizer
    from chainrule.fileio import read_json, write_json

    sdir = out / "scores"
    if (sdir / f"{name}.json").is_file():
        return
    sdir.mkdir(parents=True, exist_ok=True)
    model, tok = load_model_and_tokenizer(out / "models" / name)
    if hasattr(model, "eval"):
        model.eval()
    c0, w0 = time.process_time(), time.perf_counter()
    lines = data.test_lines[:test_lines] if test_lines else data.test_lines
    rep = perplexity(model, tok, lines, name=name)
    c1 = time.process_time()
    s, unk = story_surprisals(model, tok, words, split_punctuation=True, allow_unk=True)
    np.savez(sdir / f"{name}.npz", surprisal=s, unk=unk)
    info = read_json(out / "models" / name / "rung.json")
    info.update({"test_ppl": rep.perplexity, "test_ppl_excl_oov": rep.perplexity_excl_oov,
                 "test_tokens": rep.tokens, "test_oov": rep.oov,
                 "ns_ppl": text_perplexity(s, unk), "ns_words": len(s),
                 "ns_unk_words": int(unk.sum()), "test_cpu_s": c1 - c0,
                 "ns_cpu_s": time.process_time() - c1, "parameters": info.get("parameters")
                 or int(model.num_parameters())})
    write_json(sdir / f"{name}.json", info)
    log(f"{name}: Brown test ppl {rep.perplexity:.1f}, Natural Stories ppl "
        f"{info['ns_ppl']:.1f} ({time.perf_counter() - w0:.0f} s)")


def score_suites(out: Path, name: str) -> None:
    """SyntaxGym accuracy of one rung on the 10 shared suites (kept)."""
    from chainrule.evaluation.syntaxgym_report import evaluate_suites
    from chainrule.evaluation.textscore import load_model_and_tokenizer
    from chainrule.fileio import write_json

    path = out / "scores" / f"{name}.suites.json"
    if path.is_file() or not (out / "models" / name / "config.json").is_file():
        return
    suites = sorted(str(p) for p in (SHARED / "syntaxgym").glob("*.json"))
    model, tok = load_model_and_tokenizer(out / "models" / name)
    if hasattr(model, "eval"):
        model.eval()
    c0 = time.process_time()
    s = evaluate_suites([(name, model, tok)], suites, allow_unk=True).summary()[name]
    write_json(path, {"overall": s["overall"], "unk_words": s["unk_words"],
                      "suites": {k: v["accuracy"] for k, v in s["suites"].items()},
                      "circuits": s["circuits"], "cpu_s": time.process_time() - c0})
    log(f"{name}: SyntaxGym {100 * s['overall']:.1f}%")


def read_reference(spec: str, words):
    """``NAME=ITEMS.csv``: word surprisals of a model outside the ladder, as written by
    ``chainrule eval reading-times MODEL --data naturalstories --items ITEMS.csv``."""
    import csv

    import numpy as np

    name, _, path = spec.partition("=")
    with open(path, newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    models = {r["model"] for r in table}
    if len(models) > 1:  # a table of several models: the one called NAME
        table = [r for r in table if r["model"] == name]
    got = {(r["doc"], int(r["position"])): (r["word"], float(r["surprisal_bits"]),
                                           r.get("has_unk") in ("1", "True", "true"))
           for r in table}
    s, unk = np.zeros(len(words)), np.zeros(len(words), dtype=bool)
    for i, w in enumerate(words):
        word, s[i], unk[i] = got.get((w.doc, w.position), (None, np.nan, False))
        if word != w.word:
            raise SystemExit(f"{path}: no surprisal for {w.word!r} (doc {w.doc}, position "
                             f"{w.position}); it must come from the same reading-time table.")
    return name, s, unk


def report(out: Path, words, names: list[str], references=()) -> None:
    import numpy as np

    from chainrule.evaluation.reading_times import regress_surprisals, unigram_log2
    from chainrule.evaluation.rt_quality import quality_correlation, text_perplexity
    from chainrule.fileio import read_json, write_json

    rows = [read_json(out / "scores" / f"{n}.json") for n in names
            if (out / "scores" / f"{n}.json").is_file()]
    scored = {}
    for r in rows:
        sg = out / "scores" / f"{r['rung']}.suites.json"
        r["syntaxgym"] = read_json(sg) if sg.is_file() else None
        z = np.load(out / "scores" / f"{r['rung']}.npz")
        scored[r["rung"]] = (z["surprisal"], z["unk"])
    for spec in references:  # outside the ladder: no Brown training, no Brown test figure
        name, s, unk = read_reference(spec, words)
        scored[name] = (s, unk)
        rows.append({"rung": name, "family": "reference", "steps": None, "parameters": None,
                     "train_cpu_s": None, "test_ppl": None, "syntaxgym": None})
    # Natural Stories perplexity over the same words for every model (none <unk> under any)
    common = np.zeros(len(words), dtype=bool)
    for _, unk in scored.values():
        common |= unk
    for r in rows:
        r["ns_ppl"] = text_perplexity(scored[r["rung"]][0], common)
    freq = unigram_log2(SHARED / "brown" / "train.txt")
    rt = regress_surprisals(scored, words, freq=freq, spillover=1)
    # sensitivity: a length-only baseline (surprisal then also carries the frequency effect)
    rt_len = regress_surprisals(scored, words, freq=None, spillover=1)
    ref = rt.delta.get("kn5")
    for r in rows:
        d = rt.delta[r["rung"]]
        r.update({"delta_ll": d.delta_ll, "se": d.se, "rows": d.n,
                  "delta_ll_length_only": rt_len.delta[r["rung"]].delta_ll,
                  "se_length_only": rt_len.delta[r["rung"]].se})
        if ref is not None:  # paired over the same folds: the SE of a difference of models
            diff = np.subtract(d.fold_means, ref.fold_means)
            r["vs_kn5"], r["vs_kn5_se"] = float(diff.mean()), float(
                diff.std(ddof=1) / np.sqrt(len(diff)))
    corr = {}
    ladder = [r for r in rows if r["family"] != "reference"]
    groups = {"ladder": ladder, "neural": [r for r in ladder if r["family"] != "ngram"],
              "n-gram (KN)": [r for r in rows if r["rung"].startswith("kn")],
              "ladder + references": rows}
    for g, rs in groups.items():
        for key in ("test_ppl", "ns_ppl"):
            rs_k = [r for r in rs if r[key] is not None]
            if len(rs_k) >= 3 and not (key == "test_ppl" and g == "ladder + references"):
                c = quality_correlation([r[key] for r in rs_k], [r["delta_ll"] for r in rs_k])
                c2 = quality_correlation([r[key] for r in rs_k],
                                         [r["delta_ll_length_only"] for r in rs_k])
                corr[f"{g} / {key}"] = {"n": c.n, "pearson_log_ppl": c.pearson_log_ppl,
                                        "spearman": c.spearman, "slope_per_doubling": c.slope,
                                        "length_only_pearson": c2.pearson_log_ppl,
                                        "length_only_spearman": c2.spearman}
    write_json(out / "results.json", {"rows": rows, "correlation": corr,
                                      "rows_in_regression": rt.n_used,
                                      "words_with_rt": rt.n_words, "baseline": rt.predictors,
                                      "ns_ppl_words": int((~common).sum())})
    md = [(f"ΔLL rows: {rt.n_used:,} of {rt.n_words:,} words with a reading time "
           f"(baseline: {', '.join(rt.predictors)}); Natural Stories perplexity over the "
           f"{int((~common).sum()):,} words without <unk>"), "",
          ("| rung | steps | parameters | train CPU-s | Brown test ppl | Natural Stories ppl | "
           "ΔLL/word (nats) ± SE | ΔLL − kn5 ± paired SE | ΔLL, length-only baseline | "
           "SyntaxGym % |"), "|---|---|---|---|---|---|---|---|---|---|"]

    def f(v, fmt):
        return "—" if v is None else format(v, fmt)

    for r in sorted(rows, key=lambda r: -r["ns_ppl"]):
        sg = "—" if r["syntaxgym"] is None else f"{100 * r['syntaxgym']['overall']:.1f}"
        vs = "—" if "vs_kn5" not in r else f"{r['vs_kn5']:+.4f} ± {r['vs_kn5_se']:.4f}"
        md.append(f"| {r['rung']} | {r['steps'] or '—'} | {f(r['parameters'], ',')} | "
                  f"{f(r['train_cpu_s'], '.0f')} | {f(r['test_ppl'], '.1f')} | "
                  f"{r['ns_ppl']:.1f} | {r['delta_ll']:.4f} ± {r['se']:.4f} | {vs} | "
                  f"{r['delta_ll_length_only']:.4f} ± {r['se_length_only']:.4f} | {sg} |")
    with_sg = [r for r in rows if r["syntaxgym"]]
    if with_sg:
        suites = sorted(with_sg[0]["syntaxgym"]["suites"])
        md += ["", "SyntaxGym accuracy % per suite:", "",
               "| rung | " + " | ".join(suites) + " |", "|---" * (len(suites) + 1) + "|"]
        md += [f"| {r['rung']} | " + " | ".join(
            f"{100 * r['syntaxgym']['suites'][k]:.0f}" for k in suites) + " |"
            for r in sorted(with_sg, key=lambda r: -r["test_ppl"])]
    md += ["", ("| models | perplexity | n | Pearson r (log ppl, ΔLL) | Spearman ρ | "
                "ΔLL per halving of ppl | length-only baseline: r, ρ |"),
           "|---|---|---|---|---|---|---|"]
    for k, c in corr.items():
        g, key = k.rsplit(" / ", 1)
        md.append(f"| {g} | {'Brown test' if key == 'test_ppl' else 'Natural Stories'} | "
                  f"{c['n']} | {c['pearson_log_ppl']:.2f} | {c['spearman']:.2f} | "
                  f"{-c['slope_per_doubling']:.4f} | {c['length_only_pearson']:.2f}, "
                  f"{c['length_only_spearman']:.2f} |")
    text = "\n".join(md)
    (out / "table.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    from chainrule.evaluation.plots import have_matplotlib

    if have_matplotlib():
        from chainrule.evaluation.psych_plots import plot_dll_vs_ppl

        for key, png, label in (
                ("test_ppl", "dll_vs_brown_ppl.png", "Brown test perplexity, per token"),
                ("ns_ppl", "dll_vs_ns_ppl.png", "Natural Stories perplexity, per word")):
            rs = [r for r in rows if r[key] is not None]
            plot_dll_vs_ppl([r["rung"] for r in rs], [r[key] for r in rs],
                            [r["delta_ll"] for r in rs], [r["se"] for r in rs], out / png,
                            xlabel=f"{label} (log scale)", groups=[r["family"] for r in rs])
        log(f"plots: {out}/dll_vs_brown_ppl.png, {out}/dll_vs_ns_ppl.png")
    log(f"load {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/work/exp/i13/brownrt", help="work and result directory")
    ap.add_argument("--min-count", type=int, default=4, help="words rarer than this are <unk>")
    ap.add_argument("--ngrams", default=",".join(NGRAMS), help="n-gram rungs to train")
    ap.add_argument("--families", default="ffnn,lstm,gpt", help="neural families")
    ap.add_argument("--steps", default="150,500,1500", help="step counts kept per family")
    ap.add_argument("--family-steps", action="append", default=[], metavar="FAMILY=S1,S2",
                    help="step counts of one family (over --steps), e.g. lstm=100,300,1000")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--test-lines", type=int, default=0, help="score only the first N test "
                    "lines (0: all)")
    ap.add_argument("--report-only", action="store_true", help="regress what is scored")
    ap.add_argument("--reference", action="append", default=[], metavar="NAME=ITEMS.csv",
                    help="a model outside the ladder by its word surprisals: the --items table "
                    "of `chainrule eval reading-times MODEL --data naturalstories`")
    ap.add_argument("--suites", action="store_true", help="also score the 10 SyntaxGym "
                    "suites of ../shared/data/syntaxgym with every rung")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    from chainrule.evaluation.reading_times import read_reading_times

    words = read_reading_times(SHARED / "naturalstories")
    ngrams = [n for n in args.ngrams.split(",") if n]
    fams = [f for f in args.families.split(",") if f]
    steps = {f: sorted(int(s) for s in args.steps.split(",") if s) for f in fams}
    for spec in args.family_steps:
        f, _, v = spec.partition("=")
        steps[f] = sorted(int(s) for s in v.split(",") if s)
    names = ngrams + [f"{f}-{s}" for f in fams for s in steps[f]]
    if not args.report_only:
        data = prepare(out, args.min_count)
        log(f"vocabulary {data.tokenizer.vocab_size:,} words; load {os.getloadavg()[0]:.1f}")
        train_ngrams(data, out, ngrams)
        for n in ngrams:
            score_rung(data, out, n, words, args.test_lines)
        for f in fams:
            train_neural(data, out, f, steps[f], args.device)
            for s in steps[f]:
                score_rung(data, out, f"{f}-{s}", words, args.test_lines)
    if args.suites:
        for n in names:
            score_suites(out, n)
    report(out, words, names, args.reference)


if __name__ == "__main__":
    main()
