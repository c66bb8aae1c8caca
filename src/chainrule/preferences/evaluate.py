"""One evaluation for every preference method: how much better is the tuned policy, at what cost?

For held-out prompts, one response each is sampled from the tuned policy and from its starting
point (same seeds). Reported: the win rate of the tuned policy over the start by the reward
(ties count half) with its 95% Wilson interval, each one's mean reward, the Monte-Carlo
KL(policy || reference) (sum of log pi - log ref over the sampled tokens), and the mean
response length (reward hacking often shows up as length). Optionally an AI judge's win rate
too. ``plot_reward_vs_kl`` draws the training histories as reward against KL.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from chainrule.preferences.reward_model import wilson_interval
from chainrule.preferences.rewards import words
from chainrule.preferences.rollouts import rollout_logprobs, sample_rollout, sequence_kl


def evaluate_policy(policy: Any, start: Any, tokenizer: Any, prompts: Sequence[str], reward: Any,
                    *, reference: Any = None, judge: Any = None, max_new_tokens: int = 16,
                    temperature: float = 1.0, seed: int = 0) -> dict[str, float]:
    """Win rate of ``policy`` over ``start`` and the other figures (see the module docstring).

    ``reference`` (default ``start``) is what the KL is measured against.
    """
    reference = reference if reference is not None else start
    kw = {"n": 1, "max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
    tuned = sample_rollout(policy, tokenizer, prompts, reward, **kw)
    base = sample_rollout(start, tokenizer, prompts, reward, **kw)
    diff = tuned.rewards - base.rewards
    win = float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())
    logp = rollout_logprobs(policy, tuned.ids)
    ref = rollout_logprobs(reference, tuned.ids)
    out = {"prompts": len(prompts), "win_rate": win,
           "win_interval": list(wilson_interval(round(win * len(prompts)), len(prompts))),
           "reward": float(tuned.rewards.mean()), "start_reward": float(base.rewards.mean()),
           "kl": float(sequence_kl(logp, ref, tuned.mask).mean()),
           "length_tokens": sum(tuned.lengths) / len(tuned.lengths),
           "start_length_tokens": sum(base.lengths) / len(base.lengths),
           "length_words": sum(len(words(r)) for r in tuned.responses) / len(prompts)}
    if judge is not None:
        v = judge.judge(list(prompts), tuned.responses, base.responses)
        out["judge_win_rate"] = float(((v.preference > 0).float()
                                       + 0.5 * (v.preference == 0).float()).mean())
    return out


def plot_reward_vs_kl(histories: dict[str, Sequence[dict[str, float]]],
                      path: str | os.PathLike, title: str = "") -> Path:
    """Mean reward against KL to the reference over training, one line per run."""
    from chainrule.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, hist in histories.items():
        kl = [h["kl"] for h in hist]
        rw = [h["reward"] for h in hist]
        ax.plot(kl, rw, marker=".", linewidth=1, label=name)
    ax.set_xlabel("KL(policy || reference), nats per response")
    ax.set_ylabel("mean reward")
    ax.set_title(title or "Reward against KL over training")
    ax.legend(fontsize=8)
    out = _save(fig, path)
    plt.close(fig)
    return out


def smooth(history: Sequence[dict[str, float]], key: str, window: int = 5) -> list[float]:
    """A running mean of ``key`` over the last ``window`` records."""
    vals = torch.tensor([h[key] for h in history], dtype=torch.float64)
    return [float(vals[max(0, i - window + 1) : i + 1].mean()) for i in range(len(vals))]


__all__ = ["evaluate_policy", "plot_reward_vs_kl", "smooth"]
