#!/usr/bin/env bash
# Router benchmarks on loopback (docs/router.md, "Benchmarks"). Not a test: figures are printed.
#
#   bash bench/router/run.sh            # ~5.5 minutes with SGLang's gateway, ~2.5 without
#   BUILD=build/live DURATION=10 STREAMS=10000 bash bench/router/run.sh
#   SMG_POLICIES= bash bench/router/run.sh            # gimbal serve and nginx only
#
# Peers, all in front of the same $BACKENDS zero-delay backends and measured the same way:
# `gimbal serve` (least_requests dispatch, one process), nginx (Debian; least_conn upstream,
# keep-alive to the backends) and SGLang's model gateway (`smg launch`, PyPI package smg, one run
# per policy in $SMG_POLICIES; installed by bench/router/install-smg.sh, skipped with a message
# when it is not there).
# 1. Added latency: wrk, 1 connection, non-streaming POST /v1/completions, p50 and p99 latency
#    through each proxy in front of one backend alone, each right after a run straight to that
#    backend; the difference within the pair is the proxy's added latency per request.
# 2. Throughput: wrk, $CONNS connections, requests/s through each proxy, and the CPU time each
#    proxy used per request. gimbal serve and nginx run $ROUNDS times each, alternately (which
#    one goes first alternates too), and their medians are compared: one pair of runs on a
#    shared machine swings by tens of percent.
# 3. Streams: $STREAMS streaming completions held open through `gimbal serve` and through the
#    gateway for $HOLD_S s, with the proxy's resident memory while they are held.
# The last line, `summary: key=value ...`, has every figure of the run (for repeated runs).
# Needs wrk and nginx (scripts/install-deps.sh), curl for the gateway, and the release build
# (router_bench_tool, gimbal).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${BUILD:-$ROOT/build/release}"
GIMBAL="${GIMBAL:-$BUILD/src/cli/gimbal}"
TOOL="${TOOL:-$BUILD/bench/router/router_bench_tool}"
SMG="${SMG:-$ROOT/build/smg-venv/bin/smg}"
SMG_POLICIES="${SMG_POLICIES-round_robin cache_aware}"
BACKENDS="${BACKENDS:-2}"
THREADS="${THREADS:-1}"     # router io threads = nginx workers (wrk, backends and proxy share the cores)
DURATION="${DURATION:-10}"     # seconds per wrk run
CONNS="${CONNS:-64}"
ROUNDS="${ROUNDS:-3}"          # throughput runs of gimbal serve and of nginx, alternated
WARMUP_S="${WARMUP_S:-3}"      # unmeasured load through each proxy before those runs
STREAMS="${STREAMS:-10000}"
HOLD_S="${HOLD_S:-10}"

for bin in "$GIMBAL" "$TOOL"; do
  [ -x "$bin" ] || { echo "router bench: $bin missing; build first (make build)" >&2; exit 2; }
done
for cmd in wrk nginx; do
  command -v "$cmd" >/dev/null || { echo "router bench: $cmd missing (scripts/install-deps.sh)" >&2; exit 2; }
done
if [ -n "$SMG_POLICIES" ]; then
  if [ ! -x "$SMG" ]; then
    echo "router bench: $SMG missing: skipping SGLang's gateway (bash bench/router/install-smg.sh installs it)" >&2
    SMG_POLICIES=""
  elif ! command -v curl >/dev/null; then
    echo "router bench: curl missing: skipping SGLang's gateway (its readiness is polled with curl)" >&2
    SMG_POLICIES=""
  elif ! SMG_VERSION="$("$SMG" --version 2>&1)"; then
    echo "router bench: $SMG does not run here: skipping SGLang's gateway: $SMG_VERSION" >&2
    SMG_POLICIES=""
  fi
fi

# 10,000 streams take 10,000 client sockets and 10,000 upstream sockets in the proxy.
want_fds=$((2 * STREAMS + 1024))
ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fds=$(ulimit -n)
if [ "$fds" -lt "$want_fds" ]; then
  fit=$(((fds - 1024) / 2))
  echo "router bench: open-file limit is $fds (hard limit); $STREAMS streams need $want_fds in the proxy." >&2
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
free_port() {  # a port nothing listens on now (bound and released)
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

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
start_nginx() {  # folder, port, backend ports... -> sets NGINX_PID
  local dir=$1 port=$2 p
  shift 2
  mkdir -p "$dir"
  {
    echo "worker_processes $THREADS;"
    echo "error_log $dir/error.log warn;"
    echo "pid $dir/nginx.pid;"
    echo "events { worker_connections 16384; }"
    echo "http {"
    echo "  access_log off;"
    echo "  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;"
    echo "  fastcgi_temp_path $dir/fcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;"
    echo "  upstream engines {"
    echo "    least_conn;"
    for p in "$@"; do echo "    server 127.0.0.1:$p;"; done
    echo "    keepalive 256;"
    echo "  }"
    echo "  server {"
    echo "    listen 127.0.0.1:$port;"
    echo "    location / {"
    echo "      proxy_pass http://engines;"
    echo "      proxy_http_version 1.1;"
    echo "      proxy_set_header Connection \"\";"
    echo "      proxy_buffering off;"
    echo "    }"
    echo "  }"
    echo "}"
  } >"$dir/nginx.conf"
  nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' >"$dir.log" 2>&1 &
  NGINX_PID=$!
  PIDS+=($NGINX_PID)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "router bench: nginx did not listen on $port ($dir.log)" >&2
  return 1
}
NGINX_PORT=$(free_port)
start_nginx "$WORK/nginx" "$NGINX_PORT" "${BACKEND_PORTS[@]}"

# SGLang's model gateway: `smg launch` over the given backends with one policy. It registers a
# backend by probing it (GET /v1/models: owned_by "vllm") and routes once it is healthy, so wait
# for /readiness to count all of them. No admission bound (--max-concurrent-requests 0; its
# default, 1024 per core and at least 4096 in flight, would refuse the held streams), no
# tokenizer (none is named: it passes the text on), logs at warn.
SMG_PID=""
SMG_PORT=""
start_smg() {  # log, policy, backend ports...
  local log=$1 policy=$2 p urls=()
  shift 2
  for p in "$@"; do urls+=("http://127.0.0.1:$p"); done
  SMG_PORT=$(free_port)
  "$SMG" launch --host 127.0.0.1 --port "$SMG_PORT" --worker-urls "${urls[@]}" --policy "$policy" \
    --prometheus-host 127.0.0.1 --prometheus-port "$(free_port)" --max-concurrent-requests 0 \
    --shutdown-grace-period-secs 1 --log-level warn >"$log" 2>&1 &
  SMG_PID=$!
  PIDS+=($SMG_PID)
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$SMG_PORT/readiness" 2>/dev/null |
      grep -q "\"healthy_workers\":$#[,}]" && return 0
    kill -0 "$SMG_PID" 2>/dev/null || { echo "router bench: smg exited early ($log)" >&2; return 1; }
    sleep 0.1
  done
  echo "router bench: smg ($policy) did not register its $# backends in 30 s ($log)" >&2
  return 1
}
stop_smg() {
  kill -TERM "$SMG_PID" 2>/dev/null || true
  wait "$SMG_PID" 2>/dev/null || true
}

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"bench","prompt":"Say hello to the world.","max_tokens":1}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f p50_us=%.1f p99_us=%.1f requests=%d errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status))
end
LUA

run_wrk() {  # threads, connections, url -> RESULT line
  local out
  out="$(wrk -t"$1" -c"$2" -d"${DURATION}s" --timeout 10s -s "$WORK/post.lua" "$3/v1/completions")"
  grep '^RESULT' <<<"$out"
}
field() { grep -Eo "$1=[0-9.]+" <<<"$2" | cut -d= -f2; }
SUMMARY=()
note() { SUMMARY+=("$1=$2"); }

B0="http://127.0.0.1:${BACKEND_PORTS[0]}"
sleep 0.3
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "== router benchmarks: $BACKENDS zero-delay backends, $THREADS threads, $(nproc) cores, wrk ${DURATION}s runs, load average $LOAD_START"
[ -z "$SMG_POLICIES" ] || echo "   SGLang's gateway: $SMG_VERSION, policies: $SMG_POLICIES"
note load_start "${LOAD_START%% *}"

# Added latency: one backend, one connection, through each proxy in front of that backend alone
# (so every path ends at the same backend), each run right after a direct run to the backend:
# added = through the proxy - direct, within the pair (other tenants' load drifts in between).
added() {  # name, key, URL through the proxy
  local direct routed
  direct="$(run_wrk 1 1 "$B0")"
  routed="$(run_wrk 1 1 "$3")"
  awk -v n="$1" -v d50="$(field p50_us "$direct")" -v d99="$(field p99_us "$direct")" \
      -v r50="$(field p50_us "$routed")" -v r99="$(field p99_us "$routed")" -v e="$(field errors "$routed")" \
      -v x="$(field non2xx "$routed")" 'BEGIN {
    printf "  %-22s p50 %5.0f us p99 %5.0f us (direct %3.0f / %5.0f us): added p50 %4.0f us, p99 %5.0f us%s\n",
      n, r50, r99, d50, d99, r50 - d50, r99 - d99, (e + x > 0 ? sprintf(" (%d errors, %d non-2xx)", e, x) : "") }'
  note "${2}_added_p50" "$(awk -v a="$(field p50_us "$routed")" -v b="$(field p50_us "$direct")" 'BEGIN {print a - b}')"
  note "${2}_added_p99" "$(awk -v a="$(field p99_us "$routed")" -v b="$(field p99_us "$direct")" 'BEGIN {print a - b}')"
}
echo "added latency (1 connection, non-streaming; target p99 <= 200 us):"
{
  echo "listen: {address: 127.0.0.1, port: 0, threads: $THREADS}"
  echo "state: {source: metrics}"
  echo "backends: [{url: \"$B0\", model: bench}]"
} >"$WORK/router1.yaml"
"$GIMBAL" serve --config "$WORK/router1.yaml" >"$WORK/router1.log" 2>&1 &
R1_PID=$!
PIDS+=($R1_PID)
R1_PORT="$(port_of "$(wait_for_line "$WORK/router1.log" 'listening on port [0-9]+' $R1_PID)")"
added "gimbal serve" gimbal "http://127.0.0.1:$R1_PORT"
kill -TERM "$R1_PID"
NGINX_MAIN_PID=$NGINX_PID
N1_PORT=$(free_port)
start_nginx "$WORK/nginx1" "$N1_PORT" "${BACKEND_PORTS[0]}"
added "nginx" nginx "http://127.0.0.1:$N1_PORT"
kill -TERM "$NGINX_PID"
NGINX_PID=$NGINX_MAIN_PID
for policy in $SMG_POLICIES; do
  start_smg "$WORK/smg1-$policy.log" "$policy" "${BACKEND_PORTS[0]}"
  added "smg $policy" "smg_$policy" "http://127.0.0.1:$SMG_PORT"
  stop_smg
done

# Throughput, with the CPU time each proxy used (clock ticks of the process and its threads;
# nginx: master and workers).
cpu_ticks() {  # pids...
  local t=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo $t
}
nginx_pids() { echo "$NGINX_PID" $(pgrep -P "$NGINX_PID" || true); }
throughput() {  # name, key, url, pids... -> prints a line, sets RPS
  local name=$1 key=$2 url=$3 c0 out ticks
  shift 3
  c0=$(cpu_ticks "$@")
  out="$(run_wrk "$THREADS" "$CONNS" "$url")"
  ticks=$(($(cpu_ticks "$@") - c0))
  RPS="$(field rps "$out")"
  CPU="$(awk -v q="$(field requests "$out")" -v t="$ticks" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.1f", t / hz * 1e6 / q }')"
  awk -v n="$name" -v r="$RPS" -v q="$(field requests "$out")" -v t="$ticks" -v hz="$(getconf CLK_TCK)" \
      -v e="$(field errors "$out")" -v x="$(field non2xx "$out")" 'BEGIN {
    printf "  %-22s %7.0f req/s, CPU %5.1f us per request%s\n", n, r, t / hz * 1e6 / q,
      (e + x > 0 ? sprintf(" (%d errors, %d non-2xx)", e, x) : "") }'
  # gimbal serve and nginx run several rounds and note their medians after them.
  case "$key" in
    gimbal|nginx) ;;
    *) note "${key}_rps" "$RPS"; note "${key}_cpu_us" "$CPU" ;;
  esac
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END {
  print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
echo "throughput ($CONNS connections, $BACKENDS backends; $ROUNDS rounds of gimbal serve and nginx, alternating which goes first):"
# Each proxy first serves $WARMUP_S s of the same load, not measured, so that no measured run
# pays for connection set-up or first allocations.
if [ "$WARMUP_S" != 0 ]; then
  for url in "http://127.0.0.1:$ROUTER_PORT" "http://127.0.0.1:$NGINX_PORT"; do
    DURATION="$WARMUP_S" run_wrk "$THREADS" "$CONNS" "$url" >/dev/null
  done
fi
G_RPS=() N_RPS=() G_CPU=() N_CPU=() ROUND_RATIOS=()
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="gimbal nginx"; else order="nginx gimbal"; fi
  for who in $order; do
    if [ "$who" = gimbal ]; then
      throughput "gimbal serve (round $round)" gimbal "http://127.0.0.1:$ROUTER_PORT" "$ROUTER_PID"
      G_RPS+=("$RPS") G_CPU+=("$CPU")
    else
      throughput "nginx least_conn (round $round)" nginx "http://127.0.0.1:$NGINX_PORT" $(nginx_pids)
      N_RPS+=("$RPS") N_CPU+=("$CPU")
    fi
  done
  ROUND_RATIOS+=("$(awk -v g="${G_RPS[-1]}" -v n="${N_RPS[-1]}" 'BEGIN { printf "%.3f", g / n }')")
  note "gimbal_over_nginx_round$round" "${ROUND_RATIOS[-1]}"
done
GIMBAL_RPS="$(echo "${G_RPS[*]}" | median)"
NGINX_RPS="$(echo "${N_RPS[*]}" | median)"
note gimbal_rps "$GIMBAL_RPS"
note nginx_rps "$NGINX_RPS"
note gimbal_cpu_us "$(echo "${G_CPU[*]}" | median)"
note nginx_cpu_us "$(echo "${N_CPU[*]}" | median)"
echo "  medians: gimbal serve $GIMBAL_RPS req/s, CPU $(echo "${G_CPU[*]}" | median) us per request; nginx $NGINX_RPS req/s, CPU $(echo "${N_CPU[*]}" | median) us per request; gimbal / nginx per round: ${ROUND_RATIOS[*]}"
ratios="$(awk -v g="$GIMBAL_RPS" -v n="$NGINX_RPS" 'BEGIN { printf "%.2fx nginx (medians)", g / n }')"
note gimbal_over_nginx "$(awk -v g="$GIMBAL_RPS" -v n="$NGINX_RPS" 'BEGIN { printf "%.3f", g / n }')"
for policy in $SMG_POLICIES; do
  start_smg "$WORK/smg-$policy.log" "$policy" "${BACKEND_PORTS[@]}"
  throughput "smg $policy" "smg_$policy" "http://127.0.0.1:$SMG_PORT" "$SMG_PID"
  stop_smg
  ratios+="$(awk -v g="$GIMBAL_RPS" -v s="$RPS" -v p="$policy" 'BEGIN { printf ", %.2fx smg %s", g / s, p }')"
  note "gimbal_over_smg_$policy" "$(awk -v g="$GIMBAL_RPS" -v s="$RPS" 'BEGIN { printf "%.3f", g / s }')"
done
echo "  gimbal serve: $ratios (target >= 1.0 each)"

# Streams held, with the proxy's RSS while it holds them.
hold_streams() {  # name, port, pid -> prints a line; returns the hold tool's status
  local name=$1 port=$2 pid=$3 idle out rc=0
  idle=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  out="$("$TOOL" hold --port "$port" --connections "$STREAMS" --hold-s "$HOLD_S" \
           --rss-pid "$pid" --ramp-s 120)" || rc=$?
  echo "$out" | awk -v n="$name" -v idle="$idle" '{
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "  %-22s %d of %d held %s s (ramp %s s, %d failed); RSS %.1f MiB (%.1f MiB before): %.1f KiB per stream\n",
      n, v["open_at_end"], v["connections"], v["hold_s"], v["ramp_s"], v["failed"], v["rss_kib"] / 1024,
      idle / 1024, (v["rss_kib"] - idle) / v["connections"] }'
  HELD="$(field open_at_end "$out")"
  KIB="$(echo "$out" | awk -v idle="$idle" '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "%.1f", (v["rss_kib"] - idle) / v["connections"] }')"
  return $rc
}
echo "streams held (target: what the open-file limit allows, <= 16 KiB each):"
[ "${STREAMS_WANTED:-$STREAMS}" = "$STREAMS" ] ||
  echo "  (asked for $STREAMS_WANTED; the open-file limit allows $STREAMS)"
gimbal_held=0
hold_streams "gimbal serve" "$ROUTER_PORT" "$ROUTER_PID" || gimbal_held=$?
note gimbal_streams "$HELD"
note gimbal_kib_per_stream "$KIB"
for policy in $SMG_POLICIES; do
  start_smg "$WORK/smg-hold-$policy.log" "$policy" "${BACKEND_PORTS[@]}"
  hold_streams "smg $policy" "$SMG_PORT" "$SMG_PID" || true
  stop_smg
  note "smg_${policy}_streams" "$HELD"
  note "smg_${policy}_kib_per_stream" "$KIB"
done
note streams_asked "$STREAMS"
note load_end "$(cut -d' ' -f1 /proc/loadavg)"
echo "summary: ${SUMMARY[*]}"
exit "$gimbal_held"
