#!/usr/bin/env bash
# Heap allocations per request in steady state. Builds shardgate with `--features alloc-count`
# (a counting global allocator, src/alloc_count.rs) into its own target dir, runs it (1 shard, CPU
# 0) in front of the benchmark's upstream nginx (CPU 1), warms up, then:
#   SIGUSR1 -> count A;  exactly N keep-alive requests on the warm-up's connections
#   (bench/client.py);  SIGUSR1 -> B;  the client closes them;  SIGUSR1 -> B2;  IDLE seconds
#   without traffic;  SIGUSR1 -> C;  CONNECTIONS new connections with one request each;
#   SIGUSR1 -> D;  SIGTERM (drain) -> final count at exit.
# TLS=1: the same over HTTPS: shardgate also gets a TLS listener (bench/lib.sh make_tls, ECDSA
# P-256 unless TLS_KEY_TYPE=rsa) and the client speaks TLS to it (the handshakes happen before A,
# except for the new connections of the last step, which each pay one).
# Prints (B - A) / N = allocations per request in steady state (the figure to keep at 0),
# (B2 - B) / CONNECTIONS per connection close, (C - B2) / IDLE per idle second (timers, sweeps),
# (D - C) / CONNECTIONS per new connection (accept, one request, close).
#
# Usage (as root, from anywhere in the repository):
#   bench/alloc.sh
# Environment: REQUESTS=100000  CONNECTIONS=8  WARMUP_REQUESTS=20000  IDLE=2  PATH_=/ (or /64k)
#   NOKA=1 (proxy to the upstream that closes after every response: a connect per request)
#   TLS=1 (over HTTPS)  TLS_KEY_TYPE=ecdsa|rsa
#   SHARDGATE_ARGS="" (extra flags)  NO_BUILD=1 (use the binary already built)  KEEP_TMP=1
# Takes about 10 s after the build (the first build of the feature takes 1-2 minutes).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCH=$ROOT/bench
BENCH_NAME=alloc # lib.sh names its temp dir and messages after it
REQUESTS=${REQUESTS:-100000}
CONNECTIONS=${CONNECTIONS:-8}
WARMUP_REQUESTS=${WARMUP_REQUESTS:-20000}
IDLE=${IDLE:-2}
PATH_=${PATH_:-/}
NOKA=${NOKA:-0}
TLS=${TLS:-0}
SHARDGATE_ARGS=${SHARDGATE_ARGS:-}
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"

[[ $EUID == 0 ]] || die "run as root (nginx runs as root here; packages may need installing)"
need_tools nginx:nginx haproxy:haproxy wrk:wrk taskset:util-linux python3:python3

BIN_DIR=$(target_dir)/alloc-count
SHARDGATE=$BIN_DIR/release/shardgate
if [[ ${NO_BUILD:-0} != 1 ]]; then
    log "cargo build --release --features alloc-count --target-dir $BIN_DIR"
    cargo build --release --features alloc-count --target-dir "$BIN_DIR" --bin shardgate
fi
[[ -x $SHARDGATE ]] || die "$SHARDGATE not found"

for port in "$UPSTREAM_PORT" "$UPSTREAM_NOKA_PORT" "$SHARDGATE_PORT" "$SHARDGATE_TLS_PORT"; do
    if listening "$port"; then die "port $port on $HOST is already in use"; fi
done

echo "# shardgate alloc: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
describe_machine
echo "# shardgate: $SHARDGATE --features alloc-count ${SHARDGATE_ARGS:+$SHARDGATE_ARGS }(built from $(revision))"
echo "# $WARMUP_REQUESTS warm-up requests, then $REQUESTS measured, GET $PATH_ over $CONNECTIONS keep-alive connections$([[ $NOKA == 1 ]] && echo ', upstream without keep-alive')"
# Over TLS: the certificate, a TLS listener, and the client on it.
CLIENT_PORT=$SHARDGATE_PORT
CLIENT_TLS=()
TLS_ARGS=()
if [[ $TLS == 1 ]]; then
    need_tools openssl:openssl
    make_tls "${TLS_KEY_TYPE:-ecdsa}"
    CLIENT_PORT=$SHARDGATE_TLS_PORT
    CLIENT_TLS=(--tls)
    TLS_ARGS=(--listen-tls "$HOST:$SHARDGATE_TLS_PORT" --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY")
    echo "# over TLS: certificate $TLS_DESC, the client (Python ssl) on shardgate's TLS listener"
fi

start_upstream 1 1
up_port=$UPSTREAM_PORT
[[ $NOKA == 1 ]] && up_port=$UPSTREAM_NOKA_PORT
# shellcheck disable=SC2086  # SHARDGATE_ARGS is split into flags on purpose
start shardgate 0 "$SHARDGATE" --admin off --listen "$HOST:$SHARDGATE_PORT" --upstream "$HOST:$up_port" \
    --shards 1 --cpus 0 "${TLS_ARGS[@]}" $SHARDGATE_ARGS
SG=$LAST_PID
wait_ready "$SG" "$CLIENT_PORT" "^ready:" shardgate

# count: SIGUSR1, wait (bounded) for the new "allocations: N bytes: B" line on stderr; sets
# COUNT=N and BYTES=B (not in a subshell: COUNTS must go up).
COUNTS=0
count() {
    local deadline=$((SECONDS + 5)) line
    kill -USR1 "$SG"
    COUNTS=$((COUNTS + 1))
    while (($(grep -c '^allocations:' "$TMP/shardgate.err") < COUNTS)); do
        ((SECONDS < deadline)) || die "shardgate printed no allocation count after SIGUSR1"
        sleep 0.05
    done
    line=$(grep '^allocations:' "$TMP/shardgate.err" | sed -n "${COUNTS}p")
    read -r _ COUNT _ BYTES <<<"$line"
}

# The client: warm-up and measured requests on the same keep-alive connections, so the measured
# ones open no connection; it waits between the two for a line on its standard input.
log "warm-up: $WARMUP_REQUESTS requests over $CONNECTIONS connections"
coproc CLIENT { taskset -c 1 python3 "$BENCH/client.py" requests "$CLIENT_PORT" "$REQUESTS" \
    --connections "$CONNECTIONS" --warmup "$WARMUP_REQUESTS" --path "$PATH_" --timeout 300 "${CLIENT_TLS[@]}"; }
# shellcheck disable=SC2153  # CLIENT_PID is set by coproc
CLIENT_PIDNUM=$CLIENT_PID # bash unsets CLIENT_PID when the coprocess ends
PIDS+=("$CLIENT_PIDNUM")
CLIENT_IN=${CLIENT[1]}
read_client() { # read_client WANT: the client's next line must start with WANT (bounded: 300 s)
    local line
    IFS= read -r -t 300 line <&"${CLIENT[0]}" || die "the client stopped (or took over 300 s) before '$1'"
    [[ $line == "$1"* ]] || die "the client said '$line', expected '$1'"
    echo "    client: $line"
}
read_client warm
count
a=$COUNT a_bytes=$BYTES
log "measured: $REQUESTS requests on the same connections"
echo go >&"$CLIENT_IN"
read_client "done"
count
b=$COUNT b_bytes=$BYTES
# The client closes its connections and exits.
echo close >&"$CLIENT_IN"
deadline=$((SECONDS + 10))
while kill -0 "$CLIENT_PIDNUM" 2>/dev/null; do
    ((SECONDS < deadline)) || die "the client did not exit"
    sleep 0.05
done
sleep 0.5
count
b2=$COUNT
sleep "$IDLE"
count
c=$COUNT
# Fresh connections, one request each: what a new client connection costs.
log "$CONNECTIONS new connections, one request each"
taskset -c 1 python3 "$BENCH/client.py" requests "$CLIENT_PORT" "$CONNECTIONS" \
    --connections "$CONNECTIONS" --path "$PATH_" --timeout 60 "${CLIENT_TLS[@]}" | sed 's/^/    client: /'
sleep 0.5
count
d=$COUNT
kill -TERM "$SG"
status=0
deadline=$((SECONDS + 40))
while kill -0 "$SG" 2>/dev/null; do
    ((SECONDS < deadline)) || die "shardgate did not exit within 40 s of SIGTERM"
    sleep 0.1
done
wait "$SG" || status=$?
final=$(grep '^allocations:' "$TMP/shardgate.err" | tail -n 1 | awk '{print $2}')
bytes_ab=$((b_bytes - a_bytes))

echo
echo "allocation counts: after warm-up $a, after $REQUESTS requests $b, after the client closed its $CONNECTIONS connections $b2, after ${IDLE}s idle $c, after $CONNECTIONS new connections $d, at exit $final (exit status $status)"
awk -v a="$a" -v b="$b" -v b2="$b2" -v c="$c" -v d="$d" -v n="$REQUESTS" -v idle="$IDLE" \
    -v bytes="$bytes_ab" -v conns="$CONNECTIONS" 'BEGIN {
    printf "allocations per request (steady state): %.4f  (%d allocations, %d bytes, over %d requests)\n", (b - a) / n, b - a, bytes, n
    printf "allocations per connection close:       %.1f\n", (b2 - b) / conns
    printf "allocations per idle second:            %.1f\n", (c - b2) / idle
    printf "allocations per new client connection:  %.1f  (accept, one request, close)\n", (d - c) / conns }'
[[ $status == 0 ]] || die "shardgate exited with status $status after SIGTERM"
