"""The peer of ``bench_translate.py``: ``torch.nn.Transformer``'s encoder and decoder stacks in
chainrule's conditional interface, so the same training loop, objective and batches train it
and the same beam search decodes it.

Same shape as ``transformer-ed``: learned token embeddings, pre-norm blocks
(``norm_first=True``), GELU, final norms, the output layer tied to the target embedding;
``n_dec_layer``, ``scale_embeddings`` and ``positions`` (learned or the same sinusoidal table)
are honoured as in ``transformer-ed`` (``share_embeddings`` is refused).
Decoding recomputes the decoder over the prefix at every step (nn.TransformerDecoder has no
key/value cache); only training throughput and BLEU are compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from chainrule.models.encoder_decoder import EncoderDecoder
from chainrule.models.neural import register_neural_family
from chainrule.models.transformer_ed import SinusoidalPositions, TransformerEDConfig


@dataclass(frozen=True)
class TorchTransformerConfig(TransformerEDConfig):
    def problems(self) -> list[str]:
        out = super().problems()
        if self.share_embeddings:
            out.append("the torch.nn.Transformer peer keeps its source embedding apart; "
                       "drop share_embeddings.")
        return out


class _Memory(NamedTuple):
    out: torch.Tensor
    mask: torch.Tensor


class _State(NamedTuple):
    tokens: torch.Tensor  # (B, cap)
    pos: torch.Tensor  # (B,) tokens held per row
    memory: _Memory


class TorchTransformer(EncoderDecoder):
    family = "bench-torch-transformer"
    config_class = TorchTransformerConfig

    def __init__(self, cfg):
        super().__init__(cfg)
        C = cfg.n_embd
        self.src_emb = nn.Embedding(cfg.n_source, C)
        self.tgt_emb = nn.Embedding(cfg.vocab_size, C)
        if cfg.positions == "sinusoidal":  # the same fixed table as transformer-ed
            self.src_pos = self.tgt_pos = SinusoidalPositions(cfg.max_len, C)
        else:
            self.src_pos = nn.Embedding(cfg.max_len, C)
            self.tgt_pos = nn.Embedding(cfg.max_len, C)
        self.drop = nn.Dropout(cfg.dropout)
        self.core = nn.Transformer(
            d_model=C, nhead=cfg.n_head, num_encoder_layers=cfg.n_layer,
            num_decoder_layers=cfg.decoder_layers, dim_feedforward=cfg.n_inner or 4 * C,
            dropout=cfg.dropout, activation="gelu", batch_first=True, norm_first=True)
        self.lm_head = nn.Linear(C, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.tgt_emb.weight
        self.tied_parameters = (("lm_head.weight", "tgt_emb.weight"),)
        for emb in (self.src_emb, self.src_pos, self.tgt_emb, self.tgt_pos):  # as transformer-ed
            if isinstance(emb, nn.Embedding):
                nn.init.normal_(emb.weight, mean=0.0, std=0.02)
        # scale_embeddings: token embeddings times sqrt(n_embd), as transformer-ed
        self.emb_scale = math.sqrt(C) if cfg.scale_embeddings else 1.0

    def encode(self, ids, lengths, mask):
        S = ids.shape[1]
        x = self.drop(self.src_emb(ids) * self.emb_scale
                      + self.src_pos(torch.arange(S, device=ids.device)))
        return _Memory(self.core.encoder(x, src_key_padding_mask=~mask), mask)

    def decode(self, tokens, memory):
        T = tokens.shape[1]
        x = self.drop(self.tgt_emb(tokens) * self.emb_scale
                      + self.tgt_pos(torch.arange(T, device=tokens.device)))
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=tokens.device)
        return self.core.decoder(x, memory.out, tgt_mask=causal, tgt_is_causal=True,
                                 memory_key_padding_mask=~memory.mask)

    def head(self, h):
        return self.lm_head(h)

    def start_decoder(self, prompt, lengths, memory):
        h = self.decode(prompt, memory)
        last = h[torch.arange(prompt.shape[0], device=h.device), lengths - 1]
        cap = self.cfg.max_len
        tokens = torch.full((prompt.shape[0], cap), self.eos_id, dtype=torch.long,
                            device=prompt.device)
        tokens[:, : prompt.shape[1]] = prompt
        return last, _State(tokens, lengths.clone(), memory)

    def step_decoder(self, state, token):
        self._check_target(int(state.pos.max()) + 1)
        tokens = state.tokens.clone()
        rows = torch.arange(tokens.shape[0], device=tokens.device)
        tokens[rows, state.pos] = token
        n = int(state.pos.max()) + 1
        h = self.decode(tokens[:, :n], state.memory)
        return h[rows, state.pos], _State(tokens, state.pos + 1, state.memory)

    def select_state(self, state, index):
        index = index.to(self.device)
        m = state.memory
        return _State(state.tokens.index_select(0, index), state.pos.index_select(0, index),
                      _Memory(m.out.index_select(0, index), m.mask.index_select(0, index)))


register_neural_family(TorchTransformer, "torch.nn.Transformer baseline (bench only)")
