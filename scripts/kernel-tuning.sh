#!/usr/bin/env bash
# Prints kernel and limit advice for a shardgate host: each setting's current value (read from
# /proc/sys and this shell's limits), the recommended one and why, then the exact lines for
# /etc/sysctl.d/. Changes nothing: it only reads.
#
#   scripts/kernel-tuning.sh [SHARDS] [MAX_CONNECTIONS_PER_SHARD]
#
# SHARDS defaults to the CPUs this shell may use; MAX_CONNECTIONS_PER_SHARD to shardgate's 10000.
set -euo pipefail

shards=${1:-$(nproc)}
per_shard=${2:-10000}
case "$shards$per_shard" in
  *[!0-9]*) echo "usage: $0 [SHARDS] [MAX_CONNECTIONS_PER_SHARD]" >&2; exit 2 ;;
esac
# Each client connection may hold one upstream connection too; plus listeners, logs, rings.
fds_needed=$((shards * per_shard * 2 + 1024))

# The value of a sysctl (dots, as sysctl(8) writes them), tabs as spaces; "n/a" when absent.
current() {
  local file="/proc/sys/${1//.//}"
  if [ -r "$file" ]; then tr -s '\t ' ' ' <"$file"; else echo "n/a"; fi
}

# The larger of two numbers, so that the advice never lowers a value someone raised.
max() { if [ "$1" -gt "$2" ] 2>/dev/null; then echo "$1"; else echo "$2"; fi; }

sysctl_lines=()

# advise NAME RECOMMENDED WHY: a row, and a sysctl.d line that never lowers the current value.
advise() {
  local name=$1 want=$2 why=$3 now verdict keep
  now=$(current "$name")
  if [ "$now" = "n/a" ]; then
    verdict="absent"; keep=$want
  elif [ "$now" -ge "$want" ] 2>/dev/null; then
    verdict="ok"; keep=$now
  else
    verdict="raise"; keep=$want
  fi
  printf '%-30s %-14s %-14s %-6s %s\n' "$name" "$now" "$want" "$verdict" "$why"
  sysctl_lines+=("$name = $keep")
}

printf '%-30s %-14s %-14s %-6s %s\n' "setting" "current" "recommended" "" "why"
printf '%-30s %-14s %-14s %-6s %s\n' "-------" "-------" "-----------" "" "---"
advise net.core.somaxconn 4096 \
  "caps every listen backlog: shards.backlog (1024 per shard) is cut to this"
advise net.ipv4.tcp_max_syn_backlog 8192 \
  "half-open connections queued per listener during connection bursts"
advise net.core.netdev_max_backlog 16384 \
  "packets queued per CPU when the NIC delivers faster than the kernel drains"

# The local port range: the number of upstream connections open to one upstream ip:port at once.
range_now=$(current net.ipv4.ip_local_port_range)
range_want="10240 65535"
if [ "$range_now" = "n/a" ]; then
  range_keep=$range_want; verdict="absent"
else
  read -r lo hi <<<"$range_now"
  if [ "$lo" -le 10240 ] && [ "$hi" -ge 65535 ]; then range_keep=$range_now; verdict="ok"
  else range_keep="$((lo < 10240 ? lo : 10240)) 65535"; verdict="widen"; fi
fi
printf '%-30s %-14s %-14s %-6s %s\n' net.ipv4.ip_local_port_range "$range_now" "$range_want" \
  "$verdict" "one local port per upstream connection to each ip:port (above common service ports)"
sysctl_lines+=("net.ipv4.ip_local_port_range = $range_keep")

tw_now=$(current net.ipv4.tcp_tw_reuse)
if [ "$tw_now" = "1" ]; then verdict="ok"; else verdict="set"; fi
printf '%-30s %-14s %-14s %-6s %s\n' net.ipv4.tcp_tw_reuse "$tw_now" "1" "$verdict" \
  "reuse TIME_WAIT ports for new upstream connects (2 = loopback only)"
sysctl_lines+=("net.ipv4.tcp_tw_reuse = 1")

advise fs.file-max "$(max 2097152 $((fds_needed + 65536)))" \
  "open files on the whole host: every connection is one"
advise fs.nr_open "$(max 1048576 "$fds_needed")" \
  "the highest nofile limit a process may get (LimitNOFILE cannot exceed it)"

echo
echo "Per-process limits (this shell; systemd sets the service's own with Limit*= in the unit):"
printf '%-30s %-14s %-14s %s\n' "nofile soft/hard" "$(ulimit -Sn)/$(ulimit -Hn)" \
  "$(max 1048576 "$fds_needed")" \
  "LimitNOFILE in the unit: $shards shards x $per_shard connections x 2 (client + upstream) = $fds_needed"
kernel=$(uname -r)
read -r major minor _ <<<"${kernel//[.-]/ }"
if [ "$major" -lt 5 ] || { [ "$major" -eq 5 ] && [ "$minor" -lt 12 ]; }; then
  memlock_why="kernel $kernel charges io_uring rings to locked memory: ~128 KiB per shard"
else
  memlock_why="kernel $kernel charges io_uring to the cgroup, not memlock; harmless headroom"
fi
printf '%-30s %-14s %-14s %s\n' "memlock (KiB)" "$(ulimit -l)" "65536" "LimitMEMLOCK=64M in the unit: $memlock_why"

uring=$(current kernel.io_uring_disabled)
if [ "$uring" != "n/a" ] && [ "$uring" != "0" ]; then
  echo
  echo "note: kernel.io_uring_disabled = $uring: io_uring is off (2) or limited to the group in"
  echo "      kernel.io_uring_group (1); shardgate then falls back to epoll. Set it to 0 for io_uring."
fi

echo
echo "# /etc/sysctl.d/60-shardgate.conf (then: sysctl --system). Never lowers a current value."
printf '%s\n' "${sysctl_lines[@]}"
