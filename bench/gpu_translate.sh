#!/usr/bin/env bash
# Issue 11's GPU targets in one device command: the three GPU presets (multi30k-gru, -attn,
# -transformer) and torch.nn.Transformer of the transformer's shape (the peer, same loop, same
# batches), trained side by side on one GPU up to one shared deadline, then each decodes all
# 1,000 sentences of Multi30k test 2016 with beam 5 on the GPU and is scored by sacreBLEU.
# Everything (start-up, training, decoding) ends within TOTAL_S seconds (default 540).
#
#   bash bench/gpu_translate.sh --prepare   # HERE, once: data + tokenizers -> bench/out/gpu-translate
#   bash bench/gpu_translate.sh             # on the GPU machine (device tool, see below)
#   bash bench/gpu_translate.sh --smoke     # HERE, on the CPU: tiny models, 5 test sentences
#
# The device machine has no ../shared/data and no compiled BPE core (pure-Python BPE training
# of 2 x 8,000 entries would take minutes there), so --prepare copies Multi30k and trains the
# tokenizers here into the git-ignored bench/out/gpu-translate, and the device call carries it:
#   run(command="bash bench/gpu_translate.sh", carry=["bench/out/gpu-translate"], timeout_s=600)
# What comes back in $OUT: results.md, results.json (the table), run.log, details.tar.gz (each
# model's log, metrics.jsonl, train_state.json and hypotheses), gpu.txt.
#
# TOTAL_S (540)  the whole run, in seconds; DECODE_S (100) of it kept for decoding and scoring;
# CHUNK (500)    steps between deadline checks, evaluations and checkpoints;
# MODELS         bench_translate.py --models (default gru,gru-plain,attn,transformer,torch);
# PY             the Python (default .venv/bin/python if there, else python3).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
START=$(date +%s)
DIR=bench/out/gpu-translate
if [[ -z ${PY:-} ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
MODE=${1:-gpu}
DATA=$DIR/data
WORK=$DIR/work
SRC=${SHARED_DATA:-../shared/data/multi30k}

case $MODE in
--prepare)
    mkdir -p "$DATA"
    cp "$SRC"/{train,val,test_2016_flickr}.{de,en}.gz "$DATA"/ || exit 1
    exec $PY bench/bench_translate.py --gpu --prepare --data "$DATA" --work "$WORK" ;;
--smoke)
    # outside $DIR, which travels to the device machine (the tool carries 64 MiB at most)
    OUT=${OUT:-$DIR-smoke/report}
    WORK=$DIR-smoke/work
    [[ -d $DATA ]] || DATA=$SRC
    TOTAL_S=${TOTAL_S:-150}; DECODE_S=${DECODE_S:-40}; CHUNK=${CHUNK:-10}
    S2S="n_embd=32;n_hidden=32;batch_size=16;eval_iters=2;max_iters=30;device=cpu"
    # the transformers train under bf16 autocast (on the CPU here), as the loop does on a GPU
    TED="n_embd=32;n_inner=64;n_head=2;n_layer=1;batch_size=16;eval_iters=2;max_iters=30;device=cpu"
    TED="$TED;dtype=bfloat16"
    MODELS=${MODELS:-"gru=gru:$S2S,attn=attn:$S2S,transformer=transformer:$TED,torch=torch:$TED"}
    EXTRA=(--train-limit 2000 --test-limit 5 --decode-batch 5 --threads 1)
    NICE=(nice -n 10) ;;
gpu)
    OUT=${OUT:-$DIR/report}
    if [[ ! -f $WORK/tokenizer.json || ! -f $DATA/train.de.gz ]]; then
        echo "no prepared data in $DIR: run 'bash bench/gpu_translate.sh --prepare' where" \
             "../shared/data exists, and carry $DIR to this machine." >&2
        exit 2
    fi
    if ! $PY -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
        echo "this PyTorch sees no CUDA GPU: the GPU presets would train on the CPU; run" \
             "'bash bench/gpu_translate.sh --smoke' to check the script here." >&2
        exit 2
    fi
    TOTAL_S=${TOTAL_S:-540}; DECODE_S=${DECODE_S:-100}; CHUNK=${CHUNK:-500}
    # gru is Cho et al.'s decoder (the preset's feed_context); gru-plain the lecture's
    MODELS=${MODELS:-gru,gru-plain=gru:feed_context=false,attn,transformer,torch}
    EXTRA=(--threads 2 --decode-batch 200)
    NICE=() ;;
*)
    echo "usage: bash bench/gpu_translate.sh [--prepare | --smoke]" >&2
    exit 2 ;;
esac

mkdir -p "$OUT" "$WORK"
UNTIL=$((START + TOTAL_S - DECODE_S))
{
    echo "start $(date -u +%FT%TZ); train until $(date -u -d @$UNTIL +%TZ); uptime: $(uptime)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
    $PY -c 'import torch, sacrebleu; print("torch", torch.__version__, "cuda",
torch.cuda.is_available(), "sacrebleu", sacrebleu.__version__)'
} 2>&1 | tee "$OUT/gpu.txt"

# the whole table, stopped (with every model process) if it overruns by 30 s
timeout -k 5 $((UNTIL + DECODE_S + 30 - $(date +%s))) "${NICE[@]}" $PY bench/bench_translate.py \
    --gpu --parallel --fit-schedule --models "$MODELS" --data "$DATA" --work "$WORK" \
    --train-until "$UNTIL" --chunk "$CHUNK" --beams 5 --report "$OUT" "${EXTRA[@]}" \
    2>&1 | tee "$OUT/run.log"
rc=${PIPESTATUS[0]}
if [[ $rc != 0 ]]; then  # stopped or failed: tabulate whatever finished
    echo "bench_translate.py exited with $rc; the models that finished:" | tee -a "$OUT/run.log"
    $PY bench/bench_translate.py --gpu --collect --models "$MODELS" --work "$WORK" \
        --report "$OUT" 2>&1 | tee -a "$OUT/run.log"
fi
for f in "$WORK"/*.log; do  # the end of the log of every model without a result
    [[ -f ${f%.log}.json ]] || { echo "== $f"; tail -n 12 "$f"; } | tee -a "$OUT/run.log"
done
(cd "$WORK" && tar czf - --ignore-failed-read ./*.log ./*.hyp.txt ./*/metrics.jsonl \
    ./*/train_state.json 2>/dev/null) > "$OUT/details.tar.gz"
echo "wall $(($(date +%s) - START)) s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')" \
    | tee -a "$OUT/run.log"
exit "$rc"
