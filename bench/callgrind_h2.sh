#!/usr/bin/env bash
# Instructions per HTTP/2 request of shardgate's downstream HTTP/2 path (h2c, or TLS=1 for ALPN h2
# over TLS) to an HTTP/1.1 upstream, counted by valgrind's callgrind: the same binary and inputs
# give the same count whatever else the machine is doing, so this compares two builds where
# wall-clock figures on a shared 2-core box cannot (bench/callgrind.sh is the HTTP/1.1 twin).
#
#   bench/callgrind_h2.sh                  # 10000 GETs, h2load -c 4 -m 8, 1 shard
#   TLS=1 bench/callgrind_h2.sh            # over TLS (one self-signed P-256 certificate)
#   SHARDGATE_BIN=/tmp/old/shardgate bench/callgrind_h2.sh   # another build (a change's before)
#   GRPC=1 bench/callgrind_h2.sh           # gRPC unary (one 4-byte message) to an h2c origin (grpc-upstream)
#
# As in bench/callgrind.sh the shard runs on the epoll driver (valgrind does not follow io_uring's
# rings): the count is shardgate's user-space work per request; kernel work is not counted. Start-
# up, handshakes and connection set-up cancel out: two runs with the same connections, REQUESTS/5
# and REQUESTS requests, and the difference is divided by the difference in requests.
#
# Prints `instructions/request: N` and leaves callgrind.out in the temp dir for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS="${REQUESTS:-10000}"
CLIENTS="${CLIENTS:-4}"
STREAMS="${STREAMS:-8}"
TLS="${TLS:-0}"
BIN="${SHARDGATE_BIN:-target/release/shardgate}"
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null; }
[ "${NO_BUILD:-0}" = 1 ] || cargo build --release --bins -q
TMP="$(mktemp -d /tmp/shardgate-callgrind-h2.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP_PORT="$(free_port)"
GRPC="${GRPC:-0}"
SG_UP=() H2LOAD_ARGS=() URL_PATH=/
if [ "$GRPC" = 1 ]; then
  # gRPC unary through an h2c origin (bench/grpc.sh's shape): grpc-upstream, an h2c cluster, and
  # h2load sending one 5-byte-framed message per call.
  target/release/grpc-upstream --listen "127.0.0.1:$UP_PORT" --threads 1 >/dev/null 2>&1 &
  printf '\x00\x00\x00\x00\x04ping' >"$TMP/request.bin"
  SG_UP=(--upstream-protocol h2c)
  H2LOAD_ARGS=(-d "$TMP/request.bin" -H 'content-type: application/grpc' -H 'te: trailers')
  URL_PATH=/bench.Svc/Unary
else
  target/release/demo-upstream --listen "127.0.0.1:$UP_PORT" >/dev/null 2>&1 &
fi
PIDS+=($!)
SCHEME=http SG_LISTEN=(--listen) SG_TLS=(--h2c)
if [ "$TLS" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
  SCHEME=https SG_LISTEN=(--listen-tls) SG_TLS=(--tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem")
fi

# One run under callgrind: start, wait for `ready:`, h2load $1 requests, SIGTERM, total Ir.
run() {
  local n="$1" out="$TMP/callgrind.$1" port
  port="$(free_port)"
  MONOIO_FORCE_LEGACY_DRIVER=1 valgrind --tool=callgrind --callgrind-out-file="$out" --separate-threads=no \
    "$BIN" "${SG_LISTEN[@]}" "127.0.0.1:$port" "${SG_TLS[@]}" --upstream "127.0.0.1:$UP_PORT" "${SG_UP[@]}" \
    --shards 1 --no-pin --admin off --h2-max-requests 0 >"$TMP/stdout.$n" 2>"$TMP/stderr.$n" &
  local pid=$!
  for _ in $(seq 1 600); do grep -q '^ready:' "$TMP/stdout.$n" 2>/dev/null && break; sleep 0.1; done
  grep -q '^ready:' "$TMP/stdout.$n" || { cat "$TMP/stderr.$n" >&2; exit 1; }
  local res
  res="$(h2load -n "$n" -c "$CLIENTS" -m "$STREAMS" "${H2LOAD_ARGS[@]}" "$SCHEME://127.0.0.1:$port$URL_PATH" 2>&1)"
  echo "$res" | grep -q "status codes: $n 2xx" || { echo "h2load: $res" >&2; exit 1; }
  kill -TERM "$pid"
  wait "$pid" || true
  awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

small=$((REQUESTS / 5))
base="$(run "$small")"
total="$(run "$REQUESTS")"
echo "instructions: $total with $REQUESTS requests, $base with $small"
echo "instructions/request: $(( (total - base) / (REQUESTS - small) ))"
echo "profile: callgrind_annotate $TMP/callgrind.$REQUESTS | head -60"
