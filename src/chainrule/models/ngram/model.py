"""The n-gram language model: a backoff model over token ids behind the shared interface.

``log10 P(w | h) = prob(h w)`` if the n-gram ``h w`` is stored, else
``backoff(h) + log10 P(w | h[1:])`` -- the rule KenLM's ``query`` applies to an ARPA file.
Scoring (:meth:`NgramModel.token_logprobs`) looks every order up for a whole batch with one
``searchsorted`` per order, so it never builds the (B, T, V) tensor; :meth:`logprobs` and
decoding build whole next-token distributions from the entries that share a context.

``<s>`` is stored with log10 probability 0 like KenLM does (so it can be "scored" for free),
but every distribution the model returns gives it probability 0: nothing predicts ``<s>``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chainrule.errors import ConfigError, ModelFormatError
from chainrule.fileio import read_safetensors, write_safetensors
from chainrule.models.base import LanguageModel
from chainrule.models.ngram.counting import DEFAULT_CHUNK_TOKENS, ChunkedCounter, NgramCounts
from chainrule.models.ngram.estimate import SMOOTHINGS, estimate
from chainrule.models.ngram.tables import NgramTables, lookup

LN10 = math.log(10.0)


class NgramModel(LanguageModel):
    """An n-gram model of any order with MLE, add-k, Kneser-Ney or modified Kneser-Ney.

    Args:
        order: n (1 = unigram). Hyperparameters live here; :meth:`fit` learns ``tables_``.
        smoothing: ``mle``, ``addk``, ``kn`` or ``mkn`` (KenLM's interpolated modified KN).
        vocab_size: V, number of token ids.
        bos_id / eos_id: ids of ``<s>`` / ``</s>``.
        unk_id: id of ``<unk>`` (None if the tokenizer has none).
        pad_id: id of ``<pad>``, never predicted (None if the tokenizer has none).
        k: add-k constant (1 = Laplace).
        discounts: per-order discounts overriding the estimates (mkn: 3 each, kn: 1 each).
        prune: per-order count thresholds (see :func:`.estimate.estimate`).
        chunk_tokens: tokens counted per sorted chunk (bounds counting memory).
    """

    markov_window = True  # conditions on the last max_context tokens by definition

    family = "ngram"

    def __init__(
        self,
        order: int = 3,
        smoothing: str = "mkn",
        *,
        vocab_size: int,
        bos_id: int = 0,
        eos_id: int = 1,
        unk_id: int | None = None,
        pad_id: int | None = None,
        k: float = 1.0,
        discounts: Sequence[Sequence[float]] | None = None,
        prune: Sequence[int] | None = None,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    ):
        problems = []
        if not isinstance(order, int) or order < 1:
            problems.append(f"the n-gram order must be a whole number >= 1, got {order!r}.")
        if smoothing not in SMOOTHINGS:
            problems.append(f"unknown smoothing {smoothing!r}; choose one of {', '.join(SMOOTHINGS)}.")
        if vocab_size < 2:
            problems.append(f"the vocabulary needs at least <s> and </s>, got size {vocab_size}.")
        if smoothing == "addk" and not k > 0:
            problems.append(f"--k must be positive for add-k smoothing, got {k}.")
        if problems:
            raise ConfigError(problems)
        self.order, self.smoothing, self.k = order, smoothing, float(k)
        self.vocab_size, self.bos_id, self.eos_id, self.unk_id = vocab_size, bos_id, eos_id, unk_id
        self.pad_id = pad_id
        self.discounts = [list(d) for d in discounts] if discounts else None
        self.prune = list(prune) if prune else None
        self.chunk_tokens = chunk_tokens
        self.max_context = order - 1
        self.tables_: NgramTables | None = None
        self.discounts_: list[list[float]] = []

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, sequences: Iterable[Sequence[int] | np.ndarray]) -> NgramModel:
        """Estimate from framed sequences ``[bos, w1, ..., wn, eos]`` of ids."""
        counter = ChunkedCounter(self.order, self.bos_id, self.eos_id, self.chunk_tokens)
        for seq in sequences:
            ids = np.asarray(seq, dtype=np.int64)
            if ids.size < 2 or ids[0] != self.bos_id or ids[-1] != self.eos_id:
                raise ConfigError("every training sequence must be framed as <s> ... </s>.")
            counter.add(ids[1:-1])
        return self.fit_counts(counter.finish())

    def fit_counts(self, counts: NgramCounts) -> NgramModel:
        """Estimate from already counted windows (:class:`.counting.NgramCounts`)."""
        if counts.order != self.order:
            raise ConfigError(f"counts of order {counts.order} cannot fit an order-{self.order} model.")
        if counts.tokens == 0:
            raise ConfigError("the corpus is empty: there is nothing to estimate from.")
        tables, used = estimate(
            counts, self.vocab_size, self.bos_id, self.smoothing,
            k=self.k, discounts=self.discounts, prune=self.prune,
            never=() if self.pad_id is None else (self.pad_id,),
        )
        self.tables_, self.discounts_ = tables, used
        return self

    @classmethod
    def from_tables(
        cls, tables: NgramTables, *, bos_id: int, eos_id: int, unk_id: int | None = None,
        pad_id: int | None = None, smoothing: str = "mkn", **kwargs: Any,
    ) -> NgramModel:
        """Wrap existing tables (from an ARPA file, say) as a model."""
        tables.validate()
        model = cls(tables.order, "mkn", vocab_size=tables.vocab_size, bos_id=bos_id,
                    eos_id=eos_id, unk_id=unk_id, pad_id=pad_id, **kwargs)
        model.smoothing = smoothing  # "arpa" for imported files
        model.tables_ = tables
        return model

    @property
    def tables(self) -> NgramTables:
        if self.tables_ is None:
            raise ConfigError("this n-gram model has not been fitted; call fit() first.")
        return self.tables_

    # -- scoring -----------------------------------------------------------------------------
    def _check(self, tokens: torch.Tensor | np.ndarray) -> np.ndarray:
        x = tokens.detach().cpu().numpy() if isinstance(tokens, torch.Tensor) else np.asarray(tokens)
        x = x.astype(np.int64, copy=False)
        if x.size and (x.min() < 0 or x.max() >= self.vocab_size):
            raise ConfigError(
                f"token ids must lie in [0, {self.vocab_size}) for this model; got "
                f"{int(x.min())}..{int(x.max())}."
            )
        return x

    def _suffix_chain(self, x: np.ndarray) -> list[np.ndarray]:
        """``out[k-1][b, t]``: table-k index of ``x[b, t-k+1 .. t]`` or -1. x: (B, T)."""
        t = self.tables
        V = t.vocab_size
        chain = [x]
        for k in range(2, self.order + 1):
            prev = chain[-1][:, k - 1 :]
            res = np.full(x.shape, -1, dtype=np.int64)
            ok = prev >= 0
            q = prev[ok] * V + x[:, : x.shape[1] - k + 1][ok]
            sub = res[:, k - 1 :]
            sub[ok] = lookup(t.keys[k - 1], q)
            chain.append(res)
        return chain

    def token_log10probs(self, tokens: torch.Tensor | np.ndarray) -> np.ndarray:
        """log10 P(tokens[b, t+1] | tokens[b, :t+1]) as float64 numpy (B, T - 1), like KenLM."""
        x = self._check(tokens)
        if x.ndim != 2:
            raise ConfigError(f"tokens must have shape (B, T), got {tuple(x.shape)}.")
        t = self.tables
        chain = self._suffix_chain(x)
        target = x[:, 1:]
        out = t.prob[0].astype(np.float64)[target]
        matched = np.ones(target.shape, dtype=np.int64)
        for k in range(2, self.order + 1):
            if t.keys[k - 1].size == 0:  # no n-gram of this order (or higher) was seen
                break
            idx = chain[k - 1][:, 1:]
            hit = idx >= 0
            out = np.where(hit, t.prob[k - 1][np.maximum(idx, 0)], out)
            matched = np.where(hit, k, matched)
        for j in range(1, self.order):
            if t.keys[j - 1].size == 0:
                break
            ctx = chain[j - 1][:, :-1]
            use = (ctx >= 0) & (matched <= j)
            out = out + np.where(use, t.backoff[j - 1][np.maximum(ctx, 0)], 0.0)
        out[target == self.bos_id] = -np.inf
        return out

    def token_logprobs(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None,
                       source=None) -> torch.Tensor:
        """Natural-log probability of each next token (B, T) -> (B, T - 1), without (B, T, V)."""
        self._source(source, tokens.shape[0])
        return torch.from_numpy(self.token_log10probs(tokens) * LN10).float()

    def _distributions(self, ctx: np.ndarray) -> np.ndarray:
        """Next-token log10 distributions (M, V) after right-aligned contexts (M, W); -1 = none."""
        t = self.tables
        V = t.vocab_size
        M = ctx.shape[0]
        dist = np.tile(t.prob[0].astype(np.float64), (M, 1))
        h = ctx[:, -1].copy()
        for j in range(1, self.order):
            if j > 1:
                w = ctx[:, -j]
                ok = (h >= 0) & (w >= 0)
                nh = np.full(M, -1, dtype=np.int64)
                nh[ok] = lookup(t.keys[j - 1], h[ok] * V + w[ok])
                h = nh
            rows = np.flatnonzero(h >= 0)
            if rows.size == 0:
                break
            hr = h[rows]
            dist[rows] += t.backoff[j - 1][hr].astype(np.float64)[:, None]
            order, starts = t.by_context(j + 1)
            s, e = starts[hr], starts[hr + 1]
            n = e - s
            total = int(n.sum())
            if total:
                row_rep = np.repeat(rows, n)
                offs = np.repeat(s - np.concatenate([[0], np.cumsum(n)[:-1]]), n) + np.arange(total)
                ent = order[offs]
                dist[row_rep, t.last(j + 1)[ent]] = t.prob[j][ent]
        dist[:, self.bos_id] = -np.inf
        return dist

    def _width(self) -> int:
        return max(1, self.order - 1)

    def logprobs(self, tokens: torch.Tensor, source=None) -> torch.Tensor:
        """Full next-token distributions (B, T) -> (B, T, V); meant for small V."""
        self._source(source, tokens.shape[0])
        x = self._check(tokens)
        B, T = x.shape
        W = self._width()
        padded = np.concatenate([np.full((B, W - 1), -1, dtype=np.int64), x], axis=1)
        windows = np.lib.stride_tricks.sliding_window_view(padded, W, axis=1)  # (B, T, W)
        dist = self._distributions(windows.reshape(B * T, W))
        return torch.from_numpy(dist * LN10).float().reshape(B, T, self.vocab_size)

    # -- incremental decoding: the state is the last n-1 tokens (B, W), -1 where absent ------
    def start(self, prompt: torch.Tensor, lengths: torch.Tensor | None = None, source=None):
        self._source(source, prompt.shape[0])
        x = self._check(prompt)
        B, T = x.shape
        L = np.full(B, T) if lengths is None else lengths.detach().cpu().numpy().astype(np.int64)
        W = self._width()
        state = np.full((B, W), -1, dtype=np.int64)
        for j in range(W):  # state[:, W-1-j] = x[b, L-1-j]
            pos = L - 1 - j
            ok = pos >= 0
            state[ok, W - 1 - j] = x[np.flatnonzero(ok), pos[ok]]
        return torch.from_numpy(self._distributions(state) * LN10).float(), torch.from_numpy(state)

    def step(self, state: torch.Tensor, token: torch.Tensor):
        tok = self._check(token.reshape(-1))
        st = state.numpy()
        new = np.concatenate([st[:, 1:], tok[:, None]], axis=1)
        return torch.from_numpy(self._distributions(new) * LN10).float(), torch.from_numpy(new)

    def select_state(self, state: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return state[index]

    # -- persistence -------------------------------------------------------------------------
    def num_parameters(self) -> int:
        return int(sum(self.tables.counts())) if self.tables_ is not None else 0

    def config(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "smoothing": self.smoothing,
            "k": self.k,
            "unk_id": self.unk_id,
            "pad_id": self.pad_id,
            "discounts": self.discounts_ or self.discounts,
            "prune": self.prune,
            "ngram_counts": self.tables.counts(),
        }

    def save_weights(self, directory: Path) -> None:
        t = self.tables
        tensors = {}
        for k in range(1, t.order + 1):
            if k > 1:
                tensors[f"keys.{k}"] = torch.from_numpy(t.keys[k - 1])
            tensors[f"prob.{k}"] = torch.from_numpy(t.prob[k - 1])
            tensors[f"backoff.{k}"] = torch.from_numpy(t.backoff[k - 1])
            if t.raw_counts is not None:
                tensors[f"count.{k}"] = torch.from_numpy(t.raw_counts[k - 1])
        write_safetensors(Path(directory) / "model.safetensors", tensors,
                          metadata={"format": "chainrule-ngram", "order": str(t.order)})

    @classmethod
    def from_directory(cls, directory: Path, config: dict[str, Any]) -> NgramModel:
        try:
            order, V = int(config["order"]), int(config["vocab_size"])
            bos, eos = int(config["bos_id"]), int(config["eos_id"])
        except (KeyError, TypeError, ValueError):
            raise ModelFormatError(
                f"{str(directory)!r}: config.json lacks the n-gram fields (order, vocab_size, "
                "bos_id, eos_id); the directory is corrupt."
            ) from None
        tensors = read_safetensors(Path(directory) / "model.safetensors")
        try:
            keys = [np.arange(V, dtype=np.int64)]
            keys += [tensors[f"keys.{k}"].numpy() for k in range(2, order + 1)]
            prob = [tensors[f"prob.{k}"].numpy() for k in range(1, order + 1)]
            backoff = [tensors[f"backoff.{k}"].numpy() for k in range(1, order + 1)]
        except KeyError as e:
            raise ModelFormatError(
                f"{str(directory)!r}: model.safetensors lacks the n-gram array {e.args[0]!r}; "
                "the model is corrupt or of another family."
            ) from None
        counts = None
        if all(f"count.{k}" in tensors for k in range(1, order + 1)):
            counts = [tensors[f"count.{k}"].numpy() for k in range(1, order + 1)]
        tables = NgramTables(V, keys, prob, backoff, counts)
        unk, pad = config.get("unk_id"), config.get("pad_id")
        model = cls.from_tables(
            tables, bos_id=bos, eos_id=eos, unk_id=None if unk is None else int(unk),
            pad_id=None if pad is None else int(pad),
            smoothing=str(config.get("smoothing", "mkn")), k=float(config.get("k", 1.0)),
            prune=config.get("prune"),
        )
        model.discounts_ = config.get("discounts") or []
        return model


__all__ = ["LN10", "NgramModel"]
