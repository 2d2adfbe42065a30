#!/usr/bin/env bash
# Side-by-side proxy benchmark (shardgate, nginx, HAProxy, direct): a thin wrapper around
# bench/run.sh, which documents its arguments and environment; see bench/README.md.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/../bench/run.sh" "$@"
