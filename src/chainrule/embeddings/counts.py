"""Count-based vectors: co-occurrence in a window, PPMI, truncated SVD (the lecture's
"distributional semantics": a word is characterised by the contexts it occurs in).

    PPMI(w, c) = max(0, log( #(w,c) * sum_c' #(c')^a  /  (#(w) * #(c)^a) ))

where #(w, c) counts (or weights) c within ``window`` words of w, #(w) and #(c) are the row and
column sums, and ``a`` = 0.75 is Levy, Goldberg & Dagan's (2015) context-distribution smoothing
(a = 1 is plain PPMI; a < 1 raises the probability of rare contexts and so lowers their PMI).
The word vectors are ``U_d * S_d^power`` of the rank-d truncated SVD of the PPMI matrix
(power 0.5 by default, the "eigenvalue weighting" Levy et al. found better than 1).

Everything stays in ``scipy.sparse`` (the ``embed`` extra), so Brown's whole vocabulary fits.
"""

from __future__ import annotations

import numpy as np

from chainrule.embeddings.corpus import EncodedCorpus
from chainrule.embeddings.vectors import WordVectors
from chainrule.errors import ConfigError

WEIGHTINGS = ("none", "harmonic", "linear")


def _scipy():
    try:
        import scipy.sparse as sp
        import scipy.sparse.linalg as spla
    except ImportError:
        raise ConfigError("count-based vectors need scipy, which is not installed; install it "
                          "with pip install 'chainrule[embed]'.") from None
    return sp, spla


def cooccurrence(corpus: EncodedCorpus, window: int = 5, weighting: str = "none"):
    """The symmetric (V, V) co-occurrence matrix (scipy CSR, float64) of words within ``window``
    positions in the same sentence. ``weighting``: "none" counts every pair 1, "harmonic" 1/d
    (GloVe), "linear" (window - d + 1) / window (word2vec's dynamic window in expectation)."""
    if window < 1:
        raise ConfigError(f"window must be at least 1, got {window}.")
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"unknown weighting {weighting!r}; use one of {', '.join(WEIGHTINGS)}.")
    sp, _ = _scipy()
    ids, starts = corpus.ids, corpus.starts
    sent = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    V = len(corpus.words)
    rows, cols, vals = [], [], []
    for d in range(1, window + 1):
        same = sent[:-d] == sent[d:]
        a, b = ids[:-d][same], ids[d:][same]
        w = {"none": 1.0, "harmonic": 1.0 / d, "linear": (window - d + 1) / window}[weighting]
        rows += [a, b]
        cols += [b, a]
        vals += [np.full(len(a), w), np.full(len(a), w)]
    if not rows or sum(len(r) for r in rows) == 0:
        return sp.csr_matrix((V, V))
    m = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(V, V))
    return m.tocsr()  # duplicates are summed


def ppmi(counts, alpha: float = 0.75):
    """Positive PMI of a (words x contexts) count matrix (scipy sparse or numpy), with context
    counts raised to ``alpha``. Returns scipy CSR."""
    sp, _ = _scipy()
    if not 0 < alpha <= 1:
        raise ConfigError(f"alpha must be in (0, 1], got {alpha}.")
    m = sp.csr_matrix(counts, dtype=np.float64)
    row = np.asarray(m.sum(axis=1)).ravel()
    col = np.asarray(m.sum(axis=0)).ravel() ** alpha
    coo = m.tocoo()
    keep = coo.data > 0
    r, c, v = coo.row[keep], coo.col[keep], coo.data[keep]
    pmi = np.log(v) + np.log(col.sum()) - np.log(row[r]) - np.log(col[c])
    pos = pmi > 0
    return sp.csr_matrix((pmi[pos], (r[pos], c[pos])), shape=m.shape)


def svd_vectors(matrix, dim: int = 100, power: float = 0.5, seed: int = 0) -> np.ndarray:
    """Rows of ``U_d S_d^power`` from the rank-``dim`` truncated SVD (largest singular values
    first; each column's sign fixed so its largest-magnitude entry is positive)."""
    _, spla = _scipy()
    k = min(dim, min(matrix.shape) - 1)
    if k < 1:
        raise ConfigError(f"the matrix {matrix.shape} is too small for an SVD; use a larger "
                          "corpus or a lower --min-count.")
    v0 = np.random.default_rng(seed).uniform(-1, 1, min(matrix.shape))
    u, s, _ = spla.svds(matrix.astype(np.float64), k=k, v0=v0)
    order = np.argsort(-s)
    u, s = u[:, order], s[order]
    sign = np.sign(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])])
    u = u * np.where(sign == 0, 1, sign)
    return (u * s**power).astype(np.float32)


def ppmi_svd(corpus: EncodedCorpus, dim: int = 100, window: int = 5, weighting: str = "none",
             alpha: float = 0.75, power: float = 0.5, seed: int = 0) -> WordVectors:
    """Word vectors from a corpus: co-occurrence -> PPMI -> truncated SVD."""
    m = ppmi(cooccurrence(corpus, window, weighting), alpha)
    return WordVectors(list(corpus.words), svd_vectors(m, dim, power, seed))


__all__ = ["WEIGHTINGS", "cooccurrence", "ppmi", "ppmi_svd", "svd_vectors"]
