#!/usr/bin/env bash
# Creates the venv that drive_vllm.py runs in: Python 3.11 (pyenv's python3.11), vllm==0.34.0
# from PyPI (VLLM_VERSION=0.33.0 installs the release before it), and only what importing vLLM's
# scheduler and config classes needs.
#
#   bench/vllm_diff/install.sh            # minimal: vllm --no-deps + torch + the modules below
#   MODE=full bench/vllm_diff/install.sh  # vllm with all its declared dependencies (~9.5 GB)
#
# VENV (default build/vllm-diff-venv) and PYTHON (default python3.11) may be overridden.
# No compiling: every package comes as a wheel. See README.md for sizes and times.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${VENV:-$ROOT/build/vllm-diff-venv}"
PYTHON="${PYTHON:-python3.11}"
MODE="${MODE:-minimal}"
VLLM_VERSION="${VLLM_VERSION:-0.34.0}"
TORCH_VERSION=2.14.0  # vllm 0.33.0 and 0.34.0 both pin torch==2.14.0
# sha256 of vllm-<version>-cp38-abi3-manylinux_2_28_x86_64.whl as downloaded from PyPI.
case "$VLLM_VERSION" in
  0.34.0) VLLM_WHEEL_SHA256=79ca4b3cd74aec08c4bf476bdf0cb15735b605ae5368526a2faae1e30f044ca2 ;;
  0.33.0) VLLM_WHEEL_SHA256=4b6bdec4ab269990bf70d45a3c1e94c3760a27064513760193b26d6f0da883aa ;;
  *) echo "install.sh: no known wheel hash for vllm $VLLM_VERSION (0.34.0 or 0.33.0)" >&2; exit 2 ;;
esac

# Modules the scheduler, VllmConfig and the model-architecture check import (found by importing
# until nothing was missing; README.md, "Install"). Versions are held to vllm's own pins by the
# constraints file made from its metadata below.
MINIMAL_DEPS=(
  packaging pydantic regex numpy cbor2 psutil pyzmq urllib3 requests aiohttp transformers
  openai oss-harmony pillow pybase64 cachetools msgspec cloudpickle uvloop py-cpuinfo
  prometheus_client xgrammar fastapi partial-json-parser llguidance einops blake3 pyyaml
  sentencepiece tqdm filelock typing_extensions setuptools
  uvicorn watchfiles orjson  # `vllm bench serve` (bench/peers/clients.sh)
)

case "$MODE" in minimal|full) ;; *) echo "install.sh: MODE must be minimal or full" >&2; exit 2;; esac
command -v "$PYTHON" >/dev/null || { echo "install.sh: $PYTHON not found (pyenv?)" >&2; exit 2; }
case "$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" in
  3.11) ;; *) echo "install.sh: $PYTHON is not Python 3.11" >&2; exit 2;;
esac

start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip

if [ "$MODE" = full ]; then
  "${PIP[@]}" install -q "vllm==$VLLM_VERSION"
else
  # vllm itself without its dependency tree, checked against the published hash.
  "${PIP[@]}" install -q --no-deps --require-hashes \
    -r <(echo "vllm==$VLLM_VERSION --hash=sha256:$VLLM_WHEEL_SHA256")
  # torch from PyPI as is: its import needs the CUDA runtime wheels it depends on even with no
  # GPU (installing it --no-deps fails at import: libcublasLt not found). PyTorch's CPU index is
  # not used: this machine cannot reach it.
  constraints="$VENV/vllm-constraints.txt"
  "$VENV/bin/python" - > "$constraints" <<'EOF'
import re
from importlib.metadata import requires
for r in requires("vllm") or []:
    if "extra ==" not in r:
        print(re.sub(r"\[[^\]]*\]", "", r))
EOF
  "${PIP[@]}" install -q -c "$constraints" "torch==$TORCH_VERSION" "${MINIMAL_DEPS[@]}"
fi

# Smoke test: build a scheduler and run a three-request trace.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 "$ROOT/bench/vllm_diff/gen_trace.py" --requests 3 --seed 1 -o "$tmp/t.json"
"$VENV/bin/python" "$ROOT/bench/vllm_diff/drive_vllm.py" "$tmp/t.json" -o "$tmp/s.jsonl" \
  2> "$tmp/err" || { cat "$tmp/err" >&2; echo "install.sh: smoke test failed" >&2; exit 1; }
echo "install.sh: $MODE venv at $VENV ready in $(( $(date +%s) - start )) s," \
     "$(du -sh "$VENV" | cut -f1); smoke test: $(tail -1 "$tmp/err")"
