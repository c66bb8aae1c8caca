#!/usr/bin/env bash
# Brown word-level table for issue 4 on a CUDA machine: FFNN, LSTM and GPT (brown-* presets) and
# order-3/5 modified Kneser-Ney under ONE vocabulary (the presets' word tokenizer, reused by the
# n-grams), then test perplexity of all five with `chainrule eval ppl`.
# Needs a copy of ../shared/data/brown/*.txt in devdata/brown/ (the device machine only receives the
# repository). Run from the repository root:
#   ITERS=2500 TLIM=80 DEV=cuda bash bench/gpu_brown_ladder.sh       (results in bench/RESULTS.md)
#   ITERS=5 DEV=cpu EXTRA="batch_size=2 block_size=8 eval_iters=2" bash bench/gpu_brown_ladder.sh
set -u
export PYTHONPATH=src PYTHONUNBUFFERED=1
ITERS=${ITERS:-3000}; DEV=${DEV:-cuda}; OUTD=${OUT:-/tmp/bout}; mkdir -p $OUTD runs
CR="python3 -m chainrule.cli"
for f in ffnn lstm gpt; do
  /usr/bin/time -f "$f wall %e s" timeout ${TLIM:-150} $CR train --family $f --preset brown-$f devdata/brown/train.txt val_data=devdata/brown/valid.txt max_iters=$ITERS lr_decay_iters=$ITERS ${EXTRA:-} --device $DEV -o runs/$f --json 2>&1 | tail -3
done
$CR train --family ngram --order 5 --smoothing mkn --tokenizer runs/ffnn/tokenizer.json devdata/brown/train.txt -o runs/kn5 --json 2>&1 | tail -2
$CR train --family ngram --order 3 --smoothing mkn --tokenizer runs/ffnn/tokenizer.json devdata/brown/train.txt -o runs/kn3 --json 2>&1 | tail -2
$CR eval ppl runs/kn3 runs/kn5 runs/ffnn runs/lstm runs/gpt --data devdata/brown/test.txt --device $DEV --json | tee $OUTD/brown_ppl.json
cat $OUTD/brown_ppl.json | python3 -c "import json,sys; [print(m[\"model\"], round(m[\"perplexity\"],2), round(m[\"perplexity_excl_oov\"],2), m[\"oov\"]) for m in json.load(sys.stdin)[\"models\"]]"
