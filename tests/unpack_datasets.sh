#!/usr/bin/env bash
# Unpacks the shared real datasets (../shared/datasets beside the repository) for the tests.
# Missing datasets are not an error: the tests that need them skip.
set -euo pipefail
src="$1/../shared/datasets"
dst="$2"
mkdir -p "$dst"
unpack() {  # name archive
  [ -f "$src/$1/$2" ] || return 0
  [ -f "$dst/$1/.done" ] && return 0
  rm -rf "${dst:?}/$1"; mkdir -p "$dst/$1"
  tar -xJf "$src/$1/$2" -C "$dst/$1" && touch "$dst/$1/.done"
}
unpack uci-har UCI_HAR_Dataset_inertial.tar.xz
unpack uci-hapt HAPT_RawData.tar.xz
unpack wisdm-2019-phone-accel-partial wisdm2019_raw_phone_accel_22subjects.tar.xz
unpack wisdm-v1.1-adatime-windows wisdm_v1.1_adatime_npy.tar.xz
# The bundled copy inside the repository (always present).
if [ ! -f "$dst/bundled-wisdm/.done" ]; then
  mkdir -p "$dst/bundled-wisdm"
  tar -xJf "$1/data/wisdm-v1.1-windows/wisdm_v1.1_windows_f32.tar.xz" -C "$dst/bundled-wisdm" && touch "$dst/bundled-wisdm/.done"
fi
