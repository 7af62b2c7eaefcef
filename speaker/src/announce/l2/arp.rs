//! ARP over Ethernet (RFC 826): the frames the responder reads and writes. Parsing never panics: every
//! malformed frame is an `Err` with the reason.

use std::net::Ipv4Addr;

use super::Mac;

/// EtherType of ARP.
pub(crate) const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;
const HTYPE_ETHERNET: u16 = 1;
/// Ethernet header (14) + ARP for Ethernet/IPv4 (28).
const FRAME_LEN: usize = 42;
/// Short frames are padded to the Ethernet minimum (without FCS), as not every driver pads.
const MIN_FRAME: usize = 60;

pub(crate) const OP_REQUEST: u16 = 1;
pub(crate) const OP_REPLY: u16 = 2;

/// One ARP packet for Ethernet and IPv4, with the Ethernet addresses it travelled with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArpFrame {
    pub eth_dst: Mac,
    pub eth_src: Mac,
    pub op: u16,
    /// Sender hardware / protocol address.
    pub sha: Mac,
    pub spa: Ipv4Addr,
    /// Target hardware / protocol address.
    pub tha: Mac,
    pub tpa: Ipv4Addr,
}

fn mac_at(b: &[u8], at: usize) -> Mac {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    Mac(m)
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

impl ArpFrame {
    /// Parses an Ethernet frame carrying ARP for IPv4 over Ethernet (trailing padding allowed).
    pub(crate) fn parse(b: &[u8]) -> Result<ArpFrame, &'static str> {
        if b.len() < FRAME_LEN {
            return Err("truncated");
        }
        if u16_at(b, 12) != ETH_P_ARP {
            return Err("not ARP");
        }
        let a = &b[14..];
        if u16_at(a, 0) != HTYPE_ETHERNET {
            return Err("hardware type not Ethernet");
        }
        if u16_at(a, 2) != ETH_P_IP {
            return Err("protocol type not IPv4");
        }
        if a[4] != 6 || a[5] != 4 {
            return Err("address lengths not 6/4");
        }
        Ok(ArpFrame {
            eth_dst: mac_at(b, 0),
            eth_src: mac_at(b, 6),
            op: u16_at(a, 6),
            sha: mac_at(a, 8),
            spa: ip_at(a, 14),
            tha: mac_at(a, 18),
            tpa: ip_at(a, 24),
        })
    }

    /// The wire form, padded to 60 bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(MIN_FRAME);
        b.extend_from_slice(&self.eth_dst.0);
        b.extend_from_slice(&self.eth_src.0);
        b.extend_from_slice(&ETH_P_ARP.to_be_bytes());
        b.extend_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        b.extend_from_slice(&ETH_P_IP.to_be_bytes());
        b.extend_from_slice(&[6, 4]);
        b.extend_from_slice(&self.op.to_be_bytes());
        b.extend_from_slice(&self.sha.0);
        b.extend_from_slice(&self.spa.octets());
        b.extend_from_slice(&self.tha.0);
        b.extend_from_slice(&self.tpa.octets());
        b.resize(MIN_FRAME, 0);
        b
    }

    /// The answer to this frame when it asks for an address `owns` says we answer for, received on an
    /// interface with MAC `mac`: only requests, only when sent to broadcast or to `mac`. The reply goes to
    /// the requester's hardware address and carries `mac` (the receiving interface's) for the target IP.
    /// Probes (sender 0.0.0.0, RFC 5227) are answered like the kernel answers them for its own addresses.
    pub(crate) fn reply_for(&self, mac: Mac, owns: impl Fn(Ipv4Addr) -> bool) -> Option<ArpFrame> {
        if self.op != OP_REQUEST {
            return None;
        }
        if self.eth_dst != Mac::BROADCAST && self.eth_dst != mac {
            return None;
        }
        // Our own gratuitous requests (sender = us) must not be answered.
        if self.sha == mac || self.eth_src == mac {
            return None;
        }
        if !owns(self.tpa) {
            return None;
        }
        Some(ArpFrame {
            eth_dst: self.sha,
            eth_src: mac,
            op: OP_REPLY,
            sha: mac,
            spa: self.tpa,
            tha: self.sha,
            tpa: self.spa,
        })
    }

    /// A gratuitous ARP (sender = target = `ip`, broadcast) of operation `op`, as MetalLB sends them: a
    /// request and a reply each round (the reply for kernels before 4.11, which ignore gratuitous requests
    /// for existing entries during `locktime`).
    pub(crate) fn gratuitous(mac: Mac, ip: Ipv4Addr, op: u16) -> ArpFrame {
        ArpFrame {
            eth_dst: Mac::BROADCAST,
            eth_src: mac,
            op,
            sha: mac,
            spa: ip,
            tha: Mac::BROADCAST,
            tpa: ip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
    const PEER: Mac = Mac([0x02, 0, 0, 0, 0, 0x0b]);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

    /// A request as Linux sends it (captured layout, 42 bytes, no padding).
    fn request_bytes() -> Vec<u8> {
        let mut b = vec![0xff; 6];
        b.extend_from_slice(&PEER.0);
        b.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01]);
        b.extend_from_slice(&PEER.0);
        b.extend_from_slice(&[198, 51, 100, 1]);
        b.extend_from_slice(&[0; 6]);
        b.extend_from_slice(&[198, 51, 100, 200]);
        b
    }

    fn owns(ip: Ipv4Addr) -> bool {
        ip == VIP
    }

    #[test]
    fn parses_a_request_and_answers_it() {
        let f = ArpFrame::parse(&request_bytes()).unwrap();
        assert_eq!(f.op, OP_REQUEST);
        assert_eq!(f.eth_dst, Mac::BROADCAST);
        assert_eq!(f.sha, PEER);
        assert_eq!(f.spa, CLIENT);
        assert_eq!(f.tpa, VIP);
        let r = f.reply_for(OURS, owns).unwrap();
        assert_eq!(
            r,
            ArpFrame {
                eth_dst: PEER,
                eth_src: OURS,
                op: OP_REPLY,
                sha: OURS,
                spa: VIP,
                tha: PEER,
                tpa: CLIENT,
            }
        );
        let wire = r.encode();
        assert_eq!(wire.len(), 60);
        assert_eq!(&wire[..6], &PEER.0);
        assert_eq!(&wire[12..22], &[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
        assert_eq!(ArpFrame::parse(&wire).unwrap(), r);
    }

    #[test]
    fn answers_unicast_to_us_and_probes() {
        let mut b = request_bytes();
        b[..6].copy_from_slice(&OURS.0);
        assert!(ArpFrame::parse(&b).unwrap().reply_for(OURS, owns).is_some());
        // RFC 5227 probe: sender IP 0.0.0.0.
        let mut p = request_bytes();
        p[28..32].copy_from_slice(&[0, 0, 0, 0]);
        let r = ArpFrame::parse(&p).unwrap().reply_for(OURS, owns).unwrap();
        assert_eq!(r.tpa, Ipv4Addr::UNSPECIFIED);
        assert_eq!(r.eth_dst, PEER);
    }

    #[test]
    fn ignores_what_is_not_ours() {
        let f = ArpFrame::parse(&request_bytes()).unwrap();
        // Not an owned IP.
        assert!(f.reply_for(OURS, |_| false).is_none());
        // Unicast to another MAC.
        let mut b = request_bytes();
        b[..6].copy_from_slice(&PEER.0);
        assert!(ArpFrame::parse(&b).unwrap().reply_for(OURS, owns).is_none());
        // Replies are ignored.
        let mut b = request_bytes();
        b[21] = 2;
        assert!(ArpFrame::parse(&b).unwrap().reply_for(OURS, owns).is_none());
        // Our own gratuitous request.
        let g = ArpFrame::gratuitous(OURS, VIP, OP_REQUEST);
        assert!(g.reply_for(OURS, owns).is_none());
    }

    #[test]
    fn gratuitous_frames() {
        for op in [OP_REQUEST, OP_REPLY] {
            let g = ArpFrame::gratuitous(OURS, VIP, op);
            let w = g.encode();
            let p = ArpFrame::parse(&w).unwrap();
            assert_eq!(p.op, op);
            assert_eq!(p.spa, VIP);
            assert_eq!(p.tpa, VIP);
            assert_eq!(p.eth_dst, Mac::BROADCAST);
            assert_eq!(p.sha, OURS);
        }
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let good = request_bytes();
        for n in 0..good.len() {
            assert!(ArpFrame::parse(&good[..n]).is_err(), "len {n}");
        }
        let mut b = good.clone();
        b[12] = 0x86;
        assert_eq!(ArpFrame::parse(&b), Err("not ARP"));
        let mut b = good.clone();
        b[15] = 6; // IEEE 802 hardware type
        assert!(ArpFrame::parse(&b).is_err());
        let mut b = good.clone();
        b[16] = 0x86; // protocol type
        assert!(ArpFrame::parse(&b).is_err());
        let mut b = good.clone();
        b[18] = 8; // hlen
        assert!(ArpFrame::parse(&b).is_err());
        // Garbage of every length up to two frames, from a simple deterministic generator.
        let mut rnd = crate::test_support::Junk::new();
        for len in 0..120 {
            let junk = rnd.bytes(len);
            let _ = ArpFrame::parse(&junk);
            let mut with_header = good.clone();
            with_header.truncate(14.min(len));
            with_header.extend_from_slice(&junk);
            if let Ok(f) = ArpFrame::parse(&with_header) {
                let _ = f.reply_for(OURS, owns);
            }
        }
    }
}
