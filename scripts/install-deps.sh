#!/usr/bin/env bash
# Installs flame's build and test dependencies from Debian 12 packages, plus any packages
# given as arguments (fuzz.sh and sanitize.sh add clang), and the npm packages of examples/node.
# Idempotent: apt-get and npm run only when something is missing.
set -euo pipefail
packages=("$@"

  build-essential cmake pkg-config
  libzmq3-dev cppzmq-dev capnproto libcapnp-dev libcurl4-openssl-dev libspdlog-dev catch2
  libssl-dev libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libcpp-httplib-dev gnuplot-nox
  # tests/package: cpack -G DEB (dpkg-shlibdeps, file) and systemd-analyze verify of the units
  dpkg-dev file systemd
  # tests/metrics: the real Prometheus server and promtool scrape and check /metrics (issue 11)
  prometheus
)
# Node.js and npm for examples/node (most machines have them already, from another source).
command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
else
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The npm packages of examples/node (ctest label `node`), exactly as its package-lock.json pins
# them, so that the tests themselves download nothing. npm runs only when node_modules does not
# match the lock (a copy of the lock marks a finished install). --ignore-scripts: zeromq ships
# prebuilt linux-x64 binaries; its install script would only try a source build.
node_dir="$(cd "$(dirname "$0")/.." && pwd)/examples/node"
if ! cmp -s "$node_dir/package-lock.json" "$node_dir/node_modules/.installed-lock.json"; then
  echo "install-deps: npm ci in examples/node"
  (cd "$node_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$node_dir/package-lock.json" "$node_dir/node_modules/.installed-lock.json"
fi
