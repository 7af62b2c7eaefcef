//! The authenticated envelope around every membership datagram (pure; no sockets).
//!
//! ```text
//! magic "FLM1" (4) | sender session (8) | sequence (8) | sender clock, ms since the epoch (8) | SWIM payload | HMAC-SHA256 (32)
//! ```
//!
//! The tag covers everything before it, under the shared secret. A receiver accepts a datagram only if
//! the tag verifies (constant-time), its clock is within `max_skew` of the receiver's, and its
//! (session, sequence) pair has not been seen: each sender session keeps a 128-entry sliding window, as
//! IPsec does, so reordering is tolerated and a replay is not. The clock bound stops the replay of a
//! capture from an earlier session once the window of sessions has forgotten it. The payload is not
//! encrypted: it carries node names, addresses and liveness, nothing secret; what matters is that
//! nobody without the secret can make a speaker look alive or dead.

use std::collections::HashMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const MAGIC: [u8; 4] = *b"FLM1";
pub const HEADER_LEN: usize = 4 + 8 + 8 + 8;
pub const TAG_LEN: usize = 32;
/// What the envelope adds to a payload.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Shorter than an empty envelope.
    Truncated,
    /// Not our magic (another protocol, or another version).
    BadMagic,
    /// The tag does not verify: tampered, or another secret.
    BadTag,
    /// Authentic, but its clock is too far from ours.
    Stale,
    /// Authentic, but this (session, sequence) was already received or is too old for the window.
    Replayed,
}

/// Seals outgoing payloads.
#[derive(Clone)]
pub struct Sealer {
    mac: HmacSha256,
    session: u64,
    seq: u64,
}

impl Sealer {
    /// `session` must differ between runs (random).
    pub fn new(secret: &[u8], session: u64) -> Sealer {
        Sealer {
            mac: HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length"),
            session,
            seq: 0,
        }
    }

    /// The datagram carrying `payload`, stamped with `now_ms`.
    pub fn seal(&mut self, payload: &[u8], now_ms: u64) -> Vec<u8> {
        self.seq += 1;
        let mut out = Vec::with_capacity(payload.len() + OVERHEAD);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.session.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&now_ms.to_be_bytes());
        out.extend_from_slice(payload);
        let mut mac = self.mac.clone();
        mac.update(&out);
        out.extend_from_slice(&mac.finalize().into_bytes());
        out
    }
}

/// One sender session's replay window.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// The highest sequence accepted.
    top: u64,
    /// Bit `i`: sequence `top - i` was accepted.
    seen: u128,
    /// When this session was last heard from (for eviction; a logical clock).
    used: u64,
}

const WINDOW: u64 = 128;

/// Opens incoming datagrams.
pub struct Opener {
    mac: HmacSha256,
    max_skew: Duration,
    sessions: HashMap<u64, Window>,
    max_sessions: usize,
    clock: u64,
}

impl Opener {
    pub fn new(secret: &[u8], max_skew: Duration) -> Opener {
        Opener {
            mac: HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length"),
            max_skew,
            sessions: HashMap::new(),
            max_sessions: 1024,
            clock: 0,
        }
    }

    /// The payload of `datagram`, if it is authentic, fresh and new.
    pub fn open<'a>(&mut self, datagram: &'a [u8], now_ms: u64) -> Result<&'a [u8], Reject> {
        if datagram.len() < OVERHEAD {
            return Err(Reject::Truncated);
        }
        if datagram[..4] != MAGIC {
            return Err(Reject::BadMagic);
        }
        let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
        let mut mac = self.mac.clone();
        mac.update(signed);
        mac.verify_slice(tag).map_err(|_| Reject::BadTag)?;
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&signed[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let (session, seq, sent_ms) = (word(4), word(12), word(20));
        let skew = u128::from(now_ms.abs_diff(sent_ms));
        if skew > self.max_skew.as_millis() {
            return Err(Reject::Stale);
        }
        self.accept_sequence(session, seq)?;
        Ok(&signed[HEADER_LEN..])
    }

    fn accept_sequence(&mut self, session: u64, seq: u64) -> Result<(), Reject> {
        self.clock += 1;
        let clock = self.clock;
        if !self.sessions.contains_key(&session) && self.sessions.len() >= self.max_sessions {
            // Forget the session heard from least recently (a restarted or departed speaker).
            if let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, w)| w.used)
                .map(|(s, _)| *s)
            {
                self.sessions.remove(&oldest);
            }
        }
        let w = self.sessions.entry(session).or_insert(Window {
            top: 0,
            seen: 0,
            used: clock,
        });
        if seq > w.top {
            let shift = seq - w.top;
            w.seen = if shift >= WINDOW { 0 } else { w.seen << shift };
            w.seen |= 1;
            w.top = seq;
        } else {
            let age = w.top - seq;
            if age >= WINDOW || w.seen & (1u128 << age) != 0 {
                return Err(Reject::Replayed);
            }
            w.seen |= 1u128 << age;
        }
        w.used = clock;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;
    const SKEW: Duration = Duration::from_secs(30);

    fn pair() -> (Sealer, Opener) {
        (
            Sealer::new(b"correct horse battery staple", 7),
            Opener::new(b"correct horse battery staple", SKEW),
        )
    }

    #[test]
    fn round_trip_and_empty_payload() {
        let (mut s, mut o) = pair();
        let d = s.seal(b"hello", NOW);
        assert_eq!(d.len(), 5 + OVERHEAD);
        assert_eq!(o.open(&d, NOW), Ok(&b"hello"[..]));
        let d = s.seal(b"", NOW + 10);
        assert_eq!(o.open(&d, NOW), Ok(&b""[..]));
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let (mut s, _) = pair();
        let d = s.seal(b"some swim payload", NOW);
        for i in 0..d.len() {
            for bit in 0..8 {
                let mut t = d.clone();
                t[i] ^= 1 << bit;
                let mut o = pair().1;
                let r = o.open(&t, NOW);
                let expected = if i < 4 {
                    Reject::BadMagic
                } else {
                    Reject::BadTag
                };
                assert_eq!(r, Err(expected), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn truncated_and_garbage_datagrams_are_rejected() {
        let (mut s, mut o) = pair();
        let d = s.seal(b"payload", NOW);
        for len in 0..d.len() {
            let r = o.open(&d[..len], NOW);
            assert!(r.is_err(), "prefix of {len} bytes accepted");
            if len < OVERHEAD {
                assert_eq!(r, Err(Reject::Truncated));
            }
        }
        // Garbage of every length, with and without our magic: never accepted, never a panic.
        let mut rnd = crate::test_support::Junk::new();
        for len in 0..300 {
            let mut g = rnd.bytes(len);
            assert!(o.open(&g, NOW).is_err());
            if g.len() >= 4 {
                g[..4].copy_from_slice(&MAGIC);
                assert!(o.open(&g, NOW).is_err());
            }
        }
    }

    #[test]
    fn another_secret_is_rejected() {
        let mut s = Sealer::new(b"the other cluster's secret", 1);
        let mut o = pair().1;
        assert_eq!(o.open(&s.seal(b"x", NOW), NOW), Err(Reject::BadTag));
        // A prefix of the right secret is another secret too.
        let mut s = Sealer::new(b"correct horse", 1);
        assert_eq!(o.open(&s.seal(b"x", NOW), NOW), Err(Reject::BadTag));
    }

    #[test]
    fn replays_are_rejected_reordering_is_not() {
        let (mut s, mut o) = pair();
        let d: Vec<Vec<u8>> = (0..5).map(|i| s.seal(&[i], NOW)).collect();
        assert!(o.open(&d[0], NOW).is_ok());
        assert_eq!(o.open(&d[0], NOW), Err(Reject::Replayed));
        // Out of order within the window is fine, once.
        assert!(o.open(&d[3], NOW).is_ok());
        assert!(o.open(&d[1], NOW).is_ok());
        assert!(o.open(&d[2], NOW).is_ok());
        assert!(o.open(&d[4], NOW).is_ok());
        for x in &d {
            assert_eq!(o.open(x, NOW), Err(Reject::Replayed));
        }
        // Far behind the window: refused.
        let old = s.seal(b"old", NOW);
        for _ in 0..200 {
            let fresh = s.seal(b"new", NOW);
            assert!(o.open(&fresh, NOW).is_ok());
        }
        assert_eq!(o.open(&old, NOW), Err(Reject::Replayed));
        // Another session (a restarted sender) has its own window.
        let mut restarted = Sealer::new(b"correct horse battery staple", 8);
        assert!(o.open(&restarted.seal(b"x", NOW), NOW).is_ok());
    }

    #[test]
    fn clocks_too_far_apart_are_rejected() {
        let (mut s, mut o) = pair();
        let late = s.seal(b"x", NOW - 31_000);
        let early = s.seal(b"x", NOW + 31_000);
        let ok = s.seal(b"x", NOW - 29_000);
        assert_eq!(o.open(&late, NOW), Err(Reject::Stale));
        assert_eq!(o.open(&early, NOW), Err(Reject::Stale));
        assert!(o.open(&ok, NOW).is_ok());
    }

    #[test]
    fn session_table_is_bounded() {
        let mut o = pair().1;
        o.max_sessions = 4;
        for session in 0..20 {
            let mut s = Sealer::new(b"correct horse battery staple", session);
            assert!(o.open(&s.seal(b"x", NOW), NOW).is_ok());
        }
        assert_eq!(o.sessions.len(), 4);
    }
}
