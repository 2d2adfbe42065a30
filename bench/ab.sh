#!/usr/bin/env bash
# Interleaved A/B of two or more shardgate binaries: CPU (user and sys, from /proc/PID/stat) per
# keep-alive request, each binary in turn per round, so slow drift on a shared machine hits all of
# them alike. One shard on CPU 0, wrk -t1 -c64 on CPU 1, demo-upstream as the origin.
#
#   bench/ab.sh target/release/shardgate /tmp/old/shardgate        # ROUNDS=4 DURATION=5s
#
#   BODY_SIZE=65536 bench/ab.sh A B                                   # 64 KiB responses
# Prints one line per binary per round: req, user, sys and total µs of CPU per request.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-4}"
DURATION="${DURATION:-5s}"
[ "$#" -ge 2 ] || { echo "usage: bench/ab.sh BIN BIN [BIN...]" >&2; exit 2; }
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --bins -q
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP="127.0.0.1:$(free_port)"
target/release/demo-upstream --listen "$UP" ${BODY_SIZE:+--body-size "$BODY_SIZE"} >/dev/null 2>&1 &
UPID=$!
trap 'kill $UPID 2>/dev/null || true' EXIT
sleep 0.3
ticks_per_s="$(getconf CLK_TCK)"
for round in $(seq 1 "$ROUNDS"); do
  for bin in "$@"; do
    port="$(free_port)"
    taskset -c 0 "$bin" --listen "127.0.0.1:$port" --upstream "$UP" --shards 1 --cpus 0 --admin off \
      >/dev/null 2>&1 &
    P=$!
    for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    taskset -c 1 wrk -t1 -c64 -d1s "http://127.0.0.1:$port/" >/dev/null 2>&1   # warm-up
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$P/stat")
    out="$(taskset -c 1 wrk -t1 -c64 -d"$DURATION" "http://127.0.0.1:$port/" 2>&1)"
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$P/stat")
    req="$(echo "$out" | awk '/requests in/ {print $1}')"
    kill "$P"; wait "$P" 2>/dev/null || true
    python3 -c "
u, s, r, hz = $u1 - $u0, $s1 - $s0, $req, $ticks_per_s
us = 1e6 / hz / r
print(f'round $round  $bin  req={r}  user={u*us:.2f}us  sys={s*us:.2f}us  total={(u+s)*us:.2f}us')"
  done
done
