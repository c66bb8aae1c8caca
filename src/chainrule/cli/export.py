"""CLI: ``chainrule export hf MODEL_DIR -o DIR`` -- a chainrule model in another tool's format."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("export", help="export a model for another tool (Hugging Face)")
    formats = p.add_subparsers(dest="export_format", metavar="FORMAT")
    hf = formats.add_parser(
        "hf",
        help="a Hugging Face directory that transformers loads",
        description="Write a gpt model (GPT-2 or Llama shape) as a Hugging Face directory: "
        "config.json, model.safetensors, generation_config.json, tokenizer.json and "
        "tokenizer_config.json (with the chat template, if any). "
        "transformers.AutoModelForCausalLM.from_pretrained(DIR) gives the same logits.",
    )
    hf.add_argument("model_dir", metavar="MODEL_DIR")
    hf.add_argument("-o", "--output", required=True, metavar="DIR",
                    help="the Hugging Face directory to write")
    hf.add_argument("--force", action="store_true", help="replace DIR if it exists")
    hf.set_defaults(func=run_hf)


def run_hf(args: argparse.Namespace) -> int:
    from chainrule.models.hf import export_hf

    out = export_hf(args.model_dir, args.output, overwrite=args.force)
    print(f"exported {args.model_dir} -> {out} (load it with "
          "transformers.AutoModelForCausalLM.from_pretrained)")
    return 0
