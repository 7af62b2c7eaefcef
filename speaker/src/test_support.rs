//! Helpers for the crate's unit tests.

/// Deterministic garbage for decoder robustness tests (xorshift32): the same bytes on every run.
pub(crate) struct Junk(u32);

impl Junk {
    pub(crate) fn new() -> Junk {
        Junk(0x1234_5678)
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 17;
                self.0 ^= self.0 << 5;
                self.0 as u8
            })
            .collect()
    }
}
