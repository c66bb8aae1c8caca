"""SyntaxGym test suites (Hu et al. 2020): read, score region surprisals, check predictions.

A suite (JSON) has ``meta`` (``name``, ``metric``: ``sum`` or ``mean``), ``region_meta``,
``predictions`` (``{"type": "formula", "formula": ...}``, see
:mod:`chainrule.evaluation.syntaxgym_formula`) and ``items``, each with ``item_number`` and
``conditions``; a condition has ``condition_name`` and ``regions`` (``region_number``,
``content``).

Region alignment: a condition's sentence is its non-empty region contents joined by one space
(SyntaxGym's convention), scored as ``<s> sentence`` (no ``</s>``). Every whitespace word of
the sentence lies inside exactly one region, so a region's surprisal is built from the word
surprisals of :func:`chainrule.evaluation.word_surprisal.score_words` (boundary-corrected
sums of token surprisals, in bits): ``sum`` is the total over the region's words; ``mean`` is
that total divided by the number of tokens in the region (SyntaxGym's mean over tokens). An
empty region has surprisal 0.

Accuracy: a prediction holds for an item when its formula is true; a suite's accuracy is the
fraction of (item, prediction) checks that hold. Circuits group suites as in Hu et al. (2020),
by the suite's name (:func:`circuit_of`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainrule.errors import DataError
from chainrule.evaluation.stimuli import Stimulus
from chainrule.evaluation.syntaxgym_formula import Node, evaluate, parse_formula, regions_of
from chainrule.fileio import read_json

METRICS = ("sum", "mean")
# Hu et al. (2020)'s six circuits, matched on the start of a suite's name.
CIRCUITS = [
    ("number_", "Agreement"),
    ("npi_", "Licensing"), ("reflexive", "Licensing"),
    ("mvrr", "Garden-Path Effects"), ("npz_", "Garden-Path Effects"),
    ("subordination", "Gross Syntactic State"),
    ("center_embed", "Center Embedding"),
    ("cleft", "Long-Distance Dependencies"), ("fgd", "Long-Distance Dependencies"),
]


def circuit_of(name: str) -> str:
    """The circuit of a suite by its name (``"other"`` when the name matches none)."""
    return next((c for prefix, c in CIRCUITS if name.startswith(prefix)), "other")


@dataclass
class Suite:
    name: str
    metric: str
    formulas: list[str]
    predictions: list[Node]
    items: list[dict[str, Any]]  # item_number, conditions: {name: [(region, content), ...]}
    region_names: dict[int, str] = field(default_factory=dict)
    path: str = ""

    @property
    def circuit(self) -> str:
        return circuit_of(self.name)


def read_suite(path: str | os.PathLike) -> Suite:
    """Read and check a SyntaxGym suite: every formula parses and names regions and
    conditions that exist in every item (errors say which formula, item or region)."""
    path = Path(path)
    raw = read_json(path, what="SyntaxGym suite")
    if not isinstance(raw, dict) or "items" not in raw or "predictions" not in raw:
        raise DataError(f"{path.name} is not a SyntaxGym suite: it needs 'items' and "
                        "'predictions' at the top level.")
    meta = raw.get("meta") or {}
    name = str(meta.get("name") or path.stem)
    metric = str(meta.get("metric", "sum"))
    if metric not in METRICS:
        raise DataError(f"{path.name}: meta.metric is {metric!r}; SyntaxGym's metrics here are "
                        f"{' and '.join(METRICS)}.")
    formulas, nodes = [], []
    for k, pred in enumerate(raw["predictions"], 1):
        if not isinstance(pred, dict) or pred.get("type", "formula") != "formula":
            raise DataError(f"{path.name} prediction {k} is not of type 'formula'.")
        text = str(pred.get("formula", ""))
        formulas.append(text)
        nodes.append(parse_formula(text, where=f"{path.name} prediction {k}"))
    items = []
    for it in raw["items"]:
        num = it.get("item_number", len(items) + 1)
        conds = {}
        for c in it.get("conditions", []):
            regions = [(int(r["region_number"]), str(r.get("content", "")).strip())
                       for r in c.get("regions", [])]
            conds[str(c["condition_name"])] = regions
        items.append({"item_number": num, "conditions": conds})
        for k, node in enumerate(nodes, 1):
            for region, cond in regions_of(node):
                if cond not in conds:
                    raise DataError(f"{path.name} prediction {k} reads condition {cond!r}, "
                                    f"which item {num} does not have (it has "
                                    f"{', '.join(map(repr, conds))}).")
                if region not in {r for r, _ in conds[cond]}:
                    raise DataError(f"{path.name} prediction {k} reads region {region} of "
                                    f"{cond!r}, which item {num} does not have (regions "
                                    f"{', '.join(str(r) for r, _ in conds[cond])}).")
    region_names = {int(k): str(v) for k, v in (raw.get("region_meta") or {}).items()}
    return Suite(name, metric, formulas, nodes, items, region_names, str(path))


def condition_text(regions: Sequence[tuple[int, str]]) -> str:
    return " ".join(c for _, c in regions if c)


def region_word_index(regions: Sequence[tuple[int, str]]) -> list[int]:
    """The region number of each whitespace word of :func:`condition_text`."""
    out = []
    for num, content in regions:
        out += [num] * len(content.split())
    return out


def region_surprisals(words, regions: Sequence[tuple[int, str]], metric: str
                      ) -> dict[int, float]:
    """Region number -> surprisal from one condition's scored words (no ``</s>`` row)."""
    owner = region_word_index(regions)
    words = [w for w in words if not w.is_eos]
    if len(words) != len(owner):
        raise DataError(f"region alignment failed: {len(words)} scored words for "
                        f"{len(owner)} region words in {condition_text(regions)!r}.")
    total = {r: 0.0 for r, _ in regions}
    ntok = {r: 0 for r, _ in regions}
    for w, r in zip(words, owner):
        total[r] += w.surprisal_bits
        ntok[r] += w.n_tokens
    if metric == "mean":
        return {r: total[r] / ntok[r] if ntok[r] else 0.0 for r in total}
    return total


@dataclass
class SuiteResult:
    suite: Suite
    model: str
    # per item: condition -> region -> surprisal; and per prediction a bool
    regions: list[dict[str, dict[int, float]]]
    correct: list[list[bool]]  # [item][prediction]
    unk_words: int = 0

    @property
    def accuracy(self) -> float:
        flat = [c for row in self.correct for c in row]
        return sum(flat) / len(flat) if flat else float("nan")


def run_suite(model, tokenizer, suite: Suite, *, name: str = "model", allow_unk: bool = False,
              correct_boundary: bool = True, mask=None) -> SuiteResult:
    """Score every condition of every item and check every prediction."""
    from chainrule.evaluation.word_surprisal import score_words

    keys, stimuli, where = [], [], []
    for i, it in enumerate(suite.items):
        for cond, regions in it["conditions"].items():
            keys.append((i, cond))
            stimuli.append(Stimulus(condition_text(regions)))
            where.append(f"{Path(suite.path).name} item {it['item_number']}, condition "
                         f"{cond!r}")
    scored = score_words(model, tokenizer, stimuli, eos=False, allow_unk=allow_unk,
                         correct=correct_boundary, mask=mask, where=where)
    per_item: list[dict[str, dict[int, float]]] = [{} for _ in suite.items]
    unk = 0
    for (i, cond), words in zip(keys, scored):
        per_item[i][cond] = region_surprisals(words, suite.items[i]["conditions"][cond],
                                              suite.metric)
        unk += sum(w.has_unk for w in words)
    correct = []
    for i, it in enumerate(suite.items):
        row = []
        for k, node in enumerate(suite.predictions, 1):
            value = evaluate(node, lambda r, c, i=i: per_item[i][c][r])
            if not isinstance(value, bool):
                raise DataError(f"{Path(suite.path).name} prediction {k} gives a number, not a "
                                "true/false comparison; compare two sides with < > or =.")
            row.append(value)
        correct.append(row)
    return SuiteResult(suite, name, per_item, correct, unk)


__all__ = [
    "CIRCUITS",
    "METRICS",
    "Suite",
    "SuiteResult",
    "circuit_of",
    "condition_text",
    "read_suite",
    "region_surprisals",
    "region_word_index",
    "run_suite",
]
