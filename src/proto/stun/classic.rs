//! RFC 3489 ("classic") STUN, the dialect RFC 8489 §12 still asks servers to
//! answer: Debian's `stun` client and old SIP phones speak it.
//!
//! A classic message has the same 20-byte header as an RFC 8489 one, but
//! the four bytes where RFC 8489 puts the magic cookie are the front of a
//! 128-bit transaction id. [`super::check`] therefore calls such bytes
//! [`StunError::BadMagicCookie`], and [`ClassicMessage::parse`] then decides
//! whether they are classic STUN. It is stricter than RFC 3489 itself, so
//! that stray bytes are not mistaken for STUN: the message type must be one
//! of the three Binding types (Shared Secret needs TLS, which this server
//! does not speak), the top two bits zero, the length a multiple of 4 that
//! matches the datagram exactly, and every attribute must frame cleanly.
//!
//! A classic answer carries MAPPED-ADDRESS (never XOR-MAPPED-ADDRESS, which
//! a classic client cannot un-XOR), and no FINGERPRINT or RFC 8489
//! MESSAGE-INTEGRITY. Every value is a multiple of 4 bytes long, padded
//! inside its length with spaces where it is text, because RFC 3489 parsers
//! skip an attribute by its length alone.

use std::net::SocketAddr;

use super::attr::{decode_address, AttrType, Attribute, ChangeRequest, ErrorCode, INTEGRITY_BYTES};
use super::encode::MessageWriter;
use super::error::StunError;
use super::message::{read_u16, Class, MessageType, Method, RawAttribute, TransactionId, Walker};
use super::{ATTRIBUTES_MAX, HEADER_BYTES, MAGIC_COOKIE, UNKNOWN_ATTRIBUTES_MAX};

/// The 128-bit transaction id of an RFC 3489 message: bytes 4 to 19 of the
/// header, where RFC 8489 has the cookie and its 96-bit id. An answer
/// echoes all 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ClassicTransactionId(pub [u8; 16]);

/// An RFC 3489 message borrowing the datagram; see the module docs for
/// what [`ClassicMessage::parse`] accepts.
#[derive(Debug, Clone, Copy)]
pub struct ClassicMessage<'a> {
    bytes: &'a [u8],
    message_type: MessageType,
    transaction_id: ClassicTransactionId,
    unknown: [AttrType; UNKNOWN_ATTRIBUTES_MAX],
    unknown_len: usize,
}

/// The attribute types RFC 3489 defines (§11.2); others below 0x8000 are
/// unknown comprehension-required ones, answered with 420.
fn is_classic_type(attr_type: AttrType) -> bool {
    matches!(
        attr_type,
        AttrType::MAPPED_ADDRESS
            | AttrType::RESPONSE_ADDRESS
            | AttrType::CHANGE_REQUEST
            | AttrType::SOURCE_ADDRESS
            | AttrType::CHANGED_ADDRESS
            | AttrType::USERNAME
            | AttrType::PASSWORD
            | AttrType::MESSAGE_INTEGRITY
            | AttrType::ERROR_CODE
            | AttrType::UNKNOWN_ATTRIBUTES
            | AttrType::REFLECTED_FROM
    )
}

/// The three message types a classic message may have.
const CLASSIC_TYPES: [MessageType; 3] = [
    MessageType::BINDING_REQUEST,
    MessageType::BINDING_SUCCESS,
    MessageType {
        method: Method::BINDING,
        class: Class::ErrorResponse,
    },
];

impl<'a> ClassicMessage<'a> {
    /// Parses exactly one classic message (a whole UDP datagram).
    ///
    /// Unknown comprehension-required attributes are listed by
    /// [`ClassicMessage::unknown_comprehension_required`], not refused.
    ///
    /// # Errors
    ///
    /// [`StunError::Incomplete`] when the datagram is shorter than its
    /// header says; [`StunError::NotStun`],
    /// [`StunError::LengthNotMultipleOfFour`],
    /// [`StunError::NotClassicBinding`], [`StunError::HasMagicCookie`] or
    /// [`StunError::TrailingBytes`] when the bytes are not a classic
    /// message; and the framing and value errors of the attributes.
    pub fn parse(bytes: &'a [u8]) -> Result<ClassicMessage<'a>, StunError> {
        if let Some(&first_byte) = bytes.first() {
            if first_byte & 0xc0 != 0 {
                return Err(StunError::NotStun { first_byte });
            }
        }
        if bytes.len() < HEADER_BYTES {
            return Err(StunError::Incomplete {
                needed_bytes: HEADER_BYTES,
                available_bytes: bytes.len(),
            });
        }
        let length_bytes = read_u16(bytes, 2);
        if !length_bytes.is_multiple_of(4) {
            return Err(StunError::LengthNotMultipleOfFour { length_bytes });
        }
        if u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) == MAGIC_COOKIE {
            return Err(StunError::HasMagicCookie);
        }
        let type_bits = read_u16(bytes, 0);
        let message_type = MessageType::from_u16(type_bits);
        if !CLASSIC_TYPES.contains(&message_type) {
            return Err(StunError::NotClassicBinding {
                message_type: type_bits,
            });
        }
        let message_bytes = HEADER_BYTES + usize::from(length_bytes);
        if bytes.len() < message_bytes {
            return Err(StunError::Incomplete {
                needed_bytes: message_bytes,
                available_bytes: bytes.len(),
            });
        }
        if bytes.len() > message_bytes {
            return Err(StunError::TrailingBytes {
                message_bytes,
                trailing_bytes: bytes.len() - message_bytes,
            });
        }
        let mut transaction_id = ClassicTransactionId::default();
        transaction_id.0.copy_from_slice(&bytes[4..HEADER_BYTES]);
        let mut message = ClassicMessage {
            bytes,
            message_type,
            transaction_id,
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
            if is_classic_type(raw.attr_type) {
                decode_classic(raw)?;
            } else if raw.attr_type.is_comprehension_required() {
                message.note_unknown(raw.attr_type);
            }
        }
        Ok(message)
    }

    /// Lists an unknown type once, up to [`UNKNOWN_ATTRIBUTES_MAX`].
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

    /// The message type: a Binding request, success or error response.
    #[must_use]
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// The class.
    #[must_use]
    pub fn class(&self) -> Class {
        self.message_type.class
    }

    /// The 128-bit transaction id.
    #[must_use]
    pub fn transaction_id(&self) -> ClassicTransactionId {
        self.transaction_id
    }

    /// Comprehension-required types RFC 3489 does not define, each once.
    #[must_use]
    pub fn unknown_comprehension_required(&self) -> &[AttrType] {
        &self.unknown[..self.unknown_len]
    }

    /// Every attribute, in order, undecoded.
    pub fn attributes(&self) -> impl Iterator<Item = RawAttribute<'a>> + 'a {
        let mut walker = Walker::new(self.bytes);
        // Parsing walked the same bytes without error, so none occurs.
        std::iter::from_fn(move || walker.next_raw()?.ok())
    }

    /// The first attribute of this type, undecoded.
    #[must_use]
    pub fn raw(&self, attr_type: AttrType) -> Option<RawAttribute<'a>> {
        self.attributes().find(|raw| raw.attr_type == attr_type)
    }

    /// The first address attribute of this type (MAPPED-ADDRESS,
    /// SOURCE-ADDRESS, CHANGED-ADDRESS, RESPONSE-ADDRESS, REFLECTED-FROM).
    #[must_use]
    pub fn address(&self, attr_type: AttrType) -> Option<SocketAddr> {
        let raw = self.raw(attr_type)?;
        decode_address(
            attr_type,
            raw.value,
            &TransactionId::default(),
            raw.offset,
            false,
        )
        .ok()
    }

    /// The MAPPED-ADDRESS, if present.
    #[must_use]
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        self.address(AttrType::MAPPED_ADDRESS)
    }

    /// The SOURCE-ADDRESS, if present.
    #[must_use]
    pub fn source_address(&self) -> Option<SocketAddr> {
        self.address(AttrType::SOURCE_ADDRESS)
    }

    /// The CHANGED-ADDRESS, if present.
    #[must_use]
    pub fn changed_address(&self) -> Option<SocketAddr> {
        self.address(AttrType::CHANGED_ADDRESS)
    }

    /// The CHANGE-REQUEST flags, if present.
    #[must_use]
    pub fn change_request(&self) -> Option<ChangeRequest> {
        let raw = self.raw(AttrType::CHANGE_REQUEST)?;
        let bytes: [u8; 4] = raw.value.try_into().ok()?;
        Some(ChangeRequest::from_u32(u32::from_be_bytes(bytes)))
    }

    /// The ERROR-CODE, if present (its reason may end in padding spaces).
    #[must_use]
    pub fn error_code(&self) -> Option<ErrorCode<'a>> {
        let raw = self.raw(AttrType::ERROR_CODE)?;
        match Attribute::decode(
            raw.attr_type,
            raw.value,
            &TransactionId::default(),
            raw.offset,
        ) {
            Ok(Attribute::ErrorCode(code)) => Some(code),
            _ => None,
        }
    }
}

/// Validates the value of an attribute RFC 3489 defines.
fn decode_classic(raw: RawAttribute<'_>) -> Result<(), StunError> {
    let bad_length = || StunError::BadAttributeLength {
        attr_type: raw.attr_type.0,
        offset: raw.offset,
        value_bytes: raw.value.len(),
    };
    let no_id = TransactionId::default();
    match raw.attr_type {
        AttrType::MAPPED_ADDRESS
        | AttrType::RESPONSE_ADDRESS
        | AttrType::SOURCE_ADDRESS
        | AttrType::CHANGED_ADDRESS
        | AttrType::REFLECTED_FROM => {
            decode_address(raw.attr_type, raw.value, &no_id, raw.offset, false).map(|_| ())
        }
        AttrType::CHANGE_REQUEST if raw.value.len() != 4 => Err(bad_length()),
        AttrType::MESSAGE_INTEGRITY if raw.value.len() != INTEGRITY_BYTES => Err(bad_length()),
        AttrType::ERROR_CODE | AttrType::UNKNOWN_ATTRIBUTES => {
            Attribute::decode(raw.attr_type, raw.value, &no_id, raw.offset).map(|_| ())
        }
        // USERNAME and PASSWORD are opaque in RFC 3489.
        _ => Ok(()),
    }
}

/// What a classic Binding success response carries.
#[derive(Debug, Clone, Copy)]
pub struct ClassicBindingSuccess<'a> {
    /// The request's 128-bit transaction id.
    pub transaction_id: ClassicTransactionId,
    /// The request's source, as MAPPED-ADDRESS.
    pub mapped_address: SocketAddr,
    /// SOURCE-ADDRESS: where the answer is sent from (RFC 5780 servers only).
    pub source_address: Option<SocketAddr>,
    /// CHANGED-ADDRESS: the alternate IP and port (RFC 5780 servers only).
    pub changed_address: Option<SocketAddr>,
    /// SOFTWARE (0x8022, comprehension-optional, so classic clients skip it).
    pub software: Option<&'a str>,
}

/// Encodes a classic Binding success response into `out`; returns its
/// length. A bare one is 32 bytes for IPv4, like its RFC 8489 twin.
///
/// # Errors
///
/// [`StunError::BufferTooSmall`] or [`StunError::BadEncodeValue`].
pub fn encode_classic_binding_success(
    out: &mut [u8],
    response: &ClassicBindingSuccess<'_>,
) -> Result<usize, StunError> {
    let mut writer =
        MessageWriter::new_classic(out, MessageType::BINDING_SUCCESS, response.transaction_id)?;
    writer.add_address(AttrType::MAPPED_ADDRESS, response.mapped_address)?;
    if let Some(address) = response.source_address {
        writer.add_address(AttrType::SOURCE_ADDRESS, address)?;
    }
    if let Some(address) = response.changed_address {
        writer.add_address(AttrType::CHANGED_ADDRESS, address)?;
    }
    if let Some(software) = response.software {
        writer.add_text_space_padded(AttrType::SOFTWARE, software)?;
    }
    Ok(writer.finish())
}

/// What a classic Binding error response carries.
#[derive(Debug, Clone, Copy)]
pub struct ClassicErrorResponse<'a> {
    /// The request's 128-bit transaction id.
    pub transaction_id: ClassicTransactionId,
    /// The error code, 300..=699.
    pub code: u16,
    /// The reason phrase; padded with spaces to a multiple of 4 bytes.
    pub reason: &'a str,
    /// Types for UNKNOWN-ATTRIBUTES (420 only); an odd count repeats the
    /// first, as RFC 3489 §11.2.10 asks.
    pub unknown_attributes: &'a [AttrType],
    /// SOFTWARE.
    pub software: Option<&'a str>,
}

/// Encodes a classic Binding error response into `out`; returns its length.
///
/// # Errors
///
/// [`StunError::BufferTooSmall`] or [`StunError::BadEncodeValue`].
pub fn encode_classic_error_response(
    out: &mut [u8],
    response: &ClassicErrorResponse<'_>,
) -> Result<usize, StunError> {
    let bad = |what| StunError::BadEncodeValue {
        attr_type: AttrType::ERROR_CODE.0,
        what,
    };
    if !(300..=699).contains(&response.code) {
        return Err(bad("error code outside 300..=699"));
    }
    let message_type = MessageType {
        method: Method::BINDING,
        class: Class::ErrorResponse,
    };
    let mut writer = MessageWriter::new_classic(out, message_type, response.transaction_id)?;
    // ERROR-CODE is 0, 0, class, number, then the reason: written as text
    // after a 4-byte prefix, so build it as one padded value.
    let mut value = [b' '; 4 + 64];
    let reason = response.reason.as_bytes();
    if reason.len() > value.len() - 4 {
        return Err(bad("classic reason phrase longer than 64 bytes"));
    }
    // Both fit a byte: the class is 3..=6 and the number 0..=99.
    value[..4].copy_from_slice(&[
        0,
        0,
        (response.code / 100) as u8,
        (response.code % 100) as u8,
    ]);
    value[4..4 + reason.len()].copy_from_slice(reason);
    let value_bytes = 4 + ((reason.len() + 3) & !3);
    writer.add_raw(AttrType::ERROR_CODE, &value[..value_bytes])?;
    if let Some(&first) = response.unknown_attributes.first() {
        let odd = response.unknown_attributes.len() % 2 == 1;
        let repeat = odd.then_some(first);
        writer.add_unknown_attributes(
            response
                .unknown_attributes
                .iter()
                .copied()
                .chain(repeat)
                .collect::<ListOfTypes>()
                .iter(),
        )?;
    }
    if let Some(software) = response.software {
        writer.add_text_space_padded(AttrType::SOFTWARE, software)?;
    }
    Ok(writer.finish())
}

/// A fixed-capacity list of attribute types, so the 420 path allocates
/// nothing.
struct ListOfTypes {
    types: [AttrType; UNKNOWN_ATTRIBUTES_MAX + 1],
    len: usize,
}

impl ListOfTypes {
    fn iter(&self) -> impl ExactSizeIterator<Item = AttrType> + '_ {
        self.types[..self.len].iter().copied()
    }
}

impl FromIterator<AttrType> for ListOfTypes {
    fn from_iter<I: IntoIterator<Item = AttrType>>(iter: I) -> Self {
        let mut list = ListOfTypes {
            types: [AttrType(0); UNKNOWN_ATTRIBUTES_MAX + 1],
            len: 0,
        };
        for attr_type in iter.into_iter().take(UNKNOWN_ATTRIBUTES_MAX + 1) {
            list.types[list.len] = attr_type;
            list.len += 1;
        }
        list
    }
}

/// What a classic Binding request carries (for tests and old-client
/// emulation).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClassicBindingRequest {
    /// A fresh random 128-bit transaction id. Its first four bytes must not
    /// be the magic cookie, or the request is RFC 8489.
    pub transaction_id: ClassicTransactionId,
    /// CHANGE-REQUEST, which RFC 3489 clients send even with no flag set.
    pub change_request: Option<ChangeRequest>,
}

/// Encodes a classic Binding request into `out`; returns its length.
///
/// # Errors
///
/// [`StunError::BufferTooSmall`], or [`StunError::BadEncodeValue`] when the
/// transaction id starts with the magic cookie.
pub fn encode_classic_binding_request(
    out: &mut [u8],
    request: &ClassicBindingRequest,
) -> Result<usize, StunError> {
    if request.transaction_id.0[..4] == MAGIC_COOKIE.to_be_bytes() {
        return Err(StunError::BadEncodeValue {
            attr_type: 0,
            what: "a classic transaction id cannot start with the magic cookie",
        });
    }
    let mut writer =
        MessageWriter::new_classic(out, MessageType::BINDING_REQUEST, request.transaction_id)?;
    if let Some(flags) = request.change_request {
        writer.add_change_request(flags)?;
    }
    Ok(writer.finish())
}

#[cfg(test)]
mod tests {
    use super::super::message::tests::hex;
    use super::super::{check, StunMessage};
    use super::*;

    /// What Debian's `stun` 0.97 sends for test I: a Binding request with a
    /// 128-bit id and CHANGE-REQUEST with no flag set (28 bytes).
    const STUN_CLIENT_TEST_I: &str = "
        00 01 00 08 6b 45 28 91 0a 3f 72 c4 19 e0 5d 88 31 02 77 ab
        00 03 00 04 00 00 00 00";

    #[test]
    fn a_classic_request_is_bad_cookie_to_check_and_classic_to_parse() {
        let bytes = hex(STUN_CLIENT_TEST_I);
        assert!(matches!(
            check(&bytes),
            Err(StunError::BadMagicCookie { .. })
        ));
        assert!(StunMessage::parse(&bytes).is_err());
        let message = ClassicMessage::parse(&bytes).unwrap();
        assert_eq!(message.message_type(), MessageType::BINDING_REQUEST);
        assert_eq!(message.transaction_id().0[..], bytes[4..20]);
        assert_eq!(message.change_request(), Some(ChangeRequest::default()));
        assert!(message.unknown_comprehension_required().is_empty());
    }

    #[test]
    fn classic_parse_refuses_what_is_not_classic_binding() {
        let good = hex(STUN_CLIENT_TEST_I);
        let mut top_bits = good.clone();
        top_bits[0] = 0x80;
        assert_eq!(
            ClassicMessage::parse(&top_bits).unwrap_err(),
            StunError::NotStun { first_byte: 0x80 }
        );
        let mut odd_length = good.clone();
        odd_length[3] = 6;
        assert_eq!(
            ClassicMessage::parse(&odd_length).unwrap_err(),
            StunError::LengthNotMultipleOfFour { length_bytes: 6 }
        );
        let mut allocate = good.clone();
        allocate[1] = 0x03;
        assert_eq!(
            ClassicMessage::parse(&allocate).unwrap_err(),
            StunError::NotClassicBinding {
                message_type: 0x0003
            }
        );
        let mut cookie = good.clone();
        cookie[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        assert_eq!(
            ClassicMessage::parse(&cookie).unwrap_err(),
            StunError::HasMagicCookie
        );
        assert!(ClassicMessage::parse(&good[..24])
            .unwrap_err()
            .is_incomplete());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            ClassicMessage::parse(&trailing),
            Err(StunError::TrailingBytes { .. })
        ));
        // CHANGE-REQUEST of 2 bytes, framed correctly: a value error.
        let short = hex("00 01 00 08 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10
                         00 03 00 02 00 00 00 00");
        assert!(matches!(
            ClassicMessage::parse(&short),
            Err(StunError::BadAttributeLength {
                attr_type: 0x0003,
                offset: 20,
                ..
            })
        ));
        assert!(ClassicMessage::parse(b"GET / HTTP/1.1\r\n\r\n..").is_err());
    }

    #[test]
    fn success_has_mapped_address_and_echoes_the_whole_id() {
        let request = ClassicMessage::parse(&hex(STUN_CLIENT_TEST_I))
            .unwrap()
            .transaction_id();
        let client: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let mut out = [0u8; 128];
        let len = encode_classic_binding_success(
            &mut out,
            &ClassicBindingSuccess {
                transaction_id: request,
                mapped_address: client,
                source_address: None,
                changed_address: None,
                software: None,
            },
        )
        .unwrap();
        assert_eq!(len, 32);
        assert_eq!(
            &out[..len],
            &hex("01 01 00 0c 6b 45 28 91 0a 3f 72 c4 19 e0 5d 88 31 02 77 ab
                  00 01 00 08 00 01 9c 40 c6 33 64 07")[..]
        );
        let answer = ClassicMessage::parse(&out[..len]).unwrap();
        assert_eq!(answer.mapped_address(), Some(client));
        assert_eq!(answer.transaction_id(), request);
    }

    #[test]
    fn every_classic_value_is_a_multiple_of_four() {
        let mut out = [0u8; 256];
        let len = encode_classic_error_response(
            &mut out,
            &ClassicErrorResponse {
                transaction_id: ClassicTransactionId([1; 16]),
                code: 420,
                reason: "Unknown Attribute",
                unknown_attributes: &[AttrType::RESPONSE_ADDRESS],
                software: Some("sw1"),
            },
        )
        .unwrap();
        let message = ClassicMessage::parse(&out[..len]).unwrap();
        for raw in message.attributes() {
            assert!(raw.value.len().is_multiple_of(4), "{raw:?}");
        }
        let error = message.error_code().unwrap();
        assert_eq!(error.code, 420);
        assert_eq!(error.reason.trim_end(), "Unknown Attribute");
        let list = message.raw(AttrType::UNKNOWN_ATTRIBUTES).unwrap();
        assert_eq!(list.value, &[0, 2, 0, 2], "an odd list repeats its first");
        assert_eq!(message.raw(AttrType::SOFTWARE).unwrap().value, b"sw1 ");
    }

    #[test]
    fn classic_writer_refuses_cookie_attributes() {
        let mut out = [0u8; 64];
        let mut writer = MessageWriter::new_classic(
            &mut out,
            MessageType::BINDING_SUCCESS,
            ClassicTransactionId([3; 16]),
        )
        .unwrap();
        let client: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        assert!(writer.add_xor_mapped_address(client).is_err());
        assert!(writer.add_fingerprint().is_err());
        assert!(writer.add_message_integrity(b"key").is_err());
        let mut request = [0u8; 64];
        let cookie_id = ClassicBindingRequest {
            transaction_id: ClassicTransactionId([
                0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]),
            change_request: None,
        };
        assert!(encode_classic_binding_request(&mut request, &cookie_id).is_err());
    }
}
