//! OPEN message (RFC 4271 §4.2) with the Capabilities optional parameter (RFC 5492) and the capabilities
//! ferrolb speaks: Multiprotocol (RFC 4760), Route Refresh (RFC 2918), Graceful Restart (RFC 4724) and
//! 4-octet AS numbers (RFC 6793). Extended optional parameters (RFC 9072) are accepted on decode.

use super::notification::{code, open as sub, Notification};
use super::{Afi, Safi};
use bytes::{BufMut, Bytes, BytesMut};
use std::net::Ipv4Addr;

pub const BGP_VERSION: u8 = 4;
/// RFC 6793: the 2-octet placeholder for an AS number that needs 4 octets.
pub const AS_TRANS: u16 = 23456;

const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072: an Optional Parameters Length of 255 followed by this type announces 2-octet lengths.
const PARAM_EXTENDED_LENGTH: u8 = 255;

pub mod capability_code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    /// Pre-standard Cisco route refresh; some peers still send it.
    pub const ROUTE_REFRESH_CISCO: u8 = 128;
}

/// Graceful Restart capability (RFC 4724 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GracefulRestart {
    /// R bit: the sender has restarted.
    pub restart_state: bool,
    /// N bit (RFC 8538): the sender supports graceful restart for NOTIFICATIONs.
    pub notification: bool,
    /// Seconds, 12 bits.
    pub restart_time: u16,
    /// Families with their Forwarding State (F) bit.
    pub families: Vec<(Afi, Safi, bool)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    Multiprotocol {
        afi: Afi,
        safi: Safi,
    },
    RouteRefresh,
    GracefulRestart(GracefulRestart),
    FourOctetAs(u32),
    /// Anything else (FQDN, ADD-PATH, legacy route refresh …): kept so that it can be logged, never refused.
    Unknown {
        code: u8,
        value: Bytes,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    pub version: u8,
    /// The 2-octet "My Autonomous System" field (AS_TRANS when the real ASN needs 4 octets).
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The speaker's real AS: the 4-octet capability if present (RFC 6793 §4.1), else the 2-octet field.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    pub fn supports_four_octet_as(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
    }

    pub fn supports_route_refresh(&self) -> bool {
        self.capabilities.iter().any(|c| match c {
            Capability::RouteRefresh => true,
            Capability::Unknown { code, .. } => *code == capability_code::ROUTE_REFRESH_CISCO,
            _ => false,
        })
    }

    /// Families announced with the Multiprotocol capability. RFC 4760 §8: a speaker that sends none
    /// supports IPv4 unicast only.
    pub fn families(&self) -> Vec<(Afi, Safi)> {
        let mp: Vec<_> = self
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol { afi, safi } => Some((*afi, *safi)),
                _ => None,
            })
            .collect();
        if mp.is_empty() {
            vec![(Afi::IPV4, Safi::UNICAST)]
        } else {
            mp
        }
    }

    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
    }

    pub fn encode_body(&self, out: &mut BytesMut) {
        let mut caps = BytesMut::new();
        for cap in &self.capabilities {
            encode_capability(cap, &mut caps);
        }
        out.put_u8(self.version);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_slice(&self.bgp_id.octets());
        if caps.is_empty() {
            out.put_u8(0);
            return;
        }
        // One Capabilities parameter per 255 octets of capabilities (RFC 5492 allows several parameters).
        let mut params = BytesMut::new();
        let mut chunk = BytesMut::new();
        let mut rest = caps.freeze();
        while !rest.is_empty() {
            // Split only between whole capabilities.
            let mut take = 0;
            while take < rest.len() {
                let len = 2 + rest[take + 1] as usize;
                if take + len > 255 {
                    break;
                }
                take += len;
            }
            chunk.clear();
            chunk.put_slice(&rest[..take]);
            params.put_u8(PARAM_CAPABILITIES);
            params.put_u8(take as u8);
            params.put_slice(&chunk);
            rest = rest.slice(take..);
        }
        out.put_u8(params.len() as u8);
        out.put_slice(&params);
    }

    /// Decodes and checks an OPEN body (RFC 4271 §6.2). Checks that need the session's configuration
    /// (peer AS, our own identifier) are the FSM's.
    pub fn decode_body(body: &[u8]) -> Result<Open, Notification> {
        let unspecific = || Notification::new(code::OPEN, sub::UNSPECIFIC);
        if body.len() < 10 {
            return Err(unspecific());
        }
        let version = body[0];
        if version != BGP_VERSION {
            // Data: the largest version we support (RFC 4271 §6.2).
            return Err(Notification::with_data(
                code::OPEN,
                sub::UNSUPPORTED_VERSION,
                Bytes::from_static(&[0, BGP_VERSION]),
            ));
        }
        let my_as = u16::from_be_bytes([body[1], body[2]]);
        let hold_time = u16::from_be_bytes([body[3], body[4]]);
        let bgp_id = Ipv4Addr::new(body[5], body[6], body[7], body[8]);
        let mut opt_len = body[9] as usize;
        let mut params = &body[10..];
        let extended = opt_len == 255 && params.first() == Some(&PARAM_EXTENDED_LENGTH);
        if extended {
            if params.len() < 3 {
                return Err(unspecific());
            }
            opt_len = u16::from_be_bytes([params[1], params[2]]) as usize;
            params = &params[3..];
        }
        if params.len() != opt_len {
            return Err(unspecific());
        }
        if hold_time == 1 || hold_time == 2 {
            return Err(Notification::new(code::OPEN, sub::UNACCEPTABLE_HOLD_TIME));
        }
        if bgp_id.is_unspecified() {
            return Err(Notification::with_data(
                code::OPEN,
                sub::BAD_BGP_IDENTIFIER,
                Bytes::copy_from_slice(&bgp_id.octets()),
            ));
        }
        let mut capabilities = Vec::new();
        while !params.is_empty() {
            let header = if extended { 3 } else { 2 };
            if params.len() < header {
                return Err(unspecific());
            }
            let ptype = params[0];
            let plen = if extended {
                u16::from_be_bytes([params[1], params[2]]) as usize
            } else {
                params[1] as usize
            };
            let value = params.get(header..header + plen).ok_or_else(unspecific)?;
            if ptype != PARAM_CAPABILITIES {
                return Err(Notification::with_data(
                    code::OPEN,
                    sub::UNSUPPORTED_OPTIONAL_PARAMETER,
                    Bytes::copy_from_slice(&params[..header + plen]),
                ));
            }
            decode_capabilities(value, &mut capabilities)?;
            params = &params[header + plen..];
        }
        Ok(Open {
            version,
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
    }
}

fn decode_capabilities(mut buf: &[u8], caps: &mut Vec<Capability>) -> Result<(), Notification> {
    let malformed = || Notification::new(code::OPEN, sub::UNSPECIFIC);
    while !buf.is_empty() {
        if buf.len() < 2 {
            return Err(malformed());
        }
        let (cap_code, len) = (buf[0], buf[1] as usize);
        let value = buf.get(2..2 + len).ok_or_else(malformed)?;
        let cap = match cap_code {
            capability_code::MULTIPROTOCOL => {
                if len != 4 {
                    return Err(malformed());
                }
                Capability::Multiprotocol {
                    afi: Afi(u16::from_be_bytes([value[0], value[1]])),
                    safi: Safi(value[3]),
                }
            }
            capability_code::ROUTE_REFRESH => {
                if len != 0 {
                    return Err(malformed());
                }
                Capability::RouteRefresh
            }
            capability_code::FOUR_OCTET_AS => {
                if len != 4 {
                    return Err(malformed());
                }
                Capability::FourOctetAs(u32::from_be_bytes([
                    value[0], value[1], value[2], value[3],
                ]))
            }
            capability_code::GRACEFUL_RESTART => {
                if len < 2 || (len - 2) % 4 != 0 {
                    return Err(malformed());
                }
                let flags_time = u16::from_be_bytes([value[0], value[1]]);
                let families = value[2..]
                    .chunks_exact(4)
                    .map(|f| {
                        (
                            Afi(u16::from_be_bytes([f[0], f[1]])),
                            Safi(f[2]),
                            f[3] & 0x80 != 0,
                        )
                    })
                    .collect();
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: flags_time & 0x8000 != 0,
                    notification: flags_time & 0x4000 != 0,
                    restart_time: flags_time & 0x0fff,
                    families,
                })
            }
            _ => Capability::Unknown {
                code: cap_code,
                value: Bytes::copy_from_slice(value),
            },
        };
        caps.push(cap);
        buf = &buf[2 + len..];
    }
    Ok(())
}

fn encode_capability(cap: &Capability, out: &mut BytesMut) {
    match cap {
        Capability::Multiprotocol { afi, safi } => {
            out.put_slice(&[capability_code::MULTIPROTOCOL, 4]);
            out.put_u16(afi.0);
            out.put_u8(0);
            out.put_u8(safi.0);
        }
        Capability::RouteRefresh => out.put_slice(&[capability_code::ROUTE_REFRESH, 0]),
        Capability::FourOctetAs(asn) => {
            out.put_slice(&[capability_code::FOUR_OCTET_AS, 4]);
            out.put_u32(*asn);
        }
        Capability::GracefulRestart(gr) => {
            out.put_u8(capability_code::GRACEFUL_RESTART);
            out.put_u8((2 + 4 * gr.families.len()) as u8);
            let mut flags_time = gr.restart_time.min(0x0fff);
            if gr.restart_state {
                flags_time |= 0x8000;
            }
            if gr.notification {
                flags_time |= 0x4000;
            }
            out.put_u16(flags_time);
            for (afi, safi, forwarding) in &gr.families {
                out.put_u16(afi.0);
                out.put_u8(safi.0);
                out.put_u8(if *forwarding { 0x80 } else { 0 });
            }
        }
        Capability::Unknown { code, value } => {
            out.put_u8(*code);
            out.put_u8(value.len() as u8);
            out.put_slice(value);
        }
    }
}
