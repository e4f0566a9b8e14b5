#!/usr/bin/env bash
# Installs a build into a temporary prefix and runs the installed gimbal the way a user without a
# checkout would: from a folder outside the checkout, with GIMBAL_DATA_DIR, GIMBAL_REPORT_SCRIPT and
# GIMBAL_PYTHON unset, on a scenario and a suite written here (nothing is copied from the checkout).
# Checks the installed layout (cmake/Install.cmake), `gimbal simulate` on a model that exists only
# in the installed catalogue (so the checkout's data/ cannot be what it read), `gimbal experiment` +
# `gimbal report` (plots and page from the installed report.py), and that the report script run is
# the installed one.
#
#   bash tests/install/install_test.sh BUILD_DIR [CMAKE]     (ctest: install_tests, label integration)
set -euo pipefail
BUILD="$(cd "${1:?usage: install_test.sh BUILD_DIR [CMAKE]}" && pwd)"
CMAKE="${2:-cmake}"
fail() { echo "install_test: FAIL: $*" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/gimbal-install-test.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
PREFIX="$TMP/prefix"
WORK="$TMP/work"
mkdir -p "$WORK"
unset GIMBAL_DATA_DIR GIMBAL_REPORT_SCRIPT GIMBAL_PYTHON

"$CMAKE" --install "$BUILD" --prefix "$PREFIX" >"$TMP/install.log" || { cat "$TMP/install.log" >&2; fail "cmake --install"; }
for f in bin/gimbal share/gimbal/report.py share/gimbal/data/models/qwen3-30b-a3b.yaml \
         share/gimbal/data/gpus/h200.yaml share/gimbal/data/topologies/hgx-8gpu.yaml \
         share/gimbal/configs/scenarios/default.yaml share/doc/gimbal/README.md \
         share/doc/gimbal/docs/experiments.md; do
  [ -f "$PREFIX/$f" ] || fail "$f not installed"
done
[ -x "$PREFIX/bin/gimbal" ] || fail "bin/gimbal is not executable"
if find "$PREFIX" -name '*_test*' -o -name '*.cc' | grep -q .; then fail "tests or sources installed"; fi

cd "$WORK"
GIMBAL="$PREFIX/bin/gimbal"
"$GIMBAL" --version | grep -Eq '^gimbal [0-9]+\.[0-9]+\.[0-9]+$' || fail "--version: $("$GIMBAL" --version)"

# A model only the installed catalogue has: the checkout's data/ would not find it.
sed 's/^name: qwen3-30b-a3b$/name: install-test-moe/' "$PREFIX/share/gimbal/data/models/qwen3-30b-a3b.yaml" \
  >"$PREFIX/share/gimbal/data/models/install-test-moe.yaml"
cat >scenario.yaml <<'YAML'
name: install-test
seed: 3
model: install-test-moe
gpu: h200
topology: hgx-8gpu
cluster: {dp: 4}
workload:
  kind: synthetic
  num_requests: 50
  schedule: [{start: 0, rate: 25}]
  prompt: {dist: lognormal, mean: 800, sigma: 0.8, min: 16, max: 8000}
  output: {dist: lognormal, mean: 100, sigma: 0.6, min: 1, max: 1000}
stacks:
  - name: vllm
    dispatch: {policy: vllm, snapshot_interval_ms: 100}
    queue: fcfs
  - name: gimbal
    dispatch: {policy: gimbal, snapshot_interval_ms: 0}
    queue: gimbal
    step: gimbal
YAML
"$GIMBAL" simulate -c scenario.yaml --json sim.json >simulate.txt 2>&1 || { cat simulate.txt >&2; fail "gimbal simulate"; }
grep -q "install-test-moe" simulate.txt || { cat simulate.txt >&2; fail "simulate output does not name the model"; }
grep -q "change against 'vllm'" simulate.txt || { cat simulate.txt >&2; fail "simulate printed no comparison"; }
/usr/bin/python3 - sim.json <<'PY' || fail "sim.json"
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
assert [r["stack"] for r in runs] == ["vllm", "gimbal"], [r["stack"] for r in runs]
for r in runs:
    assert r["completed"] == 50, r["completed"]
    assert r["mean_ttft_ms"] > 0 and r["output_throughput"] > 0
PY

# `gimbal report` reads a `gimbal experiment` folder: a two-point sweep of the same scenario.
cat >suite.yaml <<'YAML'
name: install-test
scenarios: [{path: scenario.yaml, label: install-test}]
rates: [10, 25]
duration_s: 2
min_requests: 30
seeds: 2
baseline: vllm
headline: gimbal
series_bins: 10
expert_load: {bins: 5}
YAML
"$GIMBAL" experiment --suite suite.yaml --out exp --jobs 1 >experiment.txt 2>&1 || { cat experiment.txt >&2; fail "gimbal experiment"; }
"$GIMBAL" report exp >report.txt 2>&1 || { cat report.txt >&2; fail "gimbal report"; }
grep -qx "report: exp/report/index.html" report.txt || { cat report.txt >&2; fail "report printed no index path"; }
page="exp/report/index.html"
grep -q '<table id="headline-table">' "$page" || fail "no headline table in $page"
grep -q '<tr class="headline"><td>sim</td><td>install-test</td><td>25</td><td>gimbal</td><td>2</td>' "$page" \
  || fail "no gimbal row at 25 req/s in $page"
pngs=$(find exp/report -name '*__install-test.png' -size +2k | wc -l)
[ "$pngs" -eq 8 ] || fail "expected 8 plots, found $pngs"
grep -q '| sim | install-test | 25 | \*\*gimbal\*\* | 2 |' exp/report/results.md || fail "results.md row"

# The report script run is the installed one: replaced by one that fails, the report fails.
printf 'import sys\nsys.exit(7)\n' >"$PREFIX/share/gimbal/report.py"
if "$GIMBAL" report exp >report2.txt 2>&1; then fail "gimbal report ran a report.py other than the installed one"; fi
grep -q "share/gimbal/report.py failed with exit code 7" report2.txt || { cat report2.txt >&2; fail "unexpected error"; }

echo "install_test: ok ($PREFIX: simulate, experiment and report from $WORK)"
