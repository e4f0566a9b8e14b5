#!/usr/bin/env bash
# Silent clients against `gimbal serve` (docs/router.md, "Hostile input": connections). Not a
# test (tests: ConnectionCapTest, RouterHostileTest.SilentConnectionsAtTheCapMakeRoomForClients);
# the same check at a realistic size, figures printed.
#
#   bash bench/router/silent_clients.sh            # 1,100 silent connections, router at ulimit 1024
#   FILES=4096 SILENT=5000 bash bench/router/silent_clients.sh
#
# Starts `gimbal serve` with embedded engines under `ulimit -n $FILES` (soft and hard, so its
# connection cap is ($FILES - 64) / 2), opens $SILENT connections that send nothing, then sends 5
# completions and reports how many were answered, how many silent connections the router closed,
# and its connection metrics.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GIMBAL="${GIMBAL:-$ROOT/build/release/src/cli/gimbal}"
FILES="${FILES:-1024}"
SILENT="${SILENT:-1100}"
PORT="${PORT:-18431}"
LOG="$(mktemp)"

(ulimit -n "$FILES" && exec "$GIMBAL" serve --port "$PORT") >"$LOG" 2>&1 &
SERVE=$!
trap 'kill "$SERVE" 2>/dev/null; wait "$SERVE" 2>/dev/null; rm -f "$LOG"' EXIT
for _ in $(seq 100); do
  grep -q "listening on port" "$LOG" && break
  sleep 0.1
done
ulimit -n "$((SILENT + 256))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"

python3 - "$PORT" "$SILENT" <<'PY'
import json, socket, sys, time, urllib.request

port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for i in range(n):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
    except OSError as e:
        print(f"connect failed after {i} connections: {e}")
        break
    held.append(s)
time.sleep(0.5)
body = json.dumps({"model": "qwen3-30b-a3b", "prompt": "hi", "max_tokens": 4}).encode()
ok, start = 0, time.time()
for _ in range(5):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        ok += urllib.request.urlopen(req, timeout=10).status == 200
    except Exception as e:  # noqa: BLE001 - every failure is reported, none ends the run
        print("request failed:", e)
print(f"held {len(held)} silent connections; {ok}/5 completions answered 200 "
      f"in {time.time() - start:.2f} s")
closed = 0
for s in held:
    s.setblocking(False)
    try:
        closed += s.recv(1) == b""
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print(f"silent connections the router closed: {closed}")
metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
for line in metrics.splitlines():
    if "connections" in line and not line.startswith("#"):
        print(line)
PY
