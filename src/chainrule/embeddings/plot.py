"""The lecture's picture: words as points in two dimensions (PCA or t-SNE), labelled so that no
two labels overlap.

PCA is the top two principal components (numpy's SVD of the centred vectors). t-SNE is
scikit-learn's (the ``embed`` extra), with a perplexity below the number of words. Labels start
beside their points and are pushed apart, pair by pair, until their boxes no longer overlap; a
thin line joins a label that moved to its point.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from chainrule.embeddings.vectors import WordVectors
from chainrule.errors import ConfigError

PROJECTIONS = ("pca", "tsne")


def project(x: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(n, d) -> (n, 2) by PCA or t-SNE."""
    if method not in PROJECTIONS:
        raise ConfigError(f"unknown projection {method!r}; use pca or tsne.")
    x = np.asarray(x, np.float64)
    if len(x) < 3:
        raise ConfigError("a plot needs at least three words.")
    if method == "pca":
        c = x - x.mean(0)
        u, s, _ = np.linalg.svd(c, full_matrices=False)
        return u[:, :2] * s[:2]
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise ConfigError("t-SNE needs scikit-learn, which is not installed; install it with "
                          "pip install 'chainrule[embed]' or use --projection pca.") from None
    return TSNE(2, perplexity=min(30.0, (len(x) - 1) / 3), random_state=seed,
                init="pca").fit_transform(x)


def _boxes(texts, renderer, inv):
    out = []
    for t in texts:
        bb = t.get_window_extent(renderer).expanded(1.05, 1.15)
        (x0, y0), (x1, y1) = inv.transform([[bb.x0, bb.y0], [bb.x1, bb.y1]])
        out.append((x0, y0, x1, y1))
    return np.array(out)


def overlaps(boxes: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (i, j) of boxes (x0, y0, x1, y1) that overlap."""
    out = []
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i], boxes[j]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                out.append((i, j))
    return out


def spread_labels(ax, texts, points: np.ndarray, iterations: int = 300) -> np.ndarray:
    """Move ``texts`` until no two overlap; returns their final boxes (data coordinates)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    inv = ax.transData.inverted()
    rng = np.random.default_rng(0)
    for _ in range(iterations):
        boxes = _boxes(texts, renderer, inv)
        pairs = overlaps(boxes)
        if not pairs:
            return boxes
        for i, j in pairs:
            ci = (boxes[i, :2] + boxes[i, 2:]) / 2
            cj = (boxes[j, :2] + boxes[j, 2:]) / 2
            d = ci - cj
            if not d.any():
                d = rng.normal(size=2)
            # the overlap along each axis; move apart along the cheaper one
            ox = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            oy = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
            step = np.array([ox * np.sign(d[0] or 1), 0.0]) if ox < oy else \
                np.array([0.0, oy * np.sign(d[1] or 1)])
            for k, sgn in ((i, 0.55), (j, -0.55)):
                x, y = texts[k].get_position()
                texts[k].set_position((x + sgn * step[0], y + sgn * step[1]))
        ax.relim()
    return _boxes(texts, renderer, inv)


def plot_words(vectors: WordVectors, words: Sequence[str], path: str | os.PathLike,
               projection: str = "pca", title: str | None = None, seed: int = 0) -> dict:
    """Scatter ``words`` in 2-D and write a PNG; returns {"path", "points", "overlaps"}.

    Raises ConfigError naming the words not in the vocabulary."""
    from chainrule.evaluation.plots import _pyplot, _save

    missing = [w for w in words if w not in vectors]
    if missing:
        raise ConfigError(f"not in the vocabulary of these vectors: {', '.join(missing)}; "
                          "leave them out or use vectors that cover them.")
    words = list(dict.fromkeys(words))
    pts = project(np.stack([vectors.vector(w) for w in words]), projection, seed)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.scatter(pts[:, 0], pts[:, 1], s=14, color="tab:blue")
    pad = (pts.max(0) - pts.min(0)) * 0.15 + 1e-9
    ax.set_xlim(pts[:, 0].min() - pad[0], pts[:, 0].max() + pad[0])
    ax.set_ylim(pts[:, 1].min() - pad[1], pts[:, 1].max() + pad[1])
    texts = [ax.text(x, y, w, fontsize=9, ha="left", va="bottom") for w, (x, y) in
             zip(words, pts, strict=True)]
    boxes = spread_labels(ax, texts, pts)
    for t, (x, y) in zip(texts, pts, strict=True):
        tx, ty = t.get_position()
        if abs(tx - x) + abs(ty - y) > 1e-9:
            ax.plot([x, tx], [y, ty], color="0.6", lw=0.5)
    name = {"pca": "PCA", "tsne": "t-SNE"}[projection]
    ax.set_title(title or f"{name} of {len(words)} word vectors")
    ax.set_xticks([])
    ax.set_yticks([])
    out = _save(fig, path)
    plt.close(fig)
    return {"path": str(out), "points": pts.tolist(), "overlaps": len(overlaps(boxes))}


__all__ = ["PROJECTIONS", "overlaps", "plot_words", "project", "spread_labels"]
