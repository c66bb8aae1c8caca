"""CPU benchmark: SmolLM2-135M-Instruct (Q4_1 GGUF) imported by chainrule vs transformers.

Peers in the same run, on the same (dequantised, float32) weights, same threads:

* import: ``import_gguf`` wall time and peak RSS (a subprocess); RSS of the loaded model
  (``load_model``) and of transformers' ``from_pretrained(gguf_file=...)``, each in a fresh
  subprocess, minus the RSS of the same process before loading;
* generation: batch 1, ``--new`` tokens greedy after the same prompt (EOS ignored), chainrule's
  ``generate`` vs transformers' ``generate``, best of ``--repeats``, interleaved;
* scoring: ``perplexity`` of the first ``--lines`` lines of ``brown/test.txt`` (each line
  ``[bos] + ids + [eos]``) vs transformers forward passes over the same token sequences
  (right-padded batches, attention mask), tokens/s and the summed log-probabilities.

    .venv/bin/python bench/bench_pretrained.py --threads 2
    .venv/bin/python bench/bench_pretrained.py --gguf path/to/model.gguf --new 32 --lines 50

The GGUF comes from the cache (``chainrule pretrained get smollm2-135m-instruct``) unless
``--gguf`` is given. Needs transformers, gguf and accelerate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BROWN = ROOT.parent / "shared" / "data" / "brown" / "test.txt"
PROMPT = "The history of the city begins in the"

_RSS_SNIPPET = r"""
import json, os, resource, sys, time
import torch
torch.set_num_threads({threads})
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
import chainrule.models, chainrule.tokenizers, transformers, gguf
before = rss()
t = time.perf_counter()
{body}
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"seconds": dt, "rss_before": before, "rss_after": rss(), "peak": peak}}))
"""


def _subprocess(body: str, threads: int) -> dict:
    code = _RSS_SNIPPET.format(threads=threads, body=body)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_import(gguf_file: Path, work: Path, threads: int) -> dict:
    model_dir = work / "model"
    imp = _subprocess(f"from chainrule.models.gguf import import_gguf\n"
                      f"import_gguf({str(gguf_file)!r}, {str(model_dir)!r})", threads)
    ours = _subprocess(f"from chainrule.models import load_model\n"
                       f"from chainrule.tokenizers import load_tokenizer\n"
                       f"m = load_model({str(model_dir)!r}); tok = load_tokenizer("
                       f"{str(model_dir)!r})", threads)
    hf = _subprocess(f"from transformers import AutoModelForCausalLM\n"
                     f"m = AutoModelForCausalLM.from_pretrained({str(gguf_file.parent)!r}, "
                     f"gguf_file={gguf_file.name!r}, dtype=torch.float32)", threads)
    return {"import": imp, "load_ours": ours, "load_hf": hf, "model_dir": model_dir}


def bench_generate(model, hf, ids: list[int], new: int, repeats: int) -> dict:
    from chainrule.decoding import GenerationConfig, generate

    cfg = GenerationConfig(strategy="greedy", max_new_tokens=new, ignore_eos=True)
    x = torch.tensor([ids])
    best = {"ours": float("inf"), "hf": float("inf")}
    for _ in range(repeats):
        t = time.perf_counter()
        [[out]] = generate(model, [ids[1:]], cfg)
        best["ours"] = min(best["ours"], time.perf_counter() - t)
        t = time.perf_counter()
        with torch.no_grad():
            theirs = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=new,
                                 min_new_tokens=new, do_sample=False,
                                 pad_token_id=model.eos_id)
        best["hf"] = min(best["hf"], time.perf_counter() - t)
    theirs = theirs[0, len(ids):].tolist()
    same = next((i for i, (a, b) in enumerate(zip(out.token_ids, theirs)) if a != b), new)
    return {"ours_tps": new / best["ours"], "hf_tps": new / best["hf"],
            "ratio": best["hf"] / best["ours"], "same_prefix": same, "new": new}


def bench_llama_cpp(gguf_file: Path, ids: list[int], new: int, repeats: int,
                    threads: int) -> dict | None:
    """llama.cpp (``llama-cpp-python``) on the same GGUF, run on its quantised weights (Q4_1):
    greedy, ``new`` tokens after the same prompt ids. None when it is not installed."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(model_path=str(gguf_file), n_ctx=512, n_threads=threads, n_batch=64,
                verbose=False)
    best, out = float("inf"), []
    for _ in range(repeats):
        llm.reset()
        out = []
        t = time.perf_counter()
        for tok in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
            out.append(tok)
            if len(out) == new:
                break
        best = min(best, time.perf_counter() - t)
    return {"tps": new / best, "tokens": out}


def hf_score(hf, seqs: list[list[int]], batch_tokens: int = 2048) -> float:
    """Summed log P of every token after the first, by transformers forward passes."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    total = 0.0
    i = 0
    while i < len(order):
        width = len(seqs[order[i]])
        j = i
        while j < len(order) and (j - i + 1) * len(seqs[order[j]]) <= max(batch_tokens, width):
            j += 1
        rows = [seqs[k] for k in order[i:j]]
        T = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), T, dtype=torch.long)
        mask = torch.zeros(len(rows), T, dtype=torch.long)
        for r, s in enumerate(rows):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
        with torch.no_grad():
            logp = torch.log_softmax(hf(ids, attention_mask=mask).logits.float(), dim=-1)
        gold = logp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
        total += float((gold * mask[:, 1:]).sum())
        i = j
    return total


def bench_score(model, tok, hf, lines: list[str], batch_tokens: int) -> dict:
    from chainrule.evaluation.perplexity import perplexity
    from chainrule.evaluation.textscore import frame
    from chainrule.models.scoring import score_sequences

    t = time.perf_counter()
    report = perplexity(model, tok, lines)
    ours = time.perf_counter() - t
    seqs = [frame(model, tok.encode(line)) for line in lines]
    t = time.perf_counter()
    same_batches = sum(float(a.sum()) for a in score_sequences(model, seqs,
                                                               max_tokens=batch_tokens))
    ours_small = time.perf_counter() - t
    t = time.perf_counter()
    theirs_lp = hf_score(hf, seqs, batch_tokens)
    theirs = time.perf_counter() - t
    return {"tokens": report.tokens, "ours_tps": report.tokens / ours,
            "ours_small_tps": report.tokens / ours_small, "hf_tps": report.tokens / theirs,
            "ratio": theirs / ours, "ratio_small": theirs / ours_small,
            "ours_logprob": report.logprob, "ours_small_logprob": same_batches,
            "hf_logprob": theirs_lp, "perplexity": report.perplexity,
            "bits_per_byte": report.bits_per_byte}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", type=Path, help="GGUF file (default: the cached SmolLM2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new", type=int, default=128, help="new tokens, batch 1")
    ap.add_argument("--repeats", type=int, default=3, help="best of N generation runs")
    ap.add_argument("--lines", type=int, default=200, help="lines of brown/test.txt to score")
    ap.add_argument("--data", type=Path, default=BROWN)
    ap.add_argument("--batch-tokens", type=int, default=2048,
                    help="padded positions per forward pass for transformers (and for the "
                         "second chainrule scoring figure, through score_sequences)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import transformers
    from transformers import AutoModelForCausalLM

    from chainrule.models import load_model
    from chainrule.models.gguf import smollm2_path
    from chainrule.tokenizers import load_tokenizer

    gguf_file = args.gguf or smollm2_path(download=False)
    if gguf_file is None:
        sys.exit("no GGUF: run `chainrule pretrained get smollm2-135m-instruct` or pass --gguf")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads "
          f"{args.threads}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {gguf_file}")
    with tempfile.TemporaryDirectory() as work:
        m = measure_import(Path(gguf_file), Path(work), args.threads)
        mb = 1 / 2**20
        print(f"import_gguf: {m['import']['seconds']:.1f} s, peak RSS "
              f"{m['import']['peak'] * mb:.0f} MB")
        for side in ("load_ours", "load_hf"):
            r = m[side]
            print(f"{side}: {r['seconds']:.1f} s, RSS after {r['rss_after'] * mb:.0f} MB "
                  f"(+{(r['rss_after'] - r['rss_before']) * mb:.0f} MB for the model), peak "
                  f"{r['peak'] * mb:.0f} MB")
        model = load_model(m["model_dir"])
        tok = load_tokenizer(m["model_dir"])
        hf = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name,
                                                  dtype=torch.float32).eval()
        ids = [model.bos_id, *tok.encode(PROMPT)]
        g = bench_generate(model, hf, ids, args.new, args.repeats)
        print(f"generate, batch 1, {args.new} new tokens after {len(ids)}: chainrule "
              f"{g['ours_tps']:.1f} tok/s, transformers {g['hf_tps']:.1f} tok/s, ratio "
              f"{g['ratio']:.2f}; identical for the first {g['same_prefix']} tokens")
        lc = bench_llama_cpp(Path(gguf_file), ids, args.new, args.repeats, args.threads)
        if lc is None:
            print("llama.cpp: not installed (pip install llama-cpp-python builds it from source)")
        else:
            print(f"llama.cpp (Q4_1 weights as stored, {args.threads} threads): "
                  f"{lc['tps']:.1f} tok/s; chainrule float32 / llama.cpp = "
                  f"{g['ours_tps'] / lc['tps']:.2f}")
        lines = args.data.read_text(encoding="utf-8").splitlines()[: args.lines]
        s = bench_score(model, tok, hf, lines, args.batch_tokens)
        print(f"scoring {len(lines)} lines of {args.data.name} ({s['tokens']} tokens): chainrule "
              f"perplexity() {s['ours_tps']:.0f} tok/s, score_sequences(max_tokens="
              f"{args.batch_tokens}) {s['ours_small_tps']:.0f} tok/s, transformers "
              f"{s['hf_tps']:.0f} tok/s; ratios {s['ratio']:.2f} / {s['ratio_small']:.2f}; "
              f"log P {s['ours_logprob']:.2f} / {s['ours_small_logprob']:.2f} vs "
              f"{s['hf_logprob']:.2f}; perplexity {s['perplexity']:.2f}, "
              f"{s['bits_per_byte']:.3f} bits/byte")


if __name__ == "__main__":
    main()
