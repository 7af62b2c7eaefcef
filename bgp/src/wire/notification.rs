//! NOTIFICATION message (RFC 4271 §4.5) and the error codes of RFC 4271 §6, RFC 4486, RFC 6608, RFC 7313,
//! RFC 8538 and RFC 9384, with the shutdown communication of RFC 8203 / RFC 9003.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

/// Error codes (RFC 4271 §4.5 and later registrations).
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN: u8 = 2;
    pub const UPDATE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492, RFC 9234).
pub mod open {
    pub const UNSPECIFIC: u8 = 0;
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    pub const ROLE_MISMATCH: u8 = 11;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update {
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608).
pub mod fsm {
    pub const UNSPECIFIED: u8 = 0;
    pub const UNEXPECTED_IN_OPENSENT: u8 = 1;
    pub const UNEXPECTED_IN_OPENCONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486, RFC 8538, RFC 9384).
pub mod cease {
    pub const MAX_PREFIXES_REACHED: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
    pub const BFD_DOWN: u8 = 10;
}

/// ROUTE-REFRESH Message Error subcodes (RFC 7313).
pub mod route_refresh {
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// Longest shutdown communication (RFC 9003 raised RFC 8203's 128 to 255 octets).
pub const MAX_SHUTDOWN_COMMUNICATION: usize = 255;

/// A NOTIFICATION: what we send on an error or deliberate close, or what the peer told us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Bytes,
}

impl Notification {
    pub fn new(code: u8, subcode: u8) -> Self {
        Notification {
            code,
            subcode,
            data: Bytes::new(),
        }
    }

    pub fn with_data(code: u8, subcode: u8, data: impl Into<Bytes>) -> Self {
        Notification {
            code,
            subcode,
            data: data.into(),
        }
    }

    /// Cease with an optional shutdown communication (RFC 8203/9003). Only Administrative Shutdown and
    /// Administrative Reset carry one; the text is truncated on a UTF-8 boundary to 255 octets.
    pub fn cease(subcode: u8, text: Option<&str>) -> Self {
        let carries_text =
            subcode == cease::ADMINISTRATIVE_SHUTDOWN || subcode == cease::ADMINISTRATIVE_RESET;
        match text {
            Some(text) if carries_text => {
                let mut end = text.len().min(MAX_SHUTDOWN_COMMUNICATION);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                let mut data = BytesMut::with_capacity(end + 1);
                data.put_u8(end as u8);
                data.put_slice(&text.as_bytes()[..end]);
                Notification::with_data(code::CEASE, subcode, data.freeze())
            }
            _ => Notification::new(code::CEASE, subcode),
        }
    }

    /// The shutdown communication of a Cease/Administrative Shutdown or Reset, if any and if valid UTF-8.
    pub fn shutdown_communication(&self) -> Option<String> {
        if self.code != code::CEASE
            || !(self.subcode == cease::ADMINISTRATIVE_SHUTDOWN
                || self.subcode == cease::ADMINISTRATIVE_RESET)
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..len as usize)?;
        std::str::from_utf8(text).ok().map(str::to_owned)
    }

    pub fn encode_body(&self, out: &mut BytesMut) {
        out.put_u8(self.code);
        out.put_u8(self.subcode);
        out.put_slice(&self.data);
    }

    pub fn decode_body(body: &[u8]) -> Self {
        // The header check guarantees at least the two code octets.
        Notification::with_data(body[0], body[1], Bytes::copy_from_slice(&body[2..]))
    }

    /// Human-readable name of the code and subcode, e.g. "Cease/Administrative Shutdown".
    pub fn name(&self) -> String {
        let code_name = match self.code {
            code::MESSAGE_HEADER => "Message Header Error",
            code::OPEN => "OPEN Message Error",
            code::UPDATE => "UPDATE Message Error",
            code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            code::FSM => "Finite State Machine Error",
            code::CEASE => "Cease",
            code::ROUTE_REFRESH => "ROUTE-REFRESH Message Error",
            _ => "Unknown Error",
        };
        let sub = match (self.code, self.subcode) {
            (code::MESSAGE_HEADER, 1) => "Connection Not Synchronized",
            (code::MESSAGE_HEADER, 2) => "Bad Message Length",
            (code::MESSAGE_HEADER, 3) => "Bad Message Type",
            (code::OPEN, 0) => "Unspecific",
            (code::OPEN, 1) => "Unsupported Version Number",
            (code::OPEN, 2) => "Bad Peer AS",
            (code::OPEN, 3) => "Bad BGP Identifier",
            (code::OPEN, 4) => "Unsupported Optional Parameter",
            (code::OPEN, 6) => "Unacceptable Hold Time",
            (code::OPEN, 7) => "Unsupported Capability",
            (code::OPEN, 11) => "Role Mismatch",
            (code::UPDATE, 1) => "Malformed Attribute List",
            (code::UPDATE, 2) => "Unrecognized Well-known Attribute",
            (code::UPDATE, 3) => "Missing Well-known Attribute",
            (code::UPDATE, 4) => "Attribute Flags Error",
            (code::UPDATE, 5) => "Attribute Length Error",
            (code::UPDATE, 6) => "Invalid ORIGIN Attribute",
            (code::UPDATE, 8) => "Invalid NEXT_HOP Attribute",
            (code::UPDATE, 9) => "Optional Attribute Error",
            (code::UPDATE, 10) => "Invalid Network Field",
            (code::UPDATE, 11) => "Malformed AS_PATH",
            (code::FSM, 0) => "Unspecified Error",
            (code::FSM, 1) => "Unexpected Message in OpenSent",
            (code::FSM, 2) => "Unexpected Message in OpenConfirm",
            (code::FSM, 3) => "Unexpected Message in Established",
            (code::CEASE, 1) => "Maximum Number of Prefixes Reached",
            (code::CEASE, 2) => "Administrative Shutdown",
            (code::CEASE, 3) => "Peer De-configured",
            (code::CEASE, 4) => "Administrative Reset",
            (code::CEASE, 5) => "Connection Rejected",
            (code::CEASE, 6) => "Other Configuration Change",
            (code::CEASE, 7) => "Connection Collision Resolution",
            (code::CEASE, 8) => "Out of Resources",
            (code::CEASE, 9) => "Hard Reset",
            (code::CEASE, 10) => "BFD Down",
            (code::ROUTE_REFRESH, 1) => "Invalid Message Length",
            (code::HOLD_TIMER_EXPIRED, _) => return code_name.to_owned(),
            _ => return format!("{code_name}/subcode {}", self.subcode),
        };
        format!("{code_name}/{sub}")
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}/{})", self.name(), self.code, self.subcode)?;
        if let Some(text) = self.shutdown_communication() {
            write!(f, ": \"{text}\"")?;
        }
        Ok(())
    }
}
