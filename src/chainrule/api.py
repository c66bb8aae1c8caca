"""``chainrule.load(dir)``: a saved model with its tokenizer, ready to generate and score.

    >>> lm = chainrule.load("chainrule-demo/models/gpt")          # doctest: +SKIP
    >>> lm.generate("the king", max_new_tokens=10, seed=1)[0].text  # doctest: +SKIP
    >>> lm.score("the king is dead").total                          # doctest: +SKIP
    >>> lm.surprisal("the king is dead")[0].words                   # doctest: +SKIP

The object holds ``.model`` (any family), ``.tokenizer``, ``.config`` (the parsed
``config.json``, an attribute) and, for a conditional model, ``.source_tokenizer``. Its methods
are thin: they call the same library functions as the command line (``chainrule generate``,
``eval surprisal``), with the same argument names as Python elsewhere in chainrule and the
transformers aliases ``GenerationConfig`` accepts (``do_sample``, ``num_return_sequences``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chainrule.errors import ConfigError


class LoadedModel:
    """A model directory, loaded: ``model``, ``tokenizer``, ``config`` and shortcuts."""

    def __init__(self, directory: str | os.PathLike, device: str | None = None):
        from chainrule.evaluation.textscore import load_model_and_tokenizer, load_source_tokenizer
        from chainrule.models.base import read_model_config

        self.directory = Path(directory)
        self.model, self.tokenizer = load_model_and_tokenizer(self.directory)
        self.config: dict[str, Any] = read_model_config(self.directory)
        self.source_tokenizer = (load_source_tokenizer(self.directory, self.tokenizer)
                                 if self.model.conditional else None)
        if device is not None:
            if not hasattr(self.model, "to"):
                raise ConfigError(f"device= applies to neural models, not to a "
                                  f"{self.model.family} model.")
            from chainrule.training.build import resolve_device

            self.model.to(resolve_device(device))

    def __repr__(self) -> str:
        return (f"LoadedModel({str(self.directory)!r}, family={self.model.family!r}, "
                f"vocab_size={self.model.vocab_size})")

    def generate(self, prompts: str | Sequence[str] = "", config: Any = None, *,
                 sources: Sequence[str] | None = None, **settings: Any) -> list:
        """Completions of one prompt (a list of ``config.n`` ``Completion``), or of several
        (a list of such lists). ``settings`` are ``GenerationConfig`` fields (``max_new_tokens``,
        ``temperature``, ``strategy``, ``num_beams``, ``n``, ``seed``, ``do_sample``, ...)."""
        from chainrule.decoding import GenerationConfig, generate

        if config is not None and settings:
            raise ConfigError("pass either a GenerationConfig or keyword settings, not both.")
        cfg = config or GenerationConfig(**settings)
        one = isinstance(prompts, str)
        out = generate(self.model, [prompts] if one else list(prompts), cfg,
                       tokenizer=self.tokenizer, sources=sources,
                       source_tokenizer=self.source_tokenizer)
        return out[0] if one else out

    def score(self, texts: str | Sequence[str], *, add_eos: bool = False):
        """Per-token log-probabilities (``TextScore``: ids, tokens, logprobs, total) of a text, or
        a list of them for several texts."""
        from chainrule.decoding.scoring import score_text

        if isinstance(texts, str):
            return score_text(self.model, self.tokenizer, texts, add_eos=add_eos)
        return [score_text(self.model, self.tokenizer, t, add_eos=add_eos) for t in texts]

    def surprisal(self, sentences: str | Sequence[str], *, eos: bool = True,
                  allow_unk: bool = True) -> list:
        """Token and word surprisals in bits (``SentenceSurprisal``) of each sentence."""
        from chainrule.evaluation.surprisal import sentence_surprisals

        if isinstance(sentences, str):
            sentences = [sentences]
        return sentence_surprisals(self.model, self.tokenizer, sentences, eos=eos,
                                   allow_unk=allow_unk)


def load(directory: str | os.PathLike, *, device: str | None = None) -> LoadedModel:
    """Load a model directory (any family) with its tokenizer: see :class:`LoadedModel`."""
    return LoadedModel(directory, device)


__all__ = ["LoadedModel", "load"]
