#!/usr/bin/env bash
# Runs vLLM 0.33's own default EPLB policy and Gimbal's adapter (gimbal_planner) on the same
# expert loads and compares them (docs/vllm-integration.md, "vLLM's own policy code").
#
#   bench/vllm_eplb/run.sh [compare.py options]
#
# Creates VENV (default build/vllm-eplb-venv) once: Python 3.11, vllm==0.33.0 without its
# dependency tree (hash-checked), torch as vllm pins it, and only the modules importing
# vllm.distributed.eplb needs; then installs this repository's package into it
# (`pip install .`, which builds the planner) and runs compare.py, then source_hook.py. No GPU:
# vLLM's policy runs on the host. INSTALL_ONLY=1 stops after the venv is ready.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${VENV:-$ROOT/build/vllm-eplb-venv}"
PYTHON="${PYTHON:-python3.11}"
VLLM_VERSION=0.33.0
TORCH_VERSION=2.14.0  # what vllm 0.33.0 declares (torch==2.14.0)
# sha256 of vllm-0.33.0-cp38-abi3-manylinux_2_28_x86_64.whl as published on PyPI.
VLLM_WHEEL_SHA256=4b6bdec4ab269990bf70d45a3c1e94c3760a27064513760193b26d6f0da883aa
# What `import vllm.distributed.eplb.eplb_state` needs besides torch (found by importing until
# nothing was missing), held to vllm's own pins by a constraints file made from its metadata.
DEPS=(
  packaging pydantic regex numpy cbor2 psutil pyzmq urllib3 requests aiohttp transformers
  openai oss-harmony pillow pybase64 cachetools msgspec cloudpickle uvloop py-cpuinfo
  prometheus_client xgrammar fastapi partial-json-parser llguidance einops blake3 pyyaml
  sentencepiece tqdm filelock typing_extensions setuptools
)

command -v "$PYTHON" >/dev/null || { echo "run.sh: $PYTHON not found" >&2; exit 2; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
if ! [ -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import vllm.distributed.eplb.eplb_state" \
     2>/dev/null; then
  start=$(date +%s)
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "${PIP[@]}" install -q --upgrade pip ||
    { echo "run.sh: pip could not reach PyPI" >&2; exit 1; }
  "${PIP[@]}" install -q --no-deps --require-hashes \
    -r <(echo "vllm==$VLLM_VERSION --hash=sha256:$VLLM_WHEEL_SHA256")
  constraints="$VENV/vllm-constraints.txt"
  "$VENV/bin/python" - > "$constraints" <<'PY'
import re
from importlib.metadata import requires
for r in requires("vllm") or []:
    if "extra ==" not in r:
        print(re.sub(r"\[[^\]]*\]", "", r))
PY
  # torch from PyPI as it is: importing it needs its CUDA runtime wheels even without a GPU.
  "${PIP[@]}" install -q -c "$constraints" "torch==$TORCH_VERSION" "${DEPS[@]}"
  "$VENV/bin/python" -c "import vllm.distributed.eplb.eplb_state" 2>/dev/null ||
    { echo "run.sh: vllm.distributed.eplb does not import in $VENV:" >&2;
      "$VENV/bin/python" -c "import vllm.distributed.eplb.eplb_state" 2>&1 | tail -3 >&2; exit 1; }
  echo "run.sh: venv $VENV ready in $(( $(date +%s) - start )) s, $(du -sh "$VENV" | cut -f1)"
fi
[ "${INSTALL_ONLY:-0}" = 1 ] && exit 0

# This repository's package, built into the venv (planner only, no MIP solver).
"${PIP[@]}" install -q "$ROOT" --config-settings=build-dir="$VENV/gimbal-build"
"$VENV/bin/python" "$ROOT/bench/vllm_eplb/compare.py" "$@"
# The per-source hook (GIMBAL_EPLB_SOURCES=1) on vLLM's EplbState code, two gloo ranks on CPU.
"$VENV/bin/python" "$ROOT/bench/vllm_eplb/source_hook.py"
