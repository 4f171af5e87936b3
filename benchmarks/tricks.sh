#!/usr/bin/env bash
# The 32 px report's stabilisation experiment, rerun with numbers: every variant trains on the shared
# CelebA subset at 32 px with the same step budget, is evaluated against the held-out identities, and
# lands on one compare page.
#   bash benchmarks/tricks.sh [STEPS] [OUT]      (defaults: 1000 steps, runs/tricks)
set -euo pipefail
STEPS=${1:-1000}
OUT=${2:-runs/tricks}
DATA=${DATA:-../shared/data/celeba_subset}
FACEGEN=${FACEGEN:-facegen}
N_EVAL=${N_EVAL:-2000}

declare -A VARIANTS=(
  [baseline]=""
  [g_steps2]="--set train.g_steps=2"
  [instance_noise]="--set loss.instance_noise=0.125"
  [beta_label_noise]="--set loss.label_noise=beta(1,5)"
  [msggan]="--set model.family=msggan"
  [ema]="--set train.ema=0.999"
  [ema_diffaugment]="--set train.ema=0.999 --set data.diffaugment=color,translation"
)
ORDER=(baseline g_steps2 instance_noise beta_label_noise msggan ema ema_diffaugment)

mkdir -p "$OUT"
for name in "${ORDER[@]}"; do
  if [ -f "$OUT/$name/checkpoints/ckpt-$(printf %07d "$STEPS").safetensors" ]; then continue; fi
  start=$(date +%s)
  # shellcheck disable=SC2086
  $FACEGEN train --preset dcgan32 --data "$DATA" --steps "$STEPS" --out "$OUT/$name" --quiet ${VARIANTS[$name]}
  echo "$name $(( $(date +%s) - start ))" >> "$OUT/wall_seconds.txt"
done
for name in "${ORDER[@]}"; do
  [ -f "$OUT/$name/eval.json" ] || $FACEGEN evaluate "$OUT/$name" --n "$N_EVAL" --metrics fid,kid,pr
done
$FACEGEN compare "${ORDER[@]/#/$OUT/}" --out "$OUT/compare"
