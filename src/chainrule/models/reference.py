"""Two reference families that ignore context: uniform, and unigram counts with add-one.

They are the bottom rungs of the ladder ("Unigram 962" in the lecture's perplexity table) and
the simplest models the conformance suite runs on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chainrule.errors import ConfigError, ModelFormatError
from chainrule.fileio import read_safetensors, write_safetensors
from chainrule.models.base import LanguageModel, register_family


class _ContextFreeModel(LanguageModel):
    """A model whose next-token distribution is one fixed vector ``log_p_`` (V,)."""

    log_p_: torch.Tensor
    max_context = 0
    markov_window = True  # no context at all

    def logprobs(self, tokens: torch.Tensor, source=None) -> torch.Tensor:
        B, T = tokens.shape
        self._source(source, B)
        return self.log_p_.expand(B, T, -1).clone()

    def start(self, prompt, lengths=None, source=None):
        B = prompt.shape[0]
        self._source(source, B)
        return self.log_p_.expand(B, -1).clone(), B

    def step(self, state, token):
        return self.log_p_.expand(token.shape[0], -1).clone(), state

    def select_state(self, state, index):
        return int(index.shape[0])


class UniformModel(_ContextFreeModel):
    """Every token equally likely: perplexity equals the vocabulary size."""

    family = "uniform"

    def __init__(self, vocab_size: int, bos_id: int = 0, eos_id: int = 1):
        if vocab_size < 1:
            raise ConfigError(f"vocab_size must be at least 1, got {vocab_size}.")
        self.vocab_size, self.bos_id, self.eos_id = vocab_size, bos_id, eos_id
        self.log_p_ = torch.full((vocab_size,), -float(np.log(vocab_size)), dtype=torch.float32)

    def config(self) -> dict[str, Any]:
        return {}

    def save_weights(self, directory: Path) -> None:
        pass  # nothing learned

    @classmethod
    def from_directory(cls, directory: Path, config: dict[str, Any]) -> UniformModel:
        return cls(int(config["vocab_size"]), int(config["bos_id"]), int(config["eos_id"]))


class UnigramModel(_ContextFreeModel):
    """Unigram counts with add-alpha smoothing (alpha = 1 is Laplace's add-one).

    P(w) = (c(w) + alpha) / (N + alpha * V), where c counts every token that follows a position
    (so ``eos`` is counted once per sequence and ``bos`` never, since nothing predicts it).
    """

    family = "unigram"

    def __init__(self, vocab_size: int, bos_id: int = 0, eos_id: int = 1, alpha: float = 1.0):
        if vocab_size < 1:
            raise ConfigError(f"vocab_size must be at least 1, got {vocab_size}.")
        if not alpha > 0:
            raise ConfigError(f"alpha must be positive so no token gets probability 0, got {alpha}.")
        self.vocab_size, self.bos_id, self.eos_id, self.alpha = vocab_size, bos_id, eos_id, alpha
        self.counts_ = torch.zeros(vocab_size, dtype=torch.float64)
        self._refresh()

    def fit(self, sequences: Iterable[Sequence[int] | np.ndarray]) -> UnigramModel:
        """Count targets in ``sequences`` (each already framed as ``bos ... eos``)."""
        counts = np.zeros(self.vocab_size, dtype=np.int64)
        for seq in sequences:
            ids = np.asarray(seq, dtype=np.int64)[1:]
            if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
                raise ConfigError(
                    f"token id {int(ids.max())} is outside the vocabulary of {self.vocab_size}."
                )
            counts += np.bincount(ids, minlength=self.vocab_size)
        self.counts_ = torch.from_numpy(counts.astype(np.float64))
        self._refresh()
        return self

    def _refresh(self) -> None:
        smoothed = self.counts_ + self.alpha
        self.log_p_ = (smoothed / smoothed.sum()).log().to(torch.float32)

    def num_parameters(self) -> int:
        return self.vocab_size

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def save_weights(self, directory: Path) -> None:
        write_safetensors(directory / "model.safetensors", {"counts": self.counts_})

    @classmethod
    def from_directory(cls, directory: Path, config: dict[str, Any]) -> UnigramModel:
        model = cls(
            int(config["vocab_size"]),
            int(config["bos_id"]),
            int(config["eos_id"]),
            float(config.get("alpha", 1.0)),
        )
        tensors = read_safetensors(directory / "model.safetensors")
        counts = tensors.get("counts")
        if counts is None or counts.shape != (model.vocab_size,):
            raise ModelFormatError(
                f"{str(directory)!r}: model.safetensors does not hold unigram counts of the "
                "vocabulary size in config.json; the directory is corrupt."
            )
        model.counts_ = counts.to(torch.float64)
        model._refresh()
        return model


register_family("uniform", UniformModel, "every token equally likely")
register_family("unigram", UnigramModel, "unigram counts with add-alpha smoothing")

__all__ = ["UniformModel", "UnigramModel"]
