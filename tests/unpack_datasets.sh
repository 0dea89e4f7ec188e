#!/usr/bin/env bash
# Unpacks the shared real datasets (../shared/datasets beside the repository) for the tests.
# A missing dataset: in CI (CI=true) an error - CI must not pass without real-data coverage;
# elsewhere a message, and the tests that need it skip. The bundled WISDM windows (data/ in the
# repository) are always unpacked; their absence is an error everywhere.
set -euo pipefail
src="$1/../shared/datasets"
dst="$2"
mkdir -p "$dst"
case "${CI:-}" in ""|0|false|False|FALSE) ci=0 ;; *) ci=1 ;; esac
missing=0
unpack() {  # name archive
  if [ ! -f "$src/$1/$2" ]; then
    missing=$((missing + 1))
    if [ "$ci" = 1 ]; then
      echo "unpack_datasets: MISSING $src/$1/$2 (CI=true: real-data tests must run)" >&2
    else
      echo "unpack_datasets: $src/$1/$2 not found; the tests that need $1 will skip (in CI this fails)" >&2
    fi
    return 0
  fi
  [ -f "$dst/$1/.done" ] && return 0
  rm -rf "${dst:?}/$1"; mkdir -p "$dst/$1"
  tar -xJf "$src/$1/$2" -C "$dst/$1" && touch "$dst/$1/.done"
}
unpack uci-har UCI_HAR_Dataset_inertial.tar.xz
unpack uci-hapt HAPT_RawData.tar.xz
unpack wisdm-2019-phone-accel-partial wisdm2019_raw_phone_accel_22subjects.tar.xz
unpack wisdm-v1.1-adatime-windows wisdm_v1.1_adatime_npy.tar.xz
# The bundled copy inside the repository (always present).
bundled="$1/data/wisdm-v1.1-windows/wisdm_v1.1_windows_f32.tar.xz"
[ -f "$bundled" ] || { echo "unpack_datasets: bundled archive missing: $bundled" >&2; exit 1; }
if [ ! -f "$dst/bundled-wisdm/.done" ]; then
  rm -rf "$dst/bundled-wisdm"; mkdir -p "$dst/bundled-wisdm"
  tar -xJf "$bundled" -C "$dst/bundled-wisdm" && touch "$dst/bundled-wisdm/.done"
fi
if [ "$missing" -gt 0 ] && [ "$ci" = 1 ]; then
  echo "unpack_datasets: $missing shared dataset(s) missing in CI" >&2
  exit 1
fi
