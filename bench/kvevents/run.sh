#!/usr/bin/env bash
# Hostile KV-event publishers against `gimbal serve` and `gimbal engine` (docs/kv-events.md,
# docs/router.md "Prefix cache"). Not a test: figures are printed, one line per case.
#
#   bash bench/kvevents/run.sh                      # about 2.5 minutes
#   GIMBAL=<another gimbal binary> bash bench/kvevents/run.sh   # e.g. an older build, to compare
#
# Cases (the router in front of two stub engines, tools/ports 18100-18511 on loopback):
#   collide   a publisher sends 65,536 block hashes that share one bucket of an identity-hashed
#             table, then 40,000 more; four clients send a completion every 50 ms for 30 s:
#             their worst latency;
#   big       20 legal batches of 1.8 million hashes (16 MiB each); the same clients;
#   slow      one publisher makes a gap with every batch and answers each replay 0.45 s into the
#             0.5 s allowed; another publishes a batch every 20 ms: batches of the second applied
#             by the 28th second;
#   flood     a peer floods `gimbal engine`'s replay socket: live batches in 10 s before and during
#             the flood, and the log a flood of malformed requests writes in 5 s.
# Needs python3 (a venv with pyzmq and msgpack is made in build/kvevents-venv) and curl.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/kvevents"
GIMBAL="${GIMBAL:-$ROOT/build/release/src/cli/gimbal}"
VENV="${VENV:-$ROOT/build/kvevents-venv}"
[ -x "$GIMBAL" ] || { echo "kvevents bench: $GIMBAL missing; build first (make build)" >&2; exit 2; }
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet pyzmq==27.3.0 msgpack==1.2.4
fi
PY="$VENV/bin/python"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gimbal-kvbench.XXXXXX")"
# shellcheck source=../../scripts/lib/procs.sh
source "$ROOT/scripts/lib/procs.sh"
procs_init "kvevents bench" "$WORK"

stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

router() {  # config file: starts two stub engines and gimbal serve
  "$PY" "$HERE/fake_engine.py" 18201 & PIDS+=($!)
  "$PY" "$HERE/fake_engine.py" 18202 & PIDS+=($!)
  sleep 0.5
  "$GIMBAL" serve --config "$1" >"$WORK/router.log" 2>&1 & PIDS+=($!)
  sleep 1
}

CLIENTS=()
start_clients() {  # seconds: four clients, each a completion every 50 ms for that long
  local i
  CLIENTS=()
  for i in 1 2 3 4; do
    "$PY" "$HERE/client.py" 18100 "$1" >"$WORK/client$i.log" 2>&1 &
    PIDS+=($!)
    CLIENTS+=($!)
  done
}
wait_clients() {  # waits (at most 90 s) until the clients have printed their worst latency
  local i
  for i in $(seq 900); do
    kill -0 "${CLIENTS[@]}" 2>/dev/null || return 0
    sleep 0.1
  done
}

cat >"$WORK/one.yaml" <<YAML
listen: {address: 127.0.0.1, port: 18100, threads: 2}
admin: {token: bench}
prefix_cache: {index: auto}
backends:
  - {name: honest, url: "http://127.0.0.1:18201", model: m}
  - {name: hostile, url: "http://127.0.0.1:18202", model: m, kv_events: "tcp://127.0.0.1:18301"}
YAML
cat >"$WORK/two.yaml" <<YAML
listen: {address: 127.0.0.1, port: 18100, threads: 2}
admin: {token: bench}
prefix_cache: {index: auto}
backends:
  - {name: honest, url: "http://127.0.0.1:18201", model: m, kv_events: "tcp://127.0.0.1:18302"}
  - {name: hostile, url: "http://127.0.0.1:18202", model: m, kv_events: "tcp://127.0.0.1:18301",
     kv_events_replay: "tcp://127.0.0.1:18311"}
YAML

for case in collide big; do
  router "$WORK/one.yaml"
  start_clients 30
  sleep 2
  if [ "$case" = collide ]; then
    timeout 26 "$PY" "$HERE/hostile_collide.py" tcp://127.0.0.1:18301 1 40000 >/dev/null 2>&1 || true
  else
    timeout 26 "$PY" "$HERE/hostile_big.py" tcp://127.0.0.1:18301 900000 20 >/dev/null 2>&1 || true
  fi
  wait_clients
  worst=$(cat "$WORK"/client*.log | grep -o 'worst=[0-9.]*s' | tr '\n' ' ' || true)
  echo "$case: four clients' worst latency: $worst"
  stop_all
done

router "$WORK/two.yaml"
"$PY" "$HERE/honest_pub.py" tcp://127.0.0.1:18302 32 >/dev/null 2>&1 & PIDS+=($!)
"$PY" "$HERE/hostile_slowreplay.py" tcp://127.0.0.1:18301 tcp://127.0.0.1:18311 0.45 30 >/dev/null 2>&1 & PIDS+=($!)
sleep 28
applied=$(curl -s -H 'Authorization: Bearer bench' http://127.0.0.1:18100/admin/engines |
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)["engines"][0]["prefix_cache"]["events"]["batches"])')
echo "slow: the other engine's batches applied by the 28th second: $applied (it sends one every 20 ms)"
stop_all

"$GIMBAL" engine --dp 1 --model qwen3-30b-a3b --gpu h100-sxm --port 18401 \
  --kv-events-endpoint tcp://127.0.0.1:18501 --kv-events-replay-endpoint tcp://127.0.0.1:18511 \
  >"$WORK/engine.log" 2>&1 & PIDS+=($!)
sleep 2
flood=$(timeout 30 "$PY" "$HERE/replay_flood.py" tcp://127.0.0.1:18501 tcp://127.0.0.1:18511 18401 zero 2>&1 |
  grep -E '^(before|during)' | tr '\n' ';')
before_log=$(wc -c <"$WORK/engine.log")
timeout 10 "$PY" "$HERE/replay_bad.py" tcp://127.0.0.1:18511 >/dev/null 2>&1 || true
sleep 1
echo "flood: $flood log written by 5 s of malformed requests: $(( $(wc -c <"$WORK/engine.log") - before_log )) bytes"
stop_all
