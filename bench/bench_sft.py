"""Fine-tuning benches (issue 18).

``lora-vs-full``: one base model trained here (a character GPT, Tiny Shakespeare), fine-tuned
on the same chats (reverse a three-letter word) in full and with LoRA; each run in its own
process, reporting trainable parameters, step time, peak resident memory, held-out loss and
greedy exact-match accuracy on 50 unseen words.

    .venv/bin/python bench/bench_sft.py lora-vs-full --steps 200

``trl``: the same weights (a tiny random Llama-shaped GPT with a byte-level BPE and ChatML,
exported with ``chainrule export hf``), data (prompt/completion chats), template and
hyperparameters (AdamW lr 1e-3 constant, betas 0.9/0.99, no weight decay, clip 1.0, batch 8,
no packing, completion-only loss) through ``chainrule sft`` and TRL's ``SFTTrainer``: the
masked tokens of one example compared exactly, per-step training losses over the first 50
steps, step time.

    .venv/bin/python bench/bench_sft.py trl --steps 50

Generalisation to held-out tasks (base vs full vs LoRA on SmolLM2-135M-Instruct, zero-shot
through the prompting harness) is bench/bench_sft_generalise.py.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _words(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("abcde") for _ in range(3)) for _ in range(n)]


def _write_data(path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"prompt": w, "completion": w[::-1]}) + "\n"
                     for w in _words(500, 0))


def _accuracy(model_dir: Path, words: list[str]) -> int:
    from chainrule.decoding.config import GenerationConfig
    from chainrule.decoding.generate import generate
    from chainrule.models import load_model
    from chainrule.tokenizers import load_tokenizer
    from chainrule.tokenizers.chat import chat_prompt_ids, render_chat

    model, tok = load_model(model_dir), load_tokenizer(model_dir / "tokenizer.json")
    ids = [chat_prompt_ids(tok, render_chat([{"role": "user", "content": w}], "plain"),
                           model.bos_id) for w in words]
    outs = generate(model, ids, GenerationConfig(strategy="greedy", max_new_tokens=8,
                                                 stop=("\nUser:",)), tokenizer=tok)
    return sum(o[0].text.strip() == w[::-1] for o, w in zip(outs, words))


def one(args: argparse.Namespace) -> None:
    """Child process: one fine-tuning run, JSON on stdout."""
    from chainrule.models.lora import LoRAConfig
    from chainrule.training.sft import read_sft_jsonl
    from chainrule.training.sft_run import finetune

    lora = (LoRAConfig(8, 16.0, 0.0, tuple(args.targets.split(",")))
            if args.mode == "lora" else None)
    out = Path(args.out)
    s = finetune(args.base, read_sft_jsonl(args.data), out, lora=lora, progress=False,
                 plot=False, overrides=[f"max_iters={args.steps}", f"learning_rate={args.lr}",
                                        "eval_interval=100000"])
    print(json.dumps({
        "mode": args.mode, "trainable": s["sft"]["trainable_parameters"],
        "parameters": s["sft"]["parameters"], "ms_per_step": s["ms_per_iter"],
        "val_loss": s["final_val_loss"], "correct": _accuracy(out, _words(50, 1)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def lora_vs_full(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench_sft_"))
    data = tmp / "reverse.jsonl"
    _write_data(data)
    base = tmp / "base"
    subprocess.run([sys.executable, "-m", "chainrule.cli.__main__", "train", "--family", "gpt",
                    "--preset", "shakespeare-char-cpu", "max_iters=200",
                    str(ROOT / "src/chainrule/resources/tinyshakespeare.txt"), "-o", str(base)],
                   check=True, capture_output=True)
    rows = []
    for mode, lr in (("full", 1e-3), ("lora", args.lora_lr)):
        t = time.perf_counter()
        res = subprocess.run([sys.executable, __file__, "_one", "--mode", mode, "--base",
                              str(base), "--data", str(data), "--out", str(tmp / mode),
                              "--steps", str(args.steps), "--lr", str(lr),
                              "--targets", args.targets], check=True, capture_output=True,
                             text=True)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        row["wall_s"], row["lr"] = time.perf_counter() - t, lr
        rows.append(row)
    print("| run | lr | trainable | share | ms/step | peak RSS | held-out loss | exact (of 50) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['lr']:g} | {r['trainable']:,} | "
              f"{100 * r['trainable'] / r['parameters']:.1f}% | {r['ms_per_step']:.1f} | "
              f"{r['peak_rss_mb']:.0f} MB | {r['val_loss']:.4f} | {r['correct']} |")
    print(f"step time lora/full: {rows[1]['ms_per_step'] / rows[0]['ms_per_step']:.2f}")


def trl_parity(args: argparse.Namespace) -> None:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from chainrule.models.hf import export_hf
    from chainrule.models.neural import build_neural_model
    from chainrule.tokenizers import ByteBPETokenizer
    from chainrule.tokenizers.chat import write_chat_template
    from chainrule.training.sft import encode_chat
    from chainrule.training.sft_run import finetune

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_sft_trl_"))
    text = (ROOT / "src/chainrule/resources/tinyshakespeare.txt").read_text()[:20000]
    base_tok = ByteBPETokenizer.train([text], vocab_size=398)
    specials = {**base_tok.special_tokens, "<|im_start|>": 398, "<|im_end|>": 399}
    tok = ByteBPETokenizer([*base_tok.vocab, "<|im_start|>", "<|im_end|>"], base_tok.merges,
                           specials)
    tok.bos_token = "<|im_start|>"  # as SmolLM2: the chat's first token is the BOS
    torch.manual_seed(0)
    model = build_neural_model("gpt", vocab_size=tok.vocab_size, bos_id=tok.bos_id,
                               eos_id=tok.eos_id, n_layer=4, n_head=4, n_kv_head=2,
                               n_embd=128, block_size=128, positions="rotary", norm="rmsnorm",
                               mlp="swiglu", bias=False)
    model.save(tmp / "base")
    tok.save(tmp / "base" / "tokenizer.json")
    write_chat_template(tmp / "base", (
        "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
        "{% endif %}"))
    export_hf(tmp / "base", tmp / "hf")
    rng = random.Random(0)
    words = ["to", "be", "or", "not", "that", "is", "the", "question"]
    chats = []
    for _ in range(800):
        w = " ".join(rng.choice(words) for _ in range(rng.randint(2, 5)))
        chats.append([{"role": "user", "content": "Reverse the words: " + w},
                      {"role": "assistant", "content": " ".join(w.split()[::-1])}])

    hf_tok = AutoTokenizer.from_pretrained(tmp / "hf")
    ds = Dataset.from_list([{"prompt": c[:1], "completion": c[1:]} for c in chats])
    cfg = SFTConfig(output_dir=str(tmp / "trl"), max_steps=args.steps,
                    per_device_train_batch_size=8, learning_rate=1e-3,
                    lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                    adam_beta1=0.9, adam_beta2=0.99, max_grad_norm=1.0, logging_steps=1,
                    completion_only_loss=True, packing=False, max_length=128,
                    report_to="none", use_cpu=True, seed=0, save_strategy="no")
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tmp / "hf"), args=cfg,
                         train_dataset=ds, processing_class=hf_tok)
    theirs_ex = trainer.train_dataset[0]
    ours_ex = encode_chat(chats[0], tok, "chatml", bos_id=tok.bos_id, eos_id=tok.eos_id)
    same_ids = ours_ex.ids == theirs_ex["input_ids"]
    ours_t = [i for i, a in enumerate(ours_ex.answer) if a]
    theirs_t = [i for i, v in enumerate(theirs_ex["labels"]) if v != -100]
    print(f"one example: same ids {same_ids}; answer tokens ours {len(ours_t)}, TRL "
          f"{len(theirs_t)}; TRL's beyond ours: "
          f"{[hf_tok.decode([theirs_ex['input_ids'][i]]) for i in theirs_t if i not in ours_t]}"
          f"; ours beyond TRL's: {[i for i in ours_t if i not in theirs_t]}")
    t = time.perf_counter()
    trainer.train()
    trl_s = time.perf_counter() - t
    trl_loss = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    t = time.perf_counter()
    s = finetune(tmp / "base", chats, tmp / "ours", pack=False, progress=False, plot=False,
                 overrides=[f"max_iters={args.steps}", "batch_size=8", "learning_rate=1e-3",
                            "decay_lr=false", "warmup_iters=0", "beta2=0.99",
                            "weight_decay=0", "grad_clip=1.0", "log_interval=1",
                            "eval_interval=100000", "val_fraction=0", "block_size=128"])
    ours_s = time.perf_counter() - t
    rec = [json.loads(x) for x in (tmp / "ours" / "metrics.jsonl").read_text().splitlines()]
    ours_loss = [r["train_loss"] for r in rec if "tokens_per_s" in r]
    print("| steps | chainrule mean loss | TRL mean loss | difference |")
    print("|---|---|---|---|")
    for a in range(0, args.steps, 10):
        o, h = ours_loss[a:a + 10], trl_loss[a:a + 10]
        mo, mh = sum(o) / len(o), sum(h) / len(h)
        print(f"| {a + 1}-{a + len(o)} | {mo:.3f} | {mh:.3f} | {mo - mh:+.3f} |")
    print(f"ms/step: chainrule {s['ms_per_iter']:.1f} (whole run {1000 * ours_s / args.steps:.1f}"
          f" incl. loading and checkpoints), TRL "
          f"{1000 * trainer.state.log_history[-1]['train_runtime'] / args.steps:.1f} "
          f"(whole train() {1000 * trl_s / args.steps:.1f}); threads {args.threads}")


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("lora-vs-full")
    a.add_argument("--steps", type=int, default=200)
    a.add_argument("--lora-lr", type=float, default=1e-3)
    a.add_argument("--targets", default="q,v,attn.c_proj,c_fc,mlp.c_proj")
    a.set_defaults(func=lora_vs_full)
    t = sub.add_parser("trl")
    t.add_argument("--steps", type=int, default=50)
    t.add_argument("--threads", type=int, default=2)
    t.set_defaults(func=trl_parity)
    o = sub.add_parser("_one")
    for name in ("--mode", "--base", "--data", "--out", "--targets"):
        o.add_argument(name)
    o.add_argument("--steps", type=int)
    o.add_argument("--lr", type=float)
    o.set_defaults(func=one)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
