//! HTTP/1.1 request heads: WebSocket upgrade validation (RFC 6455 §4.2.1) and the few tiny
//! responses the appliance gives outside WebSocket.
//!
//! Driving it:
//!
//! 1. Append received bytes to the connection's buffer and call [`parse_head`]. `Ok(None)`
//!    means the head is not complete yet; the caller keeps reading until
//!    [`Limits::head_bytes_max`] is reached (then [`HttpError::HeadTooLarge`]).
//! 2. On a complete head, [`Request::upgrade`] checks the upgrade headers and yields the
//!    `Sec-WebSocket-Accept` value, or an error carrying the status and reason to answer.
//! 3. The caller routes by [`Request::path`] and writes the answer with
//!    [`write_upgrade_response`] or [`write_response`].

mod error;

pub use error::HttpError;

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 §1.3 appends to the client's key.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Most headers a request may carry.
pub const HEADERS_MAX: usize = 32;

/// Limits on request heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line plus headers plus the blank line).
    pub head_bytes_max: usize,
}

/// A parsed request head, borrowing the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The path without the query string.
    pub path: &'a str,
    /// The query string without the `?`, if any.
    pub query: Option<&'a str>,
    /// HTTP minor version (0 or 1).
    pub minor_version: u8,
    upgrade_websocket: bool,
    connection_upgrade: bool,
    key: Option<&'a [u8]>,
    version: Option<&'a [u8]>,
    /// The `Origin` header, if sent.
    pub origin: Option<&'a str>,
    /// The `Authorization` header, if sent.
    pub authorization: Option<&'a str>,
    /// Whether `Sec-WebSocket-Protocol` or `Sec-WebSocket-Extensions` asked for anything
    /// (neither is negotiated, so the answer simply leaves them out).
    pub has_ws_headers: bool,
}

/// Whether the comma-separated header value contains `token` (case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Parses a request head from the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed and `Ok(Some((request, head_len)))` once
/// the blank line is seen.
///
/// # Errors
/// [`HttpError::HeadTooLarge`] past the limit, [`HttpError::Malformed`] for bytes that are
/// not an HTTP/1.x request head, [`HttpError::TooManyHeaders`] past [`HEADERS_MAX`].
pub fn parse_head(buf: &[u8], limits: Limits) -> Result<Option<(Request<'_>, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut req = httparse::Request::new(&mut headers);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(_) => return Err(HttpError::Malformed),
    };
    let head_len = match status {
        httparse::Status::Partial => {
            if buf.len() >= limits.head_bytes_max {
                return Err(HttpError::HeadTooLarge);
            }
            return Ok(None);
        }
        httparse::Status::Complete(n) => n,
    };
    if head_len > limits.head_bytes_max {
        return Err(HttpError::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(HttpError::Malformed);
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut out = Request {
        method,
        path,
        query,
        minor_version,
        upgrade_websocket: false,
        connection_upgrade: false,
        key: None,
        version: None,
        origin: None,
        authorization: None,
        has_ws_headers: false,
    };
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            out.upgrade_websocket |= has_token(h.value, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            out.connection_upgrade |= has_token(h.value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            if out.key.is_some() {
                return Err(HttpError::DuplicateHeader("Sec-WebSocket-Key"));
            }
            out.key = Some(h.value);
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            out.version = Some(h.value);
        } else if name.eq_ignore_ascii_case("origin") {
            out.origin = std::str::from_utf8(h.value).ok();
        } else if name.eq_ignore_ascii_case("authorization") {
            out.authorization = std::str::from_utf8(h.value).ok();
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol")
            || name.eq_ignore_ascii_case("sec-websocket-extensions")
        {
            out.has_ws_headers = true;
        }
    }
    Ok(Some((out, head_len)))
}

impl Request<'_> {
    /// Whether the request asks for a WebSocket upgrade at all (so a failed check deserves
    /// 400/426 rather than a plain HTTP answer).
    #[must_use]
    pub fn wants_upgrade(&self) -> bool {
        self.upgrade_websocket || self.key.is_some()
    }

    /// Validates the upgrade per RFC 6455 §4.2.1 and returns the `Sec-WebSocket-Accept`
    /// value.
    ///
    /// # Errors
    /// The first requirement that fails, as an [`HttpError`] whose
    /// [`HttpError::status`] is 400, 405 or 426.
    pub fn upgrade(&self) -> Result<[u8; 28], HttpError> {
        if self.method != "GET" {
            return Err(HttpError::MethodNotAllowed);
        }
        if self.minor_version < 1 {
            return Err(HttpError::HttpVersion);
        }
        if !self.upgrade_websocket {
            return Err(HttpError::MissingUpgrade);
        }
        if !self.connection_upgrade {
            return Err(HttpError::MissingConnectionUpgrade);
        }
        let key = self.key.ok_or(HttpError::BadKey)?;
        let key = key.trim_ascii();
        let mut decoded = [0u8; 18];
        match base64::engine::general_purpose::STANDARD.decode_slice(key, &mut decoded) {
            Ok(16) => {}
            _ => return Err(HttpError::BadKey),
        }
        match self.version.map(<[u8]>::trim_ascii) {
            Some(b"13") => {}
            _ => return Err(HttpError::UnsupportedVersion),
        }
        Ok(accept_key(key))
    }
}

/// Computes `Sec-WebSocket-Accept` for a client key (RFC 6455 §4.2.2).
#[must_use]
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WS_GUID.as_bytes());
    let digest = sha.finalize();
    let mut out = [0u8; 28];
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(digest, &mut out)
        .expect("28 bytes hold the base64 of a 20-byte digest");
    debug_assert_eq!(n, 28);
    out
}

/// Appends the `101 Switching Protocols` answer.
pub fn write_upgrade_response(out: &mut Vec<u8>, accept: &[u8; 28], server: &str) {
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    out.extend_from_slice(accept);
    out.extend_from_slice(b"\r\nServer: ");
    out.extend_from_slice(server.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// The reason phrase of the statuses this server sends.
#[must_use]
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Appends a complete response with a plain-text body; the connection closes after it.
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    body: &[u8],
    extra_headers: &str,
    server: &str,
) {
    use std::io::Write as _;
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nServer: {server}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        reason_phrase(status),
        body.len()
    );
    out.extend_from_slice(body);
}

/// Appends the answer to a failed upgrade or head, with the error as the body.
pub fn write_error(out: &mut Vec<u8>, err: &HttpError, server: &str) {
    let status = err.status();
    let extra = if status == 426 {
        "Sec-WebSocket-Version: 13\r\n"
    } else if status == 405 {
        "Allow: GET\r\n"
    } else {
        ""
    };
    let mut body = [0u8; 160];
    let n = {
        use std::io::Write as _;
        let mut cur = std::io::Cursor::new(&mut body[..]);
        let _ = writeln!(cur, "{err}");
        cur.position() as usize
    };
    write_response(
        out,
        status,
        "text/plain; charset=utf-8",
        &body[..n],
        extra,
        server,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        head_bytes_max: 8192,
    };

    const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn rfc6455_accept_key_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let (req, n) = parse_head(RFC_REQUEST, LIMITS).unwrap().unwrap();
        assert_eq!(n, RFC_REQUEST.len());
        assert_eq!(req.path, "/chat");
        assert_eq!(req.origin, Some("http://example.com"));
        assert_eq!(&req.upgrade().unwrap(), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn partial_heads_need_more_and_oversized_heads_fail() {
        for cut in 0..RFC_REQUEST.len() {
            assert_eq!(
                parse_head(&RFC_REQUEST[..cut], LIMITS),
                Ok(None),
                "cut {cut}"
            );
        }
        let small = Limits { head_bytes_max: 64 };
        assert_eq!(
            parse_head(&RFC_REQUEST[..64], small),
            Err(HttpError::HeadTooLarge)
        );
        assert_eq!(HttpError::HeadTooLarge.status(), 431);
    }

    fn upgrade_of(head: &str) -> Result<[u8; 28], HttpError> {
        let (req, _) = parse_head(head.as_bytes(), LIMITS).unwrap().unwrap();
        req.upgrade()
    }

    #[test]
    fn upgrade_checks_each_requirement() {
        let ok = "GET /v1/signal?token=x HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert!(upgrade_of(ok).is_ok());
        let (req, _) = parse_head(ok.as_bytes(), LIMITS).unwrap().unwrap();
        assert_eq!((req.path, req.query), ("/v1/signal", Some("token=x")));

        let cases = [
            (ok.replace("GET", "POST"), HttpError::MethodNotAllowed, 405),
            (
                ok.replace("HTTP/1.1", "HTTP/1.0"),
                HttpError::HttpVersion,
                400,
            ),
            (
                ok.replace("Upgrade: WebSocket", "Upgrade: h2c"),
                HttpError::MissingUpgrade,
                400,
            ),
            (
                ok.replace("keep-alive, Upgrade", "keep-alive"),
                HttpError::MissingConnectionUpgrade,
                400,
            ),
            (
                ok.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
                HttpError::BadKey,
                400,
            ),
            (
                ok.replace("Version: 13", "Version: 8"),
                HttpError::UnsupportedVersion,
                426,
            ),
        ];
        for (head, err, status) in cases {
            assert_eq!(upgrade_of(&head), Err(err), "{head}");
            assert_eq!(err.status(), status);
        }
    }

    #[test]
    fn garbage_is_malformed_and_error_answers_carry_a_reason() {
        assert_eq!(
            parse_head(b"\x16\x03\x01\x00\xa5\x01\x00\x00", LIMITS),
            Err(HttpError::Malformed)
        );
        let mut out = Vec::new();
        write_error(&mut out, &HttpError::UnsupportedVersion, "switchboard");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(text.ends_with("version 13\n"), "{text}");
    }
}
