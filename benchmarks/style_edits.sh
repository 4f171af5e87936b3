#!/usr/bin/env bash
# Issue 47's edits in W against edits in z on the CelebA subset, each step skipped when its output exists:
#   1. a judge of CelebA's labels at the models' resolution (12 epochs), unless JUDGE names one;
#   2. Smiling added to 200 sampled faces (seeds 0-199) along a plain linear direction from labels (`--linear`, a plane;
#      `--make Smiling=yes` moves the faces the plane reads as not smiling one spread past it), in W for STYLE and in z
#      for DCGAN, the same judge: flip rate, and the share of moved faces whose Male, Young or Blond_Hair flips with it;
#   3. 100 held-out photos, projected into W+ (STYLE: one w per layer, from the mean w) and into z (DCGAN), then the same
#      Smiling edit: mean PSNR of the unedited reconstruction, seconds per photo, flip rate.
# The runs are copied into OUT before their directions are written, so the trained runs stay as they were.
#   STYLE=runs/qb32-ada/runs/style32 DCGAN=runs/qb32-ada/runs/fast32 bash benchmarks/style_edits.sh [OUT]
# Writes OUT/table.md (and prints it).
set -euo pipefail
OUT=${1:-runs/style-edits}
CELEBA=${CELEBA:-../shared/data/celeba_subset}
FACEGEN=${FACEGEN:-facegen}
PYTHON=${PYTHON:-python3}
: "${STYLE:?name the style run: STYLE=runs/.../style32}" "${DCGAN:?name the DCGAN run: DCGAN=runs/.../fast32}"
SEEDS=${SEEDS:-0-199}
PHOTOS=${PHOTOS:-100}
mkdir -p "$OUT"

JUDGE=${JUDGE:-$OUT/judge}
if [ ! -f "$JUDGE/judge.safetensors" ]; then
  RESOLUTION=$($PYTHON -c "import sys; from facegen import checkpoint; print(checkpoint.load(sys.argv[1]).architecture['resolution'])" "$STYLE")
  $FACEGEN judge train "$CELEBA" --resolution "$RESOLUTION" --epochs 12 --out "$JUDGE" --quiet
fi

for name in style dcgan; do
  if [ "$name" = style ]; then source_run=$STYLE; else source_run=$DCGAN; fi
  run="$OUT/$name"
  if [ ! -f "$run/directions.json" ]; then
    rm -rf "$run"
    cp -r "$source_run" "$run"
    $FACEGEN directions "$run" --from-labels Smiling --judge "$JUDGE" --linear --quiet
  fi
  [ -f "$OUT/$name-seeds/edit.json" ] || $FACEGEN edit "$run" --seeds "$SEEDS" --make Smiling=yes --score --judge "$JUDGE" \
    --out "$OUT/$name-seeds"
  [ -f "$OUT/$name-photos/edit.json" ] || $FACEGEN edit "$run" --holdout "$PHOTOS" --make Smiling=yes --score --judge "$JUDGE" \
    --out "$OUT/$name-photos"
done

$PYTHON - "$OUT" "$STYLE" "$DCGAN" "$(dirname "$0")" <<'PY'
import json
import sys
from pathlib import Path

sys.path.insert(0, sys.argv[4])
from train_speed import machine

out = Path(sys.argv[1])
info = machine()


def smiling(folder: str) -> tuple[dict, dict]:
    record = json.loads((out / folder / "edit.json").read_text())
    op = next(op for op in record["operations"] if "score" in op)
    return op["score"], record.get("photos") or {}


lines = [f"{info['date']}, {info['cpu']}, {info['cores']} cores, avx512_bf16: {info['avx512_bf16']}, torch {info['torch']}; "
         f"style: {sys.argv[2]}, DCGAN: {sys.argv[3]}", "",
         "| Smiling added (plain linear direction) | faces | flip | Male flips | Young flips | Blond_Hair flips | any other trusted attribute | PSNR (dB) | s / photo |",
         "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
for name, space in (("style", "W (style32)"), ("dcgan", "z (DCGAN)")):
    for kind in ("seeds", "photos"):
        score, photos = smiling(f"{name}-{kind}")
        each = score["others_changed_each"]
        flips = " | ".join(f"{100 * each[a]:.1f} %" if each.get(a) is not None else "-" for a in ("Male", "Young", "Blond_Hair"))
        psnr = f"{photos['mean_psnr']:.2f}" if photos else "-"
        seconds = f"{photos['seconds_per_photo']:.2f}" if photos else "-"
        lines.append(f"| {space}, {'sampled faces' if kind == 'seeds' else 'held-out photos'} | {score['n_needed']} | "
                     f"{100 * score['flip_rate']:.1f} % | {flips} | {100 * score['others_changed']:.1f} % | {psnr} | {seconds} |")
table = "\n".join(lines) + "\n"
(out / "table.md").write_text(table)
print(table)
PY
