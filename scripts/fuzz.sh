#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan) in build/fuzz and runs each for
# FUZZ_SECONDS seconds (default 60) on a copy of its seed corpus (build/fuzz/work/<name>). Prints
# per target the executions, coverage (cov) and features (ft) of libFuzzer's final stats, and the
# crash files this run wrote (build/fuzz/crashes/<name>/, emptied first). With FUZZ_MERGE=1, the
# new inputs that add coverage are merged back into fuzz/corpus/<name> (libFuzzer -merge=1).
# FUZZ_TARGETS="a b" limits the run to some targets; JOBS sets the build parallelism. Exits
# non-zero if any target crashed (or found a leak, a timeout or an out-of-memory). docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${FUZZ_SECONDS:-60}
merge=${FUZZ_MERGE:-0}
jobs=${JOBS:-$(nproc)}
build=build/fuzz

# clang and its runtime libraries (libFuzzer, ASan, UBSan): Debian 12's default clang is 14.
bash scripts/install-deps.sh clang libclang-rt-14-dev

all_targets=$(sed -n 's/^ *"\([a-z_0-9]*\):.*/\1/p' fuzz/CMakeLists.txt)
targets=${FUZZ_TARGETS:-$all_targets}

echo "== configure and build $build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DGIMBAL_FUZZ=ON -DGIMBAL_BUILD_BENCH=OFF >/dev/null
build_targets=()
for t in $targets; do build_targets+=("fuzz_$t"); done
cmake --build "$build" -j "$jobs" --target "${build_targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export GIMBAL_DATA_DIR=$root/data

failed=0
rows=()
for t in $targets; do
  exe=$root/$build/fuzz/fuzz_$t
  work=$root/$build/work/$t
  crashes=$root/$build/crashes/$t
  log=$root/$build/logs/$t.log
  rm -rf "$crashes"  # this run's crashes only
  mkdir -p "$work" "$crashes" "$(dirname "$log")"
  cp -n fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
  echo "== $t: ${seconds}s"
  rc=0
  # -rss_limit_mb: the deep-nesting seeds are large; -max_len lets them and their mutations in.
  (cd "$work" && "$exe" -max_total_time="$seconds" -print_final_stats=1 -timeout=25 \
      -rss_limit_mb=4096 -max_len=262144 -artifact_prefix="$crashes/" "$work") >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+.*(cov|ft):' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  found=$(find "$crashes" -type f | sort)
  status=ok
  if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
    status="FAILED (exit $rc)"
    failed=1
    grep -m1 -E 'ERROR: |fuzz invariant failed|runtime error' "$log" || tail -5 "$log"
    echo "   log: $log"
  fi
  rows+=("$(printf '%-16s %12s %8s %8s  %s' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$status")")
  if [ -n "$found" ]; then rows+=("$(sed 's/^/    crash: /' <<<"$found")"); fi
  if [ "$merge" = 1 ] && [ "$rc" -eq 0 ]; then
    before=$(ls fuzz/corpus/"$t" | wc -l)
    "$exe" -merge=1 -max_len=262144 -rss_limit_mb=4096 fuzz/corpus/"$t" "$work" >>"$log" 2>&1
    echo "   merged: $(( $(ls fuzz/corpus/"$t" | wc -l) - before )) new inputs into fuzz/corpus/$t"
  fi
done

echo
echo "== libFuzzer, ${seconds}s per target (logs in $build/logs)"
printf '%-16s %12s %8s %8s  %s\n' target executions cov ft status
for r in "${rows[@]}"; do echo "$r"; done
exit "$failed"
