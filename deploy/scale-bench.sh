#!/usr/bin/env bash
# The standard scale scenario in one command: builds the release binaries,
# checks the machine, then runs `swarm-bench standard` (a hollow fleet of
# 1,000 nodes, one manager, 30,000 containers created and started by 64
# clients, then info and ps latency and the manager's memory). Every
# process it starts is stopped at the end, also on an error or Ctrl-C.
#
#   deploy/scale-bench.sh                       # the standard scenario
#   deploy/scale-bench.sh --nodes 50 --containers 500 --clients 16
#   deploy/scale-bench.sh --managers 3          # three managers (Raft)
#   NO_BUILD=1 deploy/scale-bench.sh            # use the binaries as built
#
# Arguments go to `swarm-bench standard` (see `swarm-bench standard --help`).
# Figures: printed as tables, and as JSON in target/scale-bench.json
# (unless --json is given).
set -euo pipefail

cd "$(dirname "$0")/.."

# At the top level, --bins builds the default members' binaries: swarm and
# swarmctl, and hollow-engine and swarm-bench of the test harness crate
# (tests/harness).
if [[ -z "${NO_BUILD:-}" ]]; then
    cargo build --release --bins
fi

# Every hollow node is one listener, and the manager keeps connections to
# every node: about 5 descriptors per node on each side (5,000 and 6,000
# for 1,000 nodes). Raise the limit (inherited by every process started).
nofile=$(ulimit -n)
if [[ "$nofile" != unlimited && "$nofile" -lt 65536 ]]; then
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    if [[ "$(ulimit -n)" != unlimited && "$(ulimit -n)" -lt 16384 ]]; then
        echo "scale-bench: warning: ulimit -n is $(ulimit -n); 1,000 nodes need about 16384" >&2
    fi
fi

# Loopback connections are tracked by netfilter when iptables is loaded
# (Docker loads it); a full table drops new connections, whose SYNs are
# then retried after 1 s, 3 s, ... Entries of closed connections stay
# 120 s: wait for those of an earlier run to expire.
count=/proc/sys/net/netfilter/nf_conntrack_count
max=/proc/sys/net/netfilter/nf_conntrack_max
if [[ -r "$count" && -r "$max" ]]; then
    for _ in $(seq 1 30); do
        (( $(cat "$count") * 2 < $(cat "$max") )) && break
        echo "scale-bench: conntrack table $(cat "$count") of $(cat "$max"); waiting for it to drain" >&2
        sleep 10
    done
fi

json=(--json target/scale-bench.json)
for arg in "$@"; do
    [[ "$arg" == --json || "$arg" == --json=* ]] && json=()
done

exec target/release/swarm-bench standard "${json[@]}" "$@"
