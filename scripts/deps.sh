#!/usr/bin/env bash
# Installs harvit's Debian 12 dependencies (skips apt when all are present).
#   scripts/deps.sh            build + test dependencies (PyTorch for the reference, clang for fuzzing,
#                              libonnx-dev for `harvit export`, python3-onnx and Node + onnxruntime-node
#                              in bench/ort for the export's check, OpenMPI for training over ranks)
#   scripts/deps.sh --main     what the main job needs: build, train, evaluate, plot (no PyTorch)
#   scripts/deps.sh --bench    the test dependencies and what bench/compare_torch needs (OpenBLAS)
set -euo pipefail
# ocl-icd-opencl-dev: Debian's oneDNN CMake package (dnnl-config.cmake) calls find_package(OpenCL
# REQUIRED), but libdnnl-dev only recommends it and recommends are not installed here.
pkgs=(build-essential cmake g++ make pkg-config xz-utils
      libdnnl-dev ocl-icd-opencl-dev libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
      gnuplot-nox)
case "${1:-}" in
  --main) ;;
  ""|--bench) pkgs+=(python3 python3-numpy python3-torch clang libclang-rt-14-dev libomp-dev
                    libonnx-dev libprotobuf-dev python3-onnx
                    openmpi-bin libopenmpi-dev)  # MPI: data-parallel training and cv over ranks
              # Node for ONNX Runtime (bench/ort: the export's test, the peer in bench/compare_torch).
              # Only where missing: a node from elsewhere (e.g. NodeSource's, npm bundled) is kept.
              command -v node >/dev/null || pkgs+=(nodejs)
              command -v npm >/dev/null || pkgs+=(npm)
              pkgs+=(ca-certificates)  # npm's registry is https; nodejs only recommends it
              if [ "${1:-}" = "--bench" ]; then
                pkgs+=(libopenblas0-openmp)
              fi ;;
  *) echo "usage: scripts/deps.sh [--main|--bench]" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps.sh: all ${#pkgs[@]} packages present"
else
  echo "deps.sh: installing ${missing[*]} (with their dependencies; this can take a few minutes)"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "deps.sh: installed"
fi
# onnxruntime-node, locked in bench/ort/package-lock.json, for tests/onnx_export.sh (ONNX Runtime
# runs the exported models) and bench/compare_torch. Needs the npm registry; without it the
# export's ONNX Runtime test fails under CI=true and is skipped elsewhere.
if [ "${1:-}" != "--main" ]; then
  ort="$(cd "$(dirname "$0")/.." && pwd)/bench/ort"
  if [ ! -f "$ort/node_modules/onnxruntime-node/package.json" ]; then
    echo "deps.sh: installing onnxruntime-node into bench/ort (npm ci --ignore-scripts)"
    (cd "$ort" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) ||
      echo "deps.sh: WARNING: npm ci in bench/ort failed: the ONNX Runtime check of harvit export cannot run" >&2
  fi
fi
