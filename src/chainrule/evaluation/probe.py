"""Probing: what do a model's hidden states know? A linear classifier per layer.

For every layer (0 = the embeddings that enter the first block, then each block's output; for
an RNN or LSTM, the input embeddings, then each recurrent layer's h_t) a
multinomial logistic regression is trained on the frozen hidden state of each word's first
token to predict the word's tag, and scored on held-out sentences. Accuracy alone says little
(a rich enough probe memorises words), so each layer also gets the **control task** of Hewitt &
Liang (2019): every word type is given a random tag, drawn once from the tag distribution, and
the same probe learns that; **selectivity** = accuracy - control accuracy.

Words are aligned to tokens by character spans (:func:`chainrule.evaluation.textscore.
token_spans`), so any tokenizer works; a sentence longer than the model's window is skipped.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from chainrule.data.tagged import TaggedSentence
from chainrule.errors import ConfigError, DataError
from chainrule.evaluation.textscore import token_spans
from chainrule.models.attention_maps import transformer_blocks


@dataclass(frozen=True)
class LayerResult:
    """One layer's probe: accuracy on the tags, on the control task, and their difference."""

    layer: int
    accuracy: float
    control_accuracy: float
    selectivity: float


def check_probeable(model) -> None:
    """Refuse, with one sentence, a model without per-layer hidden states."""
    if hasattr(model, "layer_outputs"):  # rnn, lstm
        return
    try:
        transformer_blocks(model)
    except ConfigError:
        raise ConfigError(f"probing needs a model with layers of hidden states (bert, gpt, "
                          f"rnn, lstm); a {getattr(model, 'family', type(model).__name__)} "
                          "model has none.") from None


def word_features(model, tokenizer, sentences: Sequence[TaggedSentence]
                  ) -> tuple[list[torch.Tensor], list[int]]:
    """Per kept sentence, (n_layer + 1, n_words, C) features of each word's first token.

    Returns the features and the indices of the sentences kept (those that fit the model).
    """
    check_probeable(model)
    recurrent = hasattr(model, "layer_outputs")
    limit = getattr(model.cfg, "block_size", 1 << 30) if not recurrent else 1 << 30
    outs: list[torch.Tensor] = []
    hooks = []
    if not recurrent:  # record each transformer block's input (layer 0) and output
        blocks = transformer_blocks(model)
        hooks = [blocks[0].register_forward_pre_hook(lambda m, a: outs.append(a[0]))]
        hooks += [b.register_forward_hook(lambda m, a, o: outs.append(o)) for b in blocks]
    feats, kept = [], []
    try:
        with model.inference():
            for i, s in enumerate(sentences):
                text = " ".join(s.words)
                ids = tokenizer.encode(text)
                if len(ids) + 2 > limit or not ids:
                    continue
                spans = token_spans(tokenizer, text, ids)
                starts, pos = [], 0
                for w in s.words:  # the first token that ends past the word's first character
                    starts.append(1 + next((t for t, (_, e) in enumerate(spans) if e > pos),
                                           len(ids) - 1))
                    pos += len(w) + 1
                outs.clear()
                x = torch.tensor([[model.bos_id, *ids, model.eos_id]], device=model.device)
                if recurrent:
                    outs.extend(model.layer_outputs(x))
                else:
                    model(x)
                width = max(o.shape[-1] for o in outs)  # an LSTM's embeddings may be narrower:
                # zero columns, which standardise to zero and cannot change a linear probe
                layers = torch.stack([torch.nn.functional.pad(o[0], (0, width - o.shape[-1]))
                                      for o in outs])  # (n_layer + 1, T, C)
                feats.append(layers[:, starts].float().cpu())
                kept.append(i)
    finally:
        for h in hooks:
            h.remove()
    return feats, kept


def control_tags(sentences: Sequence[TaggedSentence], seed: int = 0) -> dict[str, str]:
    """Hewitt & Liang's control task: one random tag per word type, drawn from the empirical
    tag distribution (so the control has the same label skew as the real task)."""
    rng = random.Random(seed)
    counts = Counter(t for s in sentences for t in s.tags)
    tags, weights = zip(*sorted(counts.items()))
    types = sorted({w for s in sentences for w in s.words})
    return {w: rng.choices(tags, weights)[0] for w in types}


def train_probe(x: torch.Tensor, y: torch.Tensor, n_classes: int, *, steps: int = 200,
                lr: float = 0.05, weight_decay: float = 1e-4, seed: int = 0) -> torch.nn.Linear:
    """A linear softmax classifier on standardised features, full-batch Adam."""
    g = torch.Generator().manual_seed(seed)
    probe = torch.nn.Linear(x.shape[1], n_classes)
    with torch.no_grad():
        probe.weight.normal_(0.0, 0.01, generator=g)
        probe.bias.zero_()
    opt = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(probe(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return probe


def accuracy(probe: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((probe(x).argmax(-1) == y).float().mean())


def probe_layers(train_feats: list[torch.Tensor], train: Sequence[TaggedSentence],
                 test_feats: list[torch.Tensor], test: Sequence[TaggedSentence], *,
                 steps: int = 200, seed: int = 0) -> list[LayerResult]:
    """Train and score the tag probe and the control probe on every layer."""
    control = control_tags([*train, *test], seed)
    labels = sorted({t for s in [*train, *test] for t in s.tags})
    index = {t: i for i, t in enumerate(labels)}

    def targets(sents, use_control):
        return torch.tensor([index[control[w] if use_control else t]
                             for s in sents for w, t in zip(s.words, s.tags)])

    xtr, xte = torch.cat(train_feats, 1), torch.cat(test_feats, 1)  # (L+1, N, C)
    mean, std = xtr.mean(1, keepdim=True), xtr.std(1, keepdim=True) + 1e-6
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    results = []
    for layer in range(xtr.shape[0]):
        acc = []
        for use_control in (False, True):
            ytr, yte = targets(train, use_control), targets(test, use_control)
            p = train_probe(xtr[layer], ytr, len(labels), steps=steps, seed=seed)
            acc.append(accuracy(p, xte[layer], yte))
        results.append(LayerResult(layer, acc[0], acc[1], acc[0] - acc[1]))
    return results


def probe_model(model, tokenizer, train: Sequence[TaggedSentence],
                test: Sequence[TaggedSentence], *, steps: int = 200, seed: int = 0) -> dict:
    """Probe every layer of ``model`` for the tags; a JSON-ready report."""
    ftr, ktr = word_features(model, tokenizer, train)
    fte, kte = word_features(model, tokenizer, test)
    if not ftr or not fte:
        raise DataError("no sentence fits the model's window in the training or the test "
                        "part; pass more (or shorter) sentences.")
    train = [train[i] for i in ktr]
    test = [test[i] for i in kte]
    layers = probe_layers(ftr, train, fte, test, steps=steps, seed=seed)
    majority = Counter(t for s in train for t in s.tags).most_common(1)[0][0]
    test_tags = [t for s in test for t in s.tags]
    return {
        "family": model.family, "train_words": sum(len(s.words) for s in train),
        "test_words": len(test_tags), "tags": len({t for s in [*train, *test] for t in s.tags}),
        "majority_baseline": sum(t == majority for t in test_tags) / len(test_tags),
        "layers": [asdict(r) for r in layers],
    }


def plot_probe(report: dict, path) -> None:
    """Accuracy and control accuracy per layer, with the most-frequent-tag line."""
    from chainrule.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    layers = [r["layer"] for r in report["layers"]]
    ax.plot(layers, [r["accuracy"] for r in report["layers"]], "o-", label="tags")
    ax.plot(layers, [r["control_accuracy"] for r in report["layers"]], "s--",
            label="control task (Hewitt & Liang 2019)")
    ax.axhline(report["majority_baseline"], color="gray", lw=0.8, label="most frequent tag")
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("held-out accuracy")
    ax.set_xticks(layers)
    ax.set_title(f"linear probes: {report['family']}")
    ax.legend(fontsize=8)
    try:
        _save(fig, path)
    finally:
        plt.close(fig)


__all__ = ["LayerResult", "check_probeable", "control_tags", "plot_probe", "probe_layers", "probe_model",
           "train_probe", "word_features"]
