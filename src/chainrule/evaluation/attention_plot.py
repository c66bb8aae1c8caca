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
                   title: str = "", key_labels: Sequence[str] | None = None) -> Path:
    """A grid of heatmaps (rows: layers, columns: heads) of ``maps`` (n_layer, n_head, T, S);
    row i of a heatmap is query position i (``labels[i]``), column j key position j
    (``key_labels[j]``; self-attention, S = T, when ``key_labels`` is None). Cross-attention
    (an encoder-decoder's target x source) passes the source tokens as ``key_labels``."""
    plt = _pyplot()
    key_labels = labels if key_labels is None else key_labels
    L, H, T, S = maps.shape
    fig, axes = plt.subplots(L, H, figsize=(max(1.6, 0.28 * S) * H, max(1.6, 0.28 * T) * L),
                             squeeze=False)
    for layer in range(L):
        for head in range(H):
            ax = axes[layer][head]
            ax.imshow(maps[layer, head].float().cpu().numpy(), vmin=0.0, vmax=1.0,
                      cmap="viridis", aspect="auto")
            ax.set_xticks(range(S))
            ax.set_yticks(range(T))
            ax.set_xticklabels(key_labels, rotation=90, fontsize=6)
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
