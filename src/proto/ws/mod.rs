//! RFC 6455 WebSocket framing, server side, over borrowed buffers.
//!
//! The decoder never owns the receive buffer: the caller hands it a mutable view of what it
//! has received so far, and the decoder unmasks payloads in place and returns borrowed views
//! of them. Driving it:
//!
//! 1. Append received bytes to the connection's buffer.
//! 2. Call [`Decoder::decode`] on the unconsumed part. [`Decoded::Incomplete`] means "read
//!    more" (it is not an error); [`Decoded::Message`] and [`Decoded::Fragment`] say how many
//!    bytes they consumed, so advance past them and call again.
//! 3. On `Err(e)`, send a close frame with [`WsError::close_code`] and close the connection:
//!    a framing error ends that connection and touches nothing else.
//! 4. Answer [`Message::Ping`] with a pong and [`Message::Close`] with a close frame (see
//!    [`close_reply_code`]), then close the TCP connection.
//!
//! Server frames are written with [`write_frame`] and [`write_header`]; they are never
//! masked.

mod error;

pub use error::WsError;

/// Close status codes the server sends (RFC 6455 §7.4.1).
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away (server shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Data the endpoint cannot accept (e.g. binary on a text-only endpoint).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Text that is not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A policy was violated (rate limits, slow readers).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame or message over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Unexpected server condition.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The server is overloaded; try again later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// Frame opcodes (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OpCode {
    /// Continuation of a fragmented message.
    Continuation = 0x0,
    /// Text data frame.
    Text = 0x1,
    /// Binary data frame.
    Binary = 0x2,
    /// Connection close.
    Close = 0x8,
    /// Ping.
    Ping = 0x9,
    /// Pong.
    Pong = 0xA,
}

/// Size limits of one connection's decoder, fixed when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload of a single frame.
    pub frame_bytes_max: usize,
    /// Largest message, summed over all of its fragments.
    pub message_bytes_max: usize,
}

/// A complete message or control frame, borrowed from the receive buffer or from the
/// decoder's reassembly buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message; the bytes are valid UTF-8.
    Text(&'a [u8]),
    /// A binary message.
    Binary(&'a [u8]),
    /// A ping; answer with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// A close frame with its (validated) status code and reason.
    Close {
        /// The status code, if the frame carried one.
        code: Option<u16>,
        /// The UTF-8 reason.
        reason: &'a str,
    },
}

/// The result of one decode step.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A message is ready; `consumed` bytes of the input were used.
    Message {
        /// The message.
        message: Message<'a>,
        /// Bytes of the input this step consumed.
        consumed: usize,
    },
    /// A fragment of a message was absorbed into the reassembly buffer.
    Fragment {
        /// Bytes of the input this step consumed.
        consumed: usize,
    },
    /// The input does not yet hold a whole frame; at least `needed` more bytes are required.
    Incomplete {
        /// Lower bound of the bytes still missing.
        needed: usize,
    },
}

/// State of a fragmented message in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fragmented {
    None,
    Text,
    Binary,
}

/// Per-connection frame decoder (server side: client frames must be masked).
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    fragmented: Fragmented,
    /// Reassembly buffer for fragmented messages; its capacity is released after large
    /// messages so that idle connections stay small.
    assembly: Vec<u8>,
    /// Bytes of `assembly` already known to be valid UTF-8 (text messages only).
    utf8_valid_len: usize,
}

/// Capacity the reassembly buffer may keep between messages.
const ASSEMBLY_KEEP_BYTES_MAX: usize = 16 * 1024;

/// Parsed fixed part of a frame header.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    header_len: usize,
    payload_len: usize,
}

impl Decoder {
    /// A decoder with the given limits.
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            fragmented: Fragmented::None,
            assembly: Vec::new(),
            utf8_valid_len: 0,
        }
    }

    /// The limits this decoder enforces.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether a fragmented message is in progress.
    #[must_use]
    pub fn in_message(&self) -> bool {
        self.fragmented != Fragmented::None
    }

    /// Checks the header at the start of `buf` without consuming anything.
    fn check_header(&self, buf: &[u8]) -> Result<Option<Header>, WsError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let b0 = buf[0];
        let b1 = buf[1];
        if b0 & 0x70 != 0 {
            return Err(WsError::ReservedBits);
        }
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0F;
        match opcode {
            0x0..=0x2 | 0x8..=0xA => {}
            other => return Err(WsError::ReservedOpcode(other)),
        }
        if b1 & 0x80 == 0 {
            return Err(WsError::Unmasked);
        }
        let len7 = b1 & 0x7F;
        let (len, mut header_len) = match len7 {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4usize)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                let len = u64::from_be_bytes(b);
                if len >> 63 != 0 {
                    return Err(WsError::LengthMsbSet);
                }
                (len, 10usize)
            }
            n => (u64::from(n), 2usize),
        };
        if opcode >= 0x8 {
            if len > 125 {
                return Err(WsError::ControlTooLong(len));
            }
            if !fin {
                return Err(WsError::ControlFragmented);
            }
        }
        if len > self.limits.frame_bytes_max as u64 {
            return Err(WsError::FrameTooLarge {
                len,
                max: self.limits.frame_bytes_max,
            });
        }
        // Order checks against the message in progress before waiting for the payload, so
        // that protocol errors are reported as soon as the header is visible.
        match (opcode, self.fragmented) {
            (0x0, Fragmented::None) => return Err(WsError::UnexpectedContinuation),
            (0x1 | 0x2, Fragmented::Text | Fragmented::Binary) => {
                return Err(WsError::ExpectedContinuation)
            }
            _ => {}
        }
        if opcode == 0x0 {
            let total = self.assembly.len() as u64 + len;
            if total > self.limits.message_bytes_max as u64 {
                return Err(WsError::MessageTooLarge {
                    len: total,
                    max: self.limits.message_bytes_max,
                });
            }
        } else if opcode < 0x8 && len > self.limits.message_bytes_max as u64 {
            return Err(WsError::MessageTooLarge {
                len,
                max: self.limits.message_bytes_max,
            });
        }
        if buf.len() < header_len + 4 {
            return Ok(None);
        }
        let mask = [
            buf[header_len],
            buf[header_len + 1],
            buf[header_len + 2],
            buf[header_len + 3],
        ];
        header_len += 4;
        // The limit check above bounds `len` by a usize, so this conversion is lossless.
        let payload_len = len as usize;
        Ok(Some(Header {
            fin,
            opcode,
            mask,
            header_len,
            payload_len,
        }))
    }

    /// Decodes one frame from the start of `buf`, unmasking its payload in place.
    ///
    /// # Errors
    /// A [`WsError`] when the frame stream violates RFC 6455 or the limits; the connection
    /// must then be closed with [`WsError::close_code`].
    pub fn decode<'a>(&'a mut self, buf: &'a mut [u8]) -> Result<Decoded<'a>, WsError> {
        let Some(h) = self.check_header(buf)? else {
            return Ok(Decoded::Incomplete {
                needed: needed_for_header(buf),
            });
        };
        let total = h.header_len + h.payload_len;
        if buf.len() < total {
            return Ok(Decoded::Incomplete {
                needed: total - buf.len(),
            });
        }
        let payload = &mut buf[h.header_len..total];
        unmask(payload, h.mask);
        let payload: &'a [u8] = payload;
        let consumed = total;
        let message = match h.opcode {
            0x1 if h.fin => {
                if simdutf8::basic::from_utf8(payload).is_err() {
                    return Err(WsError::InvalidUtf8);
                }
                Message::Text(payload)
            }
            0x2 if h.fin => Message::Binary(payload),
            0x1 | 0x2 => {
                self.fragmented = if h.opcode == 0x1 {
                    Fragmented::Text
                } else {
                    Fragmented::Binary
                };
                self.assembly.clear();
                self.utf8_valid_len = 0;
                self.append_fragment(payload)?;
                return Ok(Decoded::Fragment { consumed });
            }
            0x0 => {
                self.append_fragment(payload)?;
                if !h.fin {
                    return Ok(Decoded::Fragment { consumed });
                }
                let kind = self.fragmented;
                self.fragmented = Fragmented::None;
                if kind == Fragmented::Text && self.utf8_valid_len != self.assembly.len() {
                    // The message ends inside a multi-byte sequence.
                    return Err(WsError::InvalidUtf8);
                }
                let data: &'a [u8] = &self.assembly;
                if kind == Fragmented::Text {
                    Message::Text(data)
                } else {
                    Message::Binary(data)
                }
            }
            0x8 => parse_close(payload)?,
            0x9 => Message::Ping(payload),
            0xA => Message::Pong(payload),
            _ => unreachable!("opcode checked in check_header"),
        };
        Ok(Decoded::Message { message, consumed })
    }

    /// Releases a large reassembly buffer after its message was handled, so that idle
    /// connections keep only small buffers.
    pub fn release_assembly(&mut self) {
        if self.fragmented == Fragmented::None && self.assembly.capacity() > ASSEMBLY_KEEP_BYTES_MAX
        {
            self.assembly = Vec::new();
        }
    }

    fn append_fragment(&mut self, payload: &[u8]) -> Result<(), WsError> {
        self.assembly.extend_from_slice(payload);
        if self.fragmented == Fragmented::Text {
            // Validate only what is new, keeping an incomplete trailing sequence pending, so
            // a message with invalid UTF-8 fails at the first bad fragment, not at its end.
            let pending = &self.assembly[self.utf8_valid_len..];
            match simdutf8::compat::from_utf8(pending) {
                Ok(_) => self.utf8_valid_len = self.assembly.len(),
                Err(e) => {
                    if e.error_len().is_some() {
                        return Err(WsError::InvalidUtf8);
                    }
                    self.utf8_valid_len += e.valid_up_to();
                }
            }
        }
        Ok(())
    }
}

/// The smallest number of bytes that could complete the header at the start of `buf`.
fn needed_for_header(buf: &[u8]) -> usize {
    let want: usize = match buf.get(1) {
        None => 2 + 4,
        Some(b1) => match b1 & 0x7F {
            126 => 4 + 4,
            127 => 10 + 4,
            _ => 2 + 4,
        },
    };
    want.saturating_sub(buf.len()).max(1)
}

/// Whether a received close code may appear on the wire (RFC 6455 §7.4). Codes 1012–1014
/// are registered later by IANA but are treated as invalid to match Autobahn's cases.
#[must_use]
pub fn close_code_is_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

fn parse_close(payload: &[u8]) -> Result<Message<'_>, WsError> {
    match payload.len() {
        0 => Ok(Message::Close {
            code: None,
            reason: "",
        }),
        1 => Err(WsError::CloseTooShort),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !close_code_is_valid(code) {
                return Err(WsError::BadCloseCode(code));
            }
            let reason =
                simdutf8::basic::from_utf8(&payload[2..]).map_err(|_| WsError::InvalidUtf8)?;
            Ok(Message::Close {
                code: Some(code),
                reason,
            })
        }
    }
}

/// The status code to answer a received close frame with: the peer's code echoed, or
/// none when the peer sent none.
#[must_use]
pub fn close_reply_code(received: Option<u16>) -> Option<u16> {
    received
}

/// XORs `payload` with the 4-byte `mask`, eight bytes at a time.
///
/// The word loop is written so the compiler turns it into SIMD on x86-64 and AArch64; the
/// mask is rotated once, not per byte.
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let mask64 = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_ne_bytes(word) ^ mask64;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Length of a server frame header for a payload of `len` bytes.
#[must_use]
pub const fn header_len(len: usize) -> usize {
    if len < 126 {
        2
    } else if len <= 0xFFFF {
        4
    } else {
        10
    }
}

/// Writes an unmasked server frame header with FIN set into `out`, returning its length.
pub fn write_header(out: &mut [u8; 10], opcode: OpCode, len: usize) -> usize {
    out[0] = 0x80 | opcode as u8;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if len <= 0xFFFF {
        out[1] = 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// Appends one unmasked frame whose payload is the concatenation of `parts`.
pub fn write_frame(out: &mut Vec<u8>, opcode: OpCode, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut header = [0u8; 10];
    let n = write_header(&mut header, opcode, len);
    out.reserve(n + len);
    out.extend_from_slice(&header[..n]);
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// Appends a close frame; `reason` is cut to fit the 125-byte control payload limit.
pub fn write_close(out: &mut Vec<u8>, code: Option<u16>, reason: &str) {
    match code {
        None => write_frame(out, OpCode::Close, &[]),
        Some(code) => {
            let mut cut = reason.len().min(123);
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            write_frame(
                out,
                OpCode::Close,
                &[&code.to_be_bytes(), &reason.as_bytes()[..cut]],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        frame_bytes_max: 1 << 16,
        message_bytes_max: 1 << 20,
    };

    /// Builds a masked client frame.
    fn client_frame(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![b0];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        let mut body = payload.to_vec();
        unmask(&mut body, mask);
        out.extend_from_slice(&body);
        out
    }

    fn decode_all(dec: &mut Decoder, mut buf: Vec<u8>) -> Vec<Result<String, WsError>> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            match dec.decode(&mut buf[pos..]) {
                Ok(Decoded::Message { message, consumed }) => {
                    out.push(Ok(format!("{message:?}")));
                    pos += consumed;
                }
                Ok(Decoded::Fragment { consumed }) => pos += consumed,
                Ok(Decoded::Incomplete { .. }) => break,
                Err(e) => {
                    out.push(Err(e));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn rfc6455_single_frame_masked_text() {
        // RFC 6455 §5.7: a single-frame masked text message containing "Hello".
        let mut buf = vec![
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mut dec = Decoder::new(LIMITS);
        let got = dec.decode(&mut buf).unwrap();
        assert_eq!(
            got,
            Decoded::Message {
                message: Message::Text(b"Hello"),
                consumed: 11
            }
        );
    }

    #[test]
    fn rfc6455_unmasked_frame_is_rejected() {
        // RFC 6455 §5.7: the unmasked "Hello" frame is what a server sends, never receives.
        let mut buf = vec![0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let mut dec = Decoder::new(LIMITS);
        assert_eq!(dec.decode(&mut buf), Err(WsError::Unmasked));
        assert_eq!(WsError::Unmasked.close_code(), 1002);
    }

    #[test]
    fn incomplete_is_not_an_error_at_every_cut() {
        let frame = client_frame(0x81, &[b'x'; 300], [1, 2, 3, 4]);
        for cut in 0..frame.len() {
            let mut part = frame[..cut].to_vec();
            let mut dec = Decoder::new(LIMITS);
            match dec.decode(&mut part) {
                Ok(Decoded::Incomplete { needed }) => {
                    assert!(needed >= 1 && cut + needed <= frame.len(), "cut {cut}");
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn fragments_reassemble_and_interleave_control_frames() {
        let mut buf = client_frame(0x01, b"Hel", [9, 8, 7, 6]);
        buf.extend(client_frame(0x89, b"p", [1, 1, 1, 1]));
        buf.extend(client_frame(0x80, b"lo", [5, 5, 5, 5]));
        let mut dec = Decoder::new(LIMITS);
        let got = decode_all(&mut dec, buf);
        assert_eq!(
            got,
            vec![
                Ok(format!("{:?}", Message::Ping(b"p"))),
                Ok(format!("{:?}", Message::Text(b"Hello")))
            ]
        );
    }

    #[test]
    fn utf8_split_across_fragments_is_valid_and_bad_utf8_fails_fast() {
        let euro = "€".as_bytes();
        let mut buf = client_frame(0x01, &euro[..1], [1, 2, 3, 4]);
        buf.extend(client_frame(0x80, &euro[1..], [4, 3, 2, 1]));
        let mut dec = Decoder::new(LIMITS);
        assert_eq!(
            decode_all(&mut dec, buf),
            vec![Ok(format!("{:?}", Message::Text(euro)))]
        );

        // The first fragment already holds an invalid byte: fail before the message ends.
        let mut dec = Decoder::new(LIMITS);
        let mut bad = client_frame(0x01, &[b'a', 0xFF], [0, 0, 0, 0]);
        assert_eq!(dec.decode(&mut bad), Err(WsError::InvalidUtf8));
        assert_eq!(WsError::InvalidUtf8.close_code(), 1007);

        // A message that ends inside a sequence is invalid too.
        let mut dec = Decoder::new(LIMITS);
        let mut buf = client_frame(0x01, b"a", [0; 4]);
        buf.extend(client_frame(0x80, &euro[..2], [0; 4]));
        assert_eq!(decode_all(&mut dec, buf), vec![Err(WsError::InvalidUtf8)]);
    }

    #[test]
    fn protocol_errors_map_to_close_codes() {
        let cases: Vec<(Vec<u8>, WsError)> = vec![
            (client_frame(0xC1, b"x", [0; 4]), WsError::ReservedBits),
            (client_frame(0x83, b"x", [0; 4]), WsError::ReservedOpcode(3)),
            (
                client_frame(0x0B, b"", [0; 4]),
                WsError::ReservedOpcode(0xB),
            ),
            (client_frame(0x09, b"", [0; 4]), WsError::ControlFragmented),
            (
                client_frame(0x89, &[0; 126], [0; 4]),
                WsError::ControlTooLong(126),
            ),
            (
                client_frame(0x80, b"x", [0; 4]),
                WsError::UnexpectedContinuation,
            ),
            (client_frame(0x88, &[3], [0; 4]), WsError::CloseTooShort),
            (
                client_frame(0x88, &1005u16.to_be_bytes(), [0; 4]),
                WsError::BadCloseCode(1005),
            ),
        ];
        for (mut buf, want) in cases {
            let mut dec = Decoder::new(LIMITS);
            assert_eq!(dec.decode(&mut buf), Err(want), "{want}");
            assert_eq!(want.close_code(), 1002);
        }
        let mut buf = client_frame(0x01, b"a", [0; 4]);
        buf.extend(client_frame(0x81, b"b", [0; 4]));
        let mut dec = Decoder::new(LIMITS);
        assert_eq!(
            decode_all(&mut dec, buf),
            vec![Err(WsError::ExpectedContinuation)]
        );
    }

    #[test]
    fn size_limits_give_1009() {
        let limits = Limits {
            frame_bytes_max: 100,
            message_bytes_max: 150,
        };
        let mut dec = Decoder::new(limits);
        // The header alone is enough to reject an oversized frame.
        let mut head = client_frame(0x82, &[0; 101], [0; 4])[..8].to_vec();
        let err = dec.decode(&mut head).unwrap_err();
        assert_eq!(err.close_code(), 1009);

        let mut dec = Decoder::new(limits);
        let mut buf = client_frame(0x02, &[0; 100], [0; 4]);
        buf.extend(client_frame(0x80, &[0; 51], [0; 4]));
        let got = decode_all(&mut dec, buf);
        assert!(matches!(got[..], [Err(WsError::MessageTooLarge { .. })]));

        let mut buf = client_frame(0x82, &[0; 8], [0; 4]);
        buf[1] = 0x80 | 127;
        buf.splice(2..2, [0x80, 0, 0, 0, 0, 0, 0, 0]);
        let mut dec = Decoder::new(limits);
        assert_eq!(dec.decode(&mut buf), Err(WsError::LengthMsbSet));
    }

    #[test]
    fn close_frames_validate_code_and_reason() {
        let mut ok = client_frame(0x88, &[0x03, 0xE8, b'b', b'y', b'e'], [1, 2, 3, 4]);
        let mut dec = Decoder::new(LIMITS);
        assert_eq!(
            dec.decode(&mut ok).unwrap(),
            Decoded::Message {
                message: Message::Close {
                    code: Some(1000),
                    reason: "bye"
                },
                consumed: 11
            }
        );
        let mut bad_reason = client_frame(0x88, &[0x03, 0xE8, 0xC0], [0; 4]);
        assert_eq!(dec.decode(&mut bad_reason), Err(WsError::InvalidUtf8));
        for code in [
            0u16, 999, 1004, 1005, 1006, 1012, 1015, 1016, 1100, 2000, 2999, 5000,
        ] {
            assert!(!close_code_is_valid(code), "{code}");
        }
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999,
        ] {
            assert!(close_code_is_valid(code), "{code}");
        }
    }

    #[test]
    fn unmask_matches_bytewise_for_all_lengths_and_offsets() {
        let mask = [0xA1, 0x5C, 0x03, 0xFE];
        for len in 0..70 {
            let orig: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut fast = orig.clone();
            unmask(&mut fast, mask);
            let slow: Vec<u8> = orig
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(fast, slow, "len {len}");
        }
    }

    #[test]
    fn writer_uses_minimal_length_encoding() {
        for (len, hl) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
        ] {
            let mut out = Vec::new();
            write_frame(&mut out, OpCode::Binary, &[&vec![0u8; len]]);
            assert_eq!(out.len(), hl + len);
            assert_eq!(header_len(len), hl);
            assert_eq!(out[0], 0x82);
        }
        let mut out = Vec::new();
        write_close(&mut out, Some(1000), &"é".repeat(100));
        assert!(out.len() - 2 <= 125);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
    }
}
