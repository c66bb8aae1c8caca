"""Word embeddings and distributional semantics (docs/embeddings.md).

Vectors from counts (PPMI + truncated SVD), from word2vec (SGNS, CBOW) and from any neural
model's input embeddings or hidden states; neighbours, analogies, the similarity and analogy
benchmarks, and 2-D pictures. Character-composed word embeddings inside a language model live
with the models (:mod:`chainrule.models.charword`).
"""

from chainrule.embeddings.analogy import analogy, evaluate_analogies, read_analogies
from chainrule.embeddings.corpus import EncodedCorpus, encode, read_sentences
from chainrule.embeddings.counts import cooccurrence, ppmi, ppmi_svd, svd_vectors
from chainrule.embeddings.evaluate import evaluate_all, evaluate_similarity, spearman
from chainrule.embeddings.vectors import WordVectors
from chainrule.embeddings.word2vec import Word2VecConfig, train_word2vec

__all__ = [
    "EncodedCorpus", "Word2VecConfig", "WordVectors", "analogy", "cooccurrence", "encode",
    "evaluate_all", "evaluate_analogies", "evaluate_similarity", "ppmi", "ppmi_svd",
    "read_analogies", "read_sentences", "spearman", "svd_vectors", "train_word2vec",
]
