"""The ladder report's "Psycholinguistics" section: every rung on SyntaxGym suites and reading
times, beside its perplexity and minimal-pair accuracy.

It runs after the ladder, from the report directory's ``results.json`` (so it also serves a
finished ladder): each rung's saved model is scored with
:func:`chainrule.evaluation.syntaxgym_report.evaluate_suites` and
:func:`chainrule.evaluation.reading_times.analyse`, and the section is appended to
``report.md``, with ``psycholinguistics.json`` and the plots ``syntaxgym.png``,
``rt_surprisal.png`` and ``dll_ppl.png``. Word-level rungs meet words outside their vocabulary
in the stimuli, so ``<unk>`` is scored and flagged (the report counts it) unless the policy is
``refuse``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chainrule.errors import ConfigError
from chainrule.fileio import atomic_write_text, read_json, write_json


def psych_rows(report_dir: str | os.PathLike, *, suites: Sequence[str] = (),
               reading_times: str | None = None, freq_corpus: str | None = None,
               split_punctuation: bool = True, allow_unk: bool = True,
               spillover: int = 1, log=print) -> dict[str, Any]:
    """Score every finished rung; return ``{"rows": [...], "suites": ..., "rt": ...}``."""
    from chainrule.evaluation.textscore import load_model_and_tokenizer

    report_dir = Path(report_dir)
    results = read_json(report_dir / "results.json", what="ladder results")["results"]
    rungs = [r for r in results if r.get("status") == "ok" and r.get("model_dir")]
    if not rungs:
        raise ConfigError(f"{report_dir} has no trained rung to score; run the ladder first.")
    loaded = []
    for r in rungs:
        model, tok = load_model_and_tokenizer(r["model_dir"])
        if model.masked:
            log(f"  {r['rung']}: a masked model, left out of the psycholinguistic section")
            continue
        loaded.append((r["rung"], model, tok))
    out: dict[str, Any] = {"rows": [], "suites": None, "rt": None}
    summary = None
    if suites:
        from chainrule.evaluation.syntaxgym_report import evaluate_suites

        log(f"  SyntaxGym: {len(suites)} suites x {len(loaded)} rungs")
        summary = evaluate_suites(loaded, suites, allow_unk=allow_unk).summary()
        out["suites"] = summary
    rt = None
    if reading_times:
        from chainrule.evaluation.reading_times import analyse, read_reading_times, unigram_log2

        log(f"  reading times: {reading_times}")
        words = read_reading_times(reading_times)
        freq = unigram_log2(freq_corpus) if freq_corpus else None
        rt = analyse(loaded, words, freq=freq, split_punctuation=split_punctuation,
                     allow_unk=allow_unk, spillover=spillover)
        out["rt"] = rt.to_json()
        out["curves"] = rt.curves
    by = {r["rung"]: r for r in rungs}
    for name, _, _ in loaded:
        row = {"rung": name, "test ppl": _f(by[name].get("test_ppl"), 1),
               "pairs %": _f(_pct(by[name].get("pairs_accuracy")), 1)}
        if summary:
            row["SyntaxGym %"] = _f(100 * summary[name]["overall"], 1)
            row["<unk> words (suites)"] = str(summary[name]["unk_words"])
        if rt:
            d = rt.delta[name]
            row["ΔLL/word"] = f"{d.delta_ll:.4f} ± {d.se:.4f}"
            row["<unk> words (RT)"] = str(rt.unk_words[name])
        out["rows"].append(row)
    pts = [(by[n].get("test_ppl"), rt.delta[n].delta_ll) for n, _, _ in loaded] if rt else []
    pts = [p for p in pts if p[0]]
    if len(pts) >= 3:  # ΔLL against quality (Wilcox et al. 2020): the correlation over rungs
        from chainrule.evaluation.rt_quality import quality_correlation

        c = quality_correlation(*zip(*pts))
        out["quality"] = {"n": c.n, "pearson_log_ppl": c.pearson_log_ppl,
                          "spearman": c.spearman, "slope_per_doubling": c.slope}
    return out


def _pct(v):
    return None if v is None else 100 * v


def _f(v, nd: int) -> str:
    return "—" if v is None else f"{v:.{nd}f}"


def add_psych_section(report_dir: str | os.PathLike, **kw) -> Path:
    """Score the rungs (:func:`psych_rows`) and append the section to ``report.md``."""
    from chainrule.evaluation.plots import have_matplotlib

    report_dir = Path(report_dir)
    res = psych_rows(report_dir, **kw)
    intro = ("SyntaxGym: mean accuracy over the suites (Hu et al. 2020); ΔLL: cross-validated "
             "gain in log-likelihood per word (nats) of reading times when surprisal is added "
             "to a length + frequency baseline with spillover (± SE over folds); <unk> scored "
             "and flagged. See docs/psycholinguistics.md.")
    md = ["", "## Psycholinguistics", "", intro, ""]
    cols = list(res["rows"][0])
    md += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(r[c] for c in cols) + " |" for r in res["rows"]]
    if res.get("quality"):
        q = res["quality"]
        md += ["", (f"ΔLL against test perplexity over {q['n']} rungs: Pearson r (log "
                    f"perplexity) {q['pearson_log_ppl']:.2f}, Spearman ρ {q['spearman']:.2f} "
                    "(negative: ΔLL grows as perplexity falls).")]
    if res["suites"]:
        circuits = sorted({c for s in res["suites"].values() for c in s["circuits"]})
        md += ["", "Accuracy per circuit (%):", "", "| rung | " + " | ".join(circuits) + " |",
               "|" + "---|" * (len(circuits) + 1)]
        md += [f"| {m} | " + " | ".join(f"{100 * s['circuits'].get(c, 0):.1f}"
                                        for c in circuits) + " |"
               for m, s in res["suites"].items()]
    if have_matplotlib():
        from chainrule.evaluation.psych_plots import (
            plot_dll_vs_ppl,
            plot_rt_vs_surprisal,
            plot_suite_accuracy,
        )

        md.append("")
        if res["suites"]:
            plot_suite_accuracy(res["suites"], report_dir / "syntaxgym.png")
            md.append("![SyntaxGym accuracy](syntaxgym.png)")
        if res["rt"]:
            plot_rt_vs_surprisal(res["curves"], report_dir / "rt_surprisal.png")
            md.append("![reading time against surprisal](rt_surprisal.png)")
            pts = [(r["rung"], float(r["test ppl"]), res["rt"]["models"][r["rung"]])
                   for r in res["rows"] if r["test ppl"] != "—"]
            if pts:
                plot_dll_vs_ppl([p[0] for p in pts], [p[1] for p in pts],
                                [p[2]["delta_ll"] for p in pts], [p[2]["se"] for p in pts],
                                report_dir / "dll_ppl.png")
                md.append("![ΔLL against perplexity](dll_ppl.png)")
    write_json(report_dir / "psycholinguistics.json",
               {k: v for k, v in res.items() if k != "curves"})
    path = report_dir / "report.md"
    atomic_write_text(path, path.read_text(encoding="utf-8") + "\n".join(md) + "\n")
    return path


__all__ = ["add_psych_section", "psych_rows"]
