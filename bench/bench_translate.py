"""Multi30k de->en: the three CPU presets (GRU seq2seq, + Bahdanau attention, transformer) and a
``torch.nn.Transformer`` of the transformer's shape trained by the same loop, each under one
wall-clock budget; sacreBLEU (detokenised, case-sensitive, 13a) and chrF on test 2016 with
beam 5, training time and teacher-forced target tokens/s.

All models share one pair of byte-level BPE tokenizers (trained once on the training data) and
the same batches. Training runs in chunks of ``--chunk`` steps (``--resume`` between chunks) until
the budget is spent or the preset's ``max_iters`` is reached, so a loaded machine gets fewer
steps rather than a longer run; the model with the best validation loss is decoded.

    nice -n 10 .venv/bin/python bench/bench_translate.py --budget-minutes 10 --cpu-budget \
        --fit-schedule --chunk 200 --test-limit 200 --parallel --jobs 2 --threads 1
    .venv/bin/python bench/bench_translate.py --models gru --budget-minutes 1 --test-limit 50
    .venv/bin/python bench/bench_translate.py --models 't2=transformer:n_layer=2;max_iters=1700'

``--cpu-budget`` counts each model's own process time, so a loaded machine gives the same steps
(later); ``--fit-schedule`` ends the cosine where that budget runs out. A model may be a variant
of a preset, ``LABEL=NAME:KEY=VALUE;...``; one with ``joint_vocab=true`` gets one BPE of its
``vocab_size`` trained on both sides (kept in ``--work``). ``--gpu`` trains the GPU presets
instead, side by side on one GPU up to one deadline (``--train-until``), decodes there and
tabulates issue 11's GPU targets: ``bench/gpu_translate.sh`` runs it on the device machine.
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
DATA = ROOT.parent / "shared" / "data" / "multi30k"
sys.path.insert(0, str(Path(__file__).resolve().parent))

MODELS = {  # name -> (family, preset)
    "gru": ("seq2seq", "multi30k-gru-cpu"),
    "attn": ("seq2seq", "multi30k-attn-cpu"),
    "transformer": ("transformer-ed", "multi30k-transformer-cpu"),
    "torch": ("bench-torch-transformer", "multi30k-transformer-cpu"),
}
# --gpu: the GPU presets (bench/gpu_translate.sh), and issue 11's BLEU targets for them
GPU_MODELS = {
    "gru": ("seq2seq", "multi30k-gru"),
    "attn": ("seq2seq", "multi30k-attn"),
    "transformer": ("transformer-ed", "multi30k-transformer"),
    "torch": ("bench-torch-transformer", "multi30k-transformer"),
}
GPU_TARGETS = {"gru": 20.0, "attn": 28.0, "transformer": 36.0}


def models_table(args) -> dict[str, tuple[str, str]]:
    return GPU_MODELS if getattr(args, "gpu", False) else MODELS


def fit_stop(steps_done: int, spent: float, budget: float, planned: int, target: int,
             chunk: int) -> int:
    """``--fit-schedule``: the step at which the cosine (and the run) should end, re-estimated
    after each chunk from the time per step so far -- where the budget is expected to run
    out, at least one more chunk past ``target`` (the step just reached), never past
    ``planned`` (the preset's ``max_iters``)."""
    reach = steps_done + (budget - spent) * steps_done / max(spent, 1e-9)
    return min(planned, max(target + chunk, int(reach)))


def tokenizers(work: Path, pairs, preset: str = "multi30k-gru-cpu"):
    from chainrule.errors import ConfigError
    from chainrule.tokenizers import load_tokenizer, train_tokenizer
    from chainrule.training.config import load_preset

    paths = work / "source_tokenizer.json", work / "tokenizer.json"
    vocab = load_preset(preset)["vocab_size"]
    if all(p.exists() for p in paths):
        toks = tuple(load_tokenizer(p) for p in paths)
        if any(t.vocab_size > vocab for t in toks):
            raise ConfigError(f"the tokenizers in {str(work)!r} have more than {preset}'s "
                              f"{vocab} entries; use another --work directory.")
        return toks
    src = train_tokenizer("bytebpe", [s for s, _ in pairs], vocab_size=vocab)
    tgt = train_tokenizer("bytebpe", [t for _, t in pairs], vocab_size=vocab)
    src.save(paths[0])
    tgt.save(paths[1])
    return src, tgt


def joint_tokenizer(work: Path, pairs, vocab: int):
    """One byte-level BPE of ``vocab`` entries trained on both sides (a ``joint_vocab=true``
    variant), kept in ``work`` for the other models of the run."""
    from chainrule.tokenizers import load_tokenizer, train_tokenizer

    path = work / f"joint_tokenizer_{vocab}.json"
    if path.exists():
        return load_tokenizer(path)
    tok = train_tokenizer("bytebpe", [x for pair in pairs for x in pair], vocab_size=vocab)
    tok.save(path)
    return tok


def _encode_once() -> None:
    """Encode the corpus once per process: training resumes chunk after chunk, and the CPU
    budget should pay for training, not for re-encoding 29,000 pairs every chunk."""
    from chainrule.training import translation

    if getattr(translation.encode_pairs, "cached", False):
        return
    plain, memo = translation.encode_pairs, {}

    def encode_pairs(pairs, source_tokenizer, tokenizer, max_len):
        key = (id(pairs), id(source_tokenizer), id(tokenizer), max_len)
        if key not in memo:
            memo[key] = plain(pairs, source_tokenizer, tokenizer, max_len)
        return memo[key]

    encode_pairs.cached = True
    translation.encode_pairs = encode_pairs


def parse_model(spec: str) -> tuple[str, str, dict[str, str]]:
    """``NAME`` or ``LABEL=NAME:KEY=VALUE;...`` (a variant of a model with preset keys changed,
    e.g. ``t2=transformer:n_layer=2;max_iters=500``) -> (label, name, overrides)."""
    head, _, rest = spec.partition(":")
    label, _, name = head.rpartition("=")
    keys = dict(item.partition("=")[::2] for item in filter(None, rest.split(";")))
    return label or name, name, keys


def run_one(spec: str, args) -> dict:
    import torch
    import torch_transformer_baseline  # noqa: F401 -- registers the peer family

    from chainrule.data.parallel import read_parallel
    from chainrule.evaluation.translation import Translator, corpus_scores, hypothesis_text
    from chainrule.evaluation.translation import translate as run_translate
    from chainrule.training.config import load_preset, make_config
    from chainrule.training.translation import train_translation

    torch.set_num_threads(args.threads)
    _encode_once()
    label, name, overrides = parse_model(spec)
    family, preset = models_table(args)[name]
    work, data = Path(args.work), Path(args.data)
    train = read_parallel(data / "train.de.gz", data / "train.en.gz")
    val = read_parallel(data / "val.de.gz", data / "val.en.gz")
    test = read_parallel(data / "test_2016_flickr.de.gz", data / "test_2016_flickr.en.gz")
    if args.test_limit:
        test = test[: args.test_limit]
    if args.train_limit:
        train = train[: args.train_limit]
    table = {k: v for k, v in load_preset(preset).items() if k != "family"}
    if overrides.get("joint_vocab", "").lower() in ("true", "1"):
        stok = tok = joint_tokenizer(work, train, int(overrides.get("vocab_size",
                                                                     table["vocab_size"])))
    else:
        stok, tok = tokenizers(work, train, models_table(args)["gru"][1])
    planned = int(overrides.pop("max_iters", table["max_iters"]))
    keys = [f"{k}={v}" for k, v in overrides.items()]
    out = work / label
    budget = args.budget_minutes * 60
    from chainrule.training import translation

    for pairs in (train, val):  # encoded once (memoised), outside the budget
        translation.encode_pairs(pairs, stok, tok, int(table["max_len"]))
    if args.train_until:  # an absolute deadline (epoch seconds) shared by parallel models
        budget = max(0.0, args.train_until - time.time())
    wall0, cpu0 = time.perf_counter(), time.process_time()
    decay = min(planned, args.decay_steps or planned)
    steps_done, train_s, tokens = 0, 0.0, 0.0
    target, stop = 0, planned
    while True:
        target = min(stop, target + args.chunk)
        cfg = make_config(family, None, keys, base={**table, "max_iters": target,
                                                    "lr_decay_iters": decay,
                                                    "eval_interval": args.chunk})
        summary = train_translation(cfg, train, val, out, tokenizer=tok, source_tokenizer=stok,
                                    resume=target > args.chunk, overwrite=target <= args.chunk,
                                    progress=False, plot=False)
        tokens += summary["target_tokens_per_s"] * summary["train_seconds"]
        train_s += summary["train_seconds"]
        steps_done = summary["steps"]
        spent = (time.process_time() - cpu0 if args.cpu_budget else
                 time.perf_counter() - wall0)
        if target >= stop or spent >= budget or summary.get("stopped_early"):
            break
        if args.fit_schedule:  # end the cosine where the budget is expected to run out
            stop = decay = fit_stop(steps_done, spent, budget, planned, target, args.chunk)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    t0 = time.perf_counter()
    tr = Translator.load(out, device=summary["device"])  # decode where it trained
    outs = run_translate(tr, [s for s, _ in test], strategy="beam", beams=args.beams,
                         batch_size=args.decode_batch)
    hyps = [hypothesis_text(c) for c in outs]
    scores = corpus_scores(hyps, [t for _, t in test])
    (work / f"{label}.hyp.txt").write_text("".join(h + "\n" for h in hyps), "utf-8")
    result = {"model": label, "family": family, "preset": preset, "overrides": keys,
              "steps": steps_done,
              "planned_steps": planned, "train_wall_s": wall, "train_loop_s": train_s,
              "train_cpu_s": cpu, "lr_decay_iters": decay,
              "load_end": os.getloadavg(),
              "target_tokens_per_s": tokens / max(train_s, 1e-9),
              "best_val_loss": summary["best_val_loss"], "best_step": summary["best_step"],
              "stopped_early": summary["stopped_early"], "device": summary["device"],
              "parameters": summary["parameters"], "decode_s": time.perf_counter() - t0,
              "test_sentences": len(test), **scores}
    (work / f"{label}.json").write_text(json.dumps(result, indent=1), "utf-8")
    return result


def throughput(args) -> str:
    """Teacher-forced training steps of transformer-ed and torch.nn.Transformer of the preset's
    shape on the same batches (64 pairs of 20 + 20 tokens), interleaved, in the preset's dtype
    (bf16 autocast where it says ``bfloat16-if-native`` and the CPU has it); target tokens per
    CPU second (process time, so a loaded machine's share does not enter) and per wall second."""
    import torch
    import torch_transformer_baseline  # noqa: F401

    from chainrule.models.base import Source
    from chainrule.models.neural import build_neural_model
    from chainrule.training.build import uses_bf16
    from chainrule.training.config import load_preset
    from chainrule.training.objectives import TrainBatch
    from chainrule.training.translation import TeacherForcedCE

    torch.set_num_threads(args.threads)
    table_ = load_preset("multi30k-transformer-cpu")
    keys = ("n_layer", "n_dec_layer", "n_head", "n_embd", "n_inner", "dropout", "max_len",
            "scale_embeddings", "positions")
    bf16 = not args.float32 and uses_bf16(table_.get("dtype", "auto"), torch.device("cpu"))
    shape = {k: table_[k] for k in keys}
    V, B, T = table_["vocab_size"], table_["batch_size"], 20
    models = {}
    for fam in ("transformer-ed", "bench-torch-transformer"):
        torch.manual_seed(0)
        m = build_neural_model(fam, vocab_size=V, **shape).train()
        models[fam] = (m, torch.optim.AdamW(m.parameters(), lr=1e-4))
    g = torch.Generator().manual_seed(0)
    batches = [TrainBatch(torch.randint(2, V, (B, T), generator=g),
                          torch.randint(2, V, (B, T), generator=g),
                          source=Source(torch.randint(2, V, (B, T), generator=g),
                                        torch.full((B,), T)))
               for _ in range(4)]
    loss = TeacherForcedCE(0.1)
    cpu = dict.fromkeys(models, 0.0)
    wall = dict.fromkeys(models, 0.0)
    for i in range(args.throughput_steps + 2):
        for fam, (m, opt) in models.items():
            c0, w0 = time.process_time(), time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = loss.loss(m, batches[i % len(batches)])
            opt.zero_grad()
            out.backward()
            opt.step()
            if i >= 2:  # two warm-up steps each
                cpu[fam] += time.process_time() - c0
                wall[fam] += time.perf_counter() - w0
    n = args.throughput_steps * B * T
    a, b = "transformer-ed", "bench-torch-transformer"
    return (f"teacher-forced training, {args.throughput_steps} steps of {B} x {T} target tokens, "
            f"{args.threads} thread(s), {'bf16 autocast' if bf16 else 'float32'}:\n"
            f"| model | target tok per CPU-s | target tok per wall-s |\n|---|---|---|\n"
            f"| transformer-ed | {n / cpu[a]:,.0f} | {n / wall[a]:,.0f} |\n"
            f"| torch.nn.Transformer | {n / cpu[b]:,.0f} | {n / wall[b]:,.0f} |\n\n"
            f"ratio (transformer-ed / torch.nn.Transformer): {cpu[b] / cpu[a]:.2f}x per CPU "
            f"second, {wall[b] / wall[a]:.2f}x per wall second")


def table(results: list[dict]) -> str:
    head = ("| model | params | steps (of preset) | train CPU | train wall | target tok/s "
            "| best val loss | BLEU (beam 5) | chrF |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['parameters'] / 1e6:.1f}M | {r['steps']} "
                     f"({r['planned_steps']}) | {r['train_cpu_s'] / 60:.1f} min | "
                     f"{r['train_wall_s'] / 60:.1f} min | "
                     f"{r['target_tokens_per_s']:,.0f} | {r['best_val_loss']:.3f} | "
                     f"{r['bleu']:.2f} | {r['chrf']:.2f} |")
    by = {r["model"]: r for r in results}
    if "transformer" in by and "torch" in by:
        a, b = by["transformer"], by["torch"]
        lines.append(f"\ntransformer-ed / torch.nn.Transformer: target tokens/s "
                     f"{a['target_tokens_per_s'] / b['target_tokens_per_s']:.2f}x, BLEU "
                     f"{a['bleu'] / max(b['bleu'], 1e-9):.2f}x")
    if results:
        lines.append(f"\nBLEU signature: {results[0]['bleu_signature']}")
    return "\n".join(lines)


def gpu_table(results: list[dict]) -> str:
    """The ``--gpu`` table: issue 11's target beside each model's BLEU, and the peer's ratios."""
    head = ("| model | preset | params | steps (cap) | train wall | target tok/s (GPU shared) "
            "| best val loss | BLEU (beam 5) | chrF | target | met |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        goal = GPU_TARGETS.get(r["model"])
        met = "--" if goal is None else ("yes" if r["bleu"] >= goal else "**no**")
        lines.append(f"| {r['model']} | {r['preset']} | {r['parameters'] / 1e6:.1f}M | "
                     f"{r['steps']} ({r['planned_steps']}) | {r['train_wall_s'] / 60:.1f} min | "
                     f"{r['target_tokens_per_s']:,.0f} | {r['best_val_loss']:.3f} | "
                     f"{r['bleu']:.2f} | {r['chrf']:.2f} | "
                     f"{f'>= {goal:g}' if goal else 'peer' if r['model'] == 'torch' else '--'} "
                     f"| {met} |")
    by = {r["model"]: r for r in results}
    if "transformer" in by and "torch" in by:
        a, b = by["transformer"], by["torch"]
        lines.append(f"\ntransformer-ed / torch.nn.Transformer (same loop, same batches, trained "
                     f"side by side): target tokens/s "
                     f"{a['target_tokens_per_s'] / max(b['target_tokens_per_s'], 1e-9):.2f}x, "
                     f"BLEU {a['bleu'] / max(b['bleu'], 1e-9):.2f}x")
    if results:
        r = results[0]
        lines.append(f"\ndevice: {r.get('device')}; test sentences: {r['test_sentences']}; "
                     f"BLEU signature: {r['bleu_signature']}")
    return "\n".join(lines)


def write_report(report: Path, results: list[dict], text: str, meta: dict) -> None:
    """``results.md`` and ``results.json`` in ``report`` (the device tool's $OUT)."""
    report.mkdir(parents=True, exist_ok=True)
    (report / "results.md").write_text(text + "\n", "utf-8")
    (report / "results.json").write_text(json.dumps({**meta, "results": results}, indent=1),
                                         "utf-8")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="gru,attn,transformer,torch",
                   help="comma-separated NAME or LABEL=NAME:KEY=VALUE;KEY=VALUE (a variant)")
    p.add_argument("--budget-minutes", type=float, default=10.0)
    p.add_argument("--chunk", type=int, default=100, help="steps between budget checks")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cpu-budget", action="store_true",
                   help="count the budget in CPU seconds of the process (a loaded machine)")
    p.add_argument("--decay-steps", type=int, default=0,
                   help="cosine decay over this many steps (0: the preset's max_iters)")
    p.add_argument("--fit-schedule", action="store_true",
                   help="after every chunk, end the cosine (and the run) at the step the budget "
                        "is expected to reach at the CPU/wall time per step so far (at least one "
                        "more chunk, at most max_iters): a loaded machine still gets a decayed run")
    p.add_argument("--beams", type=int, default=5)
    p.add_argument("--test-limit", type=int, default=0)
    p.add_argument("--work", default=str(ROOT / "bench" / "out" / "translate"))
    p.add_argument("--parallel", action="store_true", help="train the models side by side")
    p.add_argument("--jobs", type=int, default=0,
                   help="with --parallel: at most this many at a time (0: all)")
    p.add_argument("--only", help=argparse.SUPPRESS)
    p.add_argument("--throughput", action="store_true",
                   help="only compare training throughput with torch.nn.Transformer")
    p.add_argument("--throughput-steps", type=int, default=10)
    p.add_argument("--float32", action="store_true",
                   help="--throughput in float32 whatever the preset's dtype")
    p.add_argument("--gpu", action="store_true",
                   help="the GPU presets (multi30k-gru/-attn/-transformer) and issue 11's GPU "
                        "targets in the table (bench/gpu_translate.sh)")
    p.add_argument("--data", default=str(DATA), help="the Multi30k directory")
    p.add_argument("--train-limit", type=int, default=0,
                   help="train on the first N pairs only (smoke runs)")
    p.add_argument("--train-until", type=float, default=0.0,
                   help="stop training at this wall-clock time (epoch seconds) instead of "
                        "--budget-minutes: one deadline for models trained side by side")
    p.add_argument("--decode-batch", type=int, default=50, help="sentences decoded together")
    p.add_argument("--report", help="also write results.md and results.json here")
    p.add_argument("--prepare", action="store_true",
                   help="only train the tokenizers into --work (then carry --work and --data)")
    p.add_argument("--collect", action="store_true",
                   help="only tabulate the results already in --work")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.throughput:
        text = throughput(args)
        print(text + f"\n\nload: {os.getloadavg()}")
        return 0
    if args.only:
        print(json.dumps(run_one(args.only, args)))
        return 0
    from chainrule.data.parallel import read_parallel

    names = args.models.split(",")
    labels = [parse_model(n)[0] for n in names]
    t0 = time.time()
    if not args.collect:
        data = Path(args.data)
        tokenizers(work, read_parallel(data / "train.de.gz", data / "train.en.gz"),
                   models_table(args)["gru"][1])
        if args.prepare:
            print(f"tokenizers ready in {work}")
            return 0
        for n in labels:  # a result left by an earlier run must not pass for this one's
            (work / f"{n}.json").unlink(missing_ok=True)
    if args.collect:
        results = [json.loads((work / f"{n}.json").read_text()) for n in labels
                   if (work / f"{n}.json").exists()]
    elif args.parallel:
        base = [sys.executable, __file__, "--budget-minutes", str(args.budget_minutes),
                "--chunk", str(args.chunk), "--threads", str(args.threads), "--beams",
                str(args.beams), "--test-limit", str(args.test_limit), "--work", str(work),
                "--decay-steps", str(args.decay_steps), "--data", str(args.data),
                "--train-limit", str(args.train_limit), "--train-until", str(args.train_until),
                "--decode-batch", str(args.decode_batch),
                *(["--gpu"] if args.gpu else []),
                *(["--cpu-budget"] if args.cpu_budget else []),
                *(["--fit-schedule"] if args.fit_schedule else [])]
        waiting, running = list(names), []
        while waiting or running:
            while waiting and len(running) < (args.jobs or len(names)):
                n = waiting.pop(0)
                log = open(work / f"{parse_model(n)[0]}.log", "w")  # noqa: SIM115
                running.append((subprocess.Popen([*base, "--only", n], stdout=subprocess.DEVNULL,
                                                 stderr=log), log))
            time.sleep(2)
            for q, log in list(running):
                if q.poll() is not None:
                    log.close()
                    running.remove((q, log))
        results = [json.loads((work / f"{n}.json").read_text()) for n in labels
                   if (work / f"{n}.json").exists()]
    else:
        results = [run_one(n, args) for n in names]
    text = gpu_table(results) if args.gpu else table(results)
    missing = [n for n in labels if n not in {r["model"] for r in results}]
    if missing:
        text += f"\n\nno result (see {work}/LABEL.log): {', '.join(missing)}"
    print(text)
    print(f"\nload: {os.getloadavg()}")
    (work / "results.md").write_text(text + "\n", "utf-8")
    if args.report:
        write_report(Path(args.report), results, text,
                     {"command": sys.argv, "load_end": os.getloadavg(), "wall_s":
                      time.time() - t0, "missing": missing})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
