#!/usr/bin/env bash
# Instructions per request of the library client (shardgate::embed, examples/library_bench.rs),
# counted by valgrind's callgrind: keep-alive HTTP/1.1 GETs straight to one demo-upstream, the
# same stream bench/library.sh sends. Instruction counts repeat for the same binary and inputs
# whatever else the shared machine does, so this compares two builds (a change's before and
# after) where CPU-time figures cannot.
#
#   bench/library_callgrind.sh                         # 20000 requests, 16 at a time
#   REQUESTS=5000 bench/library_callgrind.sh
#   CLIENT_BIN=/tmp/old/library_bench bench/library_callgrind.sh   # another build (the before)
#   NO_BUILD=1 bench/library_callgrind.sh
#
# valgrind does not follow io_uring's shared rings, so the client runs on monoio's epoll driver
# (MONOIO_FORCE_LEGACY_DRIVER=1): the count is the client's user-space work per request (the
# library and the bench loop around it: building the request, timing it), not the kernel's.
# Start-up and warm-up are excluded by subtracting a run of BASE requests from a run of
# BASE + REQUESTS (both after the same warm-up). Also prints the syscalls per request of the
# same difference (strace -c -f, epoll driver, not under valgrind).
# Prints `instructions/request: N` and leaves callgrind.out.* in the temp dir for
# callgrind_annotate (the command is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH_NAME=library-callgrind
# shellcheck source=bench/lib.sh
source bench/lib.sh

REQUESTS=${REQUESTS:-20000}
BASE=${BASE:-2000}
CONCURRENCY=${CONCURRENCY:-16}
WARMUP=${WARMUP:-500}
need_tools valgrind:valgrind python3:python3
if [[ ${NO_BUILD:-0} != 1 ]]; then
    cargo build --release -q --bin demo-upstream --example library_bench
fi
BIN=$(target_dir)/release
CLIENT=${CLIENT_BIN:-$BIN/examples/library_bench}
[[ -x $CLIENT ]] || die "$CLIENT not found"

start upstream 0-1 "$BIN/demo-upstream" --listen "$HOST:0" --threads 1
UP_PID=$LAST_PID
deadline=$((SECONDS + 20))
until UP_PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$TMP/upstream.out") && [[ -n $UP_PORT ]]; do
    kill -0 "$UP_PID" 2>/dev/null || die "upstream exited during start-up"
    ((SECONDS < deadline)) || die "upstream did not start within 20s"
    sleep 0.05
done

# run N: the client under callgrind sending WARMUP then N requests; prints its total Ir.
run() {
    local n=$1 out=$TMP/callgrind.out.$1
    MONOIO_FORCE_LEGACY_DRIVER=1 valgrind --tool=callgrind --callgrind-out-file="$out" \
        --separate-threads=no "$CLIENT" --target "$HOST:$UP_PORT" --requests "$n" \
        --concurrency "$CONCURRENCY" --warmup "$WARMUP" >"$TMP/client.$n.out" 2>"$TMP/client.$n.err" ||
        die "client failed: $(tail -5 "$TMP/client.$n.err")"
    awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

# syscalls N: syscalls the client makes sending WARMUP then N requests (epoll driver).
syscalls() {
    local n=$1 out=$TMP/strace.$1
    MONOIO_FORCE_LEGACY_DRIVER=1 strace -c -f -o "$out" "$CLIENT" --target "$HOST:$UP_PORT" \
        --requests "$n" --concurrency "$CONCURRENCY" --warmup "$WARMUP" >/dev/null
    awk '$NF == "total" {print $(NF-2)}' "$out"
}

base=$(run "$BASE")
total=$(run $((BASE + REQUESTS)))
echo "instructions: $total for $((BASE + REQUESTS)) requests, $base for $BASE"
echo "instructions/request: $(((total - base) / REQUESTS))"
if command -v strace >/dev/null; then
    s0=$(syscalls "$BASE")
    s1=$(syscalls $((BASE + REQUESTS)))
    echo "syscalls/request (epoll driver): $(python3 -c "print(f'{($s1 - $s0) / $REQUESTS:.2f}')")"
    echo "syscalls by name: sort -k4 -n -r $TMP/strace.$((BASE + REQUESTS)) | head"
fi
echo "profile: callgrind_annotate $TMP/callgrind.out.$((BASE + REQUESTS)) | head -60"
KEEP_TMP=1
