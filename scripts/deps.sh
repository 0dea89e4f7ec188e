#!/usr/bin/env bash
# Installs harvit's Debian 12 dependencies (skips apt when all are present).
#   scripts/deps.sh            build + test dependencies (PyTorch for the reference, clang for fuzzing)
#   scripts/deps.sh --main     what the main job needs: build, train, evaluate, plot (no PyTorch)
#   scripts/deps.sh --bench    the test dependencies and what bench/compare_torch needs (OpenBLAS, Node)
set -euo pipefail
# ocl-icd-opencl-dev: Debian's oneDNN CMake package (dnnl-config.cmake) calls find_package(OpenCL
# REQUIRED), but libdnnl-dev only recommends it and recommends are not installed here.
pkgs=(build-essential cmake g++ make pkg-config xz-utils
      libdnnl-dev ocl-icd-opencl-dev libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
      gnuplot-nox)
case "${1:-}" in
  --main) ;;
  ""|--bench) pkgs+=(python3 python3-numpy python3-torch clang libclang-rt-14-dev libomp-dev)
              if [ "${1:-}" = "--bench" ]; then
                pkgs+=(libopenblas0-openmp)
                # Node for the ONNX Runtime peer (bench/ort; then: cd bench/ort && npm ci --ignore-scripts).
                # Only where missing: a node from elsewhere (e.g. NodeSource's, npm bundled) is kept.
                command -v node >/dev/null || pkgs+=(nodejs)
                command -v npm >/dev/null || pkgs+=(npm)
              fi ;;
  *) echo "usage: scripts/deps.sh [--main|--bench]" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then echo "deps.sh: all ${#pkgs[@]} packages present"; exit 0; fi
echo "deps.sh: installing ${missing[*]} (with their dependencies; this can take a few minutes)"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps.sh: installed"
