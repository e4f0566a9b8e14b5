#!/usr/bin/env bash
# Regenerates the README's results section from a `gimbal report`.
#
#   bash scripts/update-readme-results.sh DIR [README]
#
# DIR is a `gimbal experiment --out` folder that `gimbal report DIR` has been run on (the report's
# results.md is read from DIR/report/, or from DIR itself when DIR is a report folder). Everything
# between the lines `<!-- results:begin -->` and `<!-- results:end -->` of README (default: the
# repository's README.md) is replaced by results.md; the markers stay. Fails, changing nothing,
# when the markers are missing or out of order.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: bash scripts/update-readme-results.sh DIR [README]" >&2
  exit 2
fi
dir=$1
readme=${2:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/README.md"}
if [ -f "$dir/report/results.md" ]; then
  md="$dir/report/results.md"
elif [ -f "$dir/results.md" ]; then
  md="$dir/results.md"
else
  echo "update-readme-results: no results.md under $dir (run: gimbal report $dir)" >&2
  exit 1
fi
[ -f "$readme" ] || { echo "update-readme-results: $readme not found" >&2; exit 1; }

begin='<!-- results:begin -->'
end='<!-- results:end -->'
b=$(grep -nxF "$begin" "$readme" | head -1 | cut -d: -f1 || true)
e=$(grep -nxF "$end" "$readme" | head -1 | cut -d: -f1 || true)
if [ -z "$b" ] || [ -z "$e" ] || [ "$e" -le "$b" ]; then
  echo "update-readme-results: $readme needs the lines '$begin' and '$end' (in that order)" >&2
  exit 1
fi
tmp=$(mktemp "${readme}.XXXXXX")
{
  head -n "$b" "$readme"
  cat "$md"
  tail -n "+$e" "$readme"
} > "$tmp"
mv "$tmp" "$readme"
echo "update-readme-results: $readme lines $b-$e now hold $md"
