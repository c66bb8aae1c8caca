"""transformer-ed: the transformer encoder-decoder (Vaswani et al. 2017).

    encoder:  x -> embed + positions -> n_layer x Block (self-attention over the whole source,
              padding masked; the decoder-only family's ``Block`` with ``causal = False``)
    decoder:  y -> embed + positions -> n_dec_layer x DecoderBlock:
                  causal self-attention, cross-attention over the encoder output, MLP
              -> norm -> linear head (tied to the target embedding or not)

Both stacks are built from :class:`chainrule.models.gpt.Block` (the decoder-only family's
block: the same attention, MLP, norms and residuals); :class:`DecoderBlock` subclasses it and
adds the cross-attention sub-layer between the two. ``post_norm=true`` puts every norm after its
residual sum (the original paper) instead of before (pre-norm, the default; it trains without
warm-up tricks). ``share_embeddings=true`` with ``joint_vocab=true`` (one BPE for both sides)
makes the source embedding, the target embedding and the output layer one matrix (three-way
tying, Press & Wolf 2017). ``positions=sinusoidal`` replaces the learned position embeddings by
the paper's fixed sine/cosine table (with ``scale_embeddings``, the paper's balance: token
embeddings times sqrt(d) against positions of unit amplitude). Decoding keeps the decoder's
self-attention keys and values in a cache and the encoder's cross-attention keys and values once
per source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from chainrule.models.cross_attention import CrossAttention
from chainrule.models.encoder_decoder import ConditionalConfig, EncoderDecoder
from chainrule.models.gpt import Block
from chainrule.models.layers import make_norm
from chainrule.models.neural import register_neural_family

INITS = ("gpt2", "xavier")
POSITIONS = ("learned", "sinusoidal")


class SinusoidalPositions(nn.Module):
    """Vaswani et al.'s fixed positions: PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(...);
    called like an ``nn.Embedding`` of positions. The table is rebuilt from the config, never
    saved."""

    def __init__(self, max_len: int, dim: int):
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(1e4) / dim))
        table = torch.zeros(max_len, dim)
        table[:, 0::2] = torch.sin(pos * freq)
        table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
        self.register_buffer("table", table, persistent=False)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.table[positions]


@dataclass(frozen=True)
class TransformerEDConfig(ConditionalConfig):
    """The transformer encoder-decoder's settings (KEY=VALUE keys of ``chainrule train``)."""

    n_layer: int = 3  # encoder blocks
    n_dec_layer: int = 0  # decoder blocks (0: n_layer)
    n_head: int = 4  # attention heads (n_embd must be a multiple)
    n_embd: int = 256  # width of the residual streams
    n_inner: int = 0  # width of the MLP's hidden layer (0: 4 * n_embd)
    dropout: float = 0.1  # dropout on embeddings, attention outputs and residual branches
    bias: bool = True  # biases in linear layers and norms
    norm: str = "layernorm"  # "layernorm" or "rmsnorm"
    post_norm: bool = False  # norm after each residual sum (the 2017 paper) instead of before
    layer_norm_eps: float = 1e-5  # epsilon of every norm
    mlp: str = "gelu"  # "gelu" or "swiglu"
    tie_weights: bool = True  # the output layer reuses the target embedding matrix
    share_embeddings: bool = False  # one embedding for source and target (needs joint_vocab)
    positions: str = "learned"  # "learned" embeddings or the fixed "sinusoidal" table
    init: str = "gpt2"  # block matrices: "gpt2" N(0, 0.02) or "xavier" (Glorot uniform)
    scale_embeddings: bool = False  # token embeddings times sqrt(n_embd) (Vaswani et al.)

    @property
    def n_kv_head(self) -> int:  # what Block reads: plain multi-head attention
        return 0

    @property
    def decoder_layers(self) -> int:
        return self.n_dec_layer or self.n_layer

    def problems(self) -> list[str]:
        out = super().problems() + self._conditional_problems()
        widths = self._positive("n_head", "n_embd", "n_layer") + self._dropout()
        out += widths
        if not widths and self.n_embd % self.n_head:
            out.append(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head}).")
        if not (isinstance(self.n_dec_layer, int) and self.n_dec_layer >= 0):
            out.append(f"n_dec_layer must be 0 (n_layer) or positive, got {self.n_dec_layer!r}.")
        if not (isinstance(self.n_inner, int) and self.n_inner >= 0):
            out.append(f"n_inner must be 0 (4 * n_embd) or positive, got {self.n_inner!r}.")
        if self.norm not in ("layernorm", "rmsnorm"):
            out.append(f"norm must be 'layernorm' or 'rmsnorm', got {self.norm!r}.")
        if self.mlp not in ("gelu", "swiglu"):
            out.append(f"mlp must be 'gelu' or 'swiglu', got {self.mlp!r}.")
        if self.init not in INITS:
            out.append(f"init must be one of {', '.join(INITS)}, got {self.init!r}.")
        if self.positions not in POSITIONS:
            out.append(f"positions must be one of {', '.join(POSITIONS)}, got "
                       f"{self.positions!r}.")
        if self.share_embeddings and not self.joint_vocab:
            out.append("share_embeddings=true needs one vocabulary for source and target; "
                       "set joint_vocab=true as well.")
        elif self.share_embeddings and self.n_source != self.vocab_size:
            out.append(f"share_embeddings=true needs source and target vocabularies of one size, "
                       f"got {self.n_source} and {self.vocab_size}.")
        return out


class DecoderBlock(Block):
    """``Block`` plus cross-attention: self-attention, then cross-attention, then the MLP."""

    def __init__(self, cfg: TransformerEDConfig):
        super().__init__(cfg)
        self.ln_x = make_norm(cfg.norm, cfg.n_embd, cfg.layer_norm_eps, cfg.bias)
        self.cross = CrossAttention(cfg.n_embd, cfg.n_head, cfg.dropout, cfg.bias)

    def _rest(self, x: torch.Tensor, kv, mask: torch.Tensor) -> torch.Tensor:
        """Cross-attention and MLP sub-layers after the self-attention residual."""
        if self.post_norm:
            x = self.ln_x(x + self.cross(x, kv, mask))
            return self.ln_2(x + self.mlp(x))
        x = x + self.cross(self.ln_x(x), kv, mask)
        return x + self.mlp(self.ln_2(x))

    def forward(self, x, kv=None, mask=None):
        return self.prefill(x, kv, mask)[0]

    def prefill(self, x, kv, mask):
        """Full pass over x (B, T, C), also returning the self-attention keys and values."""
        if self.post_norm:
            y, cache = self.attn.attend(x)
            x = self.ln_1(x + y)
        else:
            y, cache = self.attn.attend(self.ln_1(x))
            x = x + y
        return self._rest(x, kv, mask), cache

    def decode_one(self, x, kv, mask, k_cache, v_cache, pos, self_mask) -> torch.Tensor:
        """One token per row (B, 1, C) against the self-attention cache and the memory."""
        if self.post_norm:
            x = self.ln_1(x + self.attn.decode(x, None, k_cache, v_cache, pos, self_mask))
        else:
            x = x + self.attn.decode(self.ln_1(x), None, k_cache, v_cache, pos, self_mask)
        return self._rest(x, kv, mask)


class Memory(NamedTuple):
    kv: list  # per decoder layer: cross-attention (k, v), each (B, nh, S, hs)
    mask: torch.Tensor  # (B, S) True = real source position


class DecodeState(NamedTuple):
    k: torch.Tensor  # (n_dec_layer, B, nh, cap, hs) self-attention keys
    v: torch.Tensor
    pos: torch.Tensor  # (B,) tokens cached per row (where the next one goes)
    longest: int  # max(pos), known on the host
    memory: Memory


class TransformerED(EncoderDecoder):
    """The transformer encoder-decoder (see the module docstring)."""

    family = "transformer-ed"
    config_class = TransformerEDConfig

    def __init__(self, cfg: TransformerEDConfig):
        super().__init__(cfg)
        C = cfg.n_embd
        self.src_emb = nn.Embedding(cfg.n_source, C)
        self.tgt_emb = nn.Embedding(cfg.vocab_size, C)
        if cfg.positions == "sinusoidal":  # one fixed table for both sides
            self.src_pos = self.tgt_pos = SinusoidalPositions(cfg.max_len, C)
        else:
            self.src_pos = nn.Embedding(cfg.max_len, C)
            self.tgt_pos = nn.Embedding(cfg.max_len, C)
        self.drop = nn.Dropout(cfg.dropout)
        self.enc = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        for block in self.enc:
            block.attn.causal = False
        self.dec = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.decoder_layers))
        # pre-norm stacks end with a norm; post-norm blocks already end normalised
        self.enc_ln = (nn.Identity() if cfg.post_norm else
                       make_norm(cfg.norm, C, cfg.layer_norm_eps, cfg.bias))
        self.dec_ln = (nn.Identity() if cfg.post_norm else
                       make_norm(cfg.norm, C, cfg.layer_norm_eps, cfg.bias))
        self.lm_head = nn.Linear(C, cfg.vocab_size, bias=False)
        tied = []
        if cfg.tie_weights:
            self.lm_head.weight = self.tgt_emb.weight
            tied.append(("lm_head.weight", "tgt_emb.weight"))
        if cfg.share_embeddings:  # joint BPE: a source token and a target token are one token
            self.src_emb.weight = self.tgt_emb.weight
            tied.append(("src_emb.weight", "tgt_emb.weight"))
        self.tied_parameters = tuple(tied)
        self._init_weights(cfg)
        self.emb_scale = math.sqrt(C) if cfg.scale_embeddings else 1.0

    def _init_weights(self, cfg: TransformerEDConfig) -> None:
        """Embeddings N(0, 0.02) and zero biases; the blocks' matrices GPT-2's N(0, 0.02) with
        residual projections scaled by 1/sqrt(2 * depth) (``init="gpt2"``), or Glorot-uniform as
        ``torch.nn.Transformer`` does (``init="xavier"``)."""
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        if cfg.init == "xavier":
            for stack in (self.enc, self.dec):
                for m in stack.modules():
                    if isinstance(m, nn.Linear):
                        nn.init.xavier_uniform_(m.weight)
            return
        depth = cfg.n_layer + cfg.decoder_layers
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * depth))

    def encode(self, ids, lengths, mask) -> Memory:
        S = ids.shape[1]
        x = self.src_emb(ids) * self.emb_scale
        x = self.drop(x + self.src_pos(torch.arange(S, device=ids.device)))
        keys = mask[:, None, None, :]  # (B, 1, 1, S): every query sees the real positions
        for block in self.enc:
            x = block(x, None, keys)
        out = self.enc_ln(x)
        return Memory([b.cross.memory_kv(out) for b in self.dec], mask)

    def _embed(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return self.drop(self.tgt_emb(tokens) * self.emb_scale + self.tgt_pos(pos))

    def decode(self, tokens, memory):
        x = self._embed(tokens, torch.arange(tokens.shape[1], device=tokens.device))
        for block, kv in zip(self.dec, memory.kv):
            x = block(x, kv, memory.mask)
        return self.dec_ln(x)

    def head(self, h):
        return self.lm_head(h)

    def start_decoder(self, prompt, lengths, memory):
        B, T = prompt.shape
        x = self._embed(prompt, torch.arange(T, device=prompt.device))
        ks, vs = [], []
        for block, kv in zip(self.dec, memory.kv):
            x, (k, v) = block.prefill(x, kv, memory.mask)
            ks.append(k)
            vs.append(v)
        last = self.dec_ln(x[torch.arange(B, device=x.device), lengths - 1])
        cap = min(self.cfg.max_len, max(16, 2 * T))
        k = torch.stack(ks)
        k_cache = k.new_zeros(*k.shape[:3], cap, k.shape[-1])
        v_cache = torch.zeros_like(k_cache)
        k_cache[:, :, :, :T] = k
        v_cache[:, :, :, :T] = torch.stack(vs)
        return last, DecodeState(k_cache, v_cache, lengths.clone(), int(lengths.max()), memory)

    def step_decoder(self, state, token):
        self._check_target(state.longest + 1)
        k, v = state.k, state.v
        if state.longest >= k.shape[3]:  # grow the cache by doubling (at most max_len)
            grow = min(self.cfg.max_len, 2 * k.shape[3]) - k.shape[3]
            k = nn.functional.pad(k, (0, 0, 0, grow))
            v = nn.functional.pad(v, (0, 0, 0, grow))
        pos = state.pos
        length = state.longest + 1
        slots = torch.arange(length, device=pos.device)
        self_mask = (slots[None, :] <= pos[:, None])[:, None, None, :]
        x = self._embed(token[:, None], pos[:, None])
        for i, (block, kv) in enumerate(zip(self.dec, state.memory.kv)):
            x = block.decode_one(x, kv, state.memory.mask, k[i], v[i], pos, self_mask)
        return self.dec_ln(x[:, 0]), DecodeState(k, v, pos + 1, length, state.memory)

    def select_state(self, state: DecodeState, index: torch.Tensor) -> DecodeState:
        index = index.to(self.device)
        m = state.memory
        memory = Memory([(k.index_select(0, index), v.index_select(0, index)) for k, v in m.kv],
                        m.mask.index_select(0, index))
        return DecodeState(state.k.index_select(1, index), state.v.index_select(1, index),
                           state.pos.index_select(0, index), state.longest, memory)

    def attention_weights(self, tokens, memory):
        for block in self.dec:
            block.cross.record = True
        try:
            self.decode(tokens, memory)
            maps = torch.stack([block.cross.weights for block in self.dec])  # (L, B, nh, T, S)
        finally:
            for block in self.dec:
                block.cross.record, block.cross.weights = False, None
        return maps.transpose(1, 2)  # (L, nh, B, T, S)


register_neural_family(TransformerED, "transformer encoder-decoder (GPT blocks + cross-attention)")

__all__ = ["DecoderBlock", "SinusoidalPositions", "TransformerED", "TransformerEDConfig"]
