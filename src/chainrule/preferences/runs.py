"""Whole runs behind ``chainrule reward|dpo|rl|prefs``: load, select data, train, save, report.

Each function returns a JSON-serialisable summary and writes its outputs atomically: a tuned
policy is an ordinary model directory (plus ``preference_run.json`` with its settings, history
and evaluation); a reward model is the directory :func:`save_reward_model` writes.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from chainrule.errors import ConfigError
from chainrule.evaluation.textscore import load_model_and_tokenizer
from chainrule.fileio import write_json
from chainrule.models.lora import LoRAConfig
from chainrule.preferences.data import (
    PreferencePair,
    ReadReport,
    encode_pairs,
    read_preferences,
    read_prompts,
    split_pairs,
    write_preferences,
)
from chainrule.preferences.dpo import (
    DPOConfig,
    config_dict,
    implicit_reward_report,
    reference_logps,
    train_dpo,
)
from chainrule.preferences.evaluate import evaluate_policy, plot_reward_vs_kl
from chainrule.preferences.judge import DEFAULT_PRINCIPLE, Judge, label_preferences
from chainrule.preferences.reward_model import (
    RewardModel,
    evaluate_reward_model,
    load_reward_model,
    pairwise_report,
    plot_calibration,
    save_reward_model,
    train_reward_model,
)
from chainrule.preferences.rewards import parse_reward
from chainrule.preferences.rl import RLConfig, train_rl
from chainrule.preferences.rm_features import pair_features, train_reward_head
from chainrule.tokenizers.chat import load_chat_template

SPLITS = ("train", "validation", "test", "all")
Log = Callable[[str], Any] | None


def select_pairs(path: str | os.PathLike, split: str = "all", *, seed: int = 0,
                 limit: int = 0) -> tuple[list[PreferencePair], ReadReport]:
    """The pairs of one split (80/10/10 by SHA-256 of the prompt, :func:`split_of`), first
    ``limit`` of them (0: all)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    report = ReadReport()
    pairs = read_preferences(path, report)
    if split != "all":
        pairs = split_pairs(pairs, seed=seed)[split]
    if limit:
        pairs = pairs[:limit]
    if not pairs:
        raise ConfigError(f"the {split} split of {path} is empty; use more data or --split all.")
    return pairs, report


def save_policy(model: Any, src_dir: str | os.PathLike, out: str | os.PathLike,
                meta: dict[str, Any]) -> Path:
    """A tuned policy as a model directory with its tokenizer/chat template and the run's record."""
    out = Path(out)
    model.save(out)
    for name in ("tokenizer.json", "chat_template.json"):
        if (Path(src_dir) / name).exists():
            shutil.copyfile(Path(src_dir) / name, out / name)
    write_json(out / "preference_run.json", meta)
    return out


def reward_source(reward: str | None, reward_model: str | None):
    """A built-in verifiable reward (its spec) or a trained reward model (its directory)."""
    if bool(reward) == bool(reward_model):
        raise ConfigError("give exactly one reward: --reward NAME (contains:WORD, shorter:N, "
                          "sentiment) or --reward-model DIR.")
    return parse_reward(reward) if reward else load_reward_model(reward_model)


def run_reward_train(model_dir: str, data: str, out: str, *, split: str = "train",
                     eval_split: str = "test", lora_rank: int = 0, epochs: int = 2,
                     lr: float = 1e-3, batch_size: int = 16, max_length: int = 256,
                     limit: int = 0, eval_limit: int = 0, seed: int = 0, plot: str | None = None,
                     pooling: str = "last", l2: float | str | None = None,
                     select_split: str = "validation", select_limit: int = 0,
                     bf16: bool = False, feature_cache: str | None = None,
                     log: Log = None) -> dict[str, Any]:
    """Train a reward model. ``l2`` (a number, or "auto" to choose it on ``select_split``)
    fits a frozen body's head by regularised logistic regression instead of AdamW epochs."""
    body, tok = load_model_and_tokenizer(model_dir)
    lora = LoRAConfig(rank=lora_rank, alpha=2.0 * lora_rank) if lora_rank else None
    rm = RewardModel(body, tok, freeze=lora is None, lora=lora, body_dir=model_dir,
                     pooling=pooling)
    train, report = select_pairs(data, split, seed=seed, limit=limit)
    summary: dict[str, Any] = {"train_pairs": len(train), "identical_skipped": report.identical,
                               "pooling": pooling}
    feats = {"batch_size": batch_size, "bf16": bf16, "cache_dir": feature_cache}
    if l2 is not None:
        val = None
        if l2 == "auto":
            if select_split in (split, eval_split):
                raise ConfigError(f"--l2 auto chooses the penalty on --select-split, which must "
                                  f"differ from the training and held-out splits (not "
                                  f"{select_split!r}).")
            val = rm.encode(select_pairs(data, select_split, seed=seed, limit=select_limit)[0],
                            max_length)
        summary["head"] = train_reward_head(rm, rm.encode(train, max_length), validation=val,
                                            l2=l2, log=log, **feats)
    else:
        summary["loss_per_epoch"] = train_reward_model(rm, rm.encode(train, max_length),
                                                       epochs=epochs, lr=lr,
                                                       batch_size=batch_size, seed=seed, log=log)
    if eval_split and eval_split != split:
        held, _ = select_pairs(data, eval_split, seed=seed, limit=eval_limit)
        held_enc = rm.encode(held, max_length)
        if rm.freeze:
            fc, fr = pair_features(rm, held_enc, **feats)
            with torch.no_grad():
                margins = (rm.head(fc) - rm.head(fr)).squeeze(-1)
            summary["held_out"] = pairwise_report(margins.tolist())
        else:
            summary["held_out"] = evaluate_reward_model(rm, held_enc)
        if plot:
            plot_calibration(summary["held_out"], plot)
    save_reward_model(rm, out)
    write_json(Path(out) / "train_report.json", summary)
    return summary


def run_reward_score(rm_dir: str, data: str, *, split: str = "test", limit: int = 0,
                     max_length: int = 256, seed: int = 0, plot: str | None = None,
                     batch_size: int = 16) -> dict[str, Any]:
    rm = load_reward_model(rm_dir)
    pairs, report = select_pairs(data, split, seed=seed, limit=limit)
    out = evaluate_reward_model(rm, rm.encode(pairs, max_length), batch_size)
    out["identical_skipped"] = report.identical
    if plot:
        plot_calibration(out, plot)
    return out


def run_dpo(model_dir: str, data: str, out: str, cfg: DPOConfig, *, split: str = "train",
            eval_split: str = "test", max_length: int = 256, limit: int = 0,
            eval_limit: int = 0, log: Log = None) -> dict[str, Any]:
    policy, tok = load_model_and_tokenizer(model_dir)
    ctx = min(max_length, policy.max_context or max_length)
    enc = {"bos_id": policy.bos_id, "eos_id": policy.eos_id, "max_length": ctx}
    train, report = select_pairs(data, split, seed=cfg.seed, limit=limit)
    held = None
    if eval_split and eval_split != split:
        held_pairs, _ = select_pairs(data, eval_split, seed=cfg.seed, limit=eval_limit)
        held = encode_pairs(held_pairs, tok, **enc)
        held_ref = reference_logps(policy, held, policy.eos_id, cfg.batch_size)
    history = train_dpo(policy, encode_pairs(train, tok, **enc), cfg, pad_id=policy.eos_id,
                        log=log)
    summary: dict[str, Any] = {"train_pairs": len(train), "identical_skipped": report.identical,
                               "steps": len(history), "config": config_dict(cfg),
                               "final": history[-1],
                               "seconds": sum(h["seconds"] for h in history)}
    if held is not None:
        summary["held_out"] = implicit_reward_report(policy, held, held_ref, cfg, policy.eos_id)
    save_policy(policy, model_dir, out, {"method": "dpo", **summary, "history": history})
    return summary


def run_rl(model_dir: str, prompts: str, out: str, cfg: RLConfig, *, reward: str | None = None,
           reward_model: str | None = None, eval_prompts: str | None = None,
           plot: str | None = None, log: Log = None) -> dict[str, Any]:
    policy, tok = load_model_and_tokenizer(model_dir)
    source = reward_source(reward, reward_model)
    train_prompts = read_prompts(prompts)
    start = copy.deepcopy(policy)
    history = train_rl(policy, tok, train_prompts, source, cfg, reference=start, log=log)
    summary: dict[str, Any] = {"algo": cfg.algo, "prompts": len(train_prompts),
                               "config": asdict(cfg), "final": history[-1],
                               "seconds": sum(h["seconds"] for h in history)}
    held = read_prompts(eval_prompts) if eval_prompts else train_prompts
    summary["evaluation"] = evaluate_policy(policy, start, tok, held, source,
                                            max_new_tokens=cfg.max_new_tokens,
                                            temperature=cfg.temperature, seed=cfg.seed + 1)
    if plot:
        plot_reward_vs_kl({cfg.algo: history}, plot)
    save_policy(policy, model_dir, out, {"method": cfg.algo, **summary, "history": history})
    return summary


def load_judge(judge_dir: str, principle: str = DEFAULT_PRINCIPLE) -> Judge:
    model, tok = load_model_and_tokenizer(judge_dir)
    has_template = (Path(judge_dir) / "chat_template.json").exists()
    template = load_chat_template(judge_dir) if has_template else None
    return Judge(model, tok, template, principle)


def run_label(model_dir: str, judge_dir: str, prompts: str, out: str, *,
              reward: str | None = None, principle: str = DEFAULT_PRINCIPLE,
              max_new_tokens: int = 32, temperature: float = 1.0, limit: int = 0,
              seed: int = 0) -> dict[str, Any]:
    policy, tok = load_model_and_tokenizer(model_dir)
    judge = load_judge(judge_dir, principle)
    ps = read_prompts(prompts)
    ps = ps[:limit] if limit else ps
    verifiable = parse_reward(reward) if reward else None
    pairs, extra, report = label_preferences(policy, tok, ps, judge, reward=verifiable,
                                             max_new_tokens=max_new_tokens,
                                             temperature=temperature, seed=seed)
    if not pairs:
        raise ConfigError("every pair of samples was identical, so nothing was labelled; raise "
                          "--temperature or --max-tokens.")
    write_preferences(pairs, out, extra)
    return asdict(report)


def run_judge_agreement(judge_dir: str, data: str, *, split: str = "test", limit: int = 0,
                        principle: str = DEFAULT_PRINCIPLE, seed: int = 0) -> dict[str, Any]:
    """The judge's agreement with labelled pairs (human labels of HH-RLHF)."""
    from chainrule.preferences.judge import judge_agreement

    pairs, report = select_pairs(data, split, seed=seed, limit=limit)
    out = judge_agreement(load_judge(judge_dir, principle), pairs)
    out["identical_skipped"] = report.identical
    return out


def run_eval(policy_dir: str, start_dir: str, prompts: str, *, reward: str | None = None,
             reward_model: str | None = None, judge_dir: str | None = None,
             max_new_tokens: int = 16, temperature: float = 1.0, seed: int = 0
             ) -> dict[str, Any]:
    policy, tok = load_model_and_tokenizer(policy_dir)
    start, _ = load_model_and_tokenizer(start_dir)
    judge = load_judge(judge_dir) if judge_dir else None
    return evaluate_policy(policy, start, tok, read_prompts(prompts),
                           reward_source(reward, reward_model), judge=judge,
                           max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)


def plot_histories(run_dirs: list[str], path: str) -> Path:
    """Reward against KL for several saved RL runs (their ``preference_run.json``)."""
    from chainrule.fileio import read_json

    hist = {}
    for d in run_dirs:
        meta = read_json(Path(d) / "preference_run.json", what="preference run record")
        if "kl" not in (meta.get("history") or [{}])[0]:
            raise ConfigError(f"{d} is not an RL run (its history has no KL); plot `rl` runs.")
        hist[f"{Path(d).name} ({meta['method']})"] = meta["history"]
    return plot_reward_vs_kl(hist, path)


__all__ = ["SPLITS", "load_judge", "plot_histories", "reward_source", "run_dpo", "run_eval",
           "run_judge_agreement", "run_label", "run_reward_score", "run_reward_train", "run_rl",
           "save_policy", "select_pairs"]
