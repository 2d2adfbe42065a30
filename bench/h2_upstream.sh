#!/usr/bin/env bash
# HTTP/2 to the upstream: h2load (h2c, prior knowledge) through a proxy on CPU 0 to an nginx origin
# on CPU 1 (with h2load) that answers "ok" on an h2c listener and on an HTTP/1.1 one. Targets:
#   shardgate        --upstream-protocol h2c to the origin's h2c listener (multiplexed streams)
#   shardgate-h1     the same shardgate speaking HTTP/1.1 to the origin (keep-alive pool, 1024 idle)
#   nginx            `listen … http2` + proxy_pass over HTTP/1.1 (keepalive 1024): nginx 1.22 speaks
#                    only HTTP/1.1 to upstreams, except through grpc_pass
#   nginx-grpc       the same nginx with `grpc_pass grpc://` to the origin's h2c listener (its only
#                    HTTP/2 upstream path; it works for plain requests too)
# Interleaved rounds, one process per target per round; CPU (user + sys, /proc/PID/stat) per request
# of the proxy and requests per second.
#
#   bench/h2_upstream.sh                                  # ROUNDS=3 REQUESTS=200000 CLIENTS=16 STREAMS=32
#   SHARDGATE_BIN=/tmp/x/shardgate bench/h2_upstream.sh   # another build
#   TARGETS="shardgate nginx-grpc" bench/h2_upstream.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
REQUESTS="${REQUESTS:-200000}"
CLIENTS="${CLIENTS:-16}"
STREAMS="${STREAMS:-32}"
TARGETS="${TARGETS:-shardgate shardgate-h1 nginx nginx-grpc}"
BIN="${SHARDGATE_BIN:-target/release/shardgate}"
command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
[ -n "${SHARDGATE_BIN:-}" ] || cargo build --release --bins -q
# nginx binds what it is told: a port below the ephemeral range (where no outgoing connection or
# TIME-WAIT of the loads holds it), free when checked.
free_port() { python3 -c '
import random, socket
while True:
    p = random.randint(20000, 32000)
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass'; }
wait_port() { for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }
TMP="$(mktemp -d /tmp/shardgate-h2up.XXXXXX)"
chmod 755 "$TMP"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

temps() {
  echo "client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fastcgi;"
  echo "uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;"
}

# --- the origin: h2c and HTTP/1.1 listeners, "ok" ---
H2C_PORT="$(free_port)" H1_PORT="$(free_port)"
mkdir -p "$TMP/origin"
cat >"$TMP/origin/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1;
pid $TMP/origin/nginx.pid; error_log $TMP/origin/error.log warn;
events { worker_connections 8192; }
http {
    access_log off; $(temps "$TMP/origin")
    keepalive_requests 1000000; keepalive_timeout 300s;
    http2_max_concurrent_streams 128;
    server { listen 127.0.0.1:$H2C_PORT http2; location / { return 200 "ok"; } }
    server { listen 127.0.0.1:$H1_PORT; location / { return 200 "ok"; } }
}
EOF
taskset -c 1 nginx -c "$TMP/origin/nginx.conf" -p "$TMP/origin" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$H2C_PORT"

# --- nginx as the proxy (HTTP/1.1 upstream, or grpc_pass over h2c) ---
NGINX_PORT="$(free_port)" NGINX_GRPC_PORT="$(free_port)"
for kind in h1 grpc; do
  mkdir -p "$TMP/nginx-$kind"
  if [ "$kind" = h1 ]; then
    port=$NGINX_PORT
    loc="proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\";"
  else
    port=$NGINX_GRPC_PORT
    loc="grpc_pass grpc://h2backend;"
  fi
  cat >"$TMP/nginx-$kind/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1;
pid $TMP/nginx-$kind/nginx.pid; error_log $TMP/nginx-$kind/error.log warn;
events { worker_connections 8192; }
http {
    access_log off; $(temps "$TMP/nginx-$kind")
    keepalive_requests 1000000;
    upstream backend { server 127.0.0.1:$H1_PORT; keepalive 1024; keepalive_requests 1000000; }
    upstream h2backend { server 127.0.0.1:$H2C_PORT; keepalive 64; keepalive_requests 1000000; }
    server { listen 127.0.0.1:$port http2; location / { $loc } }
}
EOF
done

ticks="$(getconf CLK_TCK)"
measure() { # $1 name, $2 pid, $3 port
  out="$(taskset -c 1 h2load -n 20000 -c "$CLIENTS" -m "$STREAMS" "http://127.0.0.1:$3/" 2>&1)" # warm-up
  echo "$out" | grep -q "status codes: 20000 2xx" || { echo "$1: warm-up failed: $(echo "$out" | grep -E 'status codes|requests:')"; return; }
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$2/stat")
  out="$(taskset -c 1 h2load -n "$REQUESTS" -c "$CLIENTS" -m "$STREAMS" "http://127.0.0.1:$3/" 2>&1)"
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$2/stat")
  ok="$(echo "$out" | awk '/status codes:/ {print $3}')"
  rps="$(echo "$out" | awk '/^finished in/ {print $4}')"
  python3 -c "
u, s, n, hz = $u1 - $u0, $s1 - $s0, $REQUESTS, $ticks
print(f'round $round  $1  req/s=$rps  2xx=$ok  cpu={(u+s)*1e6/hz/n:.2f}us/req (user {u*1e6/hz/n:.2f}, sys {s*1e6/hz/n:.2f})')"
}

sg() { # $1 port, $2 upstream port, rest: flags
  local port=$1 up=$2
  shift 2
  taskset -c 0 "$BIN" --listen "127.0.0.1:$port" --h2c --upstream "127.0.0.1:$up" --shards 1 \
    --cpus 0 --admin off --h2-max-requests 0 --pool-max-idle 1024 "$@" >/dev/null 2>&1 &
  P=$!
  wait_port "$port"
}

for round in $(seq 1 "$ROUNDS"); do
  for t in $TARGETS; do
    port="$(free_port)"
    case $t in
      shardgate) sg "$port" "$H2C_PORT" --upstream-protocol h2c ;;
      shardgate-h1) sg "$port" "$H1_PORT" ;;
      nginx | nginx-grpc)
        dir="$TMP/nginx-h1" port=$NGINX_PORT
        [ "$t" = nginx-grpc ] && dir="$TMP/nginx-grpc" port=$NGINX_GRPC_PORT
        taskset -c 0 nginx -c "$dir/nginx.conf" -p "$dir" >/dev/null 2>&1 &
        P=$!
        wait_port "$port"
        ;;
    esac
    measure "$t" "$P" "$port"
    kill "$P"; wait "$P" 2>/dev/null || true
  done
done
