"""CLI: ``chainrule import hf DIR -o MODEL_DIR`` and ``chainrule import gguf FILE -o MODEL_DIR``.

Models from other tools' files; each format is one ``add_parser`` under the ``import`` group.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DTYPE_CHOICES = ("float32", "bfloat16")


def register(sub) -> None:
    p = sub.add_parser("import", help="import a model from another tool's files (HF, GGUF)",
                       description="Turn another tool's model files into a chainrule model "
                       "directory (config.json, model.safetensors, tokenizer.json and the chat "
                       "template). Nothing in the files is executed.")
    formats = p.add_subparsers(dest="import_format", metavar="FORMAT")

    hf = formats.add_parser(
        "hf", help="a Hugging Face directory of a GPT-2 or Llama-architecture model",
        description="Import a Hugging Face model directory (config.json, model.safetensors or "
        "its shards, tokenizer.json, tokenizer_config.json) of a GPT-2 or Llama-architecture "
        "model as a gpt model, with its byte-level BPE tokenizer and chat template.",
    )
    hf.add_argument("hf_dir", metavar="DIR")
    _output_options(hf)
    hf.set_defaults(func=run_hf)

    g = formats.add_parser(
        "gguf", help="a llama.cpp GGUF file of a Llama-architecture model",
        description="Import a GGUF file (llama.cpp's format) of a Llama-architecture model: "
        "dequantises F32/F16/BF16, Q8_0, Q4_0/Q4_1, Q5_0/Q5_1 and K-quant tensors, undoes the "
        "query/key row permutation of llama.cpp's converter, builds the byte-level BPE "
        "tokenizer from the file's metadata and keeps its chat template.",
    )
    g.add_argument("file", metavar="FILE.gguf")
    _output_options(g)
    g.set_defaults(func=run_gguf)


def _output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR",
                   help="the chainrule model directory to create")
    p.add_argument("--dtype", choices=DTYPE_CHOICES, default="float32",
                   help="how the weights are stored and loaded (default float32)")
    p.add_argument("--force", action="store_true", help="replace MODEL_DIR if it exists")
    p.add_argument("--json", action="store_true", help="print one JSON object describing it")


def report(out_dir: Path, source: str, as_json: bool, heading: bool = True) -> None:
    """Print what was imported (``import hf``, ``import gguf`` and ``pretrained get``)."""
    from chainrule.errors import TokenizerError
    from chainrule.fileio import read_json
    from chainrule.models.base import read_model_config
    from chainrule.tokenizers.chat import detect_template, read_chat_jinja

    out_dir = Path(out_dir)
    config = read_model_config(out_dir)
    info = read_json(out_dir / "source.json", what="import record") \
        if (out_dir / "source.json").exists() else {}
    jinja = read_chat_jinja(out_dir)
    chat = None
    if jinja is not None:
        try:
            chat = detect_template(jinja)
        except TokenizerError:
            chat = "kept, not recognised"
    dtype = config.get("dtype", "float32")
    if as_json:
        from chainrule.cli._output import print_json

        print_json({"model_dir": str(out_dir), "source": source, "dtype": dtype,
                    "chat_template": chat, "config": config, "import": info})
        return
    shape = "llama" if config.get("norm") == "rmsnorm" else "gpt2"
    kv = config.get("n_kv_head") or config["n_head"]
    tok = read_json(out_dir / "tokenizer.json", what="tokenizer file")
    pre = tok.get("pretokenizer", "gpt2") if isinstance(tok, dict) else "?"
    if heading:
        print(f"imported {source} -> {out_dir}")
    print(f"  a {shape}-shaped gpt: {config['n_layer']} layers x {config['n_embd']} wide, "
          f"{config['n_head']} heads ({kv} key/value), vocabulary {config['vocab_size']}, "
          f"context {config['block_size']}; weights {dtype}")
    print(f"  tokenizer: byte-level BPE, pre-tokenisation {pre}; chat template {chat or 'none'}")
    if info:
        types = ", ".join(f"{n} {k}" for k, n in sorted(info.get("tensor_types", {}).items()))
        print(f"  from {info.get('name') or info.get('file')}: tensors {types}; licence "
              f"{info.get('license') or 'not stated'}")


def _progress(args: argparse.Namespace) -> bool:
    return not args.json and sys.stderr.isatty()


def run_hf(args: argparse.Namespace) -> int:
    from chainrule.models.hf import import_hf

    out = import_hf(args.hf_dir, Path(args.output), dtype=args.dtype, overwrite=args.force)
    report(Path(out), str(args.hf_dir), args.json)
    return 0


def run_gguf(args: argparse.Namespace) -> int:
    from chainrule.models.gguf import import_gguf

    out = import_gguf(args.file, Path(args.output), dtype=args.dtype, overwrite=args.force,
                      progress=_progress(args))
    report(out, str(args.file), args.json)
    return 0
