//! Errors of request-head parsing and upgrade validation.

use thiserror::Error;

/// Why a request head was refused; each maps to the HTTP status answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The bytes are not an HTTP/1.x request head.
    #[error("malformed HTTP request head")]
    Malformed,
    /// The head grew past the configured limit before its blank line.
    #[error("request head exceeds the configured limit (http.head_bytes_max)")]
    HeadTooLarge,
    /// More headers than the parser has room for.
    #[error("too many request headers")]
    TooManyHeaders,
    /// A header that may appear once appeared twice.
    #[error("duplicate {0} header")]
    DuplicateHeader(&'static str),
    /// A WebSocket upgrade must use GET.
    #[error("method not allowed: a WebSocket upgrade must use GET")]
    MethodNotAllowed,
    /// A WebSocket upgrade needs HTTP/1.1.
    #[error("a WebSocket upgrade needs HTTP/1.1 or later")]
    HttpVersion,
    /// The `Upgrade` header does not name `websocket`.
    #[error("missing 'Upgrade: websocket' header")]
    MissingUpgrade,
    /// The `Connection` header lacks the `Upgrade` token.
    #[error("missing 'Connection: Upgrade' header")]
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Key` is absent or not 16 bytes of base64.
    #[error("Sec-WebSocket-Key must be 16 bytes encoded in base64")]
    BadKey,
    /// `Sec-WebSocket-Version` is absent or not 13.
    #[error("unsupported Sec-WebSocket-Version: this server speaks version 13")]
    UnsupportedVersion,
}

impl HttpError {
    /// The HTTP status answered for this error.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge | HttpError::TooManyHeaders => 431,
            HttpError::MethodNotAllowed => 405,
            HttpError::UnsupportedVersion => 426,
            _ => 400,
        }
    }
}
