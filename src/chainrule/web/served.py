"""The models a playground serves: loaded once at start, each with a lock, and the limits.

Model directories are fixed when the server starts; a request names a model by the short name
shown on the page (its directory's name), never by a path, so nothing a request says reaches
the file system.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from chainrule.errors import ConfigError

VIEWS = ("next-word", "surprisal", "attention", "generate")


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (the server refuses more with a 413 or 400)."""

    max_body_bytes: int = 1_000_000  # one request body (the BPE corpus is the largest)
    max_context_chars: int = 4_000  # next word: the typed context
    max_text_chars: int = 100_000  # surprisal: about 15,000 words
    max_attention_tokens: int = 96  # attention: tokens of the sentence (with <s>, </s>)
    max_new_tokens: int = 200  # generate: per output
    max_beams: int = 8
    max_corpus_chars: int = 100_000  # BPE: the pasted corpus (the loop is the slow Python one)
    max_merges: int = 300
    top_n: int = 10  # next word: candidates shown
    alternatives: int = 5  # surprisal: the top alternatives of each token


DEFAULT_LIMITS = Limits()


class CannotDo(ConfigError):
    """A model cannot do a view (an n-gram has no attention): the API answers 422."""


@dataclass
class ServedModel:
    """One loaded model directory: its short name, the model, its tokenizer(s) and a lock.

    Every computation on the model holds ``lock``: decoding state, caches and the attention
    capture are not safe to share between threads.
    """

    name: str
    directory: Path
    model: object
    tokenizer: object
    source_tokenizer: object | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def family(self) -> str:
        return str(getattr(self.model, "family", type(self.model).__name__))

    def can(self, view: str) -> str | None:
        """None when the model can do ``view``, else one sentence saying why not."""
        m = self.model
        generator = hasattr(m, "start") and hasattr(m, "logprobs")
        if view in ("next-word", "generate") and not generator:
            return (f"{self.name} ({self.family}) scores text from both sides but cannot "
                    "predict a next word; choose a left-to-right model.")
        if view == "surprisal" and getattr(m, "conditional", False):
            return (f"{self.name} is a conditional model (it needs a source sentence); the "
                    "surprisal view scores plain text; use the next-word or generate view "
                    "with a source.")
        if view == "attention" and not _has_attention(m):
            return (f"{self.name} ({self.family}) has no attention layers; attention needs a "
                    "transformer (gpt, bert, transformer-ed).")
        return None

    def describe(self) -> dict:
        m = self.model
        return {
            "name": self.name,
            "family": self.family,
            "vocab_size": int(m.vocab_size),
            "tokenizer": str(getattr(self.tokenizer, "kind", "")),
            "conditional": bool(getattr(m, "conditional", False)),
            "masked": bool(getattr(m, "masked", False)),
            "max_context": getattr(m, "max_context", None),
            "views": {v: (self.can(v) is None) for v in VIEWS},
            "why_not": {v: self.can(v) for v in VIEWS if self.can(v)},
        }


def _has_attention(model) -> bool:
    import torch

    if callable(getattr(model, "attention_maps", None)):
        return True
    if not isinstance(model, torch.nn.Module):
        return False
    return any(type(m).__name__.lower().endswith(("attention", "attn"))
               or hasattr(m, "attn") for m in model.modules())


def load_served(directories: list[str | os.PathLike], device: str | None = None
                ) -> list[ServedModel]:
    """Load every model directory (refusing all the bad ones in one error) with unique names."""
    from chainrule.api import LoadedModel
    from chainrule.errors import ChainruleError

    out: list[ServedModel] = []
    problems = []
    names: set[str] = set()
    for d in directories:
        path = Path(d)
        if not path.is_dir():
            problems.append(f"{str(path)!r} is not a model directory; pass directories written "
                            "by `chainrule train` (or the ladder's models/<rung>).")
            continue
        try:
            lm = LoadedModel(path, device)
        except ChainruleError as e:
            problems.append(str(e))
            continue
        name = path.resolve().name or "model"
        base, k = name, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.add(name)
        out.append(ServedModel(name, path, lm.model, lm.tokenizer, lm.source_tokenizer))
    if problems:
        raise ConfigError(problems)
    return out


__all__ = ["DEFAULT_LIMITS", "VIEWS", "CannotDo", "Limits", "ServedModel", "load_served"]
