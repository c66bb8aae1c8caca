"""The interface every model family implements, split by what a model can do, and the registry.

A language model is the chain rule, P(w_1 ... w_n) = prod_t P(w_t | w_<t) -- or, for a
*conditional* model (the encoder-decoder of translation), P(w_t | x, w_<t) given a source x.
Three capabilities, each a class a family inherits as far as it can go:

    Scorer     token_logprobs(tokens[B, T], lengths[B]=None, source=None) -> [B, T-1]
               log P of every token after the first (a masked LM: pseudo-log-likelihood,
               log P(w_t | every other token))
    Generator  logprobs(tokens[B, T], source=None) -> [B, T, V]   next-token distributions
    (a Scorer) start(prompt[B, T], lengths[B]=None, source=None) -> (logprobs[B, V], state)
               step(state, token[B]) -> (logprobs[B, V], state)
               select_state(state, index[K]) -> state             (beams, dropping rows)

Training objectives (``chainrule.training.objectives``) are the third leg: ``loss(model,
batch)``. Evaluation takes a Scorer; decoding takes a Generator; neither switches on families.

Every distribution is over the model's whole vocabulary and sums to one. Batches are
right-padded; ``lengths`` gives the real lengths (a causal model may ignore it: padding never
changes its outputs at real positions; a masked model must not look at the padding). A
*source* is a right-padded LongTensor (B, S) of source-token ids, or a :class:`Source` that also
carries the lengths; :func:`as_source` turns id lists into one. Sentence and document
boundaries are explicit tokens (``bos_id`` / ``eos_id``) handled the same way by every family.

A model on disk is a directory: ``config.json`` (``format``, ``format_version``, ``family`` and
the family's own fields), its weights (``model.safetensors``, or ``model.arpa`` for n-grams) and
``tokenizer.json`` (plus ``source_tokenizer.json`` for a conditional model). ``load_model``
reads ``config.json`` and hands the directory to the family registered under that name; loading
never executes code from the directory.

The registry (:func:`register_family`, :func:`get_family`, :func:`families`) is the one list of
families: each entry knows its class, its config class (whose fields and defaults are the
model's settings, reachable from ``chainrule train`` as KEY=VALUE), what the family can do
(scorer / generator, conditional, masked) and how it is trained.
"""

from __future__ import annotations

import abc
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainrule.errors import ConfigError, ModelFormatError
from chainrule.fileio import write_json
from chainrule.models.model_format import (
    MODEL_FILE_FORMAT,  # noqa: F401 (re-exported: models/ngram/binary.py imports it here)
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    read_model_config,
    read_model_file_config,
)
from chainrule.models.source import Source, as_source

if TYPE_CHECKING:  # torch is imported where it is used: n-gram commands never load it
    import torch


class Model(abc.ABC):
    """What every family has: identity, vocabulary, boundaries, persistence.

    Attributes:
        family: registry name of the family (``"uniform"``, ``"ngram"``, ``"gpt"``, ...).
        vocab_size: number of token ids the model predicts over.
        bos_id: id of the beginning-of-sequence token every scored sequence starts with.
        eos_id: id of the end-of-sequence token.
        max_context: the longest left context the model uses (``None`` if unbounded).
        markov_window: True when the model conditions only on the last ``max_context`` tokens by
            construction (n-grams, feed-forward): cutting a longer prompt to that window loses
            nothing, so decoding does it silently instead of warning.
        conditional: True when the model needs a source sequence (P(y | x)).
        masked: True for a masked (bidirectional) model scored by pseudo-log-likelihood.
    """

    family: str = ""
    vocab_size: int
    bos_id: int
    eos_id: int
    max_context: int | None = None
    markov_window: bool = False
    conditional: bool = False
    masked: bool = False

    # -- persistence -------------------------------------------------------------------------
    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """The JSON-serialisable fields needed to rebuild the model (no ``family`` key)."""

    @abc.abstractmethod
    def save_weights(self, directory: Path) -> None:
        """Write the learned parameters into ``directory`` (safetensors or ARPA)."""

    @classmethod
    @abc.abstractmethod
    def from_directory(cls, directory: Path, config: dict[str, Any]) -> Model:
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
        import torch

        return torch.device("cpu")

    def num_parameters(self) -> int:
        """Number of learned scalars (n-gram models count their stored probabilities)."""
        return 0

    def check_source(self, given: bool) -> None:
        """Refuse a source for an unconditional model, and its absence for a conditional one."""
        if given and not self.conditional:
            raise ConfigError(f"a {self.family} model is not conditional: it takes no source "
                              "sequence; drop the source.")
        if not given and self.conditional:
            raise ConfigError(f"a {self.family} model is conditional: it needs a source "
                              "sequence (P(y | x)); pass one source per sequence.")

    def _source(self, source: Any, batch: int) -> Source | None:
        """``source`` as a :class:`Source` on the model's device (None for unconditional models)."""
        self.check_source(source is not None)
        if source is None:
            return None
        src = as_source(source, getattr(self, "source_pad_id", 0), self.device)
        if src.ids.shape[0] != batch:
            raise ConfigError(f"{src.ids.shape[0]} source sequences were given for a batch of "
                              f"{batch}; pass one source per row.")
        return src


class Scorer(Model):
    """A model that scores sequences: log P of every token given its context (and source)."""

    @abc.abstractmethod
    def token_logprobs(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None,
                       source: Source | torch.Tensor | None = None) -> torch.Tensor:
        """Log-probability of each token after the first: (B, T) -> (B, T - 1).

        ``out[b, t] = log P(tokens[b, t+1] | tokens[b, :t+1])`` for a left-to-right model
        (given ``source`` for a conditional one); for a masked model, ``log P(tokens[b, t+1] |
        every other real token of row b)``. Positions at or beyond ``lengths[b]`` are padding
        and their outputs are unspecified.
        """


class Generator(Scorer):
    """A left-to-right model that can also produce next-token distributions incrementally."""

    @abc.abstractmethod
    def logprobs(self, tokens: torch.Tensor,
                 source: Source | torch.Tensor | None = None) -> torch.Tensor:
        """Next-token log-probabilities at every position.

        Args:
            tokens: LongTensor of shape (B, T).
            source: the source batch (conditional models only).
        Returns:
            FloatTensor of shape (B, T, V); ``out[b, t]`` is log P(token t+1 | tokens[b, :t+1]).
        """

    def token_logprobs(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None,
                       source: Source | torch.Tensor | None = None) -> torch.Tensor:
        """Gathered from :meth:`logprobs`. Families override this when they can score without
        materialising the (B, T, V) tensor (n-grams, chunked output layers)."""
        lp = self.logprobs(tokens[:, :-1], source=source)
        return lp.gather(-1, tokens[:, 1:, None].to(lp.device)).squeeze(-1)

    # -- incremental decoding ----------------------------------------------------------------
    @abc.abstractmethod
    def start(self, prompt: torch.Tensor, lengths: torch.Tensor | None = None,
              source: Source | torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """Consume a right-padded batch of prompts (B, T), each of length >= 1.

        Returns the next-token log-probabilities after each prompt's last real token (B, V)
        and an opaque state for :meth:`step` (which holds the encoded source, if any).
        """

    @abc.abstractmethod
    def step(self, state: Any, token: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Append one token per row (B,) and return the next log-probabilities (B, V)."""

    @abc.abstractmethod
    def select_state(self, state: Any, index: torch.Tensor) -> Any:
        """Return the state of rows ``index`` (LongTensor (K,)), in that order (beam search)."""

    def fast_decoder(self) -> Any | None:
        """An object with the same ``start/step/select_state`` that decodes faster, or None.

        The family that owns the weights provides it (so adapters and new options cannot be
        bypassed); decoding asks for it and falls back to the model's own methods.
        """
        return None


#: The left-to-right model of the first half of the lecture: a Generator. Kept as the name
#: every family and most user code already uses.
LanguageModel = Generator


# -- the registry ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FamilyInfo:
    """One registered family.

    Attributes:
        name: the name ``config.json`` and ``--family`` use.
        cls: the model class (a :class:`Scorer`, usually a :class:`Generator`).
        config_class: the frozen dataclass of its settings (None when the family takes its
            settings as constructor arguments, like ``ngram``); its defaults are the defaults.
        trainer: how ``chainrule train`` trains it: ``"neural"`` (the training loop),
            ``"ngram"`` (counting), or None (not trained by the command line).
        description: one line for ``--help``.
    """

    name: str
    cls: type[Model]
    config_class: type | None = None
    trainer: str | None = None
    description: str = ""
    aliases: tuple[str, ...] = field(default=())

    @property
    def is_generator(self) -> bool:
        return issubclass(self.cls, Generator)

    @property
    def conditional(self) -> bool:
        return bool(self.cls.conditional)

    @property
    def masked(self) -> bool:
        return bool(self.cls.masked)

    @property
    def kind(self) -> str:
        """``"generator"``, ``"conditional generator"``, ``"masked scorer"`` or ``"scorer"``."""
        if self.masked:
            return "masked scorer"
        base = "generator" if self.is_generator else "scorer"
        return f"conditional {base}" if self.conditional else base


_FAMILIES: dict[str, FamilyInfo] = {}
#: Families shipped with chainrule: name -> module that registers it on import (keeps
#: ``import chainrule`` light). This is the only list of built-in families.
BUILTIN_FAMILIES: dict[str, str] = {
    "uniform": "chainrule.models.reference",
    "unigram": "chainrule.models.reference",
    "ngram": "chainrule.models.ngram",
    "ffnn": "chainrule.models.ffnn",
    "rnn": "chainrule.models.rnn",
    "lstm": "chainrule.models.lstm",
    "gpt": "chainrule.models.gpt",
    "bert": "chainrule.models.bert",
    "seq2seq": "chainrule.models.seq2seq",
    "transformer-ed": "chainrule.models.transformer_ed",
}


def register_family(name: str, cls: type[Model], description: str = "", *,
                    config_class: type | None = None, trainer: str | None = None) -> FamilyInfo:
    """Make ``load_model`` (and, with ``trainer``, ``chainrule train``) know family ``name``.

    Args:
        name: the family's name in ``config.json`` and on the command line.
        cls: its model class; what it subclasses (:class:`Scorer` / :class:`Generator`) and its
            ``conditional`` / ``masked`` flags say what it can do.
        config_class: the dataclass of its settings (fields = KEY=VALUE training overrides).
        trainer: ``"neural"``, ``"ngram"`` or None.
    """
    if not (isinstance(cls, type) and issubclass(cls, Scorer)):
        raise TypeError(f"family {name!r}: {cls!r} does not implement chainrule's Scorer")
    if trainer not in (None, "neural", "ngram"):
        raise ValueError(f"family {name!r}: unknown trainer {trainer!r}")
    info = FamilyInfo(name, cls, config_class, trainer, description)
    _FAMILIES[name] = info
    return info


def get_family(name: str) -> FamilyInfo:
    """The registry entry of ``name`` (imports a built-in family's module on first use)."""
    if name not in _FAMILIES and name in BUILTIN_FAMILIES:
        importlib.import_module(BUILTIN_FAMILIES[name])
    if name not in _FAMILIES:
        raise ModelFormatError(
            f"unknown model family {name!r}; known families: {', '.join(known_families())}.")
    return _FAMILIES[name]


def families(*, trainer: str | None = None, generator: bool | None = None,
             conditional: bool | None = None) -> list[FamilyInfo]:
    """Registered families (built-ins imported), optionally filtered by what they can do."""
    for name in BUILTIN_FAMILIES:
        get_family(name)
    out = []
    for info in sorted(_FAMILIES.values(), key=lambda i: i.name):
        if trainer is not None and info.trainer != trainer:
            continue
        if generator is not None and info.is_generator != generator:
            continue
        if conditional is not None and info.conditional != conditional:
            continue
        out.append(info)
    return out


def known_families() -> list[str]:
    return sorted(set(_FAMILIES) | set(BUILTIN_FAMILIES))


def load_model(directory: str | os.PathLike, *, family: str | None = None) -> Model:
    """Load a saved model of any registered family.

    Args:
        directory: a model directory written by :meth:`Model.save`.
        family: if given, refuse a model of another family.
    """
    directory = Path(directory)
    if directory.is_file():
        return load_model_file(directory, family=family)[0]
    config = read_model_config(directory)
    name = config.get("family")
    if family is not None and name != family:
        raise ModelFormatError(
            f"{str(directory)!r} holds a {name!r} model, not a {family!r} model."
        )
    info = get_family(str(name))
    return info.cls.from_directory(directory, config)


def load_model_file(path: str | os.PathLike, *, family: str | None = None) -> tuple[Model, Any]:
    """(model, tokenizer) of a one-file model (``chainrule ngram binarize``); loading maps
    arrays from the file and never executes code from it."""
    path = Path(path)
    name = read_model_config(path).get("family")
    if family is not None and name != family:
        raise ModelFormatError(f"{str(path)!r} holds a {name!r} model, not a {family!r} model.")
    from_file = getattr(get_family(str(name)).cls, "from_file", None)
    if from_file is None:
        raise ModelFormatError(f"{str(path)!r}: {name!r} models are saved as directories, not "
                               "as one file.")
    return from_file(path)


def require_generator(model: Model, what: str) -> Generator:
    """``model`` if it can generate left to right, else a sentence saying it cannot."""
    if not isinstance(model, Generator):
        raise ConfigError(f"{what} needs a left-to-right model, but a {model.family} model "
                          "only scores (a masked LM has no next-token distribution); use a "
                          "generator family.")
    return model


__all__ = [
    "BUILTIN_FAMILIES",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "FamilyInfo",
    "Generator",
    "LanguageModel",
    "Model",
    "Scorer",
    "Source",
    "as_source",
    "families",
    "get_family",
    "known_families",
    "load_model",
    "load_model_file",
    "read_model_config",
    "read_model_file_config",
    "register_family",
    "require_generator",
]
