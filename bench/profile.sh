#!/usr/bin/env bash
# Where shardgate's CPU goes: `perf record -e cpu-clock -g` on shardgate (1 shard, CPU 0) in front
# of the benchmark's upstream nginx (CPU 1) while wrk (CPU 1) runs one scenario of bench/run.sh,
# then: the kernel/user split of shardgate's samples, the shares per binary (DSO), the top
# user-space symbols (shardgate and libc), and the top kernel symbols.
#
# Usage (as root, from anywhere in the repository):
#   bench/profile.sh [SCENARIO]       keepalive (default), close, 64k, post1k, noka
# Environment: DURATION=10 (seconds recorded)  CONNECTIONS=64  FREQ=4999 (samples/s)  TOP=25
#   SHARDGATE_ARGS=""  SHARDGATE=$CARGO_TARGET_DIR/release/shardgate  NO_BUILD=1
#   OUT=DIR (keep perf.data and the full reports there; default: thrown away with the temp dir)
# Takes DURATION + about 6 s.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCH=$ROOT/bench
BENCH_NAME=profile # lib.sh names its temp dir and messages after it
SCENARIO=${1:-keepalive}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
FREQ=${FREQ:-4999}
TOP=${TOP:-25}
SHARDGATE_ARGS=${SHARDGATE_ARGS:-}
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
SHARDGATE=${SHARDGATE:-$(target_dir)/release/shardgate}

[[ $DURATION =~ ^[1-9][0-9]*$ && $DURATION -le 120 ]] || die "DURATION must be 1..120 seconds"
[[ $EUID == 0 ]] || die "run as root (perf on another process; packages may need installing)"
need_tools nginx:nginx wrk:wrk taskset:util-linux perf:linux-perf

if [[ ${NO_BUILD:-0} != 1 ]]; then
    log "cargo build --release"
    cargo build --release --bin shardgate
fi
[[ -x $SHARDGATE ]] || die "$SHARDGATE not found"

up_port=$UPSTREAM_PORT
wrk_args=(-t1 -c"$CONNECTIONS")
path=/
case $SCENARIO in
    keepalive) ;;
    close) wrk_args+=(-H "Connection: close") ;;
    64k) path=/64k ;;
    post1k) wrk_args+=(-s "$BENCH/post1k.lua") ;;
    noka) up_port=$UPSTREAM_NOKA_PORT ;;
    *) die "unknown scenario '$SCENARIO' (keepalive close 64k post1k noka)" ;;
esac
for port in "$UPSTREAM_PORT" "$UPSTREAM_NOKA_PORT" "$SHARDGATE_PORT"; do
    if listening "$port"; then die "port $port on $HOST is already in use"; fi
done

echo "# shardgate profile: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), scenario $SCENARIO"
describe_machine
echo "# $(perf --version); shardgate: $SHARDGATE ${SHARDGATE_ARGS:+$SHARDGATE_ARGS }(tree at $(revision))"

start_upstream 1 1
# shellcheck disable=SC2086  # SHARDGATE_ARGS is split into flags on purpose
start shardgate 0 "$SHARDGATE" --admin off --listen "$HOST:$SHARDGATE_PORT" --upstream "$HOST:$up_port" \
    --shards 1 --cpus 0 $SHARDGATE_ARGS
SG=$LAST_PID
wait_ready "$SG" "$SHARDGATE_PORT" "^ready:" shardgate

url="http://$HOST:$SHARDGATE_PORT$path"
taskset -c 1 wrk "${wrk_args[@]}" -d2s "$url" >/dev/null 2>&1 || true # warm-up
log "wrk ${wrk_args[*]} -d$((DURATION + 2))s $url, perf record for ${DURATION}s"
taskset -c 1 wrk "${wrk_args[@]}" -d$((DURATION + 2))s --latency "$url" >"$TMP/wrk.txt" 2>&1 &
WRK=$!
PIDS+=("$WRK")
sleep 1
perf record -q -F "$FREQ" -e cpu-clock -g -p "$SG" -o "$TMP/perf.data" -- sleep "$DURATION" \
    >"$TMP/perf-record.log" 2>&1 || { cat "$TMP/perf-record.log" >&2; die "perf record failed"; }
wait "$WRK" || true
grep -E 'Requests/sec|requests in|Socket errors|Non-2xx' "$TMP/wrk.txt" | sed 's/^/    wrk: /'

# The reports end in `head`: perf may die of SIGPIPE, which is no failure here.
set +o pipefail
report() { perf report -i "$TMP/perf.data" --stdio -g none "$@" 2>/dev/null | grep -E '^ +[0-9]'; }
echo
echo "## shardgate's samples by binary (self time; [kernel.kallsyms] = kernel, the rest user space)"
report --no-children --sort dso --percent-limit 0.1 | awk '
    { pct = $1; sub(/%/, "", pct); if ($2 ~ /^\[kernel/) k += pct; else u += pct
      printf "  %7s  %s\n", $1, $2 }
    END { printf "  => kernel %.1f %%, user space %.1f %%\n", k, u }'
echo
echo "## top user-space symbols (self time, % of all of shardgate's samples)"
report --no-children --sort dso,sym --percent-limit 0.05 \
    --dsos "$(basename "$SHARDGATE"),libc.so.6,libgcc_s.so.1,ld-linux-x86-64.so.2,[vdso]" |
    head -n "$TOP" | sed 's/^ */  /'
echo
echo "## top kernel symbols (self time)"
report --no-children --sort sym --dsos '[kernel.kallsyms]' | head -n "$TOP" | sed 's/^ */  /'
echo
echo "## kernel time by entry point and io_uring operation (self + children: what each costs)"
report --children --sort sym --percent-limit 0.3 | awk '$1 ~ /%$/ && $2 ~ /%$/' | grep -E \
    ' (__x64_sys_[a-z_0-9]+|io_(send|recv|read|write|accept|connect|close|timeout|poll_add|async_cancel|splice|sendmsg|recvmsg|link_timeout)[a-z_]*|io_submit_sqes|io_cqring_wait|tcp_v4_rcv|net_rx_action|__napi_poll|try_to_wake_up|schedule|__schedule|asm_sysvec_apic_timer_interrupt|irqentry_exit_to_user_mode)$' |
    head -n "$TOP" | sed 's/^ */  /'
echo "  (columns: children = with what it calls, self; a few entry points overlap: send -> tcp -> softirq)"
if [[ -n ${OUT:-} ]]; then
    mkdir -p "$OUT"
    cp "$TMP/perf.data" "$OUT/perf.data"
    perf report -i "$OUT/perf.data" --no-children --stdio >"$OUT/report.txt" 2>/dev/null || true
    echo
    echo "perf.data and report.txt kept in $OUT"
fi
