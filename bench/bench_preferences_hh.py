"""HH-RLHF benches (issue 19): a reward model that clears chance, and DPO judged by it.

``rm``: frozen SmolLM2-135M-Instruct features of every pair of the harmless-base file (split
80/10/10 by SHA-256 of the prompt), computed once with ``chainrule.preferences.rm_features``
(length-sorted batches, bf16 autocast, pooling ``last+mean`` so the ``last`` and ``mean``
features are its two halves) and cached on disk in chunks (an interrupted run resumes). For
each pooling and training-set size the head is an L2-regularised logistic regression on
standardised pair differences, its penalty chosen on the validation split; reported on the
test split with its Wilson interval, next to a response-length baseline. The pooling with the
lowest validation loss (all training pairs) is saved as a reward model for ``dpo``.

    nice -n 10 .venv/bin/python bench/bench_preferences_hh.py rm --threads 1 --max-length 128

``dpo``: LoRA DPO of SmolLM2-135M-Instruct on HH training pairs; then one sampled response per
held-out (test-split) prompt from the start and from the tuned policy (same seeds), both scored
by the saved reward model: win rate (Wilson interval), mean reward, KL(tuned || start), length.

    nice -n 10 .venv/bin/python bench/bench_preferences_hh.py dpo --threads 1 --pairs 256

``speed``: CPU seconds per sequence of the feature path before and after ``rm_features``.

    nice -n 10 .venv/bin/python bench/bench_preferences_hh.py speed --threads 1
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"


def _body(args):
    from chainrule.evaluation.textscore import load_model_and_tokenizer
    from chainrule.models.pretrained import default_cache_dir

    body_dir = Path(args.body or default_cache_dir() / "models" / "smollm2-135m-instruct")
    body, tok = load_model_and_tokenizer(body_dir)
    return body_dir, body, tok


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def reward_model(args) -> dict:
    from chainrule.preferences.reward_model import (
        RewardModel,
        pairwise_report,
        plot_calibration,
        save_reward_model,
    )
    from chainrule.preferences.rm_features import fit_difference_head, pair_features, select_l2
    from chainrule.preferences.runs import select_pairs

    body_dir, body, tok = _body(args)
    rm = RewardModel(body, tok, freeze=True, body_dir=str(body_dir), pooling="last+mean")
    cache = Path(args.work) / f"hh_features_L{args.max_length}"
    kw = {"batch_size": 16, "bf16": not args.fp32, "cache_dir": cache}
    feats, lengths, t0, cpu0 = {}, {}, time.perf_counter(), time.process_time()
    for split in ("test", "validation", "train"):
        pairs, _ = select_pairs(HH, split, limit=args.train_pairs if split == "train" else 0)
        enc = rm.encode(pairs, args.max_length)
        lengths[split] = torch.tensor([[len(tok.encode(p.chosen)), len(tok.encode(p.rejected))]
                                       for p in pairs])
        parts = [pair_features(rm, enc[i : i + args.block], **kw)
                 for i in range(0, len(enc), args.block)]
        feats[split] = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
        _log(f"{split}: {len(enc)} pairs, {time.perf_counter() - t0:.0f}s wall, "
             f"{time.process_time() - cpu0:.0f}s CPU")
    features_s, features_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    width = feats["test"][0].shape[1] // 2
    slices = {"last": slice(0, width), "mean": slice(width, 2 * width),
              "last+mean": slice(0, 2 * width)}
    n_train = len(feats["train"][0])
    sizes = sorted({min(300, n_train), n_train})
    rows, best = [], None
    for pooling, sl in slices.items():
        for n in sizes:
            tr = (feats["train"][0][:n, sl], feats["train"][1][:n, sl])
            va = (feats["validation"][0][:, sl], feats["validation"][1][:, sl])
            l2, grid = select_l2(tr, va)
            w, b = fit_difference_head(*tr, l2)
            test = pairwise_report(((feats["test"][0][:, sl] - feats["test"][1][:, sl]) @ w)
                                   .tolist())
            val = next(r for r in grid if r["l2"] == l2)
            row = {"pooling": pooling, "train_pairs": n, "l2": l2,
                   "validation_loss": val["validation_loss"],
                   "validation_accuracy": val["validation_accuracy"],
                   "test_accuracy": test["accuracy"], "test_interval": test["interval"],
                   "test_ece": test["ece"]}
            rows.append(row)
            _log(json.dumps(row))
            if n == n_train and (best is None or row["validation_loss"] < best[0]["validation_loss"]):
                best = (row, w, b, test)
    # a baseline with no model: the shorter response is the chosen one
    lt = lengths["test"].double()
    shorter = ((lt[:, 1] - lt[:, 0]) / (lt.sum(1) + 1)).tolist()
    out = {"body": "SmolLM2-135M-Instruct, frozen", "max_length": args.max_length,
           "bf16": not args.fp32, "pairs": {k: len(v[0]) for k, v in feats.items()},
           "features_s": features_s, "features_cpu_s": features_cpu, "runs": rows,
           "shorter_response_baseline": pairwise_report(shorter)["accuracy"]}
    row, w, b, test = best
    final = RewardModel(body, tok, freeze=True, body_dir=str(body_dir), pooling=row["pooling"])
    with torch.no_grad():
        final.head.weight.copy_(w.view(1, -1))
        final.head.bias.copy_(b.view(1))
    save_reward_model(final, Path(args.work) / "hh-rm")
    out["saved"] = {**row, "dir": str(Path(args.work) / "hh-rm")}
    if args.plot:
        plot_calibration(test, args.plot, title=f"HH-RLHF reward model (frozen SmolLM2, "
                         f"{row['pooling']} pooling, {row['train_pairs']} pairs)")
    return out


def speed(args) -> dict:
    """Same run, interleaved twice: the feature path before rm_features (fp32, batches of 16
    in file order, last token) against the new one (bf16, length-sorted, last+mean); CPU
    seconds per sequence on training pairs 1800-1831 (no earlier run cached them)."""
    from chainrule.preferences.data import pad_batch
    from chainrule.preferences.reward_model import RewardModel
    from chainrule.preferences.rm_features import pair_features
    from chainrule.preferences.runs import select_pairs

    body_dir, body, tok = _body(args)
    rm = RewardModel(body, tok, freeze=True, body_dir=str(body_dir), pooling="last+mean")
    enc = rm.encode(select_pairs(HH, "train")[0][1800:1832], args.max_length)
    rows = [e.chosen for e in enc] + [e.rejected for e in enc]

    def old():
        with torch.no_grad():
            for i in range(0, len(rows), 16):
                ids, _, lengths = pad_batch(rows[i : i + 16], [[]] * len(rows[i : i + 16]),
                                            body.eos_id)
                h, _ = body.hidden(ids)
                h[torch.arange(len(ids)), lengths - 1]

    out: dict = {"old": [], "new": []}
    for name, fn in (("old", old), ("new", lambda: pair_features(rm, enc, bf16=True)),) * 2:
        c = time.process_time()
        fn()
        out[name].append((time.process_time() - c) / len(rows))
    out["ratio"] = sum(out["old"]) / sum(out["new"])
    return out


def dpo(args) -> dict:
    from chainrule.models.lora import merge_lora
    from chainrule.preferences.data import encode_pairs
    from chainrule.preferences.dpo import (
        DPOConfig,
        implicit_reward_report,
        reference_logps,
        train_dpo,
    )
    from chainrule.preferences.evaluate import evaluate_policy
    from chainrule.preferences.reward_model import load_reward_model
    from chainrule.preferences.runs import select_pairs

    _, policy, tok = _body(args)
    start = copy.deepcopy(policy)
    enc = {"bos_id": policy.bos_id, "eos_id": policy.eos_id, "max_length": args.max_length}
    train, _ = select_pairs(HH, "train", limit=args.pairs)
    held, _ = select_pairs(HH, "validation", limit=args.eval_pairs)
    held_enc = encode_pairs(held, tok, **enc)
    cfg = DPOConfig(beta=args.beta, lr=args.lr, epochs=args.epochs, batch_size=args.batch,
                    lora_rank=args.lora_rank, lora_targets=("c_attn", "c_proj"))
    # float32 throughout: under bf16 autocast the summed log-probabilities (hundreds of nats,
    # 3 significant digits) lose the small policy-reference differences DPO learns from
    t0 = time.perf_counter()
    held_ref = reference_logps(policy, held_enc, policy.eos_id, cfg.batch_size)
    history = train_dpo(policy, encode_pairs(train, tok, **enc), cfg, pad_id=policy.eos_id,
                        log=_log)
    train_s = time.perf_counter() - t0
    implicit = implicit_reward_report(policy, held_enc, held_ref, cfg, policy.eos_id)
    _log(f"DPO done in {train_s:.0f}s; held-out implicit reward {json.dumps(implicit)}")
    merge_lora(policy)
    # held-out prompts: test-split prompts short enough to generate from quickly
    test, _ = select_pairs(HH, "test")
    prompts = [p for p in dict.fromkeys(q.prompt for q in test)
               if len(tok.encode(p)) <= args.prompt_tokens][: args.prompts]
    rm = load_reward_model(Path(args.work) / "hh-rm")
    t0 = time.perf_counter()
    ev = evaluate_policy(policy, start, tok, prompts, rm, max_new_tokens=args.tokens,
                         temperature=args.temperature, seed=1)
    ev["eval_s"] = time.perf_counter() - t0
    return {"policy": "SmolLM2-135M-Instruct", "config": {**vars(args)}, "train_pairs": len(train),
            "steps": len(history), "train_s": train_s, "final_step": history[-1],
            "held_out_implicit": implicit, "evaluation": ev}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", choices=("rm", "dpo", "speed"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default=str(ROOT / "bench" / "out" / "preferences"))
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--body", help="model directory (default: the cached SmolLM2)")
    ap.add_argument("--max-length", type=int, default=128)
    # rm
    ap.add_argument("--train-pairs", type=int, default=0, help="0: the whole training split")
    ap.add_argument("--block", type=int, default=256, help="pairs per feature pass (resumable)")
    ap.add_argument("--fp32", action="store_true", help="features without bf16 autocast")
    ap.add_argument("--plot", help="calibration PNG of the saved reward model")
    # dpo
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--eval-pairs", type=int, default=64)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lora-rank", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--prompt-tokens", type=int, default=80)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = {"rm": reward_model, "dpo": dpo, "speed": speed}[args.part](args)
    res["wall_s"] = time.perf_counter() - t0
    res["threads"] = args.threads
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
