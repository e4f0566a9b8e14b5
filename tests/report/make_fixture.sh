#!/usr/bin/env bash
# Regenerates tests/report/fixture/ (the input of report_test.py) from fixture/suite.yaml:
# `gimbal experiment` on the suite, trimmed (numbers rounded to 6 significant digits, paths made
# relative to the checkout, request CSVs kept for the highest rate only and cut to 40 rows), then
# `gimbal report` on the trimmed folder for headline.json. Run it after a change to the shape of
# results.json, then update the expected figures in report_test.py from fixture/headline.json.
#
#   bash tests/report/make_fixture.sh [path/to/gimbal]     (default build/release/src/cli/gimbal)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GIMBAL="${1:-$ROOT/build/release/src/cli/gimbal}"
FIXTURE="$ROOT/tests/report/fixture"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

"$GIMBAL" experiment --suite "$FIXTURE/suite.yaml" --out "$WORK/raw" --jobs 1 >/dev/null
/usr/bin/python3 - "$WORK/raw" "$WORK/trim" "$ROOT" <<'PY'
import csv, json, os, sys
raw, out, root = sys.argv[1:4]
os.makedirs(os.path.join(out, "points"))

def rounded(v):
    if isinstance(v, float):
        return float("%.6g" % v)
    if isinstance(v, list):
        return [rounded(x) for x in v]
    if isinstance(v, dict):
        return {k: rounded(x) for k, x in v.items()}
    return v

r = json.load(open(os.path.join(raw, "results.json")))
r["suite_file"] = os.path.relpath(r["suite_file"], root)
for p in r["points"]:
    p["scenario_file"] = os.path.relpath(p["scenario_file"], root)
    if not p["top_rate"]:
        del p["requests_csv"]
        continue
    with open(os.path.join(raw, "points", p["requests_csv"])) as f:
        rows = list(csv.reader(f))[:41]
    with open(os.path.join(out, "points", p["requests_csv"]), "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(rounded(r), f, indent=1)
    f.write("\n")
PY
"$GIMBAL" report "$WORK/trim" --out "$WORK/report" >/dev/null
rm -rf "$FIXTURE/points"
cp -r "$WORK/trim/points" "$FIXTURE/points"
cp "$WORK/trim/results.json" "$WORK/report/headline.json" "$FIXTURE/"
echo "make_fixture: wrote $FIXTURE (results.json, headline.json, points/)"
