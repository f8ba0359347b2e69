//! Feeds arbitrary bytes to the SDP parser and validator. Anything the parser accepts must
//! survive every accessor, write back, and parse again to the same lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::proto::sdp::{validate, Sdp, SdpKind, SdpLimits};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = SdpLimits::default();
    let _ = validate(text, SdpKind::Offer, &limits);
    let _ = validate(text, SdpKind::Answer, &limits);
    let Ok(sdp) = Sdp::parse(text) else {
        return;
    };
    let _ = (
        sdp.origin(),
        sdp.session_name(),
        sdp.connection(),
        sdp.timing(),
    );
    for section in sdp.media() {
        let _ = (section.media_line(), section.mid(), section.is_rejected());
        let _ = (section.ice_ufrag(), section.ice_pwd(), section.setup());
        if let Some(fingerprint) = section.fingerprint() {
            let _ = fingerprint.bytes().count();
        }
        for candidate in section.candidates() {
            let _ = (
                candidate.generation(),
                candidate.tcp_type(),
                candidate.ufrag(),
            );
        }
    }
    // Both writers must produce text that parses back to the same lines.
    let mut raw = Vec::with_capacity(text.len() + 64);
    sdp.write_to(&mut raw);
    let mut typed = Vec::with_capacity(text.len() + 64);
    sdp.write_typed_to(&mut typed);
    for out in [raw, typed] {
        let written = std::str::from_utf8(&out).expect("writer output is UTF-8");
        let again = Sdp::parse(written).expect("writer output parses");
        assert!(sdp
            .lines()
            .map(|(_, line)| line)
            .eq(again.lines().map(|(_, line)| line)));
    }
});
