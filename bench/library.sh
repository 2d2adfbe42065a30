#!/usr/bin/env bash
# What the proxy hop costs: the same request stream sent through the library
# (examples/library_bench.rs: shardgate::embed, straight to the upstream) and through a shardgate
# proxy in front of the same upstream (the same library client, now pointed at the proxy), in one
# run, interleaved over ROUNDS. The client (one thread) and the proxy (one shard) share
# CLIENT_CPU, as a sidecar would; the upstream (demo-upstream, one thread) runs on UPSTREAM_CPU.
# Prints per round: p50/p99 latency, requests/s, and CPU time per request of the client
# (getrusage in the client), of the proxy (utime+stime from /proc/PID/stat before/after) and
# their total; then the medians, and what the hop costs (proxy - library).
#
# Usage (from anywhere in the repository):
#   bench/library.sh
# Environment (all optional):
#   REQUESTS=100000  CONCURRENCY=16  WARMUP=5000  ROUNDS=3  CLIENT_CPU=0  UPSTREAM_CPU=1
#   NO_BUILD=1 (skip cargo build)  KEEP_TMP=1 (keep the temp dir)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
BENCH_NAME=library
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"

REQUESTS=${REQUESTS:-100000}
CONCURRENCY=${CONCURRENCY:-16}
WARMUP=${WARMUP:-5000}
ROUNDS=${ROUNDS:-3}
CLIENT_CPU=${CLIENT_CPU:-0}
UPSTREAM_CPU=${UPSTREAM_CPU:-1}

need_tools taskset:util-linux python3:python3
cd "$ROOT"
if [[ ${NO_BUILD:-0} != 1 ]]; then
    log "cargo build --release (shardgate, demo-upstream, examples/library_bench)"
    cargo build --release --bin shardgate --bin demo-upstream --example library_bench
fi
BIN=$(target_dir)/release

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The upstream binds port 0 and says which port it got.
start upstream "$UPSTREAM_CPU" "$BIN/demo-upstream" --listen "$HOST:0" --threads 1
UP_PID=$LAST_PID
deadline=$((SECONDS + 20))
until UP_PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$TMP/upstream.out") && [[ -n $UP_PORT ]]; do
    kill -0 "$UP_PID" 2>/dev/null || die "upstream exited during start-up: $(cat "$TMP/upstream.err")"
    ((SECONDS < deadline)) || die "upstream did not start within 20s"
    sleep 0.05
done
wait_ready "$UP_PID" "$UP_PORT" "listening on" upstream

PX_PORT=$(free_port)
start proxy "$CLIENT_CPU" "$BIN/shardgate" --listen "$HOST:$PX_PORT" --upstream "$HOST:$UP_PORT" \
    --shards 1 --admin off --upgrade-socket off
PX_PID=$LAST_PID
wait_ready "$PX_PID" "$PX_PORT" "" proxy

# run_client TARGET_PORT: one library_bench run; prints its result line.
run_client() {
    taskset -c "$CLIENT_CPU" "$BIN/examples/library_bench" --target "$HOST:$1" \
        --requests "$REQUESTS" --concurrency "$CONCURRENCY" --warmup "$WARMUP"
}

# field NAME LINE: the value of NAME=... in LINE.
field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

log "$(date -u '+%F %T') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
RESULTS=$TMP/results
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
    for path in library proxy; do
        port=$UP_PORT
        [[ $path == proxy ]] && port=$PX_PORT
        before=$(ticks "$PX_PID")
        up_before=$(ticks "$UP_PID")
        line=$(run_client "$port")
        after=$(ticks "$PX_PID")
        up_after=$(ticks "$UP_PID")
        total_req=$((REQUESTS + WARMUP))
        proxy_us=$(python3 -c "print(f'{($after - $before) * 1e6 / $CLK_TCK / $total_req:.2f}')")
        up_us=$(python3 -c "print(f'{($up_after - $up_before) * 1e6 / $CLK_TCK / $total_req:.2f}')")
        [[ $path == library ]] && proxy_us=0.00
        client_us=$(field client_cpu_us_per_req "$line")
        echo "$round $path $(field p50_us "$line") $(field p99_us "$line") $(field rps "$line") \
$client_us $proxy_us $up_us" >>"$RESULTS"
        log "round $round $path: $line proxy_cpu_us_per_req=$proxy_us upstream_cpu_us_per_req=$up_us"
    done
done

log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$RESULTS" "$REQUESTS" "$CONCURRENCY" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print(f"\n{sys.argv[2]} keep-alive GETs per run, concurrency {sys.argv[3]}, medians of "
      f"{len(rows) // 2} rounds (client and proxy on one CPU, upstream on another)\n")
print("| path | p50 µs | p99 µs | req/s | client CPU µs/req | proxy CPU µs/req | "
      "total CPU µs/req | upstream CPU µs/req |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
med = {}
for path in ("library", "proxy"):
    r = [x for x in rows if x[1] == path]
    m = [statistics.median(float(x[i]) for x in r) for i in range(2, 8)]
    med[path] = m
    p50, p99, rps, client, proxy, up = m
    print(f"| {path} | {p50:.0f} | {p99:.0f} | {rps:.0f} | {client:.2f} | {proxy:.2f} | "
          f"{client + proxy:.2f} | {up:.2f} |")
lib, px = med["library"], med["proxy"]
print(f"\nthe hop: {px[0] - lib[0]:+.0f} µs p50, {px[1] - lib[1]:+.0f} µs p99, "
      f"{(px[3] + px[4]) - (lib[3] + lib[4]):+.2f} µs CPU per request "
      f"({(px[3] + px[4]) / (lib[3] + lib[4]):.2f}x the library's total)")
PY
