#!/usr/bin/env bash
# Side-by-side benchmark: shardgate, nginx and HAProxy as reverse proxies to the same upstream
# (nginx answering "ok" and a 64 KiB file, with keep-alive, and a second server of it that closes
# after every response), each proxy with 1 worker/thread/shard pinned to the same CPU, wrk and the
# upstream pinned to the other (SHARDS=2: 2 workers/threads/shards, one per CPU, everything
# sharing both CPUs). Also the direct path wrk -> upstream as the ceiling. Prints, per scenario,
# the medians over interleaved rounds of: requests/s, p50 and p99 latency, CPU time per request of
# the proxy (utime+stime from /proc/PID/stat, before/after each run) and of the upstream, each with
# its ratio to nginx, and the proxy's CPU against the floor (twice the upstream's own CPU per
# request, measured on the direct path). TLS scenarios (tls-keepalive, tls-close, tls-64k) add an
# HTTPS listener to every proxy (same certificate, made with openssl) and run wrk over https; the
# direct path stays plaintext and is not measured there. See bench/README.md.
#
# Usage (as root, from anywhere in the repository):
#   bench/run.sh [SCENARIO...]        SCENARIO: keepalive (default) close 64k post1k noka all,
#                                     or a body size of its own: 12k 20k 32k 128k 1024k,
#                                     or over TLS: tls-keepalive tls-close tls-64k (tls: the three)
# Environment (all optional):
#   SCENARIOS="keepalive close"  same as the arguments       TARGETS="direct nginx haproxy shardgate"
#   ROUNDS=3  DURATION=10s  CONNECTIONS=64  WRK_THREADS=1 (SHARDS)  WARMUP=1s
#   SHARDS=1: workers/threads/shards per proxy: 1 (proxies on PROXY_CPU, upstream and wrk on
#     LOAD_CPU) or 2 (both on CPUs 0,1, upstream with 2 workers, wrk -t2); "1 2" runs both, one
#     after the other, and prints how each target's req/s scales
#   PROXY_CPU=0  LOAD_CPU=1 (upstream and wrk)  UPSTREAM_WORKERS=1 (SHARDS)
#   UPSTREAM_PORT=9100  UPSTREAM_NOKA_PORT=9101  SHARDGATE_PORT=8101  NGINX_PORT=8102
#   HAPROXY_PORT=8103  NOKA_OFFSET=100 (the proxies' ports for `noka` are these + 100)
#   TLS_OFFSET=300 (their HTTPS ports are these + 300)  TLS_KEY_TYPE=ecdsa (P-256) or rsa (2048)
#   SHARDGATE=$CARGO_TARGET_DIR/release/shardgate  SHARDGATE_ARGS="--buffer-size 65536" (extra flags)
#   SHARDGATE_VARIANTS="b64k=--buffer-size 65536;u256=--uring-entries 256": more shardgate
#     targets (shardgate-b64k, ...), each its own process with those extra flags, measured in the
#     same interleaved rounds (ports SHARDGATE_PORT+11, +12, ...); flags that start with
#     `bin:PATH` run another shardgate binary (e.g. the build before a change:
#     SHARDGATE_VARIANTS="before=bin:/tmp/old/shardgate"), so before and after share one run
#   NO_BUILD=1 (skip cargo build)  KEEP_TMP=1 (keep the temp dir)
#   OTHER_MAX=15  RETRIES=2  QUIET_TIMEOUT=60: before each run wait up to QUIET_TIMEOUT s for other
#     work on the machine to use at most OTHER_MAX % of a CPU; a run during which it used more is
#     measured again, at most RETRIES times (QUIET_TIMEOUT=0 RETRIES=0: never wait, never repeat)
set -euo pipefail

# ---- settings ---------------------------------------------------------------------------------
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCH=$ROOT/bench
BENCH_NAME=bench # lib.sh names its temp dir and messages after it

SHARDS=${SHARDS:-1}
# SHARDS="1 2": one full run per value (the same arguments), then how req/s scales.
if [[ $SHARDS == *" "* ]]; then
    SCALE_DIR=$(mktemp -d /tmp/shardgate-bench-scale.XXXXXX)
    child=
    # shellcheck disable=SC2317  # invoked through the trap
    stop_child() { [[ -n $child ]] && kill -TERM "$child" 2>/dev/null; wait; rm -rf "$SCALE_DIR"; exit 143; }
    trap stop_child INT TERM
    status=0
    first=1
    for n in $SHARDS; do
        ((first)) || echo
        first=0
        SHARDS=$n SUMMARY_OUT=$SCALE_DIR/$n.tsv "${BASH_SOURCE[0]}" "$@" &
        child=$!
        wait "$child" || status=$?
        child=
        NO_BUILD=1 # build once
        export NO_BUILD
    done
    echo
    echo "Scaling: median req/s per shard count, and its ratio to the first count ($SHARDS)"
    for n in $SHARDS; do
        [[ -s $SCALE_DIR/$n.tsv ]] && awk -v n="$n" '{print $0 "\t" n}' "$SCALE_DIR/$n.tsv"
    done >"$SCALE_DIR/all.tsv"
    awk -F'\t' -v counts="$SHARDS" '
        { k = $1 SUBSEP $2; if (!(k in seen)) { seen[k] = 1; keys[++nk] = k } rps[$NF SUBSEP k] = $3 }
        END {
            nc = split(counts, c, " ")
            printf "%-10s %-18s", "scenario", "target"
            for (i = 1; i <= nc; i++) printf " %10s %6s", c[i] " shards", "x"
            printf "\n"
            for (j = 1; j <= nk; j++) {
                split(keys[j], st, SUBSEP)
                printf "%-10s %-18s", st[1], st[2]
                base = rps[c[1] SUBSEP keys[j]]
                for (i = 1; i <= nc; i++) {
                    v = rps[c[i] SUBSEP keys[j]]
                    printf " %10s %6s", (v == "" ? "-" : sprintf("%.0f", v)), (v == "" || base <= 0 ? "-" : sprintf("%.2f", v / base))
                }
                printf "\n"
            }
        }' "$SCALE_DIR/all.tsv"
    rm -rf "$SCALE_DIR"
    exit "$status"
fi

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
WARMUP=${WARMUP:-1s}
[[ $SHARDS =~ ^[1-9][0-9]*$ ]] || { echo "bench: error: SHARDS must be a positive integer (or a list like \"1 2\")" >&2; exit 1; }
if ((SHARDS == 1)); then
    PROXY_CPU=${PROXY_CPU:-0}
    LOAD_CPU=${LOAD_CPU:-1}
else
    # Every process on every one of the first SHARDS CPUs: wrk and the upstream share them.
    ALL=$(seq -s, 0 $((SHARDS - 1)))
    PROXY_CPU=${PROXY_CPU:-$ALL}
    LOAD_CPU=${LOAD_CPU:-$ALL}
fi
WRK_THREADS=${WRK_THREADS:-$SHARDS}
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-$SHARDS}
SHARDGATE_ARGS=${SHARDGATE_ARGS:-}
SHARDGATE_VARIANTS=${SHARDGATE_VARIANTS:-}
TARGETS=${TARGETS:-direct nginx haproxy shardgate}
OTHER_MAX=${OTHER_MAX:-15}
RETRIES=${RETRIES:-2}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-60}
ALL_SCENARIOS="keepalive close 64k post1k noka"
# Keep-alive with other body sizes (not in `all`): where splice starts to pay (bench/README.md).
SIZE_SCENARIOS="12k 20k 32k 128k 1024k"
# Over TLS (not in `all`; `tls` = the three): wrk -> the proxies' HTTPS listeners.
TLS_SCENARIOS="tls-keepalive tls-close tls-64k"
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
SHARDGATE=${SHARDGATE:-$(target_dir)/release/shardgate}
((SHARDS <= $(nproc))) || die "SHARDS=$SHARDS but this machine has $(nproc) CPUs"

# Scenarios: arguments, else $SCENARIOS, else keepalive; "all" means every one.
if (($# > 0)); then SCENARIO_LIST="$*"; else SCENARIO_LIST=${SCENARIOS:-keepalive}; fi
expanded=
for s in $SCENARIO_LIST; do
    case $s in
        all) expanded+=" $ALL_SCENARIOS" ;;
        tls) expanded+=" $TLS_SCENARIOS" ;;
        *) expanded+=" $s" ;;
    esac
done
SCENARIO_LIST=${expanded# }
for s in $SCENARIO_LIST; do
    [[ " $ALL_SCENARIOS $SIZE_SCENARIOS $TLS_SCENARIOS " == *" $s "* ]] ||
        die "unknown scenario '$s' (known: $ALL_SCENARIOS $SIZE_SCENARIOS $TLS_SCENARIOS all tls)"
done
is_tls() { [[ $1 == tls-* ]]; }
TLS=0
for s in $SCENARIO_LIST; do is_tls "$s" && TLS=1; done
for t in $TARGETS; do
    [[ " direct nginx haproxy shardgate " == *" $t "* ]] || die "unknown target '$t'"
done
# Variants: "name=flags;name=flags" -> targets shardgate-name with their own flags and port.
declare -A VARIANT_ARGS=()
declare -A VARIANT_BIN=() # target -> its binary when not $SHARDGATE
declare -A PORT=([direct]=$UPSTREAM_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT [shardgate]=$SHARDGATE_PORT)
declare -A NOKA_PORT=([direct]=$UPSTREAM_NOKA_PORT [nginx]=$NGINX_NOKA_PORT [haproxy]=$HAPROXY_NOKA_PORT [shardgate]=$((SHARDGATE_PORT + NOKA_OFFSET)))
declare -A TLS_PORT=([nginx]=$NGINX_TLS_PORT [haproxy]=$HAPROXY_TLS_PORT [shardgate]=$SHARDGATE_TLS_PORT)
VARIANT_ARGS[shardgate]=$SHARDGATE_ARGS
if [[ -n $SHARDGATE_VARIANTS ]]; then
    i=0
    IFS=';' read -r -a variants <<<"$SHARDGATE_VARIANTS"
    for v in "${variants[@]}"; do
        [[ -n ${v// /} ]] || continue
        name=${v%%=*}
        [[ $v == *=* && $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "SHARDGATE_VARIANTS: '$v' is not name=flags"
        i=$((i + 1))
        t=shardgate-$name
        flags=${v#*=}
        if [[ $flags =~ ^[[:space:]]*bin:([^[:space:]]+)(.*)$ ]]; then
            VARIANT_BIN[$t]=${BASH_REMATCH[1]}
            flags=${BASH_REMATCH[2]}
            [[ -x ${VARIANT_BIN[$t]} ]] || die "SHARDGATE_VARIANTS: ${VARIANT_BIN[$t]} is not an executable"
        fi
        VARIANT_ARGS[$t]="$SHARDGATE_ARGS $flags"
        PORT[$t]=$((SHARDGATE_PORT + 10 + i))
        NOKA_PORT[$t]=$((SHARDGATE_PORT + 10 + i + NOKA_OFFSET))
        TLS_PORT[$t]=$((SHARDGATE_PORT + 10 + i + TLS_OFFSET))
        TARGETS="$TARGETS $t"
    done
fi
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
for v in OTHER_MAX RETRIES QUIET_TIMEOUT CONNECTIONS WRK_THREADS UPSTREAM_WORKERS TLS_OFFSET; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer"
done
is_shardgate() { [[ $1 == shardgate || $1 == shardgate-* ]]; }
uses_shardgate() { local t; for t in $TARGETS; do is_shardgate "$t" && return 0; done; return 1; }
NOKA=0
[[ " $SCENARIO_LIST " == *" noka "* ]] && NOKA=1

# ---- tools: install what is missing from Debian -----------------------------------------------
[[ $EUID == 0 ]] || die "run as root (packages may need installing; nginx/haproxy run as root here)"
need_tools nginx:nginx haproxy:haproxy wrk:wrk taskset:util-linux curl:curl
((TLS)) && need_tools openssl:openssl cc:gcc

# ---- build shardgate (into CARGO_TARGET_DIR, else target/) ------------------------------------
if uses_shardgate && [[ ${NO_BUILD:-0} != 1 ]]; then
    command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain first"
    log "cargo build --release"
    cargo build --release
fi

# Machine-wide busy time (all CPUs), in clock ticks, from /proc/stat.
machine_ticks() {
    local _ user nice system irq softirq steal
    read -r _ user nice system _ _ irq softirq steal _ </proc/stat
    echo $((user + nice + system + irq + softirq + steal))
}

# CPU time, in clock ticks, of this script's finished children (wrk among them).
children_ticks() {
    local stat rest
    local -a f
    stat=$(</proc/$$/stat)
    rest=${stat##*) }
    read -r -a f <<<"$rest"
    echo $((f[13] + f[14]))
}

# ---- start the upstream and the proxies -------------------------------------------------------
# Open-file limit as high as allowed (the configs need about 2 x 8192 at most).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ports=("$UPSTREAM_PORT" "$UPSTREAM_NOKA_PORT")
for t in $TARGETS; do
    [[ $t == direct ]] && continue
    ports+=("${PORT[$t]}" "${NOKA_PORT[$t]}")
    ((TLS)) && ports+=("${TLS_PORT[$t]}")
done
for port in "${ports[@]}"; do
    if listening "$port"; then die "port $port on $HOST is already in use"; fi
done

declare -A DEAD=()      # targets that died: no more runs
declare -A CPU_PIDS     # target -> pids whose CPU time is the target's
declare -A NOKA_PIDS=() # target -> the same for the `noka` scenario (shardgate: its second process)
declare -A MAIN_PID     # target -> the pids that must stay alive ("pid" or "pid pid")

# TLS: the certificate and the proxies' TLS configs (rendered into $TMP/tls), and wrk's shim that
# keeps it from resuming sessions (bench/noresume.c): tls-close measures full handshakes.
if ((TLS)); then
    make_tls "${TLS_KEY_TYPE:-ecdsa}"
    cc -O2 -shared -fPIC -o "$TMP/tls/noresume.so" "$BENCH/noresume.c" -ldl ||
        die "cannot build bench/noresume.c"
fi

# Upstream: nginx, UPSTREAM_WORKERS workers, on the load CPU(s), with a 64 KiB static file.
start_upstream "$LOAD_CPU" "$UPSTREAM_WORKERS"
CPU_PIDS[direct]=$UPSTREAM_PIDS
MAIN_PID[direct]=$UPSTREAM_PID

# start_shardgate TARGET NAME PORT UPSTREAM_PORT: one shardgate process; pid in LAST_PID.
start_shardgate() {
    local bin=${VARIANT_BIN[$1]:-$SHARDGATE} tls=()
    [[ -x $bin ]] || die "$bin not found (build it, or set SHARDGATE=)"
    # The HTTPS listener (tls-* scenarios) in the main process, next to the plaintext one.
    if ((TLS)) && [[ $2 != *-noka ]]; then
        tls=(--listen-tls "$HOST:${TLS_PORT[$1]}" --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY")
    fi
    # shellcheck disable=SC2086  # the flags are split on purpose
    start "$2" "$PROXY_CPU" "$bin" --admin off --listen "$HOST:$3" --upstream "$HOST:$4" \
        --shards "$SHARDS" --cpus "$PROXY_CPU" "${tls[@]}" ${VARIANT_ARGS[$1]}
    wait_ready "$LAST_PID" "$3" "^ready:" "$2"
}

for target in $TARGETS; do
    case $target in
        nginx)
            render "$BENCH/nginx.conf.tmpl" "$TMP/nginx.conf" "$SHARDS"
            start nginx "$PROXY_CPU" nginx -e "$TMP/nginx.error.log" -p "$TMP" -c "$TMP/nginx.conf"
            wait_ready "$LAST_PID" "$NGINX_PORT" "" nginx
            CPU_PIDS[nginx]=$(nginx_pids "$LAST_PID" "$SHARDS")
            for pid in ${CPU_PIDS[nginx]}; do [[ $pid == "$LAST_PID" ]] || PIDS+=("$pid"); done
            MAIN_PID[nginx]=$LAST_PID
            ;;
        haproxy)
            render "$BENCH/haproxy.cfg.tmpl" "$TMP/haproxy.cfg" "$SHARDS"
            tls_cfg=()
            ((TLS)) && tls_cfg=(-f "$TMP/tls/haproxy-tls.cfg")
            start haproxy "$PROXY_CPU" haproxy -db -f "$TMP/haproxy.cfg" "${tls_cfg[@]}"
            wait_ready "$LAST_PID" "$HAPROXY_PORT" "" haproxy
            CPU_PIDS[haproxy]=$LAST_PID
            MAIN_PID[haproxy]=$LAST_PID
            ;;
        shardgate*)
            start_shardgate "$target" "$target" "${PORT[$target]}" "$UPSTREAM_PORT"
            CPU_PIDS[$target]=$LAST_PID
            MAIN_PID[$target]=$LAST_PID
            # A second process in front of the upstream without keep-alive (one upstream cluster
            # per process); idle but for the `noka` runs.
            if ((NOKA)); then
                start_shardgate "$target" "$target-noka" "${NOKA_PORT[$target]}" "$UPSTREAM_NOKA_PORT"
                NOKA_PIDS[$target]=$LAST_PID
                MAIN_PID[$target]="${MAIN_PID[$target]} $LAST_PID"
            fi
            ;;
    esac
done

# port_of TARGET SCENARIO / pids_of TARGET SCENARIO: where the scenario's load goes, whose CPU counts.
port_of() {
    if [[ $2 == noka ]]; then
        echo "${NOKA_PORT[$1]}"
    elif is_tls "$2"; then
        echo "${TLS_PORT[$1]}"
    else
        echo "${PORT[$1]}"
    fi
}
pids_of() { if [[ $2 == noka && -n ${NOKA_PIDS[$1]:-} ]]; then echo "${NOKA_PIDS[$1]}"; else echo "${CPU_PIDS[$1]}"; fi; }

# Every target must answer 200 on / and /64k (and so must its `noka` side) before anything is
# measured; the upstream without keep-alive must say `Connection: close`.
for target in $TARGETS; do
    for port in "${PORT[$target]}" $( ((NOKA)) && echo "${NOKA_PORT[$target]}"); do
        for path in / /64k; do
            line=$(status_line "$port" "$path")
            [[ $line == "HTTP/1."[01]" 200 "* ]] || die "$target: GET $path on port $port answered '$line'"
        done
    done
done
if ((NOKA)); then
    curl -sS -o /dev/null -D - "http://$HOST:$UPSTREAM_NOKA_PORT/" | grep -qi '^connection: close' ||
        die "the upstream on port $UPSTREAM_NOKA_PORT does not answer with Connection: close"
fi
# The same over HTTPS on every proxy's TLS port (the direct path has none).
if ((TLS)); then
    for target in $TARGETS; do
        [[ $target == direct ]] && continue
        for path in / /64k; do
            code=$(curl -sS -k -o /dev/null -w '%{http_code}' "https://$HOST:${TLS_PORT[$target]}$path" 2>&1) || true
            [[ $code == 200 ]] || die "$target: GET https://…:${TLS_PORT[$target]}$path answered '$code'"
        done
    done
fi

# ---- waiting for a quiet machine -------------------------------------------------------------
# Busy time of the whole machine over one second, in % of one CPU (our idle processes add ~0).
busy_pct() {
    local m0 m1
    m0=$(machine_ticks)
    sleep 1
    m1=$(machine_ticks)
    echo $(((m1 - m0) * 100 / CLK_TCK))
}

# Before each run: wait (at most QUIET_TIMEOUT s) until other work uses at most OTHER_MAX % of a CPU.
wait_quiet() {
    ((QUIET_TIMEOUT > 0)) || return 0
    local busy deadline=$((SECONDS + QUIET_TIMEOUT)) said=0
    while busy=$(busy_pct) && ((busy > OTHER_MAX)); do
        if ((SECONDS >= deadline)); then
            warn "machine still busy ($busy% of a CPU) after ${QUIET_TIMEOUT}s of waiting: measuring anyway"
            return 0
        fi
        if ((said == 0)); then
            log "waiting for the machine to be quiet (other work uses $busy% of a CPU)"
            said=1
        fi
    done
}

# ---- one measured run -------------------------------------------------------------------------
RESULTS=$TMP/results.tsv
: >"$RESULTS"
FAILED=0

# Convert a wrk duration (12.3us, 1.20ms, 2.00s, 1.00m) to microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        f = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1000000 : (u == "m") ? 60000000 : -1
        if (f < 0) { print "nan"; exit } printf "%.1f\n", n * f }'
}

# wrk arguments for scenario $1 (URL path in WRK_PATH).
wrk_args() {
    WRK_ARGS=(-t"$WRK_THREADS" -c"$CONNECTIONS" --latency)
    WRK_PATH=/
    case $1 in
        keepalive) ;;
        close) WRK_ARGS+=(-H "Connection: close") ;;
        64k | 12k | 20k | 32k | 128k | 1024k) WRK_PATH=/$1 ;;
        tls-keepalive) ;;
        # A new connection per request, each a full handshake (the shim drops wrk's session).
        tls-close) WRK_ARGS+=(-H "Connection: close") ;;
        tls-64k) WRK_PATH=/64k ;;
        post1k) WRK_ARGS+=(-s "$BENCH/post1k.lua") ;;
        noka) ;;
    esac
}

# run SCENARIO TARGET ROUND: warm up, then measure one wrk run and append a line to $RESULTS.
run() {
    local scenario=$1 target=$2 round=$3
    local url out p0 p1 u0 u1 m0 m1 c0 c1 t0 t1 other requests rps p50 p99 sockerr non2xx pids
    wrk_args "$scenario"
    local scheme=http preload=()
    if is_tls "$scenario"; then
        scheme=https
        [[ $scenario == tls-close ]] && preload=(env "LD_PRELOAD=$TMP/tls/noresume.so")
    fi
    url="$scheme://$HOST:$(port_of "$target" "$scenario")$WRK_PATH"
    pids=$(pids_of "$target" "$scenario")
    out=$TMP/wrk-$scenario-$target-$round.txt
    # Warm-up (connections, upstream pools, caches); not measured.
    taskset -c "$LOAD_CPU" "${preload[@]}" wrk "${WRK_ARGS[@]}" -d"$WARMUP" "$url" >"$out.warmup" 2>&1 || true
    # shellcheck disable=SC2086  # pid lists split on purpose
    {
        t0=$EPOCHREALTIME
        m0=$(machine_ticks)
        c0=$(children_ticks)
        p0=$(ticks $pids)
        u0=$(ticks $UPSTREAM_PIDS)
        taskset -c "$LOAD_CPU" "${preload[@]}" wrk "${WRK_ARGS[@]}" -d"$DURATION" "$url" >"$out" 2>&1 || true
        p1=$(ticks $pids)
        u1=$(ticks $UPSTREAM_PIDS)
        c1=$(children_ticks)
        m1=$(machine_ticks)
        t1=$EPOCHREALTIME
    }
    # CPU used by anything else on the machine during the run (other processes, interrupts not
    # charged to ours), as a percentage of one CPU: high values mean the figures are disturbed.
    local ours=$(((p1 - p0) + (u1 - u0) + (c1 - c0)))
    [[ $target == direct ]] && ours=$(((u1 - u0) + (c1 - c0)))
    other=$(awk -v m=$((m1 - m0)) -v o="$ours" -v t0="$t0" -v t1="$t1" -v tck="$CLK_TCK" \
        'BEGIN { x = (m - o) * 100 / tck / (t1 - t0); printf "%.0f\n", (x < 0 ? 0 : x) }')
    requests=$(awk '/ requests in / {print $1}' "$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")
    sockerr=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out")
    sockerr=${sockerr:-0}
    non2xx=${non2xx:-0}
    if [[ -z $requests || -z $rps || $requests == 0 ]]; then
        warn "$scenario/$target round $round: wrk served nothing; its output:"
        sed 's/^/    /' "$out" >&2
        requests=0 rps=0
        FAILED=1
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$target" "$round" \
        "$rps" "$p50" "$p99" "$requests" "$((p1 - p0))" "$((u1 - u0))" "$sockerr" "$non2xx" \
        "$other" >"$RESULTS.last"
    RUN_OTHER=$other
    awk -v tck="$CLK_TCK" -v s="$scenario" -v t="$target" -v r="$round" -v R="$ROUNDS" \
        -v rps="$rps" -v p50="$p50" -v p99="$p99" -v n="$requests" -v pt="$((p1 - p0))" \
        -v ut="$((u1 - u0))" -v e="$sockerr" -v x="$non2xx" -v o="$other" 'BEGIN {
        cpu = n > 0 ? pt * 1e6 / tck / n : 0; ucpu = n > 0 ? ut * 1e6 / tck / n : 0
        printf "  round %d/%d %-9s %-14s %9.0f req/s  p50 %8.3f ms  p99 %8.3f ms  cpu %6.2f us/req  upstream %6.2f us/req  other %3d%%", r, R, s, t, rps, p50 / 1000, p99 / 1000, (t == "direct" ? ucpu : cpu), ucpu, o
        if (e > 0 || x > 0) printf "  ERRORS: socket %d, non-2xx %d", e, x
        printf "\n" }'
    if ((sockerr > 0 || non2xx > 0)); then
        FAILED=1
        grep -E 'Socket errors|Non-2xx' "$out" | sed "s/^ */    $target: /" >&2
    fi
}

# Is every process of the target (and the upstream) still alive? Report and drop it if not.
check_alive() {
    local target=$1
    if ! kill -0 "$UPSTREAM_PID" 2>/dev/null; then
        tail -n 20 "$TMP/upstream.err" "$TMP/upstream.error.log" >&2 || true
        die "the upstream nginx died"
    fi
    [[ $target == direct ]] && return 0
    local pid status
    for pid in ${MAIN_PID[$target]}; do
        kill -0 "$pid" 2>/dev/null && continue
        status=0
        wait "$pid" || status=$?
        warn "$target (pid $pid) died with exit status $status during the run; last output:"
        tail -n 20 "$TMP/$target"*.out "$TMP/$target"*.err >&2 || true
        DEAD[$target]=1
        FAILED=1
    done
}

# ---- header: what, where, with what -----------------------------------------------------------
echo "# shardgate bench: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
describe_machine
if uses_shardgate; then
    if [[ ${NO_BUILD:-0} == 1 ]]; then
        echo "# shardgate: $SHARDGATE ${SHARDGATE_ARGS:+$SHARDGATE_ARGS }(NO_BUILD: not rebuilt; the tree is at $(revision))"
    else
        echo "# shardgate: $SHARDGATE ${SHARDGATE_ARGS:+$SHARDGATE_ARGS }(built from $(revision))"
    fi
    for t in $TARGETS; do
        [[ $t == shardgate-* ]] && echo "# $t: ${VARIANT_BIN[$t]:-shardgate} with${VARIANT_ARGS[$t]}"
    done
fi
echo "# scenarios: $SCENARIO_LIST; targets: $TARGETS; rounds $ROUNDS x $DURATION (warm-up $WARMUP each), $CONNECTIONS connections, wrk -t$WRK_THREADS"
echo "# quiet machine: other work <= $OTHER_MAX% of a CPU (wait up to ${QUIET_TIMEOUT}s before a run, repeat a disturbed run up to $RETRIES times)"
if ((SHARDS == 1)); then
    echo "# CPUs: proxies (1 worker/thread/shard) on $PROXY_CPU; upstream nginx ($UPSTREAM_WORKERS worker) and wrk on $LOAD_CPU"
else
    echo "# CPUs: SHARDS=$SHARDS: proxies with $SHARDS workers/threads/shards, one pinned per CPU of $PROXY_CPU;"
    echo "#       the upstream nginx ($UPSTREAM_WORKERS workers) and wrk (-t$WRK_THREADS) SHARE THE SAME CPUs ($LOAD_CPU): no core is the proxy's alone"
fi
if ((TLS)); then
    echo "# TLS: certificate $TLS_DESC (openssl, self-signed); nginx and HAProxy with OpenSSL, no session cache, no tickets;"
    echo "#      wrk over https, its sessions dropped by bench/noresume.c (tls-close: a full handshake per request)"
    for t in $TARGETS; do
        [[ $t == direct ]] || echo "#      $t on :${TLS_PORT[$t]}: openssl s_client gets $(tls_line "${TLS_PORT[$t]}")"
    done
fi
# Other work on the machine skews every figure: say so when the load average shows some.
read -r load1 load5 _ </proc/loadavg
echo "# load average before the runs: $load1 (1 min), $load5 (5 min)"
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
    warn "the machine is busy (1-min load average $load1): figures will be noisy"
fi

# ---- the runs: scenario by scenario, rounds interleaved A B C A B C ---------------------------
for scenario in $SCENARIO_LIST; do
    log "scenario $scenario"
    for round in $(seq "$ROUNDS"); do
        for target in $TARGETS; do
            [[ -z ${DEAD[$target]:-} ]] || continue
            # The direct path is plaintext: nothing to measure over TLS.
            if [[ $target == direct ]] && is_tls "$scenario"; then continue; fi
            # Measure; measure again (at most RETRIES times) when other work disturbed the run.
            attempt=0
            while :; do
                wait_quiet
                run "$scenario" "$target" "$round"
                check_alive "$target"
                if ((RUN_OTHER <= OTHER_MAX || attempt >= RETRIES)) || [[ -n ${DEAD[$target]:-} ]]; then
                    cat "$RESULTS.last" >>"$RESULTS"
                    break
                fi
                attempt=$((attempt + 1))
                log "disturbed: other work used $RUN_OTHER% of a CPU during that run; measuring it again"
            done
        done
    done
done

# ---- summary: medians per scenario and target, ratios to nginx --------------------------------
echo
echo "Medians over $ROUNDS rounds ($DURATION each, $CONNECTIONS connections, SHARDS=$SHARDS). cpu = proxy CPU time"
echo "per request (direct: the upstream's own); x = ratio to nginx (req/s: higher is better; latency, cpu:"
echo "lower is better); /floor = cpu / (2 x the upstream's own CPU per request, from the direct row)."
sort -t$'\t' -k1,1 -k2,2 -k3,3n "$RESULTS" | awk -F'\t' -v tck="$CLK_TCK" -v order="$SCENARIO_LIST" \
    -v torder="$TARGETS" -v out="${SUMMARY_OUT:-}" '
function median(list,    a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    if (n == 0) return 0
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function ratio(v, base) { return (base > 0) ? sprintf("%.2f", v / base) : "-" }
{
    k = $1 SUBSEP $2
    seen[k] = 1; has[$1] = 1
    rps[k] = rps[k] " " $4; p50[k] = p50[k] " " $5; p99[k] = p99[k] " " $6
    cpu[k] = cpu[k] " " ($7 > 0 ? $8 * 1e6 / tck / $7 : 0)
    ucpu[k] = ucpu[k] " " ($7 > 0 ? $9 * 1e6 / tck / $7 : 0)
    err[k] += $10; non[k] += $11; oth[k] = oth[k] " " $12
}
END {
    ns = split(order, sc, " ")
    for (i = 1; i <= ns; i++) {
        s = sc[i]
        if (!(s in has)) continue
        printf "\n%s\n", s
        printf "%-15s %9s %6s %8s %6s %8s %6s %10s %6s %6s %11s %6s %7s\n", "target", "req/s", "x", "p50 ms", "x", "p99 ms", "x", "cpu us/req", "x", "/floor", "upstream us", "other", "errors"
        b = s SUBSEP "nginx"
        brps = (b in seen) ? median(rps[b]) : 0; bp50 = (b in seen) ? median(p50[b]) : 0
        bp99 = (b in seen) ? median(p99[b]) : 0; bcpu = (b in seen) ? median(cpu[b]) : 0
        d = s SUBSEP "direct"
        floor = (d in seen) ? 2 * median(ucpu[d]) : 0
        nt = split(torder, ts, " ")
        for (j = 1; j <= nt; j++) {
            t = ts[j]; k = s SUBSEP t
            if (!(k in seen)) continue
            r = median(rps[k]); a = median(p50[k]); z = median(p99[k]); c = median(cpu[k]); u = median(ucpu[k])
            printf "%-15s %9.0f %6s %8.3f %6s %8.3f %6s %10.2f %6s %6s %11.2f %5d%% %7s\n", t, r, ratio(r, brps), a / 1000, ratio(a, bp50), z / 1000, ratio(z, bp99), (t == "direct" ? u : c), (t == "direct" ? "-" : ratio(c, bcpu)), (t == "direct" ? "-" : ratio(c, floor)), u, median(oth[k]), (err[k] + non[k] > 0 ? err[k] "/" non[k] : "0")
            if (out != "") printf "%s\t%s\t%.0f\t%.1f\t%.1f\t%.3f\t%.3f\n", s, t, r, a, z, c, u > out
        }
        if (floor > 0) printf "floor = 2 x %.2f us = %.2f us of proxy CPU per request (the upstream'"'"'s own CPU per request, direct)\n", floor / 2, floor
    }
}'
echo
echo "other = CPU used by anything else on the machine during a run, in % of one CPU (median);"
echo "        well above a few % means other work disturbed the figures."
echo "errors = socket errors/non-2xx answers summed over the rounds (0 = none)."
if [[ " $SCENARIO_LIST " == *" tls-close "* ]]; then
    echo "tls-close: one full TLS handshake per request, so req/s = handshakes/s and cpu us/req = CPU per"
    echo "        handshake (with its one request and the accept and close)."
fi
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg) (includes the benchmark itself)"
if [[ $FAILED != 0 ]]; then
    warn "some runs had errors, non-2xx answers, or a target died (see above)"
fi
exit "$FAILED"
