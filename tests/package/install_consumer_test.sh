#!/usr/bin/env bash
# The installed package works for an application outside the tree (issue 11, item 5):
#   1. `cmake --install` of the already-built tree into a scratch prefix; the files are there;
#   2. examples/consumer (its own CMakeLists.txt: find_package(flame), flame::client +
#      flame::runner, <flame/client.h>, <flame/runner.h>) configures and builds against that
#      prefix only;
#   3. the *installed* flame-broker starts on OS-chosen loopback ports, the consumer serves a
#      function as a runner and calls it as a client, and checks the answer;
#   4. a tiny program compiled with `pkg-config --cflags --libs flame-client flame-runner`
#      asks the same broker for its status;
#   5. the broker stops cleanly on SIGTERM.
# Usage: install_consumer_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD=$(cd "$1" && pwd)
SOURCE=$(cd "$2" && pwd)
. "$SOURCE/tests/package/lib.sh"
PREFIX="$SCRATCH/prefix"

step "cmake --install $BUILD --prefix $PREFIX"
cmake --install "$BUILD" --prefix "$PREFIX" >"$SCRATCH/install.log" || { cat "$SCRATCH/install.log"; fail "cmake --install failed"; }
LIBDIR=$(dirname "$(find "$PREFIX" -name libflame_client.a -print -quit)")
[ -n "$LIBDIR" ] && [ "$LIBDIR" != . ] || fail "libflame_client.a was not installed"
for f in bin/flame-broker bin/flame bin/flame-worker \
         include/flame/client.h include/flame/runner.h include/flame/client/client.h \
         include/flame/worker/runner.h include/flame/common/messages.h \
         include/flame/schema/flame.capnp include/flame/schema/flame.capnp.h \
         "${LIBDIR#"$PREFIX"/}/libflame_runner.a" \
         "${LIBDIR#"$PREFIX"/}/cmake/flame/flameConfig.cmake" \
         "${LIBDIR#"$PREFIX"/}/cmake/flame/flameConfigVersion.cmake" \
         "${LIBDIR#"$PREFIX"/}/cmake/flame/flameTargets.cmake" \
         "${LIBDIR#"$PREFIX"/}/pkgconfig/flame-client.pc" \
         "${LIBDIR#"$PREFIX"/}/pkgconfig/flame-runner.pc"; do
  [ -e "$PREFIX/$f" ] || fail "not installed: $f"
done
# The installed package must not point back into the build or source tree.
if grep -rlE "$BUILD|$SOURCE/(client|worker|common|schema)" "$LIBDIR/cmake/flame" "$LIBDIR/pkgconfig"; then
  fail "the installed CMake/pkg-config files name the build or source tree"
fi

step "configure and build examples/consumer against the prefix"
# CMAKE_FIND_USE_PACKAGE_REGISTRY=OFF and no CMAKE_PREFIX_PATH but ours: flame can only be found
# in the prefix.
cmake -S "$SOURCE/examples/consumer" -B "$SCRATCH/consumer" -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_BUILD_TYPE=Release >"$SCRATCH/consumer-configure.log" 2>&1 \
  || { cat "$SCRATCH/consumer-configure.log"; fail "the consumer does not configure against the installed package"; }
grep -q "flame_DIR:PATH=$LIBDIR/cmake/flame" "$SCRATCH/consumer/CMakeCache.txt" \
  || fail "find_package(flame) did not pick the installed package: $(grep flame_DIR "$SCRATCH/consumer/CMakeCache.txt")"
cmake --build "$SCRATCH/consumer" -j2 >"$SCRATCH/consumer-build.log" 2>&1 \
  || { cat "$SCRATCH/consumer-build.log"; fail "the consumer does not build against the installed package"; }

step "pkg-config compile"
export PKG_CONFIG_PATH="$LIBDIR/pkgconfig"
cat >"$SCRATCH/pc_smoke.cpp" <<'CPP'
// Built with `pkg-config --cflags --libs flame-client flame-runner` only.
#include <flame/client.h>
#include <flame/runner.h>
#include <iostream>
int main(int argc, char** argv) {
  flame::RunnerOptions unused;  // <flame/runner.h> compiles and links
  (void)unused;
  flame::Client client({.broker = argv[1]});
  auto status = client.status(flame::Duration(5000));
  if (!status) { std::cerr << status.error().toString() << "\n"; return 1; }
  std::cout << "pools:";
  for (const auto& p : status.value().pools) std::cout << " " << p.name;
  std::cout << "\n";
  return 0;
}
CPP
# shellcheck disable=SC2046
c++ -o "$SCRATCH/pc_smoke" "$SCRATCH/pc_smoke.cpp" $(pkg-config --cflags --libs flame-client flame-runner) \
  >"$SCRATCH/pc.log" 2>&1 || { cat "$SCRATCH/pc.log"; fail "pkg-config compile failed"; }

step "run the consumer against the installed flame-broker"
start_broker "$PREFIX/bin/flame-broker"
timeout 60 "$SCRATCH/consumer/flame-consumer" "$CLIENTS" "$RUNNERS" \
  || { rc=$?; cat "$SCRATCH/broker.log" >&2; fail "flame-consumer failed (exit $rc)"; }
out=$(timeout 30 "$SCRATCH/pc_smoke" "$CLIENTS") || fail "the pkg-config program failed: $out"
# The consumer's pool was created by its runner, so the broker lists it.
[[ "$out" == *consumer* ]] || fail "the pkg-config program's status does not list pool consumer: $out"
echo "$out"
stop_broker

step "done"
echo "install + consumer: passed"
