"""Learning-from-preferences benches (issue 19).

``verifiable``: a character GPT trained briefly on Tiny Shakespeare is the SFT start; the task
is "continue the prompt (the first two words of a play line) with text that contains WORD",
whose reward is known exactly. DPO (on pairs of the start's own samples labelled by the true
reward), PPO and GRPO each tune the start; each is evaluated on held-out prompts: win rate over
the start, mean true reward, KL from the start, response length, training time.

    nice -n 10 .venv/bin/python bench/bench_preferences.py verifiable --threads 1

``hh``: a reward model on HH-RLHF (harmless-base test file, split 80/10/10 by SHA-256 of the
prompt): frozen SmolLM2-135M-Instruct features at the last token + a linear head (Bradley-
Terry), trained on a subset of the training split; held-out pairwise accuracy with its Wilson
interval on the test split, and a calibration plot.

    nice -n 10 .venv/bin/python bench/bench_preferences.py hh --train-pairs 300 --threads 1

``hh-select``: the same reward model, its head's epochs and weight decay chosen on the
validation split (the body's features are computed once and cached in --work).

    nice -n 10 .venv/bin/python bench/bench_preferences.py hh-select --train-pairs 300 --threads 1

``judge``: SmolLM2-135M-Instruct as the AI judge (its chat template, a written principle,
log P("A") vs log P("B") in both orders): agreement with the verifiable reward on pairs of the
start's samples, and with HH-RLHF's human labels on short test pairs.

    nice -n 10 .venv/bin/python bench/bench_preferences.py judge --threads 1

``trl``: the same tiny GPT-2-layout weights exported to transformers, the same token ids,
beta and batch: our DPO loss vs TRL ``DPOTrainer``'s loss on that batch, our Bradley-Terry
loss vs ``RewardTrainer``'s, and the time of one optimiser step each.

    .venv/bin/python bench/bench_preferences.py trl --threads 1
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SHAKESPEARE = SHARED / "tinyshakespeare" / "input.txt"
HH = SHARED / "hh-rlhf" / "harmless-base-test.jsonl.gz"


def _start_model(directory: Path, iters: int) -> Path:
    if not (directory / "config.json").exists():
        subprocess.run([sys.executable, "-m", "chainrule", "--threads", "1", "train", "--family",
                        "gpt", "--kind", "char", "-o", str(directory), str(SHAKESPEARE),
                        "n_layer=2", "n_head=2", "n_embd=64", "block_size=64", "batch_size=16",
                        f"max_iters={iters}", f"lr_decay_iters={iters}", "learning_rate=3e-3",
                        "eval_interval=200", "eval_iters=5", "warmup_iters=50", "device=cpu"],
                       check=True, cwd=ROOT)
    return directory


def _prompts(n_train: int, n_eval: int) -> tuple[list[str], list[str]]:
    lines = [x for x in SHAKESPEARE.read_text().split("\n")
             if len(x.split()) >= 4 and not x.endswith(":")]
    distinct = list(dict.fromkeys(" ".join(x.split()[:2]) for x in lines))
    return distinct[:n_train], distinct[n_train : n_train + n_eval]


def verifiable(args) -> dict:
    from chainrule.evaluation.textscore import load_model_and_tokenizer
    from chainrule.preferences import DPOConfig, RLConfig, parse_reward, train_dpo, train_rl
    from chainrule.preferences.data import PreferencePair, encode_pairs
    from chainrule.preferences.evaluate import evaluate_policy, plot_reward_vs_kl
    from chainrule.preferences.rollouts import sample_rollout

    start_dir = _start_model(Path(args.work) / "sft_start", args.start_iters)
    start, tok = load_model_and_tokenizer(start_dir)
    reward = parse_reward(args.reward)
    train_p, eval_p = _prompts(args.prompts, args.eval_prompts)
    eval_rows = eval_p * args.eval_samples  # repeated prompts get distinct samples
    kw = {"max_new_tokens": args.tokens, "seed": 1234}
    results, histories = {}, {}

    # DPO: pairs of the start's own samples, labelled by the true reward (offline)
    t0 = time.perf_counter()
    n = args.dpo_samples
    ro = sample_rollout(start, tok, train_p, reward, n=n, max_new_tokens=args.tokens, seed=7)
    pairs = []
    for g in range(0, len(ro.responses), n):  # within a prompt: each better sample against
        group = sorted(range(g, g + n), key=lambda i: -float(ro.rewards[i]))  # two worse ones
        for k, i in enumerate(group):
            worse = [j for j in group[k + 1:] if float(ro.rewards[j]) < float(ro.rewards[i])]
            pairs += [PreferencePair(ro.prompts[i], ro.responses[i], ro.responses[j])
                      for j in worse[:2]]
    sample_s = time.perf_counter() - t0
    policy = copy.deepcopy(start)
    enc = encode_pairs(pairs, tok, bos_id=start.bos_id, eos_id=start.eos_id, max_length=64)
    cfg = DPOConfig(beta=0.1, lr=args.dpo_lr, epochs=args.dpo_epochs, batch_size=16)
    t0 = time.perf_counter()
    hist = train_dpo(policy, enc, cfg, pad_id=start.eos_id)
    results["dpo"] = {"train_s": time.perf_counter() - t0, "sampling_s": sample_s,
                      "pairs": len(pairs), "steps": len(hist),
                      **evaluate_policy(policy, start, tok, eval_rows, reward, **kw)}
    print("dpo", json.dumps(results["dpo"]), flush=True)

    for algo, extra in (("ppo", {"prompts_per_step": 16, "group_size": 1}),
                        ("grpo", {"prompts_per_step": 4, "group_size": 4})):
        policy = copy.deepcopy(start)
        cfg = RLConfig(algo=algo, steps=args.rl_steps, max_new_tokens=args.tokens, lr=args.rl_lr,
                       beta=args.kl_beta, seed=0, **extra)
        t0 = time.perf_counter()
        hist = train_rl(policy, tok, train_p, reward, cfg, reference=start)
        histories[algo] = hist
        results[algo] = {"train_s": time.perf_counter() - t0, "steps": len(hist),
                         **evaluate_policy(policy, start, tok, eval_rows, reward, **kw)}
        print(algo, json.dumps(results[algo]), flush=True)
    if args.plot:
        plot_reward_vs_kl(histories, args.plot, title=f"Reward ({args.reward}) against KL")
    return {"reward": args.reward, "start_iters": args.start_iters,
            "train_prompts": len(train_p), "eval_prompts": len(eval_p),
            "eval_samples": len(eval_rows), "methods": results}


def hh(args) -> dict:
    from chainrule.evaluation.textscore import load_model_and_tokenizer
    from chainrule.models.pretrained import default_cache_dir
    from chainrule.preferences.reward_model import (
        RewardModel,
        evaluate_reward_model,
        plot_calibration,
        train_reward_model,
    )
    from chainrule.preferences.runs import select_pairs

    body_dir = Path(args.body or default_cache_dir() / "models" / "smollm2-135m-instruct")
    body, tok = load_model_and_tokenizer(body_dir)
    rm = RewardModel(body, tok, freeze=True, body_dir=str(body_dir))
    train, report = select_pairs(HH, "train", limit=args.train_pairs)
    test, _ = select_pairs(HH, "test", limit=args.test_pairs)
    t0 = time.perf_counter()
    enc_train = rm.encode(train, args.max_length)
    losses = train_reward_model(rm, enc_train, epochs=args.epochs, lr=args.rm_lr,
                                batch_size=16, weight_decay=args.weight_decay)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    held = evaluate_reward_model(rm, rm.encode(test, args.max_length))
    if args.plot:
        plot_calibration(held, args.plot, title="HH-RLHF reward model (frozen SmolLM2 + head)")
    return {"body": "SmolLM2-135M-Instruct, frozen; linear head on the last token",
            "identical_skipped": report.identical, "train_pairs": len(train),
            "test_pairs": len(test), "max_length": args.max_length, "epochs": args.epochs,
            "loss_per_epoch": losses, "train_s": train_s, "eval_s": time.perf_counter() - t0,
            "held_out": held}


def hh_select(args) -> dict:
    """The frozen-body reward model with its head's training length and weight decay chosen on
    the validation split (features computed once and cached in --work), reported on test."""
    from chainrule.evaluation.textscore import load_model_and_tokenizer
    from chainrule.models.pretrained import default_cache_dir
    from chainrule.preferences.reward_model import (
        RewardModel,
        pairwise_report,
        plot_calibration,
    )
    from chainrule.preferences.rm_features import pair_features
    from chainrule.preferences.runs import select_pairs
    from chainrule.training.preference_losses import bradley_terry_loss

    body_dir = Path(args.body or default_cache_dir() / "models" / "smollm2-135m-instruct")
    body, tok = load_model_and_tokenizer(body_dir)
    rm = RewardModel(body, tok, freeze=True, body_dir=str(body_dir))
    feats, t0 = {}, time.perf_counter()
    for split, limit in (("train", args.train_pairs), ("validation", args.val_pairs),
                         ("test", args.test_pairs)):
        cache = Path(args.work) / f"hh_{split}_{limit}_{args.max_length}.pt"
        if cache.exists():
            feats[split] = torch.load(cache)
        else:
            pairs, _ = select_pairs(HH, split, limit=limit)
            feats[split] = pair_features(rm, rm.encode(pairs, args.max_length), batch_size=16)
            torch.save(feats[split], cache)
        print(split, len(feats[split][0]), f"{time.perf_counter() - t0:.0f}s", flush=True)
    features_s = time.perf_counter() - t0

    def fit(epochs: int, wd: float):
        torch.manual_seed(0)
        head = torch.nn.Linear(feats["train"][0].shape[1], 1)
        torch.nn.init.zeros_(head.weight)
        opt = torch.optim.AdamW(head.parameters(), lr=args.rm_lr, weight_decay=wd)
        fc, fr = feats["train"]
        g = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            for idx in torch.randperm(len(fc), generator=g).split(16):
                loss = bradley_terry_loss(head(fc[idx]).squeeze(-1), head(fr[idx]).squeeze(-1))
                opt.zero_grad()
                loss.backward()
                opt.step()
        return head

    def margins(head, split):
        with torch.no_grad():
            fc, fr = feats[split]
            return (head(fc) - head(fr)).squeeze(-1).tolist()

    grid = []
    for epochs in (1, 2, 4, 8, 16, 30):
        for wd in (0.0, 0.1, 1.0):
            head = fit(epochs, wd)
            acc = pairwise_report(margins(head, "validation"))["accuracy"]
            grid.append({"epochs": epochs, "weight_decay": wd, "validation_accuracy": acc})
    best = max(grid, key=lambda r: (r["validation_accuracy"], -r["epochs"]))
    test = pairwise_report(margins(fit(best["epochs"], best["weight_decay"]), "test"))
    if args.plot:
        plot_calibration(test, args.plot, title="HH-RLHF reward model (frozen SmolLM2 + head)")
    return {"body": "SmolLM2-135M-Instruct, frozen; linear head on the last token",
            "pairs": {k: len(v[0]) for k, v in feats.items()}, "max_length": args.max_length,
            "features_s": features_s, "grid": grid, "chosen": best, "test": test}


def judge(args) -> dict:
    from chainrule.evaluation.textscore import load_model_and_tokenizer
    from chainrule.models.pretrained import default_cache_dir
    from chainrule.preferences.judge import judge_agreement, label_preferences
    from chainrule.preferences.rewards import parse_reward
    from chainrule.preferences.runs import load_judge, select_pairs

    judge_dir = str(args.body or default_cache_dir() / "models" / "smollm2-135m-instruct")
    word = args.reward.partition(":")[2]
    out: dict = {"judge": "SmolLM2-135M-Instruct (chat template), both orders"}
    # AI feedback on the verifiable task: does the judge find the word the reward looks for?
    start, tok = load_model_and_tokenizer(_start_model(Path(args.work) / "sft_start",
                                                       args.start_iters))
    j = load_judge(judge_dir, f"Choose the response that contains the word '{word}'.")
    t0 = time.perf_counter()
    _, _, rep = label_preferences(start, tok, _prompts(args.judge_prompts, 0)[0], j,
                                      reward=parse_reward(args.reward),
                                      max_new_tokens=args.tokens, seed=3)
    out["verifiable"] = {"reward": args.reward, "pairs": rep.pairs, "compared": rep.compared,
                         "agreement": rep.agreement, "position_bias": rep.mean_position_bias,
                         "seconds": time.perf_counter() - t0}
    print(json.dumps(out["verifiable"]), flush=True)
    # HH-RLHF human labels (short prompts only: the judge reads the whole dialogue twice)
    test, _ = select_pairs(HH, "test")
    short = [p for p in test if len(p.prompt) + len(p.chosen) + len(p.rejected) < 700]
    t0 = time.perf_counter()
    out["hh"] = {**judge_agreement(load_judge(judge_dir), short[: args.judge_pairs]),
                 "seconds": time.perf_counter() - t0}
    return out


def trl_parity(args) -> dict:
    import datasets
    from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer, RewardConfig, RewardTrainer

    from chainrule.models.gpt import hf_gpt2_config_kwargs, to_hf_gpt2
    from chainrule.models.neural import build_neural_model
    from chainrule.preferences.data import PreferencePair, encode_pairs, pad_batch
    from chainrule.preferences.reward_model import RewardModel
    from chainrule.tokenizers import train_tokenizer
    from chainrule.training.preference_losses import (
        bradley_terry_loss,
        dpo_loss,
        response_logprobs,
    )

    text = SHAKESPEARE.read_text()[:20000]
    tok = train_tokenizer("char", [text])
    torch.manual_seed(0)
    model = build_neural_model("gpt", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                               eos_id=tok.eos_id, n_layer=2, n_head=2, n_embd=64,
                               block_size=128, bias=True).eval()
    lines = [x for x in text.split("\n") if len(x) > 20][: 2 * args.batch]
    pairs = [PreferencePair(a[:10], a[10:40], b[10:40]) for a, b in zip(lines[::2], lines[1::2])]
    enc = encode_pairs(pairs, tok, bos_id=tok.bos_id, eos_id=tok.eos_id, max_length=64)
    rows = [e.chosen for e in enc] + [e.rejected for e in enc]
    masks = [e.chosen_mask for e in enc] + [e.rejected_mask for e in enc]
    ids, mask, lengths = pad_batch(rows, masks, tok.eos_id)
    B = len(enc)
    out: dict = {"batch_pairs": B, "beta": args.beta}
    # GPT2ForSequenceClassification scores the last token that is not pad_token_id: pad with
    # an id the text never uses (ours pads with EOS, which also ends every sequence)
    unused = min(set(range(tok.vocab_size)) - set(ids.flatten().tolist()))

    # -- DPO: reference = the same weights (a frozen copy), so the policy's loss is log 2 only
    # at step 0; perturb the policy so the comparison is not trivial
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    with torch.no_grad():
        rl = response_logprobs(ref, ids, mask)
    ours = dpo_loss(*response_logprobs(model, ids, mask).split(B), *rl.split(B), beta=args.beta)
    hf_policy, hf_ref = to_hf_gpt2(model), to_hf_gpt2(ref)
    with tempfile.TemporaryDirectory() as tmp:
        hf_tok = PreTrainedTokenizerFast(tokenizer_object=_hf_tokenizer(tok, unused),
                                         pad_token="<pad>", eos_token="<eos>")
        ds = datasets.Dataset.from_dict({"prompt": [p.prompt for p in pairs],
                                         "chosen": [p.chosen for p in pairs],
                                         "rejected": [p.rejected for p in pairs]})
        # bf16=False: TRL otherwise runs the frozen reference under CPU bf16 autocast
        cfg = TRLDPOConfig(output_dir=tmp, beta=args.beta, per_device_train_batch_size=B,
                           report_to=[], learning_rate=1e-3, use_cpu=True, logging_steps=1000,
                           max_steps=1, save_strategy="no", bf16=False)
        trainer = DPOTrainer(model=hf_policy, ref_model=hf_ref, args=cfg, train_dataset=ds,
                             processing_class=hf_tok)
        inputs = {"input_ids": ids, "attention_mask": torch.arange(ids.shape[1])[None] <
                  lengths[:, None], "completion_mask": mask.long()}
        inputs["attention_mask"] = inputs["attention_mask"].long()
        hf_policy.eval()
        with torch.no_grad():
            theirs = trainer._compute_loss(hf_policy, dict(inputs), False)
        theirs = theirs[0] if isinstance(theirs, tuple) else theirs
        out["dpo_loss_ours"] = float(ours.loss.detach())
        out["dpo_loss_trl"] = float(theirs)
        out["dpo_abs_diff"] = abs(out["dpo_loss_ours"] - out["dpo_loss_trl"])
        out["dpo_step_s_ours"], out["dpo_step_s_trl"] = _dpo_step_times(
            model, ref, ids, mask, B, args, trainer, hf_policy, inputs)

    # -- reward model: the same body and head in GPT2ForSequenceClassification
    rm = RewardModel(copy.deepcopy(model), tok, freeze=False)
    torch.nn.init.normal_(rm.head.weight, std=0.5)
    r = rm(ids, lengths)
    ours_bt = bradley_terry_loss(*r.split(B))
    hf_cfg = GPT2Config(**hf_gpt2_config_kwargs(rm.body), num_labels=1, pad_token_id=unused)
    seq = GPT2ForSequenceClassification(hf_cfg)
    seq.transformer.load_state_dict(to_hf_gpt2(rm.body).transformer.state_dict())
    with torch.no_grad():
        seq.score.weight.copy_(rm.head.weight)
    pad_free = ids.clone()
    pad_free[torch.arange(ids.shape[1])[None] >= lengths[:, None]] = hf_cfg.pad_token_id
    with tempfile.TemporaryDirectory() as tmp:
        ds = datasets.Dataset.from_dict({"chosen": [p.prompt + p.chosen for p in pairs],
                                         "rejected": [p.prompt + p.rejected for p in pairs]})
        rcfg = RewardConfig(output_dir=tmp, per_device_train_batch_size=B, report_to=[],
                            use_cpu=True, max_steps=1, save_strategy="no",
                            center_rewards_coefficient=None, bf16=False)
        rt = RewardTrainer(model=seq, args=rcfg, train_dataset=ds, processing_class=hf_tok)
        assert seq.config.pad_token_id == unused
        rinputs = {"input_ids": pad_free, "attention_mask": inputs["attention_mask"]}
        seq.eval()
        theirs_bt = rt.compute_loss(seq, dict(rinputs))
    # the head's bias cancels in r_c - r_r; the sequence classifier has none
    out["rm_loss_ours"] = float(ours_bt.detach())
    out["rm_loss_trl"] = float(theirs_bt)
    out["rm_abs_diff"] = abs(float(ours_bt) - float(theirs_bt))
    return out


def _hf_tokenizer(tok, pad_id: int):
    """A ``tokenizers.Tokenizer`` only used for TRL's constructors (we feed TRL token ids):
    id ``pad_id`` is its pad token, our EOS its EOS."""
    from tokenizers import Tokenizer, models

    vocab = {f"<{i}>": i for i in range(tok.vocab_size)}
    vocab = {k: v for k, v in vocab.items() if v not in (pad_id, tok.eos_id)}
    vocab["<pad>"], vocab["<eos>"] = pad_id, tok.eos_id
    return Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))


def _dpo_step_times(model, ref, ids, mask, B, args, trainer, hf_policy, inputs):
    from chainrule.training.preference_losses import dpo_loss, response_logprobs

    with torch.no_grad():
        rl = response_logprobs(ref, ids, mask)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    hf_opt = torch.optim.AdamW(hf_policy.parameters(), lr=1e-4)
    model.train()
    hf_policy.train()

    def ours():
        loss = dpo_loss(*response_logprobs(model, ids, mask).split(B), *rl.split(B),
                        beta=args.beta).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    def theirs():
        loss = trainer._compute_loss(hf_policy, dict(inputs), False)
        loss = loss[0] if isinstance(loss, tuple) else loss
        hf_opt.zero_grad()
        loss.backward()
        hf_opt.step()

    times = {"ours": [], "trl": []}
    for _ in range(args.repeats):  # interleaved, so load changes hit both alike
        for name, fn in (("ours", ours), ("trl", theirs)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return sorted(times["ours"])[len(times["ours"]) // 2], sorted(times["trl"])[len(times["trl"]) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", choices=("verifiable", "hh", "hh-select", "judge", "trl"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default=str(ROOT / "bench" / "out" / "preferences"))
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--plot", help="reward-vs-KL (verifiable) or calibration (hh) PNG")
    # verifiable
    ap.add_argument("--reward", default="contains:and")
    ap.add_argument("--start-iters", type=int, default=600)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--eval-prompts", type=int, default=32)
    ap.add_argument("--eval-samples", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--rl-steps", type=int, default=40)
    ap.add_argument("--rl-lr", type=float, default=1e-3)
    ap.add_argument("--kl-beta", type=float, default=0.02)
    ap.add_argument("--dpo-lr", type=float, default=5e-4)
    ap.add_argument("--dpo-epochs", type=int, default=3)
    ap.add_argument("--dpo-samples", type=int, default=16, help="samples per prompt for DPO pairs")
    # hh
    ap.add_argument("--body", help="model directory of the reward model's body")
    ap.add_argument("--train-pairs", type=int, default=300)
    ap.add_argument("--test-pairs", type=int, default=0)
    ap.add_argument("--val-pairs", type=int, default=0)
    ap.add_argument("--max-length", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--rm-lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    # judge
    ap.add_argument("--judge-prompts", type=int, default=24)
    ap.add_argument("--judge-pairs", type=int, default=40)
    # trl
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = {"verifiable": verifiable, "hh": hh, "hh-select": hh_select, "judge": judge,
           "trl": trl_parity}[args.part](args)
    res["wall_s"] = time.perf_counter() - t0
    res["threads"] = args.threads
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
