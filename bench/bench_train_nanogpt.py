"""CPU training vs nanoGPT itself: the ``shakespeare-char-cpu`` shape, both run in one session.

nanoGPT (https://github.com/karpathy/nanoGPT, prepared outside the project: its
``data/shakespeare_char/prepare.py`` run with ``input.txt`` put in place first) is trained by its
own ``train.py`` with its README's CPU command (``--device=cpu --compile=False``, 4 layers,
4 heads, width 128, context 64, batch 12, lr 1e-3, no dropout, 20 evaluation batches); chainrule
by ``chainrule train --family gpt --preset shakespeare-char-cpu`` on the same text (the preset's
``dtype=bfloat16-if-native``: bf16 autocast on a CPU with AVX512-BF16/AMX, float32 elsewhere;
nanoGPT's ``train.py`` runs float32 on any CPU; ``--fp32`` adds chainrule in float32).
Each run is a fresh process, so each side gets its own thread default (nanoGPT: PyTorch's, one
thread per core; chainrule: :mod:`chainrule.threads`' policy). Runs are interleaved (A B, then
B A, ...); each run's process CPU seconds (start-up and evaluations included) are printed too.

Timing: the mean training step, evaluation steps and the first 10 iterations excluded (nanoGPT:
its per-iteration ``time`` lines; chainrule: ``metrics.jsonl``'s per-10-step ``ms_per_iter``).

Conditions: ``idle`` is the machine as it is (say what load that is: ``uptime`` is printed with
every figure); ``busy`` adds one CPU-bound process of our own (``python -c 'while True: pass'``)
for the whole condition, killed afterwards.

    .venv/bin/python bench/bench_train_nanogpt.py --nanogpt /work/peers/nanoGPT
    .venv/bin/python bench/bench_train_nanogpt.py --nanogpt PATH --conditions busy --rounds 3
    .venv/bin/python bench/bench_train_nanogpt.py --nanogpt PATH --conditions idle,busy --fp32
    .venv/bin/python bench/bench_train_nanogpt.py --nanogpt PATH --cpu --fp32 --threads 1 \
        --peer-threads 1
    .venv/bin/python bench/bench_train_nanogpt.py --nanogpt PATH --loss --seeds 1337,1,2
    .venv/bin/python bench/bench_train_nanogpt.py --nanogpt PATH --loss --skip-ours --peer-lr 2e-3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
CHAINRULE = [sys.executable, "-m", "chainrule.cli"]
TOKENS_PER_ITER = 12 * 64
EVAL_INTERVAL = 250
SKIP_FIRST = 10  # warm-up iterations left out of the timing
NANOGPT_ARGS = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False",
                "--eval_iters=20", "--log_interval=1", "--block_size=64", "--batch_size=12",
                "--n_layer=4", "--n_head=4", "--n_embd=128", "--dropout=0.0",
                "--lr_decay_iters=2000"]
ITER_LINE = re.compile(r"^iter (\d+): loss ([\d.naif]+), time ([\d.]+)ms")
VAL_LINE = re.compile(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)")


def child_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's finished children."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def uptime() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:4])


def run_nanogpt(path: Path, iters: int, threads: int | None, extra: list[str] = ()) -> dict:
    """One nanoGPT run (its seed is fixed: 1337); per-iteration times and evaluation lines."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "train.py", *NANOGPT_ARGS, f"--max_iters={iters}",
               f"--out_dir={tmp}", *extra]
        env = dict(os.environ)
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        t0, c0 = time.perf_counter(), child_cpu()
        p = subprocess.run(cmd, cwd=path, env=env, capture_output=True, text=True, check=False)
        wall, cpu = time.perf_counter() - t0, child_cpu() - c0
    if p.returncode:
        raise SystemExit(f"nanoGPT failed ({p.returncode}):\n{p.stderr[-2000:]}")
    times, vals = [], {}
    for line in p.stdout.splitlines():
        if m := ITER_LINE.match(line):
            it = int(m[1])
            if it >= SKIP_FIRST and it % EVAL_INTERVAL:
                times.append(float(m[3]))
        elif m := VAL_LINE.match(line):
            vals[int(m[1])] = float(m[3])
    return {"ms_per_iter": statistics.fmean(times), "val_loss": vals.get(max(vals)) if vals
            else None, "last_eval_step": max(vals) if vals else None, "wall_s": wall,
            "cpu_s": cpu}


def run_chainrule(data: Path, iters: int, seed: int | None, threads: int | None,
                  extra: list[str] = ()) -> dict:
    """One ``chainrule train`` run; its per-10-step times from metrics.jsonl."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [*CHAINRULE, "train", "--family", "gpt", "--preset", "shakespeare-char-cpu",
               str(data), "-o", f"{tmp}/model", "--json", f"max_iters={iters}",
               "lr_decay_iters=2000", *extra]
        if seed is not None:
            cmd.append(f"seed={seed}")
        if threads:
            cmd[len(CHAINRULE):len(CHAINRULE)] = ["--threads", str(threads)]
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        t0, c0 = time.perf_counter(), child_cpu()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        wall, cpu = time.perf_counter() - t0, child_cpu() - c0
        if p.returncode:
            raise SystemExit(f"chainrule failed ({p.returncode}):\n{p.stderr[-2000:]}")
        with open(f"{tmp}/model/metrics.jsonl") as f:
            recs = [json.loads(line) for line in f]
    timed = [r for r in recs if "ms_per_iter" in r and r["step"] > SKIP_FIRST]
    vals = [r for r in recs if "val_loss" in r]
    threads_used = sorted({r["threads"] for r in timed if "threads" in r})
    return {"ms_per_iter": statistics.fmean(r["ms_per_iter"] for r in timed),
            "val_loss": vals[-1]["val_loss"], "last_eval_step": vals[-1]["step"],
            "wall_s": wall, "cpu_s": cpu, "threads": threads_used}


def native_bf16() -> bool:
    """Whether this CPU has native bf16 (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def spinner() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def sides(args, iters: int | None = None, ours: list[str] = (), peer: list[str] = ()) -> dict:
    """Label -> a function running one timed run of that side (``iters``: default --iters;
    ``ours`` / ``peer``: extra settings for chainrule / nanoGPT)."""
    n = iters or args.iters
    # timed with nanoGPT's learning rate (the preset's is 2e-3): the same work step for step
    same = ["learning_rate=1e-3", "min_lr=1e-4", *ours]
    out = {"chainrule": lambda: run_chainrule(args.data, n, None, args.threads, same)}
    if args.bf16:
        out["chainrule-bf16"] = lambda: run_chainrule(args.data, n, None, args.threads,
                                                      [*same, "dtype=bfloat16"])
    if args.fp32:  # the preset's dtype is bfloat16-if-native: this is its float32 run
        out["chainrule-fp32"] = lambda: run_chainrule(args.data, n, None, args.threads,
                                                      [*same, "dtype=float32"])
    if args.nanogpt is not None:
        out["nanogpt"] = lambda: run_nanogpt(args.nanogpt, n, args.peer_threads, peer)
        if args.peer_one_thread:
            out["nanogpt-1thread"] = lambda: run_nanogpt(args.nanogpt, n, 1, peer)
    return out


def cpu_per_iter(args) -> dict:
    """Process CPU milliseconds per training iteration, the figure least moved by the load: each
    side run for 50 and for 50 + --iters iterations (evaluations only at the start and the end,
    so start-up and evaluation cancel in the difference), interleaved, medians."""
    short, long = 50, 50 + args.iters
    ours, peer = ["eval_interval=100000", "warmup_iters=100"], ["--eval_interval=100000"]
    a, b = sides(args, short, ours, peer), sides(args, long, ours, peer)
    rows: dict[str, list[float]] = {name: [] for name in a}
    load = [uptime()]
    names = list(a)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            ms = 1000 * (b[name]()["cpu_s"] - a[name]()["cpu_s"]) / (long - short)
            rows[name].append(ms)
            print(f"  {name:<15} {ms:7.1f} CPU ms/iter  loadavg {uptime()}", flush=True)
    load.append(uptime())
    med = {name: statistics.median(v) for name, v in rows.items()}
    out = {"load_before_after": load, "cpu_ms_per_iter": rows, "median": med}
    if "nanogpt" in med:
        out["ratio_vs_nanogpt"] = {n: med["nanogpt"] / med[n] for n in med
                                   if n.startswith("chainrule")}
    for name, m in med.items():
        ratio = out.get("ratio_vs_nanogpt", {}).get(name)
        print(f"{name:<15} median {m:7.1f} CPU ms/iter" +
              (f"  {ratio:.2f}x nanoGPT's tokens per CPU second" if ratio else ""))
    return out


def timing(args) -> dict:
    out = {"conditions": {}}
    runners = sides(args)
    for cond in args.conditions.split(","):
        spin = spinner() if cond == "busy" else None
        try:
            if spin:
                time.sleep(2)  # the spinner is running before either side starts
            rows = {name: [] for name in runners}
            load = [uptime()]
            names = list(runners)
            for r in range(args.rounds):  # interleaved, the order turned each round
                for name in names[r % len(names):] + names[:r % len(names)]:
                    res = runners[name]()
                    res["load"] = uptime()
                    rows[name].append(res)
                    print(f"  [{cond}] {name:<15} {res['ms_per_iter']:7.1f} ms/iter "
                          f"{TOKENS_PER_ITER / res['ms_per_iter'] * 1000:8,.0f} tok/s  "
                          f"threads {res.get('threads', '-')}  process CPU {res['cpu_s']:.1f} s"
                          f" (wall {res['wall_s']:.1f} s)  loadavg {res['load']}",
                          flush=True)
            load.append(uptime())
        finally:
            if spin:
                spin.kill()
                spin.wait()
        summary = {"load_before_after": load, "runs": rows, "median": {}}
        for name, rs in rows.items():
            ms = statistics.median(r["ms_per_iter"] for r in rs)
            summary["median"][name] = {"ms_per_iter": ms,
                                       "tokens_per_s": TOKENS_PER_ITER / ms * 1000}
        med = summary["median"]
        if "nanogpt" in med:
            summary["ratio_vs_nanogpt"] = {
                n: med[n]["tokens_per_s"] / med["nanogpt"]["tokens_per_s"]
                for n in med if n.startswith("chainrule")}
        out["conditions"][cond] = summary
    conds = out["conditions"]
    if "idle" in conds and "busy" in conds:
        out["busy_over_idle_ms"] = {n: conds["busy"]["median"][n]["ms_per_iter"]
                                    / conds["idle"]["median"][n]["ms_per_iter"]
                                    for n in runners}
    return out


def losses(args) -> dict:
    """Validation loss at ``--iters`` (2,000: the target) for each seed; nanoGPT once with its
    own learning rate (1e-3), and once more with ``--peer-lr`` (e.g. the preset's 2e-3)."""
    out = {"chainrule": {}, "load": [uptime()]}
    for s in ([] if args.skip_ours else (int(x) for x in args.seeds.split(","))):
        r = run_chainrule(args.data, args.iters, s, args.threads,
                          ["dtype=bfloat16"] if args.bf16 else [])
        out["chainrule"][s] = r
        print(f"  chainrule seed {s}: val loss {r['val_loss']:.4f} at step "
              f"{r['last_eval_step']}, {r['ms_per_iter']:.1f} ms/iter, loadavg {uptime()}",
              flush=True)
    if args.nanogpt is not None:
        r = run_nanogpt(args.nanogpt, args.iters, args.peer_threads)
        out["nanogpt"] = r
        print(f"  nanoGPT (its seed 1337): val loss {r['val_loss']:.4f} at step "
              f"{r['last_eval_step']}, {r['ms_per_iter']:.1f} ms/iter, loadavg {uptime()}")
        if args.peer_lr:
            lr = args.peer_lr
            r = run_nanogpt(args.nanogpt, args.iters, args.peer_threads,
                            [f"--learning_rate={lr}", f"--min_lr={lr / 10}"])
            out["nanogpt_lr"] = {"learning_rate": lr, **r}
            print(f"  nanoGPT, learning_rate={lr} min_lr={lr / 10}: val loss "
                  f"{r['val_loss']:.4f} at step {r['last_eval_step']}, {r['ms_per_iter']:.1f} "
                  f"ms/iter, loadavg {uptime()}", flush=True)
    out["load"].append(uptime())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nanogpt", type=Path, default=None,
                    help="a nanoGPT checkout with data/shakespeare_char prepared")
    ap.add_argument("--data", type=Path, default=DATA, help="Tiny Shakespeare input.txt")
    ap.add_argument("--iters", type=int, default=None,
                    help="iterations per run (default 150 for timing, 2000 with --loss)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds per condition")
    ap.add_argument("--conditions", default="idle,busy", help="idle, busy or both")
    ap.add_argument("--threads", type=int, default=None,
                    help="chainrule's --threads (default: its own policy)")
    ap.add_argument("--peer-threads", type=int, default=None,
                    help="OMP_NUM_THREADS for nanoGPT (default: PyTorch's, one per core)")
    ap.add_argument("--bf16", action="store_true",
                    help="also time chainrule with dtype=bfloat16 (CPU autocast)")
    ap.add_argument("--fp32", action="store_true",
                    help="also time chainrule with dtype=float32 (the preset trains under bf16 "
                         "autocast on CPUs with native bf16)")
    ap.add_argument("--peer-one-thread", action="store_true",
                    help="also time nanoGPT with OMP_NUM_THREADS=1 (its best on a busy box)")
    ap.add_argument("--loss", action="store_true",
                    help="validation loss at --iters for each of --seeds instead of timing")
    ap.add_argument("--seeds", default="1337,1,2")
    ap.add_argument("--peer-lr", type=float, default=None,
                    help="with --loss: also run nanoGPT with this learning rate (min_lr = lr/10)")
    ap.add_argument("--skip-ours", action="store_true",
                    help="with --loss: run only nanoGPT (no chainrule seeds)")
    ap.add_argument("--cpu", action="store_true",
                    help="process CPU ms per iteration (50 vs 50 + --iters iterations, "
                         "differenced) instead of wall-clock timing; use with --threads 1 "
                         "--peer-threads 1")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    # a SIGTERM (timeout, kill) unwinds like Ctrl-C, so the busy condition's spinner is killed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not args.data.exists():
        print(f"Tiny Shakespeare not found at {args.data}; pass --data.", file=sys.stderr)
        return 2
    if args.nanogpt is None:
        print("nanoGPT skipped: no --nanogpt PATH given (a checkout with "
              "data/shakespeare_char prepared).")
    elif not (args.nanogpt / "train.py").exists() or not (
            args.nanogpt / "data" / "shakespeare_char" / "train.bin").exists():
        print(f"nanoGPT skipped: {args.nanogpt} has no train.py or no prepared "
              "data/shakespeare_char/train.bin (run its prepare.py with input.txt in place).")
        args.nanogpt = None
    if args.iters is None:
        args.iters = 2000 if args.loss else 150
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')}, nproc {os.cpu_count()}, "
          f"loadavg {uptime()}, {args.iters} iterations per run, native bf16 "
          f"{native_bf16()} (the preset's dtype=bfloat16-if-native trains in "
          f"{'bf16' if native_bf16() else 'float32'}; nanoGPT on CPU: float32)", flush=True)
    result = (losses(args) if args.loss else cpu_per_iter(args) if args.cpu else timing(args))
    result["args"] = {k: str(v) for k, v in vars(args).items()}
    if not args.loss and not args.cpu:
        for cond, s in result["conditions"].items():
            print(f"{cond} (loadavg {s['load_before_after'][0]} -> "
                  f"{s['load_before_after'][1]}), medians of {args.rounds}:")
            for name, m in s["median"].items():
                ratio = s.get("ratio_vs_nanogpt", {}).get(name)
                print(f"  {name:<15} {m['ms_per_iter']:8.1f} ms/iter {m['tokens_per_s']:8,.0f} "
                      f"tok/s" + (f"  {ratio:.2f}x nanoGPT's tokens/s" if ratio else ""))
        for name, r in result.get("busy_over_idle_ms", {}).items():
            print(f"{name}: busy / idle ms per iteration {r:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
