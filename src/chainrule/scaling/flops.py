"""Model size and training compute of a neural language model, read from its own shapes.

Kaplan et al. (2020) measure a model by N, its *non-embedding* parameters, and a run by
C = 6 N D FLOPs (D training tokens; 2 N per token forward, twice that backward). Next to that
estimate this module counts the matrix multiplications the model really does per token:

- every ``nn.Linear``: 2 * in * out (the output layer included, tied or not);
- every ``nn.LSTM`` / ``nn.RNN`` layer: 2 * gates * hidden * (input + hidden);
- every causal self-attention: 2 * d * k for the scores q.k and 2 * d * k for the weighted sum
  of v, where k is the number of keys a token sees, (T + 1) / 2 on average over a causal
  window of T tokens (Kaplan's Table 1 counts the full window, T);

and training is 3 x the forward pass. Element-wise work (norms, GELU, softmax, residual adds,
embedding look-ups) is left out: it is a few percent at most of the matmul count.

A hand count for GPT(n_layer=1, n_embd=8, n_head=2, vocab 10, window T=4, biases):
q/k/v 2*8*24 = 384, output projection 2*8*8 = 128, MLP 2*8*32*2 = 1024, attention
2*2*8*2.5 = 80, head 2*8*10 = 160: 1,776 FLOPs per token forward, 5,328 to train on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from chainrule.models.layers import CausalSelfAttention


@dataclass(frozen=True)
class ModelSize:
    """The size of one model and its training compute per token.

    Attributes:
        params: every trainable parameter (tied matrices once).
        non_embedding: N of Kaplan et al.: ``params`` less the token and position embeddings
            (and so less a tied output layer, which is the token embedding).
        forward_flops: matmul FLOPs of one token's forward pass (the module docstring).
        train_flops: FLOPs to train on one token, 3 x ``forward_flops``.
    """

    params: int
    non_embedding: int
    forward_flops: float
    train_flops: float

    def compute_6nd(self, tokens: float) -> float:
        """Kaplan's estimate C = 6 N D."""
        return 6.0 * self.non_embedding * tokens

    def compute_exact(self, tokens: float) -> float:
        """The counted training FLOPs for ``tokens`` tokens."""
        return self.train_flops * tokens

    def to_dict(self) -> dict:
        return asdict(self)


def non_embedding_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, non-embedding parameters) of ``model``, each tensor counted once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():  # parameters() yields a shared tensor once
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    embedding = sum(m.weight.numel() for m in _unique(model, nn.Embedding))
    return total, total - embedding


def forward_flops_per_token(model: nn.Module, context: int) -> float:
    """Matmul FLOPs of one token's forward pass with a causal window of ``context`` tokens."""
    flops = 0.0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            flops += 2.0 * m.in_features * m.out_features
        elif isinstance(m, (nn.LSTM, nn.RNN, nn.GRU)):
            gates = {nn.LSTM: 4, nn.GRU: 3}.get(type(m), 1)
            h = m.hidden_size
            for layer in range(m.num_layers):
                width = m.input_size if layer == 0 else h * (2 if m.bidirectional else 1)
                flops += 2.0 * gates * h * (width + h) * (2 if m.bidirectional else 1)
        elif isinstance(m, CausalSelfAttention):
            width = m.n_head * m.head_dim  # the query width
            keys = (context + 1) / 2 if m.causal else context
            flops += 2 * 2.0 * width * keys  # scores q.k, then the weighted sum of v
    return flops


def model_size(model: nn.Module, context: int) -> ModelSize:
    """The :class:`ModelSize` of ``model`` trained on windows of ``context`` tokens."""
    total, non_emb = non_embedding_params(model)
    fwd = forward_flops_per_token(model, context)
    return ModelSize(params=total, non_embedding=non_emb, forward_flops=fwd,
                     train_flops=3.0 * fwd)


def config_size(cfg, vocab_size: int) -> ModelSize:
    """The :class:`ModelSize` of the model a :class:`~chainrule.training.config.TrainConfig`
    builds (built on the meta device: shapes only)."""
    from chainrule.models.neural import build_neural_model, shapes_only

    kw = dict(cfg.model_settings())
    kw["vocab_size"] = vocab_size
    with shapes_only():  # no memory, no initialisation, no RNG draws
        model = build_neural_model(cfg.family, **kw)
    return model_size(model, cfg.block_size)


def _unique(model: nn.Module, kind: type) -> list[nn.Module]:
    out, seen = [], set()
    for m in model.modules():
        if isinstance(m, kind) and id(m.weight) not in seen:
            seen.add(id(m.weight))
            out.append(m)
    return out


__all__ = ["ModelSize", "config_size", "forward_flops_per_token", "model_size",
           "non_embedding_params"]
