#!/usr/bin/env bash
# Router benchmarks on loopback (docs/router.md, "Benchmarks"). Not a test: figures are printed.
#
#   bash bench/router/run.sh            # ~2 minutes
#   BUILD=build/live DURATION=10 STREAMS=10000 bash bench/router/run.sh
#
# 1. Overhead: wrk, 1 connection, non-streaming POST /v1/completions, p50 and p99 latency
#    straight to a zero-delay backend and through `gimbal serve` in front of it; the difference is
#    the router's overhead per request.
# 2. Throughput: wrk, $CONNS connections, requests/s through `gimbal serve` and through Debian's
#    nginx (least_conn upstream, keep-alive to the backends) in front of the same $BACKENDS
#    zero-delay backends.
# 3. Streams: $STREAMS streaming completions held open through `gimbal serve` for $HOLD_S s, with
#    the router's resident memory while they are held.
# Needs wrk and nginx (scripts/install-deps.sh) and the release build (router_bench_tool, gimbal).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${BUILD:-$ROOT/build/release}"
GIMBAL="${GIMBAL:-$BUILD/src/cli/gimbal}"
TOOL="${TOOL:-$BUILD/bench/router/router_bench_tool}"
BACKENDS="${BACKENDS:-2}"
THREADS="${THREADS:-1}"     # router io threads = nginx workers (wrk, backends and proxy share the cores)
DURATION="${DURATION:-10}"     # seconds per wrk run
CONNS="${CONNS:-64}"
STREAMS="${STREAMS:-10000}"
HOLD_S="${HOLD_S:-10}"

for bin in "$GIMBAL" "$TOOL"; do
  [ -x "$bin" ] || { echo "router bench: $bin missing; build first (make build)" >&2; exit 2; }
done
for cmd in wrk nginx; do
  command -v "$cmd" >/dev/null || { echo "router bench: $cmd missing (scripts/install-deps.sh)" >&2; exit 2; }
done

# 10,000 streams take 10,000 client sockets and 10,000 upstream sockets in the router.
want_fds=$((2 * STREAMS + 1024))
ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fds=$(ulimit -n)
if [ "$fds" -lt "$want_fds" ]; then
  fit=$(((fds - 1024) / 2))
  echo "router bench: open-file limit is $fds (hard limit); $STREAMS streams need $want_fds in the router." >&2
  echo "router bench: holding $fit streams instead (raise the hard limit, e.g. in limits.conf, for $STREAMS)." >&2
  STREAMS_WANTED=$STREAMS
  STREAMS=$fit
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gimbal-routerbench.XXXXXX")"
# shellcheck source=../../scripts/lib/procs.sh
source "$ROOT/scripts/lib/procs.sh"
procs_init "router bench" "$WORK"

wait_for_line() {  # log, pattern, pid
  for _ in $(seq 200); do
    grep -E -m1 "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "router bench: process $3 exited early" >&2; return 1; }
    sleep 0.05
  done
  echo "router bench: timed out waiting for '$2' in $1" >&2
  return 1
}
port_of() { grep -Eo 'port [0-9]+' <<<"$1" | head -n1 | awk '{print $2}'; }

# Zero-delay backends.
BACKEND_PORTS=()
for i in $(seq "$BACKENDS"); do
  "$TOOL" backend --port 0 --threads 1 --stream-interval-s 5 >"$WORK/backend$i.log" 2>&1 &
  PIDS+=($!)
  BACKEND_PORTS+=("$(port_of "$(wait_for_line "$WORK/backend$i.log" 'listening on port' $!)")")
done

# gimbal serve in front of them.
{
  echo "listen: {address: 127.0.0.1, port: 0, threads: $THREADS}"
  echo "limits: {max_inflight_per_engine: 1000000, upstream_read_timeout_s: 600}"
  echo "dispatch: {policy: least_requests}"
  echo "state: {source: metrics, scrape_interval_s: 0.1}"
  echo "backends:"
  for p in "${BACKEND_PORTS[@]}"; do echo "  - {url: \"http://127.0.0.1:$p\", model: bench}"; done
} >"$WORK/router.yaml"
"$GIMBAL" serve --config "$WORK/router.yaml" >"$WORK/router.log" 2>&1 &
ROUTER_PID=$!
PIDS+=($ROUTER_PID)
ROUTER_PORT="$(port_of "$(wait_for_line "$WORK/router.log" 'listening on port [0-9]+' $ROUTER_PID)")"

# nginx in front of the same backends.
NGINX_PORT=$((20000 + RANDOM % 20000))
mkdir -p "$WORK/nginx"
{
  echo "worker_processes $THREADS;"
  echo "error_log $WORK/nginx/error.log warn;"
  echo "pid $WORK/nginx/nginx.pid;"
  echo "events { worker_connections 16384; }"
  echo "http {"
  echo "  access_log off;"
  echo "  client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy;"
  echo "  fastcgi_temp_path $WORK/nginx/fcgi; uwsgi_temp_path $WORK/nginx/uwsgi; scgi_temp_path $WORK/nginx/scgi;"
  echo "  upstream engines {"
  echo "    least_conn;"
  for p in "${BACKEND_PORTS[@]}"; do echo "    server 127.0.0.1:$p;"; done
  echo "    keepalive 256;"
  echo "  }"
  echo "  server {"
  echo "    listen 127.0.0.1:$NGINX_PORT;"
  echo "    location / {"
  echo "      proxy_pass http://engines;"
  echo "      proxy_http_version 1.1;"
  echo "      proxy_set_header Connection \"\";"
  echo "      proxy_buffering off;"
  echo "    }"
  echo "  }"
  echo "}"
} >"$WORK/nginx.conf"
nginx -p "$WORK/nginx" -c "$WORK/nginx.conf" -g 'daemon off;' >"$WORK/nginx.log" 2>&1 &
NGINX_PID=$!
PIDS+=($NGINX_PID)
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$NGINX_PORT") 2>/dev/null && break
  sleep 0.05
done

cat >"$WORK/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"model":"bench","prompt":"Say hello to the world.","max_tokens":1}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f p50_us=%.1f p99_us=%.1f requests=%d errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status))
end
EOF

run_wrk() {  # threads, connections, url -> RESULT line
  local out
  out="$(wrk -t"$1" -c"$2" -d"${DURATION}s" --timeout 10s -s "$WORK/post.lua" "$3/v1/completions")"
  grep '^RESULT' <<<"$out"
}
field() { grep -Eo "$1=[0-9.]+" <<<"$2" | cut -d= -f2; }

B0="http://127.0.0.1:${BACKEND_PORTS[0]}"
sleep 0.3
echo "== router benchmarks: $BACKENDS zero-delay backends, $THREADS threads, $(nproc) cores, wrk ${DURATION}s runs"

# Overhead: one backend, one connection, direct vs through the router (the router then has a
# single-backend config too, so both paths end at the same backend).
{
  echo "listen: {address: 127.0.0.1, port: 0, threads: $THREADS}"
  echo "state: {source: metrics}"
  echo "backends: [{url: \"$B0\", model: bench}]"
} >"$WORK/router1.yaml"
"$GIMBAL" serve --config "$WORK/router1.yaml" >"$WORK/router1.log" 2>&1 &
R1_PID=$!
PIDS+=($R1_PID)
R1_PORT="$(port_of "$(wait_for_line "$WORK/router1.log" 'listening on port [0-9]+' $R1_PID)")"
direct="$(run_wrk 1 1 "$B0")"
routed="$(run_wrk 1 1 "http://127.0.0.1:$R1_PORT")"
kill -TERM "$R1_PID"
awk -v d50="$(field p50_us "$direct")" -v d99="$(field p99_us "$direct")" \
    -v r50="$(field p50_us "$routed")" -v r99="$(field p99_us "$routed")" 'BEGIN {
  printf "overhead (1 connection, non-streaming): direct p50 %.0f us p99 %.0f us; via router p50 %.0f us p99 %.0f us\n", d50, d99, r50, r99;
  printf "  router overhead: p50 %.0f us (target < 100), p99 %.0f us (target < 1000)\n", r50 - d50, r99 - d99 }'

# Throughput, with the CPU time each proxy used (clock ticks of the process and its children's
# threads; nginx: master and workers).
cpu_ticks() {  # pids...
  local t=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo $t
}
nginx_pids() { echo "$NGINX_PID" $(pgrep -P "$NGINX_PID" || true); }
c0=$(cpu_ticks "$ROUTER_PID")
via_router="$(run_wrk "$THREADS" "$CONNS" "http://127.0.0.1:$ROUTER_PORT")"
router_ticks=$(($(cpu_ticks "$ROUTER_PID") - c0))
c0=$(cpu_ticks $(nginx_pids))
via_nginx="$(run_wrk "$THREADS" "$CONNS" "http://127.0.0.1:$NGINX_PORT")"
nginx_ticks=$(($(cpu_ticks $(nginx_pids)) - c0))
awk -v r="$(field rps "$via_router")" -v n="$(field rps "$via_nginx")" \
    -v rn="$(field requests "$via_router")" -v nn="$(field requests "$via_nginx")" \
    -v rt="$router_ticks" -v nt="$nginx_ticks" -v hz="$(getconf CLK_TCK)" \
    -v re="$(field errors "$via_router")" -v ne="$(field errors "$via_nginx")" -v c="$CONNS" 'BEGIN {
  printf "throughput (%d connections): gimbal serve %.0f req/s (%d errors), nginx least_conn %.0f req/s (%d errors): %.2fx nginx (target >= 0.8)\n", c, r, re, n, ne, r / n;
  printf "  proxy CPU per request: gimbal serve %.1f us, nginx %.1f us\n", rt / hz * 1e6 / rn, nt / hz * 1e6 / nn }'

# Streams held.
idle_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$ROUTER_PID/status")
hold="$("$TOOL" hold --port "$ROUTER_PORT" --connections "$STREAMS" --hold-s "$HOLD_S" \
         --rss-pid "$ROUTER_PID" --ramp-s 120 || true)"
echo "$hold" | awk -v want="${STREAMS_WANTED:-$STREAMS}" -v idle="$idle_rss" '{
  for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  printf "streams: %d of %d held %s s through the router (ramp %s s, %d failed); router RSS %.1f MiB (%.1f MiB before; %.1f KiB per stream)\n",
    v["open_at_end"], v["connections"], v["hold_s"], v["ramp_s"], v["failed"], v["rss_kib"] / 1024,
    idle / 1024, (v["rss_kib"] - idle) / v["connections"];
  if (want != v["connections"]) printf "  (asked for %d; the open-file limit allowed %d)\n", want, v["connections"] }'
grep -q "open_at_end=$STREAMS " <<<"$hold"
