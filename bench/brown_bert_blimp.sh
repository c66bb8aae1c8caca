#!/usr/bin/env bash
# BLiMP table for issue 12: a BERT, a GPT and an LSTM of about the same size trained on Brown with
# ONE byte-level BPE tokenizer (so words split into pieces and PLL-word-l2r differs from PLL),
# then `chainrule eval pairs` on the 12 BLiMP dev paradigms: BERT by PLL and by PLL-word-l2r,
# GPT and LSTM left to right. Run from the repository root (CPU sizes; raise ITERS on a GPU):
#   ITERS=600 DEV=cpu bash bench/brown_bert_blimp.sh          (results in bench/RESULTS.md)
set -u
ITERS=${ITERS:-600}; DEV=${DEV:-cpu}; RUNS=${RUNS:-runs/blimp}; VOCAB=${VOCAB:-4096}
DATA=${DATA:-../shared/data}; CR=".venv/bin/chainrule"; mkdir -p $RUNS
SHAPE="n_layer=2 n_embd=128 block_size=64 batch_size=32 max_iters=$ITERS lr_decay_iters=$ITERS \
warmup_iters=50 eval_interval=$ITERS eval_iters=20 boundaries=lines val_data=$DATA/brown/valid.txt"
[ -f $RUNS/tok.json ] || $CR tokenizer train --kind bytebpe --vocab-size $VOCAB \
    $DATA/brown/train.txt -o $RUNS/tok.json
for f in bert gpt lstm; do
  extra="n_head=4 learning_rate=1e-3 dropout=0.1"
  [ $f = lstm ] && extra="n_hidden=128 learning_rate=3e-3 dropout=0.1"
  [ -f $RUNS/$f/config.json ] || /usr/bin/time -f "$f wall %e s" $CR train --family $f \
      --tokenizer $RUNS/tok.json $DATA/brown/train.txt $SHAPE $extra --device $DEV \
      -o $RUNS/$f --json 2>&1 | tail -2
done
$CR eval pairs $RUNS/gpt $RUNS/lstm $RUNS/bert --data $DATA/blimp-dev/*.jsonl --json \
    > $RUNS/pairs_pll.json
$CR eval pairs $RUNS/bert --data $DATA/blimp-dev/*.jsonl --scoring pll-word-l2r --json \
    > $RUNS/pairs_l2r.json
.venv/bin/python - $RUNS <<'PY'
import json, sys
runs = sys.argv[1]
a = json.load(open(f"{runs}/pairs_pll.json"))["models"]
b = json.load(open(f"{runs}/pairs_l2r.json"))["models"]
cols = {"GPT": a[f"{runs}/gpt"], "LSTM": a[f"{runs}/lstm"], "BERT PLL": a[f"{runs}/bert"],
        "BERT PLL-word-l2r": b[f"{runs}/bert"]}
print("| paradigm | " + " | ".join(cols) + " |")
print("|---" * (len(cols) + 1) + "|")
for uid in sorted(cols["GPT"]["UID"]):
    print(f"| {uid} | " + " | ".join(f"{100 * c['UID'][uid]['accuracy']:.1f}"
                                     for c in cols.values()) + " |")
print("| **mean** | " + " | ".join(f"**{100 * c['overall']['accuracy']:.1f}**"
                                   for c in cols.values()) + " |")
PY
