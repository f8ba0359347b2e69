//! The two pieces of RFC 6455 that the raw echo needs, as plain functions over byte slices
//! (no sockets, so they are tested here): answering the HTTP/1.1 upgrade, and turning the
//! client's masked frames into the server's unmasked frames.
//!
//! It is deliberately less than a WebSocket server: no UTF-8 check of text frames, no check
//! of the reserved bits or of the opcode, no reassembly of fragments (each frame goes back
//! as it came, so a fragmented message comes back fragmented the same way), no limit but the
//! frame size. What it does not check costs nothing, which is the point of a floor.

use base64::Engine as _;
use sha1::Digest as _;

/// The GUID that RFC 6455 §4.2.2 appends to the client's key before hashing.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Longest request head accepted before the connection is refused.
pub const HEAD_BYTES_MAX: usize = 8 * 1024;

/// Largest frame payload echoed; a bigger frame ends the connection, so that a client cannot
/// make the server buffer without bound.
pub const PAYLOAD_BYTES_MAX: u64 = 1 << 20;

/// Opcode of a close frame.
const OP_CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
const OP_PING: u8 = 0x9;
/// Opcode of a pong frame.
const OP_PONG: u8 = 0xA;

/// What reading the request head found.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// The head is not complete yet.
    Incomplete,
    /// The 101 answer was appended to the output; frames start at this offset of the input.
    Accepted(usize),
    /// A 400 answer was appended to the output; the connection ends once it is sent.
    Refused,
}

/// Answers the upgrade request at the start of `input`, appending the response to `out`.
///
/// Only the `Sec-WebSocket-Key` header is read: the bench (and any browser) sends the rest
/// correctly, and checking it would be work a floor does not do.
pub fn answer_upgrade(input: &[u8], out: &mut Vec<u8>) -> Upgrade {
    let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") else {
        if input.len() > HEAD_BYTES_MAX {
            out.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            return Upgrade::Refused;
        }
        return Upgrade::Incomplete;
    };
    let key = input[..end].split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = line.split_at(colon);
        name.eq_ignore_ascii_case(b"sec-websocket-key")
            .then(|| value[1..].trim_ascii())
    });
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        out.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        return Upgrade::Refused;
    };
    let mut hash = sha1::Sha1::new();
    hash.update(key);
    hash.update(ACCEPT_GUID);
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    let accept = base64::engine::general_purpose::STANDARD.encode(hash.finalize());
    out.extend_from_slice(accept.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    Upgrade::Accepted(end + 4)
}

/// A client frame the echo cannot answer; the connection ends.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A client frame without a mask (RFC 6455 §5.1 requires one).
    Unmasked,
    /// A payload over [`PAYLOAD_BYTES_MAX`].
    TooLarge,
}

/// What [`echo_frames`] did with its input.
#[derive(Debug, PartialEq, Eq)]
pub struct Echoed {
    /// Bytes of the input taken (complete frames); the rest is an incomplete frame.
    pub used_bytes: usize,
    /// A close frame was among them (and echoed, which is the close handshake's answer).
    pub closed: bool,
}

/// Echoes every complete client frame at the start of `input` into `out` as a server frame:
/// the same first byte (a ping becomes a pong), the same length field without the mask bit,
/// and the payload unmasked. Stops after a close frame.
///
/// # Errors
/// An unmasked or oversized frame; what was echoed before it stays in `out`.
pub fn echo_frames(input: &[u8], out: &mut Vec<u8>) -> Result<Echoed, FrameError> {
    let mut used_bytes = 0;
    loop {
        let rest = &input[used_bytes..];
        if rest.len() < 2 {
            break;
        }
        let (b0, b1) = (rest[0], rest[1]);
        if b1 & 0x80 == 0 {
            return Err(FrameError::Unmasked);
        }
        let length_field_bytes = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_bytes = 2 + length_field_bytes + 4;
        if rest.len() < header_bytes {
            break;
        }
        let payload_bytes = match length_field_bytes {
            0 => u64::from(b1 & 0x7f),
            2 => u64::from(u16::from_be_bytes([rest[2], rest[3]])),
            _ => {
                let mut field = [0u8; 8];
                field.copy_from_slice(&rest[2..10]);
                u64::from_be_bytes(field)
            }
        };
        if payload_bytes > PAYLOAD_BYTES_MAX {
            return Err(FrameError::TooLarge);
        }
        // Cannot overflow: the payload is at most 1 MiB and the header at most 14 bytes.
        let frame_bytes = header_bytes + payload_bytes as usize;
        if rest.len() < frame_bytes {
            break;
        }
        let opcode = b0 & 0x0f;
        let out_b0 = if opcode == OP_PING {
            (b0 & 0xf0) | OP_PONG
        } else {
            b0
        };
        out.push(out_b0);
        out.push(b1 & 0x7f);
        out.extend_from_slice(&rest[2..2 + length_field_bytes]);
        let mask = [
            rest[header_bytes - 4],
            rest[header_bytes - 3],
            rest[header_bytes - 2],
            rest[header_bytes - 1],
        ];
        unmask_into(out, &rest[header_bytes..frame_bytes], mask);
        used_bytes += frame_bytes;
        if opcode == OP_CLOSE {
            return Ok(Echoed {
                used_bytes,
                closed: true,
            });
        }
    }
    Ok(Echoed {
        used_bytes,
        closed: false,
    })
}

/// Appends `payload` XOR the repeating 4-byte `mask` to `out`, eight bytes at a time (the
/// mask repeats every four bytes, so one 8-byte key covers every aligned word).
fn unmask_into(out: &mut Vec<u8>, payload: &[u8], mask: [u8; 4]) {
    let start = out.len();
    out.extend_from_slice(payload);
    let key = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut words = out[start..].chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ key).to_ne_bytes());
    }
    // The remainder starts at a multiple of eight, so its mask index restarts at 0.
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut f = vec![b0];
        let len = payload.len();
        if len < 126 {
            f.push(0x80 | len as u8);
        } else if len <= 0xffff {
            f.push(0x80 | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        f
    }

    #[test]
    fn rfc6455_sample_handshake_is_answered() {
        // RFC 6455 §1.3: key "dGhlIHNhbXBsZSBub25jZQ==" gives "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
        let req = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade\r\nsec-websocket-key:  dGhlIHNhbXBsZSBub25jZQ== \r\n\
                    Sec-WebSocket-Version: 13\r\n\r\n\x81";
        let mut out = Vec::new();
        assert_eq!(
            answer_upgrade(req, &mut out),
            Upgrade::Accepted(req.len() - 1)
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
        assert!(
            text.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"),
            "{text}"
        );
    }

    #[test]
    fn incomplete_and_keyless_heads() {
        let mut out = Vec::new();
        assert_eq!(
            answer_upgrade(b"GET / HTTP/1.1\r\nHost: x\r\n", &mut out),
            Upgrade::Incomplete
        );
        assert!(out.is_empty());
        assert_eq!(
            answer_upgrade(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut out),
            Upgrade::Refused
        );
        assert!(out.starts_with(b"HTTP/1.1 400 "));
        out.clear();
        assert_eq!(
            answer_upgrade(&vec![b'a'; HEAD_BYTES_MAX + 1], &mut out),
            Upgrade::Refused
        );
    }

    #[test]
    fn frames_of_every_length_form_come_back_unmasked() {
        for len in [0usize, 1, 7, 8, 9, 125, 126, 300, 65_535, 65_536, 70_001] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let input = masked(0x81, &payload, [0x37, 0xfa, 0x21, 0x3d]);
            let mut out = Vec::new();
            let echoed = echo_frames(&input, &mut out).unwrap();
            assert_eq!(
                echoed,
                Echoed {
                    used_bytes: input.len(),
                    closed: false
                }
            );
            let header_bytes = input.len() - len - 4;
            assert_eq!(out.len(), input.len() - 4);
            assert_eq!(out[0], 0x81);
            assert_eq!(out[1], input[1] & 0x7f);
            assert_eq!(&out[2..header_bytes], &input[2..header_bytes]);
            assert_eq!(&out[header_bytes..], &payload[..], "len {len}");
        }
    }

    #[test]
    fn partial_frames_wait_and_several_frames_go_together() {
        let mut input = masked(0x81, b"hello", [1, 2, 3, 4]);
        input.extend(masked(0x82, b"world!", [5, 6, 7, 8]));
        let mut out = Vec::new();
        for cut in 0..input.len() {
            out.clear();
            let first_bytes = 2 + 4 + 5;
            let expected = if cut >= first_bytes { first_bytes } else { 0 };
            assert_eq!(
                echo_frames(&input[..cut], &mut out).unwrap().used_bytes,
                expected
            );
        }
        out.clear();
        assert_eq!(
            echo_frames(&input, &mut out).unwrap().used_bytes,
            input.len()
        );
        assert_eq!(out, b"\x81\x05hello\x82\x06world!");
    }

    #[test]
    fn pings_become_pongs_and_a_close_is_echoed_last() {
        let mut input = masked(0x89, b"p", [9, 9, 9, 9]);
        input.extend(masked(0x88, &[0x03, 0xe8], [1, 1, 1, 1]));
        input.extend(masked(0x81, b"after close", [1, 1, 1, 1]));
        let mut out = Vec::new();
        let echoed = echo_frames(&input, &mut out).unwrap();
        assert!(echoed.closed);
        assert_eq!(echoed.used_bytes, 7 + 8);
        assert_eq!(out, b"\x8a\x01p\x88\x02\x03\xe8");
    }

    #[test]
    fn unmasked_and_oversized_frames_are_refused() {
        let mut out = Vec::new();
        assert_eq!(
            echo_frames(b"\x81\x01a", &mut out),
            Err(FrameError::Unmasked)
        );
        let mut big = vec![0x82, 0x80 | 127];
        big.extend_from_slice(&(PAYLOAD_BYTES_MAX + 1).to_be_bytes());
        big.extend_from_slice(&[0; 4]);
        assert_eq!(echo_frames(&big, &mut out), Err(FrameError::TooLarge));
    }
}
