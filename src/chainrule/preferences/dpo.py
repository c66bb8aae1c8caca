"""Direct preference optimisation (Rafailov et al. 2023): fine-tune a policy on preference pairs
against a frozen reference, with no reward model and no sampling.

    loss = -log sigma(beta [(log pi(y_c|x) - log ref(y_c|x)) - (log pi(y_r|x) - log ref(y_r|x))])

Log-probabilities are summed over the response tokens only (the prompt is context). The
reference is the policy as it starts; its log-probabilities never change, so they are computed
once before training. With LoRA only the adapters train (and the reference is the base).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from chainrule.errors import ConfigError
from chainrule.models.lora import LoRAConfig, add_lora
from chainrule.preferences.data import EncodedPair, pad_batch
from chainrule.training.preference_losses import DPO_LOSSES, dpo_loss, response_logprobs


@dataclass(frozen=True)
class DPOConfig:
    """DPO settings.

    Attributes:
        beta: strength of the implicit KL constraint (larger: stay nearer the reference).
        loss_type: ``sigmoid`` (DPO) or ``ipo``.
        epochs: passes over the pairs.
        batch_size: pairs per optimiser step.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        lora_rank: train LoRA adapters of this rank instead of all weights (0: full).
        lora_targets: the layers LoRA adapts.
        seed: shuffling (and LoRA initialisation).
        max_steps: stop after this many steps (0: no limit).
    """

    beta: float = 0.1
    loss_type: str = "sigmoid"
    epochs: int = 1
    batch_size: int = 8
    lr: float = 1e-5
    weight_decay: float = 0.0
    lora_rank: int = 0
    lora_targets: tuple[str, ...] = ("q", "v")
    seed: int = 0
    max_steps: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.beta <= 0:
            problems.append(f"beta must be > 0, got {self.beta}.")
        if self.loss_type not in DPO_LOSSES:
            problems.append(f"loss_type must be one of {', '.join(DPO_LOSSES)}, got "
                            f"{self.loss_type!r}.")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            problems.append("epochs and batch_size must be >= 1 and lr > 0.")
        if problems:
            raise ConfigError(problems)


def _batch_logps(model: torch.nn.Module, batch: Sequence[EncodedPair], pad: int):
    """Summed response log-probs of (chosen, rejected) for a batch of pairs, one forward pass."""
    rows = [e.chosen for e in batch] + [e.rejected for e in batch]
    masks = [e.chosen_mask for e in batch] + [e.rejected_mask for e in batch]
    device = next(model.parameters()).device
    ids, mask, _ = pad_batch(rows, masks, pad, device)
    logps = response_logprobs(model, ids, mask)
    return logps[: len(batch)], logps[len(batch):]


@torch.no_grad()
def reference_logps(model: torch.nn.Module, pairs: Sequence[EncodedPair], pad: int,
                    batch_size: int = 8) -> torch.Tensor:
    """(N, 2) summed response log-probs of (chosen, rejected) under ``model`` (eval mode)."""
    was = model.training
    model.eval()
    out = []
    for i in range(0, len(pairs), batch_size):
        c, r = _batch_logps(model, pairs[i : i + batch_size], pad)
        out.append(torch.stack([c, r], -1).cpu())
    model.train(was)
    return torch.cat(out)


def train_dpo(policy: torch.nn.Module, pairs: Sequence[EncodedPair], cfg: DPOConfig, *,
              pad_id: int, reference: torch.nn.Module | None = None,
              log: Callable[[str], Any] | None = None) -> list[dict[str, float]]:
    """Train ``policy`` in place with DPO; one record per step (loss, implicit reward accuracy,
    mean margin and chosen/rejected rewards, seconds).

    ``reference`` defaults to the policy as it is now (its log-probs are taken before any step).
    """
    if not pairs:
        raise ConfigError("no preference pairs to train on.")
    ref = reference_logps(reference if reference is not None else policy, pairs, pad_id,
                          cfg.batch_size)
    if cfg.lora_rank:
        add_lora(policy, LoRAConfig(rank=cfg.lora_rank, alpha=2.0 * cfg.lora_rank,
                                    targets=cfg.lora_targets), seed=cfg.seed)
    params = [p for p in policy.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the policy has no trainable parameters.")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, float]] = []
    policy.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(pairs), generator=g).tolist()
        for i in range(0, len(order), cfg.batch_size):
            t0 = time.perf_counter()
            idx = order[i : i + cfg.batch_size]
            pc, pr = _batch_logps(policy, [pairs[j] for j in idx], pad_id)
            r = ref[idx].to(pc.device)
            out = dpo_loss(pc, pr, r[:, 0], r[:, 1], beta=cfg.beta, loss_type=cfg.loss_type)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            rec = {"step": len(history) + 1, "epoch": epoch + 1, "loss": float(out.loss.detach()),
                   "reward_accuracy": out.accuracy, "margin": float(out.margins.mean()),
                   "chosen_reward": float(out.chosen_rewards.mean()),
                   "rejected_reward": float(out.rejected_rewards.mean()),
                   "seconds": time.perf_counter() - t0}
            history.append(rec)
            if log and (len(history) % 10 == 0 or len(history) == 1):
                log(f"dpo step {rec['step']}: loss {rec['loss']:.4f}, implicit reward accuracy "
                    f"{rec['reward_accuracy']:.2f}, margin {rec['margin']:.3f}")
            if cfg.max_steps and len(history) >= cfg.max_steps:
                policy.eval()
                return history
    policy.eval()
    return history


@torch.no_grad()
def implicit_reward_report(policy: torch.nn.Module, pairs: Sequence[EncodedPair],
                           ref: torch.Tensor, cfg: DPOConfig, pad_id: int) -> dict[str, float]:
    """Held-out implicit reward accuracy and mean margin of a trained policy."""
    pol = reference_logps(policy, pairs, pad_id, cfg.batch_size)
    out = dpo_loss(pol[:, 0], pol[:, 1], ref[:, 0], ref[:, 1], beta=cfg.beta,
                   loss_type=cfg.loss_type)
    return {"pairs": len(pairs), "loss": float(out.loss.detach()), "reward_accuracy": out.accuracy,
            "margin": float(out.margins.mean())}


def config_dict(cfg: DPOConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["lora_targets"] = list(cfg.lora_targets)
    return d


__all__ = ["DPOConfig", "config_dict", "implicit_reward_report", "reference_logps", "train_dpo"]
