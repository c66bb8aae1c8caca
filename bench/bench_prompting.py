"""Few-shot prompting of SmolLM2-135M-Instruct: accuracy against shots on every word-relation
task, Multi30k chrF from 0 to 8 shots, and one task run by transformers on the same weights and
the same prompt ids (scores should agree within noise; both run times reported).

    nice -n 10 .venv/bin/python bench/bench_prompting.py --threads 1 --limit 24 --seeds 2 \
        --out /tmp/bench_prompting

    # acc/acc_norm against a slow transformers reference, 20 Brown excerpts x 15 genres:
    nice -n 10 .venv/bin/python bench/bench_prompting.py --threads 1 --limit 20 --shots 0 \
        --mc-reference brown-genre --out /tmp/bench_prompting

Needs the imported model (``chainrule pretrained get smollm2-135m-instruct``) and, for the peer,
transformers + gguf + accelerate (the ``bench`` extra). Reads ../shared/data (or --data-root).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from chainrule.models import load_model
from chainrule.models.pretrained import default_cache_dir, smollm2_path
from chainrule.prompting import (
    ModelEntry,
    PromptBuilder,
    evaluate_task,
    format_table,
    load_task,
    sample_demos,
    split_examples,
    task_examples,
)
from chainrule.prompting.builders import analogy_sections, data_root
from chainrule.prompting.evaluate import subsample, write_report
from chainrule.prompting.metrics import normalise
from chainrule.tokenizers import load_tokenizer
from chainrule.tokenizers.chat import load_chat_template


def hf_answers(hf, builder: PromptBuilder, pool, test, shots: int, seed: int, bos: int,
               stop_ids: list[int], max_new: int, batch: int = 16) -> list[str]:
    """Greedy answers from transformers on exactly the prompt ids chainrule's harness uses."""
    task, tok = builder.task, builder.tokenizer
    rows = []
    for i, ex in enumerate(test):
        demos = sample_demos(task, pool, ex, shots, seed, i)
        rows.append([bos, *builder.encode(builder.text(demos, ex))])
    out = []
    for s in range(0, len(rows), batch):
        chunk = rows[s : s + batch]
        T = max(len(r) for r in chunk)
        ids = torch.full((len(chunk), T), stop_ids[0], dtype=torch.long)
        mask = torch.zeros((len(chunk), T), dtype=torch.long)
        for r, row in enumerate(chunk):  # left padding
            ids[r, T - len(row):] = torch.tensor(row)
            mask[r, T - len(row):] = 1
        with torch.no_grad():
            gen = hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new,
                              do_sample=False, eos_token_id=stop_ids, pad_token_id=stop_ids[0])
        for r in range(len(chunk)):
            new = [t for t in gen[r, T:].tolist() if t not in (2,)]
            text = tok.decode(new)
            for st in builder.stop:
                text = text.split(st, 1)[0]
            out.append(text.strip())
    return out


def mc_cache_speedup(model, tok, name: str, root, limit: int, shots: list[int],
                     seeds: int) -> dict:
    """Multiple choice scored two ways in the same run: every prompt + choice rescored from
    scratch, and each prompt encoded once with its choices fed as continuations of its cached
    state (``prefix_cache``). The order alternates per condition; log-probs must agree."""
    from chainrule.prompting.harness import run_condition

    task = load_task(name)
    pool, test = split_examples(task, task_examples(task, root))
    test = subsample(test, limit)
    builder = PromptBuilder(task, tok, "plain", None, model.bos_id)
    times = {False: 0.0, True: 0.0}
    worst, same, n, acc = 0.0, 0, 0, {}
    conditions = [(k, s) for k in shots for s in range(1 if k == 0 else seeds)]
    for j, (k, seed) in enumerate(conditions):
        recs = {}
        for cache in ((False, True) if j % 2 == 0 else (True, False)):
            t0 = time.perf_counter()
            recs[cache] = run_condition(model, builder, pool, test, k, seed, prefix_cache=cache)
            times[cache] += time.perf_counter() - t0
        for a, b in zip(recs[False], recs[True]):
            worst = max(worst, max(abs(x - y) for x, y in zip(a.choice_logprobs,
                                                                b.choice_logprobs)))
            same += (a.prediction, a.correct_norm) == (b.prediction, b.correct_norm)
            n += 1
        acc.setdefault(k, []).append(sum(r.correct for r in recs[True]) / len(test))
        print(f"{name} {k}-shot seed {seed}: scratch {times[False]:.1f} s, cached "
              f"{times[True]:.1f} s so far; max |Δ log-prob| {worst:.1e}", flush=True)
    res = {"task": name, "examples": len(test), "choices": len(task.choices_of(test[0])),
           "seconds_scratch": times[False], "seconds_cached": times[True],
           "speedup": times[False] / times[True], "max_abs_logprob_diff": worst,
           "same_predictions": same / n, "acc": {k: float(np.mean(v)) for k, v in acc.items()},
           "load": os.getloadavg()}
    print(json.dumps(res), flush=True)
    return res


def mc_reference(model, tok, name: str, root, limit: int, shots: int) -> dict:
    """lm-evaluation-harness conventions on a real multiple-choice task: chainrule's harness
    (batched, prompt cache) against the slow reference of :mod:`chainrule.testing.mc_reference`
    run on transformers' model and tokenizer of the same GGUF weights (one forward pass per
    choice, acc = argmax of the summed log-probs, acc_norm = argmax of the sum / len(choice))."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chainrule.prompting.harness import run_condition
    from chainrule.prompting.metrics import pick
    from chainrule.testing.mc_reference import reference_multiple_choice

    task = load_task(name)
    pool, test = split_examples(task, task_examples(task, root))
    test = subsample(test, limit)
    t0, c0 = time.perf_counter(), time.process_time()
    recs = run_condition(model, PromptBuilder(task, tok, "plain", None, model.bos_id), pool,
                         test, shots, 0)
    ours = (time.perf_counter() - t0, time.process_time() - c0)
    gguf = smollm2_path(download=False)
    hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                              dtype=torch.float32).eval()
    hf_tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    choices = [task.choices_of(ex) for ex in test]
    golds = [c.index(task.gold(ex)) if isinstance(task.gold(ex), str) else int(task.gold(ex))
             for c, ex in zip(choices, test)]
    t0, c0 = time.perf_counter(), time.process_time()
    ref = reference_multiple_choice(
        lambda ids: hf(ids).logits, lambda s: hf_tok(s, add_special_tokens=False).input_ids,
        [r.prompt for r in recs], choices, golds, delimiter=task.target_delimiter,
        prefix=[model.bos_id])
    theirs = (time.perf_counter() - t0, time.process_time() - c0)
    worst = max(abs(a - b) for r, lp in zip(recs, ref["logprobs"])
                for a, b in zip(r.choice_logprobs, lp))
    same_ids = sum(tok.encode(r.prompt) == hf_tok(r.prompt, add_special_tokens=False).input_ids
                   for r in recs)
    res = {"task": name, "shots": shots, "examples": len(test), "choices": len(choices[0]),
           "acc": float(np.mean([r.correct for r in recs])),
           "acc_norm": float(np.mean([r.correct_norm for r in recs])),
           "reference_acc": float(np.mean(ref["acc"])),
           "reference_acc_norm": float(np.mean(ref["acc_norm"])),
           "same_acc": sum(int(r.correct) == a for r, a in zip(recs, ref["acc"])),
           "same_acc_norm": sum(int(r.correct_norm) == a
                                for r, a in zip(recs, ref["acc_norm"])),
           "same_pred": sum(c.index(r.prediction) == i
                            for c, r, i in zip(choices, recs, ref["pred"])),
           "same_pred_norm": sum(pick(r.choice_logprobs, c)[1] == i
                                 for c, r, i in zip(choices, recs, ref["pred_norm"])),
           "pred_differs_from_pred_norm": sum(a != b for a, b in zip(ref["pred"],
                                                                    ref["pred_norm"])),
           "acc_differs_from_acc_norm": sum(r.correct != r.correct_norm for r in recs),
           "max_abs_logprob_diff": worst, "prompts_tokenised_identically": same_ids,
           "seconds_chainrule": ours, "seconds_reference": theirs, "load": os.getloadavg()}
    print(json.dumps(res), flush=True)
    return res


def plot_relations(tasks: dict, path: Path) -> Path:
    """Every relation task's exact match against shots in one figure (one line per task)."""
    from chainrule.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    names = [n for n in tasks if not n.startswith("multi30k")]
    shots = sorted({r["shots"] for n in names for r in tasks[n]["rows"]})
    for i, name in enumerate(names):
        rows = sorted(tasks[name]["rows"], key=lambda r: r["shots"])
        ax.plot([shots.index(r["shots"]) for r in rows], [r["exact_match"] for r in rows],
                marker="os^D"[i % 4], linestyle="-" if name.startswith("gram") else "--",
                color=plt.get_cmap("tab20")(i), label=f"{name} (n={rows[0]['n']})")
    ax.set_xticks(range(len(shots)))
    ax.set_xticklabels([str(k) for k in shots])
    ax.set_xlabel("demonstrations in the prompt (shots)")
    ax.set_ylabel("exact match")
    ax.set_title("SmolLM2-135M-Instruct, word relations (questions-words sections)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    out = _save(fig, path)
    plt.close(fig)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=24, help="test examples per task")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--shots", default="0,1,2,4,8")
    ap.add_argument("--mt-limit", type=int, default=24)
    ap.add_argument("--parity-task", default="capital-common-countries")
    ap.add_argument("--tasks", default="", help="comma-separated relation tasks (default all)")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--no-relations", action="store_true")
    ap.add_argument("--no-mt", action="store_true")
    ap.add_argument("--mt-formats", default="plain,chat")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default="/tmp/bench_prompting")
    ap.add_argument("--mc-cache", metavar="TASK", help="only time multiple-choice TASK with and "
                    "without the prompt cache (same run), then stop")
    ap.add_argument("--mc-reference", metavar="TASK", help="only check multiple-choice TASK's "
                    "acc/acc_norm against a slow transformers reference (--limit examples, the "
                    "first of --shots), then stop")
    ap.add_argument("--replot-relations", metavar="SUMMARY", help="only redraw the relation "
                    "curves of a summary.json into --out/relations_shots.png, then stop")
    args = ap.parse_args()
    if args.replot_relations:
        tasks = json.loads(Path(args.replot_relations).read_text())["tasks"]
        print(plot_relations(tasks, Path(args.out) / "relations_shots.png"))
        return 0
    torch.set_num_threads(args.threads)
    shots = [int(s) for s in args.shots.split(",")]
    model_dir = default_cache_dir() / "models" / "smollm2-135m-instruct"
    if not (model_dir / "config.json").is_file():
        sys.exit(f"no imported SmolLM2 at {model_dir}; run chainrule pretrained get "
                 "smollm2-135m-instruct first.")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, threads {args.threads}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()}; test examples per task {args.limit}, seeds {args.seeds}, "
          f"shots {shots}", flush=True)
    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    entry = ModelEntry("smollm2-135m-instruct", model, tok, load_chat_template(model_dir))
    root = data_root(args.data_root)
    if args.mc_reference:
        res = mc_reference(model, tok, args.mc_reference, root, args.limit, shots[0])
        (out / "mc_reference.json").write_text(json.dumps(res, indent=1))
        return 0
    if args.mc_cache:
        res = mc_cache_speedup(model, tok, args.mc_cache, root, args.limit, shots, args.seeds)
        (out / "mc_cache.json").write_text(json.dumps(res, indent=1))
        return 0
    summary: dict = {"limit": args.limit, "seeds": args.seeds, "shots": shots, "tasks": {},
                     "load_start": os.getloadavg()}

    def save() -> None:  # after every stage, so an interrupted run keeps what it measured
        summary["load_end"] = os.getloadavg()
        (out / "summary.json").write_text(json.dumps(summary, indent=1))

    if not args.no_peer:
        from transformers import AutoModelForCausalLM

        gguf = smollm2_path(download=False)
        hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=torch.float32).eval()
        task = load_task(args.parity_task)
        pool, test = split_examples(task, task_examples(task, root))
        test = subsample(test, args.limit)
        builder = PromptBuilder(task, tok, "plain", None, model.bos_id)
        nl = tok.encode("\n")
        stop_ids = [model.eos_id] + ([nl[0]] if len(nl) == 1 else [])
        from chainrule.prompting.harness import run_condition

        parity = []
        t_ours = t_hf = 0.0
        for k in shots:
            for seed in range(1 if k == 0 else args.seeds):
                t0 = time.perf_counter()
                recs = run_condition(model, builder, pool, test, k, seed)
                t_ours += time.perf_counter() - t0
                t0 = time.perf_counter()
                theirs = hf_answers(hf, builder, pool, test, k, seed, model.bos_id, stop_ids,
                                    task.max_new_tokens)
                t_hf += time.perf_counter() - t0
                ours_acc = sum(r.correct for r in recs) / len(recs)
                hf_acc = sum(normalise(a) == normalise(r.gold)
                             for a, r in zip(theirs, recs)) / len(recs)
                same = sum(a == r.prediction for a, r in zip(theirs, recs)) / len(recs)
                parity.append({"shots": k, "seed": seed, "ours": ours_acc, "transformers": hf_acc,
                               "same_answer": same})
                print(f"parity {task.name} {k}-shot seed {seed}: chainrule {ours_acc:.3f}, "
                      f"transformers {hf_acc:.3f}, identical answers {same:.0%}", flush=True)
        summary["parity"] = {"task": task.name, "rows": parity, "seconds_chainrule": t_ours,
                             "seconds_transformers": t_hf}
        print(f"run time on the same prompts: chainrule {t_ours:.1f} s, transformers "
              f"{t_hf:.1f} s (ratio {t_hf / t_ours:.2f})", flush=True)
        del hf
        save()
    relations = args.tasks.split(",") if args.tasks else analogy_sections(root)
    relations = [] if args.no_relations else relations
    for name in relations:
        task = load_task(name)
        t0 = time.perf_counter()
        rep = evaluate_task([entry], task, task_examples(task, root), shots, args.seeds,
                            ("plain",), limit=args.limit)
        write_report(rep, out / name, plot=True)
        summary["tasks"][name] = {"rows": rep.rows, "seconds": time.perf_counter() - t0,
                                  "n_pool": rep.n_pool}
        cells = ", ".join(f"{r['shots']}:{r['exact_match']:.2f}" for r in rep.rows)
        print(f"{name:30s} pool {rep.n_pool:4d}  exact match by shots {cells}  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        save()
    if relations:
        plot_relations(summary["tasks"], out / "relations_shots.png")

    for name in () if args.no_mt else ("multi30k-de-en",):
        task = load_task(name)
        t0 = time.perf_counter()
        rep = evaluate_task([entry], task, task_examples(task, root), shots, args.seeds,
                            tuple(args.mt_formats.split(",")), limit=args.mt_limit)
        write_report(rep, out / name, plot=True)
        summary["tasks"][name] = {"rows": rep.rows, "seconds": time.perf_counter() - t0}
        print(format_table(rep), f"({time.perf_counter() - t0:.0f} s)", flush=True)
        save()
    print(f"wrote {out / 'summary.json'}; load at the end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
