#!/usr/bin/env bash
# Installs the dependencies, builds, and runs flame's main job: flame-demo starts a broker with
# the local process backend (examples/demo.toml), sends a burst of calls and shows the pool
# scaling up and back down to zero.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
exec ./build/bin/flame-demo "$@"
