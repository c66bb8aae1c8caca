"""The ladder's report: the table, the protocol in words, the verdict, report.md / CSV / JSON / PNG."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chainrule.evaluation.ladder_config import LadderData, RungResult
from chainrule.evaluation.perplexity import OOV_POLICY
from chainrule.fileio import atomic_write_text, write_json

CSV_COLUMNS = ["rung", "family", "status", "test_ppl", "test_ppl_excl_oov", "test_ppl_per_word",
               "test_bits_per_byte", "test_tokens", "test_oov", "valid_ppl", "train_seconds",
               "steps", "best_step", "tokens_seen", "parameters", "pairs_accuracy", "sample",
               "reason", "notes"]
NGRAM_RUNGS = ("unigram", "bigram", "trigram", "kn5")


def _fmt(v: Any, nd: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table_rows(results: Sequence[RungResult]) -> list[dict[str, str]]:
    """The printed/Markdown table: one row per rung."""
    with_pairs = any(x.pairs_accuracy is not None for x in results)
    rows = []
    for r in results:
        rows.append({
            "model": r.rung,
            "test ppl": _fmt(r.test_ppl),
            "excl. OOV": _fmt(r.test_ppl_excl_oov),
            "per word": _fmt(r.test_ppl_per_word),
            "bits/byte": _fmt(r.test_bits_per_byte, 3),
            "valid ppl": _fmt(r.valid_ppl),
            "train s": _fmt(r.train_seconds),
            "steps": _fmt(r.steps) + (f" (best {r.best_step:,})" if r.best_step and
                                      r.best_step != r.steps else ""),
            "tokens seen": _fmt(r.tokens_seen),
            "params": _fmt(r.parameters),
            **({"pairs %": _fmt(None if r.pairs_accuracy is None else 100 * r.pairs_accuracy)}
               if with_pairs else {}),
            "status": (f"skipped: {r.reason}" if r.status != "ok" else
                       "ok (pretrained elsewhere)" if r.rung == "pretrained" else "ok"),
        })
    return rows


def protocol_text(data: LadderData) -> str:
    """One paragraph saying exactly what was counted and normalised by what."""
    cfg, tok = data.config, data.tokenizer
    counted = "train + valid + test" if cfg.vocab_from == "all" else "the training lines"
    vocab = f"One {cfg.tokenizer_kind} tokenizer for every model: {tok.vocab_size:,} tokens"
    if cfg.tokenizer_kind == "word":
        vocab += (f", words seen fewer than {cfg.min_count} times in {counted} are `<unk>`"
                  + (", lowercased" if cfg.lowercase else "")
                  + (" (pre-tokenised: split at whitespace)" if cfg.word_mode == "whitespace"
                     else " (punctuation split off)"))
    else:
        vocab += f", trained on {counted}"
    if cfg.stream:
        frame = ("The training text and the test text are each scored as ONE stream "
                 "`<s> line1 line2 … </s>` (lines joined by a space; sentence ends are not "
                 "tokens, context runs across them)")
    else:
        frame = ("Every line is one sentence `<s> … </s>`; each token and each `</s>` is a "
                 "scored target, `<s>` is context only (SRILM/KenLM's count)")
    return (f"{vocab}. {frame}. Test perplexity is exp(−total log-probability / "
            f"{data.test_tokens:,} scored tokens); `<unk>` is {data.test_oov:,} of them "
            f"({100 * data.unk_rate:.2f}%). OOV policy: {OOV_POLICY}. 'Per word' divides by the "
            "whitespace words plus one end per sequence, 'bits/byte' by the UTF-8 bytes plus "
            "one newline per sequence, so they compare across tokenizers.")


# the lecture's ladder: each group is expected below every group before it (test perplexity)
LECTURE_ORDER = (("unigram",), ("bigram",), ("trigram",), ("kn5",), ("ffnn",),
                 ("rnn", "lstm", "gpt"))


def out_of_order(results: Sequence[RungResult]) -> list[tuple[str, str]]:
    """``(rung, earlier rung)`` for every rung whose test perplexity is not below that of
    a rung of an earlier group of :data:`LECTURE_ORDER` (the feed-forward model only has to
    match order-5 Kneser-Ney: at or below)."""
    ppl = {r.rung: r.test_ppl for r in results if r.status == "ok" and r.test_ppl is not None}
    wrong = []
    for g, group in enumerate(LECTURE_ORDER):
        for rung in (x for x in group if x in ppl):
            for before in (x for grp in LECTURE_ORDER[:g] for x in grp if x in ppl):
                tie_ok = rung == "ffnn" and before == "kn5"
                if ppl[rung] > ppl[before] or (ppl[rung] == ppl[before] and not tie_ok):
                    wrong.append((rung, before))
    return wrong


def order_text(results: Sequence[RungResult]) -> str:
    """One sentence on the lecture's order (unigram > bigram > KN5 >= FFNN > RNN/LSTM/GPT):
    in order, or which rungs are not, and those that a time cap cut short."""
    ppl = {r.rung: r.test_ppl for r in results if r.status == "ok" and r.test_ppl is not None}
    present = [x for grp in LECTURE_ORDER for x in grp if x in ppl]
    if len(present) < 2:
        return ""
    wrong = out_of_order(results)
    if not wrong:
        return ("The ladder is in the lecture's order: " + ", ".join(
            f"{x} {ppl[x]:.1f}" for x in sorted(present, key=lambda x: -ppl[x])) + ".")
    cut = [r.rung for r in results if "safety cap" in (r.notes or "")]
    above: dict[str, list[str]] = {}
    for a, b in wrong:
        above.setdefault(a, []).append(f"{b} {ppl[b]:.1f}")
    return ("Out of the lecture's order: " + "; ".join(
        f"{a} ({ppl[a]:.1f}) is not below {', '.join(bs)}" for a, bs in above.items()) + "."
        + (f" Cut short by the time cap: {', '.join(cut)}." if cut else ""))


def verdict(data: LadderData, results: Sequence[RungResult]) -> str:
    """One sentence when the n-grams beat every neural rung at this compute ('' otherwise)."""
    ok = [r for r in results if r.status == "ok" and r.test_ppl is not None]
    ngrams = [r for r in ok if r.rung in NGRAM_RUNGS]
    neural = [r for r in ok if r.steps]
    if not ngrams or not neural:
        return ""
    best_ng = min(ngrams, key=lambda r: r.test_ppl)
    best_nn = min(neural, key=lambda r: r.test_ppl)
    if best_nn.test_ppl <= best_ng.test_ppl:
        return ""
    train_tokens = sum(len(s) - 1 for s in data.train_seqs)
    epochs = (best_nn.tokens_seen or 0) / max(train_tokens, 1)
    return (f"At this compute the n-grams win ({best_ng.rung} {best_ng.test_ppl:.1f} vs "
            f"{best_nn.rung} {best_nn.test_ppl:.1f}): an n-gram counts every one of the "
            f"{train_tokens:,} training tokens exactly once in seconds, while the best neural "
            f"model took {best_nn.steps:,} gradient steps over {best_nn.tokens_seen:,} tokens "
            f"(≈{epochs:.1f} passes) in {best_nn.train_seconds:.0f} s, far from converged; "
            "with more passes (a larger --budget, or a GPU) neural models usually overtake "
            "n-grams.")


def _markdown_table(rows: list[dict[str, str]]) -> str:
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(r[c].replace("|", "\\|") for c in cols) + " |" for r in rows]
    return "\n".join(out)


def write_report(data: LadderData, results: Sequence[RungResult]) -> Path:
    """Write report.md, results.csv, results.json and (with matplotlib) ladder.png."""
    out, cfg = data.out_dir, data.config
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in results:
        w.writerow({k: v for k, v in asdict(r).items() if k in CSV_COLUMNS})
    atomic_write_text(out / "results.csv", buf.getvalue())
    write_json(out / "results.json", {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "vocab_size": data.tokenizer.vocab_size,
        "test_tokens": data.test_tokens,
        "test_oov": data.test_oov,
        "oov_policy": OOV_POLICY,
        "results": [asdict(r) for r in results],
    })
    ok = [r for r in results if r.status == "ok" and r.test_ppl is not None]
    plot_note = ""
    if ok:
        from chainrule.evaluation.plots import have_matplotlib, plot_perplexity_ladder

        if have_matplotlib():
            plot_perplexity_ladder([r.rung for r in ok], [r.test_ppl for r in ok],
                                   out / "ladder.png", unit="per token")
            plot_note = "![test perplexity per model](ladder.png)\n"
        else:
            plot_note = ("(no plot: matplotlib is missing; install it with "
                         "`pip install 'chainrule[plot]'`)\n")
    split = (" (separate test files)" if cfg.test else
             f" (contiguous split {cfg.split[0]:g}/{cfg.split[1]:g}/{cfg.split[2]:g} by lines)")
    md = [
        "# The model ladder",
        "",
        (f"Corpus: {', '.join(cfg.data)} — {len(data.train_lines):,} training, "
         f"{len(data.valid_lines):,} validation and {len(data.test_lines):,} test lines{split}."),
        protocol_text(data),
        "",
        _markdown_table(table_rows(results)),
        "",
    ]
    said = " ".join(x for x in (order_text(results), verdict(data, results)) if x)
    if said:
        md += [said, ""]
    md += [plot_note, "## Samples (temperature 1, from `<s>`)", ""]
    md += [f"**{r.rung}**: {r.sample}\n" for r in results if r.status == "ok"]
    notes = _grouped_notes(results)
    if notes:
        md += ["## Notes from training", ""]
        md += [f"- **{', '.join(rungs)}**: {note}" for note, rungs in notes.items()]
        if any("Kneser-Ney discounts" in note for note in notes):
            md.append(f"- The discounts fall back because the shared vocabulary keeps words seen "
                      f"at least {data.config.min_count} times: every rarer word becomes `<unk>`, "
                      "so the n-grams seen once or twice that the estimate needs are missing. "
                      "The fallback values are KenLM's `--discount_fallback` ones.")
        md += [""]
    md += [("Each model is saved under `models/<rung>/`; score your own text with, e.g., "
           "`chainrule eval surprisal models/kn5 --data FILE -o out.csv`."), ""]
    atomic_write_text(out / "report.md", "\n".join(md))
    return out / "report.md"


def _grouped_notes(results) -> dict[str, list[str]]:
    """Each distinct note once, with the rungs it came from (a warning that several rungs
    raise, such as the fallback discounts, is stated once)."""
    out: dict[str, list[str]] = {}
    for r in results:
        if r.notes:
            out.setdefault(r.notes, []).append(r.rung)
    return out


__all__ = ["CSV_COLUMNS", "LECTURE_ORDER", "order_text", "out_of_order", "protocol_text",
           "table_rows", "verdict", "write_report"]
