"""The n-gram language model: a backoff model over token ids behind the shared interface.

``log10 P(w | h) = prob(h w)`` if the n-gram ``h w`` is stored, else
``backoff(h) + log10 P(w | h[1:])`` -- the rule KenLM's ``query`` applies to an ARPA file.
Scoring (:meth:`NgramModel.token_logprobs`, :mod:`.query`) looks every order up in a compiled
hash index (or, without it, with one ``searchsorted`` per order over the whole batch), so it
never builds the (B, T, V) tensor; :meth:`logprobs` and
decoding build whole next-token distributions from the entries that share a context.

``<s>`` is stored with log10 probability 0 like KenLM does (so it can be "scored" for free),
but every distribution the model returns gives it probability 0: nothing predicts ``<s>``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chainrule.errors import ConfigError, ModelFormatError
from chainrule.fileio import read_safetensors, write_safetensors
from chainrule.models.base import LanguageModel
from chainrule.models.ngram.counting import DEFAULT_CHUNK_TOKENS, ChunkedCounter, NgramCounts
from chainrule.models.ngram.estimate import SMOOTHINGS, estimate
from chainrule.models.ngram.query import token_log10probs
from chainrule.models.ngram.tables import NgramTables, lookup

if TYPE_CHECKING:  # torch is imported only where a tensor is returned: training, saving,
    import torch  # loading and tables never load it

LN10 = math.log(10.0)


def _torch():
    import torch

    return torch


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
        fit = estimate
        if getattr(counts, "on_disk", False):  # counted out of core: estimated from the files
            from chainrule.models.ngram.outofcore import estimate_on_disk as fit
        tables, used = fit(
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
        torch = sys.modules.get("torch")  # a tensor exists only once torch is imported
        is_tensor = torch is not None and isinstance(tokens, torch.Tensor)
        x = tokens.detach().cpu().numpy() if is_tensor else np.asarray(tokens)
        x = x.astype(np.int64, copy=False)
        if x.size and (x.min() < 0 or x.max() >= self.vocab_size):
            raise ConfigError(
                f"token ids must lie in [0, {self.vocab_size}) for this model; got "
                f"{int(x.min())}..{int(x.max())}."
            )
        return x

    def token_log10probs(self, tokens: torch.Tensor | np.ndarray,
                         lengths: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
        """log10 P(tokens[b, t+1] | tokens[b, :t+1]) as float64 numpy (B, T - 1), like KenLM
        (the compiled query when it is built, else numpy: :mod:`.query`); positions past
        ``lengths`` are padding and may be skipped."""
        x = self._check(tokens)
        if x.ndim != 2:
            raise ConfigError(f"tokens must have shape (B, T), got {tuple(x.shape)}.")
        if lengths is not None:
            lengths = np.asarray(lengths.detach().cpu() if hasattr(lengths, "detach") else lengths)
        return token_log10probs(self.tables, x, self.bos_id, lengths)

    def token_logprobs(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None,
                       source=None) -> torch.Tensor:
        """Natural-log probability of each next token (B, T) -> (B, T - 1), without (B, T, V)."""
        self._source(source, tokens.shape[0])
        return _torch().from_numpy(self.token_log10probs(tokens, lengths) * LN10).float()

    def score_lines(self, tokenizer: Any, lines: Sequence[str]) -> Any:
        """Text in: every line framed and scored (a :class:`.lines.LineScores`, the scores
        :meth:`token_logprobs` gives bit for bit) in two compiled calls for a whitespace word
        tokenizer, else encoded line by line and scored with numpy arrays (:mod:`.lines`):
        the perplexity evaluator's hook, which keeps torch out of n-gram scoring."""
        from chainrule.models.ngram.lines import score_encoded_lines, score_lines

        fast = score_lines(self, tokenizer, lines)
        return fast if fast is not None else score_encoded_lines(self, tokenizer, lines)

    def score_ids(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Framed id lists in, natural-log scores of their targets out: what
        :func:`chainrule.models.scoring.score_sequences` returns through
        :meth:`token_logprobs`, bit for bit, with numpy arrays only (:mod:`.lines`); that
        function's hook, which keeps torch out of surprisal and minimal pairs."""
        from chainrule.models.ngram.lines import score_id_sequences

        return score_id_sequences(self, sequences)

    def score_ids_with_mass(self, sequences: Sequence[Sequence[int]],
                            mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`score_ids` plus the log of the total probability of the ids in ``mask``
        (bool (V,)) after every prefix: :func:`chainrule.models.scoring.score_with_mass`'s
        hook (the word-boundary correction), numpy only."""
        from chainrule.models.ngram.lines import score_id_sequences_with_mass

        return score_id_sequences_with_mass(self, sequences, mask)

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
        return _torch().from_numpy(dist * LN10).float().reshape(B, T, self.vocab_size)

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
        torch = _torch()
        return torch.from_numpy(self._distributions(state) * LN10).float(), torch.from_numpy(state)

    def step(self, state: torch.Tensor, token: torch.Tensor):
        tok = self._check(token.reshape(-1))
        st = state.numpy()
        new = np.concatenate([st[:, 1:], tok[:, None]], axis=1)
        torch = _torch()
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
                tensors[f"keys.{k}"] = t.keys[k - 1]  # numpy arrays: saving needs no torch
            tensors[f"prob.{k}"] = t.prob[k - 1]
            tensors[f"backoff.{k}"] = t.backoff[k - 1]
            if t.raw_counts is not None:
                tensors[f"count.{k}"] = t.raw_counts[k - 1]
        write = getattr(t, "write_safetensors", write_safetensors)  # tables on disk: copied
        write(Path(directory) / "model.safetensors", tensors,
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
        tensors = read_safetensors(Path(directory) / "model.safetensors", numpy=True)
        try:
            keys = [np.arange(V, dtype=np.int64)]
            keys += [tensors[f"keys.{k}"] for k in range(2, order + 1)]
            prob = [tensors[f"prob.{k}"] for k in range(1, order + 1)]
            backoff = [tensors[f"backoff.{k}"] for k in range(1, order + 1)]
        except KeyError as e:
            raise ModelFormatError(
                f"{str(directory)!r}: model.safetensors lacks the n-gram array {e.args[0]!r}; "
                "the model is corrupt or of another family."
            ) from None
        counts = None
        if all(f"count.{k}" in tensors for k in range(1, order + 1)):
            counts = [tensors[f"count.{k}"] for k in range(1, order + 1)]
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

    @classmethod
    def from_file(cls, path: Path) -> tuple[NgramModel, Any]:
        """(model, tokenizer) of a binary model file (:mod:`.binary`), memory-mapped."""
        from chainrule.models.ngram.binary import read_binary

        tables, config, tok = read_binary(path)
        unk, pad = config.get("unk_id"), config.get("pad_id")
        model = cls.from_tables(
            tables, bos_id=int(config["bos_id"]), eos_id=int(config.get("eos_id", 1)),
            unk_id=None if unk is None else int(unk), pad_id=None if pad is None else int(pad),
            smoothing=str(config.get("smoothing", "mkn")), k=float(config.get("k", 1.0)),
            prune=config.get("prune"),
        )
        model.discounts_ = config.get("discounts") or []
        return model, tok


__all__ = ["LN10", "NgramModel"]
