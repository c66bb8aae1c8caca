"""The one interface every model family implements, and the registry that loads them.

A model answers "log-probability of each next token given its left context":

    logprobs(tokens[B, T]) -> [B, T, V]     out[b, t] = log P(next | tokens[b, :t+1])
    start(prompt[B, T], lengths[B]) -> (logprobs[B, V], state)   # after the last prompt token
    step(state, token[B]) -> (logprobs[B, V], state)             # after one more token
    select_state(state, index[K]) -> state                       # keep / reorder batch rows

Every distribution is over the model's whole vocabulary and sums to one. Sequences in a batch
are right-padded; because models are causal, padding never changes the outputs at real
positions. ``start`` takes the true ``lengths`` so decoding can continue each row from its own
end. Sentence and document boundaries are explicit tokens (``bos_id`` / ``eos_id``) handled the
same way by every family.

A model on disk is a directory: ``config.json`` (``format``, ``format_version``, ``family`` and
the family's own fields), its weights (``model.safetensors``, or ``model.arpa`` for n-grams) and
``tokenizer.json``. ``load_model`` reads ``config.json`` and hands the directory to the family
registered under that name; loading never executes code from the directory.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from chainrule.errors import ModelFormatError
from chainrule.fileio import read_json, write_json

MODEL_FORMAT = "chainrule-model"
MODEL_FORMAT_VERSION = 1


class LanguageModel(abc.ABC):
    """Base class of every model family. Subclasses set ``family`` and implement the methods.

    Attributes:
        family: registry name of the family (``"uniform"``, ``"ngram"``, ``"gpt"``, ...).
        vocab_size: number of token ids the model predicts over.
        bos_id: id of the beginning-of-sequence token every scored sequence starts with.
        eos_id: id of the end-of-sequence token.
        max_context: the longest left context the model uses (``None`` if unbounded).
        markov_window: True when the model conditions only on the last ``max_context`` tokens by
            construction (n-grams, feed-forward): cutting a longer prompt to that window loses
            nothing, so decoding does it silently instead of warning.
    """

    family: str = ""
    vocab_size: int
    bos_id: int
    eos_id: int
    max_context: int | None = None
    markov_window: bool = False

    # -- scoring -----------------------------------------------------------------------------
    @abc.abstractmethod
    def logprobs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token log-probabilities at every position.

        Args:
            tokens: LongTensor of shape (B, T).
        Returns:
            FloatTensor of shape (B, T, V); ``out[b, t]`` is log P(token t+1 | tokens[b, :t+1]).
        """

    def token_logprobs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Log-probability of each actual next token: (B, T) -> (B, T - 1).

        ``out[b, t] = log P(tokens[b, t+1] | tokens[b, :t+1])``. Families override this when
        they can score without materialising the (B, T, V) tensor (n-grams, chunked heads).
        """
        lp = self.logprobs(tokens[:, :-1])
        return lp.gather(-1, tokens[:, 1:, None]).squeeze(-1)

    # -- incremental decoding ----------------------------------------------------------------
    @abc.abstractmethod
    def start(
        self, prompt: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Any]:
        """Consume a right-padded batch of prompts (B, T), each of length >= 1.

        Returns the next-token log-probabilities after each prompt's last real token (B, V)
        and an opaque state for :meth:`step`.
        """

    @abc.abstractmethod
    def step(self, state: Any, token: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Append one token per row (B,) and return the next log-probabilities (B, V)."""

    @abc.abstractmethod
    def select_state(self, state: Any, index: torch.Tensor) -> Any:
        """Return the state of rows ``index`` (LongTensor (K,)), in that order (beam search)."""

    # -- persistence -------------------------------------------------------------------------
    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """The JSON-serialisable fields needed to rebuild the model (no ``family`` key)."""

    @abc.abstractmethod
    def save_weights(self, directory: Path) -> None:
        """Write the learned parameters into ``directory`` (safetensors or ARPA)."""

    @classmethod
    @abc.abstractmethod
    def from_directory(cls, directory: Path, config: dict[str, Any]) -> LanguageModel:
        """Rebuild a model from its directory and parsed ``config.json``."""

    def save(self, directory: str | os.PathLike) -> Path:
        """Save to ``directory`` (created if needed). Each file is written atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.save_weights(directory)
        config = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "family": self.family,
            "vocab_size": self.vocab_size,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            **self.config(),
        }
        write_json(directory / "config.json", config)
        return directory

    # -- conveniences shared by all families -------------------------------------------------
    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def num_parameters(self) -> int:
        """Number of learned scalars (n-gram models count their stored probabilities)."""
        return 0


@dataclass(frozen=True)
class FamilyInfo:
    name: str
    cls: type[LanguageModel]
    description: str = ""


_FAMILIES: dict[str, FamilyInfo] = {}
_LAZY_FAMILIES: dict[str, str] = {
    # family name -> module that registers it on import (keeps `import chainrule` light)
    "uniform": "chainrule.models.reference",
    "unigram": "chainrule.models.reference",
    "ngram": "chainrule.models.ngram",
    "ffnn": "chainrule.models.ffnn",
    "rnn": "chainrule.models.rnn",
    "lstm": "chainrule.models.lstm",
    "gpt": "chainrule.models.gpt",
}


def register_family(name: str, cls: type[LanguageModel], description: str = "") -> None:
    """Make ``load_model`` able to rebuild models whose ``config.json`` names ``name``."""
    _FAMILIES[name] = FamilyInfo(name, cls, description)


def get_family(name: str) -> FamilyInfo:
    if name not in _FAMILIES and name in _LAZY_FAMILIES:
        import importlib

        try:
            importlib.import_module(_LAZY_FAMILIES[name])
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("chainrule"):
                raise ModelFormatError(
                    f"model family {name!r} is not available in this version of chainrule."
                ) from None
            raise
    if name not in _FAMILIES:
        known = ", ".join(sorted(set(_FAMILIES) | set(_LAZY_FAMILIES)))
        raise ModelFormatError(f"unknown model family {name!r}; known families: {known}.")
    return _FAMILIES[name]


def read_model_config(directory: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``config.json`` of a model directory."""
    directory = Path(directory)
    if not directory.exists():
        raise ModelFormatError(f"model directory {str(directory)!r} does not exist.")
    if not directory.is_dir():
        raise ModelFormatError(
            f"{str(directory)!r} is a file, not a model directory; pass the directory that "
            "holds config.json."
        )
    cfg_path = directory / "config.json"
    if not cfg_path.exists():
        raise ModelFormatError(
            f"{str(directory)!r} is not a chainrule model directory (no config.json); "
            "train one with `chainrule train`."
        )
    config = read_json(cfg_path, what="model config")
    if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
        raise ModelFormatError(
            f"{str(cfg_path)!r} is not a chainrule model config (it may come from another "
            "tool); train or import the model with chainrule."
        )
    version = config.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        raise ModelFormatError(
            f"{str(cfg_path)!r} has format version {version!r}, but this chainrule reads "
            f"version {MODEL_FORMAT_VERSION}; upgrade chainrule or retrain the model."
        )
    return config


def load_model(directory: str | os.PathLike, *, family: str | None = None) -> LanguageModel:
    """Load a saved model of any registered family.

    Args:
        directory: a model directory written by :meth:`LanguageModel.save`.
        family: if given, refuse a model of another family.
    """
    directory = Path(directory)
    config = read_model_config(directory)
    name = config.get("family")
    if family is not None and name != family:
        raise ModelFormatError(
            f"{str(directory)!r} holds a {name!r} model, not a {family!r} model."
        )
    info = get_family(str(name))
    return info.cls.from_directory(directory, config)


def known_families() -> list[str]:
    return sorted(set(_FAMILIES) | set(_LAZY_FAMILIES))


TinyFactory = Callable[..., LanguageModel]

__all__ = [
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "LanguageModel",
    "get_family",
    "known_families",
    "load_model",
    "read_model_config",
    "register_family",
]
