#!/usr/bin/env bash
# `cpack -G DEB` builds the two packages (issue 11, item 5): flame (the executables, systemd
# units, example configs) and flame-dev (libraries, headers, schema, CMake and pkg-config
# files). Checks their file lists and Depends with dpkg-deb, extracts flame into a scratch root,
# and runs the extracted flame-broker: --help, then a real start on OS-chosen loopback ports and
# a clean SIGTERM.
# Usage: deb_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD=$(cd "$1" && pwd)
SOURCE=$(cd "$2" && pwd)
. "$SOURCE/tests/package/lib.sh"
command -v dpkg-deb >/dev/null || fail "dpkg-deb is missing (package dpkg)"

step "cpack -G DEB"
# -B: packages and cpack's staging area go to the scratch directory, not into the build tree.
(cd "$BUILD" && cpack -G DEB -B "$SCRATCH/packages") >"$SCRATCH/cpack.log" 2>&1 \
  || { cat "$SCRATCH/cpack.log"; fail "cpack -G DEB failed"; }
RUNTIME=$(find "$SCRATCH/packages" -maxdepth 1 -name 'flame_*.deb' -print -quit)
DEV=$(find "$SCRATCH/packages" -maxdepth 1 -name 'flame-dev_*.deb' -print -quit)
[ -n "$RUNTIME" ] || { cat "$SCRATCH/cpack.log"; fail "no flame_*.deb"; }
[ -n "$DEV" ] || { cat "$SCRATCH/cpack.log"; fail "no flame-dev_*.deb"; }
ls -l "$RUNTIME" "$DEV"
# Where libraries go (GNUInstallDirs: lib, or lib/<multiarch> when configured for prefix /usr).
LIB=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
[ -n "$LIB" ] || fail "CMAKE_INSTALL_LIBDIR is not in $BUILD/CMakeCache.txt"

step "dpkg-deb -c / -f"
expect_files() {  # expect_files DEB PATH...: each PATH (as dpkg-deb -c prints it) is in DEB
  local deb=$1 listing
  shift
  listing=$(dpkg-deb -c "$deb" | awk '{print $6}')
  for f in "$@"; do
    grep -qxF "$f" <<<"$listing" || { echo "$listing" >&2; fail "$(basename "$deb") lacks $f"; }
  done
}
expect_files "$RUNTIME" ./usr/bin/flame-broker ./usr/bin/flame ./usr/bin/flame-worker \
  ./usr/lib/systemd/system/flame-broker.service ./usr/lib/systemd/system/flame-runner@.service \
  ./usr/share/flame/examples/broker.toml ./usr/share/flame/examples/runner-default.env \
  ./usr/share/doc/flame/DEPLOY.md
expect_files "$DEV" ./usr/include/flame/client.h ./usr/include/flame/runner.h \
  ./usr/include/flame/client/client.h ./usr/include/flame/worker/runner.h \
  ./usr/include/flame/schema/flame.capnp ./usr/include/flame/schema/flame.capnp.h \
  "./usr/$LIB/libflame_client.a" "./usr/$LIB/libflame_runner.a" \
  "./usr/$LIB/cmake/flame/flameConfig.cmake" "./usr/$LIB/cmake/flame/flameConfigVersion.cmake" \
  "./usr/$LIB/pkgconfig/flame-client.pc" "./usr/$LIB/pkgconfig/flame-runner.pc"
# The runtime package carries no development files, the dev package no executables.
if dpkg-deb -c "$RUNTIME" | grep -E '\./usr/include/|/cmake/flame/|/pkgconfig/|\.a$'; then
  fail "the flame package ships development files"
fi
if dpkg-deb -c "$DEV" | grep -E '\./usr/bin/'; then fail "the flame-dev package ships executables"; fi

depends=$(dpkg-deb -f "$RUNTIME" Depends)
echo "flame Depends: $depends"
for p in libzmq5 libcapnp-0.9.2 libc6; do
  grep -qE "(^|, )$p( |,|$)" <<<"$depends" || fail "flame does not depend on $p (dpkg-shlibdeps)"
done
devdepends=$(dpkg-deb -f "$DEV" Depends)
echo "flame-dev Depends: $devdepends"
for p in flame libzmq3-dev cppzmq-dev libcapnp-dev libspdlog-dev; do
  grep -qE "(^|, )$p( |,|$)" <<<"$devdepends" || fail "flame-dev does not depend on $p"
done
for deb in "$RUNTIME" "$DEV"; do
  [ -n "$(dpkg-deb -f "$deb" Maintainer)" ] || fail "$(basename "$deb") has no Maintainer"
  # A synopsis line and an extended description, line by line (not a CMake list joined by ';').
  description=$(dpkg-deb -f "$deb" Description)
  [ "$(wc -l <<<"$description")" -ge 2 ] || fail "$(basename "$deb") has no extended description: $description"
  if grep -q '^ ;' <<<"$description"; then fail "$(basename "$deb"): description lines joined by ';': $description"; fi
done

step "dpkg-deb -x and run the extracted flame-broker"
dpkg-deb -x "$RUNTIME" "$SCRATCH/root"
help=$("$SCRATCH/root/usr/bin/flame-broker" --help) || fail "flame-broker --help failed"
grep -q -- '--clients' <<<"$help" || fail "flame-broker --help does not describe --clients: $help"
"$SCRATCH/root/usr/bin/flame" --help >/dev/null || fail "flame --help failed"
"$SCRATCH/root/usr/bin/flame-worker" --help >/dev/null || fail "flame-worker --help failed"
start_broker "$SCRATCH/root/usr/bin/flame-broker"
stop_broker

step "done"
echo "deb: passed"
