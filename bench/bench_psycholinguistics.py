"""Psycholinguistics bench (issue 13): the Brown ladder and SmolLM2-135M on the 10 SyntaxGym
suites and Natural Stories reading times, and surprisal throughput against minicons.

Part 1 (``--ladder DIR``: a finished ``chainrule ladder`` report directory, e.g. from
``nice -n 10 chainrule ladder --data brown/train.txt --valid brown/valid.txt --test
brown/test.txt -o DIR --rungs bigram,kn5,ffnn,lstm,gpt --budget 120s --min-count 2
--word-mode whitespace --threads 1``): one table of test perplexity, SyntaxGym accuracy and
reading-time ΔLL per model, SmolLM2-135M-Instruct (``--smollm2``) added. Word-level rungs score
``<unk>`` (counted); punctuation is split off reading-time words for them.

Part 2 (``--throughput``): ``eval surprisal``'s scorer (token surprisals, and boundary-corrected
word surprisals) against minicons' ``IncrementalLMScorer`` (batches of 32 in file order) on the
same weights exported to Hugging Face format (``chainrule export hf``), one thread each, on
``--n`` stimuli (the 1,000 SyntaxGym condition sentences, then BLiMP-dev pairs), interleaved
``--chunk`` stimuli at a time with the order of the three rotating, so that load changes on a
shared machine hit all three alike; the surprisals must agree to 1e-4 bits.

Run by hand (never from tests):

    nice -n 10 .venv/bin/python bench/bench_psycholinguistics.py --ladder /tmp/ladder --smollm2
    nice -n 10 .venv/bin/python bench/bench_psycholinguistics.py --throughput --n 10000 \
        --chunk 250
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

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def smollm2_dir() -> Path | None:
    """The SmolLM2 model directory made by `chainrule pretrained get`, or None."""
    from chainrule.models.pretrained import default_cache_dir

    d = default_cache_dir() / "models" / "smollm2-135m-instruct"
    return d if (d / "config.json").is_file() else None


def load(d):
    from chainrule.evaluation.textscore import load_model_and_tokenizer

    return load_model_and_tokenizer(d)


def psych_table(ladder: str | None, smollm2: bool) -> None:
    from chainrule.evaluation.reading_times import analyse, read_reading_times, unigram_log2
    from chainrule.evaluation.syntaxgym_report import evaluate_suites

    suites = sorted(str(p) for p in (SHARED / "syntaxgym").glob("*.json"))
    words = read_reading_times(SHARED / "naturalstories")
    freq = unigram_log2(SHARED / "brown" / "train.txt")
    models, ppl = [], {}
    if ladder:
        for r in json.loads((Path(ladder) / "results.json").read_text())["results"]:
            if r["status"] == "ok":
                models.append((r["rung"], r["model_dir"], True))
                ppl[r["rung"]] = r["test_ppl"]
    if smollm2:
        p = smollm2_dir()
        if p is None:
            print("SmolLM2 is not cached: run `chainrule pretrained get smollm2-135m-instruct`")
        else:
            models.append(("smollm2-135m", str(p), False))
    rows = []
    for name, d, word_level in models:
        t0 = time.perf_counter()
        m, tok = load(d)
        s = evaluate_suites([(name, m, tok)], suites, allow_unk=True).summary()[name]
        rt = analyse([(name, m, tok)], words, freq=freq, split_punctuation=word_level,
                     allow_unk=True, spillover=1)
        d_ll = rt.delta[name]
        rows.append((name, ppl.get(name), s, d_ll, rt.unk_words[name], rt.n_used,
                     time.perf_counter() - t0))
        print(f"{name}: SyntaxGym {100 * s['overall']:.1f}%  ΔLL {d_ll.delta_ll:.4f} "
              f"± {d_ll.se:.4f} ({rt.n_used} words)  {time.perf_counter() - t0:.0f} s",
              flush=True)
    names = sorted({k for r in rows for k in r[2]["suites"]})
    print("\n| model | test ppl (Brown, per token) | " + " | ".join(names)
          + " | SyntaxGym mean | ΔLL/word (nats) ± SE | <unk> words (suites / RT) |")
    print("|" + "---|" * (len(names) + 5))
    for name, p, s, d, unk_rt, n, _ in rows:
        cells = [f"{100 * s['suites'][k]['accuracy']:.0f}" for k in names]
        print(f"| {name} | {'—' if p is None else f'{p:.1f}'} | " + " | ".join(cells)
              + f" | {100 * s['overall']:.1f} | {d.delta_ll:.4f} ± {d.se:.4f} | "
              f"{s['unk_words']} / {unk_rt} |")


def throughput_stimuli(n: int) -> list[str]:
    """n stimuli in a psycholinguist's order: the 1,000 SyntaxGym condition sentences (suite,
    item, condition), then BLiMP-dev pairs (good and bad adjacent), an equal share of each
    file in file order."""
    from chainrule.evaluation.syntaxgym import condition_text, read_suite

    sents = []
    for p in sorted((SHARED / "syntaxgym").glob("*.json")):
        for it in read_suite(p).items:
            sents += [condition_text(r) for r in it["conditions"].values()]
    files = sorted((SHARED / "blimp-dev").glob("*.jsonl"))
    share = max(0, -(-(n - len(sents)) // (2 * len(files))))
    for p in files:
        rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        for r in rows[:share]:
            sents += [r["sentence_good"], r["sentence_bad"]]
    return sents[:n]


def throughput(n: int, hf_dir: str | None, chunk: int = 500) -> None:
    """chainrule tokens, chainrule boundary-corrected words and minicons, interleaved chunk by
    chunk (the order rotates) so that load changes hit all three alike."""
    import numpy as np
    import torch

    from chainrule.evaluation.stimuli import Stimulus
    from chainrule.evaluation.surprisal import sentence_surprisals
    from chainrule.evaluation.word_surprisal import boundary_mask, score_words
    torch.set_num_threads(1)
    sents = throughput_stimuli(n)
    src = smollm2_dir()
    if hf_dir is None:
        hf_dir = os.path.join(tempfile.gettempdir(), "chainrule-smollm2-hf")
        if not Path(hf_dir, "config.json").is_file():
            cli = Path(sys.executable).with_name("chainrule")
            subprocess.run([str(cli), "export", "hf", str(src), "-o", hf_dir, "--force"],
                           check=True)
    model, tok = load(src)
    mask = boundary_mask(tok, model)
    from minicons import scorer

    lm = scorer.IncrementalLMScorer(hf_dir, device="cpu")
    times = {"tokens": 0.0, "words": 0.0, "minicons": 0.0}
    diffs, done = [], 0

    def ours_tokens(part):
        return sentence_surprisals(model, tok, part, eos=False)

    def ours_words(part):
        return score_words(model, tok, [Stimulus(s) for s in part], eos=False, mask=mask)

    def theirs(part):
        out = []
        for i in range(0, len(part), 32):
            out += lm.token_score(part[i:i + 32], surprisal=True, base_two=True,
                                  bos_token=True)
        return out

    runs = {"tokens": ours_tokens, "words": ours_words, "minicons": theirs}
    names = list(runs)
    for k, a in enumerate(range(0, len(sents), chunk)):
        part = sents[a:a + chunk]
        got = {}
        for name in names[k % 3:] + names[:k % 3]:
            t0 = time.perf_counter()
            got[name] = runs[name](part)
            times[name] += time.perf_counter() - t0
        for mine, ref in zip(got["tokens"], got["minicons"]):
            m = np.array([t.surprisal_bits for t in mine.tokens])
            r = np.array([s for _, s in ref])
            # minicons lists the BOS token itself first (surprisal 0); the rest must line up
            assert len(r) == len(m) + 1 and r[0] == 0, (len(m), len(r), mine.text)
            diffs.append(np.abs(m - r[1:]).max())
        done += len(part)
        print(f"{done} stimuli: chainrule tokens {times['tokens']:.1f} s, words "
              f"{times['words']:.1f} s, minicons {times['minicons']:.1f} s; ratios "
              f"{times['minicons'] / times['tokens']:.2f}x / "
              f"{times['minicons'] / times['words']:.2f}x; max diff {max(diffs):.2e} bits; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"{done} stimuli, SmolLM2-135M on CPU, 1 thread; load {os.getloadavg()}")
    print(f"max |surprisal difference| vs minicons: {max(diffs):.2e} bits")
    print(f"chainrule tokens {times['tokens']:.1f} s, words (boundary-corrected) "
          f"{times['words']:.1f} s, minicons {times['minicons']:.1f} s; speed ratio "
          f"(minicons / chainrule tokens) {times['minicons'] / times['tokens']:.2f}x, "
          f"(minicons / chainrule words) {times['minicons'] / times['words']:.2f}x")


def ladder_throughput(ladder: str, n: int, rungs=("kn5", "lstm", "gpt")) -> None:
    """``eval surprisal --words --unk score`` with three ladder models on n stimuli."""
    import torch

    from chainrule.evaluation.stimuli import Stimulus
    from chainrule.evaluation.surprisal_table import surprisal_table
    from chainrule.evaluation.syntaxgym import condition_text, read_suite

    torch.set_num_threads(1)
    sents = []
    for p in sorted((SHARED / "syntaxgym").glob("*.json")):
        for it in read_suite(p).items:
            sents += [condition_text(r) for r in it["conditions"].values()]
    stimuli = [Stimulus(sents[i % len(sents)]) for i in range(n)]
    models = [(r, *load(Path(ladder) / "models" / r)) for r in rungs]
    t0 = time.perf_counter()
    table = surprisal_table(models, stimuli, words=True, allow_unk=True)
    dt = time.perf_counter() - t0
    print(f"eval surprisal: {n} stimuli x {len(models)} models ({', '.join(rungs)}), "
          f"{len(table.rows)} word rows in {dt:.1f} s ({n * len(models) / dt:.0f} "
          f"stimulus-models/s); load {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ladder", metavar="DIR", help="a finished ladder report directory")
    ap.add_argument("--smollm2", action="store_true", help="add SmolLM2-135M to the table")
    ap.add_argument("--throughput", action="store_true")
    ap.add_argument("--n", type=int, default=500, help="stimuli for the throughput run")
    ap.add_argument("--chunk", type=int, default=500, help="stimuli per interleaved chunk")
    ap.add_argument("--hf-dir", help="SmolLM2 already exported with `chainrule export hf`")
    ap.add_argument("--ladder-throughput", type=int, metavar="N",
                    help="time eval surprisal with kn5, lstm and gpt of --ladder on N stimuli")
    args = ap.parse_args()
    if args.ladder_throughput:
        ladder_throughput(args.ladder, args.ladder_throughput)
        return
    if args.ladder or args.smollm2:
        psych_table(args.ladder, args.smollm2)
    if args.throughput:
        throughput(args.n, args.hf_dir, args.chunk)


if __name__ == "__main__":
    main()
