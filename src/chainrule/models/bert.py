"""BERT: an encoder-only ("bidirectional") transformer trained to fill in masked tokens.

    tokens -> token embedding + learned position embedding -> norm -> dropout
           -> n_layer x [x = norm(x + attn(x)); x = norm(x + MLP(x))]   (post-norm blocks,
              the same ``Block`` as GPT with ``attn.causal = False`` and a key-padding mask)
           -> MLM head: dense -> GELU -> norm -> linear tied to the token embedding (+ bias)
           -> logits over the vocabulary at every position

It is a *masked scorer* (``masked = True``), not a generator: it cannot go left to right, so it
scores a sentence by **pseudo-log-likelihood** (Salazar et al. 2020): mask each token in turn
and add up log P(w_t | every other token). ``scoring="pll-word-l2r"`` (Kauf & Ivanova 2023) also
masks the later subword tokens of the word that w_t belongs to, so a word split in pieces
cannot be predicted from its own remaining pieces. A sentence of n tokens costs one batch of n
masked copies (rows chunked to bound memory).

**Word boundaries** (for ``pll-word-l2r``) come from the tokenizer: :func:`word_flags` marks
each id as starting and/or ending a word (a word tokenizer: every token is a word; byte-level
BPE: a token that begins with a space starts one; classic BPE: a token that carries the
end-of-word marker ends one; characters: whitespace separates words; specials are words of
their own). :meth:`BERT.set_word_boundaries` installs them; ``load_model`` does it from the
directory's ``tokenizer.json``. ``token_logprobs(..., word_starts=...)`` overrides them per call.

**Whole-word masking** (``whole_word_masking=True``, a training option): the masked-LM
objective chooses words, with all their tokens, from the same word boundaries
(:meth:`BERT.word_ids`); the training loop installs them through :meth:`BERT.attach_tokenizer`.

**[MASK].** ``mask_id`` (default 0) is the id of the mask token. chainrule's own tokenizers put
``<pad>`` at id 0, a token that never occurs in text, so it serves as ``[MASK]`` with any of
them; a tokenizer with a ``[MASK]`` special passes its id (``mask_id=N``).

**Inputs longer than ``block_size``** are scored in windows of ``block_size`` tokens that
slide by half a window; each token is scored in the window where it sits most centrally.

Weights map one to one onto ``transformers``' ``BertForMaskedLM`` (:func:`to_hf_bert`), with
``hidden_act="gelu_new"`` (the tanh GELU of the shared MLP) and one all-zero token type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from chainrule.errors import ConfigError
from chainrule.models.base import Source
from chainrule.models.configs import NeuralConfig
from chainrule.models.gpt import Block
from chainrule.models.neural import (
    NeuralScorer,
    import_transformers,
    load_into_transformers,
    register_neural_family,
)

SCORINGS = ("pll", "pll-word-l2r")
# positions encoded per forward pass when scoring (rows x length), to bound memory
_POSITIONS_PER_CALL = 1 << 14
_STARTS, _ENDS = 1, 2  # bits of a word-flags entry


@dataclass(frozen=True)
class BertConfig(NeuralConfig):
    """An encoder-only transformer in BERT's layout (small defaults that train on a CPU)."""

    block_size: int = 128  # longest input (learned positions); longer ones are scored in windows
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block (n_embd must be a multiple)
    n_embd: int = 128  # width of the residual stream
    n_inner: int = 0  # width of the MLP's hidden layer (0: 4 * n_embd)
    dropout: float = 0.1  # dropout on embeddings, attention weights and residual branches
    bias: bool = True  # biases in linear layers and layer norms (BERT has them)
    layer_norm_eps: float = 1e-12  # epsilon of every LayerNorm (BERT's)
    mask_id: int = 0  # id of [MASK] (0 is <pad> in chainrule's tokenizers, never seen in text)
    scoring: str = "pll"  # "pll" (Salazar et al. 2020) or "pll-word-l2r" (Kauf & Ivanova 2023)
    whole_word_masking: bool = False  # masked-LM training chooses whole words, not tokens
    # what the shared Block reads and BERT does not vary
    norm: ClassVar[str] = "layernorm"
    mlp: ClassVar[str] = "gelu"
    n_kv_head: ClassVar[int] = 0
    post_norm: ClassVar[bool] = True

    def problems(self) -> list[str]:
        out = super().problems() + self._transformer_problems()
        if not 0 <= self.mask_id < max(self.vocab_size, 1):
            out.append(f"mask_id {self.mask_id} is outside the vocabulary of {self.vocab_size}.")
        if self.scoring not in SCORINGS:
            out.append(f"scoring must be one of {', '.join(SCORINGS)}, got {self.scoring!r}.")
        return out


def word_flags(tokenizer) -> list[int]:
    """Per id: bit 1 = the token starts a word, bit 2 = it ends one (see the module docstring).

    Example: a byte-level BPE vocabulary ``["<s>", "the", " cat", "s"]`` gives
    ``[3, 0, 1, 0]`` (the special is a word of its own; " cat" starts a word).
    """
    kind = getattr(tokenizer, "kind", "")
    specials = set(tokenizer.special_tokens.values())
    eow = getattr(tokenizer, "end_of_word", None) if kind == "bpe" else None
    flags = []
    for i in range(tokenizer.vocab_size):
        if i in specials or kind == "word":
            flags.append(_STARTS | _ENDS)
        elif eow is not None:
            flags.append(_ENDS if tokenizer.id_to_token(i).endswith(eow) else 0)
        else:
            text = tokenizer.decode([i])
            if text and not text.strip():  # whitespace: a separator, a word of its own
                flags.append(_STARTS | _ENDS)
            else:
                flags.append(_STARTS if text[:1].isspace() else 0)
    return flags


class BERT(NeuralScorer):
    """BERT for masked language modelling, implementing chainrule's masked ``Scorer``."""

    family = "bert"
    config_class = BertConfig
    masked = True
    #: the values ``scoring`` may take (``eval ... --scoring`` chooses among them)
    scorings = SCORINGS

    def __init__(self, cfg: BertConfig):
        super().__init__(cfg)
        self.mask_id, self.scoring = cfg.mask_id, cfg.scoring
        self.whole_word_masking = cfg.whole_word_masking
        C = cfg.n_embd
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(cfg.vocab_size, C),
            "wpe": nn.Embedding(cfg.block_size, C),
            "ln_e": nn.LayerNorm(C, eps=cfg.layer_norm_eps, bias=cfg.bias),
            "drop": nn.Dropout(cfg.dropout),
            "h": nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer)),
        })
        for block in self.transformer.h:
            block.attn.causal = False  # every position sees every real position
        self.mlm = nn.ModuleDict({  # BERT's "transform" and tied decoder
            "dense": nn.Linear(C, C, bias=cfg.bias),
            "act": nn.GELU(approximate="tanh"),
            "ln": nn.LayerNorm(C, eps=cfg.layer_norm_eps, bias=cfg.bias),
            "decoder": nn.Linear(C, cfg.vocab_size, bias=True),
        })
        self.mlm.decoder.weight = self.transformer.wte.weight
        self.tied_parameters = (("mlm.decoder.weight", "transformer.wte.weight"),)
        self._flags: torch.Tensor | None = None  # word flags per id (pll-word-l2r)
        self._init_weights()

    def _init_weights(self) -> None:
        """BERT's initialisation: N(0, 0.02) weights, zero biases, unit norms."""
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "scoring": self.scoring}

    # -- the encoder -------------------------------------------------------------------------
    def hidden(self, idx: torch.Tensor, state: Any = None,
               lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        """(B, T) with T <= block_size -> ((B, T, C) features, None); keys at or past
        ``lengths[b]`` are never attended to."""
        T = idx.shape[1]
        if T > self.cfg.block_size:
            raise ConfigError(f"a sequence of {T} tokens is longer than block_size "
                              f"{self.cfg.block_size}; train on windows of at most block_size "
                              "tokens (scoring slides windows itself).")
        pos = torch.arange(T, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        x = self.transformer.drop(self.transformer.ln_e(x))
        mask = None
        if lengths is not None:
            real = pos[None, :] < lengths.to(idx.device)[:, None]  # (B, T)
            mask = real[:, None, None, :]  # (B, 1, 1, T): query t may attend to key s if real
        for block in self.transformer.h:
            x = block(x, None, mask)
        return x, None

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """The MLM head: features (..., C) -> logits (..., V)."""
        return self.mlm.decoder(self.mlm.ln(self.mlm.act(self.mlm.dense(h))))

    def forward(self, idx: torch.Tensor, state: Any = None,
                lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        """Logits at every position (B, T, V) -- the masked-LM training pass."""
        h, _ = self.hidden(idx, None, lengths)
        return self.head(h), None

    # -- word boundaries ---------------------------------------------------------------------
    def set_word_boundaries(self, tokenizer) -> BERT:
        """Learn which ids start/end words from ``tokenizer`` (for ``pll-word-l2r``)."""
        flags = word_flags(tokenizer)
        if len(flags) != self.vocab_size:
            raise ConfigError(f"the tokenizer has {len(flags)} tokens but the model "
                              f"{self.vocab_size}; pass the tokenizer the model was trained with.")
        self._flags = torch.tensor(flags, dtype=torch.long)
        return self

    def attach_tokenizer(self, tokenizer) -> None:
        """Called by the training loop: word boundaries for whole-word masking."""
        if self.whole_word_masking:
            self.set_word_boundaries(tokenizer)

    def word_ids(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T) the index of the word each token belongs to (from the word flags)."""
        if self._flags is None:
            raise ConfigError("pll-word-l2r scoring and whole-word masking need word "
                              "boundaries: load the model from its directory (with "
                              "tokenizer.json), call set_word_boundaries(tokenizer), or pass "
                              "word_starts.")
        f = self._flags.to(tokens.device)[tokens]  # (B, T)
        starts = (f & _STARTS).bool()
        starts[:, 1:] |= (f[:, :-1] & _ENDS).bool()
        starts[:, 0] = True
        return starts.long().cumsum(1)

    # -- pseudo-log-likelihood ---------------------------------------------------------------
    def token_logprobs(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None,
                       source: Source | torch.Tensor | None = None, *,
                       word_starts: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) -> (B, T-1): ``out[b, t] = log P(tokens[b, t+1] | the other real tokens)``.

        Args:
            tokens: right-padded ids (B, T); position 0 (``bos``) is context only.
            lengths: real lengths (B,); padding is never read (default: all T).
            source: refused (BERT is not conditional).
            word_starts: (B, T) bool, True where a token starts a word (``pll-word-l2r``
                only; default: from :meth:`set_word_boundaries`).
        """
        self._source(source, tokens.shape[0])
        tokens = self._to_device(tokens)
        B, T = tokens.shape
        if T <= 1:
            return torch.zeros(B, 0, device=tokens.device)
        lengths = (torch.full((B,), T, dtype=torch.long) if lengths is None
                   else lengths.to(torch.long)).to(tokens.device).clamp(max=T)
        words = None
        if self.scoring == "pll-word-l2r":
            words = (word_starts.to(tokens.device).long().cumsum(1) if word_starts is not None
                     else self.word_ids(tokens))
        elif self.scoring not in SCORINGS:
            raise ConfigError(f"scoring must be one of {', '.join(SCORINGS)}, "
                              f"got {self.scoring!r}.")
        pos = torch.arange(T, device=tokens.device)
        score = (pos[None, :] >= 1) & (pos[None, :] < lengths[:, None])
        with self.inference():
            L = self.cfg.block_size
            if T <= L:
                out = self._pll(tokens, lengths, score, words)
            else:  # each row on its own, in windows of its own length
                out = torch.zeros(B, T, device=tokens.device)
                for b in range(B):
                    n = int(lengths[b])
                    w = None if words is None else words[b : b + 1, :n]
                    if n <= L:
                        out[b, :n] = self._pll(tokens[b : b + 1, :n], lengths[b : b + 1],
                                               score[b : b + 1, :n], w)[0]
                    else:
                        out[b, :n] = self._pll_windows(tokens[b : b + 1, :n], w)[0]
        return out[:, 1:]

    def _pll(self, tokens: torch.Tensor, lengths: torch.Tensor, score: torch.Tensor,
             words: torch.Tensor | None) -> torch.Tensor:
        """Log P of each token where ``score`` (B, T) is True, that token masked (and, with
        ``words``, the later tokens of its word); 0 elsewhere. One masked copy per scored
        token, ``_POSITIONS_PER_CALL // T`` copies per forward pass."""
        B, T = tokens.shape
        out = torch.zeros(B, T, device=tokens.device)
        rows, cols = score.nonzero(as_tuple=True)  # (N,) one masked copy each
        pos = torch.arange(T, device=tokens.device)
        per_call = max(1, _POSITIONS_PER_CALL // T)
        for a in range(0, rows.numel(), per_call):
            r, c = rows[a : a + per_call], cols[a : a + per_call]
            hide = pos[None, :] == c[:, None]  # (n, T)
            if words is not None:  # also the later pieces of the same word
                w = words[r]
                hide |= (w == w.gather(1, c[:, None])) & (pos[None, :] > c[:, None])
            x = tokens[r].masked_fill(hide, self.mask_id)
            h, _ = self.hidden(x, None, lengths[r])
            logits = self.head(h[torch.arange(r.numel(), device=h.device), c]).float()  # (n, V)
            gold = logits.gather(-1, tokens[r, c][:, None]).squeeze(-1)
            out[r, c] = gold - torch.logsumexp(logits, dim=-1)
        return out

    def _pll_windows(self, row: torch.Tensor, words: torch.Tensor | None) -> torch.Tensor:
        """One row (1, n) with n > block_size: each token scored in the window (of block_size
        tokens, starts every block_size // 2) where it is most central."""
        n, L = row.shape[1], self.cfg.block_size
        stride = max(1, L // 2)
        starts = sorted({min(k * stride, n - L) for k in range(math.ceil((n - L) / stride) + 1)})
        centre = torch.tensor([s + L / 2 for s in starts])
        best = (torch.arange(n)[:, None] - centre[None, :]).abs().argmin(1)  # (n,) window per token
        out = torch.zeros(1, n, device=row.device)
        for k, s in enumerate(starts):
            mine = (best == k).to(row.device)[s : s + L]
            if s == 0:
                mine[0] = False  # position 0 of the row is context only
            if not bool(mine.any()):
                continue
            w = None if words is None else words[:, s : s + L]
            lens = torch.full((1,), L, device=row.device)
            out[:, s : s + L] += self._pll(row[:, s : s + L], lens, mine[None, :], w)
        return out

    # -- persistence -------------------------------------------------------------------------
    @classmethod
    def from_directory(cls, directory: Path, config: dict[str, Any]) -> BERT:
        model = super().from_directory(directory, config)
        tok = Path(directory) / "tokenizer.json"
        if tok.exists():
            from chainrule.tokenizers import load_tokenizer

            model.set_word_boundaries(load_tokenizer(tok))
        return model


# -- transformers interoperability -------------------------------------------------------------
def bert_to_hf_state_dict(model: BERT) -> dict[str, torch.Tensor]:
    """Weights of ``model`` named and shaped for ``transformers.BertForMaskedLM``.

    q, k and v are split out of the fused ``c_attn``; the one token-type embedding is zero.
    """
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    C = model.cfg.n_embd
    out = {
        "bert.embeddings.word_embeddings.weight": sd["transformer.wte.weight"],
        "bert.embeddings.position_embeddings.weight": sd["transformer.wpe.weight"],
        "bert.embeddings.token_type_embeddings.weight": torch.zeros(1, C),
        "cls.predictions.bias": sd["mlm.decoder.bias"],
        "cls.predictions.decoder.weight": sd["transformer.wte.weight"],
        "cls.predictions.decoder.bias": sd["mlm.decoder.bias"],
    }
    pairs = [("bert.embeddings.LayerNorm", "transformer.ln_e"),
             ("cls.predictions.transform.dense", "mlm.dense"),
             ("cls.predictions.transform.LayerNorm", "mlm.ln")]
    for i in range(model.cfg.n_layer):
        ours, theirs = f"transformer.h.{i}", f"bert.encoder.layer.{i}"
        pairs += [(f"{theirs}.attention.output.dense", f"{ours}.attn.c_proj"),
                  (f"{theirs}.attention.output.LayerNorm", f"{ours}.ln_1"),
                  (f"{theirs}.intermediate.dense", f"{ours}.mlp.c_fc"),
                  (f"{theirs}.output.dense", f"{ours}.mlp.c_proj"),
                  (f"{theirs}.output.LayerNorm", f"{ours}.ln_2")]
        for part in ("weight", "bias"):
            q, k, v = sd[f"{ours}.attn.c_attn.{part}"].chunk(3, dim=0)
            for name, t in zip(("query", "key", "value"), (q, k, v)):
                out[f"{theirs}.attention.self.{name}.{part}"] = t.contiguous()
    for theirs, ours in pairs:
        for part in ("weight", "bias"):
            out[f"{theirs}.{part}"] = sd[f"{ours}.{part}"]
    return out


def hf_bert_config_kwargs(model: BERT) -> dict:
    """``transformers.BertConfig`` arguments describing the same architecture."""
    cfg = model.cfg
    return {
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.n_embd,
        "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
        "intermediate_size": cfg.n_inner or 4 * cfg.n_embd, "hidden_act": "gelu_new",
        "max_position_embeddings": cfg.block_size, "type_vocab_size": 1,
        "layer_norm_eps": cfg.layer_norm_eps, "hidden_dropout_prob": cfg.dropout,
        "attention_probs_dropout_prob": cfg.dropout, "pad_token_id": cfg.mask_id,
    }


def to_hf_bert(model: BERT):
    """A ``transformers.BertForMaskedLM`` with the same weights (needs the ``bench`` extra)."""
    if not model.cfg.bias:
        raise ConfigError("BertForMaskedLM has biases; this model was built with bias=False.")
    HFBertConfig, BertForMaskedLM = import_transformers("BertConfig", "BertForMaskedLM")
    hf = BertForMaskedLM(HFBertConfig(**hf_bert_config_kwargs(model)))
    hf = load_into_transformers(hf, bert_to_hf_state_dict(model),
                                ("position_ids", "token_type_ids"))
    return hf.to(model.device)


register_neural_family(BERT, "encoder-only transformer trained by masked-LM (scored by PLL)")

__all__ = [
    "BERT",
    "SCORINGS",
    "BertConfig",
    "bert_to_hf_state_dict",
    "hf_bert_config_kwargs",
    "to_hf_bert",
    "word_flags",
]
