//! Errors of the STUN codec.
//!
//! Every variant is a fixed shape with no heap data, so that a flood of bad
//! packets costs no allocation. Each names what was wrong and, where it can,
//! the attribute type and the byte offset in the message where it was found.

use thiserror::Error;

/// What went wrong while checking, parsing, verifying or encoding a STUN
/// message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StunError {
    /// More bytes are needed before the message is complete. Over TCP this
    /// means "read more"; for a UDP datagram it means the datagram was cut.
    #[error("incomplete STUN message: need {needed_bytes} bytes, have {available_bytes}")]
    Incomplete {
        /// Bytes needed to decide (the header, or the whole message).
        needed_bytes: usize,
        /// Bytes that were available.
        available_bytes: usize,
    },
    /// The two most significant bits of the first byte are not zero, so the
    /// packet is not STUN (it may be DTLS, RTP or ChannelData).
    #[error("not STUN: first byte {first_byte:#04x} has one of its top two bits set")]
    NotStun {
        /// The first byte of the packet.
        first_byte: u8,
    },
    /// The magic cookie at offset 4 is wrong (an RFC 3489 client, or not STUN).
    #[error("bad magic cookie {found:#010x} at offset 4, expected 0x2112a442")]
    BadMagicCookie {
        /// The 32-bit value found at offset 4.
        found: u32,
    },
    /// Bytes without the magic cookie whose message type is none of RFC
    /// 3489's Binding request, success and error response, so they are not
    /// classic STUN either (see [`super::ClassicMessage::parse`]).
    #[error(
        "no magic cookie and message type {message_type:#06x} is not an RFC 3489 Binding type"
    )]
    NotClassicBinding {
        /// The 16-bit message type field.
        message_type: u16,
    },
    /// [`super::ClassicMessage::parse`] was given a message with the magic
    /// cookie: it is RFC 8489 STUN, for [`super::StunMessage::parse`].
    #[error("magic cookie at offset 4: an RFC 8489 message, not RFC 3489")]
    HasMagicCookie,
    /// The header's length field is not a multiple of 4, so the attributes
    /// cannot be padded correctly.
    #[error("message length {length_bytes} in the header is not a multiple of 4")]
    LengthNotMultipleOfFour {
        /// The length field of the header.
        length_bytes: u16,
    },
    /// The buffer holds more bytes than the header's length field says.
    #[error("{trailing_bytes} bytes follow the {message_bytes}-byte STUN message")]
    TrailingBytes {
        /// Length of the message, header included.
        message_bytes: usize,
        /// Bytes after the message.
        trailing_bytes: usize,
    },
    /// An attribute's header does not fit in what is left of the message.
    #[error("attribute header at offset {offset} runs past the end of the message")]
    AttributeHeaderTruncated {
        /// Offset of the attribute in the message.
        offset: usize,
    },
    /// An attribute's value (with its padding to 4 bytes) runs past the end of
    /// the message.
    #[error(
        "attribute {attr_type:#06x} at offset {offset}: value of {value_bytes} bytes \
         (padded) runs past the end of the message, {available_bytes} bytes left"
    )]
    AttributeTruncated {
        /// The attribute type.
        attr_type: u16,
        /// Offset of the attribute in the message.
        offset: usize,
        /// The value length, padding included.
        value_bytes: usize,
        /// Bytes left in the message after the attribute header.
        available_bytes: usize,
    },
    /// An attribute's value has a length its type does not allow.
    #[error("attribute {attr_type:#06x} at offset {offset}: bad value length {value_bytes}")]
    BadAttributeLength {
        /// The attribute type.
        attr_type: u16,
        /// Offset of the attribute in the message.
        offset: usize,
        /// The length field of the attribute.
        value_bytes: usize,
    },
    /// An attribute's value is malformed in a way its length does not show.
    #[error("attribute {attr_type:#06x} at offset {offset}: {what}")]
    BadAttributeValue {
        /// The attribute type.
        attr_type: u16,
        /// Offset of the attribute in the message.
        offset: usize,
        /// What was wrong, a fixed phrase.
        what: &'static str,
    },
    /// The message has more attributes than [`super::ATTRIBUTES_MAX`].
    #[error("more than {limit} attributes; the one at offset {offset} is over the limit")]
    TooManyAttributes {
        /// The limit, [`super::ATTRIBUTES_MAX`].
        limit: usize,
        /// Offset of the first attribute over the limit.
        offset: usize,
    },
    /// FINGERPRINT must be the last attribute, and one followed it.
    #[error("attribute at offset {offset} follows FINGERPRINT, which must be last")]
    AttributeAfterFingerprint {
        /// Offset of the attribute after FINGERPRINT.
        offset: usize,
    },
    /// Integrity was asked to be verified on a message without it.
    #[error("message has no {what} attribute")]
    IntegrityMissing {
        /// `"MESSAGE-INTEGRITY"` or `"MESSAGE-INTEGRITY-SHA256"`.
        what: &'static str,
    },
    /// The HMAC in MESSAGE-INTEGRITY (or -SHA256) does not match the key.
    #[error("{what} at offset {offset} does not match")]
    IntegrityMismatch {
        /// `"MESSAGE-INTEGRITY"` or `"MESSAGE-INTEGRITY-SHA256"`.
        what: &'static str,
        /// Offset of the attribute in the message.
        offset: usize,
    },
    /// Fingerprint was asked to be verified on a message without one.
    #[error("message has no FINGERPRINT attribute")]
    FingerprintMissing,
    /// The CRC-32 in FINGERPRINT does not match the message.
    #[error("FINGERPRINT at offset {offset} is {found:#010x}, expected {expected:#010x}")]
    FingerprintMismatch {
        /// Offset of the attribute in the message.
        offset: usize,
        /// The value computed over the message.
        expected: u32,
        /// The value in the attribute.
        found: u32,
    },
    /// The output buffer is too small for what the encoder was asked to write.
    #[error("output buffer too small: need {needed_bytes} bytes, have {available_bytes}")]
    BufferTooSmall {
        /// Bytes the message would need so far.
        needed_bytes: usize,
        /// Size of the output buffer.
        available_bytes: usize,
    },
    /// A value given to the encoder is out of range for its attribute.
    #[error("cannot encode attribute {attr_type:#06x}: {what}")]
    BadEncodeValue {
        /// The attribute type.
        attr_type: u16,
        /// What was wrong, a fixed phrase.
        what: &'static str,
    },
    /// The encoder was asked to add an attribute where RFC 8489 allows none:
    /// after FINGERPRINT, or an ordinary one after MESSAGE-INTEGRITY.
    #[error("attribute {attr_type:#06x} cannot follow {after}")]
    AttributeOrder {
        /// The attribute type that was refused.
        attr_type: u16,
        /// `"FINGERPRINT"` or `"MESSAGE-INTEGRITY"`.
        after: &'static str,
    },
}

impl StunError {
    /// True when more bytes could complete the message (a stream should keep
    /// reading), false when the bytes are invalid whatever follows.
    #[must_use]
    pub fn is_incomplete(&self) -> bool {
        matches!(self, StunError::Incomplete { .. })
    }
}
