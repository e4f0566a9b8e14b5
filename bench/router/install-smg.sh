#!/usr/bin/env bash
# Installs SGLang's model gateway (`smg`, PyPI; the successor of sglang-router) into a virtual
# environment for bench/router/run.sh, which compares `gimbal serve` with it.
#
#   bash bench/router/install-smg.sh                 # -> build/smg-venv/bin/smg
#   SMG_VENV=/elsewhere bash bench/router/install-smg.sh
#
# The version is pinned so that the figures in docs/router.md ("Benchmarks") can be reproduced.
# smg ships a prebuilt binary wheel (a Rust extension, manylinux x86_64 and aarch64); nothing is
# compiled here. Idempotent: a venv that already has this version is left as it is.
set -euo pipefail

SMG_VERSION="${SMG_VERSION:-1.13.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SMG_VENV="${SMG_VENV:-$ROOT/build/smg-venv}"
PYTHON="${PYTHON:-python3}"

if [ -x "$SMG_VENV/bin/python" ] &&
   [ "$("$SMG_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("smg"))' 2>/dev/null)" = "$SMG_VERSION" ]; then
  echo "install-smg: smg $SMG_VERSION already in $SMG_VENV"
  exit 0
fi

command -v "$PYTHON" >/dev/null || { echo "install-smg: $PYTHON missing" >&2; exit 2; }
"$PYTHON" -m venv "$SMG_VENV"
"$SMG_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary smg "smg==$SMG_VERSION"
"$SMG_VENV/bin/smg" --help >/dev/null
echo "install-smg: smg $SMG_VERSION in $SMG_VENV ($SMG_VENV/bin/smg)"
