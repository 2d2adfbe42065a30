#!/usr/bin/env bash
# gRPC unary through an HTTP/2 upstream: shardgate (h2c listener, a cluster with
# `protocol = "h2c"`) against nginx `grpc_pass` and HAProxy (`proto h2` on both sides), each with
# one worker/shard on CPU 0, h2load on CPU 1 sending gRPC-shaped POSTs (`content-type:
# application/grpc`, `te: trailers`, one 5-byte-framed message), and `grpc-upstream` (src/bin:
# an h2c origin answering every call with one message and `grpc-status: 0`) unpinned as the origin.
# Interleaved rounds; CPU of the proxy (user + sys, /proc/PID/stat) per request and requests/s.
#
#   bench/grpc.sh                                  # ROUNDS=3 REQUESTS=100000 CLIENTS=16 STREAMS=32
#   SHARDGATE_BIN=/tmp/x/shardgate bench/grpc.sh   # another build
#
# Prints one line per proxy per round: req/s, 2xx count and µs of CPU per request. h2load checks
# only the HTTP status; the origin and each proxy are checked by one grpcio call first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
REQUESTS="${REQUESTS:-100000}"
CLIENTS="${CLIENTS:-16}"
STREAMS="${STREAMS:-32}"
BIN="${SHARDGATE_BIN:-target/release/shardgate}"
command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
command -v haproxy >/dev/null || { apt-get update -qq && apt-get install -y -qq haproxy >/dev/null; }
python3 -c 'import grpc' 2>/dev/null || python3 -m pip install -q grpcio
cargo build --release --bins -q
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TMP="$(mktemp -d /tmp/shardgate-grpc.XXXXXX)"
chmod 755 "$TMP"
UP_PORT="$(free_port)"
target/release/grpc-upstream --listen "127.0.0.1:$UP_PORT" --threads 1 >/dev/null 2>&1 &
PIDS=($!)
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
printf '\x00\x00\x00\x00\x04ping' >"$TMP/request.bin"

NGINX_PORT="$(free_port)"
cat >"$TMP/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx.error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/body;
    proxy_temp_path $TMP/proxy;
    fastcgi_temp_path $TMP/fastcgi;
    uwsgi_temp_path $TMP/uwsgi;
    scgi_temp_path $TMP/scgi;
    keepalive_requests 1000000;
    http2_max_requests 1000000;
    upstream grpcs { server 127.0.0.1:$UP_PORT; keepalive 1024; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$NGINX_PORT http2;
        location / { grpc_pass grpc://grpcs; }
    }
}
EOF

HAPROXY_PORT="$(free_port)"
cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend grpc
    bind 127.0.0.1:$HAPROXY_PORT proto h2
    default_backend origin
backend origin
    server o 127.0.0.1:$UP_PORT proto h2
EOF

SG_PORT="$(free_port)"
cat >"$TMP/shardgate.toml" <<EOF
[[listeners]]
addr = "127.0.0.1:$SG_PORT"
h2c = true
[[clusters]]
name = "grpc"
endpoints = ["127.0.0.1:$UP_PORT"]
protocol = "h2c"
[[routes]]
cluster = "grpc"
EOF

# One real gRPC call through $1 (port): the answer must be the origin's 16-byte message.
check() {
  python3 - "$1" <<'PY'
import sys, grpc
with grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}") as ch:
    got = ch.unary_unary("/bench.Svc/Unary")(b"ping", timeout=10)
    assert len(got) == 16, got
PY
}

ticks="$(getconf CLK_TCK)"
h2load_grpc() { # $1 port, $2 requests
  taskset -c 1 h2load -n "$2" -c "$CLIENTS" -m "$STREAMS" -d "$TMP/request.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' "http://127.0.0.1:$1/bench.Svc/Unary" 2>&1
}
measure() { # $1 name, $2 pid, $3 port
  check "$3"
  h2load_grpc "$3" 20000 >/dev/null # warm-up
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$2/stat")
  out="$(h2load_grpc "$3" "$REQUESTS")"
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$2/stat")
  ok="$(echo "$out" | awk '/status codes:/ {print $3}')"
  rps="$(echo "$out" | awk '/^finished in/ {print $4}')"
  python3 -c "
u, s, n, hz = $u1 - $u0, $s1 - $s0, $REQUESTS, $ticks
print(f'round $round  $1  req/s=$rps  2xx=$ok  cpu={(u+s)*1e6/hz/n:.2f}us/req (user {u*1e6/hz/n:.2f}, sys {s*1e6/hz/n:.2f})')"
}
wait_port() { for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }

check "$UP_PORT"
echo "# $(nginx -v 2>&1); $(haproxy -v 2>&1 | head -n 1 | cut -d' ' -f1-3); $(h2load --version 2>&1 | head -n 1)"
for round in $(seq 1 "$ROUNDS"); do
  ADMIN_PORT="$(free_port)"
  taskset -c 0 "$BIN" --config "$TMP/shardgate.toml" --shards 1 --cpus 0 --admin "127.0.0.1:$ADMIN_PORT" \
    --h2-max-requests 0 >"$TMP/shardgate.log" 2>&1 &
  P=$!
  wait_port "$SG_PORT"
  measure shardgate "$P" "$SG_PORT"
  # h2load sees HTTP statuses only, and a gRPC error is a 200: the calls by grpc-status.
  echo "round $round  shardgate  grpc-status: $(curl -s "127.0.0.1:$ADMIN_PORT/metrics" \
    | awk -F'[{}]' '/^shardgate_route_grpc_requests_total/ {print $2 "=" $3}' | tr -d ' "' | tr '\n' ' ')"
  kill "$P"; wait "$P" 2>/dev/null || true

  taskset -c 0 nginx -c "$TMP/nginx.conf" -p "$TMP" >/dev/null 2>&1 &
  P=$!
  wait_port "$NGINX_PORT"
  measure nginx "$P" "$NGINX_PORT"
  kill "$P"; wait "$P" 2>/dev/null || true

  taskset -c 0 haproxy -f "$TMP/haproxy.cfg" -db >/dev/null 2>&1 &
  P=$!
  wait_port "$HAPROXY_PORT"
  measure haproxy "$P" "$HAPROXY_PORT"
  kill "$P"; wait "$P" 2>/dev/null || true
done
