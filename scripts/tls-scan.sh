#!/usr/bin/env bash
# TLS scan of a running shardgate HTTPS listener by a scanner nobody here wrote: testssl.sh
# (Debian package `testssl.sh`). For each key type (ECDSA P-256, then RSA 2048): a self-signed
# certificate made with openssl, shardgate with `--listen-tls` in front of a small upstream
# (python3 -m http.server), then `testssl -p -s -f -R -U` against it (protocols, cipher
# categories, forward secrecy, renegotiation, vulnerabilities), its JSON summarised:
#   protocols   SSLv2, SSLv3, TLS 1.0, TLS 1.1 not offered; TLS 1.2 and TLS 1.3 offered
#   ciphers     no NULL, anonymous, export, LOW, 3DES/IDEA, obsolete (CBC) or average category offered
#   renegotiation  secure renegotiation supported or not applicable, no client-initiated one
#   vulnerabilities  every check of testssl's -U section OK or INFO (nothing LOW and above)
# Exits 1 if any of those fail (the findings are printed), 0 otherwise.
#
# Usage (as root, from anywhere in the repository; installs testssl.sh with apt-get if missing):
#   scripts/tls-scan.sh
# Environment: KEY_TYPES="ecdsa rsa"  PORT=8443  UPSTREAM_PORT=9443  NO_BUILD=1 (use the built
#   binary)  SHARDGATE=$CARGO_TARGET_DIR/release/shardgate  OUT=DIR (keep testssl's logs and JSON)
#   KEEP_TMP=1
# Takes about a minute per key type.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCH=$ROOT/bench
BENCH_NAME=tls-scan # bench/lib.sh names its temp dir and messages after it
KEY_TYPES=${KEY_TYPES:-ecdsa rsa}
PORT=${PORT:-8443}
UPSTREAM_PORT=${UPSTREAM_PORT:-9443}
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
SHARDGATE=${SHARDGATE:-$(target_dir)/release/shardgate}
OUT=${OUT:-$TMP/out}
mkdir -p "$OUT"

[[ $EUID == 0 ]] || die "run as root (testssl.sh may need installing)"
need_tools testssl:testssl.sh openssl:openssl python3:python3 taskset:util-linux
if [[ ${NO_BUILD:-0} != 1 ]]; then
    log "cargo build --release --bin shardgate"
    cargo build --release --bin shardgate
fi
[[ -x $SHARDGATE ]] || die "$SHARDGATE not found (build it, or set SHARDGATE=)"
for port in "$PORT" "$UPSTREAM_PORT"; do
    if listening "$port"; then die "port $port on $HOST is already in use"; fi
done

echo "# shardgate tls-scan: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# $(testssl --version 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | grep -m1 -oE 'testssl +[0-9][0-9.]*' || echo testssl.sh); $(openssl version)"
echo "# shardgate: $SHARDGATE (tree at $(revision)); key types: $KEY_TYPES"

# The upstream: an empty directory served by Python (GET / -> 200, a listing).
mkdir -p "$TMP/www"
start upstream 0-"$(($(nproc) - 1))" python3 -m http.server --bind "$HOST" --directory "$TMP/www" "$UPSTREAM_PORT"
wait_ready "$LAST_PID" "$UPSTREAM_PORT" "" upstream

FAILED=0
for kind in $KEY_TYPES; do
    make_tls "$kind"
    log "$TLS_DESC: shardgate --listen-tls $HOST:$PORT"
    start "shardgate-$kind" 0 "$SHARDGATE" --admin off --listen-tls "$HOST:$PORT" \
        --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY" --upstream "$HOST:$UPSTREAM_PORT" --shards 1
    sg=$LAST_PID
    wait_ready "$sg" "$PORT" "^ready:" "shardgate-$kind"
    json=$OUT/testssl-$kind.json
    rm -f "$json"
    log "$TLS_DESC: testssl -p -s -f -R -U (output in $OUT/testssl-$kind.log)"
    # testssl's exit status counts findings; the verdict is ours, from the JSON.
    testssl --quiet --color 0 --warnings batch --ip one --jsonfile "$json" -p -s -f -R -U \
        "$HOST:$PORT" >"$OUT/testssl-$kind.log" 2>&1 || true
    [[ -s $json ]] || { tail -n 30 "$OUT/testssl-$kind.log" >&2; die "testssl wrote no JSON"; }
    stop_pids "$sg"
    echo
    echo "## $TLS_DESC"
    python3 - "$json" <<'PY' || FAILED=1
import json, sys

items = json.load(open(sys.argv[1]))
if isinstance(items, dict):  # --jsonfile-pretty shape, in case
    items = [f for s in items.get("scanResult", []) for v in s.values() if isinstance(v, list) for f in v]
by = {i["id"]: i for i in items}
bad = []

def show(title, ids):
    print(f"{title}:")
    for i in ids:
        f = by.get(i)
        if f is None:
            continue
        print(f"  {i:24} {f['severity']:8} {f['finding']}")

protocols = ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3"]
show("protocols", protocols)
for i in protocols:
    f = by.get(i)
    offered = f is not None and f["finding"].startswith("offered")
    if f is None:
        bad.append(f"{i}: not tested")
    elif i in ("TLS1_2", "TLS1_3") and not offered:
        bad.append(f"{i}: not offered ({f['finding']})")
    elif i not in ("TLS1_2", "TLS1_3") and "not offered" not in f["finding"]:
        bad.append(f"{i}: {f['finding']}")

ciphers = [i for i in by if i.startswith("cipherlist_")]
show("cipher categories", ciphers)
for i in ciphers:
    f = by[i]
    if i != "cipherlist_STRONG" and "not offered" not in f["finding"]:
        bad.append(f"{i}: {f['finding']}")
if "cipherlist_STRONG" not in by or "offered" not in by["cipherlist_STRONG"]["finding"]:
    bad.append("no strong cipher offered")
show("forward secrecy", [i for i in by if i in ("FS", "FS_ciphers", "FS_ECDHE_curves", "FS_TLS12_sig_algs", "FS_TLS13_sig_algs", "PFS", "PFS_ciphers", "PFS_ECDHE_curves")])

reneg = ["secure_renego", "secure_client_renego"]
show("renegotiation", reneg)
for i in reneg:
    f = by.get(i)
    if f is None:
        bad.append(f"{i}: not tested")
    elif f["severity"] not in ("OK", "INFO"):
        bad.append(f"{i}: {f['severity']} {f['finding']}")

vulns = ["heartbleed", "CCS", "ticketbleed", "ROBOT", "CRIME_TLS", "BREACH", "POODLE_SSL",
         "fallback_SCSV", "SWEET32", "FREAK", "DROWN", "DROWN_hint", "LOGJAM", "LOGJAM-common_primes",
         "BEAST_CBC_TLS1", "BEAST", "LUCKY13", "winshock", "RC4"]
vulns = [i for i in vulns if i in by]
show("vulnerabilities", vulns)
for i in vulns:
    f = by[i]
    if f["severity"] not in ("OK", "INFO"):
        bad.append(f"{i}: {f['severity']} {f['finding']}")
if len(vulns) < 10:
    bad.append(f"only {len(vulns)} vulnerability checks in the output")

scan_problems = [i for i in items if i["id"] in ("scanProblem", "scanTime") and i["severity"] in ("FATAL", "WARN")]
for p in scan_problems:
    bad.append(f"testssl: {p['finding']}")

if bad:
    print("FAILED:")
    for b in bad:
        print(f"  {b}")
    sys.exit(1)
print("verdict: ok (no protocol below TLS 1.2, no weak cipher, no insecure renegotiation, no vulnerability flagged)")
PY
done

echo
if [[ $FAILED != 0 ]]; then
    warn "the scan found problems (above); testssl's logs: $OUT"
    [[ $OUT == "$TMP/out" ]] && KEEP_TMP=1
    exit 1
fi
echo "tls-scan: every check passed for: $KEY_TYPES"
