"""Several models over several SyntaxGym suites: accuracy per suite and circuit, item tables."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainrule.errors import ConfigError
from chainrule.evaluation.syntaxgym import SuiteResult, read_suite, run_suite
from chainrule.fileio import write_delimited


@dataclass
class SuitesReport:
    models: list[str]
    results: dict[str, list[SuiteResult]] = field(default_factory=dict)  # model -> per suite

    def summary(self) -> dict[str, Any]:
        """Per model: accuracy per suite, per circuit (mean over its suites, Hu et al.'s
        weighting) and overall (mean over suites), plus ``<unk>`` word counts."""
        out: dict[str, Any] = {}
        for m, res in self.results.items():
            suites = {r.suite.name: {"accuracy": r.accuracy, "items": len(r.correct),
                                     "circuit": r.suite.circuit, "metric": r.suite.metric}
                      for r in res}
            circuits: dict[str, list[float]] = {}
            for r in res:
                circuits.setdefault(r.suite.circuit, []).append(r.accuracy)
            out[m] = {
                "suites": suites,
                "circuits": {c: sum(v) / len(v) for c, v in sorted(circuits.items())},
                "overall": sum(r.accuracy for r in res) / len(res) if res else float("nan"),
                "unk_words": sum(r.unk_words for r in res),
            }
        return out


def evaluate_suites(
    models: Sequence[tuple[str, Any, Any]],
    suite_paths: Sequence[str | os.PathLike],
    *,
    allow_unk: bool = False,
    correct_boundary: bool = True,
) -> SuitesReport:
    """Run every suite with every ``(name, model, tokenizer)``; suites are read (and their
    formulas checked) before any scoring."""
    from chainrule.evaluation.word_surprisal import boundary_ids

    if not suite_paths:
        raise ConfigError("no suite given; name one or more SyntaxGym JSON files with --suite.")
    suites = [read_suite(p) for p in suite_paths]
    report = SuitesReport([m[0] for m in models])
    for name, model, tok in models:
        mask = boundary_ids(tok, model) if correct_boundary else None
        report.results[name] = [run_suite(model, tok, s, name=name, allow_unk=allow_unk,
                                          correct_boundary=correct_boundary, mask=mask)
                                for s in suites]
    return report


ITEM_COLUMNS = ["suite", "circuit", "item_number", "condition", "region_number", "region",
                "content", "model", "metric", "surprisal_bits"]


def write_suite_items(report: SuitesReport, path: str | os.PathLike) -> Path:
    """Region surprisals per item, condition and model (CSV/TSV), plus one row per prediction
    (``region_number`` = ``prediction_K``, ``surprisal_bits`` = 1 if it holds else 0)."""
    def rows():
        for m, results in report.results.items():
            for r in results:
                s = r.suite
                for it, regions, ok in zip(s.items, r.regions, r.correct):
                    for cond, surp in regions.items():
                        contents = dict(it["conditions"][cond])
                        for num, value in surp.items():
                            yield [s.name, s.circuit, it["item_number"], cond, num,
                                   s.region_names.get(num, ""), contents.get(num, ""), m,
                                   s.metric, f"{value:.6f}"]
                    for k, holds in enumerate(ok, 1):
                        yield [s.name, s.circuit, it["item_number"], "", f"prediction_{k}",
                               "", s.formulas[k - 1], m, "holds", int(holds)]

    return write_delimited(path, ITEM_COLUMNS, rows())


__all__ = ["SuitesReport", "evaluate_suites", "write_suite_items"]
