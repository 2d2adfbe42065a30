#!/usr/bin/env bash
# Benchmarks, see bench/README.md:
#   scripts/bench.sh [SCENARIO...]     shardgate vs nginx vs HAProxy vs direct (bench/run.sh)
#   scripts/bench.sh mem               memory: idle, per idle connection, after 1 M requests (bench/mem.sh)
#   scripts/bench.sh alloc             heap allocations per request (bench/alloc.sh)
#   scripts/bench.sh profile [SCENARIO]  perf profile of shardgate (bench/profile.sh)
# Each takes its settings from the environment, as documented in its own header.
set -euo pipefail
bench="$(dirname "${BASH_SOURCE[0]}")/../bench"
case ${1:-} in
    mem | alloc | profile)
        script=$1
        shift
        exec "$bench/$script.sh" "$@"
        ;;
    *) exec "$bench/run.sh" "$@" ;;
esac
