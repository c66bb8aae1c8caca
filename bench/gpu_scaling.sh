#!/usr/bin/env bash
# Scaling sweep on one CUDA GPU for issue 17 (UNTESTED on CUDA: no GPU in the session that wrote
# it). Tiny Shakespeare characters (the bundled copy), an IsoFLOP grid planned by the sweep itself
# for a wall-time budget over 2 decades of compute, then the fits with the largest budget held
# out. Run from the repository root:
#   BUDGET=420 bash bench/gpu_scaling.sh                  (results under $OUT, default /tmp/sout)
#   BUDGET=60 DEV=cpu DECADES=1 BUDGETS=3 bash bench/gpu_scaling.sh     (a CPU smoke test)
# Targets: >= 12 runs over >= 2 decades in <= 10 minutes; frontier R² >= 0.95; held-out budget
# within 3%; the exponents next to Kaplan's (alpha_N 0.076, alpha_C 0.050) and Chinchilla's
# (a ~ b ~ 0.5) in the fit's "reference" field -- at a scale far below theirs.
set -eu
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUTD=${OUT:-/tmp/sout}; DEV=${DEV:-cuda}; mkdir -p "$OUTD"
CR="python3 -m chainrule.cli"
CORPUS=src/chainrule/resources/tinyshakespeare.txt
/usr/bin/time -f "sweep wall %e s" $CR scale sweep "$CORPUS" -o "$OUTD/sweep" --device "$DEV" \
  --time-budget "${BUDGET:-420}" --decades "${DECADES:-2}" --budgets "${BUDGETS:-5}" \
  batch_size=${BATCH:-64} block_size=${BLOCK:-128} 2>&1 | tail -25
$CR scale fit "$OUTD/sweep" --holdout --json --plots "$OUTD/plots" > "$OUTD/fit.json"
$CR scale fit "$OUTD/sweep" --holdout --bootstrap 0 --no-plots | tee "$OUTD/fit.txt"
