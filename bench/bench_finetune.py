"""CPU benchmark: POS tagging by fine-tuning a masked-LM-pretrained BERT vs the same BERT from
scratch, at several fractions of the tagging training set, beside peers trained on the same
part in the same run: a most-frequent-tag baseline and NLTK's HMM and averaged-perceptron
taggers (``pip install nltk``, in the ``bench`` extra; skipped with a note when missing).

Data: the first ``--max-sentences`` tagged sentences of the NLTK Brown zip (coarse tags), split
by file (every 10th file held out), as ``chainrule finetune`` does. The pretrained body is a
``chainrule train --family bert`` model directory (default ``runs/blimp/bert``, made by
``bench/brown_bert_blimp.sh``); "scratch" is the same config freshly initialised (seeded). Both
train body + head with :func:`chainrule.training.finetune.finetune` (AdamW, lr 1e-3); a small
fraction gets more epochs, so every run takes at least ``--min-steps`` optimizer steps.
Each seed draws its own training part (and initialisation, shuffling); the table gives the
mean ± sd over seeds, and ``--plot`` draws the learning curve (accuracy vs fraction).
The most-frequent-tag baseline tags each word with its most frequent training tag (unseen
words: the most frequent tag overall). The HMM is NLTK's supervised bigram HMM with Lidstone
(0.1) smoothing; the perceptron NLTK's averaged perceptron (5 passes, seeded).

    nice -n 10 .venv/bin/python bench/bench_finetune.py --threads 1 --seeds 0,1,2 \\
        --plot bench/finetune_learning_curve.png
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BROWN_ZIP = ROOT.parent / "shared" / "data" / "brown" / "nltk-brown.zip"
SYSTEMS = ("baseline", "hmm", "perceptron", "scratch", "pretrained")
NAMES = {"baseline": "most frequent tag", "hmm": "HMM (NLTK)",
         "perceptron": "averaged perceptron (NLTK)", "scratch": "BERT from scratch",
         "pretrained": "BERT, masked-LM pretrained"}


def _pairs(sents):
    return [(w, t) for s in sents for w, t in zip(s.words, s.tags)]


def most_frequent_tag(train, test) -> float:
    by_word: dict[str, Counter] = defaultdict(Counter)
    for w, t in _pairs(train):
        by_word[w][t] += 1
    overall = Counter(t for s in train for t in s.tags).most_common(1)[0][0]
    pairs = _pairs(test)
    hits = sum((by_word[w].most_common(1)[0][0] if w in by_word else overall) == t
               for w, t in pairs)
    return hits / len(pairs)


def nltk_taggers(train, test, seed: int) -> dict[str, float]:
    """Held-out accuracy of NLTK's HMM and averaged perceptron trained on ``train``."""
    try:
        from nltk.probability import LidstoneProbDist
        from nltk.tag.hmm import HiddenMarkovModelTrainer
        from nltk.tag.perceptron import PerceptronTagger
    except ImportError:
        return {}
    data = [list(zip(s.words, s.tags)) for s in train]
    gold = [t for s in test for t in s.tags]
    out = {}
    hmm = HiddenMarkovModelTrainer().train_supervised(
        data, estimator=lambda fd, bins: LidstoneProbDist(fd, 0.1, bins))
    pred = [t for s in test for _, t in hmm.tag(list(s.words))]
    out["hmm"] = sum(p == g for p, g in zip(pred, gold)) / len(gold)
    random.seed(seed)  # the perceptron shuffles with the random module
    perc = PerceptronTagger(load=False)
    perc.train([list(x) for x in data], nr_iter=5)
    pred = [t for s in test for _, t in perc.tag(list(s.words))]
    out["perceptron"] = sum(p == g for p, g in zip(pred, gold)) / len(gold)
    return out


def plot_curve(summary: dict, path: str) -> None:
    from chainrule.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    fracs = sorted(summary, key=float)
    for name, style in zip(SYSTEMS, ("k:", "s--", "^--", "o-", "D-")):
        pts = [(float(f), summary[f][name]) for f in fracs if name in summary[f]]
        if not pts:
            continue
        xs = [100 * f for f, _ in pts]
        ax.errorbar(xs, [100 * m for _, (m, _) in pts], yerr=[100 * s for _, (_, s) in pts],
                    fmt=style, capsize=3, label=NAMES[name])
    ax.set_xscale("log")
    ax.set_xticks([100 * float(f) for f in fracs], [f"{100 * float(f):g}%" for f in fracs])
    ax.set_xlabel("% of the tagging training set")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("POS tagging on Brown (held-out files): mean ± sd over seeds")
    ax.legend(fontsize=8)
    try:
        _save(fig, path)
    finally:
        plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "runs" / "blimp" / "bert"))
    ap.add_argument("--data", default=str(BROWN_ZIP))
    ap.add_argument("--max-sentences", type=int, default=3000)
    ap.add_argument("--fractions", default="0.01,0.1,1")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--min-steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--plot", metavar="PNG", help="learning-curve plot")
    ap.add_argument("--json", metavar="FILE", help="write every run's figures")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from chainrule.data.tagged import read_tagged, split_by_file
    from chainrule.evaluation.classify_metrics import classification_report
    from chainrule.evaluation.textscore import load_model_and_tokenizer
    from chainrule.training.finetune import (
        FineTuner,
        finetune,
        make_examples,
        predict,
        take_fraction,
    )

    sents = read_tagged(args.data, limit=args.max_sentences)
    train, test = split_by_file(sents)
    labels = sorted({t for s in sents for t in s.tags})
    index = {t: i for i, t in enumerate(labels)}
    print(f"{len(train)} training sentences ({sum(len(s.words) for s in train)} words), "
          f"{len(test)} held-out ({sum(len(s.words) for s in test)} words), {len(labels)} tags")
    runs: list[dict] = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for fraction in [float(f) for f in args.fractions.split(",")]:
            part = take_fraction(train, fraction, seed)
            row = {"seed": seed, "fraction": fraction, "sentences": len(part),
                   "baseline": most_frequent_tag(part, test)}
            t0 = time.perf_counter()
            row.update(nltk_taggers(part, test, seed))
            row["peers_s"] = time.perf_counter() - t0
            for start in ("pretrained", "scratch"):
                model, tok = load_model_and_tokenizer(args.model)
                if start == "scratch":
                    torch.manual_seed(seed)
                    model = type(model).from_config_dict(model.config())
                ex_train = make_examples(model, tok, part, "tag", index)
                ex_test = make_examples(model, tok, test, "tag", index)
                steps_per_epoch = math.ceil(len(ex_train) / args.batch_size)
                epochs = max(args.epochs, math.ceil(args.min_steps / steps_per_epoch))
                torch.manual_seed(seed)
                tuner = FineTuner(model, len(labels), "tag")
                t0 = time.perf_counter()
                finetune(tuner, ex_train, epochs=epochs, batch_size=args.batch_size, lr=1e-3,
                         pad=model.eos_id, seed=seed)
                gold, pred = predict(tuner, ex_test, pad=model.eos_id)
                rep = classification_report(gold, pred, labels)
                row[start] = rep["accuracy"]
                row[f"{start}_f1"] = rep["macro_f1"]
                row[f"{start}_s"] = time.perf_counter() - t0
                row["epochs"] = epochs
            runs.append(row)
            print(json.dumps(row), flush=True)

    summary: dict[str, dict] = {}
    for fraction in sorted({r["fraction"] for r in runs}):
        rs = [r for r in runs if r["fraction"] == fraction]
        summary[str(fraction)] = {
            k: (statistics.mean(r[k] for r in rs),
                statistics.stdev(r[k] for r in rs) if len(rs) > 1 else 0.0)
            for k in (*SYSTEMS, "pretrained_f1", "scratch_f1", "sentences") if k in rs[0]}
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "summary": summary}, indent=1))
    if args.plot:
        plot_curve(summary, args.plot)
    cols = [k for k in SYSTEMS if k in next(iter(summary.values()))]
    print("\n| training part | sentences | " + " | ".join(NAMES[k] for k in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for f, s in summary.items():
        cells = [f"{100 * s[k][0]:.1f} ± {100 * s[k][1]:.1f}" for k in cols]
        print(f"| {100 * float(f):g}% | {s['sentences'][0]:.0f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
