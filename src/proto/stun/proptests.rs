//! Property tests: what the encoder writes, the parser reads back, and no
//! bytes at all make the parser, the framing or the responder panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

/// An attribute with owned data, so proptest can generate it.
#[derive(Debug, Clone)]
enum Spec {
    Address(AttrType, SocketAddr),
    XorMapped(SocketAddr),
    Text(AttrType, String),
    ErrorCode(u16, String),
    Unknown(Vec<u16>),
    Change(bool, bool),
    ResponsePort(u16),
    Padding(Vec<u8>),
    Priority(u32),
    UseCandidate,
    IceControlled(u64),
    IceControlling(u64),
    Other(u16, Vec<u8>),
}

impl Spec {
    fn attribute(&self) -> Attribute<'_> {
        match self {
            Spec::Address(attr_type, address) => match *attr_type {
                AttrType::MAPPED_ADDRESS => Attribute::MappedAddress(*address),
                AttrType::ALTERNATE_SERVER => Attribute::AlternateServer(*address),
                AttrType::RESPONSE_ORIGIN => Attribute::ResponseOrigin(*address),
                _ => Attribute::OtherAddress(*address),
            },
            Spec::XorMapped(address) => Attribute::XorMappedAddress(*address),
            Spec::Text(attr_type, text) => match *attr_type {
                AttrType::USERNAME => Attribute::Username(text),
                AttrType::SOFTWARE => Attribute::Software(text),
                AttrType::REALM => Attribute::Realm(text),
                _ => Attribute::Nonce(text),
            },
            Spec::ErrorCode(code, reason) => Attribute::ErrorCode(ErrorCode {
                code: *code,
                reason,
            }),
            Spec::Unknown(_) => unreachable!("compared by list, see below"),
            Spec::Change(change_ip, change_port) => Attribute::ChangeRequest(ChangeRequest {
                change_ip: *change_ip,
                change_port: *change_port,
            }),
            Spec::ResponsePort(port) => Attribute::ResponsePort(*port),
            Spec::Padding(bytes) => Attribute::Padding(bytes),
            Spec::Priority(value) => Attribute::Priority(*value),
            Spec::UseCandidate => Attribute::UseCandidate,
            Spec::IceControlled(value) => Attribute::IceControlled(*value),
            Spec::IceControlling(value) => Attribute::IceControlling(*value),
            Spec::Other(attr_type, value) => Attribute::Other {
                attr_type: AttrType(*attr_type),
                value,
            },
        }
    }
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
        (any::<u128>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    let address_type = prop_oneof![
        Just(AttrType::MAPPED_ADDRESS),
        Just(AttrType::ALTERNATE_SERVER),
        Just(AttrType::RESPONSE_ORIGIN),
        Just(AttrType::OTHER_ADDRESS),
    ];
    let text_type = prop_oneof![
        Just(AttrType::USERNAME),
        Just(AttrType::SOFTWARE),
        Just(AttrType::REALM),
        Just(AttrType::NONCE),
    ];
    // Comprehension-optional types this codec does not know.
    let other_type = (0x8000u16..=0xffff).prop_filter("unknown type", |t| !AttrType(*t).is_known());
    prop_oneof![
        (address_type, socket_addr()).prop_map(|(t, a)| Spec::Address(t, a)),
        socket_addr().prop_map(Spec::XorMapped),
        (text_type, "\\PC{0,40}").prop_map(|(t, s)| Spec::Text(t, s)),
        (300u16..=699, "\\PC{0,30}").prop_map(|(c, s)| Spec::ErrorCode(c, s)),
        prop::collection::vec(any::<u16>(), 0..6).prop_map(Spec::Unknown),
        (any::<bool>(), any::<bool>()).prop_map(|(a, b)| Spec::Change(a, b)),
        any::<u16>().prop_map(Spec::ResponsePort),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Spec::Padding),
        any::<u32>().prop_map(Spec::Priority),
        Just(Spec::UseCandidate),
        any::<u64>().prop_map(Spec::IceControlled),
        any::<u64>().prop_map(Spec::IceControlling),
        (other_type, prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(t, v)| Spec::Other(t, v)),
    ]
}

fn class() -> impl Strategy<Value = Class> {
    prop_oneof![
        Just(Class::Request),
        Just(Class::Indication),
        Just(Class::SuccessResponse),
        Just(Class::ErrorResponse),
    ]
}

fn responders() -> [Responder; 3] {
    [
        Responder::new(ResponderConfig::default()),
        Responder::new(ResponderConfig {
            software: Some("fuzz".into()),
            mapped_address: true,
            rfc5780: Some(Rfc5780Config {
                primary: "192.0.2.1:3478".parse().unwrap(),
                alternate: "192.0.2.2:3479".parse().unwrap(),
            }),
            credentials: None,
        }),
        Responder::new(ResponderConfig {
            credentials: Some(ShortTermCredentials {
                username: "u:p".into(),
                password: b"pw".to_vec(),
            }),
            ..ResponderConfig::default()
        }),
    ]
}

/// Runs every reader over `bytes`; it must not panic.
fn exercise(bytes: &[u8]) {
    let _ = check(bytes);
    let _ = frame_len(bytes);
    let mut frames = Frames::new(bytes);
    for frame in frames.by_ref() {
        let _ = StunMessage::parse(frame);
    }
    assert!(frames.consumed() <= bytes.len());
    if let Ok(message) = StunMessage::parse(bytes) {
        for raw in message.attributes() {
            assert!(message.get(raw.attr_type).is_some());
        }
        let _ = message.verify_integrity(b"pw");
        let _ = message.verify_integrity_sha256(b"pw");
        let _ = message.verify_fingerprint();
    }
    let source = "198.51.100.7:40000".parse().unwrap();
    let local = "192.0.2.1:3478".parse().unwrap();
    let mut out = [0u8; RESPONSE_BYTES_MAX];
    for responder in responders() {
        if let Response::Send(reply) = responder.respond(bytes, source, local, &mut out) {
            // Whatever it answers must itself parse, in the request's dialect.
            let answer = &out[..reply.len];
            if matches!(check(bytes), Err(StunError::BadMagicCookie { .. })) {
                let answer = ClassicMessage::parse(answer).unwrap();
                assert_ne!(answer.class(), Class::Request);
                assert_eq!(answer.transaction_id().0[..], bytes[4..20]);
            } else {
                let answer = StunMessage::parse(answer).unwrap();
                assert_ne!(answer.class(), Class::Request);
            }
        }
    }
}

proptest! {
    #[test]
    fn encode_then_parse_round_trips(
        class in class(),
        method in 0u16..=Method::MAX,
        transaction_id in any::<[u8; 12]>(),
        specs in prop::collection::vec(spec(), 0..12),
        integrity in any::<bool>(),
        fingerprint in any::<bool>(),
    ) {
        let message_type = MessageType { method: Method(method), class };
        let transaction_id = TransactionId(transaction_id);
        let mut out = vec![0u8; 4096];
        let mut writer = MessageWriter::new(&mut out, message_type, transaction_id).unwrap();
        for spec in &specs {
            match spec {
                Spec::Unknown(list) => writer
                    .add_unknown_attributes(list.iter().map(|t| AttrType(*t)))
                    .unwrap(),
                other => writer.add_attribute(&other.attribute()).unwrap(),
            }
        }
        if integrity {
            writer.add_message_integrity(b"key").unwrap();
        }
        if fingerprint {
            writer.add_fingerprint().unwrap();
        }
        let len = writer.finish();
        let message = StunMessage::parse(&out[..len]).unwrap();
        prop_assert_eq!(message.message_type(), message_type);
        prop_assert_eq!(message.transaction_id(), transaction_id);
        prop_assert!(message.unknown_comprehension_required().is_empty());
        let mut attributes = message.attributes();
        for spec in &specs {
            let raw = attributes.next().unwrap();
            let decoded =
                Attribute::decode(raw.attr_type, raw.value, &transaction_id, raw.offset).unwrap();
            match (spec, decoded) {
                (Spec::Unknown(list), Attribute::UnknownAttributes(found)) => {
                    let found: Vec<u16> = found.iter().map(|t| t.0).collect();
                    prop_assert_eq!(&found, list);
                }
                (spec, decoded) => prop_assert_eq!(decoded, spec.attribute()),
            }
        }
        if integrity {
            prop_assert_eq!(attributes.next().unwrap().attr_type, AttrType::MESSAGE_INTEGRITY);
            prop_assert!(message.verify_integrity(b"key").is_ok());
            prop_assert!(message.verify_integrity(b"other").is_err());
        }
        if fingerprint {
            prop_assert_eq!(attributes.next().unwrap().attr_type, AttrType::FINGERPRINT);
            prop_assert!(message.verify_fingerprint().is_ok());
        }
        prop_assert!(attributes.next().is_none());
        exercise(&out[..len]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        exercise(&bytes);
    }

    #[test]
    fn stun_shaped_bytes_never_panic(
        class_bits in 0u16..4,
        words in prop::collection::vec(any::<u32>(), 0..40),
        cut in any::<prop::sample::Index>(),
    ) {
        // A valid header over a random body reaches the attribute walker.
        let mut bytes = Vec::with_capacity(20 + words.len() * 4);
        let message_type = (class_bits & 1) << 4 | (class_bits & 2) << 7 | 1;
        bytes.extend_from_slice(&message_type.to_be_bytes());
        bytes.extend_from_slice(&u16::try_from(words.len() * 4).unwrap().to_be_bytes());
        bytes.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        bytes.extend_from_slice(&[3; 12]);
        for word in &words {
            // Keep attribute lengths small so that many of them frame well.
            let [a, b, _, d] = word.to_be_bytes();
            bytes.extend_from_slice(&[a & 0x80, b, 0, d & 0x1f]);
        }
        exercise(&bytes);
        exercise(&bytes[..cut.index(bytes.len() + 1)]);
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut out = [0u8; 256];
        let len = encode_binding_request(&mut out, &BindingRequest {
            transaction_id: TransactionId([5; 12]),
            change_request: Some(ChangeRequest { change_ip: true, change_port: false }),
            response_port: Some(9),
            username: Some("u:p"),
            integrity_key: Some(b"pw"),
            fingerprint: true,
            ..BindingRequest::default()
        }).unwrap();
        let mut bytes = out[..len].to_vec();
        for (index, value) in flips {
            let at = index.index(bytes.len());
            bytes[at] ^= value;
        }
        exercise(&bytes);
    }

    #[test]
    fn mutated_classic_requests_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        transaction_id in any::<[u8; 16]>(),
    ) {
        let mut out = [0u8; 64];
        let mut transaction_id = ClassicTransactionId(transaction_id);
        transaction_id.0[0] ^= 0x80; // never the cookie
        let len = encode_classic_binding_request(&mut out, &ClassicBindingRequest {
            transaction_id,
            change_request: Some(ChangeRequest { change_ip: true, change_port: true }),
        }).unwrap();
        let mut bytes = out[..len].to_vec();
        exercise(&bytes);
        for (index, value) in flips {
            let at = index.index(bytes.len());
            bytes[at] ^= value;
        }
        exercise(&bytes);
    }
}
