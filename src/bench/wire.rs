//! Just enough RFC 6455 for a load generator: the upgrade request, a check of the 101
//! response, client frames built once and masked with a fixed key, and a minimal parser for
//! the server's (unmasked) frames. Not a general WebSocket library: no extensions, no
//! validation beyond what keeps the byte stream in step.

use base64::Engine as _;
use sha1::Digest as _;

/// The GUID that RFC 6455 §4.2.2 appends to the key before hashing.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Opcode of a text frame.
pub(crate) const OP_TEXT: u8 = 0x1;
/// Opcode of a continuation frame.
pub(crate) const OP_CONTINUATION: u8 = 0x0;
/// Opcode of a binary frame.
pub(crate) const OP_BINARY: u8 = 0x2;
/// Opcode of a close frame.
pub(crate) const OP_CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
pub(crate) const OP_PING: u8 = 0x9;
/// Opcode of a pong frame.
pub(crate) const OP_PONG: u8 = 0xA;

/// The `Sec-WebSocket-Key` for client `index` (any 16 bytes, base64) and the accept value the
/// server must answer with.
pub(crate) fn handshake_key(index: usize, nonce: u64) -> (String, String) {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&(index as u64).to_le_bytes());
    raw[8..].copy_from_slice(&nonce.to_le_bytes());
    let key = base64::engine::general_purpose::STANDARD.encode(raw);
    let mut h = sha1::Sha1::new();
    h.update(key.as_bytes());
    h.update(ACCEPT_GUID);
    let accept = base64::engine::general_purpose::STANDARD.encode(h.finalize());
    (key, accept)
}

/// The HTTP/1.1 upgrade request for `path` (with query) on `host`.
pub(crate) fn upgrade_request(host: &str, path: &str, key: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// What reading the upgrade response found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Upgrade {
    /// The head is not complete yet.
    Incomplete,
    /// 101 with the right accept value; frames start at this offset.
    Accepted(usize),
    /// Any other status, or a wrong accept value: the status line, for the error count.
    Refused(String),
}

/// Checks the server's upgrade response head in `buf`.
pub(crate) fn check_upgrade(buf: &[u8], accept: &str) -> Upgrade {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > 16 * 1024 {
            return Upgrade::Refused("response head over 16 KiB".into());
        }
        return Upgrade::Incomplete;
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Upgrade::Refused(status.to_owned());
    }
    let ok = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("sec-websocket-accept") && v.trim() == accept
        })
    });
    if ok {
        Upgrade::Accepted(end + 4)
    } else {
        Upgrade::Refused("101 without the expected Sec-WebSocket-Accept".into())
    }
}

/// Appends one final, masked client frame of `opcode` carrying `payload` to `out`.
pub(crate) fn push_masked(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
}

/// A masked text frame, built once and sent many times.
pub(crate) fn masked_text(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    push_masked(&mut out, OP_TEXT, payload, mask);
    out
}

/// One server frame found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// More bytes are needed.
    Incomplete,
    /// A frame the client cannot accept (masked, reserved bits, 64-bit length over 2^40).
    Invalid,
    /// A complete frame.
    Complete {
        /// The FIN bit.
        fin: bool,
        /// The opcode.
        opcode: u8,
        /// The payload (servers do not mask).
        payload: &'a [u8],
        /// Bytes the frame takes in the buffer.
        len: usize,
    },
}

/// Parses the server frame at the start of `buf`.
pub(crate) fn parse_frame(buf: &[u8]) -> Frame<'_> {
    if buf.len() < 2 {
        return Frame::Incomplete;
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 || b1 & 0x80 != 0 {
        return Frame::Invalid;
    }
    let (header, payload_len) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Frame::Incomplete;
            }
            (4, u64::from(u16::from_be_bytes([buf[2], buf[3]])))
        }
        127 => {
            if buf.len() < 10 {
                return Frame::Incomplete;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (10, u64::from_be_bytes(b))
        }
        n => (2, u64::from(n)),
    };
    if payload_len > 1 << 40 {
        return Frame::Invalid;
    }
    let total = header + payload_len as usize;
    if buf.len() < total {
        return Frame::Incomplete;
    }
    Frame::Complete {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        payload: &buf[header..total],
        len: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_sample_accept() {
        // RFC 6455 §1.3: key "dGhlIHNhbXBsZSBub25jZQ==" gives "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
        let mut h = sha1::Sha1::new();
        h.update(b"dGhlIHNhbXBsZSBub25jZQ==");
        h.update(ACCEPT_GUID);
        let accept = base64::engine::general_purpose::STANDARD.encode(h.finalize());
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn masked_frame_unmasks_to_payload() {
        for len in [0usize, 5, 125, 126, 300, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mask = [0x37, 0xfa, 0x21, 0x3d];
            let f = masked_text(&payload, mask);
            assert_eq!(f[0], 0x81);
            assert_ne!(f[1] & 0x80, 0);
            let header = match f[1] & 0x7f {
                126 => 4,
                127 => 10,
                _ => 2,
            };
            assert_eq!(&f[header..header + 4], &mask);
            let back: Vec<u8> = f[header + 4..]
                .iter()
                .zip(mask.iter().cycle())
                .map(|(b, m)| b ^ m)
                .collect();
            assert_eq!(back, payload);
        }
    }

    #[test]
    fn server_frames_parse_incomplete_and_invalid() {
        assert_eq!(parse_frame(&[0x81]), Frame::Incomplete);
        assert_eq!(parse_frame(&[0x81, 3, b'a']), Frame::Incomplete);
        assert_eq!(
            parse_frame(&[0x81, 3, b'a', b'b', b'c', 0x89]),
            Frame::Complete {
                fin: true,
                opcode: OP_TEXT,
                payload: b"abc",
                len: 5
            }
        );
        assert_eq!(parse_frame(&[0x81, 0x83, 0, 0, 0, 0]), Frame::Invalid);
        let mut long = vec![0x01, 126, 0x01, 0x00];
        long.extend(std::iter::repeat_n(b'x', 256));
        assert!(matches!(
            parse_frame(&long),
            Frame::Complete {
                fin: false,
                len: 260,
                ..
            }
        ));
    }

    #[test]
    fn upgrade_response_is_checked() {
        let (key, accept) = handshake_key(7, 9);
        assert!(upgrade_request("h", "/p", &key).starts_with(b"GET /p HTTP/1.1\r\n"));
        let ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nsec-websocket-accept: {accept}\r\n\r\n\x01"
        );
        assert_eq!(
            check_upgrade(ok.as_bytes(), &accept),
            Upgrade::Accepted(ok.len() - 1)
        );
        assert_eq!(
            check_upgrade(b"HTTP/1.1 101 S", &accept),
            Upgrade::Incomplete
        );
        assert!(matches!(
            check_upgrade(b"HTTP/1.1 503 Busy\r\n\r\n", &accept),
            Upgrade::Refused(_)
        ));
    }
}
