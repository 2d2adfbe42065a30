#!/usr/bin/env bash
# Instructions per request of shardgate's keep-alive path, counted by valgrind's callgrind: the
# same binary and inputs give the same count whatever else the machine is doing, so this compares
# two builds (a lever's before and after) where wall-clock figures on a shared 2-core box cannot.
#
#   bench/callgrind.sh                 # 20000 keep-alive GETs over 4 connections, 1 shard
#   REQUESTS=5000 bench/callgrind.sh   # fewer
#   SHARDGATE_ARGS="--lb ewma" bench/callgrind.sh
#   MODE=close bench/callgrind.sh      # one connection per request (Connection: close)
#   SHARDGATE_BIN=/tmp/old/shardgate bench/callgrind.sh   # another build (a change's before)
#
# valgrind does not follow io_uring's shared rings (the runtime hangs under it), so the shard runs
# on the epoll driver here (MONOIO_FORCE_LEGACY_DRIVER=1): the count is shardgate's own user-space
# work per request, which is what a hot-path lever changes; kernel work is not counted.
#
# Prints `instructions/request: N` (total Ir of the shard thread ÷ requests, start-up excluded by
# subtracting a run with no requests) and leaves callgrind.out in the temp dir for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS="${REQUESTS:-20000}"
CONNS="${CONNS:-4}"
MODE="${MODE:-keepalive}"
BIN="${SHARDGATE_BIN:-target/release/shardgate}"
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
cargo build --release --bins -q
TMP="$(mktemp -d /tmp/shardgate-callgrind.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP_PORT="$(free_port)"
target/release/demo-upstream --listen "127.0.0.1:$UP_PORT" >/dev/null 2>&1 &
PIDS+=($!)

# One run under callgrind: start, wait for `ready:`, send $1 requests, SIGTERM, total Ir.
run() {
  local n="$1" out="$TMP/callgrind.$1" port
  port="$(free_port)"
  # shellcheck disable=SC2086
  MONOIO_FORCE_LEGACY_DRIVER=1 valgrind --tool=callgrind --callgrind-out-file="$out" --separate-threads=no \
    "$BIN" --listen "127.0.0.1:$port" --upstream "127.0.0.1:$UP_PORT" \
    --shards 1 --no-pin --admin off ${SHARDGATE_ARGS:-} >"$TMP/stdout.$n" 2>"$TMP/stderr.$n" &
  local pid=$!
  for _ in $(seq 1 600); do grep -q '^ready:' "$TMP/stdout.$n" 2>/dev/null && break; sleep 0.1; done
  grep -q '^ready:' "$TMP/stdout.$n" || { cat "$TMP/stderr.$n" >&2; exit 1; }
  python3 - "$port" "$n" "$CONNS" "$MODE" <<'PY'
import socket, sys
port, n, conns, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if mode == "close":
    req = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        assert buf.startswith(b"HTTP/1.1 200"), buf[:80]
        s.close()
    raise SystemExit(0)
req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
bufs = [b""] * conns
for i in range(n):
    k = i % conns
    s = socks[k]
    s.sendall(req)
    buf = bufs[k]
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode()
            length = int([l.split(":")[1] for l in head.split("\r\n") if l.lower().startswith("content-length")][0])
            if len(buf) >= end + 4 + length:
                assert head.startswith("HTTP/1.1 200"), head
                buf = buf[end + 4 + length:]
                break
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("connection closed")
        buf += chunk
    bufs[k] = buf
for s in socks:
    s.close()
PY
  kill -TERM "$pid"
  wait "$pid" || true
  awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

base="$(run 0)"
total="$(run "$REQUESTS")"
echo "instructions: $total total, $base with no requests"
echo "instructions/request: $(( (total - base) / REQUESTS ))"
echo "profile: callgrind_annotate $TMP/callgrind.$REQUESTS | head -60"
