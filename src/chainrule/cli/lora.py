"""CLI: ``chainrule lora merge|unmerge|save`` -- LoRA adapters and the weights they change.

Thin: load, call :mod:`chainrule.models.lora`, save, print.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("lora", help="merge, unmerge or extract LoRA adapters")
    cmds = p.add_subparsers(dest="lora_command", metavar="COMMAND")
    m = cmds.add_parser(
        "merge", help="fold an adapter into the base weights (an ordinary model results)",
        description="Fold LoRA adapters into the weights: W + (alpha/r) B A. MODEL_DIR is a "
        "model holding its adapters unmerged (what `chainrule sft --lora` writes), or a base "
        "model with --adapter DIR (refused unless DIR was trained on that base).")
    m.add_argument("model_dir", metavar="MODEL_DIR")
    m.add_argument("--adapter", metavar="DIR", help="an adapter directory (adapter.json + "
                   "adapter.safetensors) to put on MODEL_DIR first")
    m.add_argument("-o", "--output", required=True, metavar="OUT")
    m.set_defaults(func=run_merge)
    u = cmds.add_parser(
        "unmerge", help="subtract a merged adapter: the base weights come back",
        description="Subtract an adapter that was merged into MODEL_DIR, giving back the base "
        "model (equal up to float rounding; the base fingerprint is checked and reported).")
    u.add_argument("model_dir", metavar="MODEL_DIR")
    u.add_argument("--adapter", required=True, metavar="DIR")
    u.add_argument("-o", "--output", required=True, metavar="OUT")
    u.set_defaults(func=run_unmerge)
    s = cmds.add_parser("save", help="write the adapter of a model alone",
                        description="Write the unmerged adapters of MODEL_DIR alone as "
                        "adapter.safetensors + adapter.json (naming the base by fingerprint).")
    s.add_argument("model_dir", metavar="MODEL_DIR")
    s.add_argument("-o", "--output", required=True, metavar="DIR")
    s.set_defaults(func=run_save)
    e = cmds.add_parser("export-peft", help="an adapter as PEFT's adapter_config.json + "
                        "adapter_model.safetensors",
                        description="Write a chainrule adapter (of a Llama-shaped gpt) in PEFT's "
                        "format, for peft.PeftModel.from_pretrained on the exported base.")
    e.add_argument("adapter_dir", metavar="ADAPTER_DIR")
    e.add_argument("-o", "--output", required=True, metavar="DIR")
    e.add_argument("--base-name", default="", metavar="NAME",
                   help="base_model_name_or_path to record (default: the base fingerprint)")
    e.set_defaults(func=run_export_peft)
    i = cmds.add_parser("import-peft", help="a PEFT LoRA adapter as a chainrule adapter",
                        description="Convert a PEFT LoRA adapter directory into a chainrule "
                        "adapter for the base model MODEL_DIR (named by its fingerprint).")
    i.add_argument("peft_dir", metavar="PEFT_DIR")
    i.add_argument("--base", required=True, metavar="MODEL_DIR")
    i.add_argument("-o", "--output", required=True, metavar="ADAPTER_DIR")
    i.set_defaults(func=run_import_peft)


def _copy_beside(src: str, out: Path) -> None:
    for name in ("tokenizer.json", "chat_template.json"):
        if (Path(src) / name).exists():
            shutil.copyfile(Path(src) / name, out / name)


def run_merge(args: argparse.Namespace) -> int:
    from chainrule.errors import ConfigError
    from chainrule.models import load_model
    from chainrule.models.lora import load_adapter, lora_config, merge_lora

    model = load_model(args.model_dir)
    if args.adapter:
        if lora_config(model) is not None:
            raise ConfigError(f"{args.model_dir!r} already holds adapters; merge them first or "
                              "drop --adapter.")
        load_adapter(model, args.adapter)
    elif lora_config(model) is None:
        raise ConfigError(f"{args.model_dir!r} holds no LoRA adapters; pass --adapter DIR.")
    cfg = lora_config(model)
    out = Path(args.output)
    merge_lora(model).save(out)
    _copy_beside(args.model_dir, out)
    print(f"merged LoRA (r={cfg.rank}, alpha={cfg.alpha}, {','.join(cfg.targets)}) into "
          f"{args.model_dir} -> {out}")
    return 0


def run_unmerge(args: argparse.Namespace) -> int:
    from chainrule.models import load_model
    from chainrule.models.lora import base_fingerprint, read_adapter, unmerge_adapter

    model = load_model(args.model_dir)
    unmerge_adapter(model, args.adapter)
    out = Path(args.output)
    model.save(out)
    _copy_beside(args.model_dir, out)
    same = base_fingerprint(model) == read_adapter(args.adapter)[0].get("base_fingerprint")
    print(f"unmerged {args.adapter} from {args.model_dir} -> {out}: "
          + ("the base weights, bit for bit (fingerprint matches)" if same else
             "the base weights up to float rounding (the fingerprint differs in the last bits)"))
    return 0


def run_save(args: argparse.Namespace) -> int:
    from chainrule.models import load_model
    from chainrule.models.lora import save_adapter

    out = save_adapter(load_model(args.model_dir), args.output)
    print(f"wrote the adapter of {args.model_dir} -> {out}")
    return 0


def run_export_peft(args: argparse.Namespace) -> int:
    from chainrule.models.lora_peft import export_peft

    out = export_peft(args.adapter_dir, args.output, base_name=args.base_name)
    print(f"wrote {args.adapter_dir} in PEFT's format -> {out}")
    return 0


def run_import_peft(args: argparse.Namespace) -> int:
    from chainrule.models import load_model
    from chainrule.models.lora_peft import import_peft

    out = import_peft(args.peft_dir, load_model(args.base), args.output)
    print(f"converted the PEFT adapter {args.peft_dir} for {args.base} -> {out}")
    return 0
