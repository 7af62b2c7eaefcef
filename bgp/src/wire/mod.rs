//! BGP-4 wire format (RFC 4271 §4) on `bytes`: framing, header checks (§6.1) and the five message types.
//! Pure code: no sockets, no clocks.

pub mod notification;
pub mod open;
pub mod update;

pub use notification::Notification;
pub use open::{Capability, GracefulRestart, Open};
pub use update::{DecodeContext, LargeCommunity, PathAttribute, Update};

use bytes::{BufMut, Bytes, BytesMut};
use notification::{code, header as header_sub};

pub const MARKER: [u8; 16] = [0xff; 16];
pub const HEADER_LEN: usize = 19;
/// RFC 4271 §4.1: the largest message without the RFC 8654 extension.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// Address Family Identifier (IANA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Afi(pub u16);
impl Afi {
    pub const IPV4: Afi = Afi(1);
    pub const IPV6: Afi = Afi(2);
}

/// Subsequent Address Family Identifier (IANA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Safi(pub u8);
impl Safi {
    pub const UNICAST: Safi = Safi(1);
}

/// The two families ferrolb announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ipv4Unicast,
    Ipv6Unicast,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    pub fn afi_safi(self) -> (Afi, Safi) {
        match self {
            Family::Ipv4Unicast => (Afi::IPV4, Safi::UNICAST),
            Family::Ipv6Unicast => (Afi::IPV6, Safi::UNICAST),
        }
    }

    pub fn from_afi_safi(afi: Afi, safi: Safi) -> Option<Family> {
        match (afi, safi) {
            (Afi::IPV4, Safi::UNICAST) => Some(Family::Ipv4Unicast),
            (Afi::IPV6, Safi::UNICAST) => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }

    pub fn of(prefix: &ipnetwork::IpNetwork) -> Family {
        if prefix.is_ipv4() {
            Family::Ipv4Unicast
        } else {
            Family::Ipv6Unicast
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Ipv4Unicast => "ipv4-unicast",
            Family::Ipv6Unicast => "ipv6-unicast",
        })
    }
}

/// Message type codes (RFC 4271 §4.1, RFC 2918).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    Open = 1,
    Update = 2,
    Notification = 3,
    Keepalive = 4,
    RouteRefresh = 5,
}

impl MessageType {
    pub const ALL: [MessageType; 5] = [
        MessageType::Open,
        MessageType::Update,
        MessageType::Notification,
        MessageType::Keepalive,
        MessageType::RouteRefresh,
    ];

    pub fn from_u8(t: u8) -> Option<MessageType> {
        Some(match t {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            MessageType::Open => "open",
            MessageType::Update => "update",
            MessageType::Notification => "notification",
            MessageType::Keepalive => "keepalive",
            MessageType::RouteRefresh => "route_refresh",
        }
    }

    /// The shortest valid message of this type, header included (RFC 4271 §4, RFC 2918 §3).
    fn min_len(self) -> usize {
        match self {
            MessageType::Open => 29,
            MessageType::Update => 23,
            MessageType::Notification => 21,
            MessageType::Keepalive => 19,
            MessageType::RouteRefresh => 23,
        }
    }
}

/// ROUTE-REFRESH (RFC 2918 §3; the reserved octet is the RFC 7313 subtype, 0 = plain request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRefresh {
    pub afi: Afi,
    pub subtype: u8,
    pub safi: Safi,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

impl Message {
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Encodes the whole message, header included.
    pub fn encode(&self, cx: &DecodeContext) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        out.put_slice(&MARKER);
        out.put_u16(0);
        out.put_u8(self.message_type() as u8);
        match self {
            Message::Open(o) => o.encode_body(&mut out),
            Message::Update(u) => u.encode_body(cx, &mut out),
            Message::Notification(n) => n.encode_body(&mut out),
            Message::Keepalive => {}
            Message::RouteRefresh(r) => {
                out.put_u16(r.afi.0);
                out.put_u8(r.subtype);
                out.put_u8(r.safi.0);
            }
        }
        let len = out.len() as u16;
        out[16..18].copy_from_slice(&len.to_be_bytes());
        out.freeze()
    }

    /// Decodes one whole message (as split off by [`frame`]). The error is the NOTIFICATION to send.
    pub fn decode(msg: &[u8], cx: &DecodeContext) -> Result<Message, Notification> {
        let (mtype, len) = check_header(msg)?;
        if msg.len() != len {
            return Err(bad_length(msg.len() as u16));
        }
        let body = &msg[HEADER_LEN..];
        Ok(match mtype {
            MessageType::Open => Message::Open(Open::decode_body(body)?),
            MessageType::Update => Message::Update(Update::decode_body(body, cx)?),
            MessageType::Notification => Message::Notification(Notification::decode_body(body)),
            MessageType::Keepalive => Message::Keepalive,
            MessageType::RouteRefresh => Message::RouteRefresh(RouteRefresh {
                afi: Afi(u16::from_be_bytes([body[0], body[1]])),
                subtype: body[2],
                safi: Safi(body[3]),
            }),
        })
    }
}

fn bad_length(len: u16) -> Notification {
    // Data: the erroneous Length field (RFC 4271 §6.1).
    Notification::with_data(
        code::MESSAGE_HEADER,
        header_sub::BAD_MESSAGE_LENGTH,
        Bytes::copy_from_slice(&len.to_be_bytes()),
    )
}

/// Checks a message header (RFC 4271 §6.1) given at least its 19 octets; returns the type and the
/// message's total length.
pub fn check_header(buf: &[u8]) -> Result<(MessageType, usize), Notification> {
    if buf.len() < HEADER_LEN {
        return Err(bad_length(buf.len() as u16));
    }
    if buf[..16] != MARKER {
        return Err(Notification::new(
            code::MESSAGE_HEADER,
            header_sub::CONNECTION_NOT_SYNCHRONIZED,
        ));
    }
    let len = u16::from_be_bytes([buf[16], buf[17]]);
    let Some(mtype) = MessageType::from_u8(buf[18]) else {
        return Err(Notification::with_data(
            code::MESSAGE_HEADER,
            header_sub::BAD_MESSAGE_TYPE,
            Bytes::copy_from_slice(&buf[18..19]),
        ));
    };
    let len_usize = len as usize;
    if mtype == MessageType::RouteRefresh && len_usize != mtype.min_len() {
        // RFC 7313 §5: a ROUTE-REFRESH of the wrong length has its own error.
        return Err(Notification::with_data(
            code::ROUTE_REFRESH,
            notification::route_refresh::INVALID_MESSAGE_LENGTH,
            Bytes::copy_from_slice(&buf[..HEADER_LEN]),
        ));
    }
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len_usize) || len_usize < mtype.min_len() {
        return Err(bad_length(len));
    }
    if mtype == MessageType::Keepalive && len_usize != HEADER_LEN {
        return Err(bad_length(len));
    }
    Ok((mtype, len_usize))
}

/// Splits one whole message off the front of a receive buffer: `Ok(None)` until enough bytes arrived;
/// a header error is final (the stream cannot be resynchronised).
pub fn frame(buf: &mut BytesMut) -> Result<Option<Bytes>, Notification> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let (_, len) = check_header(&buf[..HEADER_LEN])?;
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(buf.split_to(len).freeze()))
}

pub fn keepalive() -> Bytes {
    Message::Keepalive.encode(&DecodeContext::default())
}
