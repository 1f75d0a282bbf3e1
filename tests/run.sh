#!/usr/bin/env bash
# Runs every check and test of the workspace on a fresh machine of this kind:
# installs what the tests need (busybox-static for the test image, dockerd and
# iproute2 for the extra engines, docker-compose and openssl for the TLS
# tests, etcd-server as the engines' cluster store in the overlay network
# tests and as the store of the etcd discovery tests, docker-registry and
# apache2-utils (htpasswd) for the registry tests, zookeeper (its jars, run
# as a standalone server) for the zk:// discovery tests, haproxy in front of
# the chaos run's managers and fonts-dejavu-core for the text of its
# timeline's PNG), then formatting,
# lints, unit and integration tests (the integration tests start their own
# Docker engines, etcd, registry and ZooKeeper).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /bin/busybox ] || need+=(busybox-static)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v perl >/dev/null 2>&1 || need+=(perl)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >/dev/null 2>&1 || true

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Each test process ends itself after 10 minutes (the harness's watchdog
# prints where it hung); this bounds the whole run as a last resort.
timeout -k 30 3000 cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line over all test binaries.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
