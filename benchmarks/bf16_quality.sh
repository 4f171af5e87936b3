#!/usr/bin/env bash
# Does bf16 autocast buy its speed with broken training? The demo's setting trained for the same
# steps in fp32 and in bf16, evaluated against the same held-out synthetic faces, on one compare page.
#   bash benchmarks/bf16_quality.sh [STEPS] [OUT]      (defaults: 600 steps, runs/bf16)
# On a CPU without native bf16 (no avx512_bf16/AMX) bf16 is emulated: same numbers, about 3x slower.
set -euo pipefail
STEPS=${1:-600}
OUT=${2:-runs/bf16}
FACEGEN=${FACEGEN:-facegen}
N_EVAL=${N_EVAL:-1000}

for precision in fp32 bf16; do
  if [ ! -f "$OUT/$precision/checkpoints/ckpt-$(printf %07d "$STEPS").safetensors" ]; then
    start=$(date +%s)
    $FACEGEN train --preset demo --steps "$STEPS" --out "$OUT/$precision" --quiet --set "train.precision=$precision"
    echo "$precision $(( $(date +%s) - start ))" >> "$OUT/wall_seconds.txt"
  fi
  [ -f "$OUT/$precision/eval.json" ] || $FACEGEN evaluate "$OUT/$precision" --n "$N_EVAL" --metrics fid,kid,pr --quiet
done
$FACEGEN compare "$OUT/fp32" "$OUT/bf16" --out "$OUT/compare"
