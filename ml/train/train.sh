#!/usr/bin/env bash
# Reproduces ml/models/{mirror_health.onnx, MODEL_CARD.md, golden.csv, metrics.json}:
#   1. builds fog-node (release) and simulates the training table into
#      target/ml-train/train.csv (about 20 s for 15 telescopes x 18 segments x 3 years;
#      the release build takes 1-2 min the first time);
#   2. trains, evaluates and exports with ml/train/train.py (about 5 min on 2 shared cores).
# Needs the project venv (.venv, made by scripts/setup.sh from ml/requirements.txt).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
python="$root/.venv/bin/python"

SEED=${SEED:-1}
YEARS=${YEARS:-3}
SEGMENTS=${SEGMENTS:-18}
VARIANTS=${VARIANTS:-4}
data_dir="$root/target/ml-train"
csv="$data_dir/train.csv"

if ! "$python" -c 'import sklearn, skl2onnx, onnx, pandas, onnxruntime' 2>/dev/null; then
  echo "train: the venv lacks the training packages; running scripts/setup.sh" >&2
  bash "$root/scripts/setup.sh"
fi

mkdir -p "$data_dir"
sim=(simulate --segments "$SEGMENTS" --years "$YEARS" --seed "$SEED"
  --sites la_palma,dusty_desert,humid_coastal --climate-variants "$VARIANTS" --out "$csv")
echo "train: cargo run --release -p fog-node -- ${sim[*]}"
start=$(date +%s)
cargo run --quiet --release -p fog-node -- "${sim[@]}"
echo "train: build + simulate took $(( $(date +%s) - start )) s"

"$python" "$root/ml/train/train.py" --csv "$csv" --out-dir "$root/ml/models" --seed "$SEED" \
  --simulate-command "fog-node ${sim[*]/#$csv/target/ml-train/train.csv}"
