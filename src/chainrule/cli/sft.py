"""CLI: ``chainrule sft MODEL_DIR --data chats.jsonl -o OUT`` -- supervised fine-tuning.

Thin: read the chats, build the LoRA settings, call
:func:`chainrule.training.sft_run.finetune`, print; at each evaluation a few held-out prompts
are answered greedily (``--samples``), printed and logged in ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub) -> None:
    p = sub.add_parser(
        "sft", help="supervised fine-tuning on chats (completion-only loss, packing, LoRA)",
        description="Fine-tune a model directory on chat data: JSONL lines of "
        '{"messages": [{"role": ..., "content": ...}]} or {"prompt": ..., "completion": ...}, '
        "rendered with the model's chat template (plain when it has none). The loss counts the "
        "assistant's answers only unless --whole-sequence. Training keys as KEY=VALUE "
        "(max_iters, learning_rate, batch_size, block_size, gradient_accumulation_steps, "
        "eval_interval, val_fraction, seed, ...).")
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="training settings")
    p.add_argument("--data", required=True, metavar="FILE.jsonl", help="the training chats")
    p.add_argument("--val-data", metavar="FILE.jsonl",
                   help="held-out chats (default: val_fraction of --data, seeded)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the model directory")
    p.add_argument("--template", metavar="chatml|plain",
                   help="the chat template (default: the model's own, else plain)")
    p.add_argument("--whole-sequence", action="store_true",
                   help="loss on every token, not only the assistant's answers")
    p.add_argument("--no-pack", action="store_true",
                   help="one example per row, padded (default: pack examples into rows with "
                        "attention kept inside each example)")
    p.add_argument("--too-long", choices=("cut", "refuse"), default="cut",
                   help="examples longer than block_size: cut them (counted) or refuse")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters only")
    p.add_argument("--lora-rank", type=int, default=8, metavar="R")
    p.add_argument("--lora-alpha", type=float, default=16.0, metavar="A")
    p.add_argument("--lora-dropout", type=float, default=0.0, metavar="P")
    p.add_argument("--lora-targets", default="q,v", metavar="NAMES",
                   help="comma-separated layers: q,k,v (rows of attn.c_attn), gate,up, "
                        "attn.c_proj, mlp.c_proj, c_fc, lm_head, or Llama names (q_proj, ...)")
    p.add_argument("--samples", type=int, default=2, metavar="N",
                   help="held-out prompts answered greedily at each evaluation (0: none)")
    p.add_argument("--sample-tokens", type=int, default=48, metavar="N")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT exactly")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)
    d = sub.add_parser(
        "sft-data", help="instruction-tuning chats from a task/input/output table",
        description="Turn a table (JSONL, CSV or TSV with columns task, input, output) into "
        "chats for `chainrule sft`, each row's user turn one of its task's instruction "
        "phrasings (a JSON file {task: [\"... {input} ...\", ...]}), and split by task: "
        "OUT/held_in.jsonl (tune on these) and OUT/held_out.jsonl (tasks never tuned on). "
        "With --tasks instead of TABLE the rows come from prompting tasks (`chainrule prompt "
        "tasks`), each with the harness's zero-shot chat form as one phrasing.")
    d.add_argument("table", nargs="?", metavar="TABLE")
    d.add_argument("--instructions", metavar="PHRASINGS.json",
                   help="phrasings per task (required with TABLE; extra ones with --tasks)")
    d.add_argument("--tasks", metavar="NAMES",
                   help="comma-separated prompting tasks (names or .toml files) instead of TABLE")
    d.add_argument("--split", choices=("pool", "test", "all"), default="pool",
                   help="with --tasks: the examples taken (default pool: the demonstration "
                        "pool, so the harness's test sets stay unseen)")
    d.add_argument("--per-task", type=int, metavar="N",
                   help="with --tasks: keep a seeded random N rows of each task")
    d.add_argument("--data-root", metavar="DIR",
                   help="with --tasks: the shared data (default: $CHAINRULE_DATA or ../shared/data)")
    d.add_argument("-o", "--output", required=True, metavar="OUT")
    d.add_argument("--held-out-tasks", metavar="NAMES",
                   help="comma-separated tasks to hold out (default: a seeded quarter)")
    d.add_argument("--held-out-fraction", type=float, default=0.25, metavar="F")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=run_data)
    y = sub.add_parser(
        "sft-synth", help="synthetic chats: an instruct model writes instructions and answers",
        description="Self-instruct at small scale: show the model a few seed instructions, ask "
        "for a new one, let it answer, drop blanks, unfinished outputs, overlong and duplicate "
        "instructions (each counted), and write the rest as chats for `chainrule sft`.")
    y.add_argument("model_dir", metavar="MODEL_DIR")
    y.add_argument("--seeds", required=True, metavar="FILE",
                   help="seed instructions, one per line")
    y.add_argument("-o", "--output", required=True, metavar="OUT.jsonl")
    y.add_argument("--n", type=int, default=20, help="new instructions asked for")
    y.add_argument("--examples", type=int, default=3, help="seeds shown per request")
    y.add_argument("--temperature", type=float, default=0.8)
    y.add_argument("--max-tokens", type=int, default=96)
    y.add_argument("--template", metavar="chatml|plain")
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--json", action="store_true", help="print the filter statistics as JSON")
    y.set_defaults(func=run_synth)


def sample_logger(model_dir: str, prompts: list[list[dict[str, str]]], template: str | None,
                  max_tokens: int):
    """``on_evaluate``: greedy answers to ``prompts``, printed and returned for the metrics."""
    from chainrule.decoding.config import GenerationConfig
    from chainrule.decoding.generate import generate
    from chainrule.tokenizers import load_tokenizer
    from chainrule.tokenizers.chat import chat_prompt_ids, load_chat_template

    tokenizer = load_tokenizer(f"{model_dir}/tokenizer.json")
    chat = load_chat_template(model_dir, template)
    config = GenerationConfig(strategy="greedy", max_new_tokens=max_tokens, stop=chat.stop)

    def on_evaluate(model, step: int) -> dict[str, Any]:
        ids = [chat_prompt_ids(tokenizer, chat.render(m), model.bos_id) for m in prompts]
        outs = generate(model, ids, config, tokenizer=tokenizer)
        rows = []
        for m, out in zip(prompts, outs):
            answer = chat.answer(out[0].text or "")
            rows.append({"prompt": m[-1]["content"], "answer": answer})
            print(f"  step {step} sample: {m[-1]['content'][:60]!r} -> {answer[:80]!r}",
                  file=sys.stderr)
        return {"samples": rows}

    return on_evaluate


def run(args: argparse.Namespace) -> int:
    from chainrule.cli._output import print_json
    from chainrule.models.lora import LoRAConfig
    from chainrule.training.sft import read_sft_jsonl
    from chainrule.training.sft_run import finetune

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"device={args.device}")
    chats = read_sft_jsonl(args.data)
    val = read_sft_jsonl(args.val_data) if args.val_data else None
    lora = None
    if args.lora:
        targets = tuple(t.strip() for t in args.lora_targets.split(",") if t.strip())
        lora = LoRAConfig(args.lora_rank, args.lora_alpha, args.lora_dropout, targets)

    def sample_hook(held_out: list) -> Any:
        prompts = [m[: max(i for i, x in enumerate(m) if x["role"] == "assistant")]
                   for m in held_out[: args.samples]]
        return (sample_logger(args.model_dir, prompts, args.template, args.sample_tokens)
                if prompts else None)

    summary = finetune(
        args.model_dir, chats, args.output, overrides=overrides, val_conversations=val,
        template=args.template, completion_only=not args.whole_sequence,
        pack=not args.no_pack, too_long=args.too_long, lora=lora, resume=args.resume,
        sample_hook=sample_hook, report=lambda s: print(s, file=sys.stderr))
    if args.json:
        print_json(summary)
        return 0
    val_loss = summary.get("best_val_loss")
    print(f"fine-tuned {args.model_dir} -> {args.output}: {summary['steps']} steps, "
          f"last train loss {summary['last_loss']:.4f}"
          + (f", best held-out loss {val_loss:.4f} (step {summary['best_step']})"
             if val_loss is not None else "")
          + (f"; adapter in {args.output}/adapter" if lora else ""))
    return 0


def run_data(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chainrule.data.instructions import (
        build_instruction_data,
        read_phrasings,
        read_table,
        write_chats,
    )
    from chainrule.errors import ConfigError

    if (args.table is None) == (args.tasks is None):
        raise ConfigError("give either a TABLE or --tasks NAMES (prompting tasks), not "
                          f"{'both' if args.table else 'neither'}.")
    if args.table is not None and not args.instructions:
        raise ConfigError("a TABLE needs --instructions PHRASINGS.json (each task's phrasings).")
    phrasings = read_phrasings(args.instructions) if args.instructions else {}
    if args.tasks is not None:
        from chainrule.prompting.instruction_rows import tasks_table

        rows, phrasings = tasks_table([t.strip() for t in args.tasks.split(",") if t.strip()],
                                      split=args.split, per_task=args.per_task,
                                      root=args.data_root, seed=args.seed, phrasings=phrasings)
    else:
        rows = read_table(args.table)
    held = [t.strip() for t in args.held_out_tasks.split(",")] if args.held_out_tasks else None
    held_in, held_out, report = build_instruction_data(
        rows, phrasings, held_out_tasks=held, held_out_fraction=args.held_out_fraction,
        seed=args.seed)
    out = Path(args.output)
    write_chats(out / "held_in.jsonl", held_in)
    write_chats(out / "held_out.jsonl", held_out)
    print(f"{len(held_in)} held-in chats ({', '.join(report['held_in_tasks'])}) -> "
          f"{out / 'held_in.jsonl'}; {len(held_out)} held-out chats "
          f"({', '.join(report['held_out_tasks']) or 'none'}) -> {out / 'held_out.jsonl'}")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chainrule.cli._output import print_json
    from chainrule.cli.generate import load_model_and_tokenizer
    from chainrule.data.instructions import write_chats
    from chainrule.decoding.self_instruct import self_instruct
    from chainrule.tokenizers.chat import load_chat_template

    model, tokenizer = load_model_and_tokenizer(args.model_dir)
    seeds = Path(args.seeds).read_text(encoding="utf-8").splitlines()
    chats, report = self_instruct(
        model, tokenizer, load_chat_template(args.model_dir, args.template), seeds, n=args.n,
        examples=args.examples, temperature=args.temperature, max_tokens=args.max_tokens,
        seed=args.seed)
    write_chats(args.output, chats)
    if args.json:
        print_json(report.to_dict())
    else:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(report.dropped.items())) or "none"
        print(f"asked {report.asked}, kept {report.kept} -> {args.output}; dropped: {dropped}")
    return 0
