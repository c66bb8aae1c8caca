"""Reinforcement learning from a reward: PPO with a KL penalty (RLHF) and GRPO.

Each step samples responses to a batch of prompts (:mod:`chainrule.preferences.rollouts`),
scores them, and updates the policy:

* **PPO** (Schulman et al. 2017, as Stiennon et al. 2020 / Ouyang et al. 2022 use it): the
  reward arrives at the last token; every token pays -beta (log pi - log ref), the per-token
  KL penalty to the frozen reference; a value head on the policy's hidden states estimates
  returns, GAE turns rewards and values into advantages, and the clipped surrogate plus a
  clipped value loss is minimised for ``ppo_epochs`` passes.
* **GRPO** (Shao et al. 2024): ``group_size`` samples per prompt; each sample's advantage is
  its reward standardised within its group (no value head); the KL to the reference (k3
  estimator) is added to the loss instead of the reward.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from chainrule.errors import ConfigError
from chainrule.preferences.rollouts import rollout_logprobs, sample_rollout, sequence_kl
from chainrule.training.preference_losses import (
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    group_advantages,
    kl_estimate,
    masked_mean,
)

ALGOS = ("ppo", "grpo")


@dataclass(frozen=True)
class RLConfig:
    """RL settings.

    Attributes:
        algo: ``ppo`` or ``grpo``.
        steps: rollout-and-update rounds.
        prompts_per_step: prompts sampled per round.
        group_size: responses per prompt (GRPO needs >= 2; PPO usually 1).
        max_new_tokens: longest response.
        temperature: sampling temperature of the rollouts.
        lr: AdamW learning rate (policy and value head).
        beta: KL coefficient (PPO: per-token reward penalty; GRPO: loss term).
        clip: PPO/GRPO ratio clipping epsilon (and the value clip).
        gamma, lam: GAE discount and lambda (PPO).
        ppo_epochs: optimisation passes over each rollout.
        vf_coef: weight of the value loss (PPO).
        seed: prompt order and sampling.
    """

    algo: str = "grpo"
    steps: int = 50
    prompts_per_step: int = 8
    group_size: int = 4
    max_new_tokens: int = 16
    temperature: float = 1.0
    lr: float = 1e-4
    beta: float = 0.05
    clip: float = 0.2
    gamma: float = 1.0
    lam: float = 0.95
    ppo_epochs: int = 2
    vf_coef: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.algo not in ALGOS:
            problems.append(f"algo must be one of {', '.join(ALGOS)}, got {self.algo!r}.")
        if self.algo == "grpo" and self.group_size < 2:
            problems.append("GRPO compares samples within a group: group_size must be >= 2.")
        if min(self.steps, self.prompts_per_step, self.group_size, self.max_new_tokens,
               self.ppo_epochs) < 1:
            problems.append("steps, prompts_per_step, group_size, max_new_tokens and "
                            "ppo_epochs must be >= 1.")
        if self.beta < 0 or self.lr <= 0 or not 0 < self.clip < 1:
            problems.append("beta must be >= 0, lr > 0 and clip in (0, 1).")
        if problems:
            raise ConfigError(problems)


class ValueHead(nn.Module):
    """A scalar value per position on the policy's final hidden states (PPO's critic)."""

    def __init__(self, width: int):
        super().__init__()
        self.v = nn.Linear(width, 1)
        nn.init.zeros_(self.v.weight)
        nn.init.zeros_(self.v.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.v(h.float()).squeeze(-1)


def _logp_and_values(policy, value_head: ValueHead | None, ids: torch.Tensor):
    """Per-token log-probs (N, T-1) and, with a value head, values (N, T-1) from one pass."""
    h, _ = policy.hidden(ids[:, :-1])
    logp = torch.log_softmax(policy.head(h).float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return logp, (value_head(h) if value_head is not None else None)


def train_rl(policy: nn.Module, tokenizer: Any, prompts: Sequence[str], reward: Any,
             cfg: RLConfig, *, reference: nn.Module | None = None,
             log: Callable[[str], Any] | None = None) -> list[dict[str, float]]:
    """Train ``policy`` in place; one record per step (mean reward, KL to the reference, mean
    response length in tokens, loss, seconds)."""
    if not prompts:
        raise ConfigError("no prompts to roll out from.")
    if not (hasattr(policy, "hidden") and hasattr(policy, "head")):
        raise ConfigError(f"RL needs a neural policy with hidden states (a gpt); got "
                          f"{getattr(policy, 'family', type(policy).__name__)}.")
    reference = reference if reference is not None else copy.deepcopy(policy)
    reference.eval()  # only ever read under no_grad (rollout_logprobs)
    value_head = None
    params = [p for p in policy.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the policy has no trainable parameters (all are frozen).")
    if cfg.algo == "ppo":
        width = policy.hidden(torch.tensor([[policy.bos_id]], device=policy.device))[0].shape[-1]
        value_head = ValueHead(width).to(policy.device)
        params += list(value_head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(cfg.seed)
    n = cfg.group_size
    history: list[dict[str, float]] = []
    policy.eval()  # no dropout: the ratio pi/pi_old must compare like with like
    for step in range(cfg.steps):
        t0 = time.perf_counter()
        pick = torch.randint(len(prompts), (cfg.prompts_per_step,), generator=g).tolist()
        ro = sample_rollout(policy, tokenizer, [prompts[i] for i in pick], reward, n=n,
                            max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                            seed=cfg.seed * 1_000_003 + step)
        ids, mask = ro.ids, ro.mask
        rewards = ro.rewards.to(policy.device)
        with torch.no_grad():
            old_logp, old_values = _logp_and_values(policy, value_head, ids)
            ref_logp = rollout_logprobs(reference, ids)
        kl = sequence_kl(old_logp, ref_logp, mask)
        if cfg.algo == "ppo":
            adv, returns = _ppo_targets(old_logp, ref_logp, old_values, rewards, mask, cfg)
        else:
            seq_adv = group_advantages(rewards.view(-1, n)).view(-1)
            adv = seq_adv[:, None].expand_as(old_logp) * mask
        for _ in range(cfg.ppo_epochs):
            logp, values = _logp_and_values(policy, value_head, ids)
            loss = clipped_policy_loss(logp, old_logp, adv, mask, cfg.clip)
            if cfg.algo == "ppo":
                loss = loss + cfg.vf_coef * clipped_value_loss(values, old_values, returns,
                                                               mask, cfg.clip)
            elif cfg.beta:
                loss = loss + cfg.beta * masked_mean(kl_estimate(logp, ref_logp, "k3"), mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        rec = {"step": step + 1, "reward": float(rewards.mean()), "kl": float(kl.mean()),
               "length": sum(ro.lengths) / len(ro.lengths), "loss": float(loss.detach()),
               "seconds": time.perf_counter() - t0}
        history.append(rec)
        if log and (step == 0 or (step + 1) % 10 == 0):
            log(f"{cfg.algo} step {step + 1}/{cfg.steps}: reward {rec['reward']:.3f}, "
                f"KL {rec['kl']:.3f}, length {rec['length']:.1f}")
    return history


def _ppo_targets(old_logp, ref_logp, old_values, rewards, mask, cfg: RLConfig):
    """Per-token rewards (KL penalty on every token, the reward on the last) -> whitened GAE
    advantages and returns."""
    m = mask.to(old_logp.dtype)
    per_token = -cfg.beta * kl_estimate(old_logp, ref_logp, "k1") * m
    last = (m.cumsum(-1) == m.sum(-1, keepdim=True)) & mask  # the final response token
    per_token = per_token + last.to(m.dtype) * rewards[:, None]
    adv, returns = gae(per_token, old_values, mask, gamma=cfg.gamma, lam=cfg.lam)
    mean = masked_mean(adv, mask)
    std = masked_mean((adv - mean) ** 2, mask).sqrt()
    return (adv - mean) / (std + 1e-8) * m, returns


__all__ = ["ALGOS", "RLConfig", "ValueHead", "train_rl"]
