//! Checking and parsing STUN messages over borrowed bytes (RFC 8489 §5, §14).
//!
//! [`check`] is the cheap "is this STUN, and how long is it" test;
//! [`StunMessage::parse`] validates every attribute once and then hands out
//! borrowed views. Nothing here allocates.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use super::attr::{AttrType, Attribute, ChangeRequest, ErrorCode, FINGERPRINT_XOR};
use super::error::StunError;
use super::{ATTRIBUTES_MAX, HEADER_BYTES, MAGIC_COOKIE, UNKNOWN_ATTRIBUTES_MAX};
use std::net::SocketAddr;

/// The 96-bit transaction id of a STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TransactionId(pub [u8; 12]);

/// A STUN method (12 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Method(pub u16);

impl Method {
    /// The Binding method, the only one RFC 8489 defines.
    pub const BINDING: Method = Method(0x001);
    /// The largest method number the 12 bits can carry.
    pub const MAX: u16 = 0x0fff;
}

/// The class of a STUN message (2 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A request, which expects a response.
    Request,
    /// An indication, which expects none.
    Indication,
    /// A success response.
    SuccessResponse,
    /// An error response.
    ErrorResponse,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::SuccessResponse => 0b10,
            Class::ErrorResponse => 0b11,
        }
    }

    fn from_bits(bits: u16) -> Class {
        match bits & 0b11 {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::SuccessResponse,
            _ => Class::ErrorResponse,
        }
    }
}

/// The 14-bit message type: method and class bits interleaved as RFC 8489
/// §5 draws them (M11..M7, C1, M6..M4, C0, M3..M0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType {
    /// The method.
    pub method: Method,
    /// The class.
    pub class: Class,
}

impl MessageType {
    /// A Binding request.
    pub const BINDING_REQUEST: MessageType = MessageType {
        method: Method::BINDING,
        class: Class::Request,
    };
    /// A Binding success response.
    pub const BINDING_SUCCESS: MessageType = MessageType {
        method: Method::BINDING,
        class: Class::SuccessResponse,
    };

    /// The 16-bit field as sent (top two bits zero). Method bits above the
    /// twelfth are dropped; [`Method::MAX`] is the largest method.
    #[must_use]
    pub fn to_u16(self) -> u16 {
        let m = self.method.0 & Method::MAX;
        let c = self.class.bits();
        (m & 0x000f) | ((m & 0x0070) << 1) | ((m & 0x0f80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
    }

    /// Splits the 16-bit field; the top two bits are ignored (see [`check`]).
    #[must_use]
    pub fn from_u16(bits: u16) -> MessageType {
        let method = (bits & 0x000f) | ((bits >> 1) & 0x0070) | ((bits >> 2) & 0x0f80);
        let class = ((bits >> 4) & 1) | ((bits >> 7) & 2);
        MessageType {
            method: Method(method),
            class: Class::from_bits(class),
        }
    }
}

/// Reads a big-endian u16 at `at`; the caller has checked the bounds.
pub(crate) fn read_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// The fast "is this STUN at all" test (RFC 8489 §6.3 and §7.3): top two
/// bits zero, magic cookie, length a multiple of 4, and the whole message
/// present. Returns the message length, header included.
///
/// It looks at as few bytes as it needs, so a stream reader learns that
/// bytes are not STUN from the first byte, and that more are needed from
/// [`StunError::Incomplete`]. The buffer may hold more than one message.
///
/// # Errors
///
/// [`StunError::Incomplete`] when more bytes could complete the message;
/// [`StunError::NotStun`], [`StunError::BadMagicCookie`] or
/// [`StunError::LengthNotMultipleOfFour`] when no bytes could.
pub fn check(buf: &[u8]) -> Result<usize, StunError> {
    if let Some(&first_byte) = buf.first() {
        if first_byte & 0xc0 != 0 {
            return Err(StunError::NotStun { first_byte });
        }
    }
    if buf.len() >= 4 {
        let length_bytes = read_u16(buf, 2);
        if !length_bytes.is_multiple_of(4) {
            return Err(StunError::LengthNotMultipleOfFour { length_bytes });
        }
    }
    if buf.len() >= 8 {
        let found = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if found != MAGIC_COOKIE {
            return Err(StunError::BadMagicCookie { found });
        }
    }
    if buf.len() < HEADER_BYTES {
        return Err(StunError::Incomplete {
            needed_bytes: HEADER_BYTES,
            available_bytes: buf.len(),
        });
    }
    let message_bytes = HEADER_BYTES + usize::from(read_u16(buf, 2));
    if buf.len() < message_bytes {
        return Err(StunError::Incomplete {
            needed_bytes: message_bytes,
            available_bytes: buf.len(),
        });
    }
    Ok(message_bytes)
}

/// A parsed STUN message borrowing the packet.
///
/// Parsing checked every attribute's framing and decoded every known one, so
/// the getters cannot fail. Attributes after MESSAGE-INTEGRITY other than
/// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, and after
/// MESSAGE-INTEGRITY-SHA256 other than FINGERPRINT, are ignored as RFC 8489
/// §14.5 and §14.6 require: they are neither decoded nor returned.
#[derive(Debug, Clone, Copy)]
pub struct StunMessage<'a> {
    bytes: &'a [u8],
    message_type: MessageType,
    transaction_id: TransactionId,
    integrity_offset: Option<usize>,
    integrity_sha256_offset: Option<usize>,
    fingerprint_offset: Option<usize>,
    unknown: [AttrType; UNKNOWN_ATTRIBUTES_MAX],
    unknown_len: usize,
}

/// One attribute as framed in the message, before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    /// The attribute type.
    pub attr_type: AttrType,
    /// The value without its padding.
    pub value: &'a [u8],
    /// Offset of the attribute's header in the message.
    pub offset: usize,
}

impl<'a> StunMessage<'a> {
    /// Parses exactly one message: `bytes` must hold the message and nothing
    /// more (a UDP datagram, or a frame cut by [`super::tcp::frame_len`]).
    ///
    /// Unknown comprehension-required attributes are not an error here; they
    /// are listed by [`StunMessage::unknown_comprehension_required`] so that
    /// a server can answer 420. Unknown comprehension-optional attributes are
    /// kept as [`Attribute::Other`].
    ///
    /// # Errors
    ///
    /// Any error of [`check`], [`StunError::TrailingBytes`], and the framing
    /// and value errors of the attributes, each with its type and offset.
    pub fn parse(bytes: &'a [u8]) -> Result<StunMessage<'a>, StunError> {
        let message_bytes = check(bytes)?;
        if bytes.len() != message_bytes {
            return Err(StunError::TrailingBytes {
                message_bytes,
                trailing_bytes: bytes.len() - message_bytes,
            });
        }
        let mut transaction_id = TransactionId::default();
        transaction_id.0.copy_from_slice(&bytes[8..HEADER_BYTES]);
        let mut message = StunMessage {
            bytes,
            message_type: MessageType::from_u16(read_u16(bytes, 0)),
            transaction_id,
            integrity_offset: None,
            integrity_sha256_offset: None,
            fingerprint_offset: None,
            unknown: [AttrType(0); UNKNOWN_ATTRIBUTES_MAX],
            unknown_len: 0,
        };
        let mut walker = Walker::new(bytes);
        let mut count = 0usize;
        while let Some(step) = walker.next_raw() {
            let raw = step?;
            if count == ATTRIBUTES_MAX {
                return Err(StunError::TooManyAttributes {
                    limit: ATTRIBUTES_MAX,
                    offset: raw.offset,
                });
            }
            count += 1;
            if message.fingerprint_offset.is_some() {
                return Err(StunError::AttributeAfterFingerprint { offset: raw.offset });
            }
            if message.is_ignored(raw.attr_type) {
                continue;
            }
            match raw.attr_type {
                AttrType::MESSAGE_INTEGRITY => message.integrity_offset = Some(raw.offset),
                AttrType::MESSAGE_INTEGRITY_SHA256 => {
                    message.integrity_sha256_offset = Some(raw.offset);
                }
                AttrType::FINGERPRINT => message.fingerprint_offset = Some(raw.offset),
                _ => {}
            }
            if raw.attr_type.is_known() {
                Attribute::decode(
                    raw.attr_type,
                    raw.value,
                    &message.transaction_id,
                    raw.offset,
                )?;
            } else if raw.attr_type.is_comprehension_required() {
                message.note_unknown(raw.attr_type);
            }
        }
        Ok(message)
    }

    /// RFC 8489 §14.5 and §14.6: once an integrity attribute has been seen,
    /// only a stronger integrity attribute or FINGERPRINT still counts.
    fn is_ignored(&self, attr_type: AttrType) -> bool {
        if self.integrity_sha256_offset.is_some() {
            attr_type != AttrType::FINGERPRINT
        } else if self.integrity_offset.is_some() {
            attr_type != AttrType::FINGERPRINT && attr_type != AttrType::MESSAGE_INTEGRITY_SHA256
        } else {
            false
        }
    }

    /// Lists an unknown type once; past [`UNKNOWN_ATTRIBUTES_MAX`] the list
    /// is cut, since a 420 naming the first few is as useful as one naming
    /// all and keeps the answer small.
    fn note_unknown(&mut self, attr_type: AttrType) {
        let listed = &self.unknown[..self.unknown_len];
        if listed.contains(&attr_type) || self.unknown_len == UNKNOWN_ATTRIBUTES_MAX {
            return;
        }
        self.unknown[self.unknown_len] = attr_type;
        self.unknown_len += 1;
    }

    /// The whole message.
    #[must_use]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The message type.
    #[must_use]
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// The method.
    #[must_use]
    pub fn method(&self) -> Method {
        self.message_type.method
    }

    /// The class.
    #[must_use]
    pub fn class(&self) -> Class {
        self.message_type.class
    }

    /// The transaction id.
    #[must_use]
    pub fn transaction_id(&self) -> TransactionId {
        self.transaction_id
    }

    /// Unknown comprehension-required attribute types, each listed once, at
    /// most [`UNKNOWN_ATTRIBUTES_MAX`] of them.
    #[must_use]
    pub fn unknown_comprehension_required(&self) -> &[AttrType] {
        &self.unknown[..self.unknown_len]
    }

    /// The attributes that count (see the type's docs), in order, undecoded.
    #[must_use]
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            walker: Walker::new(self.bytes),
            integrity_offset: self.integrity_offset,
            integrity_sha256_offset: self.integrity_sha256_offset,
        }
    }

    /// The first attribute of this type, decoded.
    #[must_use]
    pub fn get(&self, attr_type: AttrType) -> Option<Attribute<'a>> {
        let raw = self.attributes().find(|raw| raw.attr_type == attr_type)?;
        let decoded = Attribute::decode(raw.attr_type, raw.value, &self.transaction_id, raw.offset);
        // Parsing decoded this attribute already, so this cannot fail.
        debug_assert!(decoded.is_ok());
        decoded.ok()
    }

    /// The XOR-MAPPED-ADDRESS, if present.
    #[must_use]
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        match self.get(AttrType::XOR_MAPPED_ADDRESS)? {
            Attribute::XorMappedAddress(address) => Some(address),
            _ => None,
        }
    }

    /// The MAPPED-ADDRESS, if present.
    #[must_use]
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        match self.get(AttrType::MAPPED_ADDRESS)? {
            Attribute::MappedAddress(address) => Some(address),
            _ => None,
        }
    }

    /// The OTHER-ADDRESS (RFC 5780), if present.
    #[must_use]
    pub fn other_address(&self) -> Option<SocketAddr> {
        match self.get(AttrType::OTHER_ADDRESS)? {
            Attribute::OtherAddress(address) => Some(address),
            _ => None,
        }
    }

    /// The RESPONSE-ORIGIN (RFC 5780), if present.
    #[must_use]
    pub fn response_origin(&self) -> Option<SocketAddr> {
        match self.get(AttrType::RESPONSE_ORIGIN)? {
            Attribute::ResponseOrigin(address) => Some(address),
            _ => None,
        }
    }

    /// The CHANGE-REQUEST flags (RFC 5780), if present.
    #[must_use]
    pub fn change_request(&self) -> Option<ChangeRequest> {
        match self.get(AttrType::CHANGE_REQUEST)? {
            Attribute::ChangeRequest(flags) => Some(flags),
            _ => None,
        }
    }

    /// The RESPONSE-PORT (RFC 5780), if present.
    #[must_use]
    pub fn response_port(&self) -> Option<u16> {
        match self.get(AttrType::RESPONSE_PORT)? {
            Attribute::ResponsePort(port) => Some(port),
            _ => None,
        }
    }

    /// The USERNAME, if present.
    #[must_use]
    pub fn username(&self) -> Option<&'a str> {
        match self.get(AttrType::USERNAME)? {
            Attribute::Username(name) => Some(name),
            _ => None,
        }
    }

    /// The ERROR-CODE, if present.
    #[must_use]
    pub fn error_code(&self) -> Option<ErrorCode<'a>> {
        match self.get(AttrType::ERROR_CODE)? {
            Attribute::ErrorCode(code) => Some(code),
            _ => None,
        }
    }

    /// True when the message has a MESSAGE-INTEGRITY that counts.
    #[must_use]
    pub fn has_integrity(&self) -> bool {
        self.integrity_offset.is_some()
    }

    /// True when the message has a MESSAGE-INTEGRITY-SHA256 that counts.
    #[must_use]
    pub fn has_integrity_sha256(&self) -> bool {
        self.integrity_sha256_offset.is_some()
    }

    /// True when the message ends with a FINGERPRINT.
    #[must_use]
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint_offset.is_some()
    }

    /// Verifies MESSAGE-INTEGRITY with `key`: the password for short-term
    /// credentials (RFC 8489 §9.1.1), or the long-term key the caller
    /// derived (§9.2.2; the MD5 it needs is not part of this module).
    ///
    /// The HMAC-SHA1 covers the message up to the attribute, with the header
    /// length set as if the message ended right after it (RFC 8489 §14.5).
    /// The comparison takes the same time whatever the bytes.
    ///
    /// # Errors
    ///
    /// [`StunError::IntegrityMissing`] or [`StunError::IntegrityMismatch`].
    pub fn verify_integrity(&self, key: &[u8]) -> Result<(), StunError> {
        const WHAT: &str = "MESSAGE-INTEGRITY";
        let offset = self
            .integrity_offset
            .ok_or(StunError::IntegrityMissing { what: WHAT })?;
        let value = &self.bytes[offset + 4..offset + 4 + super::attr::INTEGRITY_BYTES];
        let mut mac = new_hmac::<Hmac<Sha1>>(key);
        feed_adjusted(
            &mut mac,
            self.bytes,
            offset,
            4 + super::attr::INTEGRITY_BYTES,
        );
        mac.verify_slice(value)
            .map_err(|_| StunError::IntegrityMismatch { what: WHAT, offset })
    }

    /// Verifies MESSAGE-INTEGRITY-SHA256 with `key`, as
    /// [`StunMessage::verify_integrity`] does for SHA-1; a truncated value
    /// (16 to 32 bytes) is compared with the leftmost bytes of the HMAC.
    ///
    /// # Errors
    ///
    /// [`StunError::IntegrityMissing`] or [`StunError::IntegrityMismatch`].
    pub fn verify_integrity_sha256(&self, key: &[u8]) -> Result<(), StunError> {
        const WHAT: &str = "MESSAGE-INTEGRITY-SHA256";
        let offset = self
            .integrity_sha256_offset
            .ok_or(StunError::IntegrityMissing { what: WHAT })?;
        let value_bytes = usize::from(read_u16(self.bytes, offset + 2));
        let value = &self.bytes[offset + 4..offset + 4 + value_bytes];
        let mut mac = new_hmac::<Hmac<Sha256>>(key);
        feed_adjusted(&mut mac, self.bytes, offset, 4 + value_bytes);
        mac.verify_truncated_left(value)
            .map_err(|_| StunError::IntegrityMismatch { what: WHAT, offset })
    }

    /// Verifies the FINGERPRINT: CRC-32 of the message up to it, XOR
    /// 0x5354554e (RFC 8489 §14.7).
    ///
    /// # Errors
    ///
    /// [`StunError::FingerprintMissing`] or [`StunError::FingerprintMismatch`].
    pub fn verify_fingerprint(&self) -> Result<(), StunError> {
        let offset = self
            .fingerprint_offset
            .ok_or(StunError::FingerprintMissing)?;
        let found = u32::from_be_bytes([
            self.bytes[offset + 4],
            self.bytes[offset + 5],
            self.bytes[offset + 6],
            self.bytes[offset + 7],
        ]);
        let expected = fingerprint(self.bytes, offset);
        if found == expected {
            Ok(())
        } else {
            Err(StunError::FingerprintMismatch {
                offset,
                expected,
                found,
            })
        }
    }
}

/// Builds an HMAC; HMAC takes keys of any length, so this cannot fail.
pub(crate) fn new_hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8]) -> M {
    match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// Feeds `message[..offset]` to `mac` with the header length rewritten so
/// the message seems to end after an attribute of `attribute_bytes` at
/// `offset`; that is the input of both integrity attributes.
pub(crate) fn feed_adjusted<M: Mac>(
    mac: &mut M,
    message: &[u8],
    offset: usize,
    attribute_bytes: usize,
) {
    let length = adjusted_length(offset, attribute_bytes);
    mac.update(&message[..2]);
    mac.update(&length.to_be_bytes());
    mac.update(&message[4..offset]);
}

/// The header length of a message that ends after an attribute of
/// `attribute_bytes` at `offset`. Offsets come from messages no longer than
/// a u16 length allows, so the value fits.
fn adjusted_length(offset: usize, attribute_bytes: usize) -> u16 {
    let length = offset + attribute_bytes - HEADER_BYTES;
    debug_assert!(length <= usize::from(u16::MAX));
    u16::try_from(length).unwrap_or(u16::MAX)
}

/// FINGERPRINT value for a message whose FINGERPRINT attribute starts at
/// `offset`.
pub(crate) fn fingerprint(message: &[u8], offset: usize) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&message[..2]);
    crc.update(&adjusted_length(offset, 8).to_be_bytes());
    crc.update(&message[4..offset]);
    crc.finalize() ^ FINGERPRINT_XOR
}

/// Walks the TLV framing of a message that passed [`check`] (or, for
/// RFC 3489, [`super::classic::ClassicMessage::parse`]'s header checks).
#[derive(Debug, Clone)]
pub(crate) struct Walker<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Walker {
            bytes,
            offset: HEADER_BYTES,
        }
    }

    /// The next attribute, or the framing error that stops the walk.
    pub(crate) fn next_raw(&mut self) -> Option<Result<RawAttribute<'a>, StunError>> {
        let offset = self.offset;
        let left = self.bytes.len().checked_sub(offset)?;
        if left == 0 {
            return None;
        }
        // Any error ends the walk: the framing after it cannot be trusted.
        self.offset = self.bytes.len();
        if left < 4 {
            return Some(Err(StunError::AttributeHeaderTruncated { offset }));
        }
        let attr_type = AttrType(read_u16(self.bytes, offset));
        let value_bytes = usize::from(read_u16(self.bytes, offset + 2));
        let padded_bytes = (value_bytes + 3) & !3;
        let available_bytes = left - 4;
        if padded_bytes > available_bytes {
            return Some(Err(StunError::AttributeTruncated {
                attr_type: attr_type.0,
                offset,
                value_bytes: padded_bytes,
                available_bytes,
            }));
        }
        self.offset = offset + 4 + padded_bytes;
        Some(Ok(RawAttribute {
            attr_type,
            value: &self.bytes[offset + 4..offset + 4 + value_bytes],
            offset,
        }))
    }
}

/// Iterator over the attributes of a parsed [`StunMessage`] that count.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    walker: Walker<'a>,
    integrity_offset: Option<usize>,
    integrity_sha256_offset: Option<usize>,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<RawAttribute<'a>> {
        loop {
            // Parsing walked the same bytes without error, so none occurs.
            let raw = self.walker.next_raw()?.ok()?;
            let after_sha256 = self
                .integrity_sha256_offset
                .is_some_and(|at| raw.offset > at);
            let after_sha1 = self.integrity_offset.is_some_and(|at| raw.offset > at);
            let ignored = if after_sha256 {
                raw.attr_type != AttrType::FINGERPRINT
            } else if after_sha1 {
                raw.attr_type != AttrType::FINGERPRINT
                    && raw.attr_type != AttrType::MESSAGE_INTEGRITY_SHA256
            } else {
                false
            };
            if !ignored {
                return Some(raw);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::encode::MessageWriter;
    use super::*;

    /// Hex as the RFC prints it (spaces and line breaks) to bytes.
    pub(crate) fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text
            .bytes()
            .filter(u8::is_ascii_hexdigit)
            .map(|d| match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                _ => d - b'A' + 10,
            })
            .collect();
        assert!(digits.len().is_multiple_of(2));
        digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
    }

    // The test vectors of RFC 5769 (April 2010), typed from §2.1 to §2.4.
    // In §2.1 to §2.3 the padding bytes are 0x20, which RFC 8489 allows a
    // receiver to see; they are covered by the integrity and fingerprint.
    const RFC5769_REQUEST: &str = "
        00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
        00 24 00 04 6e 00 01 ff
        80 29 00 08 93 2f f9 b1 51 26 3b 36
        00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
        00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
        80 28 00 04 e5 7a 3b cf";
    const RFC5769_IPV4_RESPONSE: &str = "
        01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 08 00 01 a1 47 e1 12 a6 43
        00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
        80 28 00 04 c0 7d 4c 96";
    const RFC5769_IPV6_RESPONSE: &str = "
        01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
        00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
        80 28 00 04 c8 fb 0b 4c";
    const RFC5769_LONG_TERM_REQUEST: &str = "
        00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
        00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
        00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
        00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
        00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66";
    const SHORT_TERM_PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";
    /// MD5("マトリックス:example.org:TheMatrIX"), the long-term key of §2.4,
    /// computed outside this module since MD5 is not one of its dependencies.
    const LONG_TERM_KEY: [u8; 16] = [
        0xe8, 0xca, 0x7a, 0xd5, 0x9d, 0x5e, 0xb0, 0x51, 0x8e, 0x31, 0x29, 0x11, 0xd2, 0xda, 0xb2,
        0xa9,
    ];

    #[test]
    fn rfc5769_sample_request_verifies() {
        let bytes = hex(RFC5769_REQUEST);
        let message = StunMessage::parse(&bytes).unwrap();
        assert_eq!(message.message_type(), MessageType::BINDING_REQUEST);
        assert_eq!(
            message.transaction_id().0,
            hex("b7 e7 a7 01 bc 34 d6 86 fa 87 df ae")[..]
        );
        assert_eq!(message.username(), Some("evtj:h6vY"));
        assert_eq!(
            message.get(AttrType::SOFTWARE),
            Some(Attribute::Software("STUN test client"))
        );
        assert_eq!(
            message.get(AttrType::PRIORITY),
            Some(Attribute::Priority(0x6e00_01ff))
        );
        assert_eq!(
            message.get(AttrType::ICE_CONTROLLED),
            Some(Attribute::IceControlled(0x932f_f9b1_5126_3b36))
        );
        assert!(message.unknown_comprehension_required().is_empty());
        message.verify_integrity(SHORT_TERM_PASSWORD).unwrap();
        message.verify_fingerprint().unwrap();
        assert!(matches!(
            message.verify_integrity(b"wrong"),
            Err(StunError::IntegrityMismatch { offset: 76, .. })
        ));
    }

    #[test]
    fn rfc5769_ipv4_response_verifies() {
        let bytes = hex(RFC5769_IPV4_RESPONSE);
        let message = StunMessage::parse(&bytes).unwrap();
        assert_eq!(message.message_type(), MessageType::BINDING_SUCCESS);
        assert_eq!(
            message.xor_mapped_address(),
            Some("192.0.2.1:32853".parse().unwrap())
        );
        assert_eq!(
            message.get(AttrType::SOFTWARE),
            Some(Attribute::Software("test vector"))
        );
        message.verify_integrity(SHORT_TERM_PASSWORD).unwrap();
        message.verify_fingerprint().unwrap();
    }

    #[test]
    fn rfc5769_ipv6_response_verifies() {
        let bytes = hex(RFC5769_IPV6_RESPONSE);
        let message = StunMessage::parse(&bytes).unwrap();
        assert_eq!(
            message.xor_mapped_address(),
            Some(
                "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                    .parse()
                    .unwrap()
            )
        );
        message.verify_integrity(SHORT_TERM_PASSWORD).unwrap();
        message.verify_fingerprint().unwrap();
    }

    #[test]
    fn rfc5769_long_term_request_verifies() {
        let bytes = hex(RFC5769_LONG_TERM_REQUEST);
        let message = StunMessage::parse(&bytes).unwrap();
        assert_eq!(message.username(), Some("マトリックス"));
        assert_eq!(
            message.get(AttrType::NONCE),
            Some(Attribute::Nonce("f//499k954d6OL34oL9FSTvy64sA"))
        );
        assert_eq!(
            message.get(AttrType::REALM),
            Some(Attribute::Realm("example.org"))
        );
        assert!(!message.has_fingerprint());
        message.verify_integrity(&LONG_TERM_KEY).unwrap();
        assert_eq!(
            message.verify_fingerprint(),
            Err(StunError::FingerprintMissing)
        );
    }

    /// Re-encodes a parsed vector attribute by attribute, recomputing the
    /// integrity and fingerprint, and expects the same bytes.
    fn reencode(bytes: &[u8], key: &[u8], padding_byte: u8) -> Vec<u8> {
        let message = StunMessage::parse(bytes).unwrap();
        let mut out = vec![0u8; bytes.len() + 16];
        let mut writer =
            MessageWriter::new(&mut out, message.message_type(), message.transaction_id()).unwrap();
        writer.set_padding_byte(padding_byte);
        for raw in message.attributes() {
            match raw.attr_type {
                AttrType::MESSAGE_INTEGRITY => writer.add_message_integrity(key).unwrap(),
                AttrType::FINGERPRINT => writer.add_fingerprint().unwrap(),
                _ => {
                    let attribute = message.get(raw.attr_type).unwrap();
                    writer.add_attribute(&attribute).unwrap();
                }
            }
        }
        let len = writer.finish();
        out.truncate(len);
        out
    }

    #[test]
    fn rfc5769_vectors_reencode_to_the_same_bytes() {
        for vector in [
            RFC5769_REQUEST,
            RFC5769_IPV4_RESPONSE,
            RFC5769_IPV6_RESPONSE,
        ] {
            let bytes = hex(vector);
            assert_eq!(reencode(&bytes, SHORT_TERM_PASSWORD, b' '), bytes);
        }
        let bytes = hex(RFC5769_LONG_TERM_REQUEST);
        assert_eq!(reencode(&bytes, &LONG_TERM_KEY, 0), bytes);
    }

    #[test]
    fn message_type_interleaves_method_and_class() {
        for (method, class, bits) in [
            (0x001, Class::Request, 0x0001),
            (0x001, Class::SuccessResponse, 0x0101),
            (0x001, Class::ErrorResponse, 0x0111),
            (0x001, Class::Indication, 0x0011),
            (0x003, Class::Request, 0x0003),
            (0xfff, Class::ErrorResponse, 0x3fff),
        ] {
            let message_type = MessageType {
                method: Method(method),
                class,
            };
            assert_eq!(message_type.to_u16(), bits);
            assert_eq!(MessageType::from_u16(bits), message_type);
        }
    }

    fn header(length: u16) -> Vec<u8> {
        let mut bytes = vec![0x00, 0x01];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        bytes.extend_from_slice(&[7; 12]);
        bytes
    }

    #[test]
    fn check_tells_incomplete_from_invalid() {
        let mut bytes = header(8);
        bytes.extend_from_slice(&[0x80, 0x22, 0x00, 0x01, b'x', 0, 0, 0]);
        assert_eq!(check(&bytes), Ok(28));
        assert!(check(&[]).unwrap_err().is_incomplete());
        assert_eq!(
            check(&bytes[..27]),
            Err(StunError::Incomplete {
                needed_bytes: 28,
                available_bytes: 27
            })
        );
        assert_eq!(
            check(&bytes[..10]),
            Err(StunError::Incomplete {
                needed_bytes: 20,
                available_bytes: 10
            })
        );
        assert_eq!(check(&[0x40]), Err(StunError::NotStun { first_byte: 0x40 }));
        let mut bad_cookie = bytes.clone();
        bad_cookie[4] = 0x22;
        assert_eq!(
            check(&bad_cookie),
            Err(StunError::BadMagicCookie { found: 0x2212_a442 })
        );
        let mut odd_length = bytes.clone();
        odd_length[3] = 5;
        assert_eq!(
            check(&odd_length),
            Err(StunError::LengthNotMultipleOfFour { length_bytes: 5 })
        );
    }

    #[test]
    fn bad_cookie_is_rejected_by_parse() {
        let mut bytes = header(0);
        bytes[7] = 0;
        assert!(matches!(
            StunMessage::parse(&bytes),
            Err(StunError::BadMagicCookie { .. })
        ));
    }

    #[test]
    fn truncated_attribute_names_type_and_offset() {
        // SOFTWARE claims 9 bytes (12 padded) but only 8 follow its header.
        let mut bytes = header(12);
        bytes.extend_from_slice(&[0x80, 0x22, 0x00, 0x09, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            StunMessage::parse(&bytes).unwrap_err(),
            StunError::AttributeTruncated {
                attr_type: 0x8022,
                offset: 20,
                value_bytes: 12,
                available_bytes: 8
            }
        );
    }

    #[test]
    fn bad_padding_length_is_rejected() {
        // A 5-byte value whose padding the header length leaves out: the
        // length (9) is not a multiple of 4.
        let mut bytes = header(9);
        bytes.extend_from_slice(&[0x80, 0x22, 0x00, 0x05, 1, 2, 3, 4, 5]);
        assert_eq!(
            StunMessage::parse(&bytes).unwrap_err(),
            StunError::LengthNotMultipleOfFour { length_bytes: 9 }
        );
        // The padding counted in the value length of the next attribute is
        // missing: the value of 5 bytes ends where its padding should be.
        let mut bytes = header(8);
        bytes.extend_from_slice(&[0x80, 0x22, 0x00, 0x05, 1, 2, 3, 4]);
        assert!(matches!(
            StunMessage::parse(&bytes).unwrap_err(),
            StunError::AttributeTruncated { offset: 20, .. }
        ));
    }

    #[test]
    fn trailing_bytes_and_too_many_attributes_are_rejected() {
        let mut bytes = header(0);
        bytes.push(0);
        assert!(matches!(
            StunMessage::parse(&bytes),
            Err(StunError::TrailingBytes {
                message_bytes: 20,
                trailing_bytes: 1
            })
        ));
        let count = ATTRIBUTES_MAX + 1;
        let mut bytes = header(u16::try_from(count * 4).unwrap());
        for _ in 0..count {
            bytes.extend_from_slice(&[0x80, 0x00, 0x00, 0x00]);
        }
        assert_eq!(
            StunMessage::parse(&bytes).unwrap_err(),
            StunError::TooManyAttributes {
                limit: ATTRIBUTES_MAX,
                offset: 20 + ATTRIBUTES_MAX * 4
            }
        );
    }

    #[test]
    fn unknown_required_attributes_are_listed_once_and_optional_ones_kept() {
        let mut bytes = header(16);
        bytes.extend_from_slice(&[0x00, 0x02, 0x00, 0x00]); // unknown, required
        bytes.extend_from_slice(&[0x7f, 0xff, 0x00, 0x00]); // unknown, required
        bytes.extend_from_slice(&[0x00, 0x02, 0x00, 0x00]); // the first again
        bytes.extend_from_slice(&[0x8f, 0xff, 0x00, 0x00]); // unknown, optional
        let message = StunMessage::parse(&bytes).unwrap();
        assert_eq!(
            message.unknown_comprehension_required(),
            &[AttrType(0x0002), AttrType(0x7fff)]
        );
        assert_eq!(
            message.get(AttrType(0x8fff)),
            Some(Attribute::Other {
                attr_type: AttrType(0x8fff),
                value: &[]
            })
        );
    }

    #[test]
    fn attributes_after_integrity_are_ignored_and_after_fingerprint_refused() {
        let mut bytes = header(32);
        bytes.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
        bytes.extend_from_slice(&[0; 20]);
        // An unknown required attribute after MESSAGE-INTEGRITY is ignored.
        bytes.extend_from_slice(&[0x00, 0x02, 0x00, 0x04, 1, 2, 3, 4]);
        let message = StunMessage::parse(&bytes).unwrap();
        assert!(message.unknown_comprehension_required().is_empty());
        assert_eq!(message.attributes().count(), 1);

        let mut bytes = header(16);
        bytes.extend_from_slice(&[0x80, 0x28, 0x00, 0x04, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0x80, 0x22, 0x00, 0x01, b'x', 0, 0, 0]);
        assert_eq!(
            StunMessage::parse(&bytes).unwrap_err(),
            StunError::AttributeAfterFingerprint { offset: 28 }
        );
    }

    #[test]
    fn fingerprint_mismatch_is_reported() {
        let bytes = hex(RFC5769_IPV4_RESPONSE);
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let message = StunMessage::parse(&bad).unwrap();
        assert!(matches!(
            message.verify_fingerprint(),
            Err(StunError::FingerprintMismatch { offset: 72, .. })
        ));
    }
}
