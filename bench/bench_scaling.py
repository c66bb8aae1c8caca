"""Scaling laws on Tiny Shakespeare characters, on the CPU (issue 17).

Two sweeps, both with ``chainrule scale sweep`` (the one training loop), then the fits:

1. ``gpt``: an IsoFLOP grid that the sweep plans itself from the corpus and ``--time-budget``
   (it times two probe models first), run in 2 processes of 1 thread each;
2. ``families``: GPT and LSTM models of matched non-embedding size N, all trained on the same
   D tokens (a TOML grid of [[point]] tables) -- Kaplan et al.'s Figure 7 at small scale.

Then ``chainrule scale fit gpt --holdout --json``: the frontier's power law (R²), the
held-out largest budget predicted from the rest, L(N), L(D), L(N, D) with bootstrap intervals,
and the plots, copied to ``bench/scaling_*.png``.

Targets: >= 12 runs over >= 1.5 decades of compute within 20 minutes on 2 cores; frontier fit
R² >= 0.95; held-out largest budget within 3%.

Run by hand (never from tests); the box is shared, so nicely:

    nice -n 10 .venv/bin/python bench/bench_scaling.py                 # sweeps + fits
    nice -n 10 .venv/bin/python bench/bench_scaling.py --phase fit     # fits of finished sweeps
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
BUNDLED = ROOT / "src" / "chainrule" / "resources" / "tinyshakespeare.txt"
CHAINRULE = [sys.executable, "-m", "chainrule.cli"]

# GPT (2 layers) and LSTM (1 layer, square) widths of about equal N: 14k .. 225k
FAMILY_POINTS = [("gpt", 2, 24), ("gpt", 2, 32), ("gpt", 2, 48), ("gpt", 2, 64), ("gpt", 2, 96),
                 ("lstm", 1, 42), ("lstm", 1, 56), ("lstm", 1, 84), ("lstm", 1, 112),
                 ("lstm", 1, 168)]


def uptime() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def sh(cmd: list[str]) -> float:
    print("$", " ".join(cmd), f"(load {uptime()})", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def family_grid(path: Path, tokens: int) -> None:
    lines = ["[settings]", "block_size = 64", "batch_size = 16", ""]
    for fam, depth, width in FAMILY_POINTS:
        lines += ["[[point]]", f'family = "{fam}"', f"n_layer = {depth}", f"n_embd = {width}",
                  f"tokens = {tokens}", ""]
    path.write_text("\n".join(lines), "utf-8")


def _summary(report: dict) -> dict:
    """The figures RESULTS.md quotes (the whole report is in OUT/NAME-fit.json)."""
    def law(d):
        return d if "skipped" in d else {k: d[k] for k in d if k != "residuals"}

    out = {"n_runs": report["n_runs"], "decades": report["compute_decades"],
           "excluded": report["excluded"], "frontier": law(report["frontier"]["fit"]),
           "frontier_offset": law(report["frontier"]["offset_fit"]),
           "L_N": law(report["L_N"]), "L_D": law(report["L_D"]),
           "chinchilla": law(report["chinchilla"]), "intervals": report.get("intervals"),
           "optimal": {k: {"a": v["a"]} for k, v in report["optimal"].items()},
           "holdout": report.get("holdout")}
    if "by_family" in report:
        out["by_family"] = {f: law(v["L_N"]) for f, v in report["by_family"].items()}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "scaling-cpu")
    ap.add_argument("--phase", choices=["all", "sweep", "fit"], default="all")
    ap.add_argument("--time-budget", type=float, default=780,
                    help="seconds the GPT sweep plans for (its planner keeps 30%% spare)")
    ap.add_argument("--tokens-per-param", type=float, default=100.0,
                    help="D/N of the planned grid (Chinchilla's 20 is far from optimal here)")
    ap.add_argument("--family-tokens", type=int, default=300_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--bootstrap", type=int, default=200)
    args = ap.parse_args()
    corpus = SHARED if SHARED.exists() else BUNDLED
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    times = {}
    if args.phase in ("all", "sweep"):
        times["gpt_sweep_s"] = sh(CHAINRULE + [
            "--threads", "1", "scale", "sweep", str(corpus), "-o", str(out / "gpt"),
            "--time-budget", str(args.time_budget), "--jobs", str(args.jobs),
            "--tokens-per-param", str(args.tokens_per_param)])
        grid = out / "families.toml"
        family_grid(grid, args.family_tokens)
        times["family_sweep_s"] = sh(CHAINRULE + [
            "--threads", "1", "scale", "sweep", str(corpus), "-o", str(out / "families"),
            "--grid", str(grid), "--jobs", str(args.jobs)])
        print(json.dumps(times), f"load {uptime()}", flush=True)
    if args.phase in ("all", "fit"):
        for name, extra in (("gpt", ["--holdout"]), ("families", [])):
            res = subprocess.run(CHAINRULE + [
                "scale", "fit", str(out / name), "--json", "--bootstrap",
                str(args.bootstrap), *extra], check=True, capture_output=True, text=True)
            (out / f"{name}-fit.json").write_text(res.stdout, "utf-8")
            report = json.loads(res.stdout)
            print(f"== {name}")
            print(json.dumps(_summary(report), indent=1))
            pngs = ["loss_vs_n.png"] if name == "families" else [
                "loss_vs_compute.png", "loss_vs_n.png", "loss_vs_d.png", "isoflop.png"]
            for png in pngs:
                if (out / name / "plots" / png).exists():
                    shutil.copy(out / name / "plots" / png, ROOT / "bench" / f"scaling_{name}_{png}")
        print(f"load {uptime()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
