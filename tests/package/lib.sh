# Shared by the package tests (sourced): a scratch directory removed on exit, a broker started on
# OS-chosen loopback ports and stopped by its pid, and failure helpers. Every wait is bounded.

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $* ($(( $(date +%s) - T0 ))s)"; }
T0=$(date +%s)

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/flame-package.XXXXXX")
BROKER_PID=""
cleanup() {
  local rc=$?
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    timeout 10 tail -s 0.1 --pid="$BROKER_PID" -f /dev/null 2>/dev/null || kill -KILL "$BROKER_PID" 2>/dev/null || true
  fi
  exec 3<&- 2>/dev/null || true
  rm -rf "$SCRATCH"
  exit $rc
}
trap cleanup EXIT

# start_broker BINARY [ARGS...]: starts BINARY [ARGS...] on tcp://127.0.0.1:* for both endpoints
# (the flags override a config file's) and reads the
# endpoints it bound from its first stdout line (--endpoints-file -), through a FIFO, waiting at
# most 15 s. Sets BROKER_PID, CLIENTS, RUNNERS; its log goes to $SCRATCH/broker.log.
start_broker() {
  local fifo="$SCRATCH/broker.stdout" line
  mkfifo "$fifo"
  "$@" --clients 'tcp://127.0.0.1:*' --runners 'tcp://127.0.0.1:*' --endpoints-file - \
    >"$fifo" 2>"$SCRATCH/broker.log" &
  BROKER_PID=$!
  exec 3<"$fifo"  # held open until the end, so the broker never writes into a closed pipe
  if ! read -r -t 15 line <&3; then
    cat "$SCRATCH/broker.log" >&2
    fail "the broker ($1) did not report its endpoints within 15 s"
  fi
  CLIENTS=$(printf '%s' "$line" | sed -n 's/.*"clients": *"\([^"]*\)".*/\1/p')
  RUNNERS=$(printf '%s' "$line" | sed -n 's/.*"runners": *"\([^"]*\)".*/\1/p')
  [ -n "$CLIENTS" ] && [ -n "$RUNNERS" ] || fail "cannot read the endpoints from: $line"
  echo "broker pid $BROKER_PID: clients $CLIENTS, runners $RUNNERS"
}

# stop_broker: SIGTERM (a clean shutdown), at most 15 s, then checks it exited 0.
stop_broker() {
  kill -TERM "$BROKER_PID"
  local rc=0
  timeout 15 tail -s 0.1 --pid="$BROKER_PID" -f /dev/null || fail "the broker did not exit within 15 s of SIGTERM"
  wait "$BROKER_PID" || rc=$?
  BROKER_PID=""
  [ "$rc" -eq 0 ] || { cat "$SCRATCH/broker.log" >&2; fail "the broker exited with $rc after SIGTERM"; }
}
