//! Corpus, attribute, error-location and property tests for the SDP module.

use super::*;

/// Every corpus file, with the kind its validation uses (`None`: not a WebRTC description).
/// `include_str!` paths are relative to this file, so the tests run in any crate that mounts
/// this module.
const CORPUS: &[(&str, &str, Option<SdpKind>)] = &[
    (
        "rfc8866-example",
        include_str!("../../../tests/vectors/sdp/rfc8866-example.sdp"),
        None,
    ),
    (
        "rfc8829-offer-a1",
        include_str!("../../../tests/vectors/sdp/rfc8829-offer-a1.sdp"),
        Some(SdpKind::Offer),
    ),
    (
        "rfc8829-answer-a1",
        include_str!("../../../tests/vectors/sdp/rfc8829-answer-a1.sdp"),
        Some(SdpKind::Answer),
    ),
    (
        "rfc8829-offer-b1",
        include_str!("../../../tests/vectors/sdp/rfc8829-offer-b1.sdp"),
        Some(SdpKind::Offer),
    ),
    (
        "chromium-dc-offer",
        include_str!("../../../tests/vectors/sdp/chromium-dc-offer.sdp"),
        Some(SdpKind::Offer),
    ),
    (
        "chromium-dc-answer",
        include_str!("../../../tests/vectors/sdp/chromium-dc-answer.sdp"),
        Some(SdpKind::Answer),
    ),
    (
        "chromium-av-offer",
        include_str!("../../../tests/vectors/sdp/chromium-av-offer.sdp"),
        Some(SdpKind::Offer),
    ),
    (
        "chromium-av-answer",
        include_str!("../../../tests/vectors/sdp/chromium-av-answer.sdp"),
        Some(SdpKind::Answer),
    ),
    (
        "aiortc-offer",
        include_str!("../../../tests/vectors/sdp/aiortc-offer.sdp"),
        Some(SdpKind::Offer),
    ),
    (
        "aiortc-answer",
        include_str!("../../../tests/vectors/sdp/aiortc-answer.sdp"),
        Some(SdpKind::Answer),
    ),
    (
        "node-datachannel-offer",
        include_str!("../../../tests/vectors/sdp/node-datachannel-offer.sdp"),
        Some(SdpKind::Offer),
    ),
    (
        "node-datachannel-answer",
        include_str!("../../../tests/vectors/sdp/node-datachannel-answer.sdp"),
        Some(SdpKind::Answer),
    ),
];

fn corpus(name: &str) -> &'static str {
    CORPUS
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(_, text, _)| *text)
        .unwrap()
}

/// Writes with both writers, checks they agree, and returns the text.
fn write(sdp: &Sdp<'_>) -> String {
    let mut out = Vec::with_capacity(sdp.text().len());
    let bytes_written = sdp.write_to(&mut out);
    assert_eq!(bytes_written, out.len());
    let mut typed = Vec::with_capacity(sdp.text().len());
    let bytes_written = sdp.write_typed_to(&mut typed);
    assert_eq!(bytes_written, typed.len());
    assert_eq!(
        String::from_utf8_lossy(&typed),
        String::from_utf8_lossy(&out)
    );
    String::from_utf8(out).unwrap()
}

/// Writes from the typed lines only; numbers may come out in canonical form.
fn write_typed(sdp: &Sdp<'_>) -> String {
    let mut out = Vec::new();
    sdp.write_typed_to(&mut out);
    String::from_utf8(out).unwrap()
}

fn lines_of(sdp: &Sdp<'_>) -> Vec<(u32, String)> {
    sdp.lines()
        .map(|(number, line)| (number, format!("{line:?}")))
        .collect()
}

#[test]
fn corpus_parses_validates_and_round_trips_byte_for_byte() {
    for (name, text, kind) in CORPUS {
        let sdp = Sdp::parse(text).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(sdp.line_ending(), LineEnding::Crlf, "{name}");
        assert_eq!(sdp.lines_len() as usize, text.lines().count(), "{name}");
        if let Some(kind) = kind {
            validate(text, *kind, &SdpLimits::default())
                .unwrap_or_else(|error| panic!("{name}: {error}"));
        }
        let written = write(&sdp);
        assert_eq!(&written, text, "{name}");
        let again = Sdp::parse(&written).unwrap();
        assert_eq!(lines_of(&again), lines_of(&sdp), "{name}");
    }
}

#[test]
fn corpus_with_lf_endings_parses_and_round_trips() {
    for (name, text, kind) in CORPUS {
        let lf = text.replace("\r\n", "\n");
        let sdp = Sdp::parse(&lf).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(sdp.line_ending(), LineEnding::Lf);
        if let Some(kind) = kind {
            validate(&lf, *kind, &SdpLimits::default()).unwrap();
        }
        assert_eq!(write(&sdp), lf, "{name}");
        let crlf = Sdp::parse(text).unwrap();
        assert_eq!(lines_of(&sdp), lines_of(&crlf), "{name}");
    }
}

#[test]
fn rfc8866_example_fields() {
    let sdp = Sdp::parse(corpus("rfc8866-example")).unwrap();
    let origin = sdp.origin();
    assert_eq!(origin.username, "jdoe");
    assert_eq!(origin.session_id, "3724394400");
    assert_eq!(origin.session_version, "3724394405");
    assert_eq!(origin.address, "198.51.100.1");
    assert_eq!(sdp.session_name(), "Call to John Smith");
    assert_eq!(sdp.connection().unwrap().address, "198.51.100.1");
    assert_eq!(sdp.timing(), Timing { start: 0, stop: 0 });
    assert_eq!(sdp.media_len(), 3);
    let video = sdp.media_section(2).unwrap();
    assert_eq!(video.line(), 12);
    assert_eq!(video.media_line().media, "video");
    assert_eq!(video.media_line().port, 51372);
    assert_eq!(video.connection().unwrap().address, "2001:db8::2");
    assert_eq!(
        video.attributes().next(),
        Some(Attribute::Rtpmap(Rtpmap {
            payload_type: 99,
            encoding_name: "h263-1998",
            clock_rate: 90000,
            encoding_params: None,
        }))
    );
    let texts: Vec<_> = sdp
        .session_lines()
        .filter_map(|(_, line)| match line {
            Line::Information(text) | Line::Uri(text) | Line::Email(text) | Line::Phone(text) => {
                Some(text)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        [
            "SDP Offer #1",
            "http://www.jdoe.example.com/home.html",
            "Jane Doe <jane@jdoe.example.com>",
            "+1 617 555-6011"
        ]
    );
    // Not a WebRTC description: the relay refuses it, naming the first m= line.
    let error = validate(
        corpus("rfc8866-example"),
        SdpKind::Offer,
        &SdpLimits::default(),
    );
    assert_eq!(error.unwrap_err().to_string(), "line 10: missing ice-ufrag");
}

#[test]
fn rfc8829_offer_fields() {
    let sdp = Sdp::parse(corpus("rfc8829-offer-a1")).unwrap();
    let groups: Vec<_> = sdp
        .attributes()
        .filter_map(|attribute| match attribute {
            Attribute::Group(group) => Some((group.semantics, group.mids().collect::<Vec<_>>())),
            _ => None,
        })
        .collect();
    assert_eq!(
        groups,
        [("BUNDLE", vec!["a1", "v1"]), ("LS", vec!["a1", "v1"])]
    );
    let audio = sdp.media_by_mid("a1").unwrap();
    assert_eq!(audio.ice_ufrag(), Some("ETEn"));
    assert_eq!(audio.ice_pwd(), Some("OtSK0WpNtpUjkY4+86js7ZQl"));
    assert_eq!(audio.setup(), Some(Setup::Actpass));
    assert_eq!(audio.direction(), Direction::SendRecv);
    let fingerprint = audio.fingerprint().unwrap();
    assert_eq!(fingerprint.hash_function, "sha-256");
    assert_eq!(fingerprint.bytes().count(), 32);
    assert_eq!(fingerprint.bytes().next(), Some(0x19));
    let candidates: Vec<_> = audio.candidates().collect();
    assert_eq!(candidates.len(), 2);
    assert_eq!(candidates[1].component, 2);
    assert_eq!(candidates[1].port, 10101);
    let b1 = Sdp::parse(corpus("rfc8829-offer-b1")).unwrap();
    let data = b1.media_by_mid("d1").unwrap();
    assert!(data.is_bundle_only());
    assert!(!data.is_rejected());
    assert_eq!(data.media_line().port, 0);
}

#[test]
fn chromium_offer_fields() {
    let sdp = Sdp::parse(corpus("chromium-av-offer")).unwrap();
    assert_eq!(sdp.media_len(), 2);
    let video = sdp.media_section(1).unwrap();
    assert_eq!(video.media_line().proto, "UDP/TLS/RTP/SAVPF");
    assert_eq!(video.media_line().format_list().next(), Some("96"));
    let mut kinds = std::collections::BTreeSet::new();
    for attribute in video.attributes() {
        kinds.insert(attribute.name());
    }
    for name in [
        "candidate",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "fingerprint",
        "setup",
        "mid",
        "extmap",
        "sendrecv",
        "msid",
        "rtcp-mux",
        "rtcp-rsize",
        "rtpmap",
        "rtcp-fb",
        "fmtp",
        "ssrc-group",
        "ssrc",
        "rtcp",
        "rtcp-xr",
    ] {
        assert!(kinds.contains(name), "{name}");
    }
    let tcp = video
        .candidates()
        .find(|candidate| candidate.transport == "tcp")
        .unwrap();
    assert_eq!(tcp.tcp_type(), Some(TcpType::Active));
    assert_eq!(tcp.network_cost(), Some(50));
    let dc = Sdp::parse(corpus("chromium-dc-offer")).unwrap();
    let data = dc.media_section(0).unwrap();
    assert!(data
        .attributes()
        .any(|attribute| attribute == Attribute::SctpPort(5000)));
    assert!(data
        .attributes()
        .any(|attribute| attribute == Attribute::MaxMessageSize(262144)));
}

/// Parses `a=<text>` and checks the attribute and that it writes back as the same text.
fn attribute_round_trip(text: &str) -> Attribute<'_> {
    let attribute = Attribute::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
    let mut out = Vec::new();
    builder::write_line(&mut out, &Line::Attribute(attribute), b"");
    assert_eq!(std::str::from_utf8(&out).unwrap(), format!("a={text}"));
    attribute
}

#[test]
fn every_typed_attribute_parses_and_writes_back() {
    assert_eq!(attribute_round_trip("mid:0"), Attribute::Mid("0"));
    assert_eq!(
        attribute_round_trip("ice-ufrag:9+Yk"),
        Attribute::IceUfrag("9+Yk")
    );
    assert_eq!(
        attribute_round_trip("ice-pwd:VlDit2tx9gTAjkGqeqbEfwUe"),
        Attribute::IcePwd("VlDit2tx9gTAjkGqeqbEfwUe")
    );
    assert_eq!(
        attribute_round_trip("ice-options:trickle ice2"),
        Attribute::IceOptions("trickle ice2")
    );
    assert_eq!(attribute_round_trip("ice-lite"), Attribute::IceLite);
    assert!(matches!(
        attribute_round_trip(
            "fingerprint:sha-1 00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33"
        ),
        Attribute::Fingerprint(Fingerprint {
            hash_function: "sha-1",
            ..
        })
    ));
    assert_eq!(
        attribute_round_trip("setup:passive"),
        Attribute::Setup(Setup::Passive)
    );
    assert_eq!(
        attribute_round_trip("group:BUNDLE 0 1"),
        Attribute::Group(Group {
            semantics: "BUNDLE",
            tags: "0 1"
        })
    );
    assert_eq!(
        attribute_round_trip("group:BUNDLE"),
        Attribute::Group(Group {
            semantics: "BUNDLE",
            tags: ""
        })
    );
    assert_eq!(
        attribute_round_trip("msid:stream track"),
        Attribute::Msid(Msid {
            stream_id: "stream",
            track_id: Some("track")
        })
    );
    assert_eq!(
        attribute_round_trip("msid:-"),
        Attribute::Msid(Msid {
            stream_id: "-",
            track_id: None
        })
    );
    assert_eq!(
        attribute_round_trip("rtpmap:111 opus/48000/2"),
        Attribute::Rtpmap(Rtpmap {
            payload_type: 111,
            encoding_name: "opus",
            clock_rate: 48000,
            encoding_params: Some("2")
        })
    );
    let Attribute::Fmtp(fmtp) = attribute_round_trip("fmtp:111 minptime=10;useinbandfec=1") else {
        panic!()
    };
    assert_eq!(
        fmtp.param_list().collect::<Vec<_>>(),
        [("minptime", Some("10")), ("useinbandfec", Some("1"))]
    );
    assert_eq!(
        attribute_round_trip("rtcp-fb:96 nack pli"),
        Attribute::RtcpFb(RtcpFb {
            format: "96",
            kind: "nack",
            param: Some("pli")
        })
    );
    assert_eq!(
        attribute_round_trip("rtcp-fb:* transport-cc"),
        Attribute::RtcpFb(RtcpFb {
            format: "*",
            kind: "transport-cc",
            param: None
        })
    );
    assert_eq!(attribute_round_trip("rtcp-mux"), Attribute::RtcpMux);
    assert_eq!(
        attribute_round_trip("rtcp-mux-only"),
        Attribute::RtcpMuxOnly
    );
    assert_eq!(attribute_round_trip("rtcp-rsize"), Attribute::RtcpRsize);
    assert_eq!(
        attribute_round_trip("extmap:2/recvonly urn:x attr"),
        Attribute::Extmap(Extmap {
            id: 2,
            direction: Some(Direction::RecvOnly),
            uri: "urn:x",
            attributes: Some("attr")
        })
    );
    assert_eq!(
        attribute_round_trip("ssrc:3238463566 cname:pN/YyWrvL8tZcGps"),
        Attribute::Ssrc(Ssrc {
            ssrc: 3238463566,
            attribute: "cname",
            value: Some("pN/YyWrvL8tZcGps")
        })
    );
    let Attribute::SsrcGroup(group) = attribute_round_trip("ssrc-group:FID 1 2") else {
        panic!()
    };
    assert_eq!(group.ssrc_list().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        attribute_round_trip("sctp-port:5000"),
        Attribute::SctpPort(5000)
    );
    assert_eq!(
        attribute_round_trip("max-message-size:262144"),
        Attribute::MaxMessageSize(262144)
    );
    assert!(matches!(
        attribute_round_trip("candidate:1 1 UDP 2114977791 127.0.0.1 48073 typ host"),
        Attribute::Candidate(Candidate { port: 48073, .. })
    ));
    assert_eq!(
        attribute_round_trip("end-of-candidates"),
        Attribute::EndOfCandidates
    );
    for direction in [
        Direction::SendRecv,
        Direction::SendOnly,
        Direction::RecvOnly,
        Direction::Inactive,
    ] {
        assert_eq!(
            attribute_round_trip(direction.as_str()),
            Attribute::Direction(direction)
        );
    }
    assert_eq!(
        attribute_round_trip("simulcast:send 1;2,~3 recv 4"),
        Attribute::Simulcast(Simulcast {
            send: Some("1;2,~3"),
            recv: Some("4"),
            recv_first: false
        })
    );
    assert_eq!(
        attribute_round_trip("simulcast:recv a send b"),
        Attribute::Simulcast(Simulcast {
            send: Some("b"),
            recv: Some("a"),
            recv_first: true
        })
    );
    assert_eq!(
        attribute_round_trip("rid:hi send pt=96;max-width=1280"),
        Attribute::Rid(Rid {
            id: "hi",
            direction: "send",
            params: Some("pt=96;max-width=1280")
        })
    );
    assert_eq!(attribute_round_trip("bundle-only"), Attribute::BundleOnly);
    assert_eq!(
        attribute_round_trip("msid-semantic: WMS"),
        Attribute::Other {
            name: "msid-semantic",
            value: Some(" WMS")
        }
    );
    assert_eq!(
        attribute_round_trip("extmap-allow-mixed"),
        Attribute::Other {
            name: "extmap-allow-mixed",
            value: None
        }
    );
}

#[test]
fn bad_attribute_values_are_named() {
    let cases = [
        ("mid:", SdpErrorKind::AttributeValue("mid")),
        ("mid", SdpErrorKind::AttributeValue("mid")),
        ("ice-ufrag:a b", SdpErrorKind::AttributeValue("ice-ufrag")),
        ("ice-pwd:", SdpErrorKind::AttributeValue("ice-pwd")),
        (
            "fingerprint:sha-256 AB:CD",
            SdpErrorKind::AttributeValue("fingerprint"),
        ),
        (
            "fingerprint:sha-256",
            SdpErrorKind::AttributeValue("fingerprint"),
        ),
        (
            "fingerprint:x 0:11",
            SdpErrorKind::AttributeValue("fingerprint"),
        ),
        (
            "fingerprint:x GG",
            SdpErrorKind::AttributeValue("fingerprint"),
        ),
        ("setup:both", SdpErrorKind::AttributeValue("setup")),
        ("rtpmap:128 x/1", SdpErrorKind::AttributeValue("rtpmap")),
        ("rtpmap:96 opus", SdpErrorKind::AttributeValue("rtpmap")),
        ("fmtp:96", SdpErrorKind::AttributeValue("fmtp")),
        ("rtcp-fb:x nack", SdpErrorKind::AttributeValue("rtcp-fb")),
        ("extmap:x urn:x", SdpErrorKind::AttributeValue("extmap")),
        ("extmap:1/up urn:x", SdpErrorKind::AttributeValue("extmap")),
        ("ssrc:x cname:y", SdpErrorKind::AttributeValue("ssrc")),
        (
            "ssrc-group:FID 1 x",
            SdpErrorKind::AttributeValue("ssrc-group"),
        ),
        ("sctp-port:70000", SdpErrorKind::AttributeValue("sctp-port")),
        (
            "max-message-size:-1",
            SdpErrorKind::AttributeValue("max-message-size"),
        ),
        ("simulcast:send", SdpErrorKind::AttributeValue("simulcast")),
        (
            "simulcast:send 1 send 2",
            SdpErrorKind::AttributeValue("simulcast"),
        ),
        ("rid:1 both", SdpErrorKind::AttributeValue("rid")),
        ("rtcp-mux:yes", SdpErrorKind::UnexpectedValue("rtcp-mux")),
        ("sendrecv:1", SdpErrorKind::UnexpectedValue("sendrecv")),
        (":x", SdpErrorKind::AttributeName),
        ("bad name:x", SdpErrorKind::AttributeName),
        (
            "candidate:1 1 udp 1 1.2.3.4 1 typ cloud",
            SdpErrorKind::Candidate(CandidateError::Type),
        ),
    ];
    for (text, kind) in cases {
        assert_eq!(Attribute::parse(text), Err(kind), "{text}");
    }
}

const MINIMAL: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";

fn error_of(text: &str) -> (SdpErrorKind, Option<u32>) {
    let error = Sdp::parse(text).unwrap_err();
    (error.kind(), error.line())
}

#[test]
fn errors_carry_their_line_number() {
    use SdpErrorKind as K;
    assert_eq!(error_of(""), (K::Empty, None));
    assert_eq!(error_of("\r\n"), (K::Empty, None));
    assert_eq!(error_of("o=x\r\n"), (K::Version, Some(1)));
    assert_eq!(error_of("v=1\r\n"), (K::Version, Some(1)));
    assert_eq!(error_of("v=0\r\n"), (K::MissingOrigin, None));
    assert_eq!(error_of("v=0\r\ns=-\r\n"), (K::MissingOrigin, Some(2)));
    assert_eq!(
        error_of("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nt=0 0\r\n"),
        (K::MissingSessionName, Some(3))
    );
    assert_eq!(
        error_of("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\na=x\r\n"),
        (K::MissingTiming, Some(4))
    );
    assert_eq!(
        error_of("v=0\r\no=- x 1 IN IP4 0.0.0.0\r\n"),
        (K::Origin, Some(2))
    );
    let with = |extra: &str| format!("{MINIMAL}{extra}");
    assert_eq!(error_of(&with("x=1\r\n")), (K::UnknownLineType, Some(5)));
    assert_eq!(error_of(&with("a\r\n")), (K::MalformedLine, Some(5)));
    assert_eq!(error_of(&with("\r\na=x\r\n")), (K::MalformedLine, Some(5)));
    assert_eq!(error_of(&with("a=x\ry\r\n")), (K::MalformedLine, Some(5)));
    assert_eq!(
        error_of(&with("a=x\r\r\na=y\r\n")),
        (K::MalformedLine, Some(5))
    );
    assert_eq!(error_of(&with("a=x\0\r\n")), (K::MalformedLine, Some(5)));
    assert_eq!(
        error_of("v=0\no=\r- 1 1 IN IP4 0.0.0.0\n"),
        (K::MalformedLine, Some(2))
    );
    assert_eq!(
        error_of(&with("c=IN IP4 1.2.3.4\r\n")),
        (K::OutOfOrder, Some(5))
    );
    assert_eq!(
        error_of(&with("a=x\r\nt=0 0\r\n")),
        (K::OutOfOrder, Some(6))
    );
    assert_eq!(
        error_of(&with("a=x\r\nr=1 2\r\n")),
        (K::OutOfOrder, Some(6))
    );
    assert_eq!(
        error_of(&with("m=audio 9 RTP/AVP 0\r\ns=x\r\n")),
        (K::OutOfOrder, Some(6))
    );
    assert_eq!(
        error_of(&with("m=audio 9 RTP/AVP 0\r\na=x\r\nc=IN IP4 0.0.0.0\r\n")),
        (K::OutOfOrder, Some(7))
    );
    assert_eq!(
        error_of(&with("m=audio x RTP/AVP 0\r\n")),
        (K::Media, Some(5))
    );
    assert_eq!(
        error_of(&with("m=audio 9 RTP/AVP\r\n")),
        (K::Media, Some(5))
    );
    assert_eq!(
        error_of(&with("m=audio 9 RTP/AVP 0\r\nb=AS\r\n")),
        (K::Bandwidth, Some(6))
    );
    assert_eq!(
        error_of("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0\r\n"),
        (K::Timing, Some(4))
    );
    assert_eq!(
        error_of(&with("m=audio 9 RTP/AVP 0\r\nc=IN IP4\r\n")),
        (K::Connection, Some(6))
    );
    assert_eq!(
        error_of(&with(
            "m=audio 9 RTP/AVP 0\r\na=candidate:1 1 udp 1 1.2.3.4 x typ host\r\n"
        )),
        (K::Candidate(CandidateError::Port), Some(6))
    );
    let error = Sdp::parse(&with("a=setup:x\r\n")).unwrap_err();
    assert_eq!(error.to_string(), "line 5: malformed a=setup value");
}

#[test]
fn lf_only_and_mixed_endings_and_trailing_blank_lines() {
    let lf = "v=0\no=- 1 1 IN IP4 0.0.0.0\ns=-\nt=0 0\nm=audio 9 RTP/AVP 0\na=sendonly";
    let sdp = Sdp::parse(lf).unwrap();
    assert_eq!(sdp.line_ending(), LineEnding::Lf);
    assert_eq!(sdp.lines_len(), 6);
    assert_eq!(
        sdp.media_section(0).unwrap().direction(),
        Direction::SendOnly
    );
    assert_eq!(write(&sdp), format!("{lf}\n"));
    let trailing = format!("{MINIMAL}\r\n\r\n");
    let sdp = Sdp::parse(&trailing).unwrap();
    assert_eq!(sdp.lines_len(), 4);
    assert_eq!(write(&sdp), MINIMAL);
    let mixed = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\ns=-\r\nt=0 0\n";
    assert_eq!(write(&Sdp::parse(mixed).unwrap()), MINIMAL);
}

#[test]
fn limits_are_enforced() {
    let mut text = String::from(MINIMAL);
    for _ in 0..=MEDIA_SECTIONS_MAX {
        text.push_str("m=audio 0 RTP/AVP 0\r\n");
    }
    assert_eq!(
        error_of(&text),
        (
            SdpErrorKind::TooManyMediaSections,
            Some(5 + MEDIA_SECTIONS_MAX as u32)
        )
    );
    let mut text = String::from(MINIMAL);
    for _ in 0..=ATTRIBUTES_MAX {
        text.push_str("a=x\r\n");
    }
    assert_eq!(
        error_of(&text),
        (
            SdpErrorKind::TooManyAttributes,
            Some(5 + ATTRIBUTES_MAX as u32)
        )
    );
    let offer = corpus("chromium-av-offer");
    let small = SdpLimits {
        bytes_max: 100,
        lines_max: 2000,
    };
    let error = validate(offer, SdpKind::Offer, &small).unwrap_err();
    assert_eq!((error.kind(), error.line()), (SdpErrorKind::TooLarge, None));
    let short = SdpLimits {
        bytes_max: 1 << 20,
        lines_max: 20,
    };
    let error = validate(offer, SdpKind::Offer, &short).unwrap_err();
    assert_eq!(error.to_string(), "line 21: too many lines");
    assert_eq!(
        SdpLimits::default(),
        SdpLimits {
            bytes_max: 65536,
            lines_max: 2000
        }
    );
}

/// Replaces the first line that starts with `prefix` (or removes it, with `None`).
fn edit(text: &str, prefix: &str, replacement: Option<&str>) -> String {
    let mut done = false;
    let mut out = String::new();
    for line in text.split_inclusive("\r\n") {
        if !done && line.starts_with(prefix) {
            done = true;
            if let Some(replacement) = replacement {
                out.push_str(replacement);
                out.push_str("\r\n");
            }
        } else {
            out.push_str(line);
        }
    }
    assert!(done, "{prefix}");
    out
}

fn validation_error(text: &str, kind: SdpKind) -> String {
    validate(text, kind, &SdpLimits::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn validation_requires_credentials_per_transport() {
    let offer = corpus("chromium-dc-offer");
    assert_eq!(
        validation_error(&edit(offer, "a=ice-pwd", None), SdpKind::Offer),
        "line 8: missing ice-pwd"
    );
    assert_eq!(
        validation_error(&edit(offer, "a=ice-ufrag", None), SdpKind::Offer),
        "line 8: missing ice-ufrag"
    );
    assert_eq!(
        validation_error(&edit(offer, "a=fingerprint", None), SdpKind::Offer),
        "line 8: missing fingerprint"
    );
    // Session-level credentials serve every section.
    let moved = edit(offer, "a=ice-pwd", None);
    let moved = edit(
        &moved,
        "a=extmap-allow-mixed",
        Some("a=ice-pwd:VlDit2tx9gTAjkGqeqbEfwUe"),
    );
    validate(&moved, SdpKind::Offer, &SdpLimits::default()).unwrap();

    // In a BUNDLE group only the first named section needs them.
    let av = corpus("chromium-av-offer");
    let second = av.rfind("a=ice-pwd").unwrap();
    let bundled = format!(
        "{}{}",
        &av[..second],
        &av[second..].replacen("a=ice-pwd", "a=x-pwd", 1)
    );
    validate(&bundled, SdpKind::Offer, &SdpLimits::default()).unwrap();
    let first = edit(av, "a=ice-pwd", Some("a=x-pwd"));
    assert_eq!(
        validation_error(&first, SdpKind::Offer),
        "line 8: missing ice-pwd"
    );
    // Outside a group every section needs them.
    let unbundled = edit(&bundled, "a=group:BUNDLE", Some("a=group:LS 0 1"));
    assert!(validation_error(&unbundled, SdpKind::Offer).ends_with("missing ice-pwd"));
    // A rejected section needs nothing.
    let start = unbundled.find("m=video ").unwrap() + "m=video ".len();
    let end = start + unbundled[start..].find(' ').unwrap();
    let rejected = format!("{}0{}", &unbundled[..start], &unbundled[end..]);
    validate(&rejected, SdpKind::Offer, &SdpLimits::default()).unwrap();
    // A BUNDLE group naming an unknown mid is refused at the group's line.
    let unknown = edit(offer, "a=group:BUNDLE", Some("a=group:BUNDLE 0 7"));
    assert_eq!(
        validation_error(&unknown, SdpKind::Offer),
        "line 5: BUNDLE group names an unknown mid"
    );
}

#[test]
fn validation_checks_setup_for_the_kind() {
    let offer = corpus("chromium-dc-offer");
    let answer = corpus("chromium-dc-answer");
    assert_eq!(
        validation_error(offer, SdpKind::Answer),
        "line 16: setup:actpass is not allowed in an answer"
    );
    validate(answer, SdpKind::Offer, &SdpLimits::default()).unwrap();
    let holdconn = edit(answer, "a=setup", Some("a=setup:holdconn"));
    assert!(validation_error(&holdconn, SdpKind::Answer).ends_with("setup:holdconn is not allowed"));
    let passive = edit(answer, "a=setup", Some("a=setup:passive"));
    validate(&passive, SdpKind::Answer, &SdpLimits::default()).unwrap();
}

/// `validate` gathers the media-level facts while it parses; it must give the same result as
/// parsing first and running `validate_parsed` after, error for error. (Texts under the
/// default limits only, which the two-pass form does not check.)
fn validate_matches_two_passes(text: &str) {
    let limits = SdpLimits::default();
    assert!(text.len() <= limits.bytes_max);
    for kind in [SdpKind::Offer, SdpKind::Answer] {
        let two_passes = Sdp::parse(text).and_then(|sdp| {
            assert!(sdp.lines_len() <= limits.lines_max);
            validate_parsed(&sdp, kind)
        });
        assert_eq!(
            validate(text, kind, &limits),
            two_passes,
            "{kind:?}: {text:?}"
        );
    }
}

#[test]
fn validate_in_one_pass_matches_two_passes() {
    for (_, text, _) in CORPUS {
        validate_matches_two_passes(text);
        validate_matches_two_passes(&text.replace("\r\n", "\n"));
    }
    // Each error `validate` finds after parsing, at media and at session level.
    let offer = corpus("chromium-dc-offer");
    let answer = corpus("chromium-dc-answer");
    let av = corpus("chromium-av-offer");
    for text in [
        edit(offer, "a=ice-pwd", None),
        edit(offer, "a=fingerprint", None),
        edit(offer, "a=group:BUNDLE", Some("a=group:BUNDLE 0 7")),
        edit(answer, "a=setup", Some("a=setup:holdconn")),
        edit(av, "a=ice-pwd", Some("a=x-pwd")),
        edit(av, "a=group:BUNDLE", Some("a=group:LS 0 1")),
        edit(offer, "a=extmap-allow-mixed", Some("a=setup:holdconn")),
        offer.to_string(),
    ] {
        validate_matches_two_passes(&text);
    }
}

#[test]
fn parse_candidate_reads_corpus_candidate_lines() {
    for (name, text, _) in CORPUS {
        for line in text.lines().filter(|line| line.starts_with("a=candidate:")) {
            let candidate = parse_candidate(line).unwrap_or_else(|error| panic!("{name}: {error}"));
            let mut out = b"a=candidate:".to_vec();
            write_candidate(&mut out, &candidate);
            assert_eq!(std::str::from_utf8(&out).unwrap(), line, "{name}");
        }
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn token() -> impl Strategy<Value = String> {
        "[A-Za-z0-9][A-Za-z0-9_.-]{0,11}"
    }

    fn ice() -> impl Strategy<Value = String> {
        "[A-Za-z0-9+/]{4,24}"
    }

    fn attribute() -> impl Strategy<Value = String> {
        prop_oneof![
            token().prop_map(|mid| format!("mid:{mid}")),
            ice().prop_map(|ufrag| format!("ice-ufrag:{ufrag}")),
            ice().prop_map(|pwd| format!("ice-pwd:{pwd}")),
            Just("ice-options:trickle".to_string()),
            prop::collection::vec(any::<u8>(), 32).prop_map(|bytes| {
                let hex: Vec<String> = bytes.iter().map(|byte| format!("{byte:02X}")).collect();
                format!("fingerprint:sha-256 {}", hex.join(":"))
            }),
            prop::sample::select(vec!["actpass", "active", "passive"])
                .prop_map(|role| format!("setup:{role}")),
            (0u8..=127, token(), 1u32..200_000, prop::option::of(1u8..9)).prop_map(
                |(pt, name, rate, channels)| match channels {
                    Some(channels) => format!("rtpmap:{pt} {name}/{rate}/{channels}"),
                    None => format!("rtpmap:{pt} {name}/{rate}"),
                }
            ),
            (0u8..=127, token(), token()).prop_map(|(pt, key, value)| format!(
                "fmtp:{pt} {key}={value}"
            )),
            (0u8..=127, token()).prop_map(|(pt, kind)| format!("rtcp-fb:{pt} {kind}")),
            Just("rtcp-mux".to_string()),
            Just("rtcp-rsize".to_string()),
            (1u16..15, token()).prop_map(|(id, uri)| format!("extmap:{id} urn:{uri}")),
            (any::<u32>(), token()).prop_map(|(ssrc, cname)| format!("ssrc:{ssrc} cname:{cname}")),
            (any::<u32>(), any::<u32>()).prop_map(|(a, b)| format!("ssrc-group:FID {a} {b}")),
            any::<u16>().prop_map(|port| format!("sctp-port:{port}")),
            any::<u32>().prop_map(|bytes| format!("max-message-size:{bytes}")),
            (
                "[A-Za-z0-9+/]{1,32}",
                1u16..=256,
                any::<u32>(),
                any::<u16>(),
                prop::sample::select(vec!["host", "srflx", "prflx", "relay"]),
                prop::option::of(any::<u32>())
            )
                .prop_map(|(foundation, component, priority, port, kind, generation)| {
                    let mut line = format!(
                        "candidate:{foundation} {component} udp {priority} 192.0.2.1 {port} typ {kind}"
                    );
                    if kind != "host" {
                        line.push_str(" raddr 0.0.0.0 rport 0");
                    }
                    if let Some(generation) = generation {
                        line.push_str(&format!(" generation {generation} network-id 1"));
                    }
                    line
                }),
            Just("end-of-candidates".to_string()),
            prop::sample::select(vec!["sendrecv", "sendonly", "recvonly", "inactive"])
                .prop_map(str::to_string),
            (token(), token()).prop_map(|(stream, track)| format!("msid:{stream} {track}")),
            "[a-z0-9]{1,8}".prop_map(|rid| format!("rid:{rid} send")),
            "[a-z0-9]{1,8}".prop_map(|rid| format!("simulcast:send {rid}")),
            (token(), "[ -~]{0,20}").prop_map(|(name, value)| format!("x-{name}:{value}")),
        ]
    }

    fn description() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(attribute(), 0..6),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["audio", "video", "application"]),
                    any::<u16>(),
                    prop::collection::vec(0u8..=127, 1..5),
                    prop::collection::vec(attribute(), 0..12),
                ),
                0..5,
            ),
            any::<bool>(),
        )
            .prop_map(|(session, sections, lf)| {
                let mut text = String::from("v=0\no=- 1 2 IN IP4 127.0.0.1\ns=-\nt=0 0\n");
                for attribute in session {
                    text.push_str(&format!("a={attribute}\n"));
                }
                for (media, port, formats, attributes) in sections {
                    let formats: Vec<String> = formats.iter().map(u8::to_string).collect();
                    text.push_str(&format!(
                        "m={media} {port} UDP/TLS/RTP/SAVPF {}\nc=IN IP4 0.0.0.0\n",
                        formats.join(" ")
                    ));
                    for attribute in attributes {
                        text.push_str(&format!("a={attribute}\n"));
                    }
                }
                if lf {
                    text
                } else {
                    text.replace('\n', "\r\n")
                }
            })
    }

    proptest! {
        #[test]
        fn generated_descriptions_round_trip(text in description()) {
            let sdp = Sdp::parse(&text).unwrap();
            let written = write(&sdp);
            prop_assert_eq!(&written, &text);
            let again = Sdp::parse(&written).unwrap();
            prop_assert_eq!(lines_of(&again), lines_of(&sdp));
            validate_matches_two_passes(&text);
        }

        #[test]
        fn arbitrary_strings_never_panic(text in "(?s).{0,400}") {
            exercise(&text);
        }

        #[test]
        fn sdp_like_strings_never_panic(text in "([vosiuepcbtrzkam]=[ -~]{0,30}\r?\n){0,20}") {
            exercise(&text);
        }

        #[test]
        fn mutated_corpus_never_panics(
            index in 0..CORPUS.len(),
            position in any::<prop::sample::Index>(),
            insert in "[ -~\r\n]{0,8}",
            cut in 0usize..16,
        ) {
            let text = CORPUS[index].1;
            let mut at = position.index(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let end = (at + cut).min(text.len());
            let mutated = format!("{}{}{}", &text[..at], insert, &text[end..]);
            exercise(&mutated);
        }

        #[test]
        fn arbitrary_candidates_never_panic(text in "(a=)?(candidate:)?[ -~]{0,120}") {
            if let Ok(candidate) = parse_candidate(&text) {
                let mut out = Vec::new();
                write_candidate(&mut out, &candidate);
                let written = String::from_utf8(out).unwrap();
                prop_assert_eq!(parse_candidate(&written), Ok(candidate));
            }
        }
    }

    /// Parses, walks every accessor, writes and re-parses; anything accepted must round-trip.
    fn exercise(text: &str) {
        validate_matches_two_passes(text);
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
            let _ = (
                section.fingerprint().map(|f| f.bytes().count()),
                section.setup(),
            );
            for candidate in section.candidates() {
                let _ = (
                    candidate.generation(),
                    candidate.tcp_type(),
                    candidate.ufrag(),
                );
            }
        }
        let mut raw = Vec::new();
        sdp.write_to(&mut raw);
        let raw = String::from_utf8(raw).unwrap();
        assert_eq!(lines_of(&Sdp::parse(&raw).unwrap()), lines_of(&sdp));
        let typed = write_typed(&sdp);
        assert_eq!(lines_of(&Sdp::parse(&typed).unwrap()), lines_of(&sdp));
    }
}
