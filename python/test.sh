#!/usr/bin/env bash
# The gimbal_planner package's tests (docs/vllm-integration.md): a venv under DIR (default
# build/python), `pip install .` into it (scikit-build-core builds the planner-only CMake
# configuration), the pinned test dependencies, then pytest on python/tests.
#
#   python/test.sh [DIR] [pytest args]
#
# GIMBAL_BIN (ctest sets it to the build's gimbal) is the `gimbal place` the plans are compared
# with; unset, build/release/src/cli/gimbal is used if it exists, else those tests are skipped.
# Needs PyPI (the build requirements of pyproject.toml and the test pins below).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$(realpath -m "${1:-$ROOT/build/python}")"
shift $(( $# > 0 ? 1 : 0 ))
VENV="$DIR/venv"
TEST_DEPS=(pytest==8.3.5 numpy==2.2.6)

fail() { echo "python/test.sh: $*" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || fail "python3 -m venv $VENV failed"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q --retries 1 --timeout 30)
"${PIP[@]}" install "${TEST_DEPS[@]}" ||
  fail "pip could not install ${TEST_DEPS[*]} from PyPI (is PyPI reachable?)"
# The build tree stays in DIR, so a rerun recompiles only what changed.
"${PIP[@]}" install "$ROOT" --config-settings=build-dir="$DIR/cmake" ||
  fail "pip install $ROOT failed (build requirements from PyPI, or the C++ build: see above)"
if [ -z "${GIMBAL_BIN:-}" ] && [ -x "$ROOT/build/release/src/cli/gimbal" ]; then
  export GIMBAL_BIN="$ROOT/build/release/src/cli/gimbal"
fi
cd "$DIR"  # not the checkout, so `import gimbal_planner` is the installed package
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/python/tests" "$@"
