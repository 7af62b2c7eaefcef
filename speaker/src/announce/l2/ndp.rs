//! Neighbor Discovery (RFC 4861) over Ethernet: whole frames (Ethernet + IPv6 + ICMPv6) for Neighbor
//! Solicitations in and Neighbor Advertisements out, with the ICMPv6 checksum (RFC 4443 §2.3) computed and
//! checked here. Parsing never panics: every malformed or invalid frame is an `Err` with the reason.
//!
//! Only frames whose IPv6 header is directly followed by ICMPv6 are handled (no extension headers): Neighbor
//! Discovery messages are never fragmented, and nothing in a normal segment puts extension headers on them.

use std::net::Ipv6Addr;

use super::Mac;

/// EtherType of IPv6.
pub(crate) const ETH_P_IPV6: u16 = 0x86dd;
const NEXT_HEADER_ICMPV6: u8 = 58;
pub(crate) const TYPE_NS: u8 = 135;
pub(crate) const TYPE_NA: u8 = 136;
const OPT_SOURCE_LLA: u8 = 1;
const OPT_TARGET_LLA: u8 = 2;
/// Ethernet (14) + IPv6 (40).
const ICMP_AT: usize = 54;
/// Type, code, checksum, 4 reserved/flag bytes, target.
const ND_BODY: usize = 24;
/// RFC 4861 §7.1.1/§7.1.2: Neighbor Discovery is link-local, hop limit 255 proves it was not forwarded.
pub(crate) const HOP_LIMIT: u8 = 255;

const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// ff02::1, all nodes on the link.
pub(crate) const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The solicited-node multicast group of `ip` (ff02::1:ffXX:XXXX, RFC 4291 §2.7.1).
pub(crate) fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet multicast address of an IPv6 multicast group (33:33 + low 32 bits, RFC 2464 §7).
pub(crate) fn multicast_mac(group: Ipv6Addr) -> Mac {
    let o = group.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

fn sum16(mut acc: u32, b: &[u8]) -> u32 {
    let mut chunks = b.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

/// The ICMPv6 checksum of `icmp` (with its checksum field as it is) between `src` and `dst`. When the
/// field holds the right checksum, the result is 0.
pub(crate) fn checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut acc = sum16(0, &src.octets());
    acc = sum16(acc, &dst.octets());
    // Upper-layer length is at most 65535 here (it comes from a 16-bit payload length or our own frames).
    let len = u32::try_from(icmp.len()).unwrap_or(u32::MAX);
    acc += len >> 16;
    acc += len & 0xffff;
    acc += u32::from(NEXT_HEADER_ICMPV6);
    acc = sum16(acc, icmp);
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn addr_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

fn mac_at(b: &[u8], at: usize) -> Mac {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    Mac(m)
}

/// An IPv6 packet carrying ICMPv6, after the checks shared by every ND message (RFC 4861 §7.1): Ethernet
/// type, IPv6 version, next header, hop limit 255, lengths, ICMPv6 checksum, code 0.
struct Icmp<'a> {
    eth_dst: Mac,
    eth_src: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    msg: &'a [u8],
}

fn parse_icmp(b: &[u8]) -> Result<Icmp<'_>, &'static str> {
    if b.len() < ICMP_AT {
        return Err("truncated before ICMPv6");
    }
    if u16::from_be_bytes([b[12], b[13]]) != ETH_P_IPV6 {
        return Err("not IPv6");
    }
    if b[14] >> 4 != 6 {
        return Err("IP version not 6");
    }
    if b[20] != NEXT_HEADER_ICMPV6 {
        return Err("next header not ICMPv6");
    }
    if b[21] != HOP_LIMIT {
        return Err("hop limit not 255");
    }
    let payload = usize::from(u16::from_be_bytes([b[18], b[19]]));
    let msg = b
        .get(ICMP_AT..ICMP_AT + payload)
        .ok_or("payload length beyond the frame")?;
    if msg.len() < ND_BODY {
        return Err("ICMPv6 message too short for Neighbor Discovery");
    }
    let src = addr_at(b, 22);
    let dst = addr_at(b, 38);
    if checksum(src, dst, msg) != 0 {
        return Err("bad ICMPv6 checksum");
    }
    if msg[1] != 0 {
        return Err("ICMPv6 code not 0");
    }
    Ok(Icmp {
        eth_dst: mac_at(b, 0),
        eth_src: mac_at(b, 6),
        src,
        dst,
        msg,
    })
}

/// Walks the ND options after the fixed part; returns the first link-layer address option of `kind`.
/// Every option must have a non-zero length and fit (RFC 4861 §4.6, §7.1.1).
fn find_lla(opts: &[u8], kind: u8) -> Result<Option<Mac>, &'static str> {
    let mut rest = opts;
    let mut found = None;
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err("truncated option");
        }
        let len = usize::from(rest[1]) * 8;
        if len == 0 {
            return Err("option with length 0");
        }
        let opt = rest.get(..len).ok_or("option beyond the message")?;
        if opt[0] == kind && found.is_none() {
            // For Ethernet the option is 8 bytes: type, length, 6-byte MAC.
            if len != 8 {
                return Err("link-layer address option not 8 bytes");
            }
            found = Some(mac_at(opt, 2));
        }
        rest = &rest[len..];
    }
    Ok(found)
}

/// A valid Neighbor Solicitation (RFC 4861 §7.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Solicitation {
    pub eth_dst: Mac,
    pub eth_src: Mac,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub target: Ipv6Addr,
    pub source_lla: Option<Mac>,
}

impl Solicitation {
    /// Parses and validates an Ethernet frame; `Err` for anything that is not a valid NS.
    pub(crate) fn parse(b: &[u8]) -> Result<Solicitation, &'static str> {
        let p = parse_icmp(b)?;
        if p.msg[0] != TYPE_NS {
            return Err("not a Neighbor Solicitation");
        }
        let target = addr_at(p.msg, 8);
        if target.is_multicast() {
            return Err("multicast target");
        }
        let source_lla = find_lla(&p.msg[ND_BODY..], OPT_SOURCE_LLA)?;
        if p.src.is_unspecified() {
            if p.dst != solicited_node(target) {
                return Err("unspecified source but not to the solicited-node group");
            }
            if source_lla.is_some() {
                return Err("unspecified source with a source link-layer address");
            }
        }
        Ok(Solicitation {
            eth_dst: p.eth_dst,
            eth_src: p.eth_src,
            src: p.src,
            dst: p.dst,
            target,
            source_lla,
        })
    }

    /// The advertisement answering this solicitation on an interface with MAC `mac` (and link-local
    /// address `link_local`, the advertisement's source; the target itself when the interface has none),
    /// when `owns` says we answer for its target. The choice follows RFC 4861 §7.2.4:
    ///
    /// - with a source link-layer address option: a solicited NA (S=1, O=0) to the source, at that MAC;
    /// - from the unspecified address (Duplicate Address Detection by someone else): an NA with S=0, O=1 to
    ///   all nodes — the address is in use, exactly what a host owning it would say (RFC 4862 §5.4.3);
    /// - unicast to the target without the option (a Neighbor Unreachability probe, RFC 4861 §7.2.2
    ///   allows omitting it): a solicited NA to the frame's Ethernet source;
    /// - multicast without the option from a specified source is invalid (§7.2.2 MUST) and ignored.
    ///
    /// Solicitations must reach us properly addressed: to the target's solicited-node group at its
    /// multicast MAC, or to the target at our MAC. Our own frames are ignored.
    pub(crate) fn reply_for(
        &self,
        mac: Mac,
        link_local: Option<Ipv6Addr>,
        owns: impl Fn(Ipv6Addr) -> bool,
    ) -> Option<Advertisement> {
        if self.eth_src == mac || !owns(self.target) {
            return None;
        }
        let multicast = self.dst == solicited_node(self.target);
        if multicast {
            if self.eth_dst != multicast_mac(self.dst) {
                return None;
            }
        } else if self.dst != self.target || self.eth_dst != mac {
            return None;
        }
        let src = link_local.unwrap_or(self.target);
        let na = |eth_dst, dst, solicited, override_flag| Advertisement {
            eth_dst,
            eth_src: mac,
            src,
            dst,
            router: false,
            solicited,
            override_flag,
            target: self.target,
            target_lla: Some(mac),
        };
        if self.src.is_unspecified() {
            return Some(na(multicast_mac(ALL_NODES), ALL_NODES, false, true));
        }
        match self.source_lla {
            Some(lla) => Some(na(lla, self.src, true, false)),
            None if !multicast => Some(na(self.eth_src, self.src, true, false)),
            None => None,
        }
    }

    /// The wire form (for tests): hop limit 255, valid checksum.
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut icmp = vec![TYPE_NS, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&self.target.octets());
        if let Some(m) = self.source_lla {
            icmp.extend_from_slice(&[OPT_SOURCE_LLA, 1]);
            icmp.extend_from_slice(&m.0);
        }
        frame(self.eth_dst, self.eth_src, self.src, self.dst, icmp)
    }
}

/// A Neighbor Advertisement (RFC 4861 §4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Advertisement {
    pub eth_dst: Mac,
    pub eth_src: Mac,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub router: bool,
    pub solicited: bool,
    pub override_flag: bool,
    pub target: Ipv6Addr,
    pub target_lla: Option<Mac>,
}

impl Advertisement {
    /// The unsolicited advertisement sent on gaining `target`: to all nodes, S=0, O=1, with our MAC, so
    /// every neighbour cache entry for `target` moves to us (RFC 4861 §7.2.6).
    pub(crate) fn unsolicited(mac: Mac, link_local: Option<Ipv6Addr>, target: Ipv6Addr) -> Self {
        Advertisement {
            eth_dst: multicast_mac(ALL_NODES),
            eth_src: mac,
            src: link_local.unwrap_or(target),
            dst: ALL_NODES,
            router: false,
            solicited: false,
            override_flag: true,
            target,
            target_lla: Some(mac),
        }
    }

    /// The wire form: hop limit 255, checksum filled in.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut flags = 0;
        if self.router {
            flags |= FLAG_ROUTER;
        }
        if self.solicited {
            flags |= FLAG_SOLICITED;
        }
        if self.override_flag {
            flags |= FLAG_OVERRIDE;
        }
        let mut icmp = vec![TYPE_NA, 0, 0, 0, flags, 0, 0, 0];
        icmp.extend_from_slice(&self.target.octets());
        if let Some(m) = self.target_lla {
            icmp.extend_from_slice(&[OPT_TARGET_LLA, 1]);
            icmp.extend_from_slice(&m.0);
        }
        frame(self.eth_dst, self.eth_src, self.src, self.dst, icmp)
    }

    /// Parses and validates an advertisement (RFC 4861 §7.1.2).
    #[cfg(test)]
    pub(crate) fn parse(b: &[u8]) -> Result<Advertisement, &'static str> {
        let p = parse_icmp(b)?;
        if p.msg[0] != TYPE_NA {
            return Err("not a Neighbor Advertisement");
        }
        let target = addr_at(p.msg, 8);
        if target.is_multicast() {
            return Err("multicast target");
        }
        let flags = p.msg[4];
        if p.dst.is_multicast() && flags & FLAG_SOLICITED != 0 {
            return Err("solicited advertisement to a multicast address");
        }
        Ok(Advertisement {
            eth_dst: p.eth_dst,
            eth_src: p.eth_src,
            src: p.src,
            dst: p.dst,
            router: flags & FLAG_ROUTER != 0,
            solicited: flags & FLAG_SOLICITED != 0,
            override_flag: flags & FLAG_OVERRIDE != 0,
            target,
            target_lla: find_lla(&p.msg[ND_BODY..], OPT_TARGET_LLA)?,
        })
    }
}

/// Ethernet + IPv6 (hop limit 255) around an ICMPv6 message whose checksum field is still zero.
fn frame(eth_dst: Mac, eth_src: Mac, src: Ipv6Addr, dst: Ipv6Addr, mut icmp: Vec<u8>) -> Vec<u8> {
    let sum = checksum(src, dst, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut b = Vec::with_capacity(ICMP_AT + icmp.len());
    b.extend_from_slice(&eth_dst.0);
    b.extend_from_slice(&eth_src.0);
    b.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
    b.extend_from_slice(&[0x60, 0, 0, 0]);
    // ND messages built here are at most 32 bytes.
    b.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    b.extend_from_slice(&[NEXT_HEADER_ICMPV6, HOP_LIMIT]);
    b.extend_from_slice(&src.octets());
    b.extend_from_slice(&dst.octets());
    b.extend_from_slice(&icmp);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
    const PEER: Mac = Mac([0x02, 0, 0, 0, 0, 0x0b]);
    const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x200);
    const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1);
    const LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x0a);

    fn owns(ip: Ipv6Addr) -> bool {
        ip == VIP
    }

    /// A multicast NS laid out byte by byte as Linux sends it when resolving VIP (the checksum is
    /// checked against hand arithmetic in `checksum_matches_a_known_packet`, and against the kernel in
    /// the interop tests).
    fn linux_ns() -> Vec<u8> {
        let mut b = vec![0x33, 0x33, 0xff, 0x00, 0x02, 0x00];
        b.extend_from_slice(&PEER.0);
        b.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255]);
        b.extend_from_slice(&CLIENT.octets());
        b.extend_from_slice(&solicited_node(VIP).octets());
        b.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&VIP.octets());
        b.extend_from_slice(&[1, 1]);
        b.extend_from_slice(&PEER.0);
        let sum = checksum(CLIENT, solicited_node(VIP), &b[54..]);
        b[56..58].copy_from_slice(&sum.to_be_bytes());
        b
    }

    #[test]
    fn checksum_matches_a_known_packet() {
        // RFC 1071 arithmetic over a tiny message: pseudo-header ::1 -> ::1, length 8, next header 58.
        let msg = [128u8, 0, 0, 0, 0, 1, 0, 1]; // echo request id 1 seq 1
        let one = Ipv6Addr::LOCALHOST;
        // Sum: 1 + 1 + 8 + 58 + 0x8000 + 1 + 1 = 0x8046; complement 0x7fb9.
        assert_eq!(checksum(one, one, &msg), 0x7fb9);
        let mut with = msg;
        with[2..4].copy_from_slice(&0x7fb9u16.to_be_bytes());
        assert_eq!(checksum(one, one, &with), 0);
        // Odd length pads with a zero byte.
        assert_eq!(checksum(one, one, &[0xff]), !(1u16 + 1 + 1 + 58 + 0xff00));
    }

    #[test]
    fn solicited_node_and_macs() {
        assert_eq!(
            solicited_node("2001:db8::1234:5678".parse().unwrap()),
            "ff02::1:ff34:5678".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            multicast_mac("ff02::1:ff34:5678".parse().unwrap()),
            Mac([0x33, 0x33, 0xff, 0x34, 0x56, 0x78])
        );
        assert_eq!(multicast_mac(ALL_NODES), Mac([0x33, 0x33, 0, 0, 0, 1]));
    }

    #[test]
    fn answers_a_multicast_solicitation() {
        let ns = Solicitation::parse(&linux_ns()).unwrap();
        assert_eq!(ns.target, VIP);
        assert_eq!(ns.src, CLIENT);
        assert_eq!(ns.source_lla, Some(PEER));
        let na = ns.reply_for(OURS, Some(LL), owns).unwrap();
        assert_eq!(
            na,
            Advertisement {
                eth_dst: PEER,
                eth_src: OURS,
                src: LL,
                dst: CLIENT,
                router: false,
                solicited: true,
                override_flag: false,
                target: VIP,
                target_lla: Some(OURS),
            }
        );
        let wire = na.encode();
        assert_eq!(wire.len(), 14 + 40 + 32);
        assert_eq!(wire[21], 255);
        assert_eq!(wire[54], 136);
        assert_eq!(wire[58], 0x40);
        assert_eq!(checksum(LL, CLIENT, &wire[54..]), 0);
        assert_eq!(Advertisement::parse(&wire).unwrap(), na);
        // Without a link-local address the target is the source.
        let na = ns.reply_for(OURS, None, owns).unwrap();
        assert_eq!(na.src, VIP);
    }

    #[test]
    fn dad_and_nud_probes() {
        // DAD probe for our VIP: unspecified source, no option → NA to all nodes, S=0, O=1.
        let dad = Solicitation {
            eth_dst: multicast_mac(solicited_node(VIP)),
            eth_src: PEER,
            src: Ipv6Addr::UNSPECIFIED,
            dst: solicited_node(VIP),
            target: VIP,
            source_lla: None,
        };
        let parsed = Solicitation::parse(&dad.encode()).unwrap();
        assert_eq!(parsed, dad);
        let na = parsed.reply_for(OURS, Some(LL), owns).unwrap();
        assert_eq!(na.dst, ALL_NODES);
        assert_eq!(na.eth_dst, Mac([0x33, 0x33, 0, 0, 0, 1]));
        assert!(!na.solicited && na.override_flag);
        // Unicast NUD probe without the option → answered to the frame's source MAC.
        let nud = Solicitation {
            eth_dst: OURS,
            eth_src: PEER,
            src: CLIENT,
            dst: VIP,
            target: VIP,
            source_lla: None,
        };
        let na = Solicitation::parse(&nud.encode())
            .unwrap()
            .reply_for(OURS, Some(LL), owns)
            .unwrap();
        assert_eq!((na.eth_dst, na.dst, na.solicited), (PEER, CLIENT, true));
        // Multicast from a real source without the option: invalid, ignored.
        let bad = Solicitation {
            source_lla: None,
            ..Solicitation::parse(&linux_ns()).unwrap()
        };
        assert!(bad.reply_for(OURS, Some(LL), owns).is_none());
    }

    #[test]
    fn ignores_what_is_not_ours() {
        let ns = Solicitation::parse(&linux_ns()).unwrap();
        assert!(ns.reply_for(OURS, Some(LL), |_| false).is_none());
        // Our own frame.
        assert!(ns.reply_for(PEER, Some(LL), |_| true).is_none());
        // Unicast to the target at someone else's MAC.
        let uni = Solicitation {
            eth_dst: PEER,
            eth_src: Mac([2, 0, 0, 0, 0, 0x0c]),
            dst: VIP,
            ..ns.clone()
        };
        assert!(uni.reply_for(OURS, None, owns).is_none());
        // Sent to another group than the target's.
        let other = Solicitation {
            dst: solicited_node(CLIENT),
            eth_dst: multicast_mac(solicited_node(CLIENT)),
            ..ns.clone()
        };
        assert!(other.reply_for(OURS, None, owns).is_none());
        // An advertisement is not a solicitation and vice versa.
        let na = Advertisement::unsolicited(OURS, Some(LL), VIP).encode();
        assert_eq!(Solicitation::parse(&na), Err("not a Neighbor Solicitation"));
        assert!(Advertisement::parse(&linux_ns()).is_err());
    }

    #[test]
    fn unsolicited_advertisement() {
        let na = Advertisement::unsolicited(OURS, Some(LL), VIP);
        let w = na.encode();
        let p = Advertisement::parse(&w).unwrap();
        assert_eq!(p.dst, ALL_NODES);
        assert_eq!(p.eth_dst, multicast_mac(ALL_NODES));
        assert!(p.override_flag && !p.solicited && !p.router);
        assert_eq!(p.target_lla, Some(OURS));
        assert_eq!(w[58], 0x20);
    }

    #[test]
    fn rfc4861_validity_checks() {
        let good = linux_ns();
        let fix = |b: &mut Vec<u8>| {
            b[56] = 0;
            b[57] = 0;
            let src = addr_at(b, 22);
            let dst = addr_at(b, 38);
            let s = checksum(src, dst, &b[54..]);
            b[56..58].copy_from_slice(&s.to_be_bytes());
        };
        // Hop limit 254: forwarded, must be dropped.
        let mut b = good.clone();
        b[21] = 254;
        assert_eq!(Solicitation::parse(&b), Err("hop limit not 255"));
        // Bad checksum.
        let mut b = good.clone();
        b[57] ^= 1;
        assert_eq!(Solicitation::parse(&b), Err("bad ICMPv6 checksum"));
        // Code 1.
        let mut b = good.clone();
        b[55] = 1;
        fix(&mut b);
        assert_eq!(Solicitation::parse(&b), Err("ICMPv6 code not 0"));
        // Multicast target.
        let mut b = good.clone();
        b[62] = 0xff;
        fix(&mut b);
        assert_eq!(Solicitation::parse(&b), Err("multicast target"));
        // Option length 0.
        let mut b = good.clone();
        b[79] = 0;
        fix(&mut b);
        assert_eq!(Solicitation::parse(&b), Err("option with length 0"));
        // Option longer than the message.
        let mut b = good.clone();
        b[79] = 2;
        fix(&mut b);
        assert_eq!(Solicitation::parse(&b), Err("option beyond the message"));
        // Unspecified source with a source link-layer option.
        let mut b = good.clone();
        b[22..38].copy_from_slice(&[0; 16]);
        fix(&mut b);
        assert!(Solicitation::parse(&b).is_err());
        // Unknown options are skipped; padding after the payload is ignored.
        let mut b = good.clone();
        b.extend_from_slice(&[14, 1, 0, 0, 0, 0, 0, 0]);
        b[19] += 8;
        fix(&mut b);
        let mut padded = b.clone();
        padded.extend_from_slice(&[0xaa; 10]);
        assert_eq!(Solicitation::parse(&padded).unwrap().source_lla, Some(PEER));
        // Payload length beyond the frame.
        let mut b = good.clone();
        b[19] = 200;
        assert!(Solicitation::parse(&b).is_err());
        // Extension header / not ICMPv6 / not IPv6 / version.
        for (i, v) in [(20, 0u8), (12, 0x08), (14, 0x40)] {
            let mut b = good.clone();
            b[i] = v;
            assert!(Solicitation::parse(&b).is_err(), "byte {i}");
        }
    }

    #[test]
    fn truncated_and_garbage_frames_are_errors_not_panics() {
        let good = linux_ns();
        for n in 0..good.len() {
            let mut b = good[..n].to_vec();
            assert!(Solicitation::parse(&b).is_err(), "len {n}");
            // Also with the payload length adjusted to what is there.
            if n > ICMP_AT {
                let l = (n - ICMP_AT) as u16;
                b[18..20].copy_from_slice(&l.to_be_bytes());
                let _ = Solicitation::parse(&b);
                let _ = Advertisement::parse(&b);
            }
        }
        let mut rnd = crate::test_support::Junk::new();
        for len in 0..160 {
            let junk = rnd.bytes(len);
            let _ = Solicitation::parse(&junk);
            let _ = Advertisement::parse(&junk);
            // Valid headers, random ICMPv6 body, correct checksum: exercises the option walker.
            let mut b = good[..ICMP_AT].to_vec();
            let mut body = vec![TYPE_NS, 0, 0, 0];
            body.extend_from_slice(&junk);
            b[18..20].copy_from_slice(&(body.len() as u16).to_be_bytes());
            b.extend_from_slice(&body);
            let s = checksum(CLIENT, solicited_node(VIP), &b[ICMP_AT..]);
            b[56..58].copy_from_slice(&s.to_be_bytes());
            if let Ok(ns) = Solicitation::parse(&b) {
                let _ = ns.reply_for(OURS, Some(LL), |_| true);
            }
        }
    }
}
