//! Writing STUN messages into a caller's fixed buffer, without allocating.
//!
//! [`MessageWriter`] adds attributes one at a time and keeps the header
//! length right after each, so MESSAGE-INTEGRITY and FINGERPRINT can be
//! computed over what is already written. The `encode_*` functions build
//! the messages a Binding server and client send.

use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use super::attr::{
    address_value_len, encode_address, AttrType, Attribute, ChangeRequest, ErrorCode,
    INTEGRITY_BYTES, INTEGRITY_SHA256_BYTES_MAX, TEXT_BYTES_MAX, USERNAME_BYTES_MAX,
};
use super::classic::ClassicTransactionId;
use super::error::StunError;
use super::message::{fingerprint, new_hmac, Class, MessageType, Method, TransactionId};
use super::{HEADER_BYTES, MAGIC_COOKIE};

/// Largest value of the header's 16-bit length field.
const LENGTH_FIELD_MAX: usize = u16::MAX as usize;

/// Which closing attribute was written last; it limits what may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    Open,
    Integrity,
    IntegritySha256,
    Fingerprint,
}

/// Writes one STUN message into a borrowed buffer.
#[derive(Debug)]
pub struct MessageWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    transaction_id: TransactionId,
    closed: Closed,
    padding_byte: u8,
    /// An RFC 3489 message: no cookie, so nothing XORed with it, and no
    /// RFC 8489 integrity or fingerprint.
    classic: bool,
}

impl<'b> MessageWriter<'b> {
    /// Starts a message with its 20-byte header.
    ///
    /// # Errors
    ///
    /// [`StunError::BufferTooSmall`] when `buf` is shorter than the header.
    pub fn new(
        buf: &'b mut [u8],
        message_type: MessageType,
        transaction_id: TransactionId,
    ) -> Result<MessageWriter<'b>, StunError> {
        if buf.len() < HEADER_BYTES {
            return Err(StunError::BufferTooSmall {
                needed_bytes: HEADER_BYTES,
                available_bytes: buf.len(),
            });
        }
        buf[..2].copy_from_slice(&message_type.to_u16().to_be_bytes());
        buf[2..4].copy_from_slice(&[0, 0]);
        buf[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf[8..HEADER_BYTES].copy_from_slice(&transaction_id.0);
        Ok(MessageWriter {
            buf,
            len: HEADER_BYTES,
            transaction_id,
            closed: Closed::Open,
            padding_byte: 0,
            classic: false,
        })
    }

    /// Starts an RFC 3489 ("classic") message: the 16-byte transaction id
    /// fills the cookie's place. Such a writer refuses XOR-MAPPED-ADDRESS,
    /// MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT, which RFC 3489 clients
    /// cannot check; see [`super::encode_classic_binding_success`].
    ///
    /// # Errors
    ///
    /// [`StunError::BufferTooSmall`] when `buf` is shorter than the header.
    pub fn new_classic(
        buf: &'b mut [u8],
        message_type: MessageType,
        transaction_id: ClassicTransactionId,
    ) -> Result<MessageWriter<'b>, StunError> {
        let mut tail = TransactionId::default();
        tail.0.copy_from_slice(&transaction_id.0[4..]);
        let mut writer = MessageWriter::new(buf, message_type, tail)?;
        writer.buf[4..HEADER_BYTES].copy_from_slice(&transaction_id.0);
        writer.classic = true;
        Ok(writer)
    }

    /// Refuses, in a classic message, the attributes that need the cookie.
    fn check_not_classic(&self, attr_type: AttrType) -> Result<(), StunError> {
        if self.classic {
            return Err(StunError::BadEncodeValue {
                attr_type: attr_type.0,
                what: "an RFC 3489 message cannot carry it",
            });
        }
        Ok(())
    }

    /// Adds a text value padded with spaces to a multiple of 4 bytes inside
    /// its length, as RFC 3489 wants every attribute (its parsers skip a
    /// value by its length alone, so zero padding outside it would be read
    /// as the next attribute).
    pub(crate) fn add_text_space_padded(
        &mut self,
        attr_type: AttrType,
        text: &str,
    ) -> Result<(), StunError> {
        if text.len() > TEXT_BYTES_MAX {
            return Err(StunError::BadEncodeValue {
                attr_type: attr_type.0,
                what: "text longer than RFC 8489 allows",
            });
        }
        let padded_bytes = (text.len() + 3) & !3;
        let value = self.reserve(attr_type, padded_bytes)?;
        value[..text.len()].copy_from_slice(text.as_bytes());
        value[text.len()..].fill(b' ');
        Ok(())
    }

    /// Sets the byte used to pad values to 4 bytes. RFC 8489 asks senders
    /// for zeros; the RFC 5769 vectors use spaces, and reproducing them
    /// byte for byte is the only reason to change it.
    #[cfg(test)]
    pub(crate) fn set_padding_byte(&mut self, padding_byte: u8) {
        self.padding_byte = padding_byte;
    }

    /// Bytes written so far, header included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a message always has its header.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Ends the message and returns its length in bytes.
    #[must_use]
    pub fn finish(self) -> usize {
        self.len
    }

    /// Refuses attributes RFC 8489 does not allow at this point.
    fn check_order(&self, attr_type: AttrType) -> Result<(), StunError> {
        let refused = |after| {
            Err(StunError::AttributeOrder {
                attr_type: attr_type.0,
                after,
            })
        };
        match self.closed {
            Closed::Open => Ok(()),
            Closed::Fingerprint => refused("FINGERPRINT"),
            Closed::IntegritySha256 if attr_type != AttrType::FINGERPRINT => {
                refused("MESSAGE-INTEGRITY-SHA256")
            }
            Closed::Integrity
                if attr_type != AttrType::FINGERPRINT
                    && attr_type != AttrType::MESSAGE_INTEGRITY_SHA256 =>
            {
                refused("MESSAGE-INTEGRITY")
            }
            _ => Ok(()),
        }
    }

    /// Writes an attribute header and padding, updates the message length,
    /// and returns the value's bytes for the caller to fill.
    fn reserve(&mut self, attr_type: AttrType, value_bytes: usize) -> Result<&mut [u8], StunError> {
        self.check_order(attr_type)?;
        let value_len = u16::try_from(value_bytes).map_err(|_| StunError::BadEncodeValue {
            attr_type: attr_type.0,
            what: "value longer than 65535 bytes",
        })?;
        let padded_bytes = (value_bytes + 3) & !3;
        let end = self.len + 4 + padded_bytes;
        if end - HEADER_BYTES > LENGTH_FIELD_MAX {
            return Err(StunError::BadEncodeValue {
                attr_type: attr_type.0,
                what: "message would be longer than the 16-bit length allows",
            });
        }
        if end > self.buf.len() {
            return Err(StunError::BufferTooSmall {
                needed_bytes: end,
                available_bytes: self.buf.len(),
            });
        }
        let start = self.len;
        self.buf[start..start + 2].copy_from_slice(&attr_type.0.to_be_bytes());
        self.buf[start + 2..start + 4].copy_from_slice(&value_len.to_be_bytes());
        self.buf[start + 4 + value_bytes..end].fill(self.padding_byte);
        // The length was checked against the 16-bit limit above.
        let length = u16::try_from(end - HEADER_BYTES).unwrap_or(u16::MAX);
        self.buf[2..4].copy_from_slice(&length.to_be_bytes());
        self.len = end;
        self.closed = match attr_type {
            AttrType::MESSAGE_INTEGRITY => Closed::Integrity,
            AttrType::MESSAGE_INTEGRITY_SHA256 => Closed::IntegritySha256,
            AttrType::FINGERPRINT => Closed::Fingerprint,
            _ => self.closed,
        };
        Ok(&mut self.buf[start + 4..start + 4 + value_bytes])
    }

    /// Adds an attribute with a value given as bytes.
    ///
    /// # Errors
    ///
    /// [`StunError::BufferTooSmall`], [`StunError::AttributeOrder`], or
    /// [`StunError::BadEncodeValue`] when the message would grow past the
    /// 16-bit length.
    pub fn add_raw(&mut self, attr_type: AttrType, value: &[u8]) -> Result<(), StunError> {
        self.reserve(attr_type, value.len())?.copy_from_slice(value);
        Ok(())
    }

    /// Adds a MAPPED-ADDRESS-shaped attribute (MAPPED-ADDRESS,
    /// ALTERNATE-SERVER, RESPONSE-ORIGIN, OTHER-ADDRESS).
    ///
    /// # Errors
    ///
    /// As [`MessageWriter::add_raw`].
    pub fn add_address(
        &mut self,
        attr_type: AttrType,
        address: SocketAddr,
    ) -> Result<(), StunError> {
        let transaction_id = self.transaction_id;
        let value = self.reserve(attr_type, address_value_len(address))?;
        encode_address(value, address, &transaction_id, false);
        Ok(())
    }

    /// Adds an XOR-MAPPED-ADDRESS.
    ///
    /// # Errors
    ///
    /// As [`MessageWriter::add_raw`].
    pub fn add_xor_mapped_address(&mut self, address: SocketAddr) -> Result<(), StunError> {
        self.check_not_classic(AttrType::XOR_MAPPED_ADDRESS)?;
        let transaction_id = self.transaction_id;
        let value = self.reserve(AttrType::XOR_MAPPED_ADDRESS, address_value_len(address))?;
        encode_address(value, address, &transaction_id, true);
        Ok(())
    }

    /// Adds a text attribute (USERNAME, SOFTWARE, REALM, NONCE) after
    /// checking RFC 8489's length limit for it.
    ///
    /// # Errors
    ///
    /// [`StunError::BadEncodeValue`] when the text is too long, or as
    /// [`MessageWriter::add_raw`].
    pub fn add_text(&mut self, attr_type: AttrType, text: &str) -> Result<(), StunError> {
        let limit = if attr_type == AttrType::USERNAME {
            USERNAME_BYTES_MAX
        } else {
            TEXT_BYTES_MAX
        };
        if text.len() > limit {
            return Err(StunError::BadEncodeValue {
                attr_type: attr_type.0,
                what: "text longer than RFC 8489 allows",
            });
        }
        self.add_raw(attr_type, text.as_bytes())
    }

    /// Adds an ERROR-CODE with a code from 300 to 699 and a reason phrase.
    ///
    /// # Errors
    ///
    /// [`StunError::BadEncodeValue`] for a code out of range or a reason
    /// longer than 763 bytes, or as [`MessageWriter::add_raw`].
    pub fn add_error_code(&mut self, code: u16, reason: &str) -> Result<(), StunError> {
        let bad = |what| StunError::BadEncodeValue {
            attr_type: AttrType::ERROR_CODE.0,
            what,
        };
        if !(300..=699).contains(&code) {
            return Err(bad("error code outside 300..=699"));
        }
        if reason.len() > TEXT_BYTES_MAX {
            return Err(bad("reason phrase longer than 763 bytes"));
        }
        let value = self.reserve(AttrType::ERROR_CODE, 4 + reason.len())?;
        // Both fit a byte: the class is 3..=6 and the number 0..=99.
        value[..4].copy_from_slice(&[0, 0, (code / 100) as u8, (code % 100) as u8]);
        value[4..].copy_from_slice(reason.as_bytes());
        Ok(())
    }

    /// Adds an UNKNOWN-ATTRIBUTES listing `types`.
    ///
    /// # Errors
    ///
    /// As [`MessageWriter::add_raw`].
    pub fn add_unknown_attributes(
        &mut self,
        types: impl ExactSizeIterator<Item = AttrType>,
    ) -> Result<(), StunError> {
        let value = self.reserve(AttrType::UNKNOWN_ATTRIBUTES, types.len() * 2)?;
        for (pair, attr_type) in value.chunks_exact_mut(2).zip(types) {
            pair.copy_from_slice(&attr_type.0.to_be_bytes());
        }
        Ok(())
    }

    /// Adds a CHANGE-REQUEST (RFC 5780).
    ///
    /// # Errors
    ///
    /// As [`MessageWriter::add_raw`].
    pub fn add_change_request(&mut self, flags: ChangeRequest) -> Result<(), StunError> {
        self.add_raw(AttrType::CHANGE_REQUEST, &flags.to_u32().to_be_bytes())
    }

    /// Adds a RESPONSE-PORT (RFC 5780), written with a value length of 4
    /// (port, then two zero bytes) as coturn does; parsers reading the
    /// first two bytes of the value accept it.
    ///
    /// # Errors
    ///
    /// As [`MessageWriter::add_raw`].
    pub fn add_response_port(&mut self, port: u16) -> Result<(), StunError> {
        let [high, low] = port.to_be_bytes();
        self.add_raw(AttrType::RESPONSE_PORT, &[high, low, 0, 0])
    }

    /// Adds a PADDING (RFC 5780) of `padding_bytes` zero bytes.
    ///
    /// # Errors
    ///
    /// As [`MessageWriter::add_raw`].
    pub fn add_padding(&mut self, padding_bytes: usize) -> Result<(), StunError> {
        self.reserve(AttrType::PADDING, padding_bytes)?.fill(0);
        Ok(())
    }

    /// Adds MESSAGE-INTEGRITY, the HMAC-SHA1 with `key` of everything
    /// written so far (RFC 8489 §14.5). After it only
    /// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT may be added.
    ///
    /// # Errors
    ///
    /// As [`MessageWriter::add_raw`].
    pub fn add_message_integrity(&mut self, key: &[u8]) -> Result<(), StunError> {
        self.check_not_classic(AttrType::MESSAGE_INTEGRITY)?;
        let start = self.len;
        self.reserve(AttrType::MESSAGE_INTEGRITY, INTEGRITY_BYTES)?;
        // The header length already covers the attribute, as §14.5 asks.
        let mut mac = new_hmac::<Hmac<Sha1>>(key);
        mac.update(&self.buf[..start]);
        let tag = mac.finalize().into_bytes();
        self.buf[start + 4..start + 4 + INTEGRITY_BYTES].copy_from_slice(&tag);
        Ok(())
    }

    /// Adds MESSAGE-INTEGRITY-SHA256 with the whole 32-byte HMAC-SHA256
    /// (RFC 8489 §14.6). After it only FINGERPRINT may be added.
    ///
    /// # Errors
    ///
    /// As [`MessageWriter::add_raw`].
    pub fn add_message_integrity_sha256(&mut self, key: &[u8]) -> Result<(), StunError> {
        self.check_not_classic(AttrType::MESSAGE_INTEGRITY_SHA256)?;
        let start = self.len;
        self.reserve(
            AttrType::MESSAGE_INTEGRITY_SHA256,
            INTEGRITY_SHA256_BYTES_MAX,
        )?;
        let mut mac = new_hmac::<Hmac<Sha256>>(key);
        mac.update(&self.buf[..start]);
        let tag = mac.finalize().into_bytes();
        self.buf[start + 4..start + 4 + INTEGRITY_SHA256_BYTES_MAX].copy_from_slice(&tag);
        Ok(())
    }

    /// Adds FINGERPRINT, which must be last (RFC 8489 §14.7).
    ///
    /// # Errors
    ///
    /// As [`MessageWriter::add_raw`].
    pub fn add_fingerprint(&mut self) -> Result<(), StunError> {
        self.check_not_classic(AttrType::FINGERPRINT)?;
        let start = self.len;
        self.reserve(AttrType::FINGERPRINT, 4)?;
        let value = fingerprint(self.buf, start);
        self.buf[start + 4..start + 8].copy_from_slice(&value.to_be_bytes());
        Ok(())
    }

    /// Adds a decoded attribute back as it was. Integrity and fingerprint
    /// values are copied, not recomputed: use the `add_message_integrity*`
    /// and [`MessageWriter::add_fingerprint`] methods to compute them.
    ///
    /// # Errors
    ///
    /// As the method used for its type.
    pub fn add_attribute(&mut self, attribute: &Attribute<'_>) -> Result<(), StunError> {
        let attr_type = attribute.attr_type();
        match *attribute {
            Attribute::MappedAddress(address)
            | Attribute::AlternateServer(address)
            | Attribute::ResponseOrigin(address)
            | Attribute::OtherAddress(address) => self.add_address(attr_type, address),
            Attribute::XorMappedAddress(address) => self.add_xor_mapped_address(address),
            Attribute::Username(text)
            | Attribute::Software(text)
            | Attribute::Realm(text)
            | Attribute::Nonce(text) => self.add_text(attr_type, text),
            Attribute::MessageIntegrity(value)
            | Attribute::MessageIntegritySha256(value)
            | Attribute::Padding(value)
            | Attribute::Other { value, .. } => self.add_raw(attr_type, value),
            Attribute::Fingerprint(value) | Attribute::Priority(value) => {
                self.add_raw(attr_type, &value.to_be_bytes())
            }
            Attribute::ErrorCode(ErrorCode { code, reason }) => self.add_error_code(code, reason),
            Attribute::UnknownAttributes(list) => self.add_unknown_attributes(list.iter()),
            Attribute::ChangeRequest(flags) => self.add_change_request(flags),
            Attribute::ResponsePort(port) => self.add_response_port(port),
            Attribute::UseCandidate => self.add_raw(attr_type, &[]),
            Attribute::IceControlled(value) | Attribute::IceControlling(value) => {
                self.add_raw(attr_type, &value.to_be_bytes())
            }
        }
    }
}

/// What a Binding success response carries, for [`encode_binding_success`].
#[derive(Debug, Clone, Copy)]
pub struct BindingSuccess<'a> {
    /// The request's transaction id.
    pub transaction_id: TransactionId,
    /// The request's source, sent back as XOR-MAPPED-ADDRESS.
    pub xor_mapped_address: SocketAddr,
    /// Also send MAPPED-ADDRESS, for RFC 3489 clients.
    pub mapped_address: Option<SocketAddr>,
    /// RESPONSE-ORIGIN (RFC 5780): the address the response is sent from.
    pub response_origin: Option<SocketAddr>,
    /// OTHER-ADDRESS (RFC 5780): the server's alternate address and port.
    pub other_address: Option<SocketAddr>,
    /// SOFTWARE.
    pub software: Option<&'a str>,
    /// Key for MESSAGE-INTEGRITY, when the request was authenticated.
    pub integrity_key: Option<&'a [u8]>,
    /// Add FINGERPRINT (when the request had one).
    pub fingerprint: bool,
}

impl BindingSuccess<'_> {
    /// The bare answer: XOR-MAPPED-ADDRESS and nothing else.
    #[must_use]
    pub fn new(transaction_id: TransactionId, xor_mapped_address: SocketAddr) -> Self {
        BindingSuccess {
            transaction_id,
            xor_mapped_address,
            mapped_address: None,
            response_origin: None,
            other_address: None,
            software: None,
            integrity_key: None,
            fingerprint: false,
        }
    }
}

/// Encodes a Binding success response into `out` and returns its length.
/// Attributes go in the order RFC 8489 needs: addresses and SOFTWARE, then
/// MESSAGE-INTEGRITY, then FINGERPRINT.
///
/// # Errors
///
/// [`StunError::BufferTooSmall`] or [`StunError::BadEncodeValue`].
pub fn encode_binding_success(
    out: &mut [u8],
    response: &BindingSuccess<'_>,
) -> Result<usize, StunError> {
    let mut writer =
        MessageWriter::new(out, MessageType::BINDING_SUCCESS, response.transaction_id)?;
    writer.add_xor_mapped_address(response.xor_mapped_address)?;
    if let Some(address) = response.mapped_address {
        writer.add_address(AttrType::MAPPED_ADDRESS, address)?;
    }
    if let Some(address) = response.response_origin {
        writer.add_address(AttrType::RESPONSE_ORIGIN, address)?;
    }
    if let Some(address) = response.other_address {
        writer.add_address(AttrType::OTHER_ADDRESS, address)?;
    }
    if let Some(software) = response.software {
        writer.add_text(AttrType::SOFTWARE, software)?;
    }
    if let Some(key) = response.integrity_key {
        writer.add_message_integrity(key)?;
    }
    if response.fingerprint {
        writer.add_fingerprint()?;
    }
    Ok(writer.finish())
}

/// What an error response carries, for [`encode_error_response`].
#[derive(Debug, Clone, Copy)]
pub struct ErrorResponse<'a> {
    /// The request's method.
    pub method: Method,
    /// The request's transaction id.
    pub transaction_id: TransactionId,
    /// The error code, 300..=699.
    pub code: u16,
    /// The reason phrase.
    pub reason: &'a str,
    /// Types for UNKNOWN-ATTRIBUTES; the attribute is added only when the
    /// list is not empty (it belongs to 420 responses).
    pub unknown_attributes: &'a [AttrType],
    /// SOFTWARE.
    pub software: Option<&'a str>,
    /// Key for MESSAGE-INTEGRITY, when the request was authenticated.
    pub integrity_key: Option<&'a [u8]>,
    /// Add FINGERPRINT (when the request had one).
    pub fingerprint: bool,
}

/// Encodes an error response into `out` and returns its length.
///
/// # Errors
///
/// [`StunError::BufferTooSmall`] or [`StunError::BadEncodeValue`].
pub fn encode_error_response(
    out: &mut [u8],
    response: &ErrorResponse<'_>,
) -> Result<usize, StunError> {
    let message_type = MessageType {
        method: response.method,
        class: Class::ErrorResponse,
    };
    let mut writer = MessageWriter::new(out, message_type, response.transaction_id)?;
    writer.add_error_code(response.code, response.reason)?;
    if !response.unknown_attributes.is_empty() {
        writer.add_unknown_attributes(response.unknown_attributes.iter().copied())?;
    }
    if let Some(software) = response.software {
        writer.add_text(AttrType::SOFTWARE, software)?;
    }
    if let Some(key) = response.integrity_key {
        writer.add_message_integrity(key)?;
    }
    if response.fingerprint {
        writer.add_fingerprint()?;
    }
    Ok(writer.finish())
}

/// What a client's Binding request carries, for [`encode_binding_request`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BindingRequest<'a> {
    /// A fresh random transaction id.
    pub transaction_id: TransactionId,
    /// CHANGE-REQUEST (RFC 5780).
    pub change_request: Option<ChangeRequest>,
    /// RESPONSE-PORT (RFC 5780).
    pub response_port: Option<u16>,
    /// PADDING (RFC 5780) of this many bytes.
    pub padding_bytes: Option<usize>,
    /// USERNAME, for short-term credentials.
    pub username: Option<&'a str>,
    /// SOFTWARE.
    pub software: Option<&'a str>,
    /// Key for MESSAGE-INTEGRITY (the short-term password).
    pub integrity_key: Option<&'a [u8]>,
    /// Add FINGERPRINT.
    pub fingerprint: bool,
}

/// Encodes a Binding request into `out` and returns its length.
///
/// # Errors
///
/// [`StunError::BufferTooSmall`] or [`StunError::BadEncodeValue`].
pub fn encode_binding_request(
    out: &mut [u8],
    request: &BindingRequest<'_>,
) -> Result<usize, StunError> {
    let mut writer = MessageWriter::new(out, MessageType::BINDING_REQUEST, request.transaction_id)?;
    if let Some(username) = request.username {
        writer.add_text(AttrType::USERNAME, username)?;
    }
    if let Some(flags) = request.change_request {
        writer.add_change_request(flags)?;
    }
    if let Some(port) = request.response_port {
        writer.add_response_port(port)?;
    }
    if let Some(software) = request.software {
        writer.add_text(AttrType::SOFTWARE, software)?;
    }
    if let Some(padding_bytes) = request.padding_bytes {
        writer.add_padding(padding_bytes)?;
    }
    if let Some(key) = request.integrity_key {
        writer.add_message_integrity(key)?;
    }
    if request.fingerprint {
        writer.add_fingerprint()?;
    }
    Ok(writer.finish())
}

#[cfg(test)]
mod tests {
    use super::super::message::StunMessage;
    use super::*;

    const TID: TransactionId = TransactionId([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);

    #[test]
    fn bare_success_is_32_bytes_for_ipv4_and_44_for_ipv6() {
        let mut out = [0u8; 64];
        let v4 = BindingSuccess::new(TID, "198.51.100.7:4000".parse().unwrap());
        assert_eq!(encode_binding_success(&mut out, &v4), Ok(32));
        let message = StunMessage::parse(&out[..32]).unwrap();
        assert_eq!(message.xor_mapped_address(), Some(v4.xor_mapped_address));
        let v6 = BindingSuccess::new(TID, "[2001:db8::7]:4000".parse().unwrap());
        assert_eq!(encode_binding_success(&mut out, &v6), Ok(44));
    }

    #[test]
    fn full_success_verifies_and_carries_everything() {
        let mut out = [0u8; 256];
        let response = BindingSuccess {
            mapped_address: Some("198.51.100.7:4000".parse().unwrap()),
            response_origin: Some("192.0.2.1:3478".parse().unwrap()),
            other_address: Some("192.0.2.2:3479".parse().unwrap()),
            software: Some("switchboard"),
            integrity_key: Some(b"secret"),
            fingerprint: true,
            ..BindingSuccess::new(TID, "198.51.100.7:4000".parse().unwrap())
        };
        let len = encode_binding_success(&mut out, &response).unwrap();
        let message = StunMessage::parse(&out[..len]).unwrap();
        assert_eq!(message.mapped_address(), response.mapped_address);
        assert_eq!(message.response_origin(), response.response_origin);
        assert_eq!(message.other_address(), response.other_address);
        assert_eq!(
            message.get(AttrType::SOFTWARE),
            Some(Attribute::Software("switchboard"))
        );
        message.verify_integrity(b"secret").unwrap();
        message.verify_fingerprint().unwrap();
    }

    #[test]
    fn error_response_lists_unknown_attributes() {
        let mut out = [0u8; 128];
        let unknown = [AttrType(0x0002), AttrType(0x7fff), AttrType(0x0033)];
        let len = encode_error_response(
            &mut out,
            &ErrorResponse {
                method: Method::BINDING,
                transaction_id: TID,
                code: 420,
                reason: "Unknown Attribute",
                unknown_attributes: &unknown,
                software: None,
                integrity_key: None,
                fingerprint: true,
            },
        )
        .unwrap();
        let message = StunMessage::parse(&out[..len]).unwrap();
        assert_eq!(message.class(), Class::ErrorResponse);
        assert_eq!(
            message.error_code(),
            Some(ErrorCode {
                code: 420,
                reason: "Unknown Attribute"
            })
        );
        let Some(Attribute::UnknownAttributes(list)) = message.get(AttrType::UNKNOWN_ATTRIBUTES)
        else {
            panic!("no UNKNOWN-ATTRIBUTES");
        };
        assert_eq!(list.iter().collect::<Vec<_>>(), unknown);
        message.verify_fingerprint().unwrap();
    }

    #[test]
    fn binding_request_with_every_option_parses_back() {
        let mut out = [0u8; 256];
        let request = BindingRequest {
            transaction_id: TID,
            change_request: Some(ChangeRequest {
                change_ip: true,
                change_port: false,
            }),
            response_port: Some(5000),
            padding_bytes: Some(13),
            username: Some("user:peer"),
            software: Some("nat-check"),
            integrity_key: Some(b"pw"),
            fingerprint: true,
        };
        let len = encode_binding_request(&mut out, &request).unwrap();
        let message = StunMessage::parse(&out[..len]).unwrap();
        assert_eq!(message.message_type(), MessageType::BINDING_REQUEST);
        assert_eq!(message.change_request(), request.change_request);
        assert_eq!(message.response_port(), Some(5000));
        assert_eq!(message.username(), Some("user:peer"));
        assert_eq!(
            message.get(AttrType::PADDING),
            Some(Attribute::Padding(&[0; 13]))
        );
        message.verify_integrity(b"pw").unwrap();
        message.verify_fingerprint().unwrap();
        // A bare request is the 20-byte header.
        let bare = BindingRequest {
            transaction_id: TID,
            ..BindingRequest::default()
        };
        assert_eq!(encode_binding_request(&mut out, &bare), Ok(20));
    }

    #[test]
    fn sha256_integrity_verifies_and_sha1_follows_order_rules() {
        let mut out = [0u8; 128];
        let mut writer = MessageWriter::new(&mut out, MessageType::BINDING_REQUEST, TID).unwrap();
        writer.add_text(AttrType::USERNAME, "u").unwrap();
        writer.add_message_integrity(b"k").unwrap();
        writer.add_message_integrity_sha256(b"k").unwrap();
        assert_eq!(
            writer.add_text(AttrType::SOFTWARE, "late"),
            Err(StunError::AttributeOrder {
                attr_type: 0x8022,
                after: "MESSAGE-INTEGRITY-SHA256"
            })
        );
        writer.add_fingerprint().unwrap();
        assert!(matches!(
            writer.add_fingerprint(),
            Err(StunError::AttributeOrder { .. })
        ));
        let len = writer.finish();
        let message = StunMessage::parse(&out[..len]).unwrap();
        message.verify_integrity(b"k").unwrap();
        message.verify_integrity_sha256(b"k").unwrap();
        assert!(message.verify_integrity_sha256(b"x").is_err());
        message.verify_fingerprint().unwrap();
    }

    #[test]
    fn small_buffers_and_bad_values_are_refused() {
        let mut tiny = [0u8; 19];
        assert!(matches!(
            MessageWriter::new(&mut tiny, MessageType::BINDING_REQUEST, TID),
            Err(StunError::BufferTooSmall {
                needed_bytes: 20,
                ..
            })
        ));
        let mut out = [0u8; 28];
        let response = BindingSuccess::new(TID, "198.51.100.7:4000".parse().unwrap());
        assert_eq!(
            encode_binding_success(&mut out, &response),
            Err(StunError::BufferTooSmall {
                needed_bytes: 32,
                available_bytes: 28
            })
        );
        let mut out = [0u8; 64];
        let mut writer = MessageWriter::new(&mut out, MessageType::BINDING_REQUEST, TID).unwrap();
        assert!(writer.add_error_code(200, "").is_err());
        assert!(writer.add_error_code(700, "").is_err());
        let long = "x".repeat(USERNAME_BYTES_MAX + 1);
        assert!(writer.add_text(AttrType::USERNAME, &long).is_err());
    }
}
