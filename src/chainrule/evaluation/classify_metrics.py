"""Accuracy, macro-F1 and the confusion matrix of a classifier's predictions, and its plot.

Labels are integers ``0 .. n_labels-1``. Macro-F1 is the unweighted mean of the per-class F1
over the classes that occur in the gold labels or in the predictions (a class that is never
gold and never predicted has no F1 and is left out; a class with no true positive counts 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def confusion_matrix(gold: Sequence[int], pred: Sequence[int], n_labels: int) -> torch.Tensor:
    """(n_labels, n_labels) counts: row = gold label, column = predicted label."""
    m = torch.zeros(n_labels, n_labels, dtype=torch.long)
    if len(gold):
        idx = torch.as_tensor(list(gold)) * n_labels + torch.as_tensor(list(pred))
        m += torch.bincount(idx, minlength=n_labels * n_labels).view(n_labels, n_labels)
    return m


def accuracy_from_confusion(m: torch.Tensor) -> float:
    total = int(m.sum())
    return float(m.diagonal().sum()) / total if total else 0.0


def macro_f1_from_confusion(m: torch.Tensor) -> float:
    """Mean over classes seen (gold or predicted) of 2 tp / (2 tp + fp + fn)."""
    tp = m.diagonal().double()
    gold, pred = m.sum(1).double(), m.sum(0).double()
    seen = (gold + pred) > 0
    if not bool(seen.any()):
        return 0.0
    f1 = 2 * tp[seen] / (gold[seen] + pred[seen])
    return float(f1.mean())


def classification_report(gold: Sequence[int], pred: Sequence[int], labels: Sequence[str]
                          ) -> dict:
    """Accuracy, macro-F1, the confusion matrix (rows gold) and the label names, JSON-ready."""
    m = confusion_matrix(gold, pred, len(labels))
    return {"n": len(gold), "accuracy": accuracy_from_confusion(m),
            "macro_f1": macro_f1_from_confusion(m), "labels": list(labels),
            "confusion": m.tolist()}


def plot_confusion(report: dict, path, title: str = "") -> None:
    """The confusion matrix, each row normalised to the gold label's count."""
    from chainrule.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    m = torch.tensor(report["confusion"], dtype=torch.float64)
    rows = m / m.sum(1, keepdim=True).clamp(min=1)
    labels = [str(t).replace("$", r"\$") for t in report["labels"]]  # no mathtext
    size = max(4.0, 0.3 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title or f"accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}",
                 fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    try:
        _save(fig, path)
    finally:
        plt.close(fig)


__all__ = ["accuracy_from_confusion", "classification_report", "confusion_matrix",
           "macro_f1_from_confusion", "plot_confusion"]
