#!/usr/bin/env bash
# The README's test command: installs dependencies, builds the release preset, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release
ctest --preset release -j2
