#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, prepares the bundled WISDM v1.1
# windows, trains the seed's ViT with the seed's recipe and writes the evaluation report.
#   scripts/run_main.sh [--epochs N] [--seed S] [--out DIR] [--recipe seed|augmented]
# (--recipe augmented: the recipe selected on WISDM validation, docs/results/wisdm.md)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=50 seed=0 out=runs/wisdm-vit recipe=seed
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) epochs=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --recipe) recipe=$2; shift 2 ;;
    *) echo "usage: scripts/run_main.sh [--epochs N] [--seed S] [--out DIR] [--recipe seed|augmented]" >&2; exit 2 ;;
  esac
done
stage() { printf '\n== run_main.sh [%s/5] %s\n' "$1" "$2"; }
t0=$(date +%s)
stage 1 "installing dependencies (Debian packages: compiler, oneDNN, gnuplot, ...)"
bash scripts/deps.sh --main
stage 2 "building harvit (build/release)"
cmake --preset release >/dev/null
cmake --build --preset release --target harvit
stage 3 "preparing the bundled WISDM v1.1 windows (data/wisdm-v1.1-windows) into $out/data.bin"
mkdir -p build/data/wisdm "$out"
tar -xJf data/wisdm-v1.1-windows/wisdm_v1.1_windows_f32.tar.xz -C build/data/wisdm
H=build/release/harvit
$H prepare --dataset wisdm-npy --data build/data/wisdm --split given --seed "$seed" --out "$out/data.bin"
stage 4 "training the seed's ViT: $epochs epochs, recipe '$recipe', seed $seed (a line per epoch; Ctrl-C saves, --resume continues)"
$H train --data "$out/data.bin" --epochs "$epochs" --seed "$seed" --recipe "$recipe" --out "$out"
stage 5 "evaluating the best checkpoint (validation-selected) on the test windows"
$H eval --model "$out/best.safetensors" --data "$out/data.bin" --out "$out"
printf '\n== run_main.sh done in %d s. Report: %s/report.md (table, confusion matrix, curves in %s/)\n' \
  "$(( $(date +%s) - t0 ))" "$out" "$out"
