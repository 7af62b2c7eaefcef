//! UPDATE message (RFC 4271 §4.3) and its path attributes: ORIGIN, AS_PATH (2- and 4-octet, AS4_PATH of
//! RFC 6793), NEXT_HOP, MULTI_EXIT_DISC, LOCAL_PREF, ATOMIC_AGGREGATE, AGGREGATOR, COMMUNITIES (RFC 1997),
//! ORIGINATOR_ID/CLUSTER_LIST (RFC 4456), MP_REACH_NLRI/MP_UNREACH_NLRI (RFC 4760, IPv6 next hops per
//! RFC 2545) and LARGE_COMMUNITY (RFC 8092).
//!
//! Decoding follows RFC 7606: an error in an attribute either discards the attribute, treats the UPDATE's
//! routes as withdrawn, or resets the session; the RFC 4271 code/subcode is kept in every case so that logs
//! and tests can name the exact problem.

use super::notification::{code, update as sub, Notification};
use super::{Afi, Safi};
use bytes::{BufMut, Bytes, BytesMut};
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Attribute flag bits (RFC 4271 §4.3).
pub mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod attr {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITY: u8 = 32;
}

/// AS_PATH segment types (RFC 4271, RFC 5065).
pub mod segment {
    pub const AS_SET: u8 = 1;
    pub const AS_SEQUENCE: u8 = 2;
    pub const AS_CONFED_SEQUENCE: u8 = 3;
    pub const AS_CONFED_SET: u8 = 4;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsSegment {
    pub kind: u8,
    pub asns: Vec<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    pub global_admin: u32,
    pub local_data1: u32,
    pub local_data2: u32,
}

impl std::fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.global_admin, self.local_data1, self.local_data2
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpReach {
    pub afi: Afi,
    pub safi: Safi,
    /// One next hop, or for IPv6 a global and a link-local one (RFC 2545 §3).
    pub next_hops: Vec<IpAddr>,
    /// Empty for a family we do not decode (it is counted, never parsed).
    pub nlri: Vec<IpNetwork>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpUnreach {
    pub afi: Afi,
    pub safi: Safi,
    pub withdrawn: Vec<IpNetwork>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathAttribute {
    Origin(Origin),
    AsPath(Vec<AsSegment>),
    NextHop(Ipv4Addr),
    MultiExitDisc(u32),
    LocalPref(u32),
    AtomicAggregate,
    Aggregator {
        asn: u32,
        address: Ipv4Addr,
    },
    Communities(Vec<u32>),
    OriginatorId(Ipv4Addr),
    ClusterList(Vec<u32>),
    MpReach(MpReach),
    MpUnreach(MpUnreach),
    As4Path(Vec<AsSegment>),
    As4Aggregator {
        asn: u32,
        address: Ipv4Addr,
    },
    LargeCommunities(Vec<LargeCommunity>),
    /// An optional attribute we do not interpret; kept only so that it can be counted or logged.
    Unknown {
        flags: u8,
        type_code: u8,
        value: Bytes,
    },
}

impl PathAttribute {
    pub fn type_code(&self) -> u8 {
        match self {
            PathAttribute::Origin(_) => attr::ORIGIN,
            PathAttribute::AsPath(_) => attr::AS_PATH,
            PathAttribute::NextHop(_) => attr::NEXT_HOP,
            PathAttribute::MultiExitDisc(_) => attr::MULTI_EXIT_DISC,
            PathAttribute::LocalPref(_) => attr::LOCAL_PREF,
            PathAttribute::AtomicAggregate => attr::ATOMIC_AGGREGATE,
            PathAttribute::Aggregator { .. } => attr::AGGREGATOR,
            PathAttribute::Communities(_) => attr::COMMUNITIES,
            PathAttribute::OriginatorId(_) => attr::ORIGINATOR_ID,
            PathAttribute::ClusterList(_) => attr::CLUSTER_LIST,
            PathAttribute::MpReach(_) => attr::MP_REACH_NLRI,
            PathAttribute::MpUnreach(_) => attr::MP_UNREACH_NLRI,
            PathAttribute::As4Path(_) => attr::AS4_PATH,
            PathAttribute::As4Aggregator { .. } => attr::AS4_AGGREGATOR,
            PathAttribute::LargeCommunities(_) => attr::LARGE_COMMUNITY,
            PathAttribute::Unknown { type_code, .. } => *type_code,
        }
    }
}

/// What RFC 7606 says to do about an attribute error that does not reset the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeError {
    /// The attribute type code, or 0 for errors of the attribute list as a whole.
    pub type_code: u8,
    /// The RFC 4271 error this would have been (code 3 and a subcode).
    pub error: Notification,
}

/// A decoded, checked UPDATE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    pub withdrawn: Vec<Ipv4Network>,
    pub attributes: Vec<PathAttribute>,
    pub nlri: Vec<Ipv4Network>,
    /// RFC 7606 "treat-as-withdraw": set when the announced routes must be handled as withdrawn.
    pub treat_as_withdraw: Option<AttributeError>,
    /// RFC 7606 "attribute discard": attributes that were dropped.
    pub discarded: Vec<AttributeError>,
}

/// What the decoder needs to know about the session.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeContext {
    /// Both sides sent the 4-octet AS capability: AS_PATH carries 4-octet ASNs.
    pub four_octet_as: bool,
    /// The peer's AS for an external session (its leftmost AS_PATH entry is checked); `None` for iBGP.
    pub ebgp_peer_as: Option<u32>,
}

impl Update {
    pub fn mp_reach(&self) -> Option<&MpReach> {
        self.attributes.iter().find_map(|a| match a {
            PathAttribute::MpReach(r) => Some(r),
            _ => None,
        })
    }

    pub fn mp_unreach(&self) -> Option<&MpUnreach> {
        self.attributes.iter().find_map(|a| match a {
            PathAttribute::MpUnreach(u) => Some(u),
            _ => None,
        })
    }

    pub fn attribute(&self, type_code: u8) -> Option<&PathAttribute> {
        self.attributes.iter().find(|a| a.type_code() == type_code)
    }

    /// The End-of-RIB marker this UPDATE is, if any (RFC 4724 §2).
    pub fn end_of_rib(&self) -> Option<(Afi, Safi)> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some((Afi::IPV4, Safi::UNICAST)),
            [PathAttribute::MpUnreach(u)] if u.withdrawn.is_empty() => Some((u.afi, u.safi)),
            _ => None,
        }
    }

    /// Routes announced by this UPDATE (classic and MP_REACH NLRI), before treat-as-withdraw.
    pub fn announced_count(&self) -> usize {
        self.nlri.len() + self.mp_reach().map_or(0, |r| r.nlri.len())
    }

    /// Routes withdrawn by this UPDATE (classic and MP_UNREACH).
    pub fn withdrawn_count(&self) -> usize {
        self.withdrawn.len() + self.mp_unreach().map_or(0, |u| u.withdrawn.len())
    }

    pub fn decode_body(body: &[u8], cx: &DecodeContext) -> Result<Update, Notification> {
        let malformed_list = || Notification::new(code::UPDATE, sub::MALFORMED_ATTRIBUTE_LIST);
        if body.len() < 4 {
            return Err(malformed_list());
        }
        let withdrawn_len = u16::from_be_bytes([body[0], body[1]]) as usize;
        let withdrawn_field = body.get(2..2 + withdrawn_len).ok_or_else(malformed_list)?;
        let rest = &body[2 + withdrawn_len..];
        if rest.len() < 2 {
            return Err(malformed_list());
        }
        let attrs_len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let attrs_field = rest.get(2..2 + attrs_len).ok_or_else(malformed_list)?;
        let nlri_field = &rest[2 + attrs_len..];

        let invalid_network = || Notification::new(code::UPDATE, sub::INVALID_NETWORK_FIELD);
        let withdrawn = decode_prefixes_v4(withdrawn_field).ok_or_else(invalid_network)?;
        let nlri = decode_prefixes_v4(nlri_field).ok_or_else(invalid_network)?;

        let mut update = Update {
            withdrawn,
            nlri,
            ..Update::default()
        };
        decode_attributes(attrs_field, cx, &mut update)?;
        check_mandatory(cx, &mut update);
        Ok(update)
    }

    /// Encodes the body (used by tests and tools; the Adj-RIB-Out packs its own UPDATEs).
    pub fn encode_body(&self, cx: &DecodeContext, out: &mut BytesMut) {
        let mut withdrawn = BytesMut::new();
        for p in &self.withdrawn {
            encode_prefix(&mut withdrawn, IpNetwork::V4(*p));
        }
        let mut attrs = BytesMut::new();
        for a in &self.attributes {
            encode_attribute(a, cx.four_octet_as, &mut attrs);
        }
        out.put_u16(withdrawn.len() as u16);
        out.put_slice(&withdrawn);
        out.put_u16(attrs.len() as u16);
        out.put_slice(&attrs);
        for p in &self.nlri {
            encode_prefix(out, IpNetwork::V4(*p));
        }
    }
}

enum Outcome {
    Discard,
    Withdraw,
}

fn attr_error(type_code: u8, subcode: u8, data: &[u8]) -> AttributeError {
    AttributeError {
        type_code,
        error: Notification::with_data(code::UPDATE, subcode, Bytes::copy_from_slice(data)),
    }
}

impl Update {
    fn record(&mut self, outcome: Outcome, error: AttributeError) {
        match outcome {
            Outcome::Discard => self.discarded.push(error),
            Outcome::Withdraw => {
                if self.treat_as_withdraw.is_none() {
                    self.treat_as_withdraw = Some(error);
                }
            }
        }
    }
}

/// The Optional and Transitive bits each attribute must carry; `None` for attributes we do not know.
fn expected_flags(type_code: u8) -> Option<u8> {
    use flag::{OPTIONAL, TRANSITIVE};
    Some(match type_code {
        attr::ORIGIN
        | attr::AS_PATH
        | attr::NEXT_HOP
        | attr::LOCAL_PREF
        | attr::ATOMIC_AGGREGATE => TRANSITIVE,
        attr::MULTI_EXIT_DISC
        | attr::ORIGINATOR_ID
        | attr::CLUSTER_LIST
        | attr::MP_REACH_NLRI
        | attr::MP_UNREACH_NLRI => OPTIONAL,
        attr::AGGREGATOR
        | attr::COMMUNITIES
        | attr::AS4_PATH
        | attr::AS4_AGGREGATOR
        | attr::LARGE_COMMUNITY => OPTIONAL | TRANSITIVE,
        _ => return None,
    })
}

/// RFC 7606 §7: the outcome of a malformed instance of each attribute.
fn outcome_of(type_code: u8) -> Outcome {
    match type_code {
        attr::ATOMIC_AGGREGATE | attr::AGGREGATOR | attr::AS4_PATH | attr::AS4_AGGREGATOR => {
            Outcome::Discard
        }
        _ => Outcome::Withdraw,
    }
}

fn decode_attributes(
    mut buf: &[u8],
    cx: &DecodeContext,
    update: &mut Update,
) -> Result<(), Notification> {
    let mut seen = [false; 256];
    while !buf.is_empty() {
        // RFC 7606 §4: an attribute that overruns the list makes the rest unparseable. Routes carried in
        // MP attributes already seen cannot be withdrawn reliably, so that case resets the session.
        let overrun = |update: &mut Update| -> Result<(), Notification> {
            let err = attr_error(0, sub::MALFORMED_ATTRIBUTE_LIST, &[]);
            if update.mp_reach().is_some() || update.mp_unreach().is_some() {
                return Err(err.error);
            }
            update.record(Outcome::Withdraw, err);
            Ok(())
        };
        if buf.len() < 3 {
            return overrun(update);
        }
        let (flags, type_code) = (buf[0], buf[1]);
        let (header, len) = if flags & flag::EXTENDED_LENGTH != 0 {
            if buf.len() < 4 {
                return overrun(update);
            }
            (4, u16::from_be_bytes([buf[2], buf[3]]) as usize)
        } else {
            (3, buf[2] as usize)
        };
        let Some(value) = buf.get(header..header + len) else {
            return overrun(update);
        };
        let whole = &buf[..header + len];
        buf = &buf[header + len..];

        let is_mp = type_code == attr::MP_REACH_NLRI || type_code == attr::MP_UNREACH_NLRI;
        if seen[type_code as usize] {
            // RFC 7606 §3(g): repeated MP attributes reset the session; other repeats are discarded.
            if is_mp {
                return Err(Notification::new(
                    code::UPDATE,
                    sub::MALFORMED_ATTRIBUTE_LIST,
                ));
            }
            update
                .discarded
                .push(attr_error(type_code, sub::MALFORMED_ATTRIBUTE_LIST, whole));
            continue;
        }
        seen[type_code as usize] = true;

        let Some(expected) = expected_flags(type_code) else {
            if flags & flag::OPTIONAL == 0 {
                // An unrecognised well-known attribute: RFC 4271 §6.3, not relaxed by RFC 7606.
                return Err(Notification::with_data(
                    code::UPDATE,
                    sub::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                    Bytes::copy_from_slice(whole),
                ));
            }
            update.attributes.push(PathAttribute::Unknown {
                flags,
                type_code,
                value: Bytes::copy_from_slice(value),
            });
            continue;
        };
        if flags & (flag::OPTIONAL | flag::TRANSITIVE) != expected {
            let err = attr_error(type_code, sub::ATTRIBUTE_FLAGS_ERROR, whole);
            if is_mp {
                return Err(err.error);
            }
            update.record(outcome_of(type_code), err);
            continue;
        }
        match decode_attribute(type_code, value, cx) {
            Ok(Some(a)) => update.attributes.push(a),
            // Ignored by rule (e.g. LOCAL_PREF from an external peer, RFC 7606 §7.5).
            Ok(None) => {}
            Err(subcode) => {
                let err = attr_error(type_code, subcode, whole);
                if is_mp {
                    return Err(err.error);
                }
                update.record(outcome_of(type_code), err);
            }
        }
    }
    Ok(())
}

/// Decodes one attribute's value; `Err` is the UPDATE error subcode.
fn decode_attribute(
    type_code: u8,
    v: &[u8],
    cx: &DecodeContext,
) -> Result<Option<PathAttribute>, u8> {
    let u32_at = |i: usize| u32::from_be_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
    let exact = |n: usize| {
        if v.len() == n {
            Ok(())
        } else {
            Err(sub::ATTRIBUTE_LENGTH_ERROR)
        }
    };
    Ok(Some(match type_code {
        attr::ORIGIN => {
            exact(1)?;
            PathAttribute::Origin(match v[0] {
                0 => Origin::Igp,
                1 => Origin::Egp,
                2 => Origin::Incomplete,
                _ => return Err(sub::INVALID_ORIGIN_ATTRIBUTE),
            })
        }
        attr::AS_PATH => {
            let segments = decode_as_path(v, cx.four_octet_as).ok_or(sub::MALFORMED_AS_PATH)?;
            if let Some(peer_as) = cx.ebgp_peer_as {
                // RFC 4271 §6.3: the leftmost AS of an external peer's path is the peer's own.
                let expected = if cx.four_octet_as || peer_as <= 0xffff {
                    peer_as
                } else {
                    u32::from(super::open::AS_TRANS)
                };
                match segments.first() {
                    None => {}
                    Some(s) if s.kind == segment::AS_SEQUENCE && s.asns[0] == expected => {}
                    Some(_) => return Err(sub::MALFORMED_AS_PATH),
                }
            }
            PathAttribute::AsPath(segments)
        }
        attr::NEXT_HOP => {
            exact(4)?;
            let nh = Ipv4Addr::new(v[0], v[1], v[2], v[3]);
            // RFC 4271 §6.3: a semantically wrong next hop makes the route unusable, not the session.
            if nh.is_unspecified() || nh.is_multicast() || nh.is_broadcast() {
                return Err(sub::INVALID_NEXT_HOP_ATTRIBUTE);
            }
            PathAttribute::NextHop(nh)
        }
        attr::MULTI_EXIT_DISC => {
            exact(4)?;
            PathAttribute::MultiExitDisc(u32_at(0))
        }
        attr::LOCAL_PREF => {
            exact(4)?;
            if cx.ebgp_peer_as.is_some() {
                return Ok(None);
            }
            PathAttribute::LocalPref(u32_at(0))
        }
        attr::ATOMIC_AGGREGATE => {
            exact(0)?;
            PathAttribute::AtomicAggregate
        }
        attr::AGGREGATOR => {
            if cx.four_octet_as {
                exact(8)?;
                PathAttribute::Aggregator {
                    asn: u32_at(0),
                    address: Ipv4Addr::new(v[4], v[5], v[6], v[7]),
                }
            } else {
                exact(6)?;
                PathAttribute::Aggregator {
                    asn: u32::from(u16::from_be_bytes([v[0], v[1]])),
                    address: Ipv4Addr::new(v[2], v[3], v[4], v[5]),
                }
            }
        }
        attr::COMMUNITIES => {
            if v.is_empty() || !v.len().is_multiple_of(4) {
                return Err(sub::ATTRIBUTE_LENGTH_ERROR);
            }
            PathAttribute::Communities((0..v.len()).step_by(4).map(u32_at).collect())
        }
        attr::ORIGINATOR_ID => {
            exact(4)?;
            PathAttribute::OriginatorId(Ipv4Addr::from(u32_at(0)))
        }
        attr::CLUSTER_LIST => {
            if v.is_empty() || !v.len().is_multiple_of(4) {
                return Err(sub::ATTRIBUTE_LENGTH_ERROR);
            }
            PathAttribute::ClusterList((0..v.len()).step_by(4).map(u32_at).collect())
        }
        attr::MP_REACH_NLRI => PathAttribute::MpReach(decode_mp_reach(v)?),
        attr::MP_UNREACH_NLRI => PathAttribute::MpUnreach(decode_mp_unreach(v)?),
        attr::AS4_PATH => {
            PathAttribute::As4Path(decode_as_path(v, true).ok_or(sub::MALFORMED_AS_PATH)?)
        }
        attr::AS4_AGGREGATOR => {
            exact(8)?;
            PathAttribute::As4Aggregator {
                asn: u32_at(0),
                address: Ipv4Addr::from(u32_at(4)),
            }
        }
        attr::LARGE_COMMUNITY => {
            if v.is_empty() || !v.len().is_multiple_of(12) {
                return Err(sub::ATTRIBUTE_LENGTH_ERROR);
            }
            PathAttribute::LargeCommunities(
                (0..v.len())
                    .step_by(12)
                    .map(|i| LargeCommunity {
                        global_admin: u32_at(i),
                        local_data1: u32_at(i + 4),
                        local_data2: u32_at(i + 8),
                    })
                    .collect(),
            )
        }
        _ => unreachable!("expected_flags() filters unknown attribute types"),
    }))
}

fn decode_as_path(mut v: &[u8], four_octet: bool) -> Option<Vec<AsSegment>> {
    let width = if four_octet { 4 } else { 2 };
    let mut segments = Vec::new();
    while !v.is_empty() {
        if v.len() < 2 {
            return None;
        }
        let (kind, count) = (v[0], v[1] as usize);
        if !(segment::AS_SET..=segment::AS_CONFED_SET).contains(&kind) || count == 0 {
            return None;
        }
        let body = v.get(2..2 + count * width)?;
        let asns = body
            .chunks_exact(width)
            .map(|c| match c {
                [a, b] => u32::from(u16::from_be_bytes([*a, *b])),
                [a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]),
                _ => unreachable!(),
            })
            .collect();
        segments.push(AsSegment { kind, asns });
        v = &v[2 + count * width..];
    }
    Some(segments)
}

fn decode_mp_reach(v: &[u8]) -> Result<MpReach, u8> {
    let bad = sub::OPTIONAL_ATTRIBUTE_ERROR;
    if v.len() < 5 {
        return Err(bad);
    }
    let afi = Afi(u16::from_be_bytes([v[0], v[1]]));
    let safi = Safi(v[2]);
    let nh_len = v[3] as usize;
    let nh = v.get(4..4 + nh_len).ok_or(bad)?;
    // One reserved octet follows the next hop (RFC 4760 §3).
    let nlri_field = v.get(5 + nh_len..).ok_or(bad)?;
    let known = safi == Safi::UNICAST && (afi == Afi::IPV4 || afi == Afi::IPV6);
    if !known {
        return Ok(MpReach {
            afi,
            safi,
            next_hops: Vec::new(),
            nlri: Vec::new(),
        });
    }
    let next_hops = match nh_len {
        4 => vec![IpAddr::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3]))],
        16 => vec![IpAddr::V6(ipv6_at(nh, 0))],
        32 => vec![IpAddr::V6(ipv6_at(nh, 0)), IpAddr::V6(ipv6_at(nh, 16))],
        _ => return Err(bad),
    };
    let nlri = decode_prefixes(afi, nlri_field).ok_or(bad)?;
    Ok(MpReach {
        afi,
        safi,
        next_hops,
        nlri,
    })
}

fn decode_mp_unreach(v: &[u8]) -> Result<MpUnreach, u8> {
    if v.len() < 3 {
        return Err(sub::OPTIONAL_ATTRIBUTE_ERROR);
    }
    let afi = Afi(u16::from_be_bytes([v[0], v[1]]));
    let safi = Safi(v[2]);
    let known = safi == Safi::UNICAST && (afi == Afi::IPV4 || afi == Afi::IPV6);
    let withdrawn = if known {
        decode_prefixes(afi, &v[3..]).ok_or(sub::OPTIONAL_ATTRIBUTE_ERROR)?
    } else {
        Vec::new()
    };
    Ok(MpUnreach {
        afi,
        safi,
        withdrawn,
    })
}

/// RFC 4271 §6.3 / RFC 7606 §3(d): an UPDATE that announces routes needs ORIGIN and AS_PATH, NEXT_HOP
/// for classic NLRI, and LOCAL_PREF from an internal peer. A missing one is treat-as-withdraw.
fn check_mandatory(cx: &DecodeContext, update: &mut Update) {
    if update.announced_count() == 0 || update.treat_as_withdraw.is_some() {
        return;
    }
    let mut required = vec![attr::ORIGIN, attr::AS_PATH];
    if !update.nlri.is_empty() {
        required.push(attr::NEXT_HOP);
    }
    if cx.ebgp_peer_as.is_none() {
        required.push(attr::LOCAL_PREF);
    }
    if let Some(&missing) = required.iter().find(|&&t| update.attribute(t).is_none()) {
        let err = attr_error(missing, sub::MISSING_WELL_KNOWN_ATTRIBUTE, &[missing]);
        update.record(Outcome::Withdraw, err);
    }
}

fn ipv6_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

/// Decodes a run of `<length, prefix>` (RFC 4271 §4.3); `None` if malformed.
pub fn decode_prefixes(afi: Afi, buf: &[u8]) -> Option<Vec<IpNetwork>> {
    if afi == Afi::IPV4 {
        Some(
            decode_prefixes_v4(buf)?
                .into_iter()
                .map(IpNetwork::V4)
                .collect(),
        )
    } else {
        decode_prefixes_v6(buf)
    }
}

fn decode_prefix_bytes<const N: usize>(buf: &mut &[u8]) -> Option<([u8; N], u8)> {
    let (&len, rest) = buf.split_first()?;
    if len as usize > N * 8 {
        return None;
    }
    let octets = (len as usize).div_ceil(8);
    let bytes = rest.get(..octets)?;
    let mut addr = [0u8; N];
    addr[..octets].copy_from_slice(bytes);
    // Trailing bits past the prefix length are irrelevant (RFC 4271 §4.3): clear them.
    if len % 8 != 0 {
        addr[octets - 1] &= 0xffu8 << (8 - len % 8);
    }
    *buf = &rest[octets..];
    Some((addr, len))
}

fn decode_prefixes_v4(mut buf: &[u8]) -> Option<Vec<Ipv4Network>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (addr, len) = decode_prefix_bytes::<4>(&mut buf)?;
        out.push(Ipv4Network::new(Ipv4Addr::from(addr), len).ok()?);
    }
    Some(out)
}

fn decode_prefixes_v6(mut buf: &[u8]) -> Option<Vec<IpNetwork>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (addr, len) = decode_prefix_bytes::<16>(&mut buf)?;
        out.push(IpNetwork::V6(
            Ipv6Network::new(Ipv6Addr::from(addr), len).ok()?,
        ));
    }
    Some(out)
}

/// Octets a prefix takes in NLRI.
pub fn prefix_len_on_wire(p: &IpNetwork) -> usize {
    1 + (p.prefix() as usize).div_ceil(8)
}

pub fn encode_prefix(out: &mut BytesMut, p: IpNetwork) {
    let octets = (p.prefix() as usize).div_ceil(8);
    out.put_u8(p.prefix());
    match p.network() {
        IpAddr::V4(a) => out.put_slice(&a.octets()[..octets]),
        IpAddr::V6(a) => out.put_slice(&a.octets()[..octets]),
    }
}

/// Writes an attribute header and value, choosing the extended length when the value needs it.
pub fn put_attribute(out: &mut BytesMut, flags: u8, type_code: u8, value: &[u8]) {
    if value.len() > 255 {
        out.put_u8(flags | flag::EXTENDED_LENGTH);
        out.put_u8(type_code);
        out.put_u16(value.len() as u16);
    } else {
        out.put_u8(flags & !flag::EXTENDED_LENGTH);
        out.put_u8(type_code);
        out.put_u8(value.len() as u8);
    }
    out.put_slice(value);
}

/// Encodes an AS path; with `four_octet` false, ASNs above 65535 become AS_TRANS (RFC 6793 §4.2.2).
pub fn encode_as_path(segments: &[AsSegment], four_octet: bool, out: &mut BytesMut) {
    for s in segments {
        for chunk in s.asns.chunks(255) {
            out.put_u8(s.kind);
            out.put_u8(chunk.len() as u8);
            for &asn in chunk {
                if four_octet {
                    out.put_u32(asn);
                } else {
                    out.put_u16(u16::try_from(asn).unwrap_or(super::open::AS_TRANS));
                }
            }
        }
    }
}

pub fn encode_mp_reach_header(out: &mut BytesMut, afi: Afi, safi: Safi, next_hops: &[IpAddr]) {
    out.put_u16(afi.0);
    out.put_u8(safi.0);
    let nh_len: usize = next_hops
        .iter()
        .map(|nh| if nh.is_ipv4() { 4 } else { 16 })
        .sum();
    out.put_u8(nh_len as u8);
    for nh in next_hops {
        match nh {
            IpAddr::V4(a) => out.put_slice(&a.octets()),
            IpAddr::V6(a) => out.put_slice(&a.octets()),
        }
    }
    out.put_u8(0);
}

pub fn encode_attribute(a: &PathAttribute, four_octet: bool, out: &mut BytesMut) {
    use flag::{OPTIONAL, TRANSITIVE};
    let mut v = BytesMut::new();
    let flags = match a {
        PathAttribute::Unknown { flags, .. } => *flags,
        _ => expected_flags(a.type_code()).unwrap_or(OPTIONAL | TRANSITIVE),
    };
    match a {
        PathAttribute::Origin(o) => v.put_u8(*o as u8),
        PathAttribute::AsPath(s) => encode_as_path(s, four_octet, &mut v),
        PathAttribute::As4Path(s) => encode_as_path(s, true, &mut v),
        PathAttribute::NextHop(nh) => v.put_slice(&nh.octets()),
        PathAttribute::MultiExitDisc(x) | PathAttribute::LocalPref(x) => v.put_u32(*x),
        PathAttribute::AtomicAggregate => {}
        PathAttribute::Aggregator { asn, address } => {
            if four_octet {
                v.put_u32(*asn);
            } else {
                v.put_u16(u16::try_from(*asn).unwrap_or(super::open::AS_TRANS));
            }
            v.put_slice(&address.octets());
        }
        PathAttribute::As4Aggregator { asn, address } => {
            v.put_u32(*asn);
            v.put_slice(&address.octets());
        }
        PathAttribute::Communities(c) | PathAttribute::ClusterList(c) => {
            c.iter().for_each(|&x| v.put_u32(x))
        }
        PathAttribute::OriginatorId(id) => v.put_slice(&id.octets()),
        PathAttribute::LargeCommunities(lc) => lc.iter().for_each(|c| {
            v.put_u32(c.global_admin);
            v.put_u32(c.local_data1);
            v.put_u32(c.local_data2);
        }),
        PathAttribute::MpReach(r) => {
            encode_mp_reach_header(&mut v, r.afi, r.safi, &r.next_hops);
            r.nlri.iter().for_each(|p| encode_prefix(&mut v, *p));
        }
        PathAttribute::MpUnreach(u) => {
            v.put_u16(u.afi.0);
            v.put_u8(u.safi.0);
            u.withdrawn.iter().for_each(|p| encode_prefix(&mut v, *p));
        }
        PathAttribute::Unknown { value, .. } => v.put_slice(value),
    }
    put_attribute(out, flags, a.type_code(), &v);
}
