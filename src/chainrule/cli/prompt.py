"""CLI: ``chainrule prompt eval|tasks|induction`` -- zero- and few-shot prompting.

    chainrule prompt tasks
    chainrule prompt eval MODEL_DIR... --task capital-common-countries --shots 0,1,2,4,8 --seeds 3
    chainrule prompt induction -o runs/induction
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chainrule.cli._output import one_writer


def register(sub) -> None:
    p = sub.add_parser("prompt", help="zero- and few-shot prompting, in-context learning",
                       description="Evaluate models on prompted tasks against the number of "
                       "demonstrations, list the tasks, or train a model that learns to copy "
                       "from its context (induction heads).")
    ps = p.add_subparsers(dest="prompt_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    e = ps.add_parser("eval", help="score models on a task against the number of demonstrations",
                      description="Draw demonstrations from the task's pool (seeded, never the "
                      "test example), prompt every test example, score it (multiple choice: acc "
                      "and acc_norm by log-likelihood; generation: greedy until the stop string), "
                      "and write results.md, results.json, prompts.jsonl and shots.png.")
    e.add_argument("models", nargs="+", metavar="MODEL_DIR")
    e.add_argument("--task", required=True, metavar="NAME|FILE.toml",
                   help="a shipped task (see `chainrule prompt tasks`) or a description file")
    e.add_argument("--shots", default="0,1,2,4,8", metavar="K,K,...",
                   help="numbers of demonstrations (default 0,1,2,4,8)")
    e.add_argument("--seeds", type=int, default=3, metavar="N",
                   help="demonstration draws per number of shots (default 3; 0 shots runs once)")
    e.add_argument("--format", choices=["plain", "chat", "both"], default="both",
                   help="plain completion prompts, the model's chat template, or both (default)")
    e.add_argument("--limit", type=int, default=None, metavar="N",
                   help="test on a fixed random subset of N examples (default: all)")
    e.add_argument("--batch-size", type=int, default=16, metavar="N")
    e.add_argument("--data-root", metavar="DIR",
                   help="the shared data (default: $CHAINRULE_DATA or ../shared/data)")
    e.add_argument("--name", action="append", metavar="NAME",
                   help="the model's name in tables, once per model (default: directory name)")
    e.add_argument("-o", "--out", default="prompt-results", metavar="DIR",
                   help="where the table, JSONL and plot go (default prompt-results)")
    e.add_argument("--device", default=None, help="cpu, cuda or cuda:N")
    e.add_argument("--adapter", action="append", metavar="ADAPTER_DIR",
                   help="also evaluate this LoRA adapter (`chainrule sft --lora`'s OUT/adapter) "
                        "on the MODEL_DIR it was trained from, found by fingerprint; repeatable")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=run_eval)

    t = ps.add_parser("tasks", help="list the shipped tasks")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=run_tasks)

    i = ps.add_parser("induction", help="train a 2-layer attention-only transformer and an LSTM "
                      "on repeated random segments; plot the phase change and the induction head",
                      description="Both models learn from sequences of random tokens with a "
                      "repeated segment. Plots (a) loss on repeated vs first-occurrence tokens "
                      "over training and (b) the attention pattern of the head with the highest "
                      "prefix-matching score (Olsson et al. 2022).")
    i.add_argument("-o", "--out", default="induction", metavar="DIR")
    i.add_argument("--steps", type=int, default=None, metavar="N",
                   help="training steps per model (default 1500)")
    i.add_argument("--models", default="transformer,lstm", metavar="LIST",
                   help="comma-separated: transformer, lstm (default both)")
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=run_induction)


def _load(model_dir: str, device: str | None):
    from chainrule.cli.generate import load_model_and_tokenizer
    from chainrule.tokenizers.chat import load_chat_template

    model, tokenizer = load_model_and_tokenizer(model_dir, device)
    return model, tokenizer, load_chat_template(model_dir)


@one_writer("out")
def run_eval(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.errors import ConfigError
    from chainrule.evaluation.stimuli import model_names
    from chainrule.prompting import (
        ModelEntry,
        evaluate_task,
        format_table,
        load_task,
        parse_shots,
        task_examples,
        write_report,
    )

    shots = parse_shots(args.shots)
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}.")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}.")
    task = load_task(args.task)
    examples = task_examples(task, args.data_root)
    names = model_names(args.models, args.name)
    entries = []
    for d, name in zip(args.models, names):
        model, tok, template = _load(d, args.device)
        entries.append(ModelEntry(name, model, tok, template))
    if args.adapter:
        from chainrule.cli._adapters import adapter_entries

        entries += adapter_entries(args.adapter, args.models, entries, args.device)
    formats = ("plain", "chat") if args.format == "both" else (args.format,)

    def progress(model, fmt, k, seed, scores):
        shown = ", ".join(f"{m}={v:.3g}" for m, v in scores.items())
        print(f"{model} {fmt} {k}-shot seed {seed}: {shown}", file=sys.stderr)

    import warnings

    from chainrule.cli.generate import _show_warning

    with warnings.catch_warnings():  # one "warning: ..." line each (e.g. chat text -> <unk>)
        warnings.simplefilter("always")
        warnings.showwarning = _show_warning
        report = evaluate_task(entries, task, examples, shots, args.seeds, formats,
                               limit=args.limit, batch_size=args.batch_size,
                               progress=None if args.json else progress)
    paths = write_report(report, args.out)
    if args.json:
        print_json({**report.to_json(), "files": {k: str(v) for k, v in paths.items()}})
        return 0
    print(format_table(report))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def run_tasks(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json, print_table
    from chainrule.prompting import load_task, shipped_task_names

    tasks = [load_task(n) for n in shipped_task_names()]
    rows = [{"task": t.name, "kind": t.kind,
             "metric": t.metric if t.kind == "generation" else "acc, acc_norm",
             "built from": t.builder, "description": t.description} for t in tasks]
    if args.json:
        print_json({"tasks": rows})
    else:
        print_table(rows)
    return 0


@one_writer("out")
def run_induction(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.prompting.induction import InductionConfig, run_induction_study

    cfg = InductionConfig(seed=args.seed) if args.steps is None else \
        InductionConfig(seed=args.seed, steps=args.steps)
    kinds = tuple(k.strip() for k in args.models.split(",") if k.strip())
    result = run_induction_study(Path(args.out), cfg, kinds=kinds,
                                 log=None if args.json else
                                 (lambda s: print(s, file=sys.stderr)))
    if args.json:
        print_json(result)
        return 0
    for name, r in result["models"].items():
        print(f"{name}: {r['parameters']:,} parameters, {r['seconds']:.0f} s; loss on repeated "
              f"tokens {r['repeated_first']:.2f} -> {r['repeated_last']:.2f} nats, on first "
              f"occurrences {r['fresh_last']:.2f} (uniform: {result['uniform_loss']:.2f})")
        if "few_shot" in r:
            acc = ", ".join(f"{k}: {v:.2f}" for k, v in r["few_shot"]["acc"].items())
            print(f"  few-shot accuracy on held-out pairs by demonstrations: {acc}")
    if "head" in result:
        print(f"best prefix-matching head: {result['head']['label']}")
    print("wrote " + ", ".join(result["files"].values()))
    return 0
