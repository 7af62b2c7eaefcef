//! The BGP Identifier (router ID, RFC 6286): a non-zero 32-bit value unique within the AS. Configured, or
//! derived so that it is the same across restarts of one node and different between nodes.

use std::net::{IpAddr, Ipv4Addr};

/// Interface name prefixes whose addresses are the same on every node (container bridges, CNI, tunnels)
/// and so must never become a router ID.
const SHARED_INTERFACE_PREFIXES: &[&str] = &[
    "lo",
    "docker",
    "cni",
    "flannel",
    "cali",
    "cilium",
    "veth",
    "kube-ipvs",
    "vxlan",
    "tunl",
    "virbr",
    "podman",
    "weave",
];

/// Chooses the router ID: the configured one; else the first usable IPv4 address among `preferred`
/// (e.g. the Kubernetes node's InternalIP, or the host's addresses in a stable order); else a stable
/// hash of `seed` (e.g. the node name).
pub fn router_id(configured: Option<Ipv4Addr>, preferred: &[IpAddr], seed: &str) -> Ipv4Addr {
    if let Some(id) = configured.filter(|id| !id.is_unspecified()) {
        return id;
    }
    let usable = |a: &Ipv4Addr| {
        !(a.is_unspecified()
            || a.is_loopback()
            || a.is_link_local()
            || a.is_multicast()
            || a.is_broadcast())
    };
    preferred
        .iter()
        .find_map(|a| match a {
            IpAddr::V4(v4) if usable(v4) => Some(*v4),
            _ => None,
        })
        .unwrap_or_else(|| hashed_id(seed))
}

/// The host's IPv4 addresses usable as a router ID, lowest first, skipping interfaces that every node
/// has with the same address.
pub fn host_addresses() -> Vec<IpAddr> {
    let mut addrs: Vec<IpAddr> = crate::sys::interface_addresses()
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _)| {
            !SHARED_INTERFACE_PREFIXES
                .iter()
                .any(|p| name.starts_with(p))
        })
        .map(|(_, a)| a)
        .filter(IpAddr::is_ipv4)
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs
}

/// FNV-1a of the seed, never zero.
fn hashed_id(seed: &str) -> Ipv4Addr {
    let mut h: u32 = 0x811c_9dc5;
    for b in seed.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    Ipv4Addr::from(if h == 0 { 1 } else { h })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_wins() {
        let id = router_id(
            Some(Ipv4Addr::new(198, 51, 100, 7)),
            &["203.0.113.1".parse().unwrap()],
            "n",
        );
        assert_eq!(id, Ipv4Addr::new(198, 51, 100, 7));
    }

    #[test]
    fn first_usable_preferred_address() {
        let prefs: Vec<IpAddr> = [
            "2001:db8::1",
            "127.0.0.1",
            "169.254.1.1",
            "203.0.113.9",
            "198.51.100.1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(
            router_id(None, &prefs, "node-a"),
            Ipv4Addr::new(203, 0, 113, 9)
        );
    }

    #[test]
    fn hash_is_stable_distinct_and_non_zero() {
        let a = router_id(None, &[], "node-a");
        assert_eq!(a, router_id(None, &[], "node-a"));
        assert_ne!(a, router_id(None, &[], "node-b"));
        assert!(!a.is_unspecified());
    }
}
