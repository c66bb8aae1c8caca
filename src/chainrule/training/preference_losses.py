"""Losses of learning from preferences, as pure functions of log-probabilities and rewards.

Nothing here generates text or reads files: the policy/reference log-probabilities, rewards
and values come in as tensors, so every formula can be checked by hand.

    Bradley-Terry      -log sigma(r(chosen) - r(rejected))                        (reward model)
    DPO (sigmoid)      -log sigma(beta [(pi_c - ref_c) - (pi_r - ref_r)])        (Rafailov 2023)
    IPO                ([(pi_c - ref_c) - (pi_r - ref_r)] - 1/(2 beta))^2         (Azar 2023)
    GAE                A_t = sum_l (gamma lambda)^l delta_{t+l},
                       delta_t = r_t + gamma V_{t+1} - V_t                         (Schulman 2016)
    PPO clip           -min(rho A, clip(rho, 1-eps, 1+eps) A),  rho = pi / pi_old
    GRPO advantages    (R - mean(R_group)) / (std(R_group) + eps)                 (Shao 2024)
    KL estimators      k1 = log pi - log ref;  k3 = ref/pi - 1 - log(ref/pi)       (Schulman 2020)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from chainrule.errors import ConfigError

DPO_LOSSES = ("sigmoid", "ipo")


def token_logprobs(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """log P(tokens[:, t] | tokens[:, <t]) for t >= 1: (B, T) ids -> (B, T-1), with gradients.

    The model is called as ``model(x, None)`` -> (logits (B, T, V), state), as the training
    loop calls it; right padding never changes a causal model's real positions.
    """
    logits, _ = model(tokens[:, :-1], None)
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)


def response_logprobs(model: torch.nn.Module, tokens: torch.Tensor,
                      response_mask: torch.Tensor) -> torch.Tensor:
    """Summed log-probability of the response tokens only: (B, T) ids, (B, T) bool -> (B,).

    ``response_mask[b, t]`` is True where token t belongs to the response (never t = 0, which
    is BOS or prompt); prompt and padding tokens do not count.
    """
    per_token = token_logprobs(model, tokens)
    return (per_token * response_mask[:, 1:].to(per_token.dtype)).sum(-1)


@dataclass
class DPOOutput:
    """The DPO loss and what it implies about each pair.

    Attributes:
        loss: the mean loss (scalar, with gradients).
        chosen_rewards: beta (log pi(y_c|x) - log ref(y_c|x)) per pair, detached (B,).
        rejected_rewards: the same for the rejected responses (B,).
    """

    loss: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor

    @property
    def margins(self) -> torch.Tensor:
        return self.chosen_rewards - self.rejected_rewards

    @property
    def accuracy(self) -> float:
        """Share of pairs whose implicit reward ranks chosen above rejected."""
        return float((self.margins > 0).float().mean())


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             reference_chosen: torch.Tensor, reference_rejected: torch.Tensor, *,
             beta: float = 0.1, loss_type: str = "sigmoid") -> DPOOutput:
    """DPO (``sigmoid``) or IPO (``ipo``) loss from summed response log-probs, each (B,).

    Worked example: policy (-1, -3), reference (-2, -2), beta = 1 -> h = (1) - (-1) = 2,
    loss = -log sigma(2) = 0.1269.
    """
    if beta <= 0:
        raise ConfigError(f"beta must be > 0, got {beta}.")
    if loss_type not in DPO_LOSSES:
        raise ConfigError(f"unknown DPO loss {loss_type!r}; choose one of {', '.join(DPO_LOSSES)}.")
    chosen_ratio = policy_chosen - reference_chosen
    rejected_ratio = policy_rejected - reference_rejected
    h = chosen_ratio - rejected_ratio
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * h)
    else:  # IPO regresses the log-ratio gap onto 1 / (2 beta)
        losses = (h - 1 / (2 * beta)) ** 2
    return DPOOutput(losses.mean(), (beta * chosen_ratio).detach(),
                     (beta * rejected_ratio).detach())


def bradley_terry_loss(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor) -> torch.Tensor:
    """-mean log sigma(r_c - r_r): the reward model's loss on (B,) scores."""
    return -F.logsigmoid(chosen_scores - rejected_scores).mean()


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, *,
        gamma: float = 1.0, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over (B, T) per-token rewards and values.

    ``mask`` is True on real (response) positions, one contiguous run per row (prompt before
    it, padding after); the value after the last real position is 0 (the episode ends there). Returns (advantages, returns), zero where
    the mask is False; returns = advantages + values.
    """
    m = mask.to(values.dtype)
    rewards, values = rewards * m, values * m
    adv = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    T = values.shape[1]
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * m[:, t]
        adv[:, t] = running
    return adv, (adv + values) * m


def gae_reference(rewards: list[float], values: list[float], *, gamma: float = 1.0,
                  lam: float = 0.95) -> list[float]:
    """The slow textbook sum A_t = sum_{l>=0} (gamma lambda)^l delta_{t+l}, for one trajectory."""
    T = len(rewards)
    v = [*values, 0.0]
    deltas = [rewards[t] + gamma * v[t + 1] - v[t] for t in range(T)]
    return [sum((gamma * lam) ** (k - t) * deltas[k] for k in range(t, T)) for t in range(T)]


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(pi || ref) from log-probs of tokens sampled from pi.

    ``k1`` = log pi - log ref (unbiased, can be negative); ``k3`` = exp(ref - pi) - 1 -
    (ref - pi) (unbiased, never negative). Both are exactly 0 where pi = ref.
    """
    if kind == "k1":
        return logp - ref_logp
    if kind == "k3":
        d = ref_logp - logp
        return torch.exp(d) - 1 - d
    raise ConfigError(f"unknown KL estimator {kind!r}; choose k1 or k3.")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1)


def clipped_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                        mask: torch.Tensor, clip: float = 0.2) -> torch.Tensor:
    """PPO's clipped surrogate, -min(rho A, clip(rho) A), averaged over real tokens."""
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip, 1 + clip) * advantages
    return masked_mean(-torch.minimum(unclipped, clipped), mask)


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor, clip: float = 0.2) -> torch.Tensor:
    """0.5 max((V - R)^2, (clip(V, V_old +- eps) - R)^2), averaged over real tokens."""
    v_clip = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (v_clip - returns) ** 2), mask)


def group_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """GRPO: (G, n) rewards of n samples per prompt -> rewards standardised within each group.

    A group whose samples all score the same gets zero advantage (nothing to learn from it).
    """
    mean = rewards.mean(-1, keepdim=True)
    std = rewards.std(-1, keepdim=True, unbiased=rewards.shape[-1] > 1)
    return (rewards - mean) / (std + eps)


__all__ = [
    "DPO_LOSSES",
    "DPOOutput",
    "bradley_terry_loss",
    "clipped_policy_loss",
    "clipped_value_loss",
    "dpo_loss",
    "gae",
    "gae_reference",
    "group_advantages",
    "kl_estimate",
    "masked_mean",
    "response_logprobs",
    "token_logprobs",
]
