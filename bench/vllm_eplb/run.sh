#!/usr/bin/env bash
# Runs vLLM 0.33's own default EPLB policy and Gimbal's adapter (gimbal_planner) on the same
# expert loads and compares them (docs/vllm-integration.md, "vLLM's own policy code").
#
#   bench/vllm_eplb/run.sh [compare.py options]
#
# Uses VENV (default build/vllm-diff-venv), made once by bench/vllm_diff/install.sh when vLLM's
# EPLB code does not import there: Python 3.11, vllm==0.33.0 without its dependency tree
# (hash-checked), torch as vllm pins it and the modules its scheduler and EPLB code import; then
# installs this repository's package into it
# (`pip install .`, which builds the planner) and runs compare.py, then source_hook.py. No GPU:
# vLLM's policy runs on the host. INSTALL_ONLY=1 stops after the venv is ready.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${VENV:-$ROOT/build/vllm-diff-venv}"
PYTHON="${PYTHON:-python3.11}"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# vLLM 0.33 (hash-checked, no dependency tree), torch as it pins, and what its scheduler and EPLB
# code import: the venv bench/vllm_diff/install.sh makes, shared with the differential check.
if ! [ -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import vllm.distributed.eplb.eplb_state" \
     2>/dev/null; then
  VENV="$VENV" PYTHON="$PYTHON" bash "$ROOT/bench/vllm_diff/install.sh" ||
    { echo "run.sh: bench/vllm_diff/install.sh could not make $VENV" >&2; exit 1; }
  "$VENV/bin/python" -c "import vllm.distributed.eplb.eplb_state" 2>/dev/null ||
    { echo "run.sh: vllm.distributed.eplb does not import in $VENV:" >&2;
      "$VENV/bin/python" -c "import vllm.distributed.eplb.eplb_state" 2>&1 | tail -3 >&2; exit 1; }
fi
[ "${INSTALL_ONLY:-0}" = 1 ] && exit 0

# This repository's package, built into the venv (planner only, no MIP solver).
"${PIP[@]}" install -q "$ROOT" --config-settings=build-dir="$VENV/gimbal-build"
"$VENV/bin/python" "$ROOT/bench/vllm_eplb/compare.py" "$@"
# The per-source hook (GIMBAL_EPLB_SOURCES=1) on vLLM's EplbState code, two gloo ranks on CPU.
"$VENV/bin/python" "$ROOT/bench/vllm_eplb/source_hook.py"
