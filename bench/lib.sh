# shellcheck shell=bash disable=SC2034  # sourced; callers use CLK_TCK and the ports
# Shared by bench/run.sh, bench/mem.sh, bench/alloc.sh, bench/profile.sh and scripts/tls-scan.sh
# (sourced, not run):
# tools, a temp dir, starting processes pinned to CPUs and stopping every one of them by pid on
# exit, rendering the config templates, and reading /proc. Expects `set -euo pipefail`, and ROOT
# (the repository) and BENCH (bench/) set by the caller.

HOST=127.0.0.1
CLK_TCK=$(getconf CLK_TCK)
export PATH=$PATH:/usr/sbin:/sbin

log() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 1; }

# need_tools CMD:PACKAGE...: install the missing ones from Debian, without starting any service.
need_tools() {
    local pair missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    ((${#missing[@]} > 0)) || return 0
    [[ $EUID == 0 ]] || die "missing ${missing[*]}: run as root so they can be installed"
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Keep the packages' init scripts from starting system-wide nginx/haproxy services: a
    # policy-rc.d that denies every start, only for the install, only if there is none already.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        made_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [[ $made_policy == 1 ]]; then rm -f "$policy"; fi
}

# Where cargo puts binaries (CARGO_TARGET_DIR is honoured, relative to the repository).
target_dir() {
    local d=${CARGO_TARGET_DIR:-target}
    [[ $d == /* ]] || d=$ROOT/$d
    echo "$d"
}

# ---- process bookkeeping: every process started is stopped by pid on exit ---------------------
PIDS=()
TMP=$(mktemp -d "/tmp/shardgate-${BENCH_NAME:-bench}.XXXXXX")
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

# Wait (bounded, 10 s) until nginx master $1 has forked its $2 workers; print master and workers.
nginx_pids() {
    local kids deadline=$((SECONDS + 10)) want=${2:-1}
    until kids=$(children_of "$1") && (($(wc -w <<<"$kids") >= want)); do
        ((SECONDS < deadline)) || die "nginx (pid $1) did not start $want worker(s)"
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

# Sum of VmRSS, in KiB, of the given pids.
rss_kb() {
    local pid total=0 v
    for pid in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || v=0
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# Start a process in the background pinned to CPU list $2; output in $TMP/$1.{out,err}; pid in
# LAST_PID.
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

# Ports (the caller may override any of them before sourcing).
UPSTREAM_PORT=${UPSTREAM_PORT:-9100}
UPSTREAM_NOKA_PORT=${UPSTREAM_NOKA_PORT:-9101}
SHARDGATE_PORT=${SHARDGATE_PORT:-8101}
NGINX_PORT=${NGINX_PORT:-8102}
HAPROXY_PORT=${HAPROXY_PORT:-8103}
NOKA_OFFSET=${NOKA_OFFSET:-100}
NGINX_NOKA_PORT=$((NGINX_PORT + NOKA_OFFSET))
HAPROXY_NOKA_PORT=$((HAPROXY_PORT + NOKA_OFFSET))
# TLS listeners of the proxies (bench/run.sh tls-* scenarios, bench/mem.sh and bench/alloc.sh with
# TLS=1): these ports + TLS_OFFSET.
TLS_OFFSET=${TLS_OFFSET:-300}
SHARDGATE_TLS_PORT=$((SHARDGATE_PORT + TLS_OFFSET))
NGINX_TLS_PORT=$((NGINX_PORT + TLS_OFFSET))
HAPROXY_TLS_PORT=$((HAPROXY_PORT + TLS_OFFSET))
# What the nginx.conf.tmpl's @NGINX_TLS_INCLUDE@ becomes (make_tls sets it to include the TLS server).
NGINX_TLS_INCLUDE=

# nginx `worker_cpu_affinity` for $1 workers on CPUs 0..$1-1 (nothing for one worker: taskset).
nginx_affinity() {
    (($1 > 1)) || return 0
    local i j m masks=()
    for ((i = 0; i < $1; i++)); do
        m=
        for ((j = $1 - 1; j >= 0; j--)); do if ((j == i)); then m+=1; else m+=0; fi; done
        masks+=("$m")
    done
    echo "worker_cpu_affinity ${masks[*]};"
}

# render TEMPLATE OUTPUT WORKERS: fill in the @PLACEHOLDERS@ (MAXCONN and NOFILE from the
# environment, default 8192 and 16384).
render() {
    local workers=${3:-1} cpumap=
    ((workers > 1)) && cpumap="    cpu-map auto:1/1-$workers 0-$((workers - 1))"
    sed -e "s|@TMP@|$TMP|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
        -e "s|@UPSTREAM_NOKA_PORT@|$UPSTREAM_NOKA_PORT|g" \
        -e "s|@NGINX_PORT@|$NGINX_PORT|g" -e "s|@HAPROXY_PORT@|$HAPROXY_PORT|g" \
        -e "s|@NGINX_NOKA_PORT@|$NGINX_NOKA_PORT|g" -e "s|@HAPROXY_NOKA_PORT@|$HAPROXY_NOKA_PORT|g" \
        -e "s|@WORKERS@|$workers|g" -e "s|@NGINX_AFFINITY@|$(nginx_affinity "$workers")|g" \
        -e "s|@HAPROXY_CPU_MAP@|$cpumap|g" -e "s|@NGINX_TLS_INCLUDE@|$NGINX_TLS_INCLUDE|g" \
        -e "s|@NGINX_TLS_PORT@|$NGINX_TLS_PORT|g" -e "s|@HAPROXY_TLS_PORT@|$HAPROXY_TLS_PORT|g" \
        -e "s|@TLS_CERT@|${TLS_CERT:-}|g" -e "s|@TLS_KEY@|${TLS_KEY:-}|g" -e "s|@TLS_PEM@|${TLS_PEM:-}|g" \
        -e "s|@MAXCONN@|${MAXCONN:-8192}|g" -e "s|@NOFILE@|${NOFILE:-16384}|g" "$1" >"$2"
}

# make_tls [ecdsa|rsa]: a self-signed certificate for localhost and 127.0.0.1 made with openssl
# (ECDSA P-256, or RSA 2048), its key (PKCS#8), and both in one file for HAProxy, in $TMP/tls;
# sets TLS_CERT, TLS_KEY, TLS_PEM and TLS_DESC, renders bench/nginx-tls.conf.tmpl and
# bench/haproxy-tls.cfg.tmpl there and makes the nginx config include it.
make_tls() {
    local kind=${1:-ecdsa} dir=$TMP/tls
    local -a newkey
    case $kind in
        ecdsa) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) TLS_DESC="ECDSA P-256" ;;
        rsa) newkey=(-newkey rsa:2048) TLS_DESC="RSA 2048" ;;
        *) die "TLS_KEY_TYPE must be ecdsa or rsa, not '$kind'" ;;
    esac
    mkdir -p "$dir"
    openssl req -x509 "${newkey[@]}" -nodes -days 30 -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>"$dir/openssl.err" ||
        { cat "$dir/openssl.err" >&2; die "openssl could not make a certificate"; }
    cat "$dir/cert.pem" "$dir/key.pem" >"$dir/both.pem"
    chmod -R a+rX "$dir"
    TLS_CERT=$dir/cert.pem TLS_KEY=$dir/key.pem TLS_PEM=$dir/both.pem
    NGINX_TLS_INCLUDE="include $dir/nginx-tls.conf;"
    render "$BENCH/nginx-tls.conf.tmpl" "$dir/nginx-tls.conf" 1
    render "$BENCH/haproxy-tls.cfg.tmpl" "$dir/haproxy-tls.cfg" 1
}

# tls_line PORT: the protocol and cipher an OpenSSL client (openssl s_client, TLS 1.2 and 1.3
# offered) gets on PORT, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384 X25519".
tls_line() {
    openssl s_client -connect "$HOST:$1" -servername localhost -brief </dev/null 2>&1 | awk -F': ' '
        /^Protocol version/ { p = $2 } /^Ciphersuite/ { c = $2 }
        /^(Negotiated TLS1.3 group|Server Temp Key|Peer Temp Key)/ { g = $2 }
        END { print (p == "" ? "(no handshake)" : p " " c (g == "" ? "" : " " g)) }'
}

# start_upstream CPUS WORKERS: the origin nginx (bench/nginx-upstream.conf.tmpl) with a 64 KiB
# file; sets UPSTREAM_PID (master) and UPSTREAM_PIDS (master and workers).
start_upstream() {
    local cpus=$1 workers=${2:-1} pid
    mkdir -p "$TMP/www"
    local kib
    for kib in 12 20 32 64 128 1024; do
        head -c $((kib * 1024)) /dev/zero | tr '\0' 'x' >"$TMP/www/${kib}k"
    done
    chmod -R a+rX "$TMP/www"
    render "$BENCH/nginx-upstream.conf.tmpl" "$TMP/upstream.conf" "$workers"
    start upstream "$cpus" nginx -e "$TMP/upstream.error.log" -p "$TMP" -c "$TMP/upstream.conf"
    UPSTREAM_PID=$LAST_PID
    wait_ready "$UPSTREAM_PID" "$UPSTREAM_PORT" "" upstream
    UPSTREAM_PIDS=$(nginx_pids "$UPSTREAM_PID" "$workers")
    for pid in $UPSTREAM_PIDS; do [[ $pid == "$UPSTREAM_PID" ]] || PIDS+=("$pid"); done
}

# The machine and the versions, as comment lines.
describe_machine() {
    echo "# machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r)"
    echo "# $(nginx -v 2>&1); $(haproxy -v 2>&1 | head -n 1 | cut -d' ' -f1-3); $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2); $(rustc -V 2>/dev/null || echo 'rustc: none')"
}

# The commit shardgate is built from, with a note when src/ has uncommitted changes.
revision() {
    local rev
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no commit')
    if [[ -n $(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]]; then
        rev="$rev + uncommitted changes"
    fi
    echo "$rev"
}

# stop_pids PID...: SIGTERM, wait (bounded, 10 s), SIGKILL what is left; they leave PIDS.
stop_pids() {
    local pid _ alive keep=()
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 100); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do [[ " $* " == *" $pid "* ]] || keep+=("$pid"); done
    PIDS=("${keep[@]}")
}
