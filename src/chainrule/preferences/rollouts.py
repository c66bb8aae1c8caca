"""Rollouts: sample responses with the decoding package, score them, and take the per-token
log-probabilities of policy and reference that RL needs.

A reward source is anything called as ``reward(prompts, responses) -> list[float]`` on texts:
a built-in :class:`~chainrule.preferences.rewards.VerifiableReward` (its ``batch``) or a
:class:`~chainrule.preferences.reward_model.RewardModel` (its ``score``, which re-tokenises the
text with its own tokenizer, so policy and reward model need not share one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from chainrule.decoding import GenerationConfig, generate
from chainrule.preferences.data import pad_batch
from chainrule.training.preference_losses import kl_estimate, token_logprobs

RewardFn = Callable[[Sequence[str], Sequence[str]], Sequence[float]]


def as_reward_fn(reward: Any) -> RewardFn:
    """A reward source as ``fn(prompts, responses) -> list[float]``."""
    if hasattr(reward, "batch"):
        return reward.batch
    if hasattr(reward, "score"):
        return reward.score
    if callable(reward):
        return reward
    raise TypeError(f"{type(reward).__name__} is not a reward source")


@dataclass
class Rollout:
    """Sampled responses: ``n`` per prompt, prompt-major.

    Attributes:
        prompts: the prompt text of each row.
        responses: the response text of each row.
        ids: (N, T) BOS + prompt + response (+ EOS when the model ended it), right-padded.
        mask: (N, T-1) True where target position t+1 is a response token (aligned with
            :func:`~chainrule.training.preference_losses.token_logprobs`).
        rewards: (N,) sequence rewards.
        lengths: response lengths in tokens.
    """

    prompts: list[str]
    responses: list[str]
    ids: torch.Tensor
    mask: torch.Tensor
    rewards: torch.Tensor
    lengths: list[int]


@torch.no_grad()
def sample_rollout(policy: Any, tokenizer: Any, prompts: Sequence[str], reward: Any, *,
                   n: int = 1, max_new_tokens: int = 16, temperature: float = 1.0,
                   top_p: float = 1.0, seed: int = 0) -> Rollout:
    """``n`` responses per prompt sampled from ``policy`` by :func:`chainrule.decoding.generate`,
    scored by ``reward``."""
    was = policy.training
    policy.eval()
    # decoding seeds each row by (seed, prompt, sample number), so a prompt repeated in the
    # batch would repeat its samples: ask for more samples of each distinct prompt instead
    distinct = list(dict.fromkeys(prompts))
    repeats = max(list(prompts).count(p) for p in distinct)
    cfg = GenerationConfig(strategy="sample", temperature=temperature, top_p=top_p,
                           max_new_tokens=max_new_tokens, n=n * repeats, seed=seed)
    pool = dict(zip(distinct, generate(policy, distinct, cfg, tokenizer=tokenizer), strict=True))
    policy.train(was)
    seen: dict[str, int] = {}
    done = []
    for p in prompts:
        k = seen.get(p, 0)
        seen[p] = k + 1
        done.append(pool[p][k * n : (k + 1) * n])
    rows, masks, texts, ps, lengths = [], [], [], [], []
    for prompt, outs in zip(prompts, done, strict=True):
        for c in outs:
            resp = list(c.token_ids) + ([policy.eos_id] if c.finish_reason == "eos" else [])
            rows.append(list(c.prompt_ids) + resp)
            masks.append([False] * len(c.prompt_ids) + [True] * len(resp))
            texts.append(c.text or "")
            ps.append(prompt)
            lengths.append(len(resp))
    ids, mask, _ = pad_batch(rows, masks, policy.eos_id, policy.device)
    rewards = torch.tensor(list(as_reward_fn(reward)(ps, texts)), dtype=torch.float32)
    return Rollout(ps, texts, ids, mask[:, 1:], rewards, lengths)


@torch.no_grad()
def rollout_logprobs(model: torch.nn.Module, ids: torch.Tensor, batch_size: int = 32
                     ) -> torch.Tensor:
    """(N, T-1) per-token log-probs of ``ids`` under ``model`` (eval mode, no gradients)."""
    was = model.training
    model.eval()
    out = torch.cat([token_logprobs(model, ids[i : i + batch_size])
                     for i in range(0, ids.shape[0], batch_size)])
    model.train(was)
    return out


def sequence_kl(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) Monte-Carlo KL(pi || ref) of each sampled response: sum of k1 over its tokens."""
    return (kl_estimate(logp, ref_logp, "k1") * mask.to(logp.dtype)).sum(-1)


__all__ = ["RewardFn", "Rollout", "as_reward_fn", "rollout_logprobs", "sample_rollout",
           "sequence_kl"]
