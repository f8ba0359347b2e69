//! Negotiation payloads shaped like Chromium's: an audio + data-channel offer of about 2 KB,
//! its answer, and trickled host/srflx candidates. Written here from the shape of what
//! Chromium emits (section order, attribute set, number formats); values vary per client so
//! that no two sessions send identical text.

use std::fmt::Write as _;

/// Candidates each side trickles after its offer or answer.
pub(crate) const CANDIDATES_PER_SIDE: usize = 8;

fn session_head(out: &mut String, seed: u64, msid: &str) {
    let _ = write!(
        out,
        "v=0\r\no=- {} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
         a=extmap-allow-mixed\r\na=msid-semantic: WMS {msid}\r\n",
        4_611_686_018_427_387_904u64.wrapping_add(seed.wrapping_mul(2_654_435_761))
            % 9_000_000_000_000_000_000
    );
}

fn transport(out: &mut String, seed: u64, setup: &str, mid: u32) {
    // Chromium lists the host candidates it has gathered by the time the description is
    // created; the rest trickle.
    for n in 0..2 {
        let _ = write!(out, "a={}\r\n", candidate(seed, n));
    }
    let ufrag = hexish(seed, 4);
    let pwd = hexish(seed ^ 0x5bd1_e995, 24);
    let _ = write!(
        out,
        "a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\na=ice-options:trickle\r\n\
         a=fingerprint:sha-256 "
    );
    for i in 0..32u64 {
        let byte = (seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(i as u32 * 2)
            >> 8) as u8;
        let _ = write!(out, "{byte:02X}");
        if i != 31 {
            out.push(':');
        }
    }
    let _ = write!(out, "\r\na=setup:{setup}\r\na=mid:{mid}\r\n");
}

/// Letters and digits from `seed`, `len` long (ICE credentials use this alphabet).
fn hexish(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % 64) as usize] as char
        })
        .collect()
}

/// A UUID-shaped identifier from `seed` (Chromium's stream and track ids).
fn uuidish(seed: u64) -> String {
    let a = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let b = a.rotate_left(29) ^ 0xd1b5_4a32_d192_ed03;
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

fn audio_section(out: &mut String, seed: u64, setup: &str, msid: &str, offer: bool) {
    let codecs = if offer {
        "111 63 9 0 8 13 110 126"
    } else {
        "111 63 110"
    };
    let _ = writeln!(out, "m=audio 9 UDP/TLS/RTP/SAVPF {codecs}\r");
    out.push_str("c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n");
    transport(out, seed, setup, 0);
    out.push_str(
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
         a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
         a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
         a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=sendrecv\r\n",
    );
    let track = uuidish(seed ^ 0x77);
    let _ = write!(
        out,
        "a=msid:{msid} {track}\r\na=rtcp-mux\r\na=rtcp-rsize\r\na=rtpmap:111 opus/48000/2\r\n\
         a=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
         a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n"
    );
    if offer {
        out.push_str(
            "a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:13 CN/8000\r\n",
        );
    }
    out.push_str("a=rtpmap:110 telephone-event/48000\r\n");
    if offer {
        out.push_str("a=rtpmap:126 telephone-event/8000\r\n");
    }
    let ssrc = (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as u32 | 1;
    let cname = hexish(seed ^ 0x99, 16);
    let _ = write!(
        out,
        "a=ssrc:{ssrc} cname:{cname}\r\na=ssrc:{ssrc} msid:{msid} {track}\r\n"
    );
}

fn data_section(out: &mut String, seed: u64, setup: &str) {
    out.push_str("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n");
    transport(out, seed, setup, 1);
    out.push_str("a=sctp-port:5000\r\na=max-message-size:262144\r\n");
}

/// An offer from client `seed` (about 2 KB).
pub(crate) fn offer(seed: u64) -> String {
    let mut out = String::with_capacity(2400);
    let msid = uuidish(seed ^ 0x1234);
    session_head(&mut out, seed, &msid);
    audio_section(&mut out, seed, "actpass", &msid, true);
    data_section(&mut out, seed, "actpass");
    out
}

/// The answer of client `seed`.
pub(crate) fn answer(seed: u64) -> String {
    let mut out = String::with_capacity(2000);
    let msid = uuidish(seed ^ 0x4321);
    session_head(&mut out, seed, &msid);
    audio_section(&mut out, seed, "active", &msid, false);
    data_section(&mut out, seed, "active");
    out
}

/// Trickled candidate `n` of client `seed`, as Chromium writes it in `candidate` (host UDP,
/// host TCP, then server-reflexive).
pub(crate) fn candidate(seed: u64, n: usize) -> String {
    let foundation = (seed.wrapping_mul(31).wrapping_add(n as u64 * 7919) % 4_000_000_000) + 1;
    let ufrag = hexish(seed, 4);
    let port = 40_000 + (seed.wrapping_mul(13).wrapping_add(n as u64 * 101) % 20_000) as usize;
    let network = n / 3 + 1;
    match n % 3 {
        0 => format!(
            "candidate:{foundation} 1 udp 2122260223 127.0.0.1 {port} typ host generation 0 \
             ufrag {ufrag} network-id {network} network-cost 10"
        ),
        1 => format!(
            "candidate:{foundation} 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active \
             generation 0 ufrag {ufrag} network-id {network} network-cost 10"
        ),
        _ => format!(
            "candidate:{foundation} 1 udp 1686052607 203.0.113.{} {port} typ srflx raddr \
             127.0.0.1 rport {port} generation 0 ufrag {ufrag} network-id {network} \
             network-cost 10",
            (seed % 250) + 1
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::sdp::{validate, SdpKind, SdpLimits};

    #[test]
    fn offer_and_answer_are_valid_and_realistic_in_size() {
        for seed in [0u64, 1, 77, u64::MAX] {
            let o = offer(seed);
            let a = answer(seed);
            assert!(
                (1800..2600).contains(&o.len()),
                "offer is {} bytes",
                o.len()
            );
            validate(&o, SdpKind::Offer, &SdpLimits::default()).expect("offer validates");
            validate(&a, SdpKind::Answer, &SdpLimits::default()).expect("answer validates");
            for n in 0..CANDIDATES_PER_SIDE {
                let c = candidate(seed, n);
                assert!(c.starts_with("candidate:"), "{c}");
                crate::proto::sdp::parse_candidate(&c).expect("candidate parses");
            }
        }
    }
}
