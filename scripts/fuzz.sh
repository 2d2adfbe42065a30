#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS seconds each (default 20) and prints one
# summary line per target. Exits non-zero if any target crashed, hung or failed to run.
#
#   FUZZ_SECONDS=60 scripts/fuzz.sh            # all targets
#   FUZZ_SECONDS=60 scripts/fuzz.sh chunked    # some targets
#
# Seeds are read from fuzz/corpus/<target>/ and never written; what the fuzzer finds grows in
# fuzz/work/<target>/ (git-ignored, kept between runs). Crashing inputs land in
# fuzz/artifacts/<target>/; replay one with `cargo fuzz run <target> <file>`.
# Env: FUZZ_SECONDS, FUZZ_SANITIZER (address|none, default address).
set -euo pipefail

cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-address}
ALL_TARGETS=(request_head response_head chunked)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${ALL_TARGETS[@]}"); fi

max_len() {
    case "$1" in
        chunked) echo 20000 ;; # past the 4 KiB extension and 16 KiB trailer limits
        *) echo 8192 ;;        # room for MAX_HEADERS (128) headers
    esac
}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    timeout 900 cargo install cargo-fuzz --locked
fi
# cargo-fuzz passes -Z flags (sanitizers, coverage); a stable toolchain accepts them this way.
if ! rustc -Vv | grep -q '^release:.*nightly'; then
    export RUSTC_BOOTSTRAP=1
fi

echo "fuzz: building ${targets[*]} (sanitizer: $FUZZ_SANITIZER)" >&2
for t in "${targets[@]}"; do
    timeout 1800 cargo fuzz build --sanitizer "$FUZZ_SANITIZER" "$t"
done

failed=0
for t in "${targets[@]}"; do
    work="fuzz/work/$t"
    log="fuzz/work/$t.log"
    mkdir -p "$work" "fuzz/artifacts/$t"
    started=$SECONDS
    set +e
    # The fuzzer stops itself after -max_total_time; the outer timeout only bounds a wedged run.
    timeout --kill-after=30 $((FUZZ_SECONDS + 300)) \
        cargo fuzz run --sanitizer "$FUZZ_SANITIZER" "$t" "$work" "fuzz/corpus/$t" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -max_len="$(max_len "$t")" \
        -dict=fuzz/http.dict -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    elapsed=$((SECONDS - started))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corpus=$(find "$work" -type f | wc -l)
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        verdict="nothing found"
    else
        failed=1
        if [ -n "$artifact" ]; then
            # A panic's message is the line after "panicked at"; sanitizer and libFuzzer errors say it all.
            reason=$(grep -m1 -A1 "panicked at" "$log" | tail -n1 || true)
            [ -n "$reason" ] || reason=$(grep -m1 -E "ERROR: (AddressSanitizer|libFuzzer)" "$log" || true)
            verdict="FOUND: ${reason:-exit $rc} -> $artifact"
        elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            verdict="FAILED: still running after $((FUZZ_SECONDS + 300))s (log: $log)"
        else
            verdict="FAILED: exit $rc (log: $log)"
        fi
    fi
    echo "fuzz: $t: ${execs:-?} execs (${rate:-?}/s) in ${elapsed}s, corpus $corpus, $verdict"
done
exit "$failed"
