#!/usr/bin/env bash
# Builds and runs every test: the optimised build (unit, server, integration and CLI tests), an
# address+undefined sanitizer build of the unit tests, and a thread-sanitizer build of the server
# tests. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}

echo "== release build and all tests"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
ctest --preset release

echo "== address+undefined sanitizer build, unit tests"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs" --target unit_tests fuzz_replay
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan -L 'unit|fuzz'

echo "== thread sanitizer build, server tests"
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "$jobs" --target server_tests
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/scripts/tsan.supp" \
  ctest --preset tsan -L server
