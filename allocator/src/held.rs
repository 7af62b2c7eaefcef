//! Every IP some Service holds, and which Services hold it.
//!
//! Compact for the same reason as [`crate::table`]: an IPv4 entry is 8 bytes (the address and one `u32`),
//! so a million held IPs take 16 MiB of buckets. Most IPs have one holder, stored inline as its [`Sid`];
//! IPs shared by several Services point to a holder list instead.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::table::Sid;

/// A sole holder's `Sid`, or (top bit set) the index of a holder list in `HeldIps::groups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Holding(u32);

const GROUP: u32 = 1 << 31;

/// The Services holding one IP: one, or several sharing it, sorted by the order given to [`HeldIps::add`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Holders<'a> {
    One([Sid; 1]),
    Many(&'a [Sid]),
}

impl std::ops::Deref for Holders<'_> {
    type Target = [Sid];
    fn deref(&self) -> &[Sid] {
        match self {
            Holders::One(one) => one,
            Holders::Many(many) => many,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct HeldIps {
    v4: HashMap<u32, Holding, BuildHasherDefault<IpHasher>>,
    v6: HashMap<u128, Holding, BuildHasherDefault<IpHasher>>,
    /// Holder lists of shared IPs (two or more holders), sorted.
    groups: Vec<Vec<Sid>>,
    vacant_groups: Vec<u32>,
}

impl HeldIps {
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn reserve(&mut self, additional: usize) {
        self.v4.reserve(additional);
    }

    pub fn holders(&self, ip: IpAddr) -> Option<Holders<'_>> {
        self.holding(ip).map(|h| self.expand(h))
    }

    /// Every held IP with its holders, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, Holders<'_>)> {
        let v4 = self
            .v4
            .iter()
            .map(|(ip, h)| (IpAddr::V4(Ipv4Addr::from(*ip)), *h));
        let v6 = self
            .v6
            .iter()
            .map(|(ip, h)| (IpAddr::V6(Ipv6Addr::from(*ip)), *h));
        v4.chain(v6).map(|(ip, h)| (ip, self.expand(h)))
    }

    /// Adds `sid` to the holders of `ip`, keeping them sorted by `order`. Returns true if `ip` was free.
    pub fn add(&mut self, ip: IpAddr, sid: Sid, order: impl Fn(Sid, Sid) -> Ordering) -> bool {
        debug_assert!(sid < GROUP, "Sids stay below 2^31");
        let Some(holding) = self.holding(ip) else {
            self.set(ip, Some(Holding(sid)));
            return true;
        };
        if holding.0 & GROUP == 0 {
            let one = holding.0;
            if one != sid {
                let mut group = vec![one, sid];
                group.sort_by(|a, b| order(*a, *b));
                let g = self.new_group(group);
                self.set(ip, Some(Holding(g | GROUP)));
            }
        } else {
            let group = &mut self.groups[(holding.0 & !GROUP) as usize];
            if let Err(at) = group.binary_search_by(|h| order(*h, sid)) {
                group.insert(at, sid);
            }
        }
        false
    }

    /// Removes `sid` from the holders of `ip`. Returns true if `ip` is now free.
    pub fn remove(&mut self, ip: IpAddr, sid: Sid) -> bool {
        let Some(holding) = self.holding(ip) else {
            return false;
        };
        if holding.0 & GROUP == 0 {
            if holding.0 != sid {
                return false;
            }
            self.set(ip, None);
            return true;
        }
        let g = holding.0 & !GROUP;
        let group = &mut self.groups[g as usize];
        group.retain(|h| *h != sid);
        if let [last] = group[..] {
            self.groups[g as usize] = Vec::new();
            self.vacant_groups.push(g);
            self.set(ip, Some(Holding(last)));
        }
        false
    }

    fn holding(&self, ip: IpAddr) -> Option<Holding> {
        match ip {
            IpAddr::V4(v4) => self.v4.get(&u32::from(v4)).copied(),
            IpAddr::V6(v6) => self.v6.get(&u128::from(v6)).copied(),
        }
    }

    fn set(&mut self, ip: IpAddr, holding: Option<Holding>) {
        match (ip, holding) {
            (IpAddr::V4(v4), Some(h)) => {
                self.v4.insert(u32::from(v4), h);
            }
            (IpAddr::V4(v4), None) => {
                self.v4.remove(&u32::from(v4));
            }
            (IpAddr::V6(v6), Some(h)) => {
                self.v6.insert(u128::from(v6), h);
            }
            (IpAddr::V6(v6), None) => {
                self.v6.remove(&u128::from(v6));
            }
        }
    }

    fn expand(&self, h: Holding) -> Holders<'_> {
        if h.0 & GROUP == 0 {
            Holders::One([h.0])
        } else {
            Holders::Many(&self.groups[(h.0 & !GROUP) as usize])
        }
    }

    fn new_group(&mut self, group: Vec<Sid>) -> u32 {
        match self.vacant_groups.pop() {
            Some(g) => {
                self.groups[g as usize] = group;
                g
            }
            None => {
                self.groups.push(group);
                u32::try_from(self.groups.len() - 1).expect("fewer than 2^31 shared IPs")
            }
        }
    }
}

/// Hashes an address so that neighbours land in neighbouring buckets: the allocator hands out addresses in
/// order, so a run of new assignments (or a restart replaying them) walks the table forwards instead of
/// touching a random cache line and page per address, which is what made a million held IPs slow. hashbrown
/// takes the bucket from the low bits and a 7-bit tag from the top ones, so the low 57 bits are the
/// address's low 64 bits (its higher bits folded in by a multiply that is constant across a /32, or a /96
/// in IPv6), and the top 7 bits are a mix of everything, for the tag. SipHash's flooding resistance buys
/// nothing here: the keys are addresses from the configured pools, not user strings.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IpHasher(u64);

impl IpHasher {
    fn address(&mut self, low: u64, high: u64) {
        let base = low.wrapping_add(high.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut tag = base;
        tag ^= tag >> 33;
        tag = tag.wrapping_mul(0xff51_afd7_ed55_8ccd);
        tag ^= tag >> 33;
        self.0 = (base & ((1 << 57) - 1)) | (tag & !((1 << 57) - 1));
    }
}

impl Hasher for IpHasher {
    /// Any other key (not used by `HeldIps`): its bytes as one little-endian number.
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 16];
        let n = bytes.len().min(16);
        word[..n].copy_from_slice(&bytes[..n]);
        self.write_u128(u128::from_le_bytes(word));
    }
    fn write_u32(&mut self, n: u32) {
        self.address(u64::from(n), 0);
    }
    fn write_u128(&mut self, n: u128) {
        self.address(n as u64, (n >> 64) as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_holder_then_a_sorted_group_then_one_again() {
        let mut held = HeldIps::default();
        let by_value = |a: Sid, b: Sid| a.cmp(&b);
        let (a, b) = (ip("198.51.100.1"), ip("2001:db8::1"));
        assert!(held.add(a, 7, by_value));
        assert!(held.add(b, 7, by_value));
        assert!(!held.add(a, 3, by_value));
        assert!(!held.add(a, 5, by_value));
        assert!(!held.add(a, 5, by_value), "adding twice changes nothing");
        assert_eq!(&*held.holders(a).unwrap(), &[3, 5, 7]);
        assert_eq!(&*held.holders(b).unwrap(), &[7]);
        assert_eq!(held.len(), 2);

        assert!(!held.remove(a, 5));
        assert!(!held.remove(a, 7));
        assert_eq!(&*held.holders(a).unwrap(), &[3]);
        assert!(!held.remove(a, 9), "not a holder");
        assert!(held.remove(a, 3));
        assert!(held.holders(a).is_none());
        // The freed group is reused.
        held.add(b, 1, by_value);
        assert_eq!(&*held.holders(b).unwrap(), &[1, 7]);
        assert_eq!(held.groups.len(), 1);
        let all: Vec<(IpAddr, Vec<Sid>)> = held.iter().map(|(ip, h)| (ip, h.to_vec())).collect();
        assert_eq!(all, [(b, vec![1, 7])]);
    }
}
