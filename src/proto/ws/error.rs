//! Errors of the WebSocket framing layer.

use thiserror::Error;

/// Why a peer's frame stream was rejected. Every variant maps to the close code the server
/// sends before it closes the connection (RFC 6455 §7.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WsError {
    /// RSV1–RSV3 were set but no extension was negotiated.
    #[error("reserved bits set in frame header (no extension negotiated)")]
    ReservedBits,
    /// An opcode RFC 6455 reserves (3–7, 11–15).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A client frame without the mask bit (RFC 6455 §5.1 requires masking).
    #[error("client frame is not masked")]
    Unmasked,
    /// A control frame with a payload over 125 bytes.
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLong(u64),
    /// A control frame with FIN clear.
    #[error("control frame is fragmented")]
    ControlFragmented,
    /// A continuation frame with no message in progress.
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A new data frame while a fragmented message is still open.
    #[error("new data frame while a fragmented message is open")]
    ExpectedContinuation,
    /// The 64-bit length had its most significant bit set.
    #[error("frame length has the most significant bit set")]
    LengthMsbSet,
    /// A single frame over the configured frame limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Declared payload length.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// A (possibly fragmented) message over the configured message limit.
    #[error("message of at least {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// Bytes the message has reached.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// A text message (or close reason) that is not valid UTF-8.
    #[error("text payload is not valid UTF-8")]
    InvalidUtf8,
    /// A close frame whose payload is a single byte.
    #[error("close frame payload of 1 byte cannot hold a status code")]
    CloseTooShort,
    /// A close frame carrying a status code that may not be sent on the wire.
    #[error("close frame carries status code {0}, which may not be sent")]
    BadCloseCode(u16),
}

impl WsError {
    /// The close code the server sends for this error (RFC 6455 §7.4.1).
    #[must_use]
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::InvalidUtf8 => super::close::INVALID_PAYLOAD,
            WsError::FrameTooLarge { .. } | WsError::MessageTooLarge { .. } => {
                super::close::TOO_BIG
            }
            _ => super::close::PROTOCOL_ERROR,
        }
    }
}
