#!/usr/bin/env bash
# The VAE reports' experiments with numbers (issue 8), each family for the same wall-clock budget:
#   1. vae64 on the CelebA subset: reconstructions, latent plots by Smiling and Male, N(0, I) and GMM samples;
#   2. vae-anime64, vaegan-anime64 and dcgan-anime64 on the anime faces: prior-sample FID/KID, held-out
#      reconstruction MSE, one compare page.
#   bash benchmarks/vae_families.sh [MINUTES] [OUT]      (defaults: 12 minutes per run, runs/vae-families)
#   PARTS=anime bash benchmarks/vae_families.sh ...      (only part 2; PARTS=celeba only part 1)
# Runs already trained are skipped, so a stopped script picks up where it was. Run it on an idle machine:
# the budget is wall-clock, so anything else running takes steps away from whichever run is training.
set -euo pipefail
MINUTES=${1:-12}
OUT=${2:-runs/vae-families}
CELEBA=${CELEBA:-../shared/data/celeba_subset}
ANIME=${ANIME:-../shared/data/anime_faces}
FACEGEN=${FACEGEN:-facegen}
N_EVAL=${N_EVAL:-2000}
PARTS=${PARTS:-celeba anime}
CELEBA_RUNS=""; ANIME_RUNS=""
[[ " $PARTS " == *" celeba "* ]] && CELEBA_RUNS="vae64"
[[ " $PARTS " == *" anime "* ]] && ANIME_RUNS="vae-anime64 vaegan-anime64 dcgan-anime64"

train() {  # preset, data, run name, extra arguments
  local preset=$1 data=$2 name=$3
  shift 3
  [ -f "$OUT/$name/checkpoints/done" ] && return
  rm -rf "${OUT:?}/$name"
  start=$(date +%s)
  $FACEGEN train --preset "$preset" --data "$data" --minutes "$MINUTES" --epochs 1000 --out "$OUT/$name" --quiet "$@"
  echo "$name $(( $(date +%s) - start ))" >> "$OUT/wall_seconds.txt"
  touch "$OUT/$name/checkpoints/done"
}

mkdir -p "$OUT"
[ -n "$CELEBA_RUNS" ] && train vae64 "$CELEBA" vae64
for preset in $ANIME_RUNS; do
  train "$preset" "$ANIME" "$preset"
done

for name in $CELEBA_RUNS $ANIME_RUNS; do
  [ -f "$OUT/$name/eval.json" ] || $FACEGEN evaluate "$OUT/$name" --n "$N_EVAL" --metrics fid,kid,pr --quiet
done
for name in $CELEBA_RUNS ${ANIME_RUNS% dcgan-anime64}; do
  [ -f "$OUT/$name/eval-gmm.json" ] || $FACEGEN evaluate "$OUT/$name" --prior gmm --n "$N_EVAL" --metrics fid,kid,pr --quiet
  [ -f "$OUT/$name/eval-reconstructions.json" ] || $FACEGEN evaluate "$OUT/$name" --reconstructions --metrics fid,kid,pr --quiet
  $FACEGEN reconstruct "$OUT/$name" --holdout 16 --out "$OUT/$name/reconstructions.png" --quiet | tail -1
  $FACEGEN sample "$OUT/$name" --n 64 --grid "$OUT/$name/samples-normal.png"
  $FACEGEN sample "$OUT/$name" --prior gmm --n 64 --grid "$OUT/$name/samples-gmm.png"
done
if [ -n "$CELEBA_RUNS" ]; then
  for attribute in Smiling Male; do
    $FACEGEN latent-plot "$OUT/vae64" --attribute "$attribute" --method pca --out "$OUT/vae64/latent-$attribute-pca.png" --quiet
    $FACEGEN latent-plot "$OUT/vae64" --attribute "$attribute" --method tsne --out "$OUT/vae64/latent-$attribute-tsne.png" --quiet
  done
fi
if [ -n "$ANIME_RUNS" ]; then
  $FACEGEN sample "$OUT/dcgan-anime64" --n 64 --grid "$OUT/dcgan-anime64/samples-normal.png"
  $FACEGEN compare "$OUT/vae-anime64" "$OUT/vaegan-anime64" "$OUT/dcgan-anime64" --out "$OUT/compare-anime"
fi
python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def read(run, name):
    path = out / run / name
    return json.loads(path.read_text()) if path.is_file() else {}
print(f"{'run':<16} {'steps':>6} {'FID N(0,I)':>10} {'KID N(0,I)':>16} {'FID GMM':>8} {'KID GMM':>16} {'recon MSE':>9} {'PSNR':>6} {'recon FID':>9}")
for run in ("vae64", "vae-anime64", "vaegan-anime64", "dcgan-anime64"):
    e, g, r = read(run, "eval.json"), read(run, "eval-gmm.json"), read(run, "eval-reconstructions.json")
    kid = lambda d: f"{d['kid']:.4f} ± {d['kid_std']:.4f}" if d else "-"
    num = lambda d, k, f: format(d[k], f) if d else "-"
    print(f"{run:<16} {e.get('step', '-'):>6} {num(e, 'fid', '.1f'):>10} {kid(e):>16} {num(g, 'fid', '.1f'):>8} {kid(g):>16} "
          f"{num(r, 'mse', '.5f'):>9} {num(r, 'psnr', '.2f'):>6} {num(r, 'fid', '.1f'):>9}")
PY
