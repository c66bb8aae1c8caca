"""The families the conformance suite runs on: name -> how to build a fitted tiny model.

The toy families of :mod:`chainrule.testing.toys` are registered on import here.

A family module adds itself here with a builder that fits on ``TinyTask.sequences`` using
``task.seed``; ``tests/test_conformance.py`` picks every entry up.
"""

from __future__ import annotations

from functools import partial

from chainrule.testing import toys
from chainrule.testing.conditional import fit_on_tiny_task
from chainrule.testing.conformance import FamilySpec, TinyTask


def _uniform(task: TinyTask):
    from chainrule.models.reference import UniformModel

    return UniformModel(task.vocab_size, task.bos_id, task.eos_id)


def _unigram(task: TinyTask):
    from chainrule.models.reference import UnigramModel

    return UnigramModel(task.vocab_size, task.bos_id, task.eos_id).fit(task.sequences)


def _fit_neural(family: str, task: TinyTask, steps: int = 40, lr: float = 2e-2, **config):
    """A tiny neural model of ``family`` fitted by full-batch Adam on the task's sequences."""
    import torch

    from chainrule.models.neural import build_neural_model

    torch.manual_seed(task.seed)
    model = build_neural_model(family, vocab_size=task.vocab_size, bos_id=task.bos_id,
                               eos_id=task.eos_id, **config)
    if config.get("word_repr") == "char-cnn":  # spell token i as "w<i>" (no tokenizer here)
        model.embedding.set_spellings([f"w{i}" for i in range(task.vocab_size)],
                                      [False] * task.vocab_size)
    T = max(len(s) for s in task.sequences)
    batch = torch.full((len(task.sequences), T), -100, dtype=torch.long)
    for i, s in enumerate(task.sequences):
        batch[i, : len(s)] = torch.tensor(s)
    width = min(T - 1, model.max_context or T)  # GPT trains on windows of <= block_size
    inputs = batch[:, :width].clamp(min=0)  # padding is ignored through the targets below
    targets = batch[:, 1 : width + 1]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    with torch.enable_grad():  # the suite may call builders under no_grad
        for _ in range(steps):
            logits, _ = model(inputs)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _ffnn(task: TinyTask):
    return _fit_neural("ffnn", task, order=3, n_embd=8, n_hidden=16, dropout=0.1)


def _rnn(task: TinyTask):
    return _fit_neural("rnn", task, n_embd=8, n_hidden=16, n_layer=2, dropout=0.1)


def _lstm(task: TinyTask):
    return _fit_neural("lstm", task, n_embd=8, n_hidden=12, n_layer=2, dropout=0.1)


def _lstm_reset(task: TinyTask):  # the state zeroed before each <s> (the model ladder's)
    return _fit_neural("lstm", task, n_embd=8, n_hidden=12, n_layer=2, dropout=0.1,
                       reset_at_bos=True)


def _lstm_char(task: TinyTask):
    return _fit_neural("lstm", task, n_embd=8, n_hidden=12, n_layer=1, dropout=0.1,
                       tie_weights=False, word_repr="char-cnn", char_full_words=3)


def _gpt(task: TinyTask, positions: str = "learned"):
    # block_size 6 < the probe sequences, so the suite also covers sliding windows
    return _fit_neural("gpt", task, lr=1e-2, block_size=6, n_layer=2, n_head=2, n_embd=16,
                       dropout=0.1, positions=positions)


def _gpt_rotary(task: TinyTask):
    return _gpt(task, positions="rotary")


def _gpt_llama(task: TinyTask):
    # Llama's shape: RMSNorm, SwiGLU, rotary with its own base, grouped-query attention (2
    # query heads share one key/value head), no biases, a separate output layer
    return _fit_neural("gpt", task, lr=1e-2, block_size=6, n_layer=2, n_head=2, n_embd=16,
                       dropout=0.1, positions="rotary", rope_theta=500.0, norm="rmsnorm",
                       mlp="swiglu", n_inner=24, n_kv_head=1, bias=False, tie_weights=False)


def _bert(task: TinyTask, steps: int = 60):
    """A tiny BERT fitted with the masked-LM loss (padding never attended to). The task has no
    spare id, so ``bos`` doubles as [MASK] (it only ever occurs at position 0)."""
    import torch

    from chainrule.models.neural import build_neural_model
    from chainrule.training.objectives import IGNORE, MaskedLMLoss

    torch.manual_seed(task.seed)
    model = build_neural_model("bert", vocab_size=task.vocab_size, bos_id=task.bos_id,
                               eos_id=task.eos_id, mask_id=task.bos_id, block_size=16,
                               n_layer=2, n_head=2, n_embd=16, dropout=0.1)
    T = max(len(s) for s in task.sequences)
    x = torch.full((len(task.sequences), T), task.eos_id, dtype=torch.long)
    for i, s in enumerate(task.sequences):
        x[i, : len(s)] = torch.tensor(s)
    lengths = torch.tensor([len(s) for s in task.sequences])
    real = torch.arange(T)[None, :] < lengths[:, None]
    objective = MaskedLMLoss(model.mask_id, task.vocab_size, rate=0.3, never=(task.bos_id,),
                             generator=torch.Generator().manual_seed(task.seed))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    with torch.enable_grad():
        for _ in range(steps):
            corrupted, targets = objective.corrupt(x, real)
            logits, _ = model(corrupted, None, lengths)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                                     ignore_index=IGNORE)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _ngram(task: TinyTask, order: int = 3, smoothing: str = "mkn", **kwargs):
    from chainrule.models.ngram import NgramModel

    if smoothing == "mkn":  # the tiny corpus cannot estimate discounts: KenLM's fallbacks
        kwargs.setdefault("discounts", [(0.5, 1.0, 1.5)] * order)
    return NgramModel(order, smoothing, vocab_size=task.vocab_size, bos_id=task.bos_id,
                      eos_id=task.eos_id, **kwargs).fit(task.sequences)


def _ngram_addk(task: TinyTask):
    return _ngram(task, order=2, smoothing="addk", k=0.5)


def _toy(cls_name: str):
    def make(task: TinyTask):
        import torch


        torch.manual_seed(task.seed)
        model = getattr(toys, cls_name)(toys.ToyConfig(task.vocab_size, task.bos_id,
                                                       task.eos_id))
        sources = task.sources if model.conditional else None
        return toys.fit_toy(model, task.sequences, sources)
    return make


FAMILY_SPECS: dict[str, FamilySpec] = {
    "uniform": FamilySpec("uniform", _uniform, learns=False),
    "unigram": FamilySpec("unigram", _unigram),
    "ngram": FamilySpec("ngram", _ngram),
    "ngram-addk": FamilySpec("ngram", _ngram_addk),
    "ffnn": FamilySpec("ffnn", _ffnn),
    "rnn": FamilySpec("rnn", _rnn),
    "lstm": FamilySpec("lstm", _lstm),
    "lstm-char-cnn": FamilySpec("lstm", _lstm_char),
    "lstm-reset-bos": FamilySpec("lstm", _lstm_reset),
    "gpt": FamilySpec("gpt", _gpt),
    "gpt-rotary": FamilySpec("gpt", _gpt_rotary),
    "gpt-llama": FamilySpec("gpt", _gpt_llama),
    "bert": FamilySpec("bert", _bert),
    # toys that prove the interface for conditional and masked models (chainrule.testing.toys)
    "toy-source-bigram": FamilySpec("toy-source-bigram", _toy("SourceBigramLM")),
    "toy-masked": FamilySpec("toy-masked", _toy("NeighbourMaskedLM")),
    # encoder-decoders (chainrule.testing.conditional), with and without attention
    "seq2seq-gru": FamilySpec("seq2seq", partial(fit_on_tiny_task, "seq2seq", n_embd=8,
                                                 n_hidden=12, dropout=0.1)),
    "seq2seq-lstm-bi-mlp": FamilySpec("seq2seq", partial(
        fit_on_tiny_task, "seq2seq", cell="lstm", n_layer=2, bidirectional=True,
        attention="mlp", n_embd=8, n_hidden=12, dropout=0.1)),
    "seq2seq-rnn-dot": FamilySpec("seq2seq", partial(fit_on_tiny_task, "seq2seq", cell="rnn",
                                                     attention="dot", n_embd=8, n_hidden=12)),
    "seq2seq-gru-bi-scaled": FamilySpec("seq2seq", partial(
        fit_on_tiny_task, "seq2seq", attention="scaled", bidirectional=True, n_embd=8,
        n_hidden=12)),
    "seq2seq-gru-bi-feed-context": FamilySpec("seq2seq", partial(  # Cho et al.'s decoder
        fit_on_tiny_task, "seq2seq", feed_context=True, n_layer=2, bidirectional=True,
        n_embd=8, n_hidden=12, dropout=0.1)),
    "transformer-ed": FamilySpec("transformer-ed", partial(
        fit_on_tiny_task, "transformer-ed", lr=1e-2, n_layer=2, n_head=2, n_embd=16,
        dropout=0.1, max_len=16)),
    "transformer-ed-post": FamilySpec("transformer-ed", partial(
        fit_on_tiny_task, "transformer-ed", lr=1e-2, n_layer=1, n_dec_layer=2, n_head=2,
        n_embd=16, post_norm=True, tie_weights=False, init="xavier", scale_embeddings=True,
        max_len=16)),
    "transformer-ed-shared-sin": FamilySpec("transformer-ed", partial(  # three-way tying
        fit_on_tiny_task, "transformer-ed", lr=1e-2, n_layer=1, n_dec_layer=1, n_head=2,
        n_embd=16, joint_vocab=True, share_embeddings=True, positions="sinusoidal",
        scale_embeddings=True, max_len=16)),
}
