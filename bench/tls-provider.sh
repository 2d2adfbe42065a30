#!/usr/bin/env bash
# bench/tls-provider.sh: rustls crypto providers (ring vs aws-lc-rs) and rustls' buffered vs
# unbuffered API, in memory (no sockets), one thread pinned to CPU $CPU. Builds the standalone
# crate bench/tls-provider/ once per provider, runs ROUNDS interleaved rounds and prints medians.
# Then (SIZE=1, the default) builds a trivial binary without rustls, with rustls+ring and with
# rustls+aws-lc-rs from clean and prints the build time and binary size of each.
#
#   ROUNDS=3 bench/tls-provider.sh          # SECONDS_PER_CASE=2 CPU=0 SIZE=1
#
# Needs cargo; aws-lc-rs also needs cmake and a C compiler (apt-get installs them when missing).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SECONDS_PER_CASE=${SECONDS_PER_CASE:-2}
CPU=${CPU:-0}
SIZE=${SIZE:-1}
PROVIDERS=(ring aws_lc_rs)

here=$(cd "$(dirname "$0")" && pwd)
crate=$here/tls-provider
tmp=$(mktemp -d /tmp/tls-provider.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v cc >/dev/null || missing+=(gcc)
command -v taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
    echo "# installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
fi

echo "# rustls providers bench: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r), $(rustc --version)"
echo "# rustls $(grep -A1 'name = "rustls"' "$crate/Cargo.lock" | sed -n 's/version = "\(.*\)"/\1/p'), ring $(grep -A1 'name = "ring"' "$crate/Cargo.lock" 2>/dev/null | sed -n 's/version = "\(.*\)"/\1/p'), aws-lc-rs $(grep -A1 'name = "aws-lc-rs"' "$crate/Cargo.lock" 2>/dev/null | sed -n 's/version = "\(.*\)"/\1/p')"
echo "# rounds $ROUNDS x ${SECONDS_PER_CASE}s per case (+10% warm-up), pinned to CPU $CPU; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

for p in "${PROVIDERS[@]}"; do
    echo "# building $p" >&2
    (cd "$crate" && CARGO_TARGET_DIR=target/$p cargo build --release --quiet --features "$p")
done

for r in $(seq 1 "$ROUNDS"); do
    for p in "${PROVIDERS[@]}"; do
        echo "# round $r/$ROUNDS $p" >&2
        taskset -c "$CPU" "$crate/target/$p/release/tls-provider-bench" "$SECONDS_PER_CASE" >>"$tmp/results"
    done
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$tmp/results" <<'PY'
import statistics, sys
from collections import defaultdict
vals = defaultdict(list)
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        _, prov, case, metric, v = line.split()
        vals[(prov, case, metric)].append(float(v))
med = {k: statistics.median(v) for k, v in vals.items()}
provs = ["ring", "aws-lc-rs"]
def m(p, c, k): return med.get((p, c, k), float("nan"))

print("\nHandshakes per second, one core (median of %d); server = CPU of the server's calls only, both = CPU of client + server" % len(next(iter(vals.values()))))
print("| case | ring server | aws-lc-rs server | aws/ring | ring both | aws-lc-rs both | aws/ring |")
print("|---|---:|---:|---:|---:|---:|---:|")
for case, label in [("hs-tls13-ecdsa", "TLS 1.3 full, ECDSA P-256, X25519, AES-128-GCM"),
                    ("hs-tls12-ecdsa", "TLS 1.2 full, ECDHE-ECDSA-AES128-GCM-SHA256"),
                    ("hs-tls13-rsa2048", "TLS 1.3 full, RSA-2048 (PSS), X25519"),
                    ("hs-tls13-ecdsa-resumed", "TLS 1.3 resumed (ticket, PSK-DHE), ECDSA")]:
    rs, as_ = m("ring", case, "server_per_s"), m("aws-lc-rs", case, "server_per_s")
    rb, ab = m("ring", case, "both_per_s"), m("aws-lc-rs", case, "both_per_s")
    print(f"| {label} | {rs:,.0f} | {as_:,.0f} | {as_/rs:.2f} | {rb:,.0f} | {ab:,.0f} | {ab/rb:.2f} |")

print("\nBulk, server side: 64 KiB body in 4 x 16 KiB records, MB/s (10^6 B) of body per second of server CPU; allocations per 16 KiB record")
print("| suite | API | provider | encrypt MB/s | decrypt MB/s | enc+dec MB/s | allocs/record enc | allocs/record dec |")
print("|---|---|---|---:|---:|---:|---:|---:|")
for suite, label in [("aes128gcm", "AES-128-GCM"), ("aes256gcm", "AES-256-GCM"), ("chacha20", "CHACHA20-POLY1305")]:
    for api in ["buffered", "unbuffered"]:
        for p in provs:
            c = f"bulk-{suite}-{api}"
            print(f"| {label} | {api} | {p} | {m(p,c,'enc_mb_s'):,.0f} | {m(p,c,'dec_mb_s'):,.0f} | {m(p,c,'both_mb_s'):,.0f} | {m(p,c,'enc_allocs_per_record'):.2f} | {m(p,c,'dec_allocs_per_record'):.2f} |")

waits = [v for k, vs in vals.items() if k[2] == "wait_pct" for v in vs]
print(f"\nCPU taken by other work while a case ran (runqueue wait / wall, per case and round): median {statistics.median(waits):.1f} %, max {max(waits):.1f} %")
spread = max((max(v) - min(v)) / statistics.median(v) for k, v in vals.items()
             if k[2].endswith("per_s") or k[2].endswith("mb_s"))
print(f"timing: thread CPU time (CLOCK_THREAD_CPUTIME_ID), its read cost ({statistics.median(vals[('ring','clock','overhead_ns')]):.0f} ns per span on ring's binary, {statistics.median(vals[('aws-lc-rs','clock','overhead_ns')]):.0f} ns on aws-lc-rs's) subtracted from each span")
print(f"largest spread across rounds (max-min)/median of any rate: {spread:.0%}")
PY

if [ "$SIZE" = 1 ]; then
    echo
    echo "Trivial binary (bench/tls-provider/size, shardgate's release profile: fat LTO, 1 codegen unit), clean build each, cargo -j$(nproc)"
    echo "| variant | clean build s | binary bytes | stripped bytes |"
    echo "|---|---:|---:|---:|"
    for v in none ring aws_lc_rs; do
        dir=$crate/size/target/$v
        rm -rf "$dir"
        feat=(); [ "$v" = none ] || feat=(--features "$v")
        start=$(date +%s.%N)
        (cd "$crate/size" && CARGO_TARGET_DIR=target/$v cargo build --release --quiet "${feat[@]}")
        end=$(date +%s.%N)
        bin=$dir/release/tls-provider-size
        strip -o "$tmp/stripped" "$bin"
        printf '| %s | %.1f | %d | %d |\n' "$v" "$(echo "$end - $start" | bc)" "$(stat -c %s "$bin")" "$(stat -c %s "$tmp/stripped")"
    done
    echo "(load average after the builds: $(cut -d' ' -f1-3 /proc/loadavg); build times on a shared machine are indicative only)"
fi
