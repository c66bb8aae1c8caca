"""seq2seq: the recurrent encoder-decoder of the lecture (Sutskever et al. 2014, Cho et al. 2014;
Neubig 2017), with optional attention (Bahdanau et al. 2015; Luong et al. 2015).

    encoder:  h_1 ... h_S = RNN_enc(embed(x_1 ... x_S </s>))   (GRU, LSTM or Elman; stacked;
                                                                optionally bidirectional)
    bridge:   s_0 = h_S, the encoder's last state per layer (bidirectional: tanh(W [h_fwd; h_bwd]))
    decoder:  s_t = RNN_dec(embed(y_t), s_{t-1})
    no attention:   P(y_{t+1} | x, y_<=t) = softmax(W_o s_t)
    feed_context:   c = s_0 (top layer),  s_t = RNN_dec([embed(y_t); c], s_{t-1}),
                    P(y_{t+1} | x, y_<=t) = softmax(W_o [s_t; embed(y_t); c])
    attention:      a_t = softmax_s score(s_t, h_s),  c_t = sum_s a_ts h_s,
                    P(y_{t+1} | x, y_<=t) = softmax(W_o tanh(W_c [s_t; c_t]))

Without attention the source reaches the decoder only through s_0, a fixed-size vector: the
bottleneck the lecture describes. ``feed_context=true`` (Cho et al. 2014's decoder, without its
maxout layer) still has one fixed-size vector c -- the encoder's final state, after the bridge,
of the top layer (an LSTM's h) -- but hands it to the decoder at every step, beside the input
embedding into the RNN and beside the state and the embedding into the output layer, so s_t
need not carry the source alone; with attention it is refused (c_t already reaches every step).
With attention the decoder looks at every encoder state at every step; the score is ``mlp``
(Bahdanau's u^T tanh(W[q; k])), ``dot`` or ``scaled``
(:class:`chainrule.models.cross_attention.SourceAttention`). The attention reads the decoder's
current state (Luong et al.'s placement, without input feeding), so teacher-forced training runs
the decoder RNN over the whole target at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from chainrule.models.cross_attention import ATTENTION_KINDS, SourceAttention
from chainrule.models.encoder_decoder import ConditionalConfig, EncoderDecoder
from chainrule.models.neural import register_neural_family

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}


@dataclass(frozen=True)
class Seq2SeqConfig(ConditionalConfig):
    """The recurrent encoder-decoder's settings (KEY=VALUE keys of ``chainrule train``)."""

    cell: str = "gru"  # "gru", "lstm" or "rnn" (Elman, tanh)
    n_embd: int = 256  # width of the source and target embeddings
    n_hidden: int = 256  # width of each recurrent state
    n_layer: int = 1  # stacked recurrent layers (encoder and decoder each)
    bidirectional: bool = False  # a bidirectional encoder (its final states are bridged)
    attention: str = "none"  # "none", "mlp" (Bahdanau), "dot" or "scaled" (dot / sqrt(d))
    n_attn: int = 0  # width of the mlp attention's hidden layer (0: n_hidden)
    dropout: float = 0.0  # dropout on embeddings, between layers and before the output layer
    feed_context: bool = False  # attention=none: c = s_0 into every decoder step (Cho et al.)

    def problems(self) -> list[str]:
        out = super().problems() + self._conditional_problems()
        out += self._positive("n_embd", "n_hidden", "n_layer") + self._dropout()
        if self.cell not in CELLS:
            out.append(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}.")
        if self.attention not in ATTENTION_KINDS:
            out.append(f"attention must be one of {', '.join(ATTENTION_KINDS)}, "
                       f"got {self.attention!r}.")
        if not (isinstance(self.n_attn, int) and self.n_attn >= 0):
            out.append(f"n_attn must be 0 (n_hidden) or positive, got {self.n_attn!r}.")
        if not isinstance(self.feed_context, bool):
            out.append(f"feed_context must be true or false, got {self.feed_context!r}.")
        elif self.feed_context and self.attention != "none":
            out.append("feed_context=true needs attention=none: with attention the decoder "
                       "already reads a context vector at every step; drop one of the two.")
        return out


class Memory(NamedTuple):
    """The encoded source: states (B, S, K), attention keys, mask (B, S), decoder's s_0."""

    states: torch.Tensor
    keys: torch.Tensor | None
    mask: torch.Tensor
    init: Any


class DecodeState(NamedTuple):
    hidden: Any  # h (n_layer, B, H), or (h, c) for an LSTM
    memory: Memory


def _rows(x: Any, index: torch.Tensor, dim: int) -> Any:
    if isinstance(x, tuple):
        return tuple(_rows(t, index, dim) for t in x)
    return None if x is None else x.index_select(dim, index)


class Seq2Seq(EncoderDecoder):
    """The RNN encoder-decoder (see the module docstring)."""

    family = "seq2seq"
    config_class = Seq2SeqConfig

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__(cfg)
        rnn = CELLS[cfg.cell]
        E, H, L, p = cfg.n_embd, cfg.n_hidden, cfg.n_layer, cfg.dropout
        dirs = 2 if cfg.bidirectional else 1
        self.src_emb = nn.Embedding(cfg.n_source, E)
        self.tgt_emb = nn.Embedding(cfg.vocab_size, E)
        self.drop = nn.Dropout(p)
        between = p if L > 1 else 0.0
        self.encoder = rnn(E, H, L, batch_first=True, dropout=between,
                           bidirectional=cfg.bidirectional)
        self.feed_context = cfg.feed_context
        self.decoder = rnn(E + H if cfg.feed_context else E, H, L, batch_first=True,
                           dropout=between)
        if cfg.bidirectional:  # [h_fwd; h_bwd] -> the decoder's width, per layer
            self.bridge = nn.Linear(2 * H, H)
            self.bridge_c = nn.Linear(2 * H, H) if cfg.cell == "lstm" else None
        self.attn = (SourceAttention(cfg.attention, H, dirs * H, cfg.n_attn)
                     if cfg.attention != "none" else None)
        self.combine = nn.Linear(H + dirs * H, H) if self.attn is not None else None
        self.lm_head = nn.Linear(2 * H + E if cfg.feed_context else H, cfg.vocab_size)

    # -- encoder -------------------------------------------------------------------------------
    def _bridge(self, h: torch.Tensor, layer: nn.Linear | None) -> torch.Tensor:
        if not self.cfg.bidirectional:
            return h
        L, B, H = self.cfg.n_layer, h.shape[1], self.cfg.n_hidden
        both = h.view(L, 2, B, H).transpose(1, 2).reshape(L, B, 2 * H)
        return torch.tanh(layer(both)) if layer is self.bridge else layer(both)

    def encode(self, ids, lengths, mask) -> Memory:
        x = self.drop(self.src_emb(ids))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, last = self.encoder(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        if self.cfg.cell == "lstm":
            init = (self._bridge(last[0], getattr(self, "bridge", None)),
                    self._bridge(last[1], getattr(self, "bridge_c", None)))
        else:
            init = self._bridge(last, getattr(self, "bridge", None))
        keys = self.attn.keys(states) if self.attn is not None else None
        return Memory(states, keys, mask, init)

    # -- decoder -------------------------------------------------------------------------------
    def _context(self, memory: Memory, T: int) -> torch.Tensor:
        """feed_context: c, the top layer of s_0 (an LSTM's h), repeated over T steps (B, T, H)."""
        top = (memory.init[0] if isinstance(memory.init, tuple) else memory.init)[-1]
        return top[:, None].expand(-1, T, -1)

    def _input(self, e: torch.Tensor, memory: Memory) -> torch.Tensor:
        """Target embeddings (B, T, E) -> the decoder RNN's input ([e; c] with feed_context)."""
        return torch.cat([e, self._context(memory, e.shape[1])], -1) if self.feed_context else e

    def _output(self, s: torch.Tensor, memory: Memory, e: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, Any]:
        """Decoder states (B, T, H) (and their input embeddings) -> features for the head, and
        the attention weights."""
        if self.feed_context:
            return self.drop(torch.cat([s, e, self._context(memory, s.shape[1])], -1)), None
        if self.attn is None:
            return self.drop(s), None
        context, weights = self.attn(s, memory.keys, memory.states, memory.mask)
        return self.drop(torch.tanh(self.combine(torch.cat([s, context], -1)))), weights

    def decode(self, tokens, memory):
        e = self.drop(self.tgt_emb(tokens))
        s, _ = self.decoder(self._input(e, memory), memory.init)
        return self._output(s, memory, e)[0]

    def head(self, h):
        return self.lm_head(h)

    def start_decoder(self, prompt, lengths, memory):
        e = self.tgt_emb(prompt)
        packed = pack_padded_sequence(self._input(e, memory), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, hidden = self.decoder(packed, memory.init)
        s, _ = pad_packed_sequence(out, batch_first=True, total_length=prompt.shape[1])
        rows = torch.arange(s.shape[0], device=s.device)
        last = s[rows, lengths - 1][:, None]  # (B, 1, H)
        h = self._output(last, memory, e[rows, lengths - 1][:, None])[0][:, 0]
        return h, DecodeState(hidden, memory)

    def step_decoder(self, state, token):
        e = self.tgt_emb(token[:, None])
        s, hidden = self.decoder(self._input(e, state.memory), state.hidden)
        return self._output(s, state.memory, e)[0][:, 0], DecodeState(hidden, state.memory)

    def select_state(self, state: DecodeState, index: torch.Tensor) -> DecodeState:
        index = index.to(self.device)
        m = state.memory
        memory = Memory(_rows(m.states, index, 0), _rows(m.keys, index, 0),
                        _rows(m.mask, index, 0), _rows(m.init, index, 1))
        return DecodeState(_rows(state.hidden, index, 1), memory)

    def attention_weights(self, tokens, memory):
        if self.attn is None:
            from chainrule.errors import ConfigError

            raise ConfigError("this seq2seq model has no attention (attention=none): its decoder "
                              "sees the source only through the encoder's last state.")
        s, _ = self.decoder(self.tgt_emb(tokens), memory.init)
        return self._output(s, memory)[1][None, None]  # (1, 1, B, T, S)


register_neural_family(Seq2Seq, "RNN encoder-decoder (GRU/LSTM/Elman), attention mlp/dot/scaled")

__all__ = ["CELLS", "Seq2Seq", "Seq2SeqConfig"]
