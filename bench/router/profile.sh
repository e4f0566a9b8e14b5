#!/usr/bin/env bash
# Where the router's CPU per request goes (docs/router.md, "Throughput: where the CPU per request
# goes"). Not a test: figures are printed.
#
#   bash bench/router/profile.sh instructions   # callgrind: user-space instructions per request
#   bash bench/router/profile.sh syscalls       # perf stat: system calls per request, gimbal serve and nginx
#   GIMBAL=<another gimbal binary> bash bench/router/profile.sh instructions
#   TOP=15 bash bench/router/profile.sh instructions   # also the 15 functions with most instructions
#
# The load is bench/router/run.sh's throughput load: wrk, 64 connections, non-streaming POST
# /v1/completions, through one proxy in front of two zero-delay backends (router_bench_tool).
# `instructions` runs `gimbal serve` under valgrind for 8 s of load and divides its instructions
# (start-up included, the same for every build) by the requests answered. `syscalls` counts
# recvfrom, sendmsg, writev, poll and epoll_wait on the proxy's process for 3 s of load (perf stat on
# the syscalls tracepoints; needs perf and permission to read them) and divides by the requests
# wrk reports for that time.
set -euo pipefail

MODE="${1:-instructions}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${BUILD:-$ROOT/build/release}"
GIMBAL="${GIMBAL:-$BUILD/src/cli/gimbal}"
TOOL="${TOOL:-$BUILD/bench/router/router_bench_tool}"
case "$MODE" in
  instructions) need=(valgrind callgrind_annotate wrk) ;;
  syscalls) need=(perf wrk nginx) ;;
  *) echo "router profile: mode must be instructions or syscalls, not '$MODE'" >&2; exit 2 ;;
esac
for cmd in "${need[@]}"; do
  command -v "$cmd" >/dev/null || { echo "router profile: $cmd missing" >&2; exit 2; }
done
for bin in "$GIMBAL" "$TOOL"; do
  [ -x "$bin" ] || { echo "router profile: $bin missing; build first (make build)" >&2; exit 2; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gimbal-routerprofile.XXXXXX")"
# shellcheck source=../../scripts/lib/procs.sh
source "$ROOT/scripts/lib/procs.sh"
procs_init "router profile" "$WORK"

port_in() {  # log pid: the port a started process says it listens on
  procs_wait_for_line "$1" 'listening on port [0-9]+' "$2" 60 | grep -Eo 'port [0-9]+' | awk '{print $2}'
}
PORTS=()
for i in 1 2; do
  "$TOOL" backend --port 0 --threads 1 --stream-interval-s 5 >"$WORK/backend$i.log" 2>&1 &
  PIDS+=($!)
  PORTS+=("$(port_in "$WORK/backend$i.log" $!)")
done
{
  echo "listen: {address: 127.0.0.1, port: 0, threads: 1}"
  echo "limits: {max_inflight_per_engine: 1000000, upstream_read_timeout_s: 600}"
  echo "dispatch: {policy: least_requests}"
  echo "state: {source: metrics, scrape_interval_s: 0.1}"
  echo "backends:"
  for p in "${PORTS[@]}"; do echo "  - {url: \"http://127.0.0.1:$p\", model: bench}"; done
} >"$WORK/router.yaml"
cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"bench","prompt":"Say hello to the world.","max_tokens":1}'
wrk.headers["Content-Type"] = "application/json"
LUA
load() {  # port seconds -> wrk's "N requests in" count
  wrk -t1 -c64 -d"$2s" -s "$WORK/post.lua" "http://127.0.0.1:$1/v1/completions" |
    grep -Eo '[0-9]+ requests in' | awk '{print $1}'
}

if [ "$MODE" = instructions ]; then
  valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$WORK/callgrind.out" \
    "$GIMBAL" serve --config "$WORK/router.yaml" >"$WORK/router.log" 2>&1 &
  ROUTER_PID=$!
  PIDS+=($ROUTER_PID)
  port="$(port_in "$WORK/router.log" $ROUTER_PID)"
  n="$(load "$port" 8)"
  kill -TERM "$ROUTER_PID"
  wait "$ROUTER_PID" || true
  ir="$(callgrind_annotate "$WORK/callgrind.out" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')"
  echo "gimbal serve under callgrind: $n requests, $ir instructions: $((ir / n)) per request"
  if [ "${TOP:-0}" -gt 0 ]; then
    echo "the $TOP functions with most instructions (their own, share of the total):"
    callgrind_annotate "$WORK/callgrind.out" | grep -E '^ *[0-9,]+ \( *[0-9.]+%\) ' |
      grep -v 'PROGRAM TOTALS' | awk -v n="$TOP" 'NR <= n' | cut -c1-160
  fi
  exit 0
fi

"$GIMBAL" serve --config "$WORK/router.yaml" >"$WORK/router.log" 2>&1 &
ROUTER_PID=$!
PIDS+=($ROUTER_PID)
ROUTER_PORT="$(port_in "$WORK/router.log" $ROUTER_PID)"
NGINX_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1; error_log $WORK/nginx/error.log warn; pid $WORK/nginx/nginx.pid;
events { worker_connections 16384; }
http { access_log off; client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/f; uwsgi_temp_path $WORK/nginx/u; scgi_temp_path $WORK/nginx/s;
  upstream engines { least_conn; server 127.0.0.1:${PORTS[0]}; server 127.0.0.1:${PORTS[1]}; keepalive 256; }
  server { listen 127.0.0.1:$NGINX_PORT; location / { proxy_pass http://engines;
    proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; } } }
NGINX
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' >"$WORK/nginx.log" 2>&1 &
PIDS+=($!)
sleep 1
NGINX_WORKER="$(pgrep -P "$!" | head -n1)"
events=syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendmsg,syscalls:sys_enter_writev,syscalls:sys_enter_poll,syscalls:sys_enter_epoll_wait
for proxy in "gimbal serve:$ROUTER_PID:$ROUTER_PORT" "nginx:$NGINX_WORKER:$NGINX_PORT"; do
  IFS=: read -r name pid port <<<"$proxy"
  load "$port" 1 >/dev/null  # warm the pools
  perf stat -e "$events" -p "$pid" -o "$WORK/perf.txt" -- sleep 3 &
  stat_pid=$!
  n="$(load "$port" 4)"
  wait "$stat_pid"
  # wrk ran 4 s, perf counted 3 of them: requests in those 3 s = n * 3 / 4.
  awk -v who="$name" -v n="$n" '$2 ~ /^syscalls:/ { gsub(",", "", $1); sub("syscalls:sys_enter_", "", $2);
    line = line sprintf(" %s %.2f", $2, $1 / (n * 3 / 4)) } END { print who ": per request" line }' "$WORK/perf.txt"
done
