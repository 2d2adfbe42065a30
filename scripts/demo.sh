#!/usr/bin/env bash
# Demo: build shardgate, start two demo upstreams and shardgate in front of them on 127.0.0.1,
# load it with wrk for a few seconds, print requests/s and latency percentiles, then stop
# everything it started. Exits non-zero if anything fails or wrk saw errors or non-2xx answers.
#
# Usage (as root, from anywhere in the repository):   scripts/demo.sh
# Environment (all optional):
#   DURATION=5s          wrk run time
#   CONNECTIONS=64       wrk connections        WRK_THREADS=2   wrk threads
#   PROXY_PORT=8080      shardgate's port
#   UPSTREAM_PORT_1=9001 UPSTREAM_PORT_2=9002   the demo upstreams' ports
#   STARTUP_TIMEOUT=20   seconds to wait for each process to report it is listening
set -euo pipefail

DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
PROXY_PORT=${PROXY_PORT:-8080}
UPSTREAM_PORT_1=${UPSTREAM_PORT_1:-9001}
UPSTREAM_PORT_2=${UPSTREAM_PORT_2:-9002}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-20}
HOST=127.0.0.1

# Work from the repository root whatever the caller's directory.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

# Everything this script starts is recorded here and stopped on exit, whatever the exit path.
PIDS=()
WORKDIR=$(mktemp -d /tmp/shardgate-demo.XXXXXX)
# shellcheck disable=SC2317  # invoked through the trap
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    # Give them up to 10 s to exit on their own, then force it.
    local _
    for _ in $(seq 100); do
        local alive=0
        for pid in "${PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$WORKDIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Wait (bounded) until process $1 prints a line matching $3 on its stdout ($WORKDIR/$2.out);
# fail, showing its output, if it exits first or takes longer than STARTUP_TIMEOUT.
wait_for_line() {
    local pid=$1 name=$2 pattern=$3
    local deadline=$((SECONDS + STARTUP_TIMEOUT))
    until grep -q -- "$pattern" "$WORKDIR/$name.out" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$WORKDIR/$name.out" "$WORKDIR/$name.err" >&2 2>/dev/null || true
            die "$name exited before printing '$pattern'"
        fi
        if ((SECONDS >= deadline)); then
            cat "$WORKDIR/$name.out" "$WORKDIR/$name.err" >&2 2>/dev/null || true
            die "$name did not print '$pattern' within ${STARTUP_TIMEOUT}s"
        fi
        sleep 0.05
    done
}

# Fail early if something already listens on a port we need (SO_REUSEPORT could share it silently).
port_free() {
    ! (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# 1. Tools: cargo must be there; wrk comes from Debian if missing.
command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain (https://rustup.rs) first"
if ! command -v wrk >/dev/null; then
    log "installing wrk with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq wrk >/dev/null
fi

# 2. Build (release: shardgate and demo-upstream).
log "cargo build --release"
cargo build --release
BIN=target/release

for port in "$UPSTREAM_PORT_1" "$UPSTREAM_PORT_2" "$PROXY_PORT"; do
    port_free "$port" || die "port $port on $HOST is already in use"
done

# 3. Two demo upstreams, then shardgate in front of them; each is waited for by its own output.
start() { # start NAME CMD... : run CMD in the background, output in $WORKDIR/NAME.{out,err}
    local name=$1
    shift
    "$@" >"$WORKDIR/$name.out" 2>"$WORKDIR/$name.err" &
    PIDS+=("$!")
    LAST_PID=$!
}
start upstream1 "$BIN/demo-upstream" --listen "$HOST:$UPSTREAM_PORT_1"
wait_for_line "$LAST_PID" upstream1 "^listening on"
start upstream2 "$BIN/demo-upstream" --listen "$HOST:$UPSTREAM_PORT_2"
wait_for_line "$LAST_PID" upstream2 "^listening on"
log "demo upstreams listening on $HOST:$UPSTREAM_PORT_1 and $HOST:$UPSTREAM_PORT_2"

start shardgate "$BIN/shardgate" --admin 127.0.0.1:0 --listen "$HOST:$PROXY_PORT" \
    --upstream "$HOST:$UPSTREAM_PORT_1" --upstream "$HOST:$UPSTREAM_PORT_2"
PROXY_PID=$LAST_PID
wait_for_line "$PROXY_PID" shardgate "^ready:"
sed 's/^/    shardgate: /' "$WORKDIR/shardgate.out" "$WORKDIR/shardgate.err"

# 4. A first request through the proxy, when curl is there, to show what the answer looks like.
if command -v curl >/dev/null; then
    log "curl http://$HOST:$PROXY_PORT/"
    curl -sS --max-time 5 "http://$HOST:$PROXY_PORT/" | sed 's/^/    /'
fi

# 5. Load: wrk against the proxy.
log "wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency http://$HOST:$PROXY_PORT/"
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://$HOST:$PROXY_PORT/" \
    | tee "$WORKDIR/wrk.txt"

# 6. Summary: requests/s and latency percentiles from wrk's output.
rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORKDIR/wrk.txt")
pct() { awk -v p="$1%" '$1 == p {print $2}' "$WORKDIR/wrk.txt"; }
total=$(awk '/requests in/ {print $1}' "$WORKDIR/wrk.txt")
elapsed=$(awk '/requests in/ {sub(/,$/, "", $4); print $4}' "$WORKDIR/wrk.txt")
echo
echo "shardgate demo: ${rps:-?} requests/s (${total:-?} requests in ${elapsed:-$DURATION}, $CONNECTIONS connections)"
echo "latency: p50 $(pct 50)  p90 $(pct 90)  p99 $(pct 99)"

# 7. Stop shardgate first (graceful drain on SIGTERM) and check that it drained cleanly.
#    Bounded: its default drain deadline is 30 s, so give it 40 s before calling it hung.
kill -TERM "$PROXY_PID"
drain_status=0
deadline=$((SECONDS + 40))
while kill -0 "$PROXY_PID" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.05
done
if kill -0 "$PROXY_PID" 2>/dev/null; then
    drain_status="hung (still running 40s after SIGTERM)"
else
    wait "$PROXY_PID" || drain_status=$?
fi
tail -n 2 "$WORKDIR/shardgate.err" | sed 's/^/    shardgate: /'

# 8. Verdict: wrk errors, non-2xx answers or a failed drain make the demo fail.
failed=0
if grep -q '^  Socket errors:' "$WORKDIR/wrk.txt"; then
    echo "FAIL: wrk reported socket errors: $(grep '^  Socket errors:' "$WORKDIR/wrk.txt")" >&2
    failed=1
fi
if grep -q '^  Non-2xx or 3xx responses:' "$WORKDIR/wrk.txt"; then
    echo "FAIL: wrk reported $(grep '^  Non-2xx or 3xx responses:' "$WORKDIR/wrk.txt" | sed 's/^ *//')" >&2
    failed=1
fi
if [[ -z $rps || ${total:-0} == 0 ]]; then
    echo "FAIL: wrk served no requests" >&2
    failed=1
fi
if [[ $drain_status != 0 ]]; then
    echo "FAIL: shardgate after SIGTERM: exit status $drain_status" >&2
    failed=1
fi
if [[ $failed == 0 ]]; then
    echo "demo: ok"
fi
exit "$failed"
