"""Word vectors out of any neural language model.

- **Input embeddings** (:func:`input_embeddings`): the rows of the model's input embedding
  matrix (FFNN's C, the RNN's/LSTM's embedding, GPT's and BERT's ``wte``, an imported model's
  token embeddings), each labelled with its token's text. For a subword vocabulary a label is
  the decoded token with surrounding spaces stripped; where two tokens strip to the same text
  (GPT-2 style " king" and "king") the word-initial one (with the leading space) wins, since it
  is the token a word starting after a space is spelt with. Special tokens are left out.
- **Contextual vectors** (:func:`contextual_vectors`): a word's hidden state at one layer,
  averaged over the word's tokens and then over all its occurrences in a corpus. Layer 0 is the
  embedding that enters the network; transformers have one layer per block (``-1`` = the last);
  recurrent models give layer 0 and their top layer (the states the output layer reads).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from chainrule.embeddings.vectors import WordVectors
from chainrule.errors import ConfigError


def embedding_matrix(model) -> torch.Tensor:
    """The (vocab_size, d) input embedding weights of a chainrule neural model (for a
    char-composed embedding, every id's composed vector)."""
    table = getattr(getattr(model, "embedding", None), "table", None)
    if callable(table):
        with torch.no_grad():
            return table().float().cpu()
    for get in (lambda m: m.transformer["wte"].weight, lambda m: m.embedding.weight,
                lambda m: m.C.weight, lambda m: m.tgt_emb.weight):
        try:
            w = get(model)
        except (AttributeError, KeyError, TypeError):
            continue
        if isinstance(w, torch.Tensor) and w.ndim == 2:
            return w.detach().float().cpu()
    raise ConfigError(f"a {getattr(model, 'family', type(model).__name__)} model has no input "
                      "embedding matrix to extract; use a neural model (ffnn, rnn, lstm, gpt, "
                      "bert).")


def token_labels(tokenizer, vocab_size: int) -> list[str | None]:
    """The text of each token id (None for special tokens and tokens that are only space)."""
    special = {getattr(tokenizer, n, None) for n in ("bos_id", "eos_id", "pad_id", "unk_id")}
    out: list[str | None] = []
    for i in range(vocab_size):
        if i in special:
            out.append(None)
            continue
        try:
            text = tokenizer.decode([i])
        except Exception:  # noqa: BLE001  (a byte piece that is no text on its own)
            text = ""
        out.append(text if text.strip() and "\ufffd" not in text else None)
    return out


def input_embeddings(model, tokenizer) -> WordVectors:
    """The input embedding matrix as word vectors (see the module docs for the labels)."""
    matrix = embedding_matrix(model).numpy()
    labels = token_labels(tokenizer, matrix.shape[0])
    chosen: dict[str, int] = {}
    for initial in (True, False):  # word-initial pieces first
        for i, text in enumerate(labels):
            if text is None or (text[:1].isspace() != initial):
                continue
            word = text.strip()
            if not any(c.isspace() for c in word):
                chosen.setdefault(word, i)
    rows = sorted(chosen.values())
    return WordVectors([labels[i].strip() for i in rows], matrix[rows])


def _transformer_blocks(model):
    blocks = getattr(getattr(model, "transformer", None), "h", None)
    return list(blocks) if blocks is not None else None


def n_layers(model) -> int:
    """How many hidden layers :func:`contextual_vectors` can read beyond layer 0."""
    blocks = _transformer_blocks(model)
    if blocks is not None:
        return len(blocks)
    if hasattr(model, "hidden"):
        return 1
    raise ConfigError(f"contextual vectors need a transformer or recurrent model; a "
                      f"{getattr(model, 'family', type(model).__name__)} model has none.")


def _states(model, x: torch.Tensor, layer: int) -> torch.Tensor:
    """(T, C) hidden states of one sequence x (1, T) at ``layer`` (0 = input embeddings)."""
    blocks = _transformer_blocks(model)
    if blocks is None:  # recurrent: 0 = embedding, 1 = the top layer
        return (model.embedding(x) if layer == 0 else model.hidden(x)[0])[0]
    seen: list[torch.Tensor] = []
    if layer == 0:
        hook = blocks[0].register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    else:
        hook = blocks[layer - 1].register_forward_hook(lambda m, a, o: seen.append(o))
    try:
        model(x)
    finally:
        hook.remove()
    return seen[0][0]


def contextual_vectors(model, tokenizer, sentences: Sequence[Sequence[str]], layer: int = -1,
                       min_count: int = 1, max_sentences: int | None = None) -> WordVectors:
    """Each word's state at ``layer`` averaged over its tokens and its occurrences in
    ``sentences`` (lists of words); words seen fewer than ``min_count`` times are left out.
    Sentences longer than the model's window are skipped."""
    from chainrule.evaluation.textscore import token_spans

    top = n_layers(model)
    layer = top + 1 + layer if layer < 0 else layer
    if not 0 <= layer <= top:
        raise ConfigError(f"layer must be between 0 and {top} (or -1 for the last) for this "
                          f"model, got {layer}.")
    limit = getattr(getattr(model, "cfg", None), "block_size", 1 << 30)
    bos, eos = getattr(model, "bos_id", None), getattr(model, "eos_id", None)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    with model.inference():
        for words in sentences[:max_sentences] if max_sentences else sentences:
            text = " ".join(words)
            ids = tokenizer.encode(text)
            if not ids or len(ids) + 2 > limit:
                continue
            spans = token_spans(tokenizer, text, ids)
            pre = [bos] if bos is not None else []
            post = [eos] if eos is not None and _transformer_blocks(model) is not None and \
                getattr(model, "family", "") == "bert" else []
            x = torch.tensor([[*pre, *ids, *post]], device=model.device)
            h = _states(model, x, layer).float().cpu().numpy()[len(pre):len(pre) + len(ids)]
            pos = 0
            for w in words:
                end = pos + len(w)
                toks = [t for t, (a, b) in enumerate(spans) if a < end and b > pos]
                pos = end + 1
                if not toks:
                    continue
                v = h[toks].mean(0)
                if w in sums:
                    sums[w] += v
                    counts[w] += 1
                else:
                    sums[w], counts[w] = v.copy(), 1
    words = sorted((w for w in sums if counts[w] >= min_count), key=lambda w: (-counts[w], w))
    if not words:
        raise ConfigError("no word of the corpus could be read through the model; check the "
                          "corpus and --min-count.")
    return WordVectors(words, np.stack([sums[w] / counts[w] for w in words]))


__all__ = ["contextual_vectors", "embedding_matrix", "input_embeddings", "n_layers",
           "token_labels"]
