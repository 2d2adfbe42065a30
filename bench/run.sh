#!/usr/bin/env bash
# Side-by-side benchmark: shardgate, nginx and HAProxy as reverse proxies to the same upstream
# (nginx answering "ok" and a 64 KiB file), each proxy with 1 worker/thread/shard pinned to the
# same CPU, wrk and the upstream pinned to the other. Also the direct path wrk -> upstream as the
# ceiling. Prints, per scenario, the medians over interleaved rounds of: requests/s, p50 and p99
# latency, CPU time per request of the proxy (utime+stime from /proc/PID/stat, before/after each
# run) and of the upstream, each with its ratio to nginx. See bench/README.md.
#
# Usage (as root, from anywhere in the repository):
#   bench/run.sh [SCENARIO...]        SCENARIO: keepalive (default) close 64k post1k all
# Environment (all optional):
#   SCENARIOS="keepalive close"  same as the arguments       TARGETS="direct nginx haproxy shardgate"
#   ROUNDS=3  DURATION=10s  CONNECTIONS=64  WRK_THREADS=1  WARMUP=1s
#   PROXY_CPU=0  LOAD_CPU=1 (upstream and wrk)
#   UPSTREAM_PORT=9100  SHARDGATE_PORT=8101  NGINX_PORT=8102  HAPROXY_PORT=8103
#   SHARDGATE=target/release/shardgate  SHARDGATE_ARGS="--buffer-size 65536" (extra flags)
#   NO_BUILD=1 (skip cargo build)  KEEP_TMP=1 (keep the temp dir)
#   OTHER_MAX=15  RETRIES=2  QUIET_TIMEOUT=60: before each run wait up to QUIET_TIMEOUT s for other
#     work on the machine to use at most OTHER_MAX % of a CPU; a run during which it used more is
#     measured again, at most RETRIES times (QUIET_TIMEOUT=0 RETRIES=0: never wait, never repeat)
set -euo pipefail

# ---- settings ---------------------------------------------------------------------------------
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCH=$ROOT/bench

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-1}
WARMUP=${WARMUP:-1s}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
UPSTREAM_PORT=${UPSTREAM_PORT:-9100}
SHARDGATE_PORT=${SHARDGATE_PORT:-8101}
NGINX_PORT=${NGINX_PORT:-8102}
HAPROXY_PORT=${HAPROXY_PORT:-8103}
SHARDGATE=${SHARDGATE:-target/release/shardgate}
SHARDGATE_ARGS=${SHARDGATE_ARGS:-}
TARGETS=${TARGETS:-direct nginx haproxy shardgate}
OTHER_MAX=${OTHER_MAX:-15}
RETRIES=${RETRIES:-2}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-60}
HOST=127.0.0.1
ALL_SCENARIOS="keepalive close 64k post1k"

log() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# Scenarios: arguments, else $SCENARIOS, else keepalive; "all" means every one.
if (($# > 0)); then SCENARIO_LIST="$*"; else SCENARIO_LIST=${SCENARIOS:-keepalive}; fi
[[ " $SCENARIO_LIST " == *" all "* ]] && SCENARIO_LIST=$ALL_SCENARIOS
for s in $SCENARIO_LIST; do
    [[ " $ALL_SCENARIOS " == *" $s "* ]] || die "unknown scenario '$s' (known: $ALL_SCENARIOS all)"
done
for t in $TARGETS; do
    [[ " direct nginx haproxy shardgate " == *" $t "* ]] || die "unknown target '$t'"
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
for v in OTHER_MAX RETRIES QUIET_TIMEOUT CONNECTIONS WRK_THREADS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer"
done

# ---- tools: install what is missing from Debian -----------------------------------------------
[[ $EUID == 0 ]] || die "run as root (packages may need installing; nginx/haproxy run as root here)"
export PATH=$PATH:/usr/sbin:/sbin
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v wrk >/dev/null || missing+=(wrk)
command -v taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]} > 0)); then
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Keep the packages' init scripts from starting system-wide nginx/haproxy services: a
    # policy-rc.d that denies every start, only for the install, only if there is none already.
    policy=/usr/sbin/policy-rc.d
    made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        made_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [[ $made_policy == 1 ]]; then rm -f "$policy"; fi
fi

# ---- build shardgate (default target dir) -----------------------------------------------------
if [[ " $TARGETS " == *" shardgate "* && ${NO_BUILD:-0} != 1 ]]; then
    command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain first"
    log "cargo build --release"
    cargo build --release
fi

# ---- process bookkeeping: every process started is stopped by pid on exit ---------------------
PIDS=()
TMP=$(mktemp -d /tmp/shardgate-bench.XXXXXX)
# nginx workers run as www-data and must read the 64 KiB file: make the temp dir traversable.
chmod 755 "$TMP"
# shellcheck disable=SC2317  # invoked through the trap
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local pid _ alive
    # Children (nginx workers) are listed too, so nothing outlives its master.
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 100); do
        alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "temp dir kept: $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Is something listening on 127.0.0.1:$1?
listening() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Direct children of pid $1 (nginx workers), read from /proc.
children_of() {
    local file stat rest
    local -a f
    for file in /proc/[0-9]*/stat; do
        stat=$(cat "$file" 2>/dev/null) || continue
        rest=${stat##*) }
        read -r -a f <<<"$rest"
        if [[ ${f[1]} == "$1" ]]; then echo "${stat%% *}"; fi
    done
}

# Wait (bounded, 10 s) until nginx master $1 has forked its worker; print master and worker pids.
nginx_pids() {
    local kids deadline=$((SECONDS + 10))
    until kids=$(children_of "$1") && [[ -n $kids ]]; do
        ((SECONDS < deadline)) || die "nginx (pid $1) started no worker"
        sleep 0.05
    done
    echo "$1" "${kids//$'\n'/ }"
}

# Sum of utime+stime, in clock ticks, of the given pids (all their threads).
ticks() {
    local pid stat rest total=0
    local -a f
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        rest=${stat##*) }
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# Busy time of the whole machine (all CPUs), in clock ticks, from /proc/stat.
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

# Start a process in the background pinned to CPU $2; output in $TMP/$1.{out,err}; pid in LAST_PID.
start() {
    local name=$1 cpu=$2
    shift 2
    taskset -c "$cpu" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# Wait (bounded, 20 s) until pid $1 is listening on port $2 (and, if $3 is given, printed it on
# stdout $TMP/$4.out); fail with its output if it exits first.
wait_ready() {
    local pid=$1 port=$2 pattern=${3:-} name=$4
    local deadline=$((SECONDS + 20))
    while :; do
        if [[ -n $pattern ]]; then
            grep -q -- "$pattern" "$TMP/$name.out" 2>/dev/null && listening "$port" && return 0
        else
            listening "$port" && return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$TMP/$name.out" "$TMP/$name.err" >&2 2>/dev/null || true
            die "$name exited during start-up"
        fi
        ((SECONDS < deadline)) || die "$name not ready on port $port within 20s"
        sleep 0.05
    done
}

# One request with bash's /dev/tcp: prints the status line of GET $2 on port $1.
status_line() {
    local line
    if ! exec 3<>"/dev/tcp/$HOST/$1"; then
        echo "(connect failed)"
        return 0
    fi
    printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$2" "$HOST" >&3
    IFS= read -r -t 5 line <&3 || line="(no answer)"
    exec 3<&- 3>&-
    printf '%s\n' "${line%$'\r'}"
}

render() { # render TEMPLATE OUTPUT: fill in the @PLACEHOLDERS@
    sed -e "s|@TMP@|$TMP|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
        -e "s|@NGINX_PORT@|$NGINX_PORT|g" -e "s|@HAPROXY_PORT@|$HAPROXY_PORT|g" "$1" >"$2"
}

# ---- start the upstream and the proxies -------------------------------------------------------
# Open-file limit as high as allowed (the configs need about 2 x 8192 at most).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for port in "$UPSTREAM_PORT" "$SHARDGATE_PORT" "$NGINX_PORT" "$HAPROXY_PORT"; do
    if listening "$port"; then die "port $port on $HOST is already in use"; fi
done

declare -A DEAD=() # targets that died: no more runs
declare -A PORT=([direct]=$UPSTREAM_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT [shardgate]=$SHARDGATE_PORT)
declare -A CPU_PIDS # target -> pids whose CPU time is the target's

# Upstream: nginx, 1 worker, on the load CPU, with a 64 KiB static file.
mkdir -p "$TMP/www"
head -c 65536 /dev/zero | tr '\0' 'x' >"$TMP/www/64k"
chmod -R a+rX "$TMP/www"
render "$BENCH/nginx-upstream.conf.tmpl" "$TMP/upstream.conf"
start upstream "$LOAD_CPU" nginx -e "$TMP/upstream.error.log" -p "$TMP" -c "$TMP/upstream.conf"
UPSTREAM_PID=$LAST_PID
wait_ready "$UPSTREAM_PID" "$UPSTREAM_PORT" "" upstream
UPSTREAM_PIDS=$(nginx_pids "$UPSTREAM_PID")
for pid in $UPSTREAM_PIDS; do [[ $pid == "$UPSTREAM_PID" ]] || PIDS+=("$pid"); done
CPU_PIDS[direct]=$UPSTREAM_PIDS
declare -A MAIN_PID=([direct]=$UPSTREAM_PID)

for target in $TARGETS; do
    case $target in
        nginx)
            render "$BENCH/nginx.conf.tmpl" "$TMP/nginx.conf"
            start nginx "$PROXY_CPU" nginx -e "$TMP/nginx.error.log" -p "$TMP" -c "$TMP/nginx.conf"
            wait_ready "$LAST_PID" "$NGINX_PORT" "" nginx
            CPU_PIDS[nginx]=$(nginx_pids "$LAST_PID")
            for pid in ${CPU_PIDS[nginx]}; do [[ $pid == "$LAST_PID" ]] || PIDS+=("$pid"); done
            ;;
        haproxy)
            render "$BENCH/haproxy.cfg.tmpl" "$TMP/haproxy.cfg"
            start haproxy "$PROXY_CPU" haproxy -db -f "$TMP/haproxy.cfg"
            wait_ready "$LAST_PID" "$HAPROXY_PORT" "" haproxy
            CPU_PIDS[haproxy]=$LAST_PID
            ;;
        shardgate)
            [[ -x $SHARDGATE ]] || die "$SHARDGATE not found (build it, or set SHARDGATE=)"
            # shellcheck disable=SC2086  # SHARDGATE_ARGS is split into flags on purpose
            start shardgate "$PROXY_CPU" "$SHARDGATE" --listen "$HOST:$SHARDGATE_PORT" \
                --upstream "$HOST:$UPSTREAM_PORT" --shards 1 --cpus "$PROXY_CPU" $SHARDGATE_ARGS
            wait_ready "$LAST_PID" "$SHARDGATE_PORT" "^ready:" shardgate
            CPU_PIDS[shardgate]=$LAST_PID
            ;;
        direct) continue ;;
    esac
    MAIN_PID[$target]=$LAST_PID
done

# Every target must answer 200 on / and /64k before anything is measured.
for target in $TARGETS; do
    for path in / /64k; do
        line=$(status_line "${PORT[$target]}" "$path")
        [[ $line == "HTTP/1."[01]" 200 "* ]] || die "$target: GET $path answered '$line'"
    done
done

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
        64k) WRK_PATH=/64k ;;
        post1k) WRK_ARGS+=(-s "$BENCH/post1k.lua") ;;
    esac
}

# run SCENARIO TARGET ROUND: warm up, then measure one wrk run and append a line to $RESULTS.
run() {
    local scenario=$1 target=$2 round=$3
    local url out p0 p1 u0 u1 m0 m1 c0 c1 t0 t1 other requests rps p50 p99 sockerr non2xx
    wrk_args "$scenario"
    url="http://$HOST:${PORT[$target]}$WRK_PATH"
    out=$TMP/wrk-$scenario-$target-$round.txt
    # Warm-up (connections, upstream pools, caches); not measured.
    taskset -c "$LOAD_CPU" wrk "${WRK_ARGS[@]}" -d"$WARMUP" "$url" >"$out.warmup" 2>&1 || true
    # shellcheck disable=SC2086  # pid lists split on purpose
    {
        t0=$EPOCHREALTIME
        m0=$(machine_ticks)
        c0=$(children_ticks)
        p0=$(ticks ${CPU_PIDS[$target]})
        u0=$(ticks $UPSTREAM_PIDS)
        taskset -c "$LOAD_CPU" wrk "${WRK_ARGS[@]}" -d"$DURATION" "$url" >"$out" 2>&1 || true
        p1=$(ticks ${CPU_PIDS[$target]})
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
        printf "  round %d/%d %-9s %-9s %10.0f req/s  p50 %8.3f ms  p99 %8.3f ms  cpu %6.2f us/req  upstream %6.2f us/req  other %3d%%", r, R, s, t, rps, p50 / 1000, p99 / 1000, (t == "direct" ? ucpu : cpu), ucpu, o
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
    if ! kill -0 "${MAIN_PID[$target]}" 2>/dev/null; then
        local status=0
        wait "${MAIN_PID[$target]}" || status=$?
        warn "$target (pid ${MAIN_PID[$target]}) died with exit status $status during the run; last output:"
        tail -n 20 "$TMP/$target.out" "$TMP/$target.err" >&2 || true
        DEAD[$target]=1
        FAILED=1
    fi
}

# ---- header: what, where, with what -----------------------------------------------------------
echo "# shardgate bench: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r)"
echo "# $(nginx -v 2>&1); $(haproxy -v 2>&1 | head -n 1); $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
if [[ " $TARGETS " == *" shardgate "* ]]; then
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no commit')
    if [[ -n $(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]]; then
        rev="$rev + uncommitted changes"
    fi
    if [[ ${NO_BUILD:-0} == 1 ]]; then
        echo "# shardgate: $SHARDGATE ${SHARDGATE_ARGS:+$SHARDGATE_ARGS }(NO_BUILD: not rebuilt; the tree is at $rev)"
    else
        echo "# shardgate: $SHARDGATE ${SHARDGATE_ARGS:+$SHARDGATE_ARGS }(built from $rev)"
    fi
fi
echo "# scenarios: $SCENARIO_LIST; targets: $TARGETS; rounds $ROUNDS x $DURATION (warm-up $WARMUP each), $CONNECTIONS connections, wrk -t$WRK_THREADS"
echo "# quiet machine: other work <= $OTHER_MAX% of a CPU (wait up to ${QUIET_TIMEOUT}s before a run, repeat a disturbed run up to $RETRIES times)"
echo "# CPUs: proxies on $PROXY_CPU; upstream nginx (1 worker) and wrk on $LOAD_CPU"
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
echo "Medians over $ROUNDS rounds ($DURATION each, $CONNECTIONS connections). cpu = proxy CPU time per request"
echo "(direct: the upstream's own); x = ratio to nginx (req/s: higher is better; latency, cpu: lower is better)."
sort -t$'\t' -k1,1 -k2,2 -k3,3n "$RESULTS" | awk -F'\t' -v tck="$CLK_TCK" -v order="$SCENARIO_LIST" -v torder="$TARGETS" '
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
        printf "%-10s %10s %6s %10s %6s %10s %6s %9s %6s %11s %6s %8s\n", "target", "req/s", "x", "p50 ms", "x", "p99 ms", "x", "cpu us/req", "x", "upstream us", "other", "errors"
        b = s SUBSEP "nginx"
        brps = (b in seen) ? median(rps[b]) : 0; bp50 = (b in seen) ? median(p50[b]) : 0
        bp99 = (b in seen) ? median(p99[b]) : 0; bcpu = (b in seen) ? median(cpu[b]) : 0
        nt = split(torder, ts, " ")
        for (j = 1; j <= nt; j++) {
            t = ts[j]; k = s SUBSEP t
            if (!(k in seen)) continue
            r = median(rps[k]); a = median(p50[k]); z = median(p99[k]); c = median(cpu[k]); u = median(ucpu[k])
            printf "%-10s %10.0f %6s %10.3f %6s %10.3f %6s %9.2f %6s %11.2f %5d%% %8s\n", t, r, ratio(r, brps), a / 1000, ratio(a, bp50), z / 1000, ratio(z, bp99), (t == "direct" ? u : c), (t == "direct" ? "-" : ratio(c, bcpu)), u, median(oth[k]), (err[k] + non[k] > 0 ? err[k] "/" non[k] : "0")
        }
    }
}'
echo
echo "other = CPU used by anything else on the machine during a run, in % of one CPU (median);"
echo "        well above a few % means other work disturbed the figures."
echo "errors = socket errors/non-2xx answers summed over the rounds (0 = none)."
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg) (includes the benchmark itself)"
if [[ $FAILED != 0 ]]; then
    warn "some runs had errors, non-2xx answers, or a target died (see above)"
fi
exit "$FAILED"
