"""Open-vocabulary word probabilities for a closed-vocabulary word-level LM.

A word LM's softmax covers a closed vocabulary V (which includes ``<unk>``). Every string w is
given a probability by letting ``<unk>`` stand for "some word outside V" and spelling it out:

    P(w | h) = P_LM(w | h)                                        if w in V
    P(w | h) = P_LM(<unk> | h) * P_spell(w) / (1 - sum_{v in V} P_spell(v))   otherwise

P_spell is a character n-gram model (:class:`~chainrule.embeddings.spelling.SpellingModel`)
trained on the spellings of training tokens that the vocabulary leaves out (the ones the LM saw
as ``<unk>``), or, when there are none, on the words seen once (Good-Turing's stand-in for
unseen words). Dividing by 1 - sum_{v in V} P_spell(v) renormalises it over the strings outside
V, so summed over all strings the probabilities are exactly one: sum_{v in V \\ {<unk>}}
P_LM(v | h) + P_LM(<unk> | h) = 1. The same construction is used for an LM whose input words are
composed from characters (``word_repr = "char-cnn"``) and for the same LM with a table of
embeddings, so the two are compared on equal terms; the char-composed model additionally reads
an unseen word in the history under its own spelling instead of as ``<unk>``.

This is a choice, stated honestly: the output layer itself is not character-composed (as in Kim
et al. 2016, the softmax is over V), so the char-CNN helps an unseen word's own probability only
through P_LM(<unk> | h) and through better histories.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch

from chainrule.embeddings.spelling import SpellingModel

BATCH = 32


def as_words(tokenizer, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
    """Sentences re-split into the tokenizer's own words (a word tokenizer in regex mode splits
    "don't" or "Mr." differently from white space)."""
    split = getattr(tokenizer, "split", None)
    return [split(" ".join(s)) if split else list(s) for s in sentences]


def spelling_words(train_sentences: Sequence[Sequence[str]], tokenizer) -> list[str]:
    """The training tokens the vocabulary leaves out, else the hapaxes (see the module docs)."""
    counts = Counter(w for s in as_words(tokenizer, train_sentences) for w in s)
    out = [w for w, c in counts.items() for _ in range(c) if tokenizer.token_to_id(w) is None]
    return out or [w for w, c in counts.items() if c == 1]


def _specials(tokenizer) -> set:
    return {getattr(tokenizer, n, None) for n in ("pad_id", "unk_id", "bos_id", "eos_id")}


def spelling_mass_outside(spelling: SpellingModel, tokenizer) -> float:
    """log(1 - sum over the vocabulary's words of P_spell(word))."""
    special = _specials(tokenizer)
    inside = sum(math.exp(spelling.logprob(tokenizer.id_to_token(i)))
                 for i in range(tokenizer.vocab_size) if i not in special)
    return math.log1p(-inside)


def word_logprobs(model, tokenizer, spelling: SpellingModel, sentences: Sequence[Sequence[str]],
                  log_z: float | None = None) -> list[list[tuple[str, float, bool]]]:
    """Per sentence, (word, natural-log P(word | history), in_vocabulary) for each of the
    tokenizer's words (:func:`as_words`) and a final ("</s>", ..., True)."""
    if log_z is None:
        log_z = spelling_mass_outside(spelling, tokenizer)
    unk, bos, eos = tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else eos
    emb = getattr(model, "embedding", None)
    composes = hasattr(emb, "open_vocabulary")
    out = []
    with model.inference():
        for b in range(0, len(sentences), BATCH):
            batch = [s for s in as_words(tokenizer, sentences[b:b + BATCH]) if s]
            new = sorted({w for s in batch for w in s if tokenizer.token_to_id(w) is None})
            ctx = emb.open_vocabulary(new) if composes and new else _null()
            with ctx as extra_ids:
                extra = dict(zip(new, extra_ids, strict=True)) if composes and new else {}
                T = max(len(s) for s in batch) + 1
                x = torch.full((len(batch), T), pad, dtype=torch.long)
                for i, s in enumerate(batch):
                    ids = [tokenizer.token_to_id(w) for w in s]
                    ids = [t if t is not None else extra.get(w, unk) for t, w in zip(ids, s, strict=True)]
                    x[i, : len(s) + 1] = torch.tensor([bos, *ids])
                h, _ = model.hidden(x.to(model.device))
                logp = torch.log_softmax(model.head(h).float(), -1).cpu()
            for i, s in enumerate(batch):
                rows = []
                for t, w in enumerate([*s, None]):
                    if w is None:
                        rows.append(("</s>", float(logp[i, t, eos]), True))
                        continue
                    wid = tokenizer.token_to_id(w)
                    if wid is not None:
                        rows.append((w, float(logp[i, t, wid]), True))
                    else:
                        lp = float(logp[i, t, unk]) + spelling.logprob(w) - log_z
                        rows.append((w, lp, False))
                out.append(rows)
    return out


class _null:
    def __enter__(self):
        return []

    def __exit__(self, *a):
        return False


def perplexity_by_group(scored, train_counts: Counter, rare: int = 10) -> dict:
    """Perplexity over all tokens, over in-vocabulary words seen at most ``rare`` times in
    training, over words seen in training but outside the vocabulary, and over unseen words."""
    groups: dict[str, list[float]] = {"all": [], "rare": [], "below-min-count": [], "unseen": []}
    for sent in scored:
        for w, lp, inside in sent:
            groups["all"].append(lp)
            c = train_counts.get(w, 0)
            if w == "</s>":
                continue
            if c == 0:
                groups["unseen"].append(lp)
            elif not inside:
                groups["below-min-count"].append(lp)
            elif c <= rare:
                groups["rare"].append(lp)
    return {g: {"tokens": len(v), "ppl": math.exp(-sum(v) / len(v)) if v else None}
            for g, v in groups.items()}


__all__ = ["as_words", "evaluate_open_vocabulary", "perplexity_by_group", "spelling_mass_outside", "spelling_words", "word_logprobs"]


def evaluate_open_vocabulary(model, tokenizer, train_sentences, test_sentences, *,
                             order: int = 4, rare: int = 10) -> dict:
    """Fit the spelling model on ``train_sentences`` and report :func:`perplexity_by_group` on
    ``test_sentences`` (plus the closed-vocabulary perplexity that scores ``<unk>`` as a word)."""
    spelling = SpellingModel(order).fit(spelling_words(train_sentences, tokenizer))
    scored = word_logprobs(model, tokenizer, spelling, test_sentences)
    counts = Counter(w for s in as_words(tokenizer, train_sentences) for w in s)
    out = perplexity_by_group(scored, counts, rare)
    closed = _closed_logprobs(model, tokenizer, test_sentences)
    out["closed-vocabulary (<unk> as a word)"] = {
        "tokens": len(closed), "ppl": math.exp(-sum(closed) / len(closed))}
    out["spelling_words"] = spelling.n_words
    return out


def _closed_logprobs(model, tokenizer, sentences) -> list[float]:
    """log P of every token with unknown words read and predicted as ``<unk>`` (the usual
    closed-vocabulary score, which gives all unknown words together one word's probability)."""
    unk, bos, eos = tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else eos
    out = []
    with model.inference():
        for b in range(0, len(sentences), BATCH):
            batch = [s for s in as_words(tokenizer, sentences[b:b + BATCH]) if s]
            T = max(len(s) for s in batch) + 2
            x = torch.full((len(batch), T), pad, dtype=torch.long)
            for i, s in enumerate(batch):
                ids = [tokenizer.token_to_id(w) for w in s]
                x[i, : len(s) + 2] = torch.tensor([bos, *(unk if t is None else t for t in ids), eos])
            h, _ = model.hidden(x[:, :-1].to(model.device))
            logp = torch.log_softmax(model.head(h).float(), -1).cpu()
            got = logp.gather(-1, x[:, 1:, None])[..., 0]
            for i, s in enumerate(batch):
                out.extend(float(v) for v in got[i, : len(s) + 1])
    return out
