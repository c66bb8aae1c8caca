"""Intrinsic evaluation of word vectors: word similarity (Spearman's rho between the cosines and
human ratings, on the pairs both of whose words are covered) and analogies (accuracy on the
covered questions). The benchmark files are those in ``../shared/data/embeddings/``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from chainrule.embeddings.analogy import Lookup, evaluate_analogies, read_analogies
from chainrule.embeddings.vectors import WordVectors
from chainrule.errors import DataError
from chainrule.fileio import require_file

SIMILARITY_SETS = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
ANALOGY_SET = "questions-words.txt"


def default_data_dir() -> Path:
    """``$CHAINRULE_DATA/embeddings``, else ``../shared/data/embeddings`` from the working
    directory (the repository root)."""
    root = os.environ.get("CHAINRULE_DATA") or Path("..") / "shared" / "data"
    return Path(root) / "embeddings"


def read_similarity(path) -> list[tuple[str, str, float]]:
    """(word1, word2, rating) from a tab- or space-separated file; '#' lines are comments."""
    out = []
    for lineno, line in enumerate(require_file(path, "similarity file").read_text("utf-8")
                                  .splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        try:
            out.append((parts[0].strip(), parts[1].strip(), float(parts[2])))
        except (IndexError, ValueError):
            raise DataError(f"{str(path)!r} line {lineno} is not 'word1 word2 rating'.") from None
    return out


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their mean rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return (sums / counts)[inv]


def spearman(x, y) -> float:
    """Spearman's rank correlation (Pearson's r of the tie-averaged ranks)."""
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / den) if den > 0 else float("nan")


def evaluate_similarity(vectors: WordVectors, pairs, case_insensitive: bool = True) -> dict:
    """{"rho", "covered", "total", "coverage"} for (w1, w2, rating) pairs."""
    look = Lookup(vectors, case_insensitive)
    unit = vectors.unit
    model, human = [], []
    for a, b, r in pairs:
        ia, ib = look(a), look(b)
        if ia is not None and ib is not None:
            model.append(float(unit[ia] @ unit[ib]))
            human.append(r)
    n = len(pairs)
    return {"rho": spearman(model, human) if len(model) > 1 else None, "covered": len(model),
            "total": n, "coverage": len(model) / n if n else None}


def evaluate_all(vectors: WordVectors, data_dir: str | os.PathLike | None = None,
                 method: str = "add", case_insensitive: bool = True) -> dict:
    """WordSim-353, SimLex-999 and Google analogies in one dict (see the functions above)."""
    d = Path(data_dir) if data_dir else default_data_dir()
    if not d.is_dir():
        raise DataError(f"the benchmark directory {str(d)!r} does not exist; pass --data-dir "
                        "with wordsim353.tsv, simlex999.txt and questions-words.txt.")
    out = {name: evaluate_similarity(vectors, read_similarity(d / f), case_insensitive)
           for name, f in SIMILARITY_SETS.items()}
    out["analogy"] = evaluate_analogies(vectors, read_analogies(d / ANALOGY_SET), method,
                                        case_insensitive)
    return out


def format_report(result: dict) -> str:
    lines = []
    for name in SIMILARITY_SETS:
        r = result[name]
        rho = "n/a" if r["rho"] is None else f"{r['rho']:.3f}"
        lines.append(f"{name:<12} Spearman rho {rho}  (coverage {r['covered']}/{r['total']})")
    a = result["analogy"]
    lines.append(f"analogies (3Cos{a['method'].capitalize()}), accuracy on covered questions:")
    for name, r in [*a["sections"].items(), ("semantic", a["semantic"]),
                    ("syntactic", a["syntactic"]), ("overall", a["overall"])]:
        acc = "  n/a" if r["accuracy"] is None else f"{100 * r['accuracy']:5.1f}%"
        lines.append(f"  {name:<28} {acc}  (covered {r['covered']}/{r['total']})")
    return "\n".join(lines)


__all__ = ["default_data_dir", "evaluate_all", "evaluate_similarity", "format_report",
           "read_similarity", "spearman"]
