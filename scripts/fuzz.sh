#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang, ASan and UBSan in build-fuzz/, and runs each
# for a bounded time on a scratch copy of its seed corpus (fuzz/corpus/<target>/; the tree is
# never written). Fails if any target crashes, leaks, trips a sanitizer or a check, or hangs.
#
#   scripts/fuzz.sh [--seconds N] [--jobs J] [TARGET...]   (default: 30 s each, every target)
#
# A failing input is kept as build-fuzz/fuzz-out/<target>/crash-* (or leak-*, timeout-*); the
# log says how to replay it: build-fuzz/fuzz/<target> <file>. A crasher that shows a bug belongs
# in fuzz/corpus/<target>/ once fixed, as a regression input.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=30
jobs=${FLAME_JOBS:-2}
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

# clang 14 with libFuzzer and the sanitizer runtimes (Debian 12: libclang-rt-14-dev).
./scripts/install-deps.sh clang libclang-rt-14-dev

build=build-fuzz
start=$SECONDS
# -O1 without NDEBUG: assertions stay on, stacks stay readable, and it compiles faster.
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DFLAME_BUILD_FUZZERS=ON -DFLAME_SANITIZE=address \
  -DFLAME_BUILD_TESTS=OFF -DFLAME_BUILD_BENCH=OFF -DFLAME_BUILD_EXAMPLES=OFF >/dev/null
nice -n 10 cmake --build "$build" -j"$jobs" --target flame_fuzzers
echo "fuzz: build took $((SECONDS - start)) s"

if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < "$build/fuzz/targets.txt"
fi

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
failed=()
for t in "${targets[@]}"; do
  [ -n "$t" ] || continue
  bin="$build/fuzz/$t"
  seeds="fuzz/corpus/$t"
  work="$build/fuzz-work/$t"
  out="$build/fuzz-out/$t"
  rm -rf "$work"
  mkdir -p "$work" "$out"
  # The seeds first (each must pass on its own: regression inputs), then the fuzzing run on a
  # scratch corpus that starts from them.
  if [ -d "$seeds" ] && [ -n "$(ls -A "$seeds")" ]; then
    cp -r "$seeds/." "$work/"
  fi
  t0=$SECONDS
  echo "fuzz: $t for ${seconds}s (seeds: $(ls "$work" | wc -l))"
  if nice -n 10 "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
       -print_final_stats=1 -artifact_prefix="$out/" "$work" >"$out/log" 2>&1; then
    echo "fuzz: $t ok in $((SECONDS - t0)) s: $(grep -E '^stat::number_of_executed_units' "$out/log" | awk '{print $2}') runs, corpus $(ls "$work" | wc -l)"
  else
    echo "fuzz: $t FAILED after $((SECONDS - t0)) s; last lines of $out/log:" >&2
    tail -n 40 "$out/log" >&2
    ls "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* 2>/dev/null | sed 's/^/fuzz:   replay: '"${bin//\//\\/}"' /' >&2 || true
    failed+=("$t")
  fi
done
echo "fuzz: total $((SECONDS - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all targets ok"
