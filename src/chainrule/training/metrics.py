"""``metrics.jsonl`` (one JSON object per line) and the loss-curve plot drawn from it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from chainrule.fileio import atomic_write_text


class MetricsLog:
    """Appends one JSON object per line to ``path``; every line has ``step``.

    Training lines carry ``train_loss`` (mean cross-entropy in nats per token over the steps
    since the last line), ``lr``, ``tokens_per_s`` and ``ms_per_iter``; evaluation lines carry
    ``train_loss`` and ``val_loss`` estimated on ``eval_iters`` batches each.
    """

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after ``step`` (a resumed run repeats those steps)."""
        if not self.enabled or not self.path.exists():
            return
        keep = [line for line in read_metrics(self.path) if line.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a kill; the rest is good
            continue
    return out


def plot_losses(metrics_path: Path, png_path: Path, *, quiet: bool = False) -> Path | None:
    """Draw train/val loss against step into ``png_path``; skip with a note without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if not quiet:
            print("note: matplotlib is not installed, so no loss plot was drawn "
                  "(pip install chainrule[plot]).", file=sys.stderr)
        return None
    rows = read_metrics(metrics_path) if Path(metrics_path).exists() else []
    train = [(r["step"], r["train_loss"]) for r in rows if "train_loss" in r and "val_loss" not in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train (batch mean)", lw=1, alpha=0.7)
    if val:
        ax.plot(*zip(*val), "o-", label="validation", lw=1.5, ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = png_path.with_name("." + png_path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(png_path)
    return png_path


__all__ = ["MetricsLog", "plot_losses", "read_metrics"]
