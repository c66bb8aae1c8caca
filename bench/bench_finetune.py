"""CPU benchmark: POS tagging by fine-tuning a masked-LM-pretrained BERT vs the same BERT from
scratch, at several fractions of the tagging training set, beside a most-frequent-tag baseline.

Data: the first ``--max-sentences`` tagged sentences of the NLTK Brown zip (coarse tags), split
by file (every 10th file held out), as ``chainrule finetune`` does. The pretrained body is a
``chainrule train --family bert`` model directory (default ``runs/blimp/bert``, made by
``bench/brown_bert_blimp.sh``); "scratch" is the same config freshly initialised (seeded). Both
train body + head with :func:`chainrule.training.finetune.finetune` (AdamW, lr 1e-3); a small
fraction gets more epochs, so every run takes at least ``--min-steps`` optimizer steps.
The baseline tags each word with its most frequent training tag (unseen words: the most
frequent tag overall).

    .venv/bin/python bench/bench_finetune.py --threads 4
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BROWN_ZIP = ROOT.parent / "shared" / "data" / "brown" / "nltk-brown.zip"


def most_frequent_tag(train, test) -> float:
    by_word: dict[str, Counter] = defaultdict(Counter)
    for s in train:
        for w, t in zip(s.words, s.tags):
            by_word[w][t] += 1
    overall = Counter(t for s in train for t in s.tags).most_common(1)[0][0]
    pairs = [(w, t) for s in test for w, t in zip(s.words, s.tags)]
    hits = sum((by_word[w].most_common(1)[0][0] if w in by_word else overall) == t
               for w, t in pairs)
    return hits / len(pairs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "runs" / "blimp" / "bert"))
    ap.add_argument("--data", default=str(BROWN_ZIP))
    ap.add_argument("--max-sentences", type=int, default=3000)
    ap.add_argument("--fractions", default="0.01,0.1,1")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--min-steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=4)
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
    print(f"most-frequent-tag baseline: {100 * most_frequent_tag(train, test):.1f}%")
    rows = []
    for fraction in [float(f) for f in args.fractions.split(",")]:
        part = take_fraction(train, fraction)
        row = {"fraction": fraction, "sentences": len(part),
               "baseline": most_frequent_tag(part, test)}
        for start in ("pretrained", "scratch"):
            model, tok = load_model_and_tokenizer(args.model)
            if start == "scratch":
                torch.manual_seed(0)
                model = type(model).from_config_dict(model.config())
            ex_train = make_examples(model, tok, part, "tag", index)
            ex_test = make_examples(model, tok, test, "tag", index)
            epochs = max(args.epochs,
                         math.ceil(args.min_steps / math.ceil(len(ex_train) / args.batch_size)))
            torch.manual_seed(0)
            tuner = FineTuner(model, len(labels), "tag")
            t0 = time.perf_counter()
            finetune(tuner, ex_train, epochs=epochs, batch_size=args.batch_size, lr=1e-3,
                     pad=model.eos_id)
            gold, pred = predict(tuner, ex_test, pad=model.eos_id)
            rep = classification_report(gold, pred, labels)
            row[start] = (rep["accuracy"], rep["macro_f1"], epochs, time.perf_counter() - t0)
        rows.append(row)
        print(f"{fraction:g}: {row}", flush=True)

    print("\n| training part | sentences | most frequent tag | from scratch acc / macro-F1 "
          "| pretrained acc / macro-F1 | epochs |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        s, p = r["scratch"], r["pretrained"]
        print(f"| {100 * r['fraction']:g}% | {r['sentences']} | {100 * r['baseline']:.1f} | "
              f"{100 * s[0]:.1f} / {100 * s[1]:.1f} | {100 * p[0]:.1f} / {100 * p[1]:.1f} | "
              f"{p[2]} |")


if __name__ == "__main__":
    main()
