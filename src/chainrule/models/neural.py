"""What every neural family shares: configs, the ``NeuralLM`` base class, and the builder.

The neural families (``ffnn``, ``rnn``, ``lstm``, ``gpt``, ...) are ``torch.nn.Module`` s that
also implement :class:`~chainrule.models.base.Generator`. The training engine
(``chainrule.training``) and its objectives rely on this contract and on nothing else:

* ``forward(idx, state=None) -> (logits, new_state)`` with ``idx`` a LongTensor (B, T) and
  ``logits`` a FloatTensor (B, T, V) (model dtype, or the autocast dtype). The objective (e.g.
  :class:`chainrule.training.objectives.NextTokenCE`) turns them into a loss. ``state`` is the
  recurrent hidden state when ``recurrent`` is True (``rnn`` / ``lstm``: truncated BPTT carries
  it from one batch to the next) and ``None`` in and out otherwise. ``forward`` never changes its output shape with
  its arguments and does no per-token Python work, so ``torch.compile`` traces it whole.
* ``init_state(batch_size, device)`` gives the zero state (``None`` for stateless families) and
  ``detach_state(state)`` cuts the autograd graph between BPTT segments (the engine calls it).
* ``optim_groups(weight_decay)`` gives AdamW parameter groups: every tensor of two or more
  dimensions (weight matrices and embeddings, as in nanoGPT) decays, biases and norms do not.
* ``config()`` returns JSON-serialisable fields and ``build_neural_model(family, **config)``
  rebuilds an equal, freshly initialised model from them; ``save(dir)`` writes ``config.json`` and
  ``model.safetensors``; ``load_model(dir)`` / ``cls.from_directory`` read them back, refusing a
  file of another family, missing or extra tensors or wrong shapes with a ``ModelFormatError``.
* ``logprobs`` / ``token_logprobs`` / ``start`` / ``step`` always run without dropout and without
  gradients (eval mode is switched on for the call and the previous mode restored), and return
  float32 log-probabilities on the model's device.

Config dataclasses live in :mod:`chainrule.models.configs`, one per family; the registry
(:func:`chainrule.models.base.get_family`) knows which belongs to which family.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from chainrule.errors import ConfigError, ModelFormatError
from chainrule.fileio import read_safetensors, read_safetensors_shapes, write_safetensors
from chainrule.models.base import (
    Generator,
    Scorer,
    Source,
    families,
    get_family,
    register_family,
)
from chainrule.models.configs import (
    FFNNConfig,
    GPTConfig,
    LSTMConfig,
    NeuralConfig,
    RNNConfig,
)

# Logits materialised at once by ``token_logprobs``: B * chunk * V <= this many floats (64 MB),
# so a 50k-token vocabulary gets a few hundred positions per chunk, a character one thousands.
_SCORE_CHUNK_FLOATS = 1 << 24


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}


# -- the base class ----------------------------------------------------------------------------
def _detach(state: Any) -> Any:
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)


class NeuralScorer(nn.Module, Scorer):
    """What every neural model shares, left-to-right or masked: persistence, the training
    contract, eval-mode scoring. :class:`NeuralLM` adds left-to-right scoring; a masked model
    (``bert``) adds its own ``token_logprobs``.

    A subclass sets ``family`` and ``config_class``, builds its layers in ``__init__(cfg)``
    and implements ``hidden`` (B, T) -> (B, T, H) features, ``head`` (..., H) -> (..., V)
    logits, ``start``, ``step`` and ``select_state``. ``forward`` is ``head(hidden(idx))``.
    """

    config_class: type[NeuralConfig] = NeuralConfig
    #: True when ``forward`` returns a state that truncated BPTT carries to the next batch
    recurrent: bool = False
    # (alias, source) parameter names that share storage when weights are tied; the alias is
    # not written to model.safetensors (safetensors refuses shared tensors).
    tied_parameters: tuple[tuple[str, str], ...] = ()

    def __init__(self, cfg: NeuralConfig):
        nn.Module.__init__(self)
        self.cfg = cfg
        self.vocab_size, self.bos_id, self.eos_id = cfg.vocab_size, cfg.bos_id, cfg.eos_id

    # -- training contract -----------------------------------------------------------------
    def hidden(self, idx: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Features before the output layer: (B, T) -> ((B, T, H), new_state)."""
        raise NotImplementedError

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Output layer: features (..., H) -> logits (..., V)."""
        raise NotImplementedError

    def forward(self, idx: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits for every position: (B, T) -> ((B, T, V), new_state)."""
        h, state = self.hidden(idx, state)
        return self.head(h), state

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> Any:
        """The state before any token (``None`` for families without recurrent state)."""
        return None

    def detach_state(self, state: Any) -> Any:
        """Cut the autograd graph of ``state`` (truncated backpropagation through time)."""
        return _detach(state)

    def optim_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups: tensors with >= 2 dims decay; biases and norm gains do not."""
        params = [p for p in self.parameters() if p.requires_grad]  # tied ones appear once
        return [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]

    # -- scoring -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """Eval mode (no dropout) and no gradients for the block; the previous mode returns."""
        was_training = self.training
        if was_training:  # walking every module costs time in a per-token decoding loop
            self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            if was_training:
                self.train()

    def _to_device(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens.to(self.device, dtype=torch.long)

    # -- persistence -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        out = dataclasses.asdict(self.cfg)
        dtype = next(self.parameters()).dtype
        if dtype != torch.float32:  # weights kept (and loaded) in this dtype
            out["dtype"] = _DTYPE_NAMES[dtype]
        lora = getattr(self, "lora_settings", None)
        if lora is not None:  # LoRA adapters held unmerged (chainrule.models.lora)
            out["lora"] = lora.to_dict()
        return out

    def _weights_to_save(self) -> dict[str, torch.Tensor]:
        state = self.state_dict()
        for alias, _source in self.tied_parameters:
            state.pop(alias, None)
        return state

    def save_weights(self, directory: Path) -> None:
        write_safetensors(
            Path(directory) / "model.safetensors",
            self._weights_to_save(),
            metadata={"format": "chainrule-model", "family": self.family},
        )

    @classmethod
    def from_config_dict(cls, config: dict[str, Any]) -> NeuralLM:
        """Build a freshly initialised model from ``config()``-style fields (extra keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls.config_class)}
        model = cls(cls.config_class(**{k: v for k, v in config.items() if k in names}))
        if config.get("lora"):  # a model saved with its LoRA adapters unmerged
            from chainrule.models.lora import LoRAConfig, add_lora

            add_lora(model, LoRAConfig.from_dict(config["lora"]), freeze=False)
        return model

    @classmethod
    def from_directory(cls, directory: Path, config: dict[str, Any]) -> NeuralLM:
        directory = Path(directory)
        where = repr(str(directory))
        if config.get("family") != cls.family:
            raise ModelFormatError(
                f"{where} holds a {config.get('family')!r} model, not a {cls.family!r} model."
            )
        try:
            with shapes_only():  # a bad config costs no memory or time
                shell = cls.from_config_dict(config)
        except (ConfigError, TypeError) as e:
            raise ModelFormatError(
                f"{where}: config.json is not a valid {cls.family} config ({e}); the directory "
                "is corrupt or was written by another version."
            ) from None
        dtype = config.get("dtype", "float32")
        if dtype not in _DTYPES:
            raise ModelFormatError(f"{where}: config.json names dtype {dtype!r}; this chainrule "
                                   f"reads {', '.join(_DTYPES)}.")
        # compare the file's header with the shapes the config implies before building anything
        shapes = read_safetensors_shapes(directory / "model.safetensors")
        expected_shapes = {k: tuple(v.shape) for k, v in shell._weights_to_save().items()}
        missing = sorted(set(expected_shapes) - set(shapes))
        extra = sorted(set(shapes) - set(expected_shapes))
        wrong = sorted(k for k in set(expected_shapes) & set(shapes)
                       if shapes[k] != expected_shapes[k])
        if missing or extra or wrong:
            what = (f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
                    if extra else f"wrong shapes for {wrong[:3]}")
            raise ModelFormatError(
                f"{where}: model.safetensors does not match config.json ({what}); the "
                f"checkpoint is corrupt or not a {cls.family} model of this shape."
            )
        model = cls.from_config_dict(config)
        model.to(_DTYPES[dtype])
        tensors = read_safetensors(directory / "model.safetensors")
        expected = model._weights_to_save()
        bad = next((k for k in sorted(expected)
                    if tensors[k].is_floating_point() and not torch.isfinite(tensors[k]).all()),
                   None)
        if bad is not None:
            raise ModelFormatError(
                f"{where}: model.safetensors holds NaN or infinite weights (in {bad!r}); the "
                "checkpoint is corrupt or training diverged; use an earlier checkpoint.")
        with torch.no_grad():
            for name, value in expected.items():
                value.copy_(tensors[name])  # state_dict tensors share storage with the model
        model.eval()
        return model

    # -- conveniences ------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Learned scalars (tied matrices counted once); optionally without embeddings."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Embedding))
        return n


#: nn.init's initialisers, no-ops while a model is built for its shapes (:func:`shapes_only`)
_INITIALISERS = ("normal_", "trunc_normal_", "uniform_", "xavier_uniform_", "xavier_normal_",
                 "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "zeros_", "ones_",
                 "constant_")


@contextlib.contextmanager
def shapes_only() -> Iterator[None]:
    """Build modules on the meta device without running ``nn.init``'s initialisers on them.

    Meta tensors hold no values, so initialising them is pointless, and not free: torch has no
    meta kernel for ``normal_``, and its Python fallback imports ``torch._dynamo`` (~1.5 s, the
    first model loaded in a process paid it). While this is active the initialisers skip meta
    tensors only, so a model another thread builds on a real device is initialised as usual.
    """
    saved = {name: getattr(nn.init, name) for name in _INITIALISERS}
    for name, f in saved.items():
        setattr(nn.init, name, _skipping_meta(f))
    try:
        with torch.device("meta"):
            yield
    finally:
        for name, f in saved.items():
            setattr(nn.init, name, f)


def _skipping_meta(init: Any) -> Any:
    def maybe(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return tensor if tensor.is_meta else init(tensor, *args, **kwargs)

    return maybe


class NeuralLM(NeuralScorer, Generator):
    """A left-to-right neural family: next-token distributions from ``hidden`` and ``head``."""

    def scoring_hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """Features used by ``logprobs``; GPT overrides it to slide windows over long inputs."""
        return self.hidden(tokens)[0]

    def logprobs(self, tokens: torch.Tensor, source: Source | torch.Tensor | None = None
                 ) -> torch.Tensor:
        """(B, T) -> float32 (B, T, V) next-token log-probabilities (no dropout, no grad)."""
        self._source(source, tokens.shape[0])
        tokens = self._to_device(tokens)
        if tokens.shape[1] == 0:  # nothing to predict (some layers refuse empty inputs)
            return torch.zeros(*tokens.shape, self.vocab_size, device=tokens.device)
        with self.inference():
            h = self.scoring_hidden(tokens)
            return torch.log_softmax(self.head(h).float(), dim=-1)

    def token_logprobs(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None,
                       source: Source | torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) -> (B, T-1) log P(tokens[:, t+1] | tokens[:, :t+1]), never holding (B, T, V).

        The output layer runs on chunks of positions, so scoring a long text needs memory for
        only ``_SCORE_CHUNK_FLOATS`` logits at a time.
        """
        self._source(source, tokens.shape[0])
        tokens = self._to_device(tokens)
        if tokens.shape[1] <= 1:
            return torch.zeros(tokens.shape[0], 0, device=tokens.device)
        with self.inference():
            h = self.scoring_hidden(tokens[:, :-1])
            targets = tokens[:, 1:]
            B, T = targets.shape
            chunk = max(1, _SCORE_CHUNK_FLOATS // (max(B, 1) * self.vocab_size))
            out = []
            for a in range(0, T, chunk):
                logits = self.head(h[:, a : a + chunk]).float()  # (B, chunk, V)
                gold = logits.gather(-1, targets[:, a : a + chunk, None]).squeeze(-1)
                out.append(gold - torch.logsumexp(logits, dim=-1))
            return torch.cat(out, dim=1)

    def _last_logprobs(self, h: torch.Tensor) -> torch.Tensor:
        """(B, H) features -> float32 (B, V) log-probabilities."""
        return torch.log_softmax(self.head(h).float(), dim=-1)


def load_into_transformers(hf_model, state_dict: dict[str, torch.Tensor],
                           buffers: tuple[str, ...] = ()):
    """Copy ``state_dict`` into a ``transformers`` model in eval mode on CPU; ``buffers`` are
    name endings transformers keeps as non-weight buffers (allowed to be missing)."""
    missing, unexpected = hf_model.load_state_dict(state_dict, strict=False)
    real_missing = [k for k in missing if not k.endswith(buffers)]
    if real_missing or unexpected:
        raise RuntimeError(f"weight mapping mismatch: missing {real_missing}, extra {unexpected}")
    return hf_model.eval()


def import_transformers(*names: str) -> tuple:
    """``transformers`` classes by name, or a sentence saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise ConfigError("copying weights into transformers needs it installed: pip install "
                          "'chainrule[bench]'.") from None
    return tuple(getattr(transformers, n) for n in names)


# -- registry and builder ----------------------------------------------------------------------
def register_neural_family(cls: type[NeuralScorer], description: str = "") -> None:
    """Register ``cls`` for ``load_model``, ``chainrule train`` and :func:`build_neural_model`."""
    register_family(cls.family, cls, description, config_class=cls.config_class,
                    trainer="neural")


def neural_config_class(family: str) -> type[NeuralConfig]:
    """The config dataclass of a neural family (its fields are the model's keys)."""
    names = [f.name for f in families(trainer="neural")]
    if family not in names:
        raise ConfigError(f"unknown neural family {family!r}; choose one of {', '.join(names)}.")
    return get_family(family).config_class


def build_neural_model(family: str, **config: Any) -> NeuralLM:
    """A freshly initialised model of ``family`` (uses the global torch RNG for weights).

    Args:
        family: a neural family's name (``"ffnn"``, ``"rnn"``, ``"lstm"``, ``"gpt"``, ...).
        **config: fields of that family's config dataclass (``vocab_size`` is required);
            unknown keys are refused together with any invalid values.

    Example:
        ``build_neural_model("gpt", vocab_size=65, n_layer=4, n_head=4, n_embd=128,
        block_size=64)``
    """
    cfg_cls = neural_config_class(family)
    names = {f.name for f in dataclasses.fields(cfg_cls)}
    unknown = sorted(set(config) - names)
    problems = [f"{family} has no setting {k!r}; known settings: {', '.join(sorted(names))}."
                for k in unknown]
    if "vocab_size" not in config:
        problems.append("vocab_size is required (take it from the tokenizer).")
    if problems:
        raise ConfigError(problems)
    return get_family(family).cls(cfg_cls(**config))


__all__ = [
    "FFNNConfig",
    "GPTConfig",
    "LSTMConfig",
    "NeuralConfig",
    "NeuralLM",
    "NeuralScorer",
    "RNNConfig",
    "build_neural_model",
    "import_transformers",
    "load_into_transformers",
    "neural_config_class",
    "register_neural_family",
    "shapes_only",
]
