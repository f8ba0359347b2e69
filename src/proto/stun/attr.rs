//! STUN attribute types and typed, borrowed attribute values.
//!
//! [`Attribute::decode`] turns one raw TLV into a typed value without copying
//! its bytes; the encoder in [`super::encode`] writes the same values back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::error::StunError;
use super::message::TransactionId;
use super::MAGIC_COOKIE;

/// A STUN attribute type (the 16-bit T of the TLV).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrType(pub u16);

impl AttrType {
    /// MAPPED-ADDRESS (RFC 8489 §14.1), kept for RFC 3489 clients.
    pub const MAPPED_ADDRESS: AttrType = AttrType(0x0001);
    /// CHANGE-REQUEST (RFC 5780 §7.2).
    pub const CHANGE_REQUEST: AttrType = AttrType(0x0003);
    /// USERNAME (RFC 8489 §14.3).
    pub const USERNAME: AttrType = AttrType(0x0006);
    /// MESSAGE-INTEGRITY, HMAC-SHA1 (RFC 8489 §14.5).
    pub const MESSAGE_INTEGRITY: AttrType = AttrType(0x0008);
    /// ERROR-CODE (RFC 8489 §14.8).
    pub const ERROR_CODE: AttrType = AttrType(0x0009);
    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.9).
    pub const UNKNOWN_ATTRIBUTES: AttrType = AttrType(0x000A);
    /// REALM (RFC 8489 §14.9).
    pub const REALM: AttrType = AttrType(0x0014);
    /// NONCE (RFC 8489 §14.10).
    pub const NONCE: AttrType = AttrType(0x0015);
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6).
    pub const MESSAGE_INTEGRITY_SHA256: AttrType = AttrType(0x001C);
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
    pub const XOR_MAPPED_ADDRESS: AttrType = AttrType(0x0020);
    /// PRIORITY (RFC 8445 §16.1), known so ICE checks do not get a 420.
    pub const PRIORITY: AttrType = AttrType(0x0024);
    /// USE-CANDIDATE (RFC 8445 §16.1), known so ICE checks do not get a 420.
    pub const USE_CANDIDATE: AttrType = AttrType(0x0025);
    /// PADDING (RFC 5780 §7.6).
    pub const PADDING: AttrType = AttrType(0x0026);
    /// RESPONSE-PORT (RFC 5780 §7.5).
    pub const RESPONSE_PORT: AttrType = AttrType(0x0027);
    /// SOFTWARE (RFC 8489 §14.14).
    pub const SOFTWARE: AttrType = AttrType(0x8022);
    /// ALTERNATE-SERVER (RFC 8489 §14.15).
    pub const ALTERNATE_SERVER: AttrType = AttrType(0x8023);
    /// FINGERPRINT (RFC 8489 §14.7).
    pub const FINGERPRINT: AttrType = AttrType(0x8028);
    /// ICE-CONTROLLED (RFC 8445 §16.1).
    pub const ICE_CONTROLLED: AttrType = AttrType(0x8029);
    /// ICE-CONTROLLING (RFC 8445 §16.1).
    pub const ICE_CONTROLLING: AttrType = AttrType(0x802A);
    /// RESPONSE-ORIGIN (RFC 5780 §7.3).
    pub const RESPONSE_ORIGIN: AttrType = AttrType(0x802B);
    /// OTHER-ADDRESS (RFC 5780 §7.4).
    pub const OTHER_ADDRESS: AttrType = AttrType(0x802C);
    /// RESPONSE-ADDRESS (RFC 3489 §11.2.2): "answer to this address
    /// instead". Only RFC 3489 messages use it, and the responder never
    /// honours it, since it would turn the server into a reflector.
    pub const RESPONSE_ADDRESS: AttrType = AttrType(0x0002);
    /// SOURCE-ADDRESS (RFC 3489 §11.2.5): where a classic answer was sent
    /// from. RFC 8489 messages treat it as unknown.
    pub const SOURCE_ADDRESS: AttrType = AttrType(0x0004);
    /// CHANGED-ADDRESS (RFC 3489 §11.2.3): where a classic answer would come
    /// from with "change IP" and "change port". RFC 8489 messages treat it
    /// as unknown.
    pub const CHANGED_ADDRESS: AttrType = AttrType(0x0005);
    /// PASSWORD (RFC 3489 §11.2.7), of classic Shared Secret responses.
    pub const PASSWORD: AttrType = AttrType(0x0007);
    /// REFLECTED-FROM (RFC 3489 §11.2.11), of answers sent to a
    /// RESPONSE-ADDRESS.
    pub const REFLECTED_FROM: AttrType = AttrType(0x000B);

    /// Types below 0x8000 must be understood by the receiver (RFC 8489 §15):
    /// a request carrying one the server does not know gets a 420.
    #[must_use]
    pub fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }

    /// True for the types this codec decodes into a typed [`Attribute`].
    #[must_use]
    pub fn is_known(self) -> bool {
        matches!(
            self,
            AttrType::MAPPED_ADDRESS
                | AttrType::CHANGE_REQUEST
                | AttrType::USERNAME
                | AttrType::MESSAGE_INTEGRITY
                | AttrType::ERROR_CODE
                | AttrType::UNKNOWN_ATTRIBUTES
                | AttrType::REALM
                | AttrType::NONCE
                | AttrType::MESSAGE_INTEGRITY_SHA256
                | AttrType::XOR_MAPPED_ADDRESS
                | AttrType::PRIORITY
                | AttrType::USE_CANDIDATE
                | AttrType::PADDING
                | AttrType::RESPONSE_PORT
                | AttrType::SOFTWARE
                | AttrType::ALTERNATE_SERVER
                | AttrType::FINGERPRINT
                | AttrType::ICE_CONTROLLED
                | AttrType::ICE_CONTROLLING
                | AttrType::RESPONSE_ORIGIN
                | AttrType::OTHER_ADDRESS
        )
    }
}

/// Longest USERNAME value in bytes (RFC 8489 §14.3: "less than 513 bytes").
pub const USERNAME_BYTES_MAX: usize = 512;
/// Longest REALM, NONCE, SOFTWARE or reason phrase value in bytes. RFC 8489
/// counts the limit as 763 bytes for all four (§14.9, §14.10, §14.14, §14.8).
pub const TEXT_BYTES_MAX: usize = 763;
/// Length of a MESSAGE-INTEGRITY value (an HMAC-SHA1).
pub const INTEGRITY_BYTES: usize = 20;
/// Shortest MESSAGE-INTEGRITY-SHA256 value RFC 8489 §14.6 allows.
pub const INTEGRITY_SHA256_BYTES_MIN: usize = 16;
/// Longest MESSAGE-INTEGRITY-SHA256 value (a whole HMAC-SHA256).
pub const INTEGRITY_SHA256_BYTES_MAX: usize = 32;
/// XOR constant of FINGERPRINT (RFC 8489 §14.7): "STUN" in ASCII.
pub const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// The flags of a CHANGE-REQUEST attribute (RFC 5780 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeRequest {
    /// "Change IP": answer from the alternate address.
    pub change_ip: bool,
    /// "Change port": answer from the alternate port.
    pub change_port: bool,
}

impl ChangeRequest {
    const CHANGE_IP_FLAG: u32 = 0x4;
    const CHANGE_PORT_FLAG: u32 = 0x2;

    /// The attribute's 32-bit value.
    #[must_use]
    pub fn to_u32(self) -> u32 {
        let mut flags = 0;
        if self.change_ip {
            flags |= Self::CHANGE_IP_FLAG;
        }
        if self.change_port {
            flags |= Self::CHANGE_PORT_FLAG;
        }
        flags
    }

    /// Reads the flags; other bits are ignored as RFC 5780 asks of servers.
    #[must_use]
    pub fn from_u32(flags: u32) -> ChangeRequest {
        ChangeRequest {
            change_ip: flags & Self::CHANGE_IP_FLAG != 0,
            change_port: flags & Self::CHANGE_PORT_FLAG != 0,
        }
    }
}

/// An ERROR-CODE value: a code from 300 to 699 and a reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode<'a> {
    /// The error code, class × 100 + number, 300..=699.
    pub code: u16,
    /// The UTF-8 reason phrase, borrowed from the packet.
    pub reason: &'a str,
}

/// The list in an UNKNOWN-ATTRIBUTES value, borrowed from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownAttributes<'a> {
    bytes: &'a [u8],
}

impl<'a> UnknownAttributes<'a> {
    /// Wraps a value; its length must be even (checked by decoding).
    fn new(bytes: &'a [u8]) -> Self {
        debug_assert!(bytes.len().is_multiple_of(2));
        UnknownAttributes { bytes }
    }

    /// The listed attribute types, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = AttrType> + 'a {
        self.bytes
            .chunks_exact(2)
            .map(|pair| AttrType(u16::from_be_bytes([pair[0], pair[1]])))
    }

    /// How many types are listed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.bytes.len() / 2
    }

    /// True when the list is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// One decoded attribute, borrowing its bytes from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attribute<'a> {
    /// MAPPED-ADDRESS.
    MappedAddress(SocketAddr),
    /// XOR-MAPPED-ADDRESS, already un-XORed.
    XorMappedAddress(SocketAddr),
    /// USERNAME.
    Username(&'a str),
    /// MESSAGE-INTEGRITY: the 20-byte HMAC-SHA1.
    MessageIntegrity(&'a [u8]),
    /// MESSAGE-INTEGRITY-SHA256: 16 to 32 bytes of HMAC-SHA256.
    MessageIntegritySha256(&'a [u8]),
    /// FINGERPRINT: the CRC-32 XOR 0x5354554e as sent.
    Fingerprint(u32),
    /// ERROR-CODE.
    ErrorCode(ErrorCode<'a>),
    /// UNKNOWN-ATTRIBUTES.
    UnknownAttributes(UnknownAttributes<'a>),
    /// SOFTWARE.
    Software(&'a str),
    /// ALTERNATE-SERVER.
    AlternateServer(SocketAddr),
    /// REALM.
    Realm(&'a str),
    /// NONCE.
    Nonce(&'a str),
    /// CHANGE-REQUEST (RFC 5780).
    ChangeRequest(ChangeRequest),
    /// RESPONSE-ORIGIN (RFC 5780).
    ResponseOrigin(SocketAddr),
    /// OTHER-ADDRESS (RFC 5780).
    OtherAddress(SocketAddr),
    /// RESPONSE-PORT (RFC 5780).
    ResponsePort(u16),
    /// PADDING (RFC 5780): the padding bytes, whose content is meaningless.
    Padding(&'a [u8]),
    /// PRIORITY (ICE).
    Priority(u32),
    /// USE-CANDIDATE (ICE), which has no value.
    UseCandidate,
    /// ICE-CONTROLLED with its tie-breaker.
    IceControlled(u64),
    /// ICE-CONTROLLING with its tie-breaker.
    IceControlling(u64),
    /// Any other type, left undecoded.
    Other {
        /// The attribute type.
        attr_type: AttrType,
        /// The value, without padding.
        value: &'a [u8],
    },
}

impl<'a> Attribute<'a> {
    /// The attribute type this value is encoded as.
    #[must_use]
    pub fn attr_type(&self) -> AttrType {
        match self {
            Attribute::MappedAddress(_) => AttrType::MAPPED_ADDRESS,
            Attribute::XorMappedAddress(_) => AttrType::XOR_MAPPED_ADDRESS,
            Attribute::Username(_) => AttrType::USERNAME,
            Attribute::MessageIntegrity(_) => AttrType::MESSAGE_INTEGRITY,
            Attribute::MessageIntegritySha256(_) => AttrType::MESSAGE_INTEGRITY_SHA256,
            Attribute::Fingerprint(_) => AttrType::FINGERPRINT,
            Attribute::ErrorCode(_) => AttrType::ERROR_CODE,
            Attribute::UnknownAttributes(_) => AttrType::UNKNOWN_ATTRIBUTES,
            Attribute::Software(_) => AttrType::SOFTWARE,
            Attribute::AlternateServer(_) => AttrType::ALTERNATE_SERVER,
            Attribute::Realm(_) => AttrType::REALM,
            Attribute::Nonce(_) => AttrType::NONCE,
            Attribute::ChangeRequest(_) => AttrType::CHANGE_REQUEST,
            Attribute::ResponseOrigin(_) => AttrType::RESPONSE_ORIGIN,
            Attribute::OtherAddress(_) => AttrType::OTHER_ADDRESS,
            Attribute::ResponsePort(_) => AttrType::RESPONSE_PORT,
            Attribute::Padding(_) => AttrType::PADDING,
            Attribute::Priority(_) => AttrType::PRIORITY,
            Attribute::UseCandidate => AttrType::USE_CANDIDATE,
            Attribute::IceControlled(_) => AttrType::ICE_CONTROLLED,
            Attribute::IceControlling(_) => AttrType::ICE_CONTROLLING,
            Attribute::Other { attr_type, .. } => *attr_type,
        }
    }

    /// Decodes one attribute value. `offset` is where the attribute starts in
    /// the message and is only used to say where an error is.
    ///
    /// # Errors
    ///
    /// [`StunError::BadAttributeLength`] or [`StunError::BadAttributeValue`]
    /// when the value does not fit its type.
    pub fn decode(
        attr_type: AttrType,
        value: &'a [u8],
        transaction_id: &TransactionId,
        offset: usize,
    ) -> Result<Attribute<'a>, StunError> {
        let bad_length = || StunError::BadAttributeLength {
            attr_type: attr_type.0,
            offset,
            value_bytes: value.len(),
        };
        let bad_value = |what| StunError::BadAttributeValue {
            attr_type: attr_type.0,
            offset,
            what,
        };
        let text = |limit: usize| -> Result<&'a str, StunError> {
            if value.len() > limit {
                return Err(bad_length());
            }
            std::str::from_utf8(value).map_err(|_| bad_value("value is not UTF-8"))
        };
        let address = |xor: bool| decode_address(attr_type, value, transaction_id, offset, xor);
        let attribute = match attr_type {
            AttrType::MAPPED_ADDRESS => Attribute::MappedAddress(address(false)?),
            AttrType::XOR_MAPPED_ADDRESS => Attribute::XorMappedAddress(address(true)?),
            AttrType::ALTERNATE_SERVER => Attribute::AlternateServer(address(false)?),
            AttrType::RESPONSE_ORIGIN => Attribute::ResponseOrigin(address(false)?),
            AttrType::OTHER_ADDRESS => Attribute::OtherAddress(address(false)?),
            AttrType::USERNAME => Attribute::Username(text(USERNAME_BYTES_MAX)?),
            AttrType::SOFTWARE => Attribute::Software(text(TEXT_BYTES_MAX)?),
            AttrType::REALM => Attribute::Realm(text(TEXT_BYTES_MAX)?),
            AttrType::NONCE => Attribute::Nonce(text(TEXT_BYTES_MAX)?),
            AttrType::MESSAGE_INTEGRITY => {
                if value.len() != INTEGRITY_BYTES {
                    return Err(bad_length());
                }
                Attribute::MessageIntegrity(value)
            }
            AttrType::MESSAGE_INTEGRITY_SHA256 => {
                let length_ok = (INTEGRITY_SHA256_BYTES_MIN..=INTEGRITY_SHA256_BYTES_MAX)
                    .contains(&value.len())
                    && value.len().is_multiple_of(4);
                if !length_ok {
                    return Err(bad_length());
                }
                Attribute::MessageIntegritySha256(value)
            }
            AttrType::FINGERPRINT => Attribute::Fingerprint(be_u32(value).ok_or_else(bad_length)?),
            AttrType::ERROR_CODE => {
                if value.len() < 4 || value.len() > 4 + TEXT_BYTES_MAX {
                    return Err(bad_length());
                }
                let class = u16::from(value[2] & 0x07);
                let number = u16::from(value[3]);
                if !(3..=6).contains(&class) || number > 99 {
                    return Err(bad_value("error class must be 3..=6 and number 0..=99"));
                }
                let reason = std::str::from_utf8(&value[4..])
                    .map_err(|_| bad_value("reason phrase is not UTF-8"))?;
                Attribute::ErrorCode(ErrorCode {
                    code: class * 100 + number,
                    reason,
                })
            }
            AttrType::UNKNOWN_ATTRIBUTES => {
                if !value.len().is_multiple_of(2) {
                    return Err(bad_length());
                }
                Attribute::UnknownAttributes(UnknownAttributes::new(value))
            }
            AttrType::CHANGE_REQUEST => Attribute::ChangeRequest(ChangeRequest::from_u32(
                be_u32(value).ok_or_else(bad_length)?,
            )),
            AttrType::RESPONSE_PORT => {
                // RFC 5780 §7.5 draws a 16-bit port followed by 16 bits of
                // padding; implementations write the length as 2 or as 4, and
                // both give the same bytes on the wire, so both are accepted.
                if value.len() != 2 && value.len() != 4 {
                    return Err(bad_length());
                }
                Attribute::ResponsePort(u16::from_be_bytes([value[0], value[1]]))
            }
            AttrType::PADDING => Attribute::Padding(value),
            AttrType::PRIORITY => Attribute::Priority(be_u32(value).ok_or_else(bad_length)?),
            AttrType::USE_CANDIDATE => {
                if !value.is_empty() {
                    return Err(bad_length());
                }
                Attribute::UseCandidate
            }
            AttrType::ICE_CONTROLLED => {
                Attribute::IceControlled(be_u64(value).ok_or_else(bad_length)?)
            }
            AttrType::ICE_CONTROLLING => {
                Attribute::IceControlling(be_u64(value).ok_or_else(bad_length)?)
            }
            _ => Attribute::Other { attr_type, value },
        };
        Ok(attribute)
    }
}

/// Reads a value that must be exactly 4 bytes.
fn be_u32(value: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = value.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// Reads a value that must be exactly 8 bytes.
fn be_u64(value: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = value.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Address family of IPv4 in address attributes.
const FAMILY_IPV4: u8 = 0x01;
/// Address family of IPv6 in address attributes.
const FAMILY_IPV6: u8 = 0x02;
/// Value length of an IPv4 address attribute.
pub(crate) const ADDRESS_IPV4_BYTES: usize = 8;
/// Value length of an IPv6 address attribute.
pub(crate) const ADDRESS_IPV6_BYTES: usize = 20;

/// The 16 bytes an IPv6 address is XORed with: the cookie, then the
/// transaction id (RFC 8489 §14.2).
fn xor_key(transaction_id: &TransactionId) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    key[4..].copy_from_slice(&transaction_id.0);
    key
}

/// Decodes MAPPED-ADDRESS-shaped values, XORed or not.
pub(crate) fn decode_address(
    attr_type: AttrType,
    value: &[u8],
    transaction_id: &TransactionId,
    offset: usize,
    xor: bool,
) -> Result<SocketAddr, StunError> {
    let bad_length = StunError::BadAttributeLength {
        attr_type: attr_type.0,
        offset,
        value_bytes: value.len(),
    };
    if value.len() < 4 {
        return Err(bad_length);
    }
    let key = xor_key(transaction_id);
    let mut port = u16::from_be_bytes([value[2], value[3]]);
    if xor {
        port ^= u16::from_be_bytes([key[0], key[1]]);
    }
    let ip = match value[1] {
        FAMILY_IPV4 => {
            let bytes: [u8; 4] = value[4..].try_into().map_err(|_| bad_length)?;
            let mut ip = u32::from_be_bytes(bytes);
            if xor {
                ip ^= MAGIC_COOKIE;
            }
            IpAddr::V4(Ipv4Addr::from(ip))
        }
        FAMILY_IPV6 => {
            let mut bytes: [u8; 16] = value[4..].try_into().map_err(|_| bad_length)?;
            if xor {
                for (byte, k) in bytes.iter_mut().zip(key) {
                    *byte ^= k;
                }
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => {
            return Err(StunError::BadAttributeValue {
                attr_type: attr_type.0,
                offset,
                what: "address family is neither 0x01 (IPv4) nor 0x02 (IPv6)",
            })
        }
    };
    Ok(SocketAddr::new(ip, port))
}

/// Writes an address value into `out`, which must be exactly
/// [`address_value_len`] bytes long.
pub(crate) fn encode_address(
    out: &mut [u8],
    address: SocketAddr,
    transaction_id: &TransactionId,
    xor: bool,
) {
    debug_assert_eq!(out.len(), address_value_len(address));
    let key = xor_key(transaction_id);
    let mut port = address.port();
    if xor {
        port ^= u16::from_be_bytes([key[0], key[1]]);
    }
    out[0] = 0;
    out[2..4].copy_from_slice(&port.to_be_bytes());
    match address.ip() {
        IpAddr::V4(ip) => {
            out[1] = FAMILY_IPV4;
            let mut bits = u32::from(ip);
            if xor {
                bits ^= MAGIC_COOKIE;
            }
            out[4..8].copy_from_slice(&bits.to_be_bytes());
        }
        IpAddr::V6(ip) => {
            out[1] = FAMILY_IPV6;
            let mut bytes = ip.octets();
            if xor {
                for (byte, k) in bytes.iter_mut().zip(key) {
                    *byte ^= k;
                }
            }
            out[4..20].copy_from_slice(&bytes);
        }
    }
}

/// Length of an address attribute's value for this address's family.
pub(crate) fn address_value_len(address: SocketAddr) -> usize {
    match address {
        SocketAddr::V4(_) => ADDRESS_IPV4_BYTES,
        SocketAddr::V6(_) => ADDRESS_IPV6_BYTES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: TransactionId = TransactionId([
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ]);

    fn roundtrip_address(address: SocketAddr, xor: bool) {
        let mut value = [0u8; 20];
        let value = &mut value[..address_value_len(address)];
        encode_address(value, address, &TID, xor);
        let attr_type = if xor {
            AttrType::XOR_MAPPED_ADDRESS
        } else {
            AttrType::MAPPED_ADDRESS
        };
        let decoded = Attribute::decode(attr_type, value, &TID, 20).unwrap();
        let back = match decoded {
            Attribute::XorMappedAddress(a) | Attribute::MappedAddress(a) => a,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(back, address);
    }

    #[test]
    fn addresses_roundtrip_in_both_families_plain_and_xor() {
        for address in [
            "192.0.2.1:32853",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
            "[::1]:1",
        ] {
            let address: SocketAddr = address.parse().unwrap();
            roundtrip_address(address, false);
            roundtrip_address(address, true);
        }
    }

    #[test]
    fn xor_mapped_address_matches_rfc_5769_bytes() {
        // RFC 5769 §2.2: 192.0.2.1:32853 encodes as 00 01 a1 47 e1 12 a6 43.
        let mut value = [0u8; 8];
        encode_address(&mut value, "192.0.2.1:32853".parse().unwrap(), &TID, true);
        assert_eq!(value, [0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43]);
    }

    #[test]
    fn address_with_bad_family_or_length_is_rejected() {
        let bad_family = [0, 3, 0, 1, 1, 2, 3, 4];
        assert!(matches!(
            Attribute::decode(AttrType::MAPPED_ADDRESS, &bad_family, &TID, 24),
            Err(StunError::BadAttributeValue {
                attr_type: 0x0001,
                offset: 24,
                ..
            })
        ));
        let short_v6 = [0, 2, 0, 1, 1, 2, 3, 4];
        assert!(matches!(
            Attribute::decode(AttrType::XOR_MAPPED_ADDRESS, &short_v6, &TID, 28),
            Err(StunError::BadAttributeLength {
                attr_type: 0x0020,
                offset: 28,
                value_bytes: 8
            })
        ));
        assert!(Attribute::decode(AttrType::OTHER_ADDRESS, &[0, 1], &TID, 20).is_err());
    }

    #[test]
    fn text_attributes_decode_and_enforce_limits() {
        let decode = |t, v: &'static [u8]| Attribute::decode(t, v, &TID, 20);
        assert_eq!(
            decode(AttrType::USERNAME, b"evtj:h6vY").unwrap(),
            Attribute::Username("evtj:h6vY")
        );
        assert_eq!(
            decode(AttrType::SOFTWARE, b"sw").unwrap(),
            Attribute::Software("sw")
        );
        assert_eq!(
            decode(AttrType::REALM, b"example.org").unwrap(),
            Attribute::Realm("example.org")
        );
        assert_eq!(
            decode(AttrType::NONCE, b"n").unwrap(),
            Attribute::Nonce("n")
        );
        assert!(matches!(
            decode(AttrType::USERNAME, &[0xff, 0xfe]),
            Err(StunError::BadAttributeValue { .. })
        ));
        let long = [b'a'; USERNAME_BYTES_MAX + 1];
        assert!(matches!(
            Attribute::decode(AttrType::USERNAME, &long, &TID, 20),
            Err(StunError::BadAttributeLength { .. })
        ));
    }

    #[test]
    fn error_code_decodes_class_and_number() {
        let value = [0, 0, 4, 20, b'U', b'n'];
        assert_eq!(
            Attribute::decode(AttrType::ERROR_CODE, &value, &TID, 20).unwrap(),
            Attribute::ErrorCode(ErrorCode {
                code: 420,
                reason: "Un"
            })
        );
        for bad in [[0, 0, 2, 0], [0, 0, 7, 0], [0, 0, 4, 100]] {
            assert!(Attribute::decode(AttrType::ERROR_CODE, &bad, &TID, 20).is_err());
        }
        assert!(Attribute::decode(AttrType::ERROR_CODE, &[0, 0, 4], &TID, 20).is_err());
    }

    #[test]
    fn unknown_attributes_list_and_odd_length() {
        let value = [0x00, 0x1a, 0x7f, 0xff];
        let Attribute::UnknownAttributes(list) =
            Attribute::decode(AttrType::UNKNOWN_ATTRIBUTES, &value, &TID, 20).unwrap()
        else {
            panic!("not UNKNOWN-ATTRIBUTES");
        };
        assert_eq!(list.len(), 2);
        assert_eq!(
            list.iter().collect::<Vec<_>>(),
            vec![AttrType(0x001a), AttrType(0x7fff)]
        );
        assert!(Attribute::decode(AttrType::UNKNOWN_ATTRIBUTES, &[0, 1, 2], &TID, 20).is_err());
    }

    #[test]
    fn rfc_5780_attributes_decode() {
        let decode = |t, v: &'static [u8]| Attribute::decode(t, v, &TID, 20);
        assert_eq!(
            decode(AttrType::CHANGE_REQUEST, &[0, 0, 0, 6]).unwrap(),
            Attribute::ChangeRequest(ChangeRequest {
                change_ip: true,
                change_port: true
            })
        );
        assert_eq!(
            decode(AttrType::CHANGE_REQUEST, &[0, 0, 0, 2]).unwrap(),
            Attribute::ChangeRequest(ChangeRequest {
                change_ip: false,
                change_port: true
            })
        );
        assert!(decode(AttrType::CHANGE_REQUEST, &[0, 0, 6]).is_err());
        assert_eq!(
            decode(AttrType::RESPONSE_PORT, &[0x12, 0x34, 0, 0]).unwrap(),
            Attribute::ResponsePort(0x1234)
        );
        assert_eq!(
            decode(AttrType::RESPONSE_PORT, &[0x12, 0x34]).unwrap(),
            Attribute::ResponsePort(0x1234)
        );
        assert!(decode(AttrType::RESPONSE_PORT, &[0x12]).is_err());
        assert_eq!(
            decode(AttrType::PADDING, &[0; 8]).unwrap(),
            Attribute::Padding(&[0; 8])
        );
    }

    #[test]
    fn integrity_fingerprint_and_ice_lengths_are_checked() {
        let decode = |t, v: &[u8]| Attribute::decode(t, v, &TID, 20).map(|a| a.attr_type());
        assert!(decode(AttrType::MESSAGE_INTEGRITY, &[0; 20]).is_ok());
        assert!(decode(AttrType::MESSAGE_INTEGRITY, &[0; 16]).is_err());
        assert!(decode(AttrType::MESSAGE_INTEGRITY_SHA256, &[0; 32]).is_ok());
        assert!(decode(AttrType::MESSAGE_INTEGRITY_SHA256, &[0; 16]).is_ok());
        assert!(decode(AttrType::MESSAGE_INTEGRITY_SHA256, &[0; 12]).is_err());
        assert!(decode(AttrType::MESSAGE_INTEGRITY_SHA256, &[0; 18]).is_err());
        assert!(decode(AttrType::FINGERPRINT, &[0; 4]).is_ok());
        assert!(decode(AttrType::FINGERPRINT, &[0; 8]).is_err());
        assert!(decode(AttrType::PRIORITY, &[0; 4]).is_ok());
        assert!(decode(AttrType::USE_CANDIDATE, &[]).is_ok());
        assert!(decode(AttrType::USE_CANDIDATE, &[0; 4]).is_err());
        assert!(decode(AttrType::ICE_CONTROLLED, &[0; 8]).is_ok());
        assert!(decode(AttrType::ICE_CONTROLLING, &[0; 4]).is_err());
        assert_eq!(decode(AttrType(0x8fff), &[1, 2, 3]), Ok(AttrType(0x8fff)));
    }

    #[test]
    fn comprehension_ranges() {
        assert!(AttrType::CHANGE_REQUEST.is_comprehension_required());
        assert!(!AttrType::FINGERPRINT.is_comprehension_required());
        assert!(AttrType::XOR_MAPPED_ADDRESS.is_known());
        assert!(!AttrType(0x0002).is_known());
    }
}
