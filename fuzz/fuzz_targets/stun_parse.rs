//! Arbitrary bytes through the STUN parser, the stream framing and the
//! Binding responder in each of its modes. Nothing may panic, and whatever
//! the responder answers must itself parse (as RFC 3489 when the request
//! had no magic cookie).

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::proto::stun::{
    check, frame_len, ClassicMessage, Frames, Responder, ResponderConfig, Response, Rfc5780Config,
    ShortTermCredentials, StunError, StunMessage, RESPONSE_BYTES_MAX,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = StunMessage::parse(data) {
        for raw in message.attributes() {
            assert!(message.get(raw.attr_type).is_some());
        }
        let _ = message.verify_integrity(b"password");
        let _ = message.verify_integrity_sha256(b"password");
        let _ = message.verify_fingerprint();
    }
    let _ = frame_len(data);
    let mut frames = Frames::new(data);
    for frame in frames.by_ref() {
        let _ = StunMessage::parse(frame);
    }
    assert!(frames.consumed() <= data.len());

    let primary = "192.0.2.1:3478".parse().expect("address");
    let alternate = "192.0.2.2:3479".parse().expect("address");
    let source = "198.51.100.7:40000".parse().expect("address");
    let configs = [
        ResponderConfig::default(),
        ResponderConfig {
            software: Some("fuzz".into()),
            mapped_address: true,
            rfc5780: Some(Rfc5780Config { primary, alternate }),
            credentials: None,
        },
        ResponderConfig {
            credentials: Some(ShortTermCredentials {
                username: "user:peer".into(),
                password: b"password".to_vec(),
            }),
            ..ResponderConfig::default()
        },
    ];
    let mut out = [0u8; RESPONSE_BYTES_MAX];
    for config in configs {
        let responder = Responder::new(config);
        if let Response::Send(reply) = responder.respond(data, source, primary, &mut out) {
            let answer = &out[..reply.len];
            // A cookieless request is RFC 3489, and so is its answer.
            if matches!(check(data), Err(StunError::BadMagicCookie { .. })) {
                let answer =
                    ClassicMessage::parse(answer).expect("the responder writes valid STUN");
                assert_eq!(answer.transaction_id().0[..], data[4..20]);
            } else {
                StunMessage::parse(answer).expect("the responder writes valid STUN");
            }
        }
    }
});
