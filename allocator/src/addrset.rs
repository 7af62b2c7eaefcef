//! Free addresses of one CIDR, as a set of free intervals.
//!
//! MetalLB walks a CIDR from its first address on every allocation (O(pool size)). Here each CIDR keeps its free
//! addresses as disjoint intervals in a `BTreeMap<start, end>`: the lowest free address is the first interval's
//! start (O(log k)), and taking or returning one address splits or merges at most two intervals (O(log k)),
//! where k ≤ held addresses + 1 is the number of intervals. Memory is proportional to fragmentation, never to
//! the CIDR's size, so an IPv6 /64 costs one interval.
//!
//! `avoidBuggyIPs` is handled by numbering only the allowed addresses: in IPv4 every /24 contributes its
//! addresses .1–.254 as 254 consecutive indices. The mapping preserves order, so "lowest free index" is still
//! "first free address in CIDR order", and the skipped addresses never appear as tiny free intervals.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

use crate::service::IpFamily;

/// Disjoint, non-adjacent free intervals `[start, end]` of indices.
#[derive(Debug, Clone, Default)]
pub(crate) struct FreeRanges {
    ranges: BTreeMap<u128, u128>,
}

impl FreeRanges {
    fn full(lo: u128, hi: u128) -> Self {
        Self {
            ranges: BTreeMap::from([(lo, hi)]),
        }
    }

    fn first(&self) -> Option<u128> {
        self.ranges.first_key_value().map(|(&start, _)| start)
    }

    /// The interval containing `i`, if `i` is free.
    fn interval_of(&self, i: u128) -> Option<(u128, u128)> {
        let (&start, &end) = self.ranges.range(..=i).next_back()?;
        (i <= end).then_some((start, end))
    }

    /// Marks `i` used. Returns false if it was not free.
    fn take(&mut self, i: u128) -> bool {
        let Some((start, end)) = self.interval_of(i) else {
            return false;
        };
        self.ranges.remove(&start);
        if start < i {
            self.ranges.insert(start, i - 1);
        }
        if i < end {
            self.ranges.insert(i + 1, end);
        }
        true
    }

    /// Marks `i` free again, merging with its neighbours. Returns false if it was already free.
    fn put(&mut self, i: u128) -> bool {
        if self.interval_of(i).is_some() {
            return false;
        }
        let mut start = i;
        let mut end = i;
        if let Some(before) = i.checked_sub(1).and_then(|b| self.interval_of(b)) {
            self.ranges.remove(&before.0);
            start = before.0;
        }
        if let Some(after_end) = i.checked_add(1).and_then(|a| self.ranges.get(&a).copied()) {
            self.ranges.remove(&(i + 1));
            end = after_end;
        }
        self.ranges.insert(start, end);
        true
    }

    #[cfg(test)]
    fn intervals(&self) -> Vec<(u128, u128)> {
        self.ranges.iter().map(|(&s, &e)| (s, e)).collect()
    }
}

/// The allocatable addresses of one CIDR of a pool.
#[derive(Debug, Clone)]
pub(crate) struct AddressSpace {
    pub cidr: IpNetwork,
    pub family: IpFamily,
    avoid_buggy: bool,
    /// Inclusive index bounds of the allocatable addresses; None if there are none (e.g. `x.0/32` with
    /// avoidBuggyIPs).
    bounds: Option<(u128, u128)>,
    free: FreeRanges,
    /// Addresses of this space currently held by some Service.
    pub held: u64,
}

impl AddressSpace {
    pub fn new(cidr: IpNetwork, avoid_buggy_ips: bool) -> Self {
        let family = match cidr {
            IpNetwork::V4(_) => IpFamily::IPv4,
            IpNetwork::V6(_) => IpFamily::IPv6,
        };
        // Buggy firmware only concerns IPv4 (addresses ending in .0/.255).
        let avoid_buggy = avoid_buggy_ips && family == IpFamily::IPv4;
        let (first, last) = (to_u128(cidr.network()), to_u128(cidr.broadcast()));
        let bounds = if avoid_buggy {
            let lo = match first & 0xff {
                0 => first + 1,
                255 => first + 2,
                _ => first,
            };
            let hi = match last & 0xff {
                255 => Some(last - 1),
                0 => last.checked_sub(2),
                _ => Some(last),
            };
            hi.filter(|&hi| lo <= hi).map(|hi| (dense(lo), dense(hi)))
        } else {
            Some((first, last))
        };
        let free = bounds.map_or_else(FreeRanges::default, |(lo, hi)| FreeRanges::full(lo, hi));
        Self {
            cidr,
            family,
            avoid_buggy,
            bounds,
            free,
            held: 0,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidr.contains(ip)
    }

    /// The index of `ip` if it is an allocatable address of this space (inside the CIDR and not skipped).
    pub fn index_of(&self, ip: IpAddr) -> Option<u128> {
        if !self.contains(ip) {
            return None;
        }
        let a = to_u128(ip);
        if self.avoid_buggy {
            buggy_free_index(a)
        } else {
            Some(a)
        }
    }

    /// Whether `ip` is an address the pool may hand out (inside the CIDR and not a skipped buggy address).
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.index_of(ip).is_some()
    }

    fn addr_of(&self, index: u128) -> IpAddr {
        let a = if self.avoid_buggy {
            sparse(index)
        } else {
            index
        };
        from_u128(self.family, a)
    }

    /// The lowest free allocatable address.
    pub fn first_free(&self) -> Option<IpAddr> {
        self.free.first().map(|i| self.addr_of(i))
    }

    pub fn is_free(&self, ip: IpAddr) -> bool {
        self.index_of(ip)
            .is_some_and(|i| self.free.interval_of(i).is_some())
    }

    /// Marks an allocatable address used; returns false if it is not allocatable here or already used.
    pub fn take(&mut self, ip: IpAddr) -> bool {
        let taken = self.index_of(ip).is_some_and(|i| self.free.take(i));
        if taken {
            self.held += 1;
        }
        taken
    }

    /// Returns an address to the free set; returns false if it is not allocatable here or already free.
    pub fn put(&mut self, ip: IpAddr) -> bool {
        let put = self.index_of(ip).is_some_and(|i| self.free.put(i));
        if put {
            self.held -= 1;
        }
        put
    }

    /// Number of allocatable addresses, as pool status reports it: an IPv6 CIDR with ≥ 62 host bits counts
    /// as `i64::MAX` (MetalLB's rule, so sums never overflow).
    pub fn capacity(&self) -> i64 {
        let host_bits = match self.cidr {
            IpNetwork::V4(n) => 32 - u32::from(n.prefix()),
            IpNetwork::V6(n) => 128 - u32::from(n.prefix()),
        };
        if self.family == IpFamily::IPv6 && host_bits >= 62 {
            return i64::MAX;
        }
        // Below 2^62 here, so the conversion is exact.
        self.bounds.map_or(0, |(lo, hi)| (hi - lo + 1) as i64)
    }
}

/// Index of an IPv4 address among the addresses not ending in .0/.255, or None for those.
fn buggy_free_index(a: u128) -> Option<u128> {
    match a & 0xff {
        0 | 255 => None,
        _ => Some(dense(a)),
    }
}

fn dense(a: u128) -> u128 {
    (a >> 8) * 254 + (a & 0xff) - 1
}

fn sparse(i: u128) -> u128 {
    ((i / 254) << 8) | (i % 254 + 1)
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(family: IpFamily, a: u128) -> IpAddr {
    match family {
        IpFamily::IPv4 => IpAddr::V4(Ipv4Addr::from(a as u32)),
        IpFamily::IPv6 => IpAddr::V6(Ipv6Addr::from(a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn space(cidr: &str, buggy: bool) -> AddressSpace {
        AddressSpace::new(cidr.parse().unwrap(), buggy)
    }

    #[test]
    fn first_free_walks_in_address_order_and_reuses_freed_addresses() {
        let mut s = space("203.0.113.0/30", false);
        assert_eq!(
            s.first_free(),
            Some(ip("203.0.113.0")),
            "network address is allocatable without avoidBuggyIPs"
        );
        assert!(s.take(ip("203.0.113.0")));
        assert!(s.take(ip("203.0.113.1")));
        assert!(!s.take(ip("203.0.113.1")));
        assert_eq!(s.first_free(), Some(ip("203.0.113.2")));
        assert!(s.put(ip("203.0.113.0")));
        assert_eq!(
            s.first_free(),
            Some(ip("203.0.113.0")),
            "freed IPs are reused first, like MetalLB"
        );
        assert!(
            s.take(ip("203.0.113.0")) && s.take(ip("203.0.113.2")) && s.take(ip("203.0.113.3"))
        );
        assert_eq!(s.first_free(), None);
        assert_eq!(s.held, 4);
        assert!(!s.take(ip("198.51.100.1")), "outside the CIDR");
    }

    #[test]
    fn buggy_addresses_are_never_offered() {
        let mut s = space("198.51.100.254/31", true);
        assert_eq!(s.capacity(), 1);
        assert_eq!(s.first_free(), Some(ip("198.51.100.254")));
        assert!(!s.allows(ip("198.51.100.255")));
        assert!(s.take(ip("198.51.100.254")));
        assert_eq!(s.first_free(), None);

        let s = space("100.64.0.0/22", true);
        assert_eq!(s.capacity(), 4 * 254);
        assert_eq!(s.first_free(), Some(ip("100.64.0.1")));
        assert_eq!(space("100.64.1.0/32", true).capacity(), 0);
        assert_eq!(space("100.64.1.0/32", true).first_free(), None);
        assert_eq!(space("0.0.0.0/32", true).capacity(), 0);
        assert_eq!(space("255.255.255.255/32", true).capacity(), 0);
        assert_eq!(space("0.0.0.0/0", true).capacity(), (1i64 << 24) * 254);
        // IPv6 is unaffected.
        assert_eq!(space("2001:db8::/120", true).capacity(), 256);
    }

    #[test]
    fn huge_ipv6_cidrs_cost_one_interval() {
        let mut s = space("2001:db8::/32", false);
        assert_eq!(s.capacity(), i64::MAX);
        assert_eq!(s.first_free(), Some(ip("2001:db8::")));
        assert!(s.take(ip("2001:db8::")));
        assert_eq!(s.first_free(), Some(ip("2001:db8::1")));
        assert_eq!(s.free.intervals().len(), 1);
        let mut all = space("::/0", false);
        assert!(all.take(ip("::")) && all.take(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(all.put(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")) && all.put(ip("::")));
        assert_eq!(all.free.intervals(), vec![(0, u128::MAX)]);
        assert_eq!(space("2001:db8::/67", false).capacity(), 1 << 61);
    }

    proptest! {
        /// The interval set behaves exactly like a naive set of free addresses.
        #[test]
        fn free_ranges_match_a_naive_set(ops in proptest::collection::vec((any::<bool>(), 0u128..64), 0..200)) {
            let mut ranges = FreeRanges::full(0, 63);
            let mut naive: BTreeSet<u128> = (0..64).collect();
            for (take, i) in ops {
                if take {
                    prop_assert_eq!(ranges.take(i), naive.remove(&i));
                } else {
                    prop_assert_eq!(ranges.put(i), naive.insert(i));
                }
                prop_assert_eq!(ranges.first(), naive.first().copied());
                // Intervals are disjoint and never adjacent (always merged).
                let iv = ranges.intervals();
                for w in iv.windows(2) {
                    prop_assert!(w[0].1 + 1 < w[1].0);
                }
                let count: u128 = iv.iter().map(|(s, e)| e - s + 1).sum();
                prop_assert_eq!(count, naive.len() as u128);
            }
        }

        /// With avoidBuggyIPs the first free address is the first non-.0/.255 free one, in address order.
        #[test]
        fn buggy_mapping_preserves_order(a in 0u32..u32::MAX, b in 0u32..u32::MAX) {
            let (a, b) = (u128::from(a), u128::from(b));
            if let (Some(x), Some(y)) = (buggy_free_index(a), buggy_free_index(b)) {
                prop_assert_eq!(a.cmp(&b), x.cmp(&y));
                prop_assert_eq!(sparse(x), a);
            }
        }
    }
}
