#!/usr/bin/env bash
# Checks that Gimbal decodes a KV-event batch written by vLLM's own encoder (docs/kv-events.md).
# Usage: tests/kvevents/vllm_decode.sh [BUILD_DIR] [VENV]
#   BUILD_DIR: where kvevents_tests was built (default build/release)
#   VENV:      a virtual environment with vLLM installed (default build/vllm-diff-venv)
# Without the venv it says so and exits 0 (skipped); it is not part of `make test`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build/release}"
venv="${2:-$root/build/vllm-diff-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import vllm.distributed.kv_events" 2>/dev/null; then
  echo "vllm_decode: skipped (no vLLM in $venv)"
  exit 0
fi
bin="$build/src/kvevents/kvevents_tests"
if [ ! -x "$bin" ]; then
  echo "vllm_decode: $bin not built" >&2
  exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/python" "$root/tests/kvevents/vllm_encode.py" "$tmp/batch.msgpack" 2>/dev/null
GIMBAL_KV_EVENTS_VLLM_BATCH="$tmp/batch.msgpack" "$bin" \
  --gtest_filter='KvEventsCodecTest.DecodesABatchFromVllmsOwnEncoder' | tee "$tmp/out.txt"
if grep -q "SKIPPED" "$tmp/out.txt" || ! grep -q "PASSED  \] 1 test" "$tmp/out.txt"; then
  echo "vllm_decode: the test did not run and pass" >&2
  exit 1
fi
