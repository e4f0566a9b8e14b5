#!/usr/bin/env bash
# Creates the venv bench/vidur/run.sh uses: Python 3.11, vidur==0.0.26 from PyPI (checked against
# its published hash) and the packages it imports, pinned in requirements.lock. Vidur is installed
# without its declared dependency tree: that tree (streamlit, matplotlib, kaleido, ...) serves its
# dashboards and plots, which the benchmark turns off, and doubles the venv (1.3 GB against about
# 0.7 GB). Every package comes as a wheel; nothing is compiled.
#
#   bench/vidur/install.sh
#
# VENV (default build/vidur-venv, ignored by .gitignore's build/) and PYTHON (default python3.11:
# pyenv's, or Debian 12's python3) may be overridden.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${VENV:-$ROOT/build/vidur-venv}"
PYTHON="${PYTHON:-python3.11}"
VIDUR_VERSION=0.0.26
# sha256 of vidur-0.0.26-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl on PyPI.
VIDUR_WHEEL_SHA256=b31aec590ec37b155aa279870854e84dff11f363a22768e5fa9b3ac0076bc80e

command -v "$PYTHON" >/dev/null || { echo "install.sh: $PYTHON not found (pyenv?)" >&2; exit 2; }
case "$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" in
  3.11) ;;
  *) echo "install.sh: $PYTHON is not Python 3.11 (the hash is the cp311 wheel's)" >&2; exit 2;;
esac
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null ||
  { echo "install.sh: $PYTHON cannot make a venv (Debian: apt-get install python3-venv)" >&2
    exit 2; }

start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --only-binary=:all: -r "$ROOT/bench/vidur/requirements.lock"
# Last, so pip's resolver does not list the dependencies left out above as conflicts.
"${PIP[@]}" install -q --no-deps --require-hashes \
  -r <(echo "vidur==$VIDUR_VERSION --hash=sha256:$VIDUR_WHEEL_SHA256")

# Vidur, its C++ extension and every module the benchmark touches import.
"$VENV/bin/python" - <<'PY'
import importlib.metadata as m
import vidur._native, vidur.simulator  # noqa: F401
import vidur.execution_time_predictor.random_forrest_execution_time_predictor  # noqa: F401
assert m.version("vidur") == "0.0.26", m.version("vidur")
PY
echo "vidur $VIDUR_VERSION in $VENV ($(du -sh "$VENV" | cut -f1), $(( $(date +%s) - start )) s)"
