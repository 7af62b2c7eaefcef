//! The validated configuration: what [`crate::validate()`] makes of a set of objects, parsed and
//! cross-checked, ready for the allocator and the speakers. Nothing here needs re-checking.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use ipnetwork::IpNetwork;

use crate::selector::Selector;

/// The whole validated configuration. Every list is sorted by object name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// IPAddressPools.
    pub pools: Vec<Pool>,
    /// BGPPeers.
    pub peers: Vec<Peer>,
    /// BGPAdvertisements, with communities resolved and pools selected.
    pub bgp_advertisements: Vec<BgpAd>,
    /// L2Advertisements, with pools selected.
    pub l2_advertisements: Vec<L2Ad>,
    /// BFDProfiles.
    pub bfd_profiles: Vec<Bfd>,
    /// Community aliases from every Community object, by alias name.
    pub community_aliases: BTreeMap<String, BgpCommunity>,
}

impl Config {
    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The peer called `name`.
    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == name)
    }

    /// The pool holding `ip`, if any (pools never overlap, so there is at most one).
    pub fn pool_of(&self, ip: IpAddr) -> Option<&Pool> {
        self.pools.iter().find(|p| p.contains(ip))
    }

    /// The BGP advertisements that apply to the pool called `pool`.
    pub fn bgp_advertisements_for<'a>(
        &'a self,
        pool: &'a str,
    ) -> impl Iterator<Item = &'a BgpAd> + 'a {
        self.bgp_advertisements
            .iter()
            .filter(move |a| a.pools.iter().any(|p| p == pool))
    }

    /// The L2 advertisements that apply to the pool called `pool`.
    pub fn l2_advertisements_for<'a>(
        &'a self,
        pool: &'a str,
    ) -> impl Iterator<Item = &'a L2Ad> + 'a {
        self.l2_advertisements
            .iter()
            .filter(move |a| a.pools.iter().any(|p| p == pool))
    }
}

/// A validated IPAddressPool.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `metadata.labels` (for `ipAddressPoolSelectors`).
    pub labels: BTreeMap<String, String>,
    /// The addresses, as CIDRs with host bits cleared, in declaration order; `start-end` ranges are
    /// summarised into the minimal list of CIDRs covering exactly the range.
    pub cidrs: Vec<IpNetwork>,
    /// `spec.autoAssign`.
    pub auto_assign: bool,
    /// `spec.avoidBuggyIPs`: skip IPv4 addresses ending in `.0` or `.255`.
    pub avoid_buggy_ips: bool,
    /// `spec.serviceAllocation`; `None` when absent (the pool then serves any Service).
    pub service_allocation: Option<PoolAllocation>,
}

impl Pool {
    /// Whether `ip` lies in one of the pool's CIDRs.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidrs.iter().any(|c| c.contains(ip))
    }

    /// Whether the pool holds IPv4 addresses.
    pub fn has_ipv4(&self) -> bool {
        self.cidrs.iter().any(IpNetwork::is_ipv4)
    }

    /// Whether the pool holds IPv6 addresses.
    pub fn has_ipv6(&self) -> bool {
        self.cidrs.iter().any(IpNetwork::is_ipv6)
    }
}

/// A pool's `serviceAllocation`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolAllocation {
    /// Lower is preferred; 0 is the lowest priority.
    pub priority: i32,
    /// Namespaces allowed by name.
    pub namespaces: Vec<String>,
    /// Namespaces allowed by label.
    pub namespace_selectors: Vec<Selector>,
    /// Services allowed by label (empty: every Service of an allowed namespace).
    pub service_selectors: Vec<Selector>,
}

/// The remote AS of a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerAsn {
    /// `peerASN`.
    Fixed(u32),
    /// `dynamicASN: internal`: any AS equal to the local AS.
    Internal,
    /// `dynamicASN: external`: any AS other than the local AS.
    External,
}

/// Where the session goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerTarget {
    /// `peerAddress`.
    Address(IpAddr),
    /// `interface` (unnumbered BGP).
    Interface(String),
}

/// The TCP-MD5 password of a session.
#[derive(Clone, PartialEq, Eq)]
pub enum PeerPassword {
    /// `password`, given inline.
    Literal(String),
    /// `passwordSecret`: the key `password` of a `kubernetes.io/basic-auth` Secret.
    Secret {
        /// The Secret's namespace, when the reference names one.
        namespace: Option<String>,
        /// The Secret's name.
        name: String,
        /// The password, when the Secret was among the validated objects (standalone manifests).
        password: Option<String>,
    },
}

impl fmt::Debug for PeerPassword {
    /// Never prints the password itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerPassword::Literal(_) => f.write_str("Literal(<redacted>)"),
            PeerPassword::Secret {
                namespace,
                name,
                password,
            } => f
                .debug_struct("Secret")
                .field("namespace", namespace)
                .field("name", name)
                .field("password", &password.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

/// A validated BGPPeer.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `myASN` (non-zero).
    pub my_asn: u32,
    /// `peerASN` or `dynamicASN`.
    pub peer_asn: PeerAsn,
    /// `localASN`: the AS presented to this peer instead of `myASN`.
    pub local_asn: Option<u32>,
    /// `peerAddress` or `interface`.
    pub target: PeerTarget,
    /// `sourceAddress` (same family as the peer address).
    pub source_address: Option<IpAddr>,
    /// `peerPort` (1..=16384, default 179).
    pub port: u16,
    /// The hold time to propose: `holdTime`, else three times `keepaliveTime`, else 90 s. Zero disables
    /// the hold timer and keepalives.
    pub hold_time: Duration,
    /// The keepalive interval: `keepaliveTime`, else a third of the hold time (whole seconds).
    pub keepalive_time: Duration,
    /// `connectTime` (1..=65535 s), the ConnectRetry base.
    pub connect_time: Option<Duration>,
    /// `routerID`.
    pub router_id: Option<Ipv4Addr>,
    /// `nodeSelectors` (empty: every node).
    pub node_selectors: Vec<Selector>,
    /// `password` or `passwordSecret`.
    pub password: Option<PeerPassword>,
    /// `bfdProfile` (an existing BFDProfile).
    pub bfd_profile: Option<String>,
    /// `enableGracefulRestart`.
    pub enable_graceful_restart: bool,
    /// `ebgpMultiHop` (never set for iBGP).
    pub ebgp_multi_hop: bool,
    /// `vrf`.
    pub vrf: Option<String>,
    /// `disableMP` (deprecated).
    pub disable_mp: bool,
    /// `dualStackAddressFamily`.
    pub dual_stack_address_family: bool,
}

impl Peer {
    /// The AS this end presents: `localASN` if set, else `myASN`.
    pub fn local_as(&self) -> u32 {
        self.local_asn.unwrap_or(self.my_asn)
    }

    /// Whether the session is internal BGP (both ends in one AS).
    pub fn is_ibgp(&self) -> bool {
        match self.peer_asn {
            PeerAsn::Fixed(asn) => asn == self.local_as(),
            PeerAsn::Internal => true,
            PeerAsn::External => false,
        }
    }

    /// The peer address, unless the session is unnumbered.
    pub fn address(&self) -> Option<IpAddr> {
        match self.target {
            PeerTarget::Address(ip) => Some(ip),
            PeerTarget::Interface(_) => None,
        }
    }
}

/// A BGP community value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BgpCommunity {
    /// A standard community (RFC 1997), `AA:NN` as `AA << 16 | NN`.
    Standard(u32),
    /// A large community (RFC 8092), `large:A:B:C`.
    Large(u32, u32, u32),
}

impl fmt::Display for BgpCommunity {
    /// The form accepted in manifests: `65000:100` or `large:65000:1:2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BgpCommunity::Standard(v) => write!(f, "{}:{}", v >> 16, v & 0xffff),
            BgpCommunity::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
        }
    }
}

impl FromStr for BgpCommunity {
    type Err = String;

    /// `AA:NN` (two numbers 0..=65535) or `large:A:B:C` (three numbers 0..=4294967295).
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("large:") {
            let parts: Vec<&str> = rest.split(':').collect();
            if parts.len() != 3 {
                return Err(format!(
                    "large community {s:?} must have the form large:A:B:C"
                ));
            }
            let mut n = [0u32; 3];
            for (slot, part) in n.iter_mut().zip(&parts) {
                *slot = parse_decimal::<u32>(part).ok_or_else(|| {
                    format!("large community {s:?}: {part:?} is not a number from 0 to 4294967295")
                })?;
            }
            return Ok(BgpCommunity::Large(n[0], n[1], n[2]));
        }
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 2 {
            return Err(format!(
                "{s:?} is not a community: use AA:NN (two numbers 0-65535), large:A:B:C, or the name of a Community alias"
            ));
        }
        let mut n = [0u16; 2];
        for (slot, part) in n.iter_mut().zip(&parts) {
            *slot = parse_decimal::<u16>(part).ok_or_else(|| {
                format!("community {s:?}: {part:?} is not a number from 0 to 65535")
            })?;
        }
        Ok(BgpCommunity::Standard(
            u32::from(n[0]) << 16 | u32::from(n[1]),
        ))
    }
}

/// Plain decimal digits only (no sign, no spaces), in range for `T`.
fn parse_decimal<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A validated BGPAdvertisement.
#[derive(Clone, Debug, PartialEq)]
pub struct BgpAd {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `aggregationLength` (1..=32).
    pub aggregation_length: u8,
    /// `aggregationLengthV6` (1..=128).
    pub aggregation_length_v6: u8,
    /// `localPref`.
    pub local_pref: Option<u32>,
    /// `communities`, aliases resolved, duplicates removed, in declaration order.
    pub communities: Vec<BgpCommunity>,
    /// The pools this advertisement applies to (names and selectors resolved; every pool when neither
    /// is given), sorted.
    pub pools: Vec<String>,
    /// `nodeSelectors` (empty: every node).
    pub node_selectors: Vec<Selector>,
    /// `peers` by name (empty: every peer).
    pub peers: Vec<String>,
    /// `serviceSelectors` (empty: every Service).
    pub service_selectors: Vec<Selector>,
}

impl BgpAd {
    /// Whether the advertisement goes to the peer called `peer`.
    pub fn targets_peer(&self, peer: &str) -> bool {
        self.peers.is_empty() || self.peers.iter().any(|p| p == peer)
    }
}

/// A validated L2Advertisement.
#[derive(Clone, Debug, PartialEq)]
pub struct L2Ad {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// The pools this advertisement applies to (resolved like [`BgpAd::pools`]), sorted.
    pub pools: Vec<String>,
    /// `nodeSelectors` (empty: every node).
    pub node_selectors: Vec<Selector>,
    /// `interfaces` (empty: every eligible interface).
    pub interfaces: Vec<String>,
    /// `serviceSelectors` (empty: every Service).
    pub service_selectors: Vec<Selector>,
    /// `preferredNodeSelectors`.
    pub preferred_node_selectors: Vec<NodePreference>,
}

/// A weighted node preference of an L2Advertisement.
#[derive(Clone, Debug, PartialEq)]
pub struct NodePreference {
    /// 1..=100.
    pub weight: u8,
    /// The preferred nodes.
    pub selector: Selector,
}

/// A validated BFDProfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bfd {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `receiveInterval`.
    pub receive_interval: Duration,
    /// `transmitInterval`.
    pub transmit_interval: Duration,
    /// `detectMultiplier` (2..=255).
    pub detect_multiplier: u8,
    /// `echoInterval`.
    pub echo_interval: Duration,
    /// `echoMode`.
    pub echo_mode: bool,
    /// `passiveMode`.
    pub passive_mode: bool,
    /// `minimumTtl` (1..=254).
    pub minimum_ttl: u8,
}

/// One entry of `IPAddressPool.spec.addresses`, parsed: a CIDR or an inclusive `start-end` range,
/// as the inclusive interval of addresses it covers and the CIDRs that cover exactly that interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressRange {
    /// First address.
    pub first: IpAddr,
    /// Last address (same family as `first`).
    pub last: IpAddr,
    /// The CIDRs covering exactly `first..=last`, host bits cleared.
    pub cidrs: Vec<IpNetwork>,
}

impl FromStr for AddressRange {
    type Err = String;

    /// A CIDR (`198.51.100.0/24`, `2001:db8::/120`; host bits are cleared like Go's `net.ParseCIDR`)
    /// or a `start-end` range split at the first `-` with whitespace trimmed, `start <= end`, both of one
    /// family.
    fn from_str(entry: &str) -> Result<Self, String> {
        let s = entry.trim();
        if s.is_empty() {
            return Err("empty address range".into());
        }
        if let Some((start, end)) = s.split_once('-') {
            let (start, end) = (start.trim(), end.trim());
            let first: IpAddr = start
                .parse()
                .map_err(|_| format!("range start {start:?} is not an IP address"))?;
            let last: IpAddr = end
                .parse()
                .map_err(|_| format!("range end {end:?} is not an IP address"))?;
            if first.is_ipv4() != last.is_ipv4() {
                return Err(format!("range {s:?} mixes IPv4 and IPv6"));
            }
            if first > last {
                return Err(format!(
                    "range {s:?} is reversed: start {first} is after end {last}"
                ));
            }
            let cidrs = range_to_cidrs(first, last);
            return Ok(AddressRange { first, last, cidrs });
        }
        let Some((addr, len)) = s.split_once('/') else {
            let hint = match s.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => format!(": write a single address as {s}/32"),
                Ok(IpAddr::V6(_)) => format!(": write a single address as {s}/128"),
                Err(_) => String::new(),
            };
            return Err(format!(
                "{s:?} is neither a CIDR nor a start-end range{hint}"
            ));
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?}: {addr:?} is not an IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = match len.parse() {
            Ok(p) if len.bytes().all(|b| b.is_ascii_digit()) && p <= max => p,
            _ => {
                return Err(format!(
                    "{s:?}: prefix length {len:?} must be a number from 0 to {max}"
                ))
            }
        };
        let net = IpNetwork::new(ip, prefix).map_err(|e| format!("{s:?}: {e}"))?;
        let net =
            IpNetwork::new(net.network(), prefix).expect("the network address fits its own prefix");
        let last = match net {
            IpNetwork::V4(n) => IpAddr::V4(n.broadcast()),
            IpNetwork::V6(n) => IpAddr::V6(n.broadcast()),
        };
        Ok(AddressRange {
            first: net.network(),
            last,
            cidrs: vec![net],
        })
    }
}

/// An address as a number, and its family width in bits.
pub(crate) fn ip_to_u128(ip: IpAddr) -> (u128, u32) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

fn u128_to_ip(v: u128, bits: u32) -> IpAddr {
    if bits == 32 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(v.into())
    }
}

/// The minimal list of CIDRs covering exactly `first..=last` (same family, `first <= last`).
pub fn range_to_cidrs(first: IpAddr, last: IpAddr) -> Vec<IpNetwork> {
    let (mut cur, bits) = ip_to_u128(first);
    let (end, _) = ip_to_u128(last);
    let mut out = Vec::new();
    loop {
        // Largest block aligned at `cur`...
        let align = if cur == 0 {
            bits
        } else {
            cur.trailing_zeros().min(bits)
        };
        // ...that does not run past `end`: the largest k with 2^k <= end - cur + 1.
        let span = end - cur; // number of addresses minus one
        let fit = if span == u128::MAX {
            128
        } else {
            127 - (span + 1).leading_zeros()
        };
        let k = align.min(fit);
        let prefix = (bits - k) as u8;
        out.push(
            IpNetwork::new(u128_to_ip(cur, bits), prefix).expect("prefix within family width"),
        );
        let size_minus_one = if k == 128 {
            u128::MAX
        } else {
            (1u128 << k) - 1
        };
        let block_end = cur + size_minus_one;
        if block_end >= end {
            break;
        }
        cur = block_end + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(s: &str) -> Vec<String> {
        s.parse::<AddressRange>()
            .unwrap()
            .cidrs
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    #[test]
    fn cidrs_and_ranges() {
        assert_eq!(cidrs("198.51.100.0/24"), ["198.51.100.0/24"]);
        assert_eq!(
            cidrs("  198.51.100.7/24 "),
            ["198.51.100.0/24"],
            "host bits cleared, whitespace trimmed"
        );
        assert_eq!(cidrs("2001:db8::/120"), ["2001:db8::/120"]);
        assert_eq!(cidrs("203.0.113.5/32"), ["203.0.113.5/32"]);
        assert_eq!(cidrs("203.0.113.10-203.0.113.10"), ["203.0.113.10/32"]);
        assert_eq!(cidrs("203.0.113.0 - 203.0.113.255"), ["203.0.113.0/24"]);
        assert_eq!(
            cidrs("203.0.113.10-203.0.113.20"),
            [
                "203.0.113.10/31",
                "203.0.113.12/30",
                "203.0.113.16/30",
                "203.0.113.20/32"
            ]
        );
        assert_eq!(
            cidrs("2001:db8::1-2001:db8::4"),
            ["2001:db8::1/128", "2001:db8::2/127", "2001:db8::4/128"]
        );
        assert_eq!(cidrs("0.0.0.0-255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(
            cidrs("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ["::/0"]
        );
        let r: AddressRange = "100.64.0.0/10".parse().unwrap();
        assert_eq!(r.first.to_string(), "100.64.0.0");
        assert_eq!(r.last.to_string(), "100.127.255.255");
    }

    #[test]
    fn bad_address_ranges() {
        for (bad, needle) in [
            ("", "empty"),
            ("198.51.100.7", "198.51.100.7/32"),
            ("2001:db8::7", "2001:db8::7/128"),
            ("198.51.100.0/33", "prefix length"),
            ("198.51.100.0/", "prefix length"),
            ("198.51.100.0/+8", "prefix length"),
            ("2001:db8::/129", "prefix length"),
            ("198.51.100.300/24", "not an IP address"),
            ("203.0.113.20-203.0.113.10", "reversed"),
            ("203.0.113.1-2001:db8::1", "mixes IPv4 and IPv6"),
            ("203.0.113.1-", "range end"),
            ("-203.0.113.1", "range start"),
            ("pool-a", "range start"),
        ] {
            let err = bad.parse::<AddressRange>().unwrap_err();
            assert!(err.contains(needle), "{bad:?}: {err}");
        }
    }

    #[test]
    fn communities() {
        assert_eq!(
            "65535:65282".parse(),
            Ok(BgpCommunity::Standard(0xffff_ff02))
        );
        assert_eq!("0:0".parse(), Ok(BgpCommunity::Standard(0)));
        assert_eq!(
            "large:4294967295:1:0".parse(),
            Ok(BgpCommunity::Large(u32::MAX, 1, 0))
        );
        for bad in [
            "65536:1",
            "1:65536",
            "1",
            "1:2:3",
            "a:b",
            "-1:2",
            "+1:2",
            " 1:2",
            "large:1:2",
            "large:1:2:4294967296",
            "large:",
        ] {
            assert!(bad.parse::<BgpCommunity>().is_err(), "{bad}");
        }
        assert_eq!(
            BgpCommunity::Standard(0xffff_ff02).to_string(),
            "65535:65282"
        );
        assert_eq!(BgpCommunity::Large(1, 2, 3).to_string(), "large:1:2:3");
    }

    #[test]
    fn passwords_are_not_printed() {
        let p = PeerPassword::Literal("hunter2".into());
        assert!(!format!("{p:?}").contains("hunter2"));
        let s = PeerPassword::Secret {
            namespace: None,
            name: "s".into(),
            password: Some("hunter2".into()),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Summarised ranges cover exactly the range, in order, without gaps or overlaps.
            #[test]
            fn range_summary_is_exact(a in any::<u32>(), b in any::<u32>()) {
                let (lo, hi) = (a.min(b), a.max(b));
                let nets = range_to_cidrs(IpAddr::V4(lo.into()), IpAddr::V4(hi.into()));
                let mut next = u64::from(lo);
                for n in &nets {
                    let IpNetwork::V4(n) = n else { panic!("family changed") };
                    prop_assert_eq!(u64::from(u32::from(n.network())), next);
                    next = u64::from(u32::from(n.broadcast())) + 1;
                }
                prop_assert_eq!(next, u64::from(hi) + 1);
                prop_assert!(nets.len() <= 62);
            }

            #[test]
            fn v6_range_summary_is_exact(a in any::<u128>(), b in any::<u128>()) {
                let (lo, hi) = (a.min(b), a.max(b));
                let nets = range_to_cidrs(IpAddr::V6(lo.into()), IpAddr::V6(hi.into()));
                let mut next = Some(lo);
                for n in &nets {
                    let IpNetwork::V6(n) = n else { panic!("family changed") };
                    prop_assert_eq!(Some(u128::from(n.network())), next);
                    next = u128::from(n.broadcast()).checked_add(1);
                }
                prop_assert_eq!(next, hi.checked_add(1));
                prop_assert!(nets.len() <= 254);
            }
        }
    }
}
