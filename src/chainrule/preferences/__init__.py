"""Learning from preferences: reward models, DPO, RL from a reward (PPO, GRPO), AI feedback.

    data          preference files (prompt/chosen/rejected or HH-RLHF dialogues), splits, encoding
    rewards       built-in verifiable rewards (contains:WORD, shorter:N, sentiment)
    reward_model  a scalar head on a transformer, Bradley-Terry training, accuracy, calibration
    dpo           direct preference optimisation (sigmoid / IPO) against a frozen reference
    rollouts      sampling with chainrule.decoding, rewards, per-token log-probs
    rl            PPO (value head, GAE, clipped objective, per-token KL penalty) and GRPO
    judge         an AI judge comparing log P("A") and log P("B") in both orders
    evaluate      win rate over the start, reward, KL, length; reward-against-KL plot

The losses themselves are pure functions in :mod:`chainrule.training.preference_losses`.
"""

from chainrule.preferences.data import PreferencePair, read_preferences, split_pairs
from chainrule.preferences.dpo import DPOConfig, train_dpo
from chainrule.preferences.evaluate import evaluate_policy, plot_reward_vs_kl
from chainrule.preferences.judge import Judge, judge_both_orders, label_preferences
from chainrule.preferences.reward_model import (
    RewardModel,
    load_reward_model,
    save_reward_model,
    train_reward_model,
)
from chainrule.preferences.rewards import parse_reward
from chainrule.preferences.rl import RLConfig, train_rl

__all__ = [
    "DPOConfig",
    "Judge",
    "PreferencePair",
    "RLConfig",
    "RewardModel",
    "evaluate_policy",
    "judge_both_orders",
    "label_preferences",
    "load_reward_model",
    "parse_reward",
    "plot_reward_vs_kl",
    "read_preferences",
    "save_reward_model",
    "split_pairs",
    "train_dpo",
    "train_reward_model",
    "train_rl",
]
