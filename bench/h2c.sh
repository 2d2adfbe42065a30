#!/usr/bin/env bash
# h2c (HTTP/2 with prior knowledge) downstream to an HTTP/1.1 upstream: shardgate `--h2c` against
# nginx `listen ... http2` (plain), each with one worker/shard on CPU 0, h2load on CPU 1,
# demo-upstream as the origin, 1024 idle upstream connections kept by both (CLIENTS x STREAMS in
# flight need that many: fewer makes both open a connection per request). Interleaved rounds; CPU
# of the proxy (user + sys, /proc/PID/stat) per request and requests per second.
#
#   bench/h2c.sh                                  # ROUNDS=3 REQUESTS=200000 CLIENTS=16 STREAMS=32
#   SHARDGATE_BIN=/tmp/x/shardgate bench/h2c.sh   # another build
#   TLS=1 bench/h2c.sh                            # HTTP/2 over TLS (ALPN h2) instead: shardgate
#                                                 # --listen-tls vs nginx `listen ... ssl http2`,
#                                                 # one self-signed P-256 certificate for both
#
# Prints one line per proxy per round: req/s and µs of CPU per request.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
REQUESTS="${REQUESTS:-200000}"
CLIENTS="${CLIENTS:-16}"
STREAMS="${STREAMS:-32}"
BIN="${SHARDGATE_BIN:-target/release/shardgate}"
command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
cargo build --release --bins -q
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TMP="$(mktemp -d /tmp/shardgate-h2c.XXXXXX)"
chmod 755 "$TMP"
UP_PORT="$(free_port)"
target/release/demo-upstream --listen "127.0.0.1:$UP_PORT" >/dev/null 2>&1 &
PIDS=($!)
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

NGINX_PORT="$(free_port)"
TLS="${TLS:-0}"
SCHEME=http NGINX_LISTEN="http2" NGINX_TLS="" SG_LISTEN=(--listen) SG_TLS=()
if [ "$TLS" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
  SCHEME=https NGINX_LISTEN="ssl http2"
  NGINX_TLS="ssl_certificate $TMP/cert.pem; ssl_certificate_key $TMP/key.pem;"
  SG_LISTEN=(--listen-tls) SG_TLS=(--tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem")
fi
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
    upstream backend { server 127.0.0.1:$UP_PORT; keepalive 1024; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$NGINX_PORT $NGINX_LISTEN;
        $NGINX_TLS
        location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
EOF

ticks="$(getconf CLK_TCK)"
measure() { # $1 name, $2 pid, $3 port
  taskset -c 1 h2load -n 20000 -c "$CLIENTS" -m "$STREAMS" "$SCHEME://127.0.0.1:$3/" >/dev/null 2>&1 # warm-up
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$2/stat")
  out="$(taskset -c 1 h2load -n "$REQUESTS" -c "$CLIENTS" -m "$STREAMS" "$SCHEME://127.0.0.1:$3/" 2>&1)"
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$2/stat")
  ok="$(echo "$out" | awk '/status codes:/ {print $3}')"
  rps="$(echo "$out" | awk '/^finished in/ {print $4}')"
  python3 -c "
u, s, n, hz = $u1 - $u0, $s1 - $s0, $REQUESTS, $ticks
print(f'round $round  $1  req/s=$rps  2xx=$ok  cpu={(u+s)*1e6/hz/n:.2f}us/req (user {u*1e6/hz/n:.2f}, sys {s*1e6/hz/n:.2f})')"
}

for round in $(seq 1 "$ROUNDS"); do
  port="$(free_port)"
  h2c=(--h2c); [ "$TLS" = 1 ] && h2c=()
  taskset -c 0 "$BIN" "${SG_LISTEN[@]}" "127.0.0.1:$port" "${SG_TLS[@]}" --upstream "127.0.0.1:$UP_PORT" "${h2c[@]}" --shards 1 \
    --cpus 0 --admin off --h2-max-requests 0 --pool-max-idle 1024 >/dev/null 2>&1 &
  P=$!
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  measure shardgate "$P" "$port"
  kill "$P"; wait "$P" 2>/dev/null || true

  taskset -c 0 nginx -c "$TMP/nginx.conf" -p "$TMP" >/dev/null 2>&1 &
  P=$!
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$NGINX_PORT") 2>/dev/null && break; sleep 0.1; done
  measure nginx "$P" "$NGINX_PORT"
  kill "$P"; wait "$P" 2>/dev/null || true
done
