#!/usr/bin/env bash
# Peak memory of `gimbal place` on large statistics files (docs/placement.md, "File formats").
# Not a test: figures are printed.
#
#   bash bench/placement/big_files.sh                       # about a minute; 0.6 GB of scratch files
#   OLD=<another gimbal binary> bash bench/placement/big_files.sh   # the same for it, and its plans
#   MILLIONS=50 bash bench/placement/big_files.sh           # smaller files (default 150 M numbers)
#
# Files (one-digit numbers, two bytes each): `ignored`, valid 1 x 1 x 2 counts beside an unknown
# key holding MILLIONS million numbers; `many`, MILLIONS million numbers in `counts` (refused: more
# than the declared shape, or than 2^26). Each binary's peak resident memory (/usr/bin/time %M).
# With OLD, both binaries also plan DeepSeek-V3-shaped statistics (58 layers x 64 sources x 256
# experts, 64 GPUs x 5 slots), from scratch and from the first plan (--current), and the plans are
# compared (plan_seconds aside).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GIMBAL="${GIMBAL:-$ROOT/build/release/src/cli/gimbal}"
OLD="${OLD:-}"
MILLIONS="${MILLIONS:-150}"
[ -x "$GIMBAL" ] || { echo "big files bench: $GIMBAL missing; build first (make build)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "big files bench: /usr/bin/time missing (Debian package time)" >&2; exit 2; }
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gimbal-bigfiles.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

python3 - "$WORK" "$MILLIONS" <<'PY'
import json, random, sys
work, millions = sys.argv[1], int(sys.argv[2])
chunk = "0," * 1_000_000
with open(f"{work}/ignored.json", "w") as f:
    f.write('{"layers":1,"sources":1,"experts":2,"counts":[[[1,2]]],"extra":[')
    for _ in range(millions): f.write(chunk)
    f.write("0]}")
with open(f"{work}/many.json", "w") as f:
    f.write('{"layers":1,"sources":1,"experts":2,"counts":[[[')
    for _ in range(millions): f.write(chunk)
    f.write("0]]]}")
random.seed(1)
L, S, E = 58, 64, 256
counts = [[[random.randint(0, 5000) for _ in range(E)] for _ in range(S)] for _ in range(L)]
json.dump({"layers": L, "sources": S, "experts": E, "counts": counts}, open(f"{work}/ds.json", "w"))
PY
printf 'gpus: 2\nslots_per_gpu: 1\n' >"$WORK/two.yaml"
printf 'gpus: 64\ngpus_per_node: 8\nslots_per_gpu: 5\n' >"$WORK/ds.yaml"

peak() {  # binary, stats -> "N MB (exit E)"
  local rc=0
  /usr/bin/time -f '%M' -o "$WORK/rss" "$1" place --stats "$2" --topology "$WORK/two.yaml" \
    >/dev/null 2>&1 || rc=$?
  echo "$(($(tail -n1 "$WORK/rss") / 1024)) MB (exit $rc)"
}

for bin in ${OLD:+"$OLD"} "$GIMBAL"; do
  echo "$bin:"
  echo "  ignored: peak $(peak "$bin" "$WORK/ignored.json")"
  echo "  many:    peak $(peak "$bin" "$WORK/many.json")"
done

if [ -n "$OLD" ]; then
  same() {  # two plan files -> same / DIFFERENT
    python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
a.pop("plan_seconds", None); b.pop("plan_seconds", None)
print("same" if a == b else "DIFFERENT")
PY
  }
  for tag in old new; do
    bin=$([ "$tag" = old ] && echo "$OLD" || echo "$GIMBAL")
    "$bin" place --stats "$WORK/ds.json" --topology "$WORK/ds.yaml" --json "$WORK/$tag.json" >/dev/null
  done
  python3 -c "import json,sys; json.dump(json.load(open(sys.argv[1]))['placement'], open(sys.argv[2], 'w'))" \
    "$WORK/new.json" "$WORK/current.json"
  for tag in old new; do
    bin=$([ "$tag" = old ] && echo "$OLD" || echo "$GIMBAL")
    "$bin" place --stats "$WORK/ds.json" --topology "$WORK/ds.yaml" --current "$WORK/current.json" \
      --json "$WORK/$tag-2.json" >/dev/null
  done
  echo "DeepSeek-V3-shaped plans, old against new: from scratch $(same "$WORK/old.json" "$WORK/new.json"), from --current $(same "$WORK/old-2.json" "$WORK/new-2.json")"
fi
