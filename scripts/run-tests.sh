#!/usr/bin/env bash
# Builds and runs every test: the lint checks (formatting, clang's thread-safety analysis), the
# optimised build (unit, server, integration, CLI tests and the fuzz corpora), an
# address+undefined sanitizer build of the unit tests and fuzz corpora, and a
# thread-sanitizer build of the server tests. Exits non-zero on the first failure; prints each
# stage's time at the end (docs/development.md).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}

# ccache (cmake/FastBuild.cmake): paths relative to this checkout and the working directory left
# out of the hash, so a clone in another folder (CI's) hits what a build here compiled.
export CCACHE_BASEDIR="$PWD"
export CCACHE_NOHASHDIR=true

stages=()
stage_start=0
begin() {
  echo "== $1"
  stages+=("$1")
  stage_start=$SECONDS
}
end() { stages[${#stages[@]} - 1]+=" : $((SECONDS - stage_start)) s"; }
report() {
  echo "== stage times"
  for s in "${stages[@]}"; do echo "   $s"; done
  if command -v ccache >/dev/null; then ccache --show-stats 2>/dev/null | grep -Ei "hits|misses" || true; fi
}
trap report EXIT

begin "lint: formatting and thread-safety annotations"
bash scripts/lint.sh
bash scripts/thread-safety-check.sh >/dev/null
end

begin "release build and all tests"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
ctest --preset release
end

begin "address+undefined sanitizer build, unit tests and fuzz corpora"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs" --target unit_tests fuzz_replay
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan -L 'unit|fuzz'
end

begin "thread sanitizer build, server tests"
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "$jobs" --target server_tests
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/scripts/tsan.supp" \
  ctest --preset tsan -L server
end
