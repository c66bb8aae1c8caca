"""How each rung of the ladder is trained: thin adapters over the families' public APIs.

Each trainer takes the shared :class:`~chainrule.evaluation.ladder.LadderData` and returns a
fitted model and the directory it already lives in (``None`` when the ladder should save it).
A rung whose family is not part of this install raises :class:`RungSkipped`, which the ladder
reports instead of failing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.errors import ChainruleError

MIN_STEPS = 40  # a time budget never buys fewer steps than this, even on a crowded machine


class RungSkipped(ChainruleError):
    """This rung cannot run here (its family is missing); the message says why."""


# The ladder's neural settings: small enough to train on a CPU in the demo's minutes, with the
# n-gram boundary convention (<s> line </s>, lines concatenated) so perplexities compare.
NEURAL_DEFAULTS: dict[str, dict[str, Any]] = {
    # ~256 tokens per step: on a CPU, many small steps beat few large ones in a short budget
    "ffnn": {"order": 5, "n_embd": 64, "n_hidden": 128, "dropout": 0.1,
             "learning_rate": 3e-3, "block_size": 16, "batch_size": 16},
    "rnn": {"n_layer": 1, "n_embd": 64, "n_hidden": 128, "dropout": 0.1,
            "learning_rate": 3e-3, "block_size": 16, "batch_size": 16},
    "lstm": {"n_layer": 1, "n_embd": 128, "n_hidden": 128, "dropout": 0.1,
             "learning_rate": 3e-3, "block_size": 16, "batch_size": 16},
    "gpt": {"n_layer": 2, "n_head": 2, "n_embd": 64, "dropout": 0.1,
            "learning_rate": 3e-3, "block_size": 32, "batch_size": 8},
}


def train_tokenizer_for(kind: str, lines: list[str], *, vocab_size: int = 0, min_count: int = 0,
                        lowercase: bool = False, word_mode: str = "regex"):
    """Train the ladder's one tokenizer of ``kind`` on the training lines."""
    try:
        from chainrule.tokenizers import train_tokenizer
    except ImportError:
        raise RungSkipped(
            "the tokenizers are not available in this install of chainrule; the ladder needs "
            "chainrule.tokenizers.train_tokenizer."
        ) from None
    kwargs: dict[str, Any] = {}
    if vocab_size:
        kwargs["vocab_size"] = vocab_size
    if min_count and kind == "word":
        kwargs["min_count"] = min_count
    if lowercase and kind == "word":
        kwargs["lowercase"] = True
    if kind == "word" and word_mode != "regex":
        kwargs["mode"] = word_mode
    return train_tokenizer(kind, ["\n".join(lines)], **kwargs)


# -- reference and n-gram rungs ---------------------------------------------------------------
def _uniform(data) -> tuple[Any, Path | None, dict]:
    from chainrule.models.reference import UniformModel

    tok = data.tokenizer
    return UniformModel(tok.vocab_size, tok.bos_id, tok.eos_id), None, {}


def _ngram(order: int) -> Callable:
    def trainer(data) -> tuple[Any, Path | None, dict]:
        try:
            from chainrule.models import ngram

            ngram.NgramModel  # noqa: B018  (the package may be present but incomplete)
        except (ImportError, AttributeError):
            if order == 1:  # the reference unigram (add-one) stands in for the n-gram family
                from chainrule.models.reference import UnigramModel

                tok = data.tokenizer
                m = UnigramModel(tok.vocab_size, tok.bos_id, tok.eos_id).fit(data.train_seqs)
                return m, None, {"note": "add-one"}
            raise RungSkipped("the n-gram family is not available in this install") from None
        return _fit_ngram(ngram, order, data), None, {}

    return trainer


def _fit_ngram(ngram, order: int, data):
    """Interpolated modified Kneser-Ney of ``order`` on the framed training ids."""
    tok = data.tokenizer
    model = ngram.NgramModel(order, "mkn", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                             eos_id=tok.eos_id, unk_id=tok.unk_id, pad_id=tok.pad_id)
    return model.fit(data.train_seqs)


# -- neural rungs -----------------------------------------------------------------------------
def _neural(family: str) -> Callable:
    def trainer(data) -> tuple[Any, Path | None, dict]:
        try:
            from chainrule.models.base import get_family
            from chainrule.training.config import TrainConfig  # noqa: F401  (available?)
            from chainrule.training.loop import train

            get_family(family)
        except (ImportError, ChainruleError) as e:
            raise RungSkipped(f"the {family} family or the training engine is not available "
                              f"in this install ({e})") from None
        cfg = data.config
        train_ids = _stream(data.train_seqs)
        val_ids = _stream(data.valid_seqs) if data.valid_seqs else None
        directory = data.out_dir / "models" / family
        tc = _train_config(family, data, cfg.neural_iters)
        if val_ids is not None and len(val_ids) <= tc.block_size + 1:
            val_ids = None
        _fresh(directory)  # a fresh run each time (the ladder is not resumable)
        timed = cfg.neural_seconds > 0 and "max_iters" not in cfg.neural_overrides.get(family, {})
        if timed:
            steps = _train_for(family, data, train_ids, val_ids, directory, cfg.neural_seconds)
        else:
            summary = train(tc, train_ids, val_ids, directory, tokenizer=data.tokenizer,
                            progress=False, plot=False)
            steps = int(summary.get("steps", 0))
        from chainrule.models.base import load_model

        return load_model(directory), directory, {"steps": steps}

    return trainer


def _train_for(family: str, data, train_ids, val_ids, directory: Path, seconds: float) -> int:
    """Train within a time budget: a first chunk of ``MIN_STEPS`` steps measures the speed,
    the step total (and so the LR schedule) is planned from it, and the rest runs in chunks
    (resuming exactly) that stop once the budget is spent -- so a machine that slows down
    mid-run overruns by one chunk at most."""
    from chainrule.training.loop import train

    t0 = time.perf_counter()
    done = MIN_STEPS
    cap = data.config.neural_iters
    first = _train_config(family, data, cap, max_iters=min(done, cap), warmup_iters=done // 2)
    train(first, train_ids, val_ids, directory, tokenizer=data.tokenizer, progress=False,
          plot=False)
    per_step = (time.perf_counter() - t0) / done  # includes start-up: errs on the safe side
    total = int(min(cap, done + max(0.0, seconds - (time.perf_counter() - t0)) / per_step))
    chunk = max(MIN_STEPS, (total - done + 2) // 3)
    while done < total and time.perf_counter() - t0 < seconds:
        done = min(total, done + chunk)
        cfg = _train_config(family, data, total, max_iters=done, warmup_iters=MIN_STEPS // 2)
        train(cfg, train_ids, val_ids, directory, tokenizer=data.tokenizer, resume=True,
              progress=False, plot=False)
    return done


def _fresh(directory: Path) -> None:
    import shutil

    if directory.exists():
        shutil.rmtree(directory)


def _train_config(family: str, data, iters: int, **extra: Any):
    """The training configuration of a neural rung: the ladder's defaults, then the user's."""
    import dataclasses

    from chainrule.training.config import TrainConfig

    cfg = data.config
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    # the ladder's defaults only where this version's TrainConfig has the key; the user's
    # overrides always (TrainConfig reports unknown keys)
    settings = {k: v for k, v in NEURAL_DEFAULTS[family].items() if k in known}
    settings.update(cfg.neural_overrides.get(family, {}))
    iters = int(settings.pop("max_iters", iters))
    base = {
        "family": family, "max_iters": iters, "lr_decay_iters": iters,
        "warmup_iters": min(100, max(1, iters // 10)), "eval_interval": iters, "eval_iters": 4,
        "log_interval": max(1, iters), "boundaries": "lines", "tokenizer_kind": cfg.tokenizer_kind,
        "seed": cfg.seed, "device": "cpu",
    }
    base.update(settings)
    base.update(extra)
    return TrainConfig(**base)


def _stream(seqs: list[list[int]]) -> np.ndarray:
    """``<s> a b </s> <s> c </s> ...``: the training engine's ``boundaries="lines"`` layout."""
    return np.fromiter((t for s in seqs for t in s), dtype=np.int32)


TRAINERS: dict[str, Callable] = {
    "uniform": _uniform,
    "unigram": _ngram(1),
    "bigram": _ngram(2),
    "trigram": _ngram(3),
    "kn5": _ngram(5),
    "ffnn": _neural("ffnn"),
    "rnn": _neural("rnn"),
    "lstm": _neural("lstm"),
    "gpt": _neural("gpt"),
}

__all__ = ["NEURAL_DEFAULTS", "TRAINERS", "RungSkipped", "train_tokenizer_for"]
