#!/usr/bin/env bash
# Two placement_bench binaries side by side on a noisy machine (docs/placement.md, "Solve time"):
# ROUNDS rounds, each running `--scale 7 --gpus N` with OLD then NEW, and the lowest "best" of
# each over all rounds, with and without routes. Not a test: it prints figures.
#
#   OLD=/path/to/old/placement_bench NEW=build/release/bench/placement/placement_bench \
#     ROUNDS=6 GPUS=64 bash bench/placement/compare.sh
#
# The old binary is usually built from another tree: `git archive <commit> | tar -x -C DIR`,
# then `cmake --preset release && cmake --build build/release --target placement_bench` in DIR.
set -euo pipefail
: "${OLD:?OLD=<placement_bench binary>}"
: "${NEW:?NEW=<placement_bench binary>}"
ROUNDS="${ROUNDS:-6}"
GPUS="${GPUS:-64}"
for bin in "$OLD" "$NEW"; do
  [ -x "$bin" ] || { echo "placement compare: $bin is not an executable" >&2; exit 2; }
done
declare -A best nobest
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b) ? a : b }'; }
for ((i = 0; i < ROUNDS; i++)); do
  for who in OLD NEW; do
    bin="${!who}"
    out="$("$bin" --scale 7 --gpus "$GPUS")"
    b="$(grep -Eo 'gimbal [0-9.]+ ms best' <<<"$out" | head -n1 | awk '{print $2}')"
    n="$(grep -Eo 'without routes [0-9.]+' <<<"$out" | head -n1 | awk '{print $3}')"
    best[$who]="$(min "$b" "${best[$who]:-1e9}")"
    nobest[$who]="$(min "$n" "${nobest[$who]:-1e9}")"
  done
done
echo "placement compare: $GPUS GPUs, $ROUNDS alternating rounds of --scale 7, lowest best (ms)"
for who in OLD NEW; do
  echo "  $who ${best[$who]} ms with routes, ${nobest[$who]} ms without  (${!who})"
done
