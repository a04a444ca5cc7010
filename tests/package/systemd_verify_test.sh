#!/usr/bin/env bash
# examples/systemd/ units are valid and hardened (issue 11, item 6): `systemd-analyze verify`
# on flame-broker.service and an instance of flame-runner@.service, in a scratch root that has
# the system's units and the built flame-broker / flame-worker at /usr/bin (verify checks that
# ExecStart is executable). Any warning fails, not only errors (verify exits 0 on an unknown key
# or a bad value). Then the hardening and stop settings the deployment relies on are present.
# Skipped (exit 77) where systemd-analyze does not exist.
# Usage: systemd_verify_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD=$(cd "$1" && pwd)
SOURCE=$(cd "$2" && pwd)
UNITS="$SOURCE/examples/systemd"
if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze is not installed (Debian package systemd); the units were not verified"
  exit 77
fi
. "$SOURCE/tests/package/lib.sh"
[ -d /usr/lib/systemd/system ] || fail "/usr/lib/systemd/system is missing: cannot verify units"

ROOT="$SCRATCH/root"
mkdir -p "$ROOT/usr/bin" "$ROOT/usr/lib/systemd" "$ROOT/etc/systemd/system"
cp -a /usr/lib/systemd/system "$ROOT/usr/lib/systemd/"
cp "$BUILD/bin/flame-broker" "$BUILD/bin/flame-worker" "$ROOT/usr/bin/"
cp "$UNITS/flame-broker.service" "$UNITS/flame-runner@.service" "$ROOT/etc/systemd/system/"

step "systemd-analyze verify"
out=$(systemd-analyze verify --root="$ROOT" flame-broker.service flame-runner@thumbs.service 2>&1) \
  || fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify warned: $out"

step "hardening and stop settings"
require() {  # require UNIT KEY=VALUE...: each line is in UNIT
  local unit=$1
  shift
  for line in "$@"; do
    grep -qxF "$line" "$UNITS/$unit" || fail "$unit lacks '$line'"
  done
}
for unit in flame-broker.service flame-runner@.service; do
  require "$unit" NoNewPrivileges=yes PrivateTmp=yes ProtectSystem=strict ProtectHome=yes DynamicUser=yes \
    ConfigurationDirectory=flame KillMode=mixed
  grep -qE '^Restart=(on-failure|always)$' "$UNITS/$unit" || fail "$unit has no restart policy"
done
require flame-broker.service "ExecStart=/usr/bin/flame-broker --config /etc/flame/broker.toml"
require flame-runner@.service "Environment=FLAME_POOL=%i" "EnvironmentFile=/etc/flame/runner-%i.env" \
  "ExecStart=/usr/bin/flame-worker"

# SIGTERM is a clean shutdown: systemd must wait longer than the broker's shutdown_grace in the
# example config, and than the runner's default drain grace (30s).
seconds() { sed -n "s/^$1=\([0-9]*\)s\$/\1/p" "$2"; }
stop_broker=$(seconds TimeoutStopSec "$UNITS/flame-broker.service")
grace=$(sed -n 's/^shutdown_grace *= *"\([0-9]*\)s".*/\1/p' "$UNITS/broker.toml")
[ -n "$stop_broker" ] && [ -n "$grace" ] || fail "cannot read TimeoutStopSec or shutdown_grace"
[ "$stop_broker" -gt "$grace" ] || fail "flame-broker.service: TimeoutStopSec=${stop_broker}s does not cover shutdown_grace ${grace}s"
stop_runner=$(seconds TimeoutStopSec "$UNITS/flame-runner@.service")
[ -n "$stop_runner" ] && [ "$stop_runner" -gt 30 ] || fail "flame-runner@.service: TimeoutStopSec does not cover the 30s drain grace"

# The environment file names only variables flame-worker reads (worker/runner_options.h).
for var in $(sed -n 's/^\(FLAME_[A-Z_]*\)=.*/\1/p' "$UNITS/runner-default.env"); do
  grep -q "\"$var\"" "$SOURCE/backends/backend.h" || fail "runner-default.env sets $var, which flame-worker does not read"
done

step "done"
echo "systemd units: passed"
