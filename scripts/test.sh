#!/usr/bin/env bash
# The whole test suite, as CI and the README run it:
#   lint (fmt, clippy) → unit + integration tests on io_uring → integration tests again on the epoll
#   fallback (MONOIO_FORCE_LEGACY_DRIVER=1) → a short bounded fuzz run (FUZZ_SECONDS=0 skips it).
# Installs what the tests need first (curl, wrk, openssl, cmake + a C compiler for aws-lc-rs,
# util-linux's setpriv, dnsmasq-base, bind9 + bind9-dnsutils, redis-server, nginx-light and nghttp2-client (nghttp, h2load) from Debian; hypercorn from PyPI for
# tests/h2c.rs, h2/hyperframe/hpack from PyPI for tests/h2c_downstream.rs and tests/h2_upstream.rs,
# grpcio from PyPI for tests/grpc*.rs; chromium from Debian and
# websocket-client from PyPI for the status page's browser check; cargo-fuzz from crates.io via
# scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# --- what the tests need ---------------------------------------------------------------------
missing=()
for tool in curl wrk openssl cmake; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
# aws-lc-rs (rustls' crypto provider) builds C code: cmake (above) and a C compiler.
command -v cc >/dev/null 2>&1 || missing+=(gcc)
# tests/h2c_downstream.rs and tests/h2_tls.rs drive real HTTP/2 clients: nghttp and h2load (Debian
# nghttp2-client).
for tool in nghttp h2load; do
  command -v "$tool" >/dev/null 2>&1 || { missing+=(nghttp2-client); break; }
done
# tests/h2_upstream.rs runs nginx as an h2c and h2 (TLS) upstream (Debian nginx-light, in /usr/sbin).
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
# tests/discovery.rs and tests/library_discovery.rs run a real DNS server: dnsmasq (Debian dnsmasq-base, in /usr/sbin).
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base)
# tests/discovery_srv.rs runs a real authoritative server changed by dynamic updates: named and
# tsig-keygen (Debian bind9, in /usr/sbin), nsupdate and dig (Debian bind9-dnsutils).
command -v named >/dev/null 2>&1 || [ -x /usr/sbin/named ] || missing+=(bind9)
for tool in nsupdate dig; do
  command -v "$tool" >/dev/null 2>&1 || { missing+=(bind9-dnsutils); break; }
done
# tests/global_limits.rs and tests/library_global_limits.rs run a real Redis: redis-server (Debian redis-server).
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# setpriv drops capabilities for tests/config_sources.rs (privileged port, unwritable log dir).
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
# scripts/status-page-check.py drives Debian's headless Chromium (STATUS_PAGE_CHECK=0 skips it).
if [ "${STATUS_PAGE_CHECK:-1}" != 0 ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "test.sh: ${missing[*]} missing and we are not root to install them" >&2
    exit 1
  fi
fi
# tests/h2c.rs runs a real h2c-capable upstream: hypercorn (PyPI) under python3.
python3 -c 'import hypercorn' 2>/dev/null || python3 -m pip install -q hypercorn
# tests/h2c/client.py writes and reads raw HTTP/2 frames: hyperframe and hpack (with h2, PyPI);
# tests/h2_upstream/*.py are an HTTP/2 upstream and client on h2.
python3 -c 'import h2, hyperframe, hpack' 2>/dev/null || python3 -m pip install -q h2 hyperframe hpack
# tests/grpc.rs, grpc_errors.rs, grpc_health.rs and grpc_web.rs run a real gRPC server and client: grpcio (PyPI).
python3 -c 'import grpc' 2>/dev/null || python3 -m pip install -q grpcio
if [ "${STATUS_PAGE_CHECK:-1}" != 0 ]; then
  python3 -c 'import websocket' 2>/dev/null || python3 -m pip install -q websocket-client
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# --- lint ------------------------------------------------------------------------------------
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --all-targets -- -D warnings

# --- tests on io_uring, then on the epoll fallback --------------------------------------------
echo "== cargo test (io_uring driver)"
cargo test --all-targets -- --test-threads="${TEST_THREADS:-4}"
echo "== cargo test, integration tests (epoll driver: MONOIO_FORCE_LEGACY_DRIVER=1)"
MONOIO_FORCE_LEGACY_DRIVER=1 cargo test --tests -- --test-threads="${TEST_THREADS:-4}"
echo "== cargo test --doc (the library API's examples) and cargo doc (no warnings)"
cargo test --doc
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps

# --- the status page in a real browser -------------------------------------------------------
if [ "${STATUS_PAGE_CHECK:-1}" != 0 ]; then
  echo "== status page in headless Chromium (scripts/status-page-check.py)"
  SHARDGATE="${CARGO_TARGET_DIR:-target}/debug/shardgate" python3 scripts/status-page-check.py "${TMPDIR:-/tmp}/status-page.png"
fi

# --- fuzz (bounded) ---------------------------------------------------------------------------
if [ "${FUZZ_SECONDS:-15}" != 0 ] && [ -x scripts/fuzz.sh ]; then
  echo "== fuzz (${FUZZ_SECONDS:-15}s per target)"
  FUZZ_SECONDS="${FUZZ_SECONDS:-15}" scripts/fuzz.sh
fi
echo "== all tests passed"
