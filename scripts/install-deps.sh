#!/usr/bin/env bash
# Installs flame's build and test dependencies from Debian 12 packages, plus any packages
# given as arguments (fuzz.sh and sanitize.sh add clang). Idempotent: apt-get runs only when
# something is missing.
set -euo pipefail
packages=("$@"

  build-essential cmake pkg-config
  libzmq3-dev cppzmq-dev capnproto libcapnp-dev libcurl4-openssl-dev libspdlog-dev catch2
  libssl-dev libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libcpp-httplib-dev gnuplot-nox
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
