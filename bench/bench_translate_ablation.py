"""Why does ``transformer-ed`` learn more slowly than ``torch.nn.Transformer``? Same-run
comparisons on Multi30k de->en: each variant is the ``multi30k-transformer-cpu`` preset with one
change (KEY=VALUE), trained by the same loop from the same seed on the same batches for the same
number of steps; the table gives the validation loss at every evaluation.

    nice -n 10 .venv/bin/python bench/bench_translate_ablation.py --steps 300 --jobs 2 \\
        base torch:family=bench-torch-transformer xavier:init=xavier

A variant is ``NAME[:KEY=VALUE,...]``; ``family=`` picks another family (the peer). The
tokenizers are those of ``bench_translate.py`` (trained there once, reused here).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, rest = text.partition(":")
    return name, dict(item.partition("=")[::2] for item in filter(None, rest.split(",")))


def _shape(args) -> list[str]:
    return [item for item in args.shape.split(",") if item]


def _encode_first(args) -> None:
    """Encode the training and validation pairs once, before the variants start."""
    from bench_translate import DATA, tokenizers

    from chainrule.data.parallel import read_parallel
    from chainrule.training import translation
    from chainrule.training.config import make_config

    cfg = make_config("transformer-ed", args.preset, _shape(args))
    max_len = cfg.model_settings()["max_len"]
    _cache_encoding(Path(args.work))
    train = read_parallel(DATA / "train.de.gz", DATA / "train.en.gz")
    stok, tok = tokenizers(Path(args.tokenizers), train)
    for pairs in (train, read_parallel(DATA / "val.de.gz", DATA / "val.en.gz")):
        translation.encode_pairs(pairs, stok, tok, max_len)


def _cache_encoding(work: Path) -> None:
    """Keep the encoded corpus in ``work`` (a JSON file per corpus and max_len): every variant
    reads it instead of encoding 29,000 pairs again."""
    from chainrule.training import translation

    plain = translation.encode_pairs

    def encode_pairs(pairs, source_tokenizer, tokenizer, max_len):
        f = work / f"encoded-{len(pairs)}-{max_len}-{tokenizer.vocab_size}.json"
        if f.exists():
            rows, dropped = json.loads(f.read_text())
            return [tuple(r) for r in rows], dropped
        rows, dropped = plain(pairs, source_tokenizer, tokenizer, max_len)
        tmp = f.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps([rows, dropped]))
        tmp.replace(f)
        return rows, dropped

    translation.encode_pairs = encode_pairs


def run_one(text: str, args) -> dict:
    import torch
    import torch_transformer_baseline  # noqa: F401 -- registers the peer family
    from bench_translate import DATA, tokenizers

    from chainrule.data.parallel import read_parallel
    from chainrule.training.config import load_preset, make_config
    from chainrule.training.translation import train_translation

    torch.set_num_threads(args.threads)
    _cache_encoding(Path(args.work))
    name, keys = parse_variant(text)
    table = {k: v for k, v in load_preset(args.preset).items() if k != "family"}
    family = keys.pop("family", "transformer-ed")
    table.update({"max_iters": args.steps, "lr_decay_iters": args.decay_steps or args.steps,
                  "eval_interval": args.eval_interval, "log_interval": args.eval_interval})
    train = read_parallel(DATA / "train.de.gz", DATA / "train.en.gz")
    val = read_parallel(DATA / "val.de.gz", DATA / "val.en.gz")
    stok, tok = tokenizers(Path(args.tokenizers), train)
    out = Path(args.work) / name
    c0, w0 = time.process_time(), time.perf_counter()
    cfg = make_config(family, None, _shape(args) + [f"{k}={v}" for k, v in keys.items()],
                      base=table)
    summary = train_translation(cfg, train, val, out, tokenizer=tok, source_tokenizer=stok,
                                overwrite=True, progress=False, plot=False)
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    result = {"variant": name, "family": family, "keys": keys, "steps": summary["steps"],
              "val": {r["step"]: r["val_loss"] for r in recs if "val_loss" in r},
              "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0,
              "target_tokens_per_s": summary["target_tokens_per_s"]}
    (Path(args.work) / f"{name}.json").write_text(json.dumps(result), "utf-8")
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("variants", nargs="+")
    p.add_argument("--preset", default="multi30k-transformer-cpu")
    p.add_argument("--shape", default="",
                   help="KEY=VALUE,... applied to every variant (a smaller proxy of the preset)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--decay-steps", type=int, default=0, help="cosine decay length (0: --steps)")
    p.add_argument("--eval-interval", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2, help="variants trained side by side")
    p.add_argument("--work", default=str(ROOT / "bench" / "out" / "translate-ablation"))
    p.add_argument("--tokenizers", default=str(ROOT / "bench" / "out" / "translate"))
    p.add_argument("--only", help=argparse.SUPPRESS)
    args = p.parse_args()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    if args.only:
        run_one(args.only, args)
        return 0
    load0 = os.getloadavg()
    _encode_first(args)
    base = [sys.executable, __file__, *args.variants[:1], "--preset", args.preset,
            "--steps", str(args.steps), "--decay-steps", str(args.decay_steps),
            "--eval-interval", str(args.eval_interval), "--shape", args.shape, "--threads", str(args.threads),
            "--work", args.work, "--tokenizers", args.tokenizers]
    waiting, running = list(args.variants), []
    while waiting or running:
        while waiting and len(running) < args.jobs:
            v = waiting.pop(0)
            log = open(Path(args.work) / f"{parse_variant(v)[0]}.log", "w")  # noqa: SIM115
            running.append((subprocess.Popen([*base, "--only", v], stderr=log,
                                             stdout=subprocess.DEVNULL), log))
        time.sleep(2)
        for q, log in list(running):
            if q.poll() is not None:
                log.close()
                running.remove((q, log))
    results = []
    for v in args.variants:
        f = Path(args.work) / f"{parse_variant(v)[0]}.json"
        if f.exists():
            results.append(json.loads(f.read_text()))
    steps = sorted({int(s) for r in results for s in r["val"]})
    lines = ["| variant | change | " + " | ".join(f"val @{s}" for s in steps)
             + " | CPU s | target tok/s |", "|---|---|" + "---|" * (len(steps) + 2)]
    for r in results:
        change = ", ".join(f"{k}={v}" for k, v in r["keys"].items()) or "(preset)"
        if r["family"] != "transformer-ed":
            change = f"family={r['family']}" + (f", {change}" if r["keys"] else "")
        vals = " | ".join(f"{r['val'].get(str(s), float('nan')):.3f}" for s in steps)
        lines.append(f"| {r['variant']} | {change} | {vals} | {r['cpu_s']:.0f} | "
                     f"{r['target_tokens_per_s']:,.0f} |")
    text = "\n".join(lines) + f"\n\nload (1, 5, 15 min): start {load0}, end {os.getloadavg()}"
    print(text)
    with open(Path(args.work) / "results.md", "a", encoding="utf-8") as f:
        f.write(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
                f"steps={args.steps} decay={args.decay_steps or args.steps}\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
