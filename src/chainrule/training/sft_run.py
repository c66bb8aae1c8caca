"""A supervised fine-tuning run: a model directory + chats -> a fine-tuned model directory.

:func:`finetune` loads the model and its tokenizer and chat template, encodes the chats
(:mod:`chainrule.training.sft`), optionally puts LoRA adapters into the model
(:mod:`chainrule.models.lora`), and trains through the one training loop
(:func:`chainrule.training.loop.train`: checkpoints, exact resume, evaluation on held-out
examples, gradient accumulation, bf16 on GPU). The output is a model directory:
``config.json`` (with a ``"lora"`` entry when adapters are held unmerged),
``model.safetensors``, ``tokenizer.json``, ``chat_template.json`` (copied), ``sft.json`` (what
was done), ``metrics.jsonl``; and with LoRA, ``adapter/`` -- the adapter alone.
"""

from __future__ import annotations

import inspect
import math
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from chainrule.errors import ConfigError
from chainrule.fileio import read_json, write_json
from chainrule.models.base import load_model
from chainrule.models.lora import LoRAConfig, add_lora, base_fingerprint, save_adapter
from chainrule.tokenizers import load_tokenizer
from chainrule.tokenizers.chat import CHAT_TEMPLATE_FILE, load_chat_template
from chainrule.training.checkpoint import find_checkpoint, read_train_state
from chainrule.training.config import TrainConfig, make_config
from chainrule.training.objectives import CompletionCE
from chainrule.training.sft import SFTData, encode_examples, split_examples

#: Training settings of a fine-tuning run unless overridden (KEY=VALUE, as ``chainrule train``)
SFT_DEFAULTS: dict[str, Any] = {
    "max_iters": 200, "batch_size": 8, "learning_rate": 1e-4, "min_lr": 1e-5,
    "warmup_iters": 10, "lr_decay_iters": 200, "weight_decay": 0.0, "eval_interval": 50,
    "log_interval": 10, "val_fraction": 0.1, "dropout": 0.0,
}
LORA_LEARNING_RATE = 1e-3
DEFAULT_BLOCK = 512  # rows of at most this many tokens unless block_size= says otherwise


def _keys(overrides: dict[str, Any] | list[str] | None) -> set[str]:
    if isinstance(overrides, dict):
        return set(overrides)
    return {o.partition("=")[0] for o in overrides or []}


def sft_config(model: Any, overrides: dict[str, Any] | list[str] | None = None, *,
               lora: bool = False, base: dict[str, Any] | None = None) -> TrainConfig:
    """The run's :class:`TrainConfig`: :data:`SFT_DEFAULTS`, then ``overrides``."""
    start = dict(SFT_DEFAULTS)
    start["block_size"] = min(int(model.max_context or DEFAULT_BLOCK), DEFAULT_BLOCK)
    if lora:
        start["learning_rate"], start["min_lr"] = LORA_LEARNING_RATE, LORA_LEARNING_RATE / 10
    start.pop("dropout")
    cfg = make_config(model.family, None, overrides, base=base or start)
    if cfg.block_size > (model.max_context or cfg.block_size):
        raise ConfigError(f"block_size {cfg.block_size} is longer than the model's context "
                          f"({model.max_context}); choose block_size <= {model.max_context}.")
    if "lr_decay_iters" not in _keys(overrides) and base is None:
        cfg = cfg.replace(lr_decay_iters=cfg.max_iters)
    return cfg


def finetune(
    model_dir: str | os.PathLike,
    conversations: Sequence[Sequence[dict[str, str]]],
    out_dir: str | os.PathLike,
    *,
    overrides: dict[str, Any] | list[str] | None = None,
    val_conversations: Sequence[Sequence[dict[str, str]]] | None = None,
    template: str | None = None,
    completion_only: bool = True,
    pack: bool = True,
    too_long: str = "cut",
    lora: LoRAConfig | None = None,
    resume: bool = False,
    on_evaluate: Callable[[Any, int], dict[str, Any] | None] | None = None,
    sample_hook: Callable[[list], Callable[[Any, int], dict[str, Any] | None]] | None = None,
    progress: bool = True,
    plot: bool = True,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune the model in ``model_dir`` on ``conversations``; write ``out_dir``.

    Args:
        model_dir: a generator's model directory (a GPT trained here, an imported model).
        conversations: lists of ``{"role", "content"}`` messages (see
            :func:`chainrule.training.sft.read_sft_jsonl`).
        out_dir: the fine-tuned model directory.
        overrides: training keys (``max_iters``, ``learning_rate``, ``block_size``...).
        val_conversations: held-out chats; None holds out ``val_fraction`` of ``conversations``.
        template: ``chatml`` / ``plain`` (default: the model's own, else plain).
        completion_only: loss on the assistant's answers only (False: every token).
        pack: pack examples into rows with document masking (False: one example per row).
        too_long: ``"cut"`` (counted) or ``"refuse"`` examples longer than ``block_size``.
        lora: train LoRA adapters only (None: every weight).
        resume: continue the run in ``out_dir`` exactly.
        on_evaluate: called at every evaluation as ``on_evaluate(model, step)``; a dict it
            returns goes into that evaluation's ``metrics.jsonl`` record.
        sample_hook: instead of ``on_evaluate``: called once with the held-out conversations,
            returns the ``on_evaluate`` (e.g. one that answers a few of them).
        report: receives one-line notes (counts of examples, trainable parameters).
    Returns:
        The training summary plus ``sft`` (what was encoded, trainable share).
    """
    say = report or (lambda _msg: None)
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    base_model = load_model(model_dir)
    if not hasattr(base_model, "start") or not isinstance(base_model, torch.nn.Module):
        raise ConfigError(f"{str(model_dir)!r} holds a {base_model.family} model; fine-tuning "
                          "needs a neural left-to-right model (gpt, lstm, ...).")
    if pack and "attn_mask" not in inspect.signature(base_model.forward).parameters:
        say(f"a {base_model.family} model takes no attention mask, so examples are not packed "
            "(one per row, padded).")
        pack = False
    tokenizer = load_tokenizer(model_dir / "tokenizer.json")
    chat = load_chat_template(model_dir, template)
    saved = None
    if resume:
        found = find_checkpoint(out_dir)
        if found is None:
            raise ConfigError(f"--resume was given but {str(out_dir)!r} holds no training "
                              "checkpoint; drop --resume to start a new run.")
        saved = read_train_state(found).get("config")
        meta = read_json(out_dir / "sft.json", what="fine-tuning record")
        lora = LoRAConfig.from_dict(meta["lora"]) if meta.get("lora") else None
    cfg = sft_config(base_model, overrides, lora=lora is not None, base=saved)
    if val_conversations is None:
        conversations, val_conversations = split_examples(list(conversations),
                                                          cfg.val_fraction, cfg.seed)
    kw = {"bos_id": base_model.bos_id, "eos_id": base_model.eos_id, "max_length": cfg.block_size,
              "too_long": too_long, "completion_only": completion_only}
    train_ex, rep = encode_examples(conversations, tokenizer, chat, **kw)
    val_ex, vrep = (encode_examples(val_conversations, tokenizer, chat, **kw)
                    if val_conversations else ([], None))
    say(f"examples: {rep.kept} train, {len(val_ex)} held out; template {chat.name}; "
        f"cut to {cfg.block_size + 1} tokens: {rep.cut + (vrep.cut if vrep else 0)}, dropped "
        f"(no answer left): {rep.dropped + (vrep.dropped if vrep else 0)}")
    train_data = SFTData(train_ex, cfg.block_size, pack=pack, pad_id=base_model.eos_id)
    val_data = (SFTData(val_ex, cfg.block_size, pack=pack, pad_id=base_model.eos_id)
                if val_ex else None)
    if "eval_iters" not in _keys(overrides) and saved is None:
        rows = max(len(train_data), len(val_data) if val_data else 0)
        cfg = cfg.replace(eval_iters=max(1, min(50, math.ceil(rows / cfg.batch_size))))
    if sample_hook is not None:
        on_evaluate = sample_hook(list(val_conversations or conversations))
    fingerprint = base_fingerprint(base_model)
    del base_model

    def factory(_cfg, _vocab, _bos, _eos):
        model = load_model(model_dir)
        if lora is not None:
            add_lora(model, lora, seed=cfg.seed)
        return model

    probe = factory(cfg, 0, None, None)
    n_train = sum(p.numel() for p in probe.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in probe.parameters())
    del probe
    say(f"trainable parameters: {n_train:,} of {n_all:,} ({100 * n_train / n_all:.2f}%)"
        + (f"; LoRA r={lora.rank} alpha={lora.alpha} on {','.join(lora.targets)}"
           if lora else ""))
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"format": "chainrule-sft", "version": 1, "base_model": str(model_dir),
              "base_fingerprint": fingerprint, "template": chat.name, "pack": pack,
              "completion_only": completion_only, "too_long": too_long,
              "lora": lora.to_dict() if lora else None,
              "examples": {"train": rep.kept, "held_out": len(val_ex),
                           "cut": rep.cut + (vrep.cut if vrep else 0),
                           "dropped": rep.dropped + (vrep.dropped if vrep else 0)},
              "rows": {"train": len(train_data), "held_out": len(val_data) if val_data else 0},
              "answer_tokens": train_data.answer_tokens,
              "trainable_parameters": n_train, "parameters": n_all}
    write_json(out_dir / "sft.json", record)
    from chainrule.training.loop import train

    summary = train(cfg, train_data, val_data, out_dir, tokenizer=tokenizer,
                    model_factory=factory, objective=CompletionCE(), resume=resume,
                    progress=progress, plot=plot, on_evaluate=on_evaluate)
    if (model_dir / CHAT_TEMPLATE_FILE).exists():
        shutil.copyfile(model_dir / CHAT_TEMPLATE_FILE, out_dir / CHAT_TEMPLATE_FILE)
    if lora is not None:  # the best model's adapter alone, named by its base
        save_adapter(load_model(out_dir), out_dir / "adapter", fingerprint)
    summary["sft"] = record
    return summary


__all__ = ["SFT_DEFAULTS", "finetune", "sft_config"]
