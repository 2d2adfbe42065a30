#!/usr/bin/env bash
# Memory per idle HTTP/2 connection and per active HTTP/2 stream: shardgate (`--h2c`, 1 shard) and
# nginx (`listen … http2`, 1 worker, no master), each on CPU 0, in front of a silent upstream
# (bench/h2mem.py silent: it takes the requests and never answers, so every stream stays active).
# For each proxy, a fresh process each time:
#   1. RSS at idle, then with CONNS idle h2c connections open (preface and SETTINGS exchanged):
#      KiB per idle connection = (RSS with them - RSS idle) / CONNS;
#   2. RSS at idle, then with STREAM_CONNS connections holding PER_CONN GET streams each, all
#      waiting on the upstream: KiB per active stream = (RSS with them - RSS idle - STREAM_CONNS x
#      the idle connection's cost) / (STREAM_CONNS x PER_CONN). A stream's cost includes what the
#      proxy holds for its upstream request (shardgate: a kit of --buffer-size + --upstream-buffer-
#      size and an upstream connection; nginx: its proxy buffers and upstream connection).
# RSS is VmRSS of the proxy's process (/proc/PID/status).
#
#   bench/h2mem.sh        # CONNS=2000 STREAM_CONNS=10 PER_CONN=100
#   NO_BUILD=1 SHARDGATE_BIN=/tmp/x/shardgate bench/h2mem.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS="${CONNS:-2000}"
STREAM_CONNS="${STREAM_CONNS:-10}"
PER_CONN="${PER_CONN:-100}"
BIN="${SHARDGATE_BIN:-target/release/shardgate}"
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
python3 -c 'import h2' 2>/dev/null || python3 -m pip install -q h2
[ "${NO_BUILD:-0}" = 1 ] || cargo build --release --bins -q
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
TMP="$(mktemp -d /tmp/shardgate-h2mem.XXXXXX)"
chmod 755 "$TMP"
PIDS=()
cleanup() {
  exec 7>&- 8>&- 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# The silent upstream, until its stdin (fd 7) closes.
mkfifo "$TMP/silent.in"
python3 bench/h2mem.py silent <"$TMP/silent.in" >"$TMP/silent.port" &
PIDS+=($!)
exec 7>"$TMP/silent.in"
for _ in $(seq 1 50); do [ -s "$TMP/silent.port" ] && break; sleep 0.1; done
UP_PORT="$(cat "$TMP/silent.port")"

# A client (bench/h2mem.py MODE ARGS) holding what it opened until its stdin (fd 8) closes.
client_open() {
  rm -f "$TMP/client.in" "$TMP/client.out"
  mkfifo "$TMP/client.in"
  python3 bench/h2mem.py "$@" <"$TMP/client.in" >"$TMP/client.out" &
  CLIENT=$!
  exec 8>"$TMP/client.in"
  for _ in $(seq 1 1200); do grep -q open "$TMP/client.out" 2>/dev/null && return; sleep 0.1; done
  echo "h2mem: the client did not open its connections" >&2
  exit 1
}
client_close() {
  exec 8>&-
  wait "$CLIENT" 2>/dev/null || true
}
wait_port() { for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }

start_shardgate() { # sets P and PORT
  PORT="$(free_port)"
  taskset -c 0 "$BIN" --listen "127.0.0.1:$PORT" --h2c --upstream "127.0.0.1:$UP_PORT" --shards 1 \
    --cpus 0 --admin off --upstream-timeout 120s --max-upstream-connections 0 >/dev/null 2>&1 &
  P=$!
  wait_port "$PORT"
}
start_nginx() { # sets P and PORT
  PORT="$(free_port)"
  mkdir -p "$TMP/nginx"
  cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log crit;
events { worker_connections 9000; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    proxy_read_timeout 120s;
    upstream silent { server 127.0.0.1:$UP_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$PORT http2;
        http2_max_concurrent_streams 128;
        location / { proxy_pass http://silent; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
EOF
  taskset -c 0 nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" >/dev/null 2>&1 &
  P=$!
  wait_port "$PORT"
}
stop() { kill "$P" 2>/dev/null || true; wait "$P" 2>/dev/null || true; sleep 0.5; }

echo "# $(nginx -v 2>&1); CONNS=$CONNS idle connections; $STREAM_CONNS connections x $PER_CONN active streams"
for target in shardgate nginx; do
  "start_$target"
  sleep 0.5
  r0="$(rss "$P")"
  client_open idle "$PORT" "$CONNS"
  sleep 1
  r1="$(rss "$P")"
  client_close
  stop

  "start_$target"
  sleep 0.5
  s0="$(rss "$P")"
  client_open streams "$PORT" "$STREAM_CONNS" "$PER_CONN"
  sleep 2
  s1="$(rss "$P")"
  client_close
  stop
  python3 -c "
conns, sc, per = $CONNS, $STREAM_CONNS, $PER_CONN
per_conn = ($r1 - $r0) / conns
per_stream = ($s1 - $s0 - sc * per_conn) / (sc * per)
print(f'$target  idle RSS {$r0} KiB  +{conns} idle connections {$r1} KiB: {per_conn:.1f} KiB each  |  '
      f'idle {$s0} KiB  +{sc * per} active streams {$s1} KiB: {per_stream:.1f} KiB each')"
done
