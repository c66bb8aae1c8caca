"""GPT: a decoder-only ("causal") transformer, GPT-2's or Llama's shape, with a key/value cache.

    tokens -> token embedding (+ learned position embedding) -> dropout
           -> n_layer x [x + attn(norm(x)); x + MLP(norm(x))]   (pre-norm blocks)
           -> norm -> linear head (tied to the token embedding or not) -> logits

One implementation, configured: GPT-2 is LayerNorm, the GELU MLP, learned positions, biases and
multi-head attention; Llama (SmolLM2, ...) is RMSNorm (``norm="rmsnorm"``), the SwiGLU MLP
(``mlp="swiglu"``, ``n_inner``), rotary positions with their own base (``rope_theta``),
grouped-query attention (``n_kv_head``) and no biases.

**Inputs longer than ``block_size``.** The model never sees more than ``block_size`` (= L)
tokens at once. Longer inputs are scored in windows that slide by ``stride = L // 2``: position
t < L sees tokens 0..t, and position t >= L sees the window that starts at
``s(t) = stride * ((t - L) // stride + 1)``, re-encoded from position 0, so every prediction
uses between L - stride + 1 and L tokens of context. ``start`` / ``step`` follow the same rule:
when a row's cache is full it drops the first ``stride`` tokens and re-encodes the rest (one
prefill every ``stride`` steps), so incremental decoding equals the full pass at any length.

**The cache** (:class:`KVCache`) is allocated once per ``start`` for L positions and written in
place by ``step``: a state is consumed by the step that takes it (``select_state`` copies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from chainrule.errors import ConfigError
from chainrule.models.layers import RotaryEmbedding, make_norm
from chainrule.models.neural import (
    GPTConfig,
    NeuralLM,
    import_transformers,
    load_into_transformers,
    register_neural_family,
)
from chainrule.models.transformer_block import Block
from chainrule.models.windows import window_spans


@dataclass
class KVCache:
    """Incremental-decoding state of :class:`GPT`.

    Attributes:
        k, v: (n_layer, B, nkv, cap, hs) keys and values of each row's current window; the
            capacity ``cap`` grows by doubling up to block_size (``GPT.reserve``).
        pos: (B,) number of tokens in each row's window (= where the next one is written).
        tokens: (B, cap) the window's token ids, re-encoded when the window slides.
        longest: max(pos) known on the host (an upper bound), so a step needs no device sync.
    """

    k: torch.Tensor
    v: torch.Tensor
    pos: torch.Tensor
    tokens: torch.Tensor
    longest: int


_MIN_CACHE = 64  # cache slots allocated at least, per row and layer


class GPT(NeuralLM):
    """GPT-2-style language model (nanoGPT's ``GPT``), implementing the chainrule interface."""

    family = "gpt"
    config_class = GPTConfig

    def __init__(self, cfg: GPTConfig):
        super().__init__(cfg)
        self.max_context = cfg.block_size
        self.stride = max(1, cfg.block_size // 2)
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(cfg.vocab_size, cfg.n_embd),
            "drop": nn.Dropout(cfg.dropout),
            "h": nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer)),
            "ln_f": make_norm(cfg.norm, cfg.n_embd, cfg.layer_norm_eps, cfg.bias),
        })
        if cfg.positions == "learned":
            self.transformer["wpe"] = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.rotary = (RotaryEmbedding(cfg.n_embd // cfg.n_head, cfg.block_size, cfg.rope_theta)
                       if cfg.positions == "rotary" else None)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.tied_parameters = ()
        if cfg.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight
            self.tied_parameters = (("lm_head.weight", "transformer.wte.weight"),)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer)."""
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * self.cfg.n_layer))

    # -- full pass ---------------------------------------------------------------------------
    def _embed(self, idx: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Token (+ learned position) embeddings: idx (B, T), pos (T,) or (B, 1) -> (B, T, C)."""
        x = self.transformer.wte(idx)
        if self.rotary is None:
            x = x + self.transformer.wpe(pos)
        return self.transformer.drop(x)

    def _check_length(self, T: int) -> None:
        if T > self.cfg.block_size:
            raise ConfigError(
                f"a sequence of {T} tokens is longer than block_size {self.cfg.block_size}; "
                "train on windows of at most block_size tokens (logprobs slides windows itself)."
            )

    def hidden(self, idx: torch.Tensor, state=None, attn_mask: torch.Tensor | None = None,
               positions: torch.Tensor | None = None):
        """(B, T) with T <= block_size -> ((B, T, C) final-norm features, None).

        ``attn_mask`` (bool (B, 1, T, T), True = may attend) replaces the causal mask, e.g.
        :func:`chainrule.models.layers.document_mask` for packed examples; ``positions``
        (B, T) restarts positions per packed example (default 0..T-1).
        """
        T = idx.shape[1]
        self._check_length(T)
        pos = torch.arange(T, device=idx.device) if positions is None else positions
        x = self._embed(idx, pos)
        rope = None
        if self.rotary is not None:
            rope = self.rotary.tables(T) if positions is None else self.rotary.at_positions(pos)
        for block in self.transformer.h:
            x = block(x, rope, attn_mask)
        return self.transformer.ln_f(x), None

    def forward(self, idx: torch.Tensor, state=None, attn_mask: torch.Tensor | None = None,
                positions: torch.Tensor | None = None):
        """Logits (B, T, V); ``attn_mask`` / ``positions`` as in :meth:`hidden`."""
        h, _ = self.hidden(idx, state, attn_mask, positions)
        return self.head(h), None

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.lm_head(h)

    def scoring_hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """Features for any length: windows sliding by ``stride`` past ``block_size``."""
        B, T = tokens.shape
        L = self.cfg.block_size
        spans = window_spans(T, L, L - self.stride)
        first = self.hidden(tokens[:, : spans[0][1]])[0]
        if len(spans) == 1:
            return first
        # later windows re-encode from their own position 0; right padding is harmless (causal)
        padded = F.pad(tokens, (0, spans[-1][0] + L - T), value=self.eos_id)
        windows = torch.stack([padded[:, b : b + L] for b, _, _ in spans[1:]], 1)  # (B, K, L)
        per_call = max(1, 65536 // L)  # bound memory: ~64k positions per forward
        feats = torch.cat([self.hidden(w)[0] for w in windows.flatten(0, 1).split(per_call)])
        feats = feats.view(B, len(spans) - 1, L, -1)
        rest = [feats[:, k, f - b : e - b] for k, (b, e, f) in enumerate(spans[1:])]
        return torch.cat([first, *rest], dim=1)

    # -- incremental decoding ----------------------------------------------------------------
    def _prefill(self, idx: torch.Tensor, lengths: torch.Tensor):
        """Run right-padded windows idx (B, W <= L) from position 0.

        Returns the features after each row's last real token (B, C) and the keys and values
        (n_layer, B, nh, W, hs) of every position.
        """
        T = idx.shape[1]
        x = self._embed(idx, torch.arange(T, device=idx.device))
        rope = self.rotary.tables(T) if self.rotary is not None else None
        ks, vs = [], []
        for block in self.transformer.h:
            x, (k, v) = block.prefill(x, rope)
            ks.append(k)
            vs.append(v)
        last = x[torch.arange(x.shape[0], device=x.device), lengths - 1]  # (B, C)
        return self.transformer.ln_f(last), torch.stack(ks), torch.stack(vs)

    def _window_start(self, t: torch.Tensor) -> torch.Tensor:
        """Start of the window that predicts after absolute position t (see module docstring)."""
        L, s = self.cfg.block_size, self.stride
        return torch.where(t < L, torch.zeros_like(t), s * (torch.div(t - L, s,
                           rounding_mode="floor") + 1))

    def start(self, prompt: torch.Tensor, lengths: torch.Tensor | None = None, source=None):
        self._source(source, prompt.shape[0])
        with self.inference():
            prompt = self._to_device(prompt)
            B, T = prompt.shape
            L = self.cfg.block_size
            if lengths is None:
                lengths = torch.full((B,), T, dtype=torch.long, device=prompt.device)
            lengths = lengths.to(prompt.device, torch.long)
            if T > L:  # keep each row's current window, right-padded to L
                starts = self._window_start(lengths - 1)
                cols = (starts[:, None] + torch.arange(L, device=prompt.device)).clamp(max=T - 1)
                prompt, lengths = prompt.gather(1, cols), lengths - starts
            h, k, v = self._prefill(prompt, lengths)
            W = prompt.shape[1]
            nl, _, nkv, _, hs = k.shape
            cap = min(L, max(_MIN_CACHE, 2 * W))  # grows by doubling up to L (see reserve)
            state = KVCache(
                k=k.new_zeros(nl, B, nkv, cap, hs),
                v=v.new_zeros(nl, B, nkv, cap, hs),
                pos=lengths.clone(),
                tokens=torch.full((B, cap), self.eos_id, dtype=torch.long, device=prompt.device),
                longest=int(lengths.max()),
            )
            state.k[:, :, :, :W] = k
            state.v[:, :, :, :W] = v
            state.tokens[:, :W] = prompt
            return self._last_logprobs(h), state

    def reserve(self, state: KVCache, need: int) -> KVCache:
        """A state whose cache holds at least ``need`` slots (doubling, at most block_size).

        The cache starts small, so a long context (a pretrained model's 8,192) costs memory only
        when it is used.
        """
        cap = state.k.shape[3]
        if need <= cap:
            return state
        new = min(self.cfg.block_size, max(need, 2 * cap))
        grow = new - cap
        k = torch.nn.functional.pad(state.k, (0, 0, 0, grow))
        v = torch.nn.functional.pad(state.v, (0, 0, 0, grow))
        tokens = torch.nn.functional.pad(state.tokens, (0, grow), value=self.eos_id)
        return KVCache(k, v, state.pos, tokens, state.longest)

    def _slide(self, state: KVCache) -> None:
        """Rows whose window is full drop their first ``stride`` tokens (re-encoded in place)."""
        L, s = self.cfg.block_size, self.stride
        rows = (state.pos >= L).nonzero().squeeze(1)
        if rows.numel() and L - s == 0:  # block_size 1: nothing to keep
            state.pos[rows] = 0
        elif rows.numel():
            keep = state.tokens[rows, s:]  # (R, L - s)
            _, k, v = self._prefill(keep, torch.full_like(rows, L - s))
            state.k[:, rows, :, : L - s] = k
            state.v[:, rows, :, : L - s] = v
            state.tokens[rows, : L - s] = keep
            state.pos[rows] = L - s
        state.longest = int(state.pos.max())

    def decode_step(self, k: torch.Tensor, v: torch.Tensor, tokens: torch.Tensor,
                    token: torch.Tensor, pos: torch.Tensor, length: int) -> torch.Tensor:
        """The one incremental step: token, pos (B,) -> float32 log-probabilities (B, V).

        Writes each layer's new key/value at ``pos`` of ``k``/``v`` (n_layer, B, nh, L, hs) and
        the token into ``tokens`` (B, L); attends to slots ``< length`` masked to ``<= pos``.
        Shapes depend only on ``length``, so a CUDA graph captured at ``length = L`` replays
        it for any positions (see :mod:`chainrule.models.gpt_graphs`). Call in eval mode.
        """
        x = self._embed(token[:, None], pos[:, None])  # (B, 1, C)
        rope = self.rotary.at(pos) if self.rotary is not None else None
        slots = torch.arange(length, device=pos.device)
        mask = (slots[None, :] <= pos[:, None])[:, None, None, :]  # (B, 1, 1, length)
        for i, block in enumerate(self.transformer.h):
            x = block.decode(x, rope, k[i], v[i], pos, mask)
        tokens[torch.arange(token.shape[0], device=token.device), pos] = token
        return self._last_logprobs(self.transformer.ln_f(x[:, 0]))

    def step(self, state: KVCache, token: torch.Tensor):
        with self.inference():
            token = self._to_device(token)
            if state.longest >= self.cfg.block_size:
                self._slide(state)
            length = state.longest + 1  # attend to this many slots (host-known bound)
            state = self.reserve(state, length)
            lp = self.decode_step(state.k, state.v, state.tokens, token, state.pos, length)
            return lp, KVCache(state.k, state.v, state.pos + 1, state.tokens, length)

    def fast_decoder(self):
        """On CUDA, a decoder that replays :meth:`decode_step` as a CUDA graph; else None."""
        if self.device.type != "cuda":
            return None
        from chainrule.models.gpt_graphs import graph_decoder

        return graph_decoder(self)

    def select_state(self, state: KVCache, index: torch.Tensor) -> KVCache:
        index = index.to(state.pos.device)
        return KVCache(
            state.k.index_select(1, index),
            state.v.index_select(1, index),
            state.pos.index_select(0, index),
            state.tokens.index_select(0, index),
            state.longest,
        )


# -- transformers interoperability -------------------------------------------------------------
# GPT-2 stores these four matrices as Conv1D weights of shape (in, out): transpose them.
_HF_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                  "mlp.c_proj.weight")


def _check_hf_compatible(cfg: GPTConfig) -> None:
    problems = []
    if cfg.positions != "learned":
        problems.append("GPT-2 has learned positions; this model uses rotary positions.")
    if not cfg.bias:
        problems.append("GPT-2 has biases; this model was built with bias=False.")
    if problems:
        raise ConfigError(problems)


def gpt_to_hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Weights of ``model`` named and shaped for ``transformers.GPT2LMHeadModel``.

    Only for learned positions with biases (GPT-2's architecture); GELU is already GPT-2's
    ``gelu_new``. Load with ``hf_model.load_state_dict(sd, strict=False)`` (transformers keeps
    a few non-weight buffers) or use :func:`to_hf_gpt2`.
    """
    _check_hf_compatible(model.cfg)
    out = {}
    for name, p in model.state_dict().items():
        p = p.detach()
        out[name] = p.t().contiguous() if name.endswith(_HF_TRANSPOSED) else p.clone()
    out.setdefault("lm_head.weight", out["transformer.wte.weight"])
    return out


def gpt_from_hf_state_dict(model: GPT, state_dict: dict[str, torch.Tensor]) -> GPT:
    """Copy ``GPT2LMHeadModel`` weights (e.g. a GPT-2 checkpoint) into ``model`` in place."""
    _check_hf_compatible(model.cfg)
    ours = model.state_dict()
    with torch.no_grad():
        for name, p in ours.items():
            src = state_dict[name]
            p.copy_(src.t() if name.endswith(_HF_TRANSPOSED) else src)
    return model


def hf_gpt2_config_kwargs(model: GPT) -> dict:
    """``transformers.GPT2Config`` arguments describing the same architecture."""
    cfg = model.cfg
    return {
        "vocab_size": cfg.vocab_size, "n_positions": cfg.block_size, "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer, "n_head": cfg.n_head, "activation_function": "gelu_new",
        "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
        "layer_norm_epsilon": cfg.layer_norm_eps, "bos_token_id": cfg.bos_id,
        "eos_token_id": cfg.eos_id, "tie_word_embeddings": cfg.tie_weights,
    }


def to_hf_gpt2(model: GPT):
    """A ``transformers.GPT2LMHeadModel`` with the same weights (needs the ``bench`` extra)."""
    GPT2Config, GPT2LMHeadModel = import_transformers("GPT2Config", "GPT2LMHeadModel")
    hf = GPT2LMHeadModel(GPT2Config(**hf_gpt2_config_kwargs(model)))
    hf = load_into_transformers(hf, gpt_to_hf_state_dict(model),
                                (".attn.bias", ".attn.masked_bias"))
    return hf.to(model.device)


register_neural_family(GPT, "decoder-only transformer (GPT-2 layout, pre-LN, KV cache)")

__all__ = [
    "GPT",
    "Block",
    "KVCache",
    "gpt_from_hf_state_dict",
    "gpt_to_hf_state_dict",
    "hf_gpt2_config_kwargs",
    "to_hf_gpt2",
]
