#!/usr/bin/env bash
# Data-parallel training on this machine: the seed ViT on the bundled WISDM windows, one epoch
# (43 steps of the global batch), as 1 rank x 1 thread, 1 rank x N threads and N ranks x 1
# thread (N = the cores), side by side in one run; windows/s and the allreduce's ms per step as
# `harvit train` prints them; then the allreduce alone (bench_allreduce). Prints the ISA.
#   bash bench/mpi_scaling.sh [BUILD_DIR] [EPOCHS] [BATCH]
set -euo pipefail
B=${1:-build/release}
EPOCHS=${2:-1}
BATCH=${3:-128}
H=$B/harvit
N=$(nproc)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$W/npy"
tar -xJf data/wisdm-v1.1-windows/wisdm_v1.1_windows_f32.tar.xz -C "$W/npy"
$H prepare --dataset wisdm-npy --data "$W/npy" --split subject --out "$W/d.bin" > /dev/null
$H info | tail -1
echo "# seed ViT, WISDM windows (subject split), $EPOCHS epoch(s), global batch $BATCH, $N cores"
row() {  # label, command...
  local label=$1; shift
  "$@" > "$W/log" 2>&1 || { cat "$W/log"; exit 1; }
  local line
  line=$(grep '^epoch' "$W/log" | tail -1)
  local wps ar
  wps=$(sed -n 's/.* \([0-9]*\) win\/s.*/\1/p' <<< "$line")
  ar=$(sed -n 's/.*allreduce \([0-9.]*\) ms\/step.*/\1/p' <<< "$line")
  printf '%-26s %8s win/s   allreduce %6s ms/step   step %7.1f ms\n' "$label" "$wps" "${ar:--}" \
    "$(echo "1000 * $BATCH / $wps" | bc -l)"
}
args=(train --data "$W/d.bin" --epochs "$EPOCHS" --batch "$BATCH" --out "$W/run")
row "1 rank x 1 thread" $H "${args[@]}" --threads 1
row "1 rank x $N threads" $H "${args[@]}" --threads "$N"
row "$N ranks x 1 thread" mpirun -np "$N" --oversubscribe --bind-to core $H "${args[@]}"
if [ -x "$B/bench/bench_allreduce" ]; then
  mpirun -np "$N" --oversubscribe "$B/bench/bench_allreduce"
else
  echo "# bench_allreduce not built (configure found no MPI)"
fi
