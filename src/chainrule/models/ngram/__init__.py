"""n-gram language models: counts to modified Kneser-Ney, ARPA in and out, KenLM parity.

Public API:
    NgramModel                      the model family (registered as ``"ngram"``)
    train_ngram                     corpus files -> NgramTrainResult(model, tokenizer, ...)
    save_ngram / load_ngram         a model directory with tokenizer.json and model.arpa
    export_arpa / import_arpa       model directory <-> ARPA file
    binarize                        directory / ARPA file -> one binary file (fast to load)
    read_arpa / write_arpa          ARPA files <-> NgramTables
    bigram_table / format_table     the lecture's bigram count / probability tables
"""

from chainrule.models.base import register_family
from chainrule.models.ngram.model import NgramModel

register_family("ngram", NgramModel, "n-gram backoff model (MLE, add-k, KN, modified KN)",
                trainer="ngram")

from chainrule.models.ngram.arpa import read_arpa, write_arpa
from chainrule.models.ngram.convert import binarize
from chainrule.models.ngram.lecture import bigram_table, format_table
from chainrule.models.ngram.train import (
    NgramTrainResult,
    export_arpa,
    import_arpa,
    load_ngram,
    save_ngram,
    train_ngram,
)

__all__ = [
    "NgramModel",
    "NgramTrainResult",
    "bigram_table",
    "binarize",
    "export_arpa",
    "format_table",
    "import_arpa",
    "load_ngram",
    "read_arpa",
    "save_ngram",
    "train_ngram",
    "write_arpa",
]
