#!/usr/bin/env bash
# Minimum, median and maximum of each figure over repeated runs of bench/router/run.sh, from the
# `summary: key=value ...` line each run prints last (docs/router.md, "Benchmarks").
#
#   for i in 1 2 3 4; do bash bench/router/run.sh >"run$i.log" 2>&1; done
#   bash bench/router/summarize.sh run*.log
set -euo pipefail

[ $# -gt 0 ] || { echo "usage: bash bench/router/summarize.sh LOG..." >&2; exit 2; }
for f in "$@"; do
  [ -r "$f" ] || { echo "summarize: cannot read $f" >&2; exit 2; }
done
grep -h '^summary: ' "$@" | awk '
  { for (i = 2; i <= NF; i++) {
      split($i, kv, "=")
      if (!(kv[1] in n)) order[++keys] = kv[1]
      v[kv[1], ++n[kv[1]]] = kv[2] + 0
  } }
  END {
    if (keys == 0) { print "summarize: no summary lines" > "/dev/stderr"; exit 1 }
    printf "%-34s %5s %10s %10s %10s\n", "figure", "runs", "min", "median", "max"
    for (k = 1; k <= keys; k++) {
      key = order[k]; m = n[key]
      for (i = 1; i <= m; i++) s[i] = v[key, i]
      for (i = 2; i <= m; i++) {  # insertion sort: a handful of runs
        x = s[i]; j = i - 1
        while (j >= 1 && s[j] > x) { s[j + 1] = s[j]; j-- }
        s[j + 1] = x
      }
      med = (m % 2) ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
      printf "%-34s %5d %10.6g %10.6g %10.6g\n", key, m, s[1], med, s[m]
    }
  }'
