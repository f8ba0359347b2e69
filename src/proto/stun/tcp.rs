//! STUN over a byte stream (RFC 8489 §6.2.2): messages are sent back to
//! back, and the header's length field is the only boundary.

use super::error::StunError;
use super::message::check;

/// Length of the STUN message at the front of `stream`.
///
/// `Ok(Some(len))`: `stream[..len]` is one whole message, ready for
/// [`super::StunMessage::parse`]. `Ok(None)`: the bytes so far are a valid
/// start, read more. `Err`: the stream is not STUN; no amount of further
/// bytes can fix it, so the connection should be closed.
///
/// # Errors
///
/// [`StunError::NotStun`], [`StunError::BadMagicCookie`] or
/// [`StunError::LengthNotMultipleOfFour`].
pub fn frame_len(stream: &[u8]) -> Result<Option<usize>, StunError> {
    match check(stream) {
        Ok(len) => Ok(Some(len)),
        Err(StunError::Incomplete { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Iterator over the whole messages at the front of a stream buffer.
///
/// It yields each complete message in turn; when it stops,
/// [`Frames::consumed`] says how many bytes to drop from the buffer and
/// [`Frames::error`] whether it stopped on bytes that are not STUN rather
/// than on an incomplete message.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    stream: &'a [u8],
    consumed: usize,
    error: Option<StunError>,
}

impl<'a> Frames<'a> {
    /// Starts at the front of `stream`.
    #[must_use]
    pub fn new(stream: &'a [u8]) -> Self {
        Frames {
            stream,
            consumed: 0,
            error: None,
        }
    }

    /// Bytes taken by the messages yielded so far.
    #[must_use]
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// The error that stopped the iteration, if the stream is not STUN.
    #[must_use]
    pub fn error(&self) -> Option<StunError> {
        self.error
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.error.is_some() {
            return None;
        }
        let rest = &self.stream[self.consumed..];
        match frame_len(rest) {
            Ok(Some(len)) => {
                self.consumed += len;
                Some(&rest[..len])
            }
            Ok(None) => None,
            Err(error) => {
                self.error = Some(error);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::encode::{encode_binding_request, BindingRequest};
    use super::super::message::{StunMessage, TransactionId};
    use super::*;

    fn request(id: u8, software: Option<&str>) -> Vec<u8> {
        let mut out = vec![0u8; 128];
        let len = encode_binding_request(
            &mut out,
            &BindingRequest {
                transaction_id: TransactionId([id; 12]),
                software,
                fingerprint: true,
                ..BindingRequest::default()
            },
        )
        .unwrap();
        out.truncate(len);
        out
    }

    #[test]
    fn back_to_back_messages_are_cut_at_header_lengths() {
        let first = request(1, Some("a"));
        let second = request(2, None);
        let mut stream = first.clone();
        stream.extend_from_slice(&second);
        stream.extend_from_slice(&second[..7]);
        let mut frames = Frames::new(&stream);
        assert_eq!(frames.next(), Some(&first[..]));
        let frame = frames.next().unwrap();
        assert_eq!(
            StunMessage::parse(frame).unwrap().transaction_id(),
            TransactionId([2; 12])
        );
        assert_eq!(frames.next(), None);
        assert_eq!(frames.consumed(), first.len() + second.len());
        assert_eq!(frames.error(), None);
    }

    #[test]
    fn incomplete_is_not_invalid() {
        let message = request(3, Some("abc"));
        for cut in 0..message.len() {
            assert_eq!(frame_len(&message[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(frame_len(&message), Ok(Some(message.len())));
        assert!(frame_len(b"GET / HTTP/1.1\r\n").is_err());
        let mut bad_cookie = message.clone();
        bad_cookie[5] ^= 0xff;
        assert!(matches!(
            frame_len(&bad_cookie[..8]),
            Err(StunError::BadMagicCookie { .. })
        ));
        let mut frames = Frames::new(b"\x17\x03\x03");
        assert_eq!(frames.next(), None);
        assert!(frames.error().is_none(), "0x17 has its top bits clear");
        let mut frames = Frames::new(b"\xff");
        assert_eq!(frames.next(), None);
        assert_eq!(
            frames.error(),
            Some(StunError::NotStun { first_byte: 0xff })
        );
    }
}
