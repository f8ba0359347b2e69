//! Session ids: `(node, shard, slot, generation)` packed in 64 bits and written as 11
//! URL-safe base64 characters.
//!
//! Finding a session is decode + slab index + generation check: no hashing and no global
//! table. A stale id (its slot since reused) carries an older generation and is detected,
//! never misrouted.

use base64::Engine as _;

/// Bits of the node field.
pub const NODE_BITS: u32 = 10;
/// Bits of the shard field.
pub const SHARD_BITS: u32 = 8;
/// Bits of the slot field.
pub const SLOT_BITS: u32 = 24;
/// Bits of the generation field.
pub const GENERATION_BITS: u32 = 22;

const _: () = assert!(NODE_BITS + SHARD_BITS + SLOT_BITS + GENERATION_BITS == 64);

/// Most slots a shard can address.
pub const SLOTS_MAX: u32 = 1 << SLOT_BITS;
/// Most shards a node can have.
pub const SHARDS_MAX: u32 = 1 << SHARD_BITS;
/// Most nodes a cluster can have.
pub const NODES_MAX: u32 = 1 << NODE_BITS;
/// Generations wrap at this value.
pub const GENERATION_MOD: u32 = 1 << GENERATION_BITS;

/// Length of the text form.
pub const ID_TEXT_LEN: usize = 11;

/// A server-assigned session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    /// Packs the fields; each must fit its bit width.
    #[must_use]
    pub fn new(node: u16, shard: u8, slot: u32, generation: u32) -> Self {
        debug_assert!(u32::from(node) < NODES_MAX);
        debug_assert!(slot < SLOTS_MAX);
        debug_assert!(generation < GENERATION_MOD);
        let v = (u64::from(node) << (SHARD_BITS + SLOT_BITS + GENERATION_BITS))
            | (u64::from(shard) << (SLOT_BITS + GENERATION_BITS))
            | (u64::from(slot) << GENERATION_BITS)
            | u64::from(generation);
        SessionId(v)
    }

    /// The raw 64-bit value.
    #[must_use]
    pub fn to_u64(self) -> u64 {
        self.0
    }

    /// Rebuilds an id from its raw value.
    #[must_use]
    pub fn from_u64(v: u64) -> Self {
        SessionId(v)
    }

    /// The node that owns the session.
    #[must_use]
    pub fn node(self) -> u16 {
        (self.0 >> (SHARD_BITS + SLOT_BITS + GENERATION_BITS)) as u16
    }

    /// The shard that owns the session.
    #[must_use]
    pub fn shard(self) -> u8 {
        (self.0 >> (SLOT_BITS + GENERATION_BITS)) as u8
    }

    /// The slot in the owning shard's table.
    #[must_use]
    pub fn slot(self) -> u32 {
        ((self.0 >> GENERATION_BITS) & u64::from(SLOTS_MAX - 1)) as u32
    }

    /// The slot's generation when the session was created.
    #[must_use]
    pub fn generation(self) -> u32 {
        (self.0 & u64::from(GENERATION_MOD - 1)) as u32
    }

    /// The 11-character text form.
    #[must_use]
    pub fn encode(self) -> [u8; ID_TEXT_LEN] {
        let mut out = [0u8; ID_TEXT_LEN];
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(self.0.to_be_bytes(), &mut out)
            .expect("11 characters hold 8 bytes of base64");
        debug_assert_eq!(n, ID_TEXT_LEN);
        out
    }

    /// Parses the text form; anything else (wrong length, alphabet, non-canonical trailing
    /// bits) is `None`.
    #[must_use]
    pub fn parse(text: &[u8]) -> Option<Self> {
        if text.len() != ID_TEXT_LEN {
            return None;
        }
        let mut out = [0u8; 9];
        match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_slice(text, &mut out) {
            Ok(8) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&out[..8]);
                Some(SessionId(u64::from_be_bytes(b)))
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.encode();
        // The alphabet is ASCII, so this never fails.
        f.write_str(std::str::from_utf8(&text).unwrap_or("?"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_through_text() {
        let cases = [
            (0u16, 0u8, 0u32, 0u32),
            (1023, 255, SLOTS_MAX - 1, GENERATION_MOD - 1),
            (7, 3, 123_456, 99),
        ];
        for (node, shard, slot, generation) in cases {
            let id = SessionId::new(node, shard, slot, generation);
            assert_eq!(
                (id.node(), id.shard(), id.slot(), id.generation()),
                (node, shard, slot, generation)
            );
            let text = id.encode();
            assert_eq!(SessionId::parse(&text), Some(id));
            assert_eq!(id.to_string().as_bytes(), &text);
        }
    }

    #[test]
    fn malformed_text_is_rejected() {
        assert_eq!(SessionId::parse(b""), None);
        assert_eq!(SessionId::parse(b"AAAAAAAAAAAA"), None);
        assert_eq!(SessionId::parse(b"AAAAAAAAA+A"), None);
        // The last character carries 4 bits; non-zero padding bits are not canonical.
        assert_eq!(SessionId::parse(b"AAAAAAAAAAB"), None);
    }
}
