"""Does instruction tuning on some tasks help on tasks never tuned on? (issue 18; Sanh et al.
2022 at 135M parameters, on two CPU cores.)

Base model: SmolLM2-135M-Instruct as imported (a GPT pretrained here knows no capitals,
currencies or English morphology, so every task below would score 0 before and after tuning).
Tasks: the prompting harness's relation tasks and Multi30k (src/chainrule/prompting/tasks),
split **by task** into held-in (tuned on: their demonstration pools, never their test sets)
and held-out (never tuned on). Every held-in example becomes one chat with one of several
instruction phrasings (``chainrule.data.instructions.build_instruction_data``), one of which is
the harness's own zero-shot chat form (``instruction + "\\n\\n" + "{x} →"``).

Three models are evaluated zero-shot in the chat format by the prompting harness on the test
sets of the held-out tasks (and a few held-in ones for reference): the base, the base tuned in
full, and the base tuned with LoRA (r = 8 on q, v), all on the same chats with the same steps.
Exact match is the task's metric; "contains" (the gold answer appears as words in the reply)
separates learning the *answer format* (one word) from knowing the answer.

Each stage runs in its own process and writes JSON into ``--work`` (a rerun skips finished
stages): ``data``, ``train-full``, ``train-lora``, ``eval-<model>``, then the report
(``results.md``, ``results.json``, ``generalise.png``).

    nice -n 10 .venv/bin/python bench/bench_sft_generalise.py --work /tmp/sftgen --steps 20
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

SMOL = Path.home() / ".cache/chainrule/models/smollm2-135m-instruct"

HELD_IN = ["capital-common-countries", "capital-world", "city-in-state",
           "gram1-adjective-to-adverb", "gram2-opposite", "gram3-comparative",
           "gram5-present-participle", "gram8-plural", "multi30k-de-en"]
# held-out task -> the nearest held-in task ("" when no held-in task is of its kind)
HELD_OUT = {"currency": "", "family": "", "gram4-superlative": "gram3-comparative",
            "gram6-nationality-adjective": "", "gram7-past-tense": "gram5-present-participle",
            "gram9-plural-verbs": "gram8-plural", "multi30k-en-de": "multi30k-de-en"}
HELD_IN_EVAL = ["capital-world", "gram3-comparative", "gram8-plural"]

# Extra phrasings of the held-in tasks (the harness's own form is always added).
PHRASINGS = {
    "capital-common-countries": ["Which country has {input} as its capital? Reply with the "
                                 + "country's name only.", "{input} is the capital of"],
    "capital-world": ["Which country has {input} as its capital? Reply with the country's "
                      + "name only.", "Name the country whose capital city is {input}."],
    "city-in-state": ["In which US state is the city of {input}? Give just the state.",
                      "{input} is a city in the US state of"],
    "gram1-adjective-to-adverb": ["Turn the adjective '{input}' into an adverb. One word.",
                                  "Adverb of {input}:"],
    "gram2-opposite": ["Write the opposite of '{input}' (one word).",
                       "The antonym of {input} is"],
    "gram3-comparative": ["What is the comparative form of '{input}'? One word only.",
                          "{input}, comparative:"],
    "gram5-present-participle": ["Write the -ing form of the verb '{input}'.",
                                 "Present participle of {input}:"],
    "gram8-plural": ["What is the plural of '{input}'? One word only.", "One {input}, two"],
    "multi30k-de-en": ["Translate into English: {input}",
                       "What does this German sentence mean in English?\n{input}"],
}
MT_TRAIN = 40  # Multi30k pool sentences tuned on (the pool is the 1,014-sentence val set)


def _run_stages(args: argparse.Namespace, stages: list[str]) -> None:
    """Run the unfinished stages side by side, each in its own process (on a shared, busy
    machine the full and LoRA runs then see the same load)."""
    procs = {}
    for stage in stages:
        if (args.work / f"{stage}.json").exists():
            continue
        cmd = [sys.executable, __file__, "--work", str(args.work), "--steps", str(args.steps),
               "--threads", str(args.threads), "--mt-limit", str(args.mt_limit),
               "--held-in-limit", str(args.held_in_limit), "--seed", str(args.seed),
               "--stage", stage]
        procs[stage] = (subprocess.Popen(cmd), time.perf_counter())
    for stage, (proc, t) in procs.items():
        if proc.wait() != 0:
            sys.exit(f"stage {stage} failed")
        print(f"[{stage}] {time.perf_counter() - t:.0f} s; "
              + subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip(),
              flush=True)


def stage_data(args: argparse.Namespace) -> None:
    from chainrule.data.instructions import build_instruction_data, write_chats
    from chainrule.prompting import load_task, task_examples
    from chainrule.prompting.instruction_rows import harness_phrasing, split_rows

    rows, phrasings = [], {}
    for name in [*HELD_IN, *HELD_OUT]:
        task = load_task(name)
        r = split_rows(task, task_examples(task), "pool")
        if name.startswith("multi30k"):
            r = random.Random(0).sample(r, MT_TRAIN)
        rows += r
        phrasings[name] = [harness_phrasing(task), *PHRASINGS.get(name, [])]
    held_in, held_out, report = build_instruction_data(rows, phrasings,
                                                       held_out_tasks=list(HELD_OUT),
                                                       seed=args.seed)
    write_chats(args.work / "held_in.jsonl", held_in)
    write_chats(args.work / "held_out.jsonl", held_out)
    (args.work / "data.json").write_text(json.dumps({**report, "held_in_chats": len(held_in)},
                                                    indent=1))


def stage_train(args: argparse.Namespace, mode: str) -> None:
    import torch

    from chainrule.models.lora import LoRAConfig
    from chainrule.training.sft import read_sft_jsonl
    from chainrule.training.sft_run import finetune

    torch.set_num_threads(args.threads)
    lora = LoRAConfig(8, 16.0, 0.0, ("q", "v")) if mode == "lora" else None
    lr = 1e-3 if mode == "lora" else 1e-4
    t = time.perf_counter()
    s = finetune(SMOL, read_sft_jsonl(args.work / "held_in.jsonl"), args.work / mode, lora=lora,
                 progress=False, plot=False,
                 overrides=[f"max_iters={args.steps}", f"learning_rate={lr}", "batch_size=2",
                            "block_size=112", f"eval_interval={args.steps}", "eval_iters=4",
                            "warmup_iters=2", f"seed={args.seed}"])
    out = {"mode": mode, "lr": lr, "trainable": s["sft"]["trainable_parameters"],
           "parameters": s["sft"]["parameters"], "ms_per_step": s["ms_per_iter"],
           "val_loss": s["final_val_loss"], "train_loss": s.get("final_train_loss"),
           "examples": s["sft"]["examples"], "wall_s": time.perf_counter() - t,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    (args.work / f"train-{mode}.json").write_text(json.dumps(out, indent=1))


def stage_eval(args: argparse.Namespace, name: str) -> None:
    import torch

    from chainrule.models import load_model
    from chainrule.prompting import ModelEntry, evaluate_task, load_task, task_examples
    from chainrule.tokenizers import load_tokenizer
    from chainrule.tokenizers.chat import load_chat_template

    torch.set_num_threads(args.threads)
    d = SMOL if name == "base" else args.work / name
    entry = ModelEntry(name, load_model(d), load_tokenizer(d), load_chat_template(d))
    out = {}
    for task_name in [*HELD_OUT, *HELD_IN_EVAL]:
        task = load_task(task_name)
        limit = (args.mt_limit if task_name.startswith("multi30k") else
                 args.held_in_limit if task_name in HELD_IN_EVAL else None)
        t = time.perf_counter()
        rep = evaluate_task([entry], task, task_examples(task), shots=[0], seeds=1,
                            formats=("chat",), limit=limit, batch_size=8)
        out[task_name] = {"metric": task.metric, "score": rep.rows[0][task.metric],
                          "seconds": time.perf_counter() - t,
                          "records": [{"gold": r.gold, "prediction": r.prediction,
                                       "correct": r.correct} for r in rep.records]}
        print(f"  {name} {task_name}: {task.metric} {out[task_name]['score']:.3f}", flush=True)
    (args.work / f"eval-{name}.json").write_text(json.dumps(out, indent=1, ensure_ascii=False))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def contains(gold: str, prediction: str) -> bool:
    """The gold answer's words appear, in order and adjacent, among the reply's words."""
    g, p = _words(gold), _words(prediction)
    return bool(g) and any(p[i:i + len(g)] == g for i in range(len(p) - len(g) + 1))


def report(args: argparse.Namespace) -> None:
    models = ["base", "full", "lora"]
    ev = {m: json.loads((args.work / f"eval-{m}.json").read_text()) for m in models}
    tr = {m: json.loads((args.work / f"train-{m}.json").read_text()) for m in ("full", "lora")}
    lines = ["| task | nearest held-in task | n | " + " | ".join(
        f"{m} EM | {m} contains" for m in models) + " |", "|---|---|---|" + "---|---|" * 3]
    pooled = {m: [] for m in models}
    summary: dict = {"tasks": {}}
    for t in [*HELD_OUT, *HELD_IN_EVAL]:
        side = "held-out" if t in HELD_OUT else "held-in"
        recs = {m: ev[m][t]["records"] for m in models}
        n = len(recs["base"])
        if ev["base"][t]["metric"] == "chrf":
            cells = " | ".join(f"chrF {ev[m][t]['score']:.1f} | –" for m in models)
        else:
            cont = {m: sum(contains(r["gold"], r["prediction"]) for r in recs[m]) / n
                    for m in models}
            cells = " | ".join(f"{ev[m][t]['score']:.2f} | {cont[m]:.2f}" for m in models)
            if side == "held-out":
                for m in models:
                    pooled[m] += [(r["correct"], contains(r["gold"], r["prediction"]))
                                  for r in recs[m]]
        near = HELD_OUT.get(t, "(held in)") or "none"
        lines.append(f"| {t} ({side}) | {near} | {n} | {cells} |")
        summary["tasks"][t] = {m: ev[m][t]["score"] for m in models}
    n = len(pooled["base"])
    lines.append(f"| **held-out relations, pooled** | | {n} | " + " | ".join(
        f"**{sum(c for c, _ in pooled[m]) / n:.2f}** | **{sum(k for _, k in pooled[m]) / n:.2f}**"
        for m in models) + " |")
    for m in ("full", "lora"):  # paired: which examples changed (McNemar's discordant pairs)
        up = sum(not b[0] and x[0] for b, x in zip(pooled["base"], pooled[m]))
        down = sum(b[0] and not x[0] for b, x in zip(pooled["base"], pooled[m]))
        summary[f"{m}_vs_base_em"] = {"gained": up, "lost": down}
        lines.append(f"\n{m} vs base on the pooled held-out relations (exact match): "
                     f"{up} examples gained, {down} lost (two-sided sign test p = "
                     f"{_sign_p(up, down):.3g}).")
    lines += ["", "| run | lr | trainable | share | ms/step | peak RSS | held-out-chat loss |",
              "|---|---|---|---|---|---|---|"]
    for m in ("full", "lora"):
        r = tr[m]
        lines.append(f"| {m} | {r['lr']:g} | {r['trainable']:,} | "
                     f"{100 * r['trainable'] / r['parameters']:.2f}% | {r['ms_per_step']:.0f} | "
                     f"{r['peak_rss_mb']:.0f} MB | {r['val_loss']:.3f} |")
    text = "\n".join(lines)
    print(text)
    (args.work / "results.md").write_text(text + "\n")
    (args.work / "results.json").write_text(json.dumps({**summary, "train": tr}, indent=1))
    _plot(args.work, ev, models)


def _sign_p(up: int, down: int) -> float:
    from math import comb

    n, k = up + down, min(up, down)
    return 1.0 if n == 0 else min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n)


def _plot(work: Path, ev: dict, models: list[str]) -> None:
    from chainrule.evaluation.plots import have_matplotlib

    if not have_matplotlib():
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in [*HELD_OUT, *HELD_IN_EVAL] if ev["base"][t]["metric"] != "chrf"]
    fig, ax = plt.subplots(figsize=(10, 4))
    w = 0.27
    for i, m in enumerate(models):
        ax.bar([j + (i - 1) * w for j in range(len(tasks))], [ev[m][t]["score"] for t in tasks],
               w, label=m)
    ax.set_xticks(range(len(tasks)),
                  [t + ("" if t in HELD_OUT else "\n(held in)") for t in tasks], rotation=30,
                  ha="right", fontsize=8)
    ax.set_ylabel("zero-shot exact match")
    ax.set_title("SmolLM2-135M-Instruct: base vs tuned on other tasks (full, LoRA)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(work / "generalise.png", dpi=120)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--work", type=Path, default=Path("/tmp/bench_sft_generalise"))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="torch threads per stage")
    p.add_argument("--mt-limit", type=int, default=8, help="Multi30k test sentences")
    p.add_argument("--held-in-limit", type=int, default=8,
                   help="test examples of each held-in reference task")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the phrasings drawn, the held-out chats and the training order")
    p.add_argument("--stage", default="all")
    args = p.parse_args()
    if not (SMOL / "config.json").is_file():
        sys.exit(f"{SMOL} is missing; run `chainrule pretrained get smollm2-135m-instruct` first.")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.stage == "data":
        return stage_data(args)
    if args.stage.startswith("train-"):
        return stage_train(args, args.stage[6:])
    if args.stage.startswith("eval-"):
        return stage_eval(args, args.stage[5:])
    if args.stage == "report":
        return report(args)
    print(subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip(), flush=True)
    _run_stages(args, ["data"])
    _run_stages(args, ["train-full", "train-lora", "eval-base"])
    _run_stages(args, ["eval-full", "eval-lora"])
    report(args)


if __name__ == "__main__":
    main()
