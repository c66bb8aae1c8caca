"""LSTM language model: stacked long short-term memory layers, dropout, tied embeddings.

The lecture's LSTM slide, per layer and time step, with z_t = [h_{t-1}; x_t]:

    i_t = sigma(W_i z_t + b_i)    f_t = sigma(W_f z_t + b_f)    o_t = sigma(W_o z_t + b_o)
    g_t = tanh(W_g z_t + b_g)     c_t = f_t * c_{t-1} + i_t * g_t    h_t = o_t * tanh(c_t)

``torch.nn.LSTM`` computes exactly this (its W_i, W_f, W_g, W_o are stacked in ``weight_ih`` and
``weight_hh``). The additive cell update c_t is what lets gradients survive long spans, where
the Elman network's repeated multiplication by W makes them vanish or explode.

Regularisation follows Zaremba et al. (2014): dropout on the embeddings, between layers and
before the output layer, never on the recurrent connections. Input and output embeddings are
tied (Press & Wolf 2017; Inan et al. 2017); when ``n_hidden != n_embd`` a linear projection
brings the top layer down to the embedding width first.

Everything except the cell (state handling, ``start`` / ``step``, packing of padded prompts)
is shared with the Elman network in :class:`chainrule.models.rnn.RecurrentLM`; the state is the
pair (h, c), each (n_layer, B, n_hidden).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from chainrule.models.neural import LSTMConfig, register_neural_family
from chainrule.models.rnn import RecurrentLM


class LSTM(RecurrentLM):
    """Stacked LSTM language model with dropout and tied input/output embeddings."""

    family = "lstm"
    config_class = LSTMConfig

    def __init__(self, cfg: LSTMConfig):
        super().__init__(cfg)
        cell = nn.LSTM(cfg.n_embd, cfg.n_hidden, num_layers=cfg.n_layer, batch_first=True,
                       dropout=cfg.dropout if cfg.n_layer > 1 else 0.0)
        self._build(cfg, cell)
        if cfg.word_repr == "char-cnn":  # spelling-composed input vectors (models/charword.py)
            from chainrule.models.charword import CharWordEmbedding

            self.embedding = CharWordEmbedding(cfg.vocab_size, cfg.n_embd, cfg.char_full_words)
        for name, p in cell.named_parameters():
            if name.startswith("bias_ih"):
                # forget-gate bias 1 (Gers et al. 2000; Jozefowicz et al. 2015): remember by
                # default early in training. Gates are stacked i, f, g, o.
                H = cfg.n_hidden
                nn.init.zeros_(p)
                nn.init.ones_(p[H : 2 * H])

    def attach_tokenizer(self, tokenizer) -> None:
        """Give a char-composed embedding the spelling of every id (called by training)."""
        if self.cfg.word_repr != "char-cnn":
            return
        specials = {getattr(tokenizer, n, None) for n in ("pad_id", "unk_id", "bos_id", "eos_id")}
        ids = range(self.cfg.vocab_size)
        self.embedding.set_spellings([tokenizer.id_to_token(i) for i in ids],
                                     [i in specials for i in ids])

    def init_state(self, batch_size: int, device: torch.device | str | None = None):
        """Zero (h, c), each (n_layer, B, n_hidden)."""
        h = super().init_state(batch_size, device)
        return h, torch.zeros_like(h)

    def _cell_step(self, layer: int, x: torch.Tensor, state) -> torch.Tensor:
        # the slide's gates on the cell's stacked weights (rows i, f, g, o)
        w_ih, w_hh, b_ih, b_hh = self._layer_weights(layer)
        h, c = state[0][layer], state[1][layer]  # (B, H) each
        gates = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)
        c_t = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_t = torch.sigmoid(o) * torch.tanh(c_t)
        c.copy_(c_t)
        h.copy_(h_t)
        return h_t


register_neural_family(LSTM, "stacked LSTM with dropout and tied embeddings")

__all__ = ["LSTM"]
