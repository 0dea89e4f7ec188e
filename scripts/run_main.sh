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
bash scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release
mkdir -p build/data/wisdm "$out"
tar -xJf data/wisdm-v1.1-windows/wisdm_v1.1_windows_f32.tar.xz -C build/data/wisdm
H=build/release/harvit
$H prepare --dataset wisdm-npy --data build/data/wisdm --split given --seed "$seed" --out "$out/data.bin"
$H train --data "$out/data.bin" --epochs "$epochs" --seed "$seed" --recipe "$recipe" --out "$out"
$H eval --model "$out/best.safetensors" --data "$out/data.bin" --out "$out"
