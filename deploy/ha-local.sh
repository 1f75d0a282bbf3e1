#!/usr/bin/env bash
# Three swarm managers (one Raft cluster) behind HAProxy, all on loopback.
#
#   ./deploy/ha-local.sh up [DISCOVERY]  start what is not running, wait until
#                                        3 voters and the VIP answer
#   ./deploy/ha-local.sh status          members through the VIP, and each
#                                        process with its pid
#   ./deploy/ha-local.sh leader-pid      pid of the leader (for kill -9 demos)
#   ./deploy/ha-local.sh down            stop everything `up` started
#
# Managers: API 127.0.0.1:4001-4003, Raft 127.0.0.1:4101-4103, data in
# $STATE_DIR/mN/data (default STATE_DIR=/tmp/swarm-ha; logs and pid files
# there too). The 1st bootstraps the cluster, the 2nd and 3rd join it with
# --join 127.0.0.1:4001. `up` again restarts a manager that died, from its
# data dir, with the command line it first had. `down` keeps the data:
# rm -rf "$STATE_DIR" for a fresh cluster.
#
# DISCOVERY: the engines every manager serves; default the local engine,
# unix:///var/run/docker.sock. A bare address or list gets nodes:// in front.
#
# HAProxy (Debian's package, installed if missing) listens on 127.0.0.1:4000
# with deploy/haproxy.cfg: TCP mode, health checks GET /_ping.
#
# TLS=1: mutual TLS everywhere. `up` creates a CA with swarmctl in
# $STATE_DIR/pki (once), a manager certificate per manager (SANs 127.0.0.1
# and localhost: the VIP's address too, as clients reach the managers
# through it with TLS passed through) and a client certificate in
# $STATE_DIR/pki/client; the managers run with --tlsverify, talk Raft over
# mutual TLS and reach engines at TCP addresses with TLS unless
# ENGINE_TLS=false (default false here: the local engine is a unix socket).
# HAProxy stays in TCP mode (TLS ends at the managers; a client's
# certificate reaches them) and checks /_ping over TLS with the client
# certificate (deploy/haproxy-tls.cfg). Use the cluster with
#   export DOCKER_HOST=tcp://127.0.0.1:4000 DOCKER_TLS_VERIFY=1 \
#          DOCKER_CERT_PATH=$STATE_DIR/pki/client
#
# Builds nothing: expects target/release/swarm and target/release/swarmctl
# (cargo build --release), or SWARM_BIN / SWARMCTL_BIN.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SWARM_BIN="${SWARM_BIN:-$ROOT/target/release/swarm}"
SWARMCTL_BIN="${SWARMCTL_BIN:-$(dirname "$SWARM_BIN")/swarmctl}"
STATE_DIR="${STATE_DIR:-/tmp/swarm-ha}"
TLS="${TLS:-0}"
ENGINE_TLS="${ENGINE_TLS:-false}"
PKI="$STATE_DIR/pki"
if [[ $TLS == 1 ]]; then
    HAPROXY_CFG="$ROOT/deploy/haproxy-tls.cfg"
else
    HAPROXY_CFG="$ROOT/deploy/haproxy.cfg"
fi
IP=127.0.0.1
VIP_PORT=4000
API_PORTS=(4001 4002 4003)
RAFT_PORTS=(4101 4102 4103)
# How long `up` waits for the cluster to be whole, in seconds.
READY_TIMEOUT="${READY_TIMEOUT:-60}"

die() {
    echo "ha-local: $*" >&2
    exit 1
}

log() {
    echo "ha-local: $*" >&2
}

# is_running PIDFILE PATTERN: whether the pid in PIDFILE is alive and its
# command line contains PATTERN (so a reused pid is not taken for ours).
is_running() {
    local pidfile=$1 pattern=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern"
}

# manager_pattern N: a string only manager N's command line holds.
manager_pattern() {
    echo "-H tcp://$IP:${API_PORTS[$(($1 - 1))]} "
}

# http_ok PORT PATH: whether 127.0.0.1:PORT answers GET PATH with 200
# (plain bash, no curl needed; over TLS curl with the client certificate).
http_ok() {
    local port=$1 path=$2 status=""
    if [[ $TLS == 1 ]]; then
        curl -sf -o /dev/null --max-time 5 --cacert "$PKI/client/ca.pem" \
            --cert "$PKI/client/cert.pem" --key "$PKI/client/key.pem" "https://$IP:$port$path"
        return
    fi
    { exec 3<>"/dev/tcp/$IP/$port"; } 2>/dev/null || return 1
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$IP" >&3
    read -r -t 5 _ status _ <&3 || true
    exec 3<&- 3>&-
    [[ $status == 200 ]]
}

# swarmctl ARGS: swarmctl with the client certificate under TLS=1.
swarmctl() {
    if [[ $TLS == 1 ]]; then
        "$SWARMCTL_BIN" --tlsverify --tlscacert "$PKI/client/ca.pem" \
            --tlscert "$PKI/client/cert.pem" --tlskey "$PKI/client/key.pem" "$@"
    else
        "$SWARMCTL_BIN" "$@"
    fi
}

# members PORT: the member table as the manager on PORT gives it.
members() {
    swarmctl --manager "tcp://$IP:$1" members 2>/dev/null
}

# ensure_pki: under TLS=1, the CA and the certificates `up` needs (made
# once; rm -rf "$PKI" for new ones).
ensure_pki() {
    local n
    [[ $TLS == 1 ]] || return 0
    if [[ ! -s $PKI/ca/ca.pem ]]; then
        log "creating a CA in $PKI/ca"
        "$SWARMCTL_BIN" ca init --dir "$PKI/ca" >/dev/null
    fi
    for n in 1 2 3; do
        [[ -s $PKI/m$n/cert.pem ]] && continue
        "$SWARMCTL_BIN" cert issue --ca "$PKI/ca" --kind manager --cn "swarm-m$n" \
            --san "$IP" --san localhost --out "$PKI/m$n" >/dev/null
    done
    if [[ ! -s $PKI/client/cert.pem ]]; then
        "$SWARMCTL_BIN" cert issue --ca "$PKI/ca" --kind client --cn operator \
            --out "$PKI/client" >/dev/null
    fi
    # HAProxy's health checks show the client certificate: cert and key in one file.
    cat "$PKI/client/cert.pem" "$PKI/client/key.pem" >"$PKI/haproxy.pem"
    chmod 600 "$PKI/haproxy.pem"
}

# voters PORT: how many reachable voters (leader or follower) PORT reports.
voters() {
    members "$1" | awk 'NR > 1 && ($4 == "leader" || $4 == "follower") && $8 == "true"' | wc -l
}

# wait_for SECONDS WHAT CMD...: runs CMD every 0.3 s until it succeeds.
wait_for() {
    local timeout=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + timeout))
    until "$@"; do
        ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what (logs: $STATE_DIR/*.log)"
        sleep 0.3
    done
}

# discovery_url ARG: the discovery URL for ARG (default the local engine).
discovery_url() {
    local d=${1:-unix:///var/run/docker.sock}
    case $d in
        nodes://* | file://*) echo "$d" ;;
        *) echo "nodes://$d" ;;
    esac
}

# start_manager N DISCOVERY: starts manager N (1-based) in its own session.
start_manager() {
    local n=$1 discovery=$2 i=$(($1 - 1))
    local dir="$STATE_DIR/m$n"
    local args=(manage -H "tcp://$IP:${API_PORTS[$i]}" --raft-addr "$IP:${RAFT_PORTS[$i]}"
        --data-dir "$dir/data")
    if [[ $TLS == 1 ]]; then
        args+=(--tlsverify --tlscacert "$PKI/m$n/ca.pem" --tlscert "$PKI/m$n/cert.pem"
            --tlskey "$PKI/m$n/key.pem" "--engine-tls=$ENGINE_TLS")
    fi
    if ((n > 1)); then
        args+=(--join "$IP:${API_PORTS[0]}")
    fi
    args+=("$discovery")
    mkdir -p "$dir"
    log "m$n: $SWARM_BIN ${args[*]}"
    setsid "$SWARM_BIN" "${args[@]}" </dev/null >>"$STATE_DIR/m$n.log" 2>&1 &
    echo $! >"$STATE_DIR/m$n.pid"
}

# any_manager_port: the API port of a manager that answers, if any.
any_manager_port() {
    local port
    for port in "${API_PORTS[@]}"; do
        if http_ok "$port" /_ping; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# has_leader PORT: whether the manager on PORT reports a leader.
has_leader() {
    members "$1" | awk 'NR > 1 && $4 == "leader" { found = 1 } END { exit !found }'
}

# is_voter PORT: whether some manager lists the one with API port PORT as a
# reachable voter.
is_voter() {
    local port any
    any=$(any_manager_port) || return 1
    port=$1
    members "$any" | awk -v addr="$IP:$port" \
        'NR > 1 && $2 == addr && ($4 == "leader" || $4 == "follower") && $8 == "true" { found = 1 }
         END { exit !found }'
}

ensure_haproxy() {
    command -v haproxy >/dev/null && return 0
    log "installing haproxy (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y haproxy >/dev/null || { apt-get update >/dev/null && apt-get install -y haproxy >/dev/null; }
    command -v haproxy >/dev/null || die "haproxy is not installed and apt-get could not install it"
}

cmd_up() {
    local discovery n i started=0
    discovery=$(discovery_url "${1:-}")
    [[ -x $SWARM_BIN ]] || die "$SWARM_BIN missing: cargo build --release (or set SWARM_BIN)"
    [[ -x $SWARMCTL_BIN ]] || die "$SWARMCTL_BIN missing: cargo build --release (or set SWARMCTL_BIN)"
    "$SWARM_BIN" manage --help | grep -q -- '--raft-addr' ||
        die "$SWARM_BIN has no --raft-addr: this build has no HA managers"
    mkdir -p "$STATE_DIR"
    ensure_pki

    # All at once: restarted from their data dirs, one alone has no quorum;
    # a fresh m2 or m3 retries its join until m1 has bootstrapped.
    for n in 1 2 3; do
        if is_running "$STATE_DIR/m$n.pid" "$(manager_pattern "$n")"; then
            log "m$n: already running (pid $(<"$STATE_DIR/m$n.pid"))"
            continue
        fi
        start_manager "$n" "$discovery"
        started=1
    done
    for n in 1 2 3; do
        i=$((n - 1))
        wait_for "$READY_TIMEOUT" "m$n to answer /_ping" http_ok "${API_PORTS[$i]}" /_ping
    done
    wait_for "$READY_TIMEOUT" "a leader" has_leader "${API_PORTS[0]}"
    for n in 1 2 3; do
        wait_for "$READY_TIMEOUT" "m$n to be a voter" is_voter "${API_PORTS[$((n - 1))]}"
    done

    if is_running "$STATE_DIR/haproxy.pid" "$HAPROXY_CFG"; then
        log "haproxy: already running (pid $(<"$STATE_DIR/haproxy.pid"))"
    else
        ensure_haproxy
        export SWARM_PKI="$PKI"
        haproxy -c -q -f "$HAPROXY_CFG" || die "haproxy refuses $HAPROXY_CFG"
        haproxy -D -p "$STATE_DIR/haproxy.pid" -f "$HAPROXY_CFG"
        log "haproxy: listening on $IP:$VIP_PORT (pid $(<"$STATE_DIR/haproxy.pid"))"
        started=1
    fi
    wait_for "$READY_TIMEOUT" "the VIP $IP:$VIP_PORT to answer /_ping" http_ok "$VIP_PORT" /_ping
    vip_has_three() { (($(voters "$VIP_PORT") == 3)); }
    wait_for "$READY_TIMEOUT" "3 reachable voters through the VIP" vip_has_three
    ((started)) || log "everything was running already"
    if [[ $TLS == 1 ]]; then
        log "use: export DOCKER_HOST=tcp://$IP:$VIP_PORT DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$PKI/client"
    fi
    cmd_status
}

cmd_status() {
    local n i rc=0 state
    echo "# swarmctl --manager tcp://$IP:$VIP_PORT members"
    swarmctl --manager "tcp://$IP:$VIP_PORT" members || rc=1
    echo
    for n in 1 2 3; do
        i=$((n - 1))
        state=stopped
        is_running "$STATE_DIR/m$n.pid" "$(manager_pattern "$n")" && state="running pid $(<"$STATE_DIR/m$n.pid")"
        printf 'm%s  api %s:%s  raft %s:%s  %s\n' "$n" "$IP" "${API_PORTS[$i]}" "$IP" "${RAFT_PORTS[$i]}" "$state"
    done
    state=stopped
    is_running "$STATE_DIR/haproxy.pid" "$HAPROXY_CFG" && state="running pid $(<"$STATE_DIR/haproxy.pid")"
    printf 'haproxy  %s:%s  %s\n' "$IP" "$VIP_PORT" "$state"
    return "$rc"
}

cmd_leader_pid() {
    local addr port n
    addr=$(members "$VIP_PORT" | awk 'NR > 1 && $4 == "leader" { print $2; exit }')
    [[ -n $addr ]] || die "no leader reported through $IP:$VIP_PORT"
    port=${addr##*:}
    for n in 1 2 3; do
        if [[ ${API_PORTS[$((n - 1))]} == "$port" ]]; then
            is_running "$STATE_DIR/m$n.pid" "$(manager_pattern "$n")" || die "leader m$n ($addr) has no live pid"
            cat "$STATE_DIR/m$n.pid"
            return 0
        fi
    done
    die "leader $addr is not one of this script's managers"
}

# stop PIDFILE PATTERN NAME: SIGTERM, up to 10 s, then SIGKILL.
stop() {
    local pidfile=$1 pattern=$2 name=$3 pid
    if is_running "$pidfile" "$pattern"; then
        pid=$(<"$pidfile")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "$name: stopped (pid $pid)"
    fi
    rm -f "$pidfile"
}

cmd_down() {
    local n
    stop "$STATE_DIR/haproxy.pid" "$HAPROXY_CFG" haproxy
    for n in 3 2 1; do
        stop "$STATE_DIR/m$n.pid" "$(manager_pattern "$n")" "m$n"
    done
}

case "${1:-}" in
    up) cmd_up "${2:-}" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    leader-pid) cmd_leader_pid ;;
    *)
        echo "usage: $0 up [DISCOVERY] | status | leader-pid | down" >&2
        exit 2
        ;;
esac
