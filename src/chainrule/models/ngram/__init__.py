"""n-gram language models: counts to modified Kneser-Ney, ARPA in and out, KenLM parity.

Public API:
    NgramModel                  the model family (registered as ``"ngram"``)
    train_ngram                 corpus files -> fitted model + tokenizer (what the CLI calls)
    read_arpa / write_arpa      ARPA files in and out
    bigram_table                the lecture's bigram count / probability tables
"""

from chainrule.models.base import register_family
from chainrule.models.ngram.model import NgramModel

register_family("ngram", NgramModel, "n-gram backoff model (MLE, add-k, KN, modified KN)")

__all__ = ["NgramModel"]
