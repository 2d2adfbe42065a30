#!/usr/bin/env bash
# Memory of each proxy (shardgate 1 shard, nginx 1 worker, HAProxy 1 thread; on CPU 0) in front of
# the benchmark's upstream nginx (CPU 1), one proxy at a time:
#   1. RSS at idle (after start-up and one request);
#   2. RSS with CONNS idle client keep-alive connections open, each having completed one GET first
#      (bench/client.py hold, from SOURCES source addresses 127.0.0.2 ...), and RSS per connection
#      = (RSS with connections - RSS idle) / CONNS, also as a ratio to nginx's;
#   3. RSS once those connections are closed again;
#   4. RSS before and after REQUESTS keep-alive requests (wrk -t1 -c64 with bench/stop_after.lua),
#      and the growth.
# TLS=1: the same over HTTPS: every proxy gets a TLS listener (bench/lib.sh make_tls: one
# certificate, ECDSA P-256 unless TLS_KEY_TYPE=rsa), the held connections and wrk speak TLS to it.
# RSS is VmRSS from /proc/PID/status of the proxy's worker process(es): shardgate's and HAProxy's
# one process (all threads), nginx's worker (its master is shown apart and not counted).
#
# Usage (as root, from anywhere in the repository):
#   bench/mem.sh
# Environment: TARGETS="shardgate nginx haproxy"  CONNS=10000  SOURCES=10  REQUESTS=1000000
#   WRK_CONNECTIONS=64  MAX_WRK_SECONDS=120 (bound on the request run)  SHARDGATE_ARGS=""
#   TLS=1 (over HTTPS)  TLS_KEY_TYPE=ecdsa|rsa  OPEN_TIMEOUT=180 (TLS: 900; seconds to open CONNS)
#   SHARDGATE=$CARGO_TARGET_DIR/release/shardgate  NO_BUILD=1  KEEP_TMP=1
# Takes about 25 s per proxy (most of it the 1 million requests).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCH=$ROOT/bench
BENCH_NAME=mem # lib.sh names its temp dir and messages after it
TARGETS=${TARGETS:-shardgate nginx haproxy}
CONNS=${CONNS:-10000}
SOURCES=${SOURCES:-10}
REQUESTS=${REQUESTS:-1000000}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-64}
MAX_WRK_SECONDS=${MAX_WRK_SECONDS:-120}
SHARDGATE_ARGS=${SHARDGATE_ARGS:-}
TLS=${TLS:-0}
# Bound on opening the CONNS connections (a TLS handshake each costs the Python client ~1-2 ms).
OPEN_TIMEOUT=${OPEN_TIMEOUT:-$([[ $TLS == 1 ]] && echo 900 || echo 180)}
# The proxies' connection limits: the client connections, the upstream ones, and some slack.
MAXCONN=$((CONNS + 1000))
NOFILE=$((2 * MAXCONN + 100))
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
SHARDGATE=${SHARDGATE:-$(target_dir)/release/shardgate}

for t in $TARGETS; do
    [[ " shardgate nginx haproxy " == *" $t "* ]] || die "unknown target '$t'"
done
for v in CONNS SOURCES REQUESTS WRK_CONNECTIONS MAX_WRK_SECONDS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
[[ $EUID == 0 ]] || die "run as root (packages may need installing; nginx/haproxy run as root here)"
need_tools nginx:nginx haproxy:haproxy wrk:wrk taskset:util-linux python3:python3
[[ $TLS == 1 ]] && need_tools openssl:openssl curl:curl

if [[ " $TARGETS " == *" shardgate "* && ${NO_BUILD:-0} != 1 ]]; then
    log "cargo build --release"
    cargo build --release --bin shardgate
fi

# File descriptors: the client and each proxy hold CONNS sockets (and the proxies their upstream
# ones): raise the soft limit to the hard one, which every child inherits.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)
((FDS > CONNS + 200)) || die "open-file limit $FDS is too low for CONNS=$CONNS (lower CONNS)"
NOFILE=$((NOFILE < FDS ? NOFILE : FDS))

for port in "$UPSTREAM_PORT" "$UPSTREAM_NOKA_PORT" "$SHARDGATE_PORT" "$NGINX_PORT" "$HAPROXY_PORT" \
    "$NGINX_NOKA_PORT" "$HAPROXY_NOKA_PORT" $([[ $TLS == 1 ]] && echo "$SHARDGATE_TLS_PORT $NGINX_TLS_PORT $HAPROXY_TLS_PORT"); do
    if listening "$port"; then die "port $port on $HOST is already in use"; fi
done

echo "# shardgate mem: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
describe_machine
if [[ " $TARGETS " == *" shardgate "* ]]; then
    echo "# shardgate: $SHARDGATE --shards 1 --cpus 0 --max-connections $MAXCONN ${SHARDGATE_ARGS:+$SHARDGATE_ARGS }(tree at $(revision))"
fi
echo "# nginx: 1 worker, worker_connections $MAXCONN, worker_rlimit_nofile $NOFILE; haproxy: nbthread 1, maxconn $MAXCONN; open-file limit $FDS"
echo "# $CONNS idle keep-alive client connections from $SOURCES source addresses; then $REQUESTS requests (wrk -t1 -c$WRK_CONNECTIONS, at most ${MAX_WRK_SECONDS}s)"
echo "# proxies on CPU 0; upstream nginx (1 worker), the client and wrk on CPU 1"
# Over TLS: the certificate, the proxies' TLS configs, and every client on the TLS ports.
SCHEME=http
CLIENT_TLS=()
TLS_ARGS=()
if [[ $TLS == 1 ]]; then
    make_tls "${TLS_KEY_TYPE:-ecdsa}"
    SCHEME=https
    CLIENT_TLS=(--tls)
    TLS_ARGS=(--listen-tls "$HOST:$SHARDGATE_TLS_PORT" --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY")
    echo "# over TLS: certificate $TLS_DESC; nginx and HAProxy with OpenSSL (no session cache, no tickets); the held connections (Python ssl) and wrk on the TLS ports"
fi

start_upstream 1 1

declare -A PORT=([nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT [shardgate]=$SHARDGATE_PORT)
if [[ $TLS == 1 ]]; then PORT=([nginx]=$NGINX_TLS_PORT [haproxy]=$HAPROXY_TLS_PORT [shardgate]=$SHARDGATE_TLS_PORT); fi
RESULTS=$TMP/mem.tsv
: >"$RESULTS"
FAILED=0

kib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# measure TARGET: start it, take every reading, stop it; appends one line to $RESULTS.
# shellcheck disable=SC2086  # pid lists ($workers, $all) are split on purpose
measure() {
    local t=$1 port=${PORT[$1]} main workers all master_rss=0 idle held closed before after n fds
    case $t in
        shardgate)
            # shellcheck disable=SC2086  # SHARDGATE_ARGS is split into flags on purpose
            start shardgate 0 "$SHARDGATE" --admin off --listen "$HOST:$SHARDGATE_PORT" --upstream "$HOST:$UPSTREAM_PORT" \
                --shards 1 --cpus 0 --max-connections "$MAXCONN" "${TLS_ARGS[@]}" $SHARDGATE_ARGS
            main=$LAST_PID
            wait_ready "$main" "$port" "^ready:" shardgate
            workers=$main all=$main
            ;;
        nginx)
            render "$BENCH/nginx.conf.tmpl" "$TMP/nginx.conf" 1
            start nginx 0 nginx -e "$TMP/nginx.error.log" -p "$TMP" -c "$TMP/nginx.conf"
            main=$LAST_PID
            wait_ready "$main" "$port" "" nginx
            all=$(nginx_pids "$main" 1)
            workers=${all#"$main "}
            for pid in $workers; do PIDS+=("$pid"); done
            ;;
        haproxy)
            render "$BENCH/haproxy.cfg.tmpl" "$TMP/haproxy.cfg" 1
            local tls_cfg=()
            [[ $TLS == 1 ]] && tls_cfg=(-f "$TMP/tls/haproxy-tls.cfg")
            start haproxy 0 haproxy -db -f "$TMP/haproxy.cfg" "${tls_cfg[@]}"
            main=$LAST_PID
            wait_ready "$main" "$port" "" haproxy
            workers=$main all=$main
            ;;
    esac
    local line
    if [[ $TLS == 1 ]]; then
        line=$(curl -sS -k -o /dev/null -w '%{http_code}' "https://$HOST:$port/" 2>&1) || true
        [[ $line == 200 ]] || die "$t: GET https://…:$port/ answered '$line'"
    else
        line=$(status_line "$port" /)
        [[ $line == "HTTP/1."[01]" 200 "* ]] || die "$t: GET / answered '$line'"
    fi
    sleep 1
    idle=$(rss_kb $workers)
    log "$t: idle $(kib "$idle")"

    # CONNS idle keep-alive connections, each after one request.
    taskset -c 1 python3 "$BENCH/client.py" hold "$port" "$CONNS" --sources "$SOURCES" --hold 300 "${CLIENT_TLS[@]}" \
        >"$TMP/hold-$t.out" 2>"$TMP/hold-$t.err" &
    local client=$!
    PIDS+=("$client")
    local deadline=$((SECONDS + OPEN_TIMEOUT))
    until grep -qs "^ready" "$TMP/hold-$t.out"; do
        if ! kill -0 "$client" 2>/dev/null; then
            cat "$TMP/hold-$t.err" >&2
            die "$t: the client failed to open $CONNS connections"
        fi
        ((SECONDS < deadline)) || die "$t: $CONNS connections not open within $OPEN_TIMEOUT s"
        sleep 0.2
    done
    sleep 2
    held=$(rss_kb $workers)
    fds=0
    for pid in $workers; do fds=$((fds + $(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l))); done
    log "$t: $(cat "$TMP/hold-$t.out"); RSS $(kib "$held"), $fds open files in the proxy"
    ((fds >= CONNS)) || { warn "$t holds only $fds files for $CONNS connections"; FAILED=1; }
    stop_pids "$client"
    sleep 2
    closed=$(rss_kb $workers)
    log "$t: connections closed: RSS $(kib "$closed")"

    # REQUESTS keep-alive requests.
    before=$(rss_kb $workers)
    rm -f "$TMP/stop-mark"
    STOP_AFTER=$REQUESTS STOP_MARK=$TMP/stop-mark taskset -c 1 wrk -t1 -c"$WRK_CONNECTIONS" \
        -d"${MAX_WRK_SECONDS}s" -s "$BENCH/stop_after.lua" "$SCHEME://$HOST:$port/" >"$TMP/wrk-$t.txt" 2>&1 &
    local wrk_pid=$!
    PIDS+=("$wrk_pid")
    # wrk sleeps for its whole -d even when its thread stopped: end it with SIGINT (it still prints
    # its figures) once the count is reached.
    while kill -0 "$wrk_pid" 2>/dev/null && [[ ! -e $TMP/stop-mark ]]; do sleep 0.1; done
    kill -INT "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" || true
    stop_pids "$wrk_pid"
    sleep 1
    after=$(rss_kb $workers)
    n=$(awk '/ requests in / {print $1}' "$TMP/wrk-$t.txt")
    n=${n:-0}
    if grep -qE 'Socket errors|Non-2xx' "$TMP/wrk-$t.txt"; then
        grep -E 'Socket errors|Non-2xx' "$TMP/wrk-$t.txt" | sed "s/^ */    $t: /" >&2
        FAILED=1
    fi
    ((n >= REQUESTS)) || { warn "$t: wrk completed only $n requests (bound: ${MAX_WRK_SECONDS}s)"; FAILED=1; }
    log "$t: $n requests: RSS $(kib "$before") -> $(kib "$after")"
    [[ $t == nginx ]] && master_rss=$(rss_kb "$main")

    stop_pids $all
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$idle" "$held" "$closed" "$before" "$after" "$n" \
        "$master_rss" >>"$RESULTS"
}

for t in $TARGETS; do measure "$t"; done

echo
echo "RSS (VmRSS of the worker process(es)), KiB unless said; per conn = (with conns - idle) / $CONNS;"
echo "x = ratio to nginx (lower is better); growth = after - before the requests."
awk -F'\t' -v conns="$CONNS" -v order="$TARGETS" '
{ for (i = 2; i <= 8; i++) v[$1, i] = $i; seen[$1] = 1 }
END {
    printf "%-10s %9s %12s %9s %6s %13s %14s %14s %9s %10s\n", "target", "idle", "with conns", "per conn", "x", "conns closed", "before reqs", "after reqs", "growth", "requests"
    base = ("nginx" in seen) ? (v["nginx", 3] - v["nginx", 2]) / conns : 0
    n = split(order, ts, " ")
    for (j = 1; j <= n; j++) {
        t = ts[j]
        if (!(t in seen)) continue
        per = (v[t, 3] - v[t, 2]) / conns
        printf "%-10s %9d %12d %9.2f %6s %13d %14d %14d %+9d %10d\n", t, v[t, 2], v[t, 3], per, (base > 0 ? sprintf("%.2f", per / base) : "-"), v[t, 4], v[t, 5], v[t, 6], v[t, 6] - v[t, 5], v[t, 7]
    }
    if ("nginx" in seen) printf "(nginx master, not counted above: %d KiB)\n", v["nginx", 8]
}' "$RESULTS"
if [[ $FAILED != 0 ]]; then warn "some readings are incomplete (see above)"; fi
exit "$FAILED"
