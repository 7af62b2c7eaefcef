#!/usr/bin/env bash
# The ferrolb lab: a router, three nodes, a client and a layer-2 segment in network namespaces on this
# machine, with ferrolb announcing Service IPs over BGP (ECMP) and layer 2, and a failover you can watch.
#
#   sudo ./lab.sh        build, run the lab, clean up (run it again at will)
#   sudo ./lab.sh down   remove what an interrupted run left behind
#
# Needs: root, a kernel with network namespaces, Rust (cargo). Installs FRR and iproute2 when missing
# (Debian/Ubuntu). Touches no interface outside the namespaces it creates.
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" -ne 0 ]; then
  echo "lab: needs root (network namespaces, FRR): sudo ./lab.sh" >&2
  exit 2
fi
if ! ip netns add ferrolb-lab-probe 2>/dev/null; then
  echo "lab: this kernel or container does not allow network namespaces (ip netns add failed)." >&2
  echo "     Run it on a VM or bare-metal Linux host, or a container with CAP_SYS_ADMIN." >&2
  exit 2
fi
ip netns del ferrolb-lab-probe

need=()
for pair in frr:/usr/lib/frr/bgpd iproute2:/usr/sbin/ip; do
  pkg=${pair%%:*}; bin=${pair#*:}
  [ -x "$bin" ] || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "lab: please install ${need[*]} (no apt-get here)" >&2
    exit 2
  fi
  echo "lab: installing ${need[*]}"
  # Package scripts must not start FRR's own daemons: the lab starts its own inside a namespace.
  created_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
  [ -z "$created_policy" ] || rm -f /usr/sbin/policy-rc.d
fi
if ! command -v cargo >/dev/null; then
  echo "lab: Rust is needed to build ferrolb: https://rustup.rs" >&2
  exit 2
fi

echo "lab: building ferrolb (release)"
cargo build --release -q -p ferrolb-speaker --bin ferrolb -p ferrolb-interop-tests --bin ferrolb-lab
exec target/release/ferrolb-lab "${1:-up}"
