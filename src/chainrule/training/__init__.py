"""The one training engine for every neural family, with pluggable objectives.

    from chainrule.training import make_config, train
    cfg = make_config("gpt", "shakespeare-char-cpu", ["max_iters=200"])
    summary = train(cfg, train_ids, val_ids, "out/gpt", tokenizer=tok)

See ``docs/training.md`` for the checkpoint layout, presets, resume and torchrun.
"""

from chainrule.training.config import (
    TrainConfig,
    describe_keys,
    load_preset,
    make_config,
    parse_overrides,
    preset_names,
)


def __getattr__(name: str):
    # the loop imports torch; keep `chainrule train --help` (which reads the config) light
    if name in ("train", "get_lr"):
        from chainrule.training import loop

        return getattr(loop, name)
    if name in ("Objective", "NextTokenCE", "CompletionCE", "MaskedLMLoss", "TrainBatch"):
        from chainrule.training import objectives

        return getattr(objectives, name)
    raise AttributeError(f"module 'chainrule.training' has no attribute {name!r}")


__all__ = [
    "CompletionCE",
    "MaskedLMLoss",
    "NextTokenCE",
    "Objective",
    "TrainBatch",
    "TrainConfig",
    "describe_keys",
    "get_lr",
    "load_preset",
    "make_config",
    "parse_overrides",
    "preset_names",
    "train",
]
