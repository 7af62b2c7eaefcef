//! Adj-RIB-Out (RFC 4271 §3.2, §9.2): the routes this peer has been sent. The caller states the routes it
//! *wants* the peer to have; [`AdjRibOut::sync`] sends only the difference, packed into as few UPDATEs as
//! fit in 4096 octets: withdrawals first, then announcements grouped by identical attributes.
//!
//! Pure: produces encoded messages, the session driver writes them.

use crate::wire::update::{
    attr, encode_as_path, encode_mp_reach_header, encode_prefix, flag, prefix_len_on_wire,
    put_attribute, segment, AsSegment, LargeCommunity,
};
use crate::wire::{Family, MessageType, HEADER_LEN, MARKER, MAX_MESSAGE_LEN};
use bytes::{BufMut, Bytes, BytesMut};
use ipnetwork::IpNetwork;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// LOCAL_PREF sent to internal peers when a route sets none (RFC 4271 §5.1.5 requires one).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// What the caller attaches to one route. The session adds ORIGIN, AS_PATH and the next hop.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteAttributes {
    /// Overrides the session's next hop for this route (must match the route's family).
    pub next_hop: Option<IpAddr>,
    pub med: Option<u32>,
    /// Sent to internal peers only (default 100); never to external ones (RFC 4271 §5.1.5).
    pub local_pref: Option<u32>,
    pub communities: Vec<u32>,
    pub large_communities: Vec<LargeCommunity>,
}

/// The desired routes for one peer: prefix → attributes. Sharing one `Arc` between routes with equal
/// attributes keeps memory flat at scale.
pub type Routes = BTreeMap<IpNetwork, Arc<RouteAttributes>>;

/// What the session knows about the peer when building UPDATEs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerContext {
    pub local_asn: u32,
    pub ibgp: bool,
    pub four_octet_as: bool,
    /// Families negotiated with the peer.
    pub families: Vec<Family>,
    /// Default next hops: the session's local address for its own family, else configured.
    pub ipv4_next_hop: Option<Ipv4Addr>,
    pub ipv6_next_hop: Option<Ipv6Addr>,
    /// Adds a link-local next hop to IPv6 routes (RFC 2545 §3, 32-octet next hop).
    pub ipv6_link_local_next_hop: Option<Ipv6Addr>,
}

/// Routes that could not be sent, and why (for the status; they are retried on every sync).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unsent {
    pub count: usize,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct AdjRibOut {
    sent: Routes,
    /// Counts of `sent` per family, kept so that status reads are O(1).
    advertised_v4: usize,
    advertised_v6: usize,
    /// Per family: routes held back because the session cannot carry them.
    pub unsent: BTreeMap<Family, Unsent>,
}

impl AdjRibOut {
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes the peer currently has from us, per family.
    pub fn advertised(&self, family: Family) -> usize {
        match family {
            Family::Ipv4Unicast => self.advertised_v4,
            Family::Ipv6Unicast => self.advertised_v6,
        }
    }

    pub fn sent(&self) -> &Routes {
        &self.sent
    }

    /// The session went down: the peer has nothing from us any more.
    pub fn reset(&mut self) {
        self.sent.clear();
        self.unsent.clear();
        self.advertised_v4 = 0;
        self.advertised_v6 = 0;
    }

    /// The initial table of a new session, each family closed by End-of-RIB (RFC 4724 §2).
    pub fn initial(&mut self, desired: &Routes, cx: &PeerContext) -> Vec<Bytes> {
        self.reset();
        let mut out = self.sync(desired, cx);
        for family in &cx.families {
            out.push(end_of_rib(*family));
        }
        out
    }

    /// Re-sends every route of one family (ROUTE-REFRESH, RFC 2918).
    pub fn resend(&self, family: Family, cx: &PeerContext) -> Vec<Bytes> {
        let routes: Vec<_> = self
            .sent
            .iter()
            .filter(|(p, _)| Family::of(p) == family)
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        pack_announcements(&routes, cx)
    }

    /// Brings the peer from what it has to `desired`, returning the UPDATEs to send.
    pub fn sync(&mut self, desired: &Routes, cx: &PeerContext) -> Vec<Bytes> {
        self.unsent.clear();
        let mut withdraw = Vec::new();
        let mut announce = Vec::new();
        let mut sendable = Routes::new();
        // Whether an attribute set fits in one UPDATE, computed once per distinct set, not per route.
        let mut fits: BTreeMap<(Family, &RouteAttributes), bool> = BTreeMap::new();
        for (prefix, attrs) in desired {
            let family = Family::of(prefix);
            let check_size = || {
                *fits.entry((family, &**attrs)).or_insert_with(|| {
                    attrs_len(family, attrs, cx) + UPDATE_OVERHEAD + MAX_PREFIX_ON_WIRE
                        <= MAX_MESSAGE_LEN
                })
            };
            match why_unsendable(prefix, attrs, cx, check_size) {
                None => {
                    sendable.insert(*prefix, attrs.clone());
                }
                Some(reason) => {
                    let entry = self.unsent.entry(Family::of(prefix)).or_default();
                    entry.count += 1;
                    entry.reason = reason;
                }
            }
        }
        for (prefix, attrs) in &sendable {
            match self.sent.get(prefix) {
                Some(old) if Arc::ptr_eq(old, attrs) || old == attrs => {}
                _ => announce.push((*prefix, attrs.clone())),
            }
        }
        for prefix in self.sent.keys() {
            if !sendable.contains_key(prefix) {
                withdraw.push(*prefix);
            }
        }
        let mut out = pack_withdrawals(&withdraw);
        out.extend(pack_announcements(&announce, cx));
        self.advertised_v4 = sendable.keys().filter(|p| p.is_ipv4()).count();
        self.advertised_v6 = sendable.len() - self.advertised_v4;
        self.sent = sendable;
        out
    }
}

/// The longest prefix on the wire: a /128 (length octet and 16 address octets).
const MAX_PREFIX_ON_WIRE: usize = 17;

fn why_unsendable(
    prefix: &IpNetwork,
    attrs: &RouteAttributes,
    cx: &PeerContext,
    fits: impl FnOnce() -> bool,
) -> Option<String> {
    let family = Family::of(prefix);
    if !cx.families.contains(&family) {
        return Some(format!("{family} was not negotiated with the peer"));
    }
    let has_next_hop = match (family, attrs.next_hop) {
        (Family::Ipv4Unicast, Some(IpAddr::V4(_))) | (Family::Ipv6Unicast, Some(IpAddr::V6(_))) => {
            true
        }
        (_, Some(nh)) => return Some(format!("next hop {nh} does not match the route's family")),
        (Family::Ipv4Unicast, None) => cx.ipv4_next_hop.is_some(),
        (Family::Ipv6Unicast, None) => cx.ipv6_next_hop.is_some(),
    };
    if !has_next_hop {
        return Some(format!(
            "no {family} next hop: the session runs over the other address family and none is configured"
        ));
    }
    // Last: measuring the attributes needs the next hop checked above.
    if !fits() {
        return Some("the route's attributes do not fit in one UPDATE".to_owned());
    }
    None
}

fn start_update(out: &mut BytesMut) {
    out.put_slice(&MARKER);
    out.put_u16(0);
    out.put_u8(MessageType::Update as u8);
}

fn finish(mut msg: BytesMut) -> Bytes {
    let len = msg.len() as u16;
    msg[16..18].copy_from_slice(&len.to_be_bytes());
    msg.freeze()
}

/// The End-of-RIB marker: an empty UPDATE for IPv4, an empty MP_UNREACH_NLRI otherwise.
pub fn end_of_rib(family: Family) -> Bytes {
    let mut msg = BytesMut::with_capacity(32);
    start_update(&mut msg);
    msg.put_u16(0);
    match family {
        Family::Ipv4Unicast => msg.put_u16(0),
        Family::Ipv6Unicast => {
            let (afi, safi) = family.afi_safi();
            let mut v = BytesMut::new();
            v.put_u16(afi.0);
            v.put_u8(safi.0);
            msg.put_u16(3 + v.len() as u16);
            put_attribute(&mut msg, flag::OPTIONAL, attr::MP_UNREACH_NLRI, &v);
        }
    }
    finish(msg)
}

/// Splits `prefixes` into runs whose encoding fits in `room` octets each.
fn chunks_by_size(prefixes: &[IpNetwork], room: usize) -> Vec<&[IpNetwork]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, p) in prefixes.iter().enumerate() {
        let len = prefix_len_on_wire(p);
        if used + len > room {
            chunks.push(&prefixes[start..i]);
            start = i;
            used = 0;
        }
        used += len;
    }
    if start < prefixes.len() {
        chunks.push(&prefixes[start..]);
    }
    chunks
}

/// Fixed part of an UPDATE: header, withdrawn-routes length, total-attribute length.
const UPDATE_OVERHEAD: usize = HEADER_LEN + 2 + 2;
/// An MP_(UN)REACH_NLRI attribute header with extended length.
const MP_ATTR_HEADER: usize = 4;

fn pack_withdrawals(prefixes: &[IpNetwork]) -> Vec<Bytes> {
    let (v4, v6): (Vec<IpNetwork>, Vec<IpNetwork>) = prefixes.iter().partition(|p| p.is_ipv4());
    let mut out = Vec::new();
    for chunk in chunks_by_size(&v4, MAX_MESSAGE_LEN - UPDATE_OVERHEAD) {
        let mut msg = BytesMut::with_capacity(MAX_MESSAGE_LEN);
        start_update(&mut msg);
        let len: usize = chunk.iter().map(prefix_len_on_wire).sum();
        msg.put_u16(len as u16);
        chunk.iter().for_each(|p| encode_prefix(&mut msg, *p));
        msg.put_u16(0);
        out.push(finish(msg));
    }
    // AFI + SAFI precede the withdrawn IPv6 routes inside MP_UNREACH_NLRI.
    let room = MAX_MESSAGE_LEN - UPDATE_OVERHEAD - MP_ATTR_HEADER - 3;
    for chunk in chunks_by_size(&v6, room) {
        let mut msg = BytesMut::with_capacity(MAX_MESSAGE_LEN);
        start_update(&mut msg);
        msg.put_u16(0);
        let len: usize = chunk.iter().map(prefix_len_on_wire).sum();
        msg.put_u16((MP_ATTR_HEADER + 3 + len) as u16);
        msg.put_u8(flag::OPTIONAL | flag::EXTENDED_LENGTH);
        msg.put_u8(attr::MP_UNREACH_NLRI);
        msg.put_u16((3 + len) as u16);
        let (afi, safi) = Family::Ipv6Unicast.afi_safi();
        msg.put_u16(afi.0);
        msg.put_u8(safi.0);
        chunk.iter().for_each(|p| encode_prefix(&mut msg, *p));
        out.push(finish(msg));
    }
    out
}

/// The path attributes of one group, without MP_REACH_NLRI, in type-code order.
fn encode_attrs(family: Family, a: &RouteAttributes, cx: &PeerContext) -> BytesMut {
    let mut out = BytesMut::with_capacity(64);
    put_attribute(&mut out, flag::TRANSITIVE, attr::ORIGIN, &[0]); // IGP
    let path = if cx.ibgp {
        vec![]
    } else {
        vec![AsSegment {
            kind: segment::AS_SEQUENCE,
            asns: vec![cx.local_asn],
        }]
    };
    let mut v = BytesMut::new();
    encode_as_path(&path, cx.four_octet_as, &mut v);
    put_attribute(&mut out, flag::TRANSITIVE, attr::AS_PATH, &v);
    if family == Family::Ipv4Unicast {
        let nh = match a.next_hop {
            Some(IpAddr::V4(nh)) => nh,
            _ => cx.ipv4_next_hop.expect("checked by why_unsendable"),
        };
        put_attribute(&mut out, flag::TRANSITIVE, attr::NEXT_HOP, &nh.octets());
    }
    if let Some(med) = a.med {
        put_attribute(
            &mut out,
            flag::OPTIONAL,
            attr::MULTI_EXIT_DISC,
            &med.to_be_bytes(),
        );
    }
    if cx.ibgp {
        let lp = a.local_pref.unwrap_or(DEFAULT_LOCAL_PREF);
        put_attribute(
            &mut out,
            flag::TRANSITIVE,
            attr::LOCAL_PREF,
            &lp.to_be_bytes(),
        );
    }
    if !a.communities.is_empty() {
        let v: Vec<u8> = a.communities.iter().flat_map(|c| c.to_be_bytes()).collect();
        put_attribute(
            &mut out,
            flag::OPTIONAL | flag::TRANSITIVE,
            attr::COMMUNITIES,
            &v,
        );
    }
    // RFC 6793 §4.2.2: towards a 2-octet-only peer, the real path travels in AS4_PATH.
    if !cx.four_octet_as && !path.is_empty() && cx.local_asn > 0xffff {
        let mut v = BytesMut::new();
        encode_as_path(&path, true, &mut v);
        put_attribute(
            &mut out,
            flag::OPTIONAL | flag::TRANSITIVE,
            attr::AS4_PATH,
            &v,
        );
    }
    if !a.large_communities.is_empty() {
        let v: Vec<u8> = a
            .large_communities
            .iter()
            .flat_map(|c| [c.global_admin, c.local_data1, c.local_data2])
            .flat_map(u32::to_be_bytes)
            .collect();
        put_attribute(
            &mut out,
            flag::OPTIONAL | flag::TRANSITIVE,
            attr::LARGE_COMMUNITY,
            &v,
        );
    }
    out
}

fn ipv6_next_hops(a: &RouteAttributes, cx: &PeerContext) -> Vec<IpAddr> {
    let global = match a.next_hop {
        Some(IpAddr::V6(nh)) => nh,
        _ => cx.ipv6_next_hop.expect("checked by why_unsendable"),
    };
    let mut nhs = vec![IpAddr::V6(global)];
    nhs.extend(cx.ipv6_link_local_next_hop.map(IpAddr::V6));
    nhs
}

/// Length of everything but the NLRI in one UPDATE of this group.
fn attrs_len(family: Family, a: &RouteAttributes, cx: &PeerContext) -> usize {
    let base = encode_attrs(family, a, cx).len();
    match family {
        Family::Ipv4Unicast => base,
        Family::Ipv6Unicast => {
            let nh: usize = 16 * ipv6_next_hops(a, cx).len();
            base + MP_ATTR_HEADER + 2 + 1 + 1 + nh + 1
        }
    }
}

fn pack_announcements(
    routes: &[(IpNetwork, Arc<RouteAttributes>)],
    cx: &PeerContext,
) -> Vec<Bytes> {
    let mut groups: BTreeMap<(Family, &RouteAttributes), Vec<IpNetwork>> = BTreeMap::new();
    for (prefix, attrs) in routes {
        groups
            .entry((Family::of(prefix), attrs))
            .or_default()
            .push(*prefix);
    }
    let mut out = Vec::new();
    for ((family, attrs), prefixes) in groups {
        let encoded = encode_attrs(family, attrs, cx);
        let room = MAX_MESSAGE_LEN - UPDATE_OVERHEAD - attrs_len(family, attrs, cx);
        for chunk in chunks_by_size(&prefixes, room) {
            let nlri_len: usize = chunk.iter().map(prefix_len_on_wire).sum();
            let mut msg = BytesMut::with_capacity(MAX_MESSAGE_LEN);
            start_update(&mut msg);
            msg.put_u16(0);
            match family {
                Family::Ipv4Unicast => {
                    msg.put_u16(encoded.len() as u16);
                    msg.put_slice(&encoded);
                    chunk.iter().for_each(|p| encode_prefix(&mut msg, *p));
                }
                Family::Ipv6Unicast => {
                    // MP_REACH_NLRI goes first (RFC 7606 §5.1).
                    let mut mp = BytesMut::with_capacity(MAX_MESSAGE_LEN);
                    let (afi, safi) = family.afi_safi();
                    encode_mp_reach_header(&mut mp, afi, safi, &ipv6_next_hops(attrs, cx));
                    chunk.iter().for_each(|p| encode_prefix(&mut mp, *p));
                    msg.put_u16((MP_ATTR_HEADER + mp.len() + encoded.len()) as u16);
                    msg.put_u8(flag::OPTIONAL | flag::EXTENDED_LENGTH);
                    msg.put_u8(attr::MP_REACH_NLRI);
                    msg.put_u16(mp.len() as u16);
                    msg.put_slice(&mp);
                    msg.put_slice(&encoded);
                }
            }
            debug_assert!(msg.len() <= MAX_MESSAGE_LEN && nlri_len <= room);
            out.push(finish(msg));
        }
    }
    out
}
