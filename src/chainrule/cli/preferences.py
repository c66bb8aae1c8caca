"""CLI: ``chainrule reward train|score``, ``chainrule dpo``, ``chainrule rl``, ``chainrule prefs
label|agree|eval|plot`` -- learning from preferences.

Thin: parse, call :mod:`chainrule.preferences.runs`, print.
"""

from __future__ import annotations

import argparse
import logging

from chainrule.cli._output import one_writer, print_json

POOLINGS = ("last", "mean", "last+mean")  # chainrule.preferences.rm_features.POOLINGS

_SPLIT_HELP = ("which pairs: train/validation/test (80/10/10 by SHA-256 of the prompt, so a "
               "prompt never straddles splits) or all")
_REWARD_HELP = "a built-in verifiable reward: contains:WORD, shorter:N or sentiment"


def _l2(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"--l2 takes a number >= 0 or 'auto', not {text!r}")
    return value


def _log(msg: str) -> None:
    logging.getLogger("chainrule").info(msg)


def _data_args(p, split: str) -> None:
    p.add_argument("--data", required=True, metavar="FILE.jsonl[.gz]",
                   help="preference pairs: {prompt, chosen, rejected} or HH-RLHF {chosen, rejected}")
    p.add_argument("--split", default=split, choices=("train", "validation", "test", "all"),
                   help=_SPLIT_HELP)
    p.add_argument("--limit", type=int, default=0, metavar="N", help="use the first N pairs")
    p.add_argument("--max-length", type=int, default=256, metavar="T",
                   help="tokens per prompt+response (the prompt is cut from the left)")
    p.add_argument("--seed", type=int, default=0)


def register(sub) -> None:
    r = sub.add_parser("reward", help="train or score a reward model (Bradley-Terry)")
    rc = r.add_subparsers(dest="reward_command", metavar="COMMAND")
    t = rc.add_parser("train", help="a scalar head on a model, trained on preference pairs",
                      description="Put a scalar head on MODEL_DIR (its final hidden state at "
                      "the last token) and train it with -log sigma(r(chosen) - r(rejected)). "
                      "The body stays frozen (its features are computed once) unless --lora-rank.")
    t.add_argument("model_dir", metavar="MODEL_DIR")
    _data_args(t, "train")
    t.add_argument("--eval-split", default="test", help="held-out split to report ('' for none)")
    t.add_argument("--eval-limit", type=int, default=0, metavar="N")
    t.add_argument("--lora-rank", type=int, default=0, metavar="R",
                   help="train LoRA adapters of the body too (0: frozen body)")
    t.add_argument("--epochs", type=int, default=2)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--pooling", choices=POOLINGS, default="last",
                   help="the feature: final hidden state at the last token, its mean over the "
                   "response, or both concatenated")
    t.add_argument("--l2", type=_l2, metavar="X|auto",
                   help="frozen body: fit the head as an L2-regularised logistic regression on "
                   "standardised features instead of --epochs of AdamW ('auto': the penalty "
                   "with the lowest Bradley-Terry loss on --select-split)")
    t.add_argument("--select-split", default="validation",
                   choices=("train", "validation", "test"), help="split that --l2 auto uses")
    t.add_argument("--select-limit", type=int, default=0, metavar="N")
    t.add_argument("--bf16", action="store_true",
                   help="compute a frozen body's features under bf16 autocast (faster on CPUs "
                   "with bf16 support)")
    t.add_argument("--feature-cache", metavar="DIR",
                   help="keep a frozen body's features here in chunks (a rerun or an "
                   "interrupted run reuses them)")
    t.add_argument("--plot", metavar="FILE.png", help="calibration plot of the held-out pairs")
    t.add_argument("-o", "--output", required=True, metavar="OUT")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=run_reward_train)
    s = rc.add_parser("score", help="held-out accuracy and calibration of a reward model")
    s.add_argument("reward_dir", metavar="REWARD_DIR")
    _data_args(s, "test")
    s.add_argument("--plot", metavar="FILE.png")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=run_reward_score)

    d = sub.add_parser("dpo", help="direct preference optimisation of a policy",
                       description="Fine-tune MODEL_DIR on preference pairs with DPO (or IPO) "
                       "against a frozen copy of itself; response tokens only.")
    d.add_argument("model_dir", metavar="MODEL_DIR")
    _data_args(d, "train")
    d.add_argument("--eval-split", default="test")
    d.add_argument("--eval-limit", type=int, default=0, metavar="N")
    d.add_argument("--beta", type=float, default=0.1)
    d.add_argument("--loss", choices=("sigmoid", "ipo"), default="sigmoid")
    d.add_argument("--epochs", type=int, default=1)
    d.add_argument("--max-steps", type=int, default=0)
    d.add_argument("--lr", type=float, default=1e-5)
    d.add_argument("--batch-size", type=int, default=8)
    d.add_argument("--lora-rank", type=int, default=0, metavar="R", help="LoRA (0: full)")
    d.add_argument("-o", "--output", required=True, metavar="OUT")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=run_dpo)

    rl = sub.add_parser("rl", help="PPO or GRPO against a reward (model or built-in)",
                        description="Sample responses to PROMPTS with the decoding package, "
                        "score them, and update MODEL_DIR with PPO (value head, GAE, clipped "
                        "objective, per-token KL penalty) or GRPO (group-relative advantages).")
    rl.add_argument("model_dir", metavar="MODEL_DIR")
    rl.add_argument("--algo", choices=("ppo", "grpo"), default="grpo")
    rl.add_argument("--prompts", required=True, metavar="FILE",
                    help="one prompt a line, or a preference JSONL file (its prompts)")
    rl.add_argument("--eval-prompts", metavar="FILE", help="held-out prompts for the evaluation")
    rl.add_argument("--reward", metavar="NAME", help=_REWARD_HELP)
    rl.add_argument("--reward-model", metavar="DIR", help="a trained reward model")
    for flag, typ, default in (("--steps", int, 50), ("--prompts-per-step", int, 8),
                               ("--group-size", int, 4), ("--max-tokens", int, 16),
                               ("--temperature", float, 1.0), ("--lr", float, 1e-4),
                               ("--beta", float, 0.05), ("--clip", float, 0.2),
                               ("--ppo-epochs", int, 2), ("--seed", int, 0)):
        rl.add_argument(flag, type=typ, default=default)
    rl.add_argument("--plot", metavar="FILE.png", help="reward against KL over training")
    rl.add_argument("-o", "--output", required=True, metavar="OUT")
    rl.add_argument("--json", action="store_true")
    rl.set_defaults(func=run_rl)

    pr = sub.add_parser("prefs", help="AI-feedback labels, judge agreement, policy evaluation")
    pc = pr.add_subparsers(dest="prefs_command", metavar="COMMAND")
    lab = pc.add_parser("label", help="sample two responses per prompt, let a judge pick",
                        description="Sample two responses per prompt from MODEL_DIR; the JUDGE "
                        "model compares log P('A') and log P('B') in both orders; write the "
                        "pairs as a preference file for `reward train` and `dpo`.")
    lab.add_argument("model_dir", metavar="MODEL_DIR")
    lab.add_argument("--judge", required=True, metavar="JUDGE_DIR")
    lab.add_argument("--prompts", required=True, metavar="FILE")
    lab.add_argument("--reward", metavar="NAME",
                     help=_REWARD_HELP + "; report the judge's agreement with it")
    lab.add_argument("--principle", help="the judge's written principle")
    lab.add_argument("--max-tokens", type=int, default=32)
    lab.add_argument("--temperature", type=float, default=1.0)
    lab.add_argument("--limit", type=int, default=0)
    lab.add_argument("--seed", type=int, default=0)
    lab.add_argument("-o", "--output", required=True, metavar="OUT.jsonl")
    lab.add_argument("--json", action="store_true")
    lab.set_defaults(func=run_label)
    ag = pc.add_parser("agree", help="how often a judge agrees with labelled pairs")
    ag.add_argument("judge_dir", metavar="JUDGE_DIR")
    _data_args(ag, "test")
    ag.add_argument("--principle")
    ag.add_argument("--json", action="store_true")
    ag.set_defaults(func=run_agree)
    ev = pc.add_parser("eval", help="win rate over the start, reward, KL, length")
    ev.add_argument("policy_dir", metavar="POLICY_DIR")
    ev.add_argument("--start", required=True, metavar="START_DIR")
    ev.add_argument("--prompts", required=True, metavar="FILE")
    ev.add_argument("--reward", metavar="NAME", help=_REWARD_HELP)
    ev.add_argument("--reward-model", metavar="DIR")
    ev.add_argument("--judge", metavar="JUDGE_DIR", help="also an AI judge's win rate")
    ev.add_argument("--max-tokens", type=int, default=16)
    ev.add_argument("--temperature", type=float, default=1.0)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=run_eval)
    pl = pc.add_parser("plot", help="reward against KL for saved `rl` runs")
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    pl.add_argument("-o", "--output", required=True, metavar="FILE.png")
    pl.set_defaults(func=run_plot)


def _show(args, summary: dict, *lines: str) -> int:
    if args.json:
        print_json(summary)
    else:
        for line in lines:
            print(line)
    return 0


def _held(h: dict | None) -> str:
    if not h:
        return "no held-out split"
    lo, hi = h["interval"]
    return (f"held-out accuracy {100 * h['accuracy']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] "
            f"on {h['pairs']} pairs, ECE {h['ece']:.3f}")


@one_writer("output")
def run_reward_train(args: argparse.Namespace) -> int:
    from chainrule.preferences.runs import run_reward_train as go

    s = go(args.model_dir, args.data, args.output, split=args.split, eval_split=args.eval_split,
           lora_rank=args.lora_rank, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
           max_length=args.max_length, limit=args.limit, eval_limit=args.eval_limit,
           seed=args.seed, plot=args.plot, pooling=args.pooling, l2=args.l2,
           select_split=args.select_split, select_limit=args.select_limit, bf16=args.bf16,
           feature_cache=args.feature_cache, log=_log)
    head = (f"; head L2 {s['head']['l2']:g}, training accuracy "
            f"{100 * s['head']['train_accuracy']:.1f}%" if "head" in s else "")
    return _show(args, s, f"trained on {s['train_pairs']} pairs ({s['identical_skipped']} with "
                           f"chosen == rejected skipped){head}; {_held(s.get('held_out'))} -> "
                           f"{args.output}")


def run_reward_score(args: argparse.Namespace) -> int:
    from chainrule.preferences.runs import run_reward_score as go

    s = go(args.reward_dir, args.data, split=args.split, limit=args.limit,
           max_length=args.max_length, seed=args.seed, plot=args.plot)
    return _show(args, s, _held(s), *(f"  confidence {r['low']:.2f}-{r['high']:.2f}: "
                                       f"n={r['n']}, accuracy {100 * r['accuracy']:.1f}%"
                                       for r in s["calibration"]))


@one_writer("output")
def run_dpo(args: argparse.Namespace) -> int:
    from chainrule.preferences.dpo import DPOConfig
    from chainrule.preferences.runs import run_dpo as go

    cfg = DPOConfig(beta=args.beta, loss_type=args.loss, epochs=args.epochs, lr=args.lr,
                    batch_size=args.batch_size, lora_rank=args.lora_rank, seed=args.seed,
                    max_steps=args.max_steps)
    s = go(args.model_dir, args.data, args.output, cfg, split=args.split,
           eval_split=args.eval_split, max_length=args.max_length, limit=args.limit,
           eval_limit=args.eval_limit, log=_log)
    h = s.get("held_out")
    held = (f"; held-out implicit reward accuracy {100 * h['reward_accuracy']:.1f}%, margin "
            f"{h['margin']:.3f}" if h else "")
    return _show(args, s, f"DPO ({args.loss}, beta={args.beta}): {s['steps']} steps on "
                           f"{s['train_pairs']} pairs in {s['seconds']:.1f}s{held} -> "
                           f"{args.output}")


@one_writer("output")
def run_rl(args: argparse.Namespace) -> int:
    from chainrule.preferences.rl import RLConfig
    from chainrule.preferences.runs import run_rl as go

    cfg = RLConfig(algo=args.algo, steps=args.steps, prompts_per_step=args.prompts_per_step,
                   group_size=args.group_size, max_new_tokens=args.max_tokens,
                   temperature=args.temperature, lr=args.lr, beta=args.beta, clip=args.clip,
                   ppo_epochs=args.ppo_epochs, seed=args.seed)
    s = go(args.model_dir, args.prompts, args.output, cfg, reward=args.reward,
           reward_model=args.reward_model, eval_prompts=args.eval_prompts, plot=args.plot,
           log=_log)
    e = s["evaluation"]
    return _show(args, s, f"{args.algo}: {cfg.steps} steps in {s['seconds']:.1f}s -> "
                           f"{args.output}",
                           f"  win rate over the start {100 * e['win_rate']:.1f}%, reward "
                           f"{e['start_reward']:.3f} -> {e['reward']:.3f}, KL {e['kl']:.3f}, "
                           f"length {e['start_length_tokens']:.1f} -> {e['length_tokens']:.1f}"
                           " tokens")


def run_label(args: argparse.Namespace) -> int:
    from chainrule.preferences.judge import DEFAULT_PRINCIPLE
    from chainrule.preferences.runs import run_label as go

    s = go(args.model_dir, args.judge, args.prompts, args.output, reward=args.reward,
           principle=args.principle or DEFAULT_PRINCIPLE, max_new_tokens=args.max_tokens,
           temperature=args.temperature, limit=args.limit, seed=args.seed)
    agree = ("" if s["agreement"] is None else
             f"; agreement with {args.reward}: {100 * s['agreement']:.1f}% of {s['compared']}")
    return _show(args, s, f"labelled {s['pairs']} pairs ({s['identical']} identical samples "
                           f"skipped), mean position bias {s['mean_position_bias']:+.3f}"
                           f"{agree} -> {args.output}")


def run_agree(args: argparse.Namespace) -> int:
    from chainrule.preferences.judge import DEFAULT_PRINCIPLE
    from chainrule.preferences.runs import run_judge_agreement as go

    s = go(args.judge_dir, args.data, split=args.split, limit=args.limit,
           principle=args.principle or DEFAULT_PRINCIPLE, seed=args.seed)
    return _show(args, s, f"the judge agrees with the labels on {100 * s['agreement']:.1f}% of "
                           f"{s['pairs']} pairs (mean position bias "
                           f"{s['mean_position_bias']:+.3f})")


def run_eval(args: argparse.Namespace) -> int:
    from chainrule.preferences.runs import run_eval as go

    s = go(args.policy_dir, args.start, args.prompts, reward=args.reward,
           reward_model=args.reward_model, judge_dir=args.judge, max_new_tokens=args.max_tokens,
           temperature=args.temperature, seed=args.seed)
    judge = f", judge win rate {100 * s['judge_win_rate']:.1f}%" if "judge_win_rate" in s else ""
    lo, hi = s["win_interval"]
    return _show(args, s, f"win rate {100 * s['win_rate']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] "
                           f"over {s['prompts']} prompts"
                           f"{judge}; reward {s['start_reward']:.3f} -> {s['reward']:.3f}; KL "
                           f"{s['kl']:.3f}; length {s['start_length_tokens']:.1f} -> "
                           f"{s['length_tokens']:.1f} tokens")


def run_plot(args: argparse.Namespace) -> int:
    from chainrule.preferences.runs import plot_histories

    print(f"wrote {plot_histories(args.run_dirs, args.output)}")
    return 0
