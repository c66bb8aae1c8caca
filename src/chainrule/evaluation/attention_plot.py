"""Draw attention maps: one heatmap per layer x head, the tokens on both axes.

matplotlib is an optional extra (``pip install 'chainrule[plot]'``); without it this raises one
sentence saying so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from chainrule.evaluation.plots import _pyplot, _save


def plot_attention(maps: torch.Tensor, labels: Sequence[str], path: str | os.PathLike,
                   title: str = "") -> Path:
    """A grid of heatmaps (rows: layers, columns: heads) of ``maps`` (n_layer, n_head, T, T);
    row i of a heatmap is query position i, column j key position j (``labels[j]``)."""
    plt = _pyplot()
    L, H, T, _ = maps.shape
    size = max(1.6, 0.28 * T)
    fig, axes = plt.subplots(L, H, figsize=(size * H, size * L), squeeze=False)
    for layer in range(L):
        for head in range(H):
            ax = axes[layer][head]
            ax.imshow(maps[layer, head].cpu().numpy(), vmin=0.0, vmax=1.0, cmap="viridis")
            ax.set_xticks(range(T))
            ax.set_yticks(range(T))
            ax.set_xticklabels(labels, rotation=90, fontsize=6)
            ax.set_yticklabels(labels, fontsize=6)
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


__all__ = ["plot_attention"]
