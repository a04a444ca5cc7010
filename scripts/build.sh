#!/usr/bin/env bash
# Configures and builds flame into ./build (executables in build/bin). Run install-deps.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" > /dev/null
cmake --build build -j"${JOBS:-2}"
