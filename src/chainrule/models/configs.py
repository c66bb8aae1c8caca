"""The settings of each neural family: one frozen dataclass per family, validated on construction.

Their fields are the model's settings and their defaults are *the* defaults: ``chainrule train``
reaches every field as a KEY=VALUE override (see :mod:`chainrule.training.config`), and
``config.json`` stores them.
"""

from __future__ import annotations

from dataclasses import dataclass

from chainrule.errors import ConfigError


# -- configs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NeuralConfig:
    """Fields every neural family has; subclasses add the architecture's own."""

    vocab_size: int  # number of token ids (the tokenizer's vocabulary size)
    bos_id: int = 0  # id of the beginning-of-sequence token
    eos_id: int = 1  # id of the end-of-sequence token

    def problems(self) -> list[str]:
        """Every invalid field, as sentences (empty if the config is valid)."""
        out = []
        if self.vocab_size < 2:
            out.append(f"vocab_size must be at least 2, got {self.vocab_size}.")
        for name in ("bos_id", "eos_id"):
            value = getattr(self, name)
            if not 0 <= value < max(self.vocab_size, 1):
                out.append(f"{name} {value} is outside the vocabulary of {self.vocab_size}.")
        return out

    def _positive(self, *names: str) -> list[str]:
        return [f"{n} must be a positive integer, got {getattr(self, n)!r}."
                for n in names if not (isinstance(getattr(self, n), int) and getattr(self, n) > 0)]

    def _dropout(self) -> list[str]:
        d = getattr(self, "dropout", 0.0)
        return [] if 0.0 <= d < 1.0 else [f"dropout must be in [0, 1), got {d}."]

    def _transformer_problems(self) -> list[str]:
        """Depth, widths, dropout and MLP width of a transformer config (GPT, BERT)."""
        widths = self._positive("n_head", "n_embd")
        out = self._positive("block_size", "n_layer") + widths + self._dropout()
        if not widths and self.n_embd % self.n_head:
            out.append(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head}).")
        if not (isinstance(self.n_inner, int) and self.n_inner >= 0):
            out.append(f"n_inner must be 0 (4 * n_embd) or a positive integer, got {self.n_inner!r}.")
        return out

    def __post_init__(self):
        problems = self.problems()
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class FFNNConfig(NeuralConfig):
    """Bengio et al. (2003): y = b + W x + U tanh(d + H x), x = the n-1 previous embeddings."""

    order: int = 5  # n: the model sees the n-1 previous tokens (order 5 = a 4-token window)
    n_embd: int = 60  # m: width of the shared embedding matrix C
    n_hidden: int = 100  # h: units of the tanh hidden layer
    direct: bool = True  # add the direct embedding-to-output connections W
    dropout: float = 0.0  # dropout on the concatenated embeddings and the hidden layer (training)

    def problems(self) -> list[str]:
        out = super().problems() + self._positive("n_embd", "n_hidden") + self._dropout()
        if not (isinstance(self.order, int) and self.order >= 2):
            out.append(f"order must be at least 2 (one token of context), got {self.order!r}.")
        return out


@dataclass(frozen=True)
class RNNConfig(NeuralConfig):
    """Elman network: h_t = tanh(U i_t + W h_{t-1} + b), stacked ``n_layer`` times."""

    n_embd: int = 128  # width of the input embedding i_t
    n_hidden: int = 256  # width of the hidden state h_t
    n_layer: int = 1  # stacked recurrent layers (each reads the layer below's h_t)
    dropout: float = 0.0  # dropout on embeddings, between layers and before the output layer
    nonlinearity: str = "tanh"  # "tanh" (Elman) or "relu"
    tie_weights: bool = False  # share the input embedding with the output layer
    # zero a row's state before each <s> it reads, so a sentence in a training stream starts
    # from the state it is scored from (models/rnn.py RecurrentLM)
    reset_at_bos: bool = False

    def problems(self) -> list[str]:
        out = super().problems() + self._positive("n_embd", "n_hidden", "n_layer")
        out += self._dropout()
        if self.nonlinearity not in ("tanh", "relu"):
            out.append(f"nonlinearity must be 'tanh' or 'relu', got {self.nonlinearity!r}.")
        return out


@dataclass(frozen=True)
class LSTMConfig(NeuralConfig):
    """Stacked LSTM (Hochreiter & Schmidhuber 1997) with dropout and tied embeddings."""

    n_embd: int = 256  # width of the input embedding (and of the output layer when tied)
    n_hidden: int = 256  # width of the hidden and cell states
    n_layer: int = 2  # stacked LSTM layers
    dropout: float = 0.2  # dropout on embeddings, between layers and before the output layer
    tie_weights: bool = True  # share input and output embeddings (projects if widths differ)
    # "table": one learned row per word; "char-cnn": composed from the spelling (Kim et al.
    # 2016, chainrule.models.charword), plus a full row for the char_full_words most frequent ids
    word_repr: str = "table"
    char_full_words: int = 0
    reset_at_bos: bool = False  # zero a row's state before each <s> (as RNNConfig)

    def problems(self) -> list[str]:
        out = super().problems() + self._positive("n_embd", "n_hidden", "n_layer")
        if self.word_repr not in ("table", "char-cnn"):
            out.append(f"word_repr must be 'table' or 'char-cnn', got {self.word_repr!r}.")
        elif self.word_repr == "char-cnn" and self.tie_weights:
            out.append("word_repr='char-cnn' composes input vectors, which cannot be tied to the "
                       "output layer; set tie_weights=false.")
        if self.char_full_words < 0:
            out.append(f"char_full_words must be 0 or more, got {self.char_full_words}.")
        return out + self._dropout()


@dataclass(frozen=True)
class GPTConfig(NeuralConfig):
    """Decoder-only transformer in nanoGPT's GPT-2 layout (small defaults that train in minutes
    on a laptop CPU; the presets hold published sizes, e.g. shakespeare-char's 6 x 384)."""

    block_size: int = 256  # longest context; longer inputs are scored in sliding windows
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block (n_embd must be a multiple)
    n_embd: int = 128  # width of the residual stream
    dropout: float = 0.0  # dropout on embeddings, attention weights and residual branches
    bias: bool = True  # biases in linear layers and layer norms (GPT-2 has them)
    positions: str = "learned"  # "learned" absolute position embeddings, or "rotary" (RoPE)
    rope_theta: float = 10000.0  # rotary base frequency (only with positions="rotary")
    tie_weights: bool = True  # the output layer reuses the token embedding matrix
    layer_norm_eps: float = 1e-5  # epsilon of every LayerNorm / RMSNorm (GPT-2 uses 1e-5)
    norm: str = "layernorm"  # "layernorm" (GPT-2) or "rmsnorm" (Llama)
    mlp: str = "gelu"  # "gelu" (GPT-2: 4x wide), "swiglu" (Llama: SiLU(gate) * up) or "none"
    #                    (attention-only blocks, the induction-head studies of Olsson et al. 2022)
    n_inner: int = 0  # width of the MLP's hidden layer (0: 4 * n_embd)
    n_kv_head: int = 0  # key/value heads; fewer than n_head is grouped-query attention (0: n_head)

    def problems(self) -> list[str]:
        out = super().problems() + self._transformer_problems()
        widths_ok = not self._positive("n_head", "n_embd")
        if (widths_ok and not self.n_embd % self.n_head and self.positions == "rotary"
                and (self.n_embd // self.n_head) % 2):
            out.append("rotary positions need an even head width (n_embd / n_head).")
        if self.positions not in ("learned", "rotary"):
            out.append(f"positions must be 'learned' or 'rotary', got {self.positions!r}.")
        if self.norm not in ("layernorm", "rmsnorm"):
            out.append(f"norm must be 'layernorm' or 'rmsnorm', got {self.norm!r}.")
        if self.mlp not in ("gelu", "swiglu", "none"):
            out.append(f"mlp must be 'gelu', 'swiglu' or 'none', got {self.mlp!r}.")
        if not (isinstance(self.n_kv_head, int) and self.n_kv_head >= 0):
            out.append(f"n_kv_head must be 0 (= n_head) or positive, got {self.n_kv_head!r}.")
        elif widths_ok and self.n_kv_head and self.n_head % self.n_kv_head:
            out.append(f"n_head ({self.n_head}) must be a multiple of n_kv_head "
                       f"({self.n_kv_head}).")
        return out


__all__ = ["FFNNConfig", "GPTConfig", "LSTMConfig", "NeuralConfig", "RNNConfig"]
