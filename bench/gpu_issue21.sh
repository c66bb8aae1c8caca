#!/usr/bin/env bash
# Issue 21's GPU checks (targets 4 and 5) on one H100/H200, prepared so the device time goes to
# measuring. Untested on CUDA when written (no GPU that session); each part also runs on the CPU:
#   .venv/bin/python bench/gpu_generate.py --family lstm --tiny --device cpu
#   .venv/bin/python bench/gpu_vs_nanogpt.py --nanogpt /work/peers/nanoGPT --smoke
#
# nanoGPT is not in the project: copy its checkout into the git-ignored bench/out/ first and carry
# that folder to the device machine (the device tool's carry=["bench/out/nanoGPT"]):
#   cp -r /work/peers/nanoGPT bench/out/nanoGPT
#
# PART=gen   recurrent decoding, fast path vs plain step (about 1 minute)
# PART=race  shakespeare-char to val loss <= 1.47, chainrule vs nanoGPT, wall time (4-6 minutes)
# PART=124m  GPT-2 124M shape tokens/s, chainrule vs nanoGPT (about 3 minutes)
# PART=all   the three in turn (default; over the device tool's 10-minute limit per command on a
#            slow start, so run the parts as separate commands when time is short)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
NANO=${NANO:-bench/out/nanoGPT}
PART=${PART:-all}
uptime
if [[ $PART == gen || $PART == all ]]; then
    $PY bench/gpu_generate.py --family lstm --batches 1 16 --repeats 3
    $PY bench/gpu_generate.py --family rnn --batches 1 --repeats 3
fi
if [[ $PART == race || $PART == all ]]; then
    $PY bench/gpu_vs_nanogpt.py --nanogpt "$NANO" --skip-124m --limit 240
fi
if [[ $PART == 124m || $PART == all ]]; then
    $PY bench/gpu_vs_nanogpt.py --nanogpt "$NANO" --skip-shakespeare
fi
