//! The sans-IO Binding responder, its per-source rate limiter and counters.
//!
//! [`Responder::respond`] turns one received datagram into a decision: drop
//! it, or send the bytes it wrote from a named socket to a named address.
//! The module docs of [`super`] list the steps of the loop that drives it.

use std::net::{IpAddr, SocketAddr};

use super::attr::{AttrType, ChangeRequest, TEXT_BYTES_MAX};
use super::classic::{
    encode_classic_binding_success, encode_classic_error_response, ClassicBindingSuccess,
    ClassicErrorResponse, ClassicMessage, ClassicTransactionId,
};
use super::encode::{encode_binding_success, encode_error_response, BindingSuccess, ErrorResponse};
use super::error::StunError;
use super::message::{check, Class, MessageType, Method, StunMessage, TransactionId};
use super::{HEADER_BYTES, UNKNOWN_ATTRIBUTES_MAX};

/// Short-term credentials (RFC 8489 §9.1) the responder requires when set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortTermCredentials {
    /// The USERNAME a request must carry, compared byte for byte.
    pub username: String,
    /// The password, used as the HMAC key (already OpaqueString-prepared).
    pub password: Vec<u8>,
}

/// The server's two addresses for RFC 5780. With both, the server listens on
/// four sockets: every combination of the two IPs and the two ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc5780Config {
    /// The primary address and port, the one clients are told about.
    pub primary: SocketAddr,
    /// The alternate address and port; both must differ from the primary's.
    pub alternate: SocketAddr,
}

/// How the responder behaves; fixed at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponderConfig {
    /// SOFTWARE to put in answers. Off by default: every byte an answer
    /// carries beyond the request's size helps reflection attacks.
    pub software: Option<String>,
    /// Also answer with MAPPED-ADDRESS, for RFC 3489-era clients. Off by
    /// default, for the same reason.
    pub mapped_address: bool,
    /// Serve RFC 5780 from four sockets. When `None`, requests with
    /// CHANGE-REQUEST or RESPONSE-PORT get a 420.
    pub rfc5780: Option<Rfc5780Config>,
    /// Require short-term credentials. When `None`, USERNAME and
    /// MESSAGE-INTEGRITY in requests are ignored and answers are
    /// unauthenticated.
    pub credentials: Option<ShortTermCredentials>,
}

/// One of the two addresses, or one of the two ports, of an RFC 5780 server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Which {
    /// The primary one.
    Primary,
    /// The alternate one.
    Alternate,
}

impl Which {
    fn flipped(self, flip: bool) -> Which {
        match (self, flip) {
            (which, false) => which,
            (Which::Primary, true) => Which::Alternate,
            (Which::Alternate, true) => Which::Primary,
        }
    }
}

/// Which of the (up to) four server sockets must send an answer. Without
/// RFC 5780 it is always primary/primary: the socket that received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketChoice {
    /// Primary or alternate IP address.
    pub address: Which,
    /// Primary or alternate port.
    pub port: Which,
}

impl SocketChoice {
    /// The socket that received, without RFC 5780.
    pub const PRIMARY: SocketChoice = SocketChoice {
        address: Which::Primary,
        port: Which::Primary,
    };
}

/// Whether an answer is a success or which error it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// A Binding success response.
    Success,
    /// An error response with this code (400, 401 or 420).
    Error {
        /// The ERROR-CODE value.
        code: u16,
    },
}

/// An answer the responder wrote into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// Length of the answer at the front of the output buffer.
    pub len: usize,
    /// Where to send it: the request's source, with the port replaced by
    /// RESPONSE-PORT when the request had one.
    pub destination: SocketAddr,
    /// The address to send from (the receiving socket's unless
    /// CHANGE-REQUEST asked otherwise).
    pub source: SocketAddr,
    /// The socket to send from, by role.
    pub socket: SocketChoice,
    /// Success or error.
    pub kind: ReplyKind,
}

/// Why a datagram got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Not STUN: top bits, cookie, or length did not fit.
    NotStun,
    /// STUN framing that cannot be walked (truncated attribute, trailing
    /// bytes, too many attributes), or a malformed non-request.
    Malformed,
    /// A response or an indication, which needs no answer.
    NotRequest,
    /// The FINGERPRINT did not match: RFC 8489 §7.3 treats it as not STUN.
    FingerprintMismatch,
    /// With RFC 5780, `local` was none of the four configured sockets.
    UnknownLocalSocket,
    /// The output buffer could not hold the answer; give it
    /// [`super::RESPONSE_BYTES_MAX`] bytes.
    OutputTooSmall,
}

/// The responder's decision about one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Response {
    /// Send nothing.
    Drop(DropReason),
    /// Send the answer described.
    Send(Reply),
}

/// Reason phrases: short, fixed, and the ones RFC 8489 §14.8 suggests.
const REASON_BAD_REQUEST: &str = "Bad Request";
const REASON_UNAUTHORIZED: &str = "Unauthorized";
const REASON_UNKNOWN_ATTRIBUTE: &str = "Unknown Attribute";
/// The classic ones, each a multiple of 4 bytes as RFC 3489 §11.2.9 wants.
const CLASSIC_REASON_BAD_REQUEST: &str = "Bad Request ";
const CLASSIC_REASON_UNAUTHORIZED: &str = "Unauthorized";
const CLASSIC_REASON_UNKNOWN_ATTRIBUTE: &str = "Unknown Attribute   ";
const _: () = assert!(
    CLASSIC_REASON_BAD_REQUEST.len().is_multiple_of(4)
        && CLASSIC_REASON_UNAUTHORIZED.len().is_multiple_of(4)
        && CLASSIC_REASON_UNKNOWN_ATTRIBUTE.len().is_multiple_of(4)
);

/// The Binding responder: a pure function of its config and one datagram.
#[derive(Debug, Clone)]
pub struct Responder {
    config: ResponderConfig,
}

/// What an error answer needs beyond its code.
struct ErrorContext<'a> {
    method: Method,
    transaction_id: TransactionId,
    integrity_key: Option<&'a [u8]>,
    fingerprint: bool,
}

impl Responder {
    /// Builds a responder.
    ///
    /// # Panics
    ///
    /// On a config no server can run with: SOFTWARE longer than RFC 8489
    /// allows, or RFC 5780 addresses that share an IP or a port or mix
    /// families. That is an operator's mistake, caught at start-up.
    #[must_use]
    pub fn new(config: ResponderConfig) -> Responder {
        if let Some(software) = &config.software {
            assert!(
                software.len() <= TEXT_BYTES_MAX,
                "SOFTWARE is {} bytes, RFC 8489 allows {TEXT_BYTES_MAX}",
                software.len()
            );
        }
        if let Some(rfc5780) = config.rfc5780 {
            assert!(
                rfc5780.primary.ip() != rfc5780.alternate.ip()
                    && rfc5780.primary.port() != rfc5780.alternate.port()
                    && rfc5780.primary.is_ipv4() == rfc5780.alternate.is_ipv4(),
                "RFC 5780 needs an alternate address that differs from the primary in both IP and \
                 port, in the same family; got primary {} and alternate {}",
                rfc5780.primary,
                rfc5780.alternate
            );
        }
        Responder { config }
    }

    /// The config it was built with.
    #[must_use]
    pub fn config(&self) -> &ResponderConfig {
        &self.config
    }

    /// Decides what to do with `request`, received from `source` on the
    /// socket bound to `local`, and writes any answer into `out` (give it
    /// [`super::RESPONSE_BYTES_MAX`] bytes). Allocates nothing.
    ///
    /// The checks go in RFC 8489's order: STUN at all (else drop), framing
    /// (else drop, or 400 for a request whose known attribute is
    /// malformed), FINGERPRINT (else drop), class (only requests are
    /// answered), method (400 unless Binding), credentials when configured
    /// (400 when missing, 401 when wrong), unknown comprehension-required
    /// attributes (420), then the answer.
    ///
    /// Unauthenticated answers carry XOR-MAPPED-ADDRESS and only what the
    /// config or RFC 5780 adds, and FINGERPRINT only when the request had
    /// one, so a bare 20-byte IPv4 request gets a 32-byte answer. PADDING
    /// is accepted and not echoed: padding answers would amplify.
    ///
    /// Bytes without the magic cookie go to the RFC 3489 path (see
    /// `respond_classic`): a well-formed classic Binding request gets a
    /// classic answer of the same minimal size, anything else is dropped.
    pub fn respond(
        &self,
        request: &[u8],
        source: SocketAddr,
        local: SocketAddr,
        out: &mut [u8],
    ) -> Response {
        let message = match StunMessage::parse(request) {
            Ok(message) => message,
            // No cookie, but otherwise STUN-shaped: maybe an RFC 3489 client.
            Err(StunError::BadMagicCookie { .. }) => {
                return self.respond_classic(request, source, local, out);
            }
            Err(error) => return self.respond_unparsable(request, error, source, local, out),
        };
        let fingerprint = message.has_fingerprint();
        if fingerprint && message.verify_fingerprint().is_err() {
            return Response::Drop(DropReason::FingerprintMismatch);
        }
        if message.class() != Class::Request {
            return Response::Drop(DropReason::NotRequest);
        }
        let mut context = ErrorContext {
            method: message.method(),
            transaction_id: message.transaction_id(),
            integrity_key: None,
            fingerprint,
        };
        if message.method() != Method::BINDING {
            return self.error(&context, 400, REASON_BAD_REQUEST, &[], source, local, out);
        }
        if let Some(credentials) = &self.config.credentials {
            if !message.has_integrity() || message.username().is_none() {
                return self.error(&context, 400, REASON_BAD_REQUEST, &[], source, local, out);
            }
            let username_ok = message.username() == Some(credentials.username.as_str());
            if !username_ok || message.verify_integrity(&credentials.password).is_err() {
                return self.error(&context, 401, REASON_UNAUTHORIZED, &[], source, local, out);
            }
            context.integrity_key = Some(&credentials.password);
        }
        let (unknown, unknown_len) = self.unknown_attributes(&message);
        if unknown_len > 0 {
            let listed = &unknown[..unknown_len];
            return self.error(
                &context,
                420,
                REASON_UNKNOWN_ATTRIBUTE,
                listed,
                source,
                local,
                out,
            );
        }

        let mut response = BindingSuccess {
            mapped_address: self.config.mapped_address.then_some(source),
            software: self.config.software.as_deref(),
            integrity_key: context.integrity_key,
            fingerprint,
            ..BindingSuccess::new(message.transaction_id(), source)
        };
        let mut destination = source;
        let mut send_from = local;
        let mut socket = SocketChoice::PRIMARY;
        if let Some(rfc5780) = self.config.rfc5780 {
            let Some(received_on) = locate(rfc5780, local) else {
                return Response::Drop(DropReason::UnknownLocalSocket);
            };
            if let Some(port) = message.response_port() {
                if port == 0 {
                    return self.error(&context, 400, REASON_BAD_REQUEST, &[], source, local, out);
                }
                destination.set_port(port);
            }
            let change = message.change_request().unwrap_or_default();
            let route = route(rfc5780, received_on, change);
            socket = route.socket;
            send_from = route.send_from;
            response.response_origin = Some(send_from);
            response.other_address = Some(route.other_address);
        }
        match encode_binding_success(out, &response) {
            Ok(len) => Response::Send(Reply {
                len,
                destination,
                source: send_from,
                socket,
                kind: ReplyKind::Success,
            }),
            Err(_) => Response::Drop(DropReason::OutputTooSmall),
        }
    }

    /// A message that failed to parse: drop it, unless it is a request whose
    /// framing is sound and only a known attribute's value is bad, which
    /// RFC 8489 answers with 400.
    fn respond_unparsable(
        &self,
        request: &[u8],
        error: StunError,
        source: SocketAddr,
        local: SocketAddr,
        out: &mut [u8],
    ) -> Response {
        let value_error = matches!(
            error,
            StunError::BadAttributeLength { .. } | StunError::BadAttributeValue { .. }
        );
        if check(request).is_err() {
            return Response::Drop(DropReason::NotStun);
        }
        if !value_error {
            return Response::Drop(DropReason::Malformed);
        }
        // `check` passed, so the whole header is there.
        let message_type =
            super::message::MessageType::from_u16(u16::from_be_bytes([request[0], request[1]]));
        if message_type.class != Class::Request {
            return Response::Drop(DropReason::Malformed);
        }
        let mut transaction_id = TransactionId::default();
        transaction_id.0.copy_from_slice(&request[8..HEADER_BYTES]);
        let context = ErrorContext {
            method: message_type.method,
            transaction_id,
            integrity_key: None,
            fingerprint: false,
        };
        self.error(&context, 400, REASON_BAD_REQUEST, &[], source, local, out)
    }

    /// An RFC 3489 Binding request (RFC 8489 §12): answered in its own
    /// dialect, with MAPPED-ADDRESS and the whole 128-bit id echoed, and
    /// with SOURCE-ADDRESS and CHANGED-ADDRESS (and CHANGE-REQUEST honoured)
    /// only when RFC 5780 is configured. Classic clients send CHANGE-REQUEST
    /// with no flag set in every request, so that one is answered without
    /// RFC 5780; a flag the server cannot honour gets a 420, as in the
    /// RFC 8489 path. RESPONSE-ADDRESS is never honoured (it would make the
    /// server a reflector) and gets a 420 too. RFC 3489's integrity is not
    /// RFC 8489's, so with credentials configured classic requests get 401.
    fn respond_classic(
        &self,
        request: &[u8],
        source: SocketAddr,
        local: SocketAddr,
        out: &mut [u8],
    ) -> Response {
        let message = match ClassicMessage::parse(request) {
            Ok(message) => message,
            Err(error) => {
                return self.respond_classic_unparsable(request, error, source, local, out)
            }
        };
        if message.message_type() != MessageType::BINDING_REQUEST {
            return Response::Drop(DropReason::NotRequest);
        }
        let transaction_id = message.transaction_id();
        if self.config.credentials.is_some() {
            return self.classic_error(
                transaction_id,
                401,
                CLASSIC_REASON_UNAUTHORIZED,
                &[],
                source,
                local,
                out,
            );
        }
        let change = message.change_request().unwrap_or_default();
        let mut unknown = [AttrType(0); UNKNOWN_ATTRIBUTES_MAX];
        let from_parse = message.unknown_comprehension_required();
        unknown[..from_parse.len()].copy_from_slice(from_parse);
        let mut unknown_len = from_parse.len();
        let cannot_change = self.config.rfc5780.is_none() && change != ChangeRequest::default();
        for (refused, attr_type) in [
            (
                message.raw(AttrType::RESPONSE_ADDRESS).is_some(),
                AttrType::RESPONSE_ADDRESS,
            ),
            (cannot_change, AttrType::CHANGE_REQUEST),
        ] {
            if refused && unknown_len < UNKNOWN_ATTRIBUTES_MAX {
                unknown[unknown_len] = attr_type;
                unknown_len += 1;
            }
        }
        if unknown_len > 0 {
            return self.classic_error(
                transaction_id,
                420,
                CLASSIC_REASON_UNKNOWN_ATTRIBUTE,
                &unknown[..unknown_len],
                source,
                local,
                out,
            );
        }
        let mut response = ClassicBindingSuccess {
            transaction_id,
            mapped_address: source,
            source_address: None,
            changed_address: None,
            software: self.config.software.as_deref(),
        };
        let mut send_from = local;
        let mut socket = SocketChoice::PRIMARY;
        if let Some(rfc5780) = self.config.rfc5780 {
            let Some(received_on) = locate(rfc5780, local) else {
                return Response::Drop(DropReason::UnknownLocalSocket);
            };
            let route = route(rfc5780, received_on, change);
            socket = route.socket;
            send_from = route.send_from;
            response.source_address = Some(send_from);
            response.changed_address = Some(route.other_address);
        }
        match encode_classic_binding_success(out, &response) {
            Ok(len) => Response::Send(Reply {
                len,
                destination: source,
                source: send_from,
                socket,
                kind: ReplyKind::Success,
            }),
            Err(_) => Response::Drop(DropReason::OutputTooSmall),
        }
    }

    /// Cookieless bytes that are not a well-formed classic message: not STUN
    /// unless the header was classic Binding, and a 400 for a request whose
    /// framing is sound and only a known attribute's value is bad.
    fn respond_classic_unparsable(
        &self,
        request: &[u8],
        error: StunError,
        source: SocketAddr,
        local: SocketAddr,
        out: &mut [u8],
    ) -> Response {
        match error {
            StunError::BadAttributeLength { .. } | StunError::BadAttributeValue { .. } => {
                // Only a header that passed the classic checks gets here.
                let is_request =
                    request[..2] == MessageType::BINDING_REQUEST.to_u16().to_be_bytes();
                if !is_request {
                    return Response::Drop(DropReason::Malformed);
                }
                let mut transaction_id = ClassicTransactionId::default();
                transaction_id.0.copy_from_slice(&request[4..HEADER_BYTES]);
                self.classic_error(
                    transaction_id,
                    400,
                    CLASSIC_REASON_BAD_REQUEST,
                    &[],
                    source,
                    local,
                    out,
                )
            }
            StunError::TrailingBytes { .. }
            | StunError::AttributeHeaderTruncated { .. }
            | StunError::AttributeTruncated { .. }
            | StunError::TooManyAttributes { .. } => Response::Drop(DropReason::Malformed),
            _ => Response::Drop(DropReason::NotStun),
        }
    }

    /// Writes a classic error answer, sent from the receiving socket.
    #[allow(clippy::too_many_arguments)]
    fn classic_error(
        &self,
        transaction_id: ClassicTransactionId,
        code: u16,
        reason: &str,
        unknown_attributes: &[AttrType],
        source: SocketAddr,
        local: SocketAddr,
        out: &mut [u8],
    ) -> Response {
        let socket = self
            .config
            .rfc5780
            .and_then(|rfc5780| locate(rfc5780, local))
            .unwrap_or(SocketChoice::PRIMARY);
        let response = ClassicErrorResponse {
            transaction_id,
            code,
            reason,
            unknown_attributes,
            software: self.config.software.as_deref(),
        };
        match encode_classic_error_response(out, &response) {
            Ok(len) => Response::Send(Reply {
                len,
                destination: source,
                source: local,
                socket,
                kind: ReplyKind::Error { code },
            }),
            Err(_) => Response::Drop(DropReason::OutputTooSmall),
        }
    }

    /// Unknown comprehension-required types, plus the RFC 5780 ones when
    /// RFC 5780 is off, since a server without an alternate address cannot
    /// honour them and RFC 5780 §6.1 has clients learn that from a 420.
    fn unknown_attributes(
        &self,
        message: &StunMessage<'_>,
    ) -> ([AttrType; UNKNOWN_ATTRIBUTES_MAX], usize) {
        let mut list = [AttrType(0); UNKNOWN_ATTRIBUTES_MAX];
        let from_parse = message.unknown_comprehension_required();
        list[..from_parse.len()].copy_from_slice(from_parse);
        let mut len = from_parse.len();
        if self.config.rfc5780.is_none() {
            for attr_type in [AttrType::CHANGE_REQUEST, AttrType::RESPONSE_PORT] {
                if len < UNKNOWN_ATTRIBUTES_MAX && message.get(attr_type).is_some() {
                    list[len] = attr_type;
                    len += 1;
                }
            }
        }
        (list, len)
    }

    /// Writes an error answer, sent from the receiving socket to the source.
    #[allow(clippy::too_many_arguments)]
    fn error(
        &self,
        context: &ErrorContext<'_>,
        code: u16,
        reason: &str,
        unknown_attributes: &[AttrType],
        source: SocketAddr,
        local: SocketAddr,
        out: &mut [u8],
    ) -> Response {
        let socket = self
            .config
            .rfc5780
            .and_then(|rfc5780| locate(rfc5780, local))
            .unwrap_or(SocketChoice::PRIMARY);
        let response = ErrorResponse {
            method: context.method,
            transaction_id: context.transaction_id,
            code,
            reason,
            unknown_attributes,
            software: self.config.software.as_deref(),
            integrity_key: context.integrity_key,
            fingerprint: context.fingerprint,
        };
        match encode_error_response(out, &response) {
            Ok(len) => Response::Send(Reply {
                len,
                destination: source,
                source: local,
                socket,
                kind: ReplyKind::Error { code },
            }),
            Err(_) => Response::Drop(DropReason::OutputTooSmall),
        }
    }
}

/// Where an RFC 5780 answer leaves from, and what the server's other
/// address is as seen from the receiving socket.
struct Route {
    socket: SocketChoice,
    send_from: SocketAddr,
    other_address: SocketAddr,
}

/// Applies CHANGE-REQUEST to the receiving socket. OTHER-ADDRESS (RFC 5780
/// §7.4) and CHANGED-ADDRESS (RFC 3489 §11.2.3) are both where "change IP
/// and change port" would answer from.
fn route(rfc5780: Rfc5780Config, received_on: SocketChoice, change: ChangeRequest) -> Route {
    let socket = SocketChoice {
        address: received_on.address.flipped(change.change_ip),
        port: received_on.port.flipped(change.change_port),
    };
    let other = SocketChoice {
        address: received_on.address.flipped(true),
        port: received_on.port.flipped(true),
    };
    Route {
        socket,
        send_from: socket_address(rfc5780, socket),
        other_address: socket_address(rfc5780, other),
    }
}

/// Which of the four RFC 5780 sockets `local` is, if any.
fn locate(rfc5780: Rfc5780Config, local: SocketAddr) -> Option<SocketChoice> {
    let address = if local.ip() == rfc5780.primary.ip() {
        Which::Primary
    } else if local.ip() == rfc5780.alternate.ip() {
        Which::Alternate
    } else {
        return None;
    };
    let port = if local.port() == rfc5780.primary.port() {
        Which::Primary
    } else if local.port() == rfc5780.alternate.port() {
        Which::Alternate
    } else {
        return None;
    };
    Some(SocketChoice { address, port })
}

/// The address of one of the four RFC 5780 sockets.
fn socket_address(rfc5780: Rfc5780Config, socket: SocketChoice) -> SocketAddr {
    let ip = match socket.address {
        Which::Primary => rfc5780.primary.ip(),
        Which::Alternate => rfc5780.alternate.ip(),
    };
    let port = match socket.port {
        Which::Primary => rfc5780.primary.port(),
        Which::Alternate => rfc5780.alternate.port(),
    };
    SocketAddr::new(ip, port)
}

/// Counters the shard exports. Each datagram handed to
/// [`Responder::respond`] is counted once in `received` and once in exactly
/// one of the other fields, through [`StunCounters::record`] or
/// [`StunCounters::record_rate_limited`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StunCounters {
    /// Datagrams handed to the responder, STUN or not.
    pub received: u64,
    /// Success responses sent.
    pub responses_success: u64,
    /// 400 responses sent.
    pub errors_400: u64,
    /// 401 responses sent.
    pub errors_401: u64,
    /// 420 responses sent.
    pub errors_420: u64,
    /// Error responses with any other code.
    pub errors_other: u64,
    /// Dropped: not STUN.
    pub drops_not_stun: u64,
    /// Dropped: malformed STUN.
    pub drops_malformed: u64,
    /// Dropped: a response or indication.
    pub drops_not_request: u64,
    /// Dropped: FINGERPRINT mismatch.
    pub drops_fingerprint_mismatch: u64,
    /// Dropped: received on a socket the RFC 5780 config does not name.
    pub drops_unknown_local_socket: u64,
    /// Dropped: output buffer too small (a programming error in the caller).
    pub drops_output_too_small: u64,
    /// Dropped: the source was over its rate.
    pub drops_rate_limited: u64,
}

impl StunCounters {
    /// Counts one decision of the responder that was carried out.
    pub fn record(&mut self, response: &Response) {
        self.received += 1;
        let counter = match response {
            Response::Send(Reply { kind, .. }) => match kind {
                ReplyKind::Success => &mut self.responses_success,
                ReplyKind::Error { code: 400 } => &mut self.errors_400,
                ReplyKind::Error { code: 401 } => &mut self.errors_401,
                ReplyKind::Error { code: 420 } => &mut self.errors_420,
                ReplyKind::Error { .. } => &mut self.errors_other,
            },
            Response::Drop(reason) => match reason {
                DropReason::NotStun => &mut self.drops_not_stun,
                DropReason::Malformed => &mut self.drops_malformed,
                DropReason::NotRequest => &mut self.drops_not_request,
                DropReason::FingerprintMismatch => &mut self.drops_fingerprint_mismatch,
                DropReason::UnknownLocalSocket => &mut self.drops_unknown_local_socket,
                DropReason::OutputTooSmall => &mut self.drops_output_too_small,
            },
        };
        *counter += 1;
    }

    /// Counts a datagram whose answer the rate limiter refused.
    pub fn record_rate_limited(&mut self) {
        self.received += 1;
        self.drops_rate_limited += 1;
    }

    /// Sum of every outcome; equals `received` when each datagram was
    /// recorded once.
    #[must_use]
    pub fn outcomes(&self) -> u64 {
        self.responses_success
            + self.errors_400
            + self.errors_401
            + self.errors_420
            + self.errors_other
            + self.drops_not_stun
            + self.drops_malformed
            + self.drops_not_request
            + self.drops_fingerprint_mismatch
            + self.drops_unknown_local_socket
            + self.drops_output_too_small
            + self.drops_rate_limited
    }
}

/// Limits of the per-source token bucket; fixed at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Tokens (answers) each source earns per second.
    pub rate_per_second: u32,
    /// Most tokens a source can save up: its burst.
    pub burst_max: u32,
    /// Most sources tracked at once; the table is allocated at this size
    /// (rounded up to a power of two) and never grows.
    pub sources_max: usize,
    /// Seed of the table's hash. Give it a random value at start-up, so a
    /// remote party cannot choose addresses that collide in one set.
    pub hash_seed: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            rate_per_second: 20,
            burst_max: 40,
            sources_max: 65_536,
            hash_seed: 0,
        }
    }
}

/// Slots per set of the rate limiter's table: a new source may take any of
/// the four, so a few colliding sources do not evict each other.
const RATE_LIMIT_WAYS: usize = 4;
/// Tokens are kept in thousandths so refills are exact in integers.
const MILLI_TOKENS_PER_TOKEN: u64 = 1000;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    key: u128,
    milli_tokens: u64,
    last_ms: u64,
    used: bool,
}

/// A per-source-IP token bucket with a fixed-size table, driven by the
/// caller's clock.
///
/// IPv6 sources are keyed by their /64, since one host usually owns a whole
/// /64 and could otherwise rotate addresses to escape its limit. When the
/// table's set for a new source is full, the least recently seen source in
/// that set is forgotten; a forgotten source starts again with a full burst,
/// which bounds the memory at the cost of some leniency under a flood of
/// many distinct sources.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: Box<[Bucket]>,
    set_mask: usize,
}

impl RateLimiter {
    /// Allocates the table for `config.sources_max` sources.
    ///
    /// # Panics
    ///
    /// When `sources_max` is zero or absurdly large (over 2^24), or
    /// `burst_max` is zero: an operator's mistake, caught at start-up.
    #[must_use]
    pub fn new(config: RateLimitConfig) -> RateLimiter {
        assert!(
            (1..=1 << 24).contains(&config.sources_max),
            "rate limiter sources_max must be in 1..=16777216, got {}",
            config.sources_max
        );
        assert!(config.burst_max > 0, "rate limiter burst_max must be > 0");
        let sets = config
            .sources_max
            .div_ceil(RATE_LIMIT_WAYS)
            .next_power_of_two();
        RateLimiter {
            config,
            buckets: vec![Bucket::default(); sets * RATE_LIMIT_WAYS].into_boxed_slice(),
            set_mask: sets - 1,
        }
    }

    /// Most sources the table holds.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.buckets.len()
    }

    /// Sources currently tracked.
    #[must_use]
    pub fn sources_tracked(&self) -> usize {
        self.buckets.iter().filter(|bucket| bucket.used).count()
    }

    /// Takes one token for `ip` at `now_ms`; false when it has none left.
    /// A clock that steps back is treated as standing still.
    pub fn allow(&mut self, ip: IpAddr, now_ms: u64) -> bool {
        let key = source_key(ip);
        let set = (mix(key, self.config.hash_seed) as usize) & self.set_mask;
        let ways = &mut self.buckets[set * RATE_LIMIT_WAYS..(set + 1) * RATE_LIMIT_WAYS];
        let burst_milli = u64::from(self.config.burst_max) * MILLI_TOKENS_PER_TOKEN;
        let bucket = match ways
            .iter()
            .position(|bucket| bucket.used && bucket.key == key)
        {
            Some(found) => {
                let bucket = &mut ways[found];
                let elapsed_ms = now_ms.saturating_sub(bucket.last_ms);
                // rate_per_second tokens per second is the same number of
                // thousandths of a token per millisecond.
                let earned = elapsed_ms.saturating_mul(u64::from(self.config.rate_per_second));
                bucket.milli_tokens = bucket.milli_tokens.saturating_add(earned).min(burst_milli);
                bucket.last_ms = bucket.last_ms.max(now_ms);
                bucket
            }
            None => {
                let victim = ways
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, bucket)| (bucket.used, bucket.last_ms))
                    .map_or(0, |(index, _)| index);
                ways[victim] = Bucket {
                    key,
                    milli_tokens: burst_milli,
                    last_ms: now_ms,
                    used: true,
                };
                &mut ways[victim]
            }
        };
        if bucket.milli_tokens >= MILLI_TOKENS_PER_TOKEN {
            bucket.milli_tokens -= MILLI_TOKENS_PER_TOKEN;
            true
        } else {
            false
        }
    }
}

/// The table key of a source: the IPv4 address, or the /64 of an IPv6 one,
/// tagged so the two families never share a key.
fn source_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => (1u128 << 64) | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) >> 64;
            (2u128 << 64) | prefix
        }
    }
}

/// A seeded 64-bit mix of the key (splitmix64 finaliser per half); enough
/// to spread keys over sets when the seed is secret.
fn mix(key: u128, seed: u64) -> u64 {
    let mut hash = seed ^ 0x9e37_79b9_7f4a_7c15;
    for half in [key as u64, (key >> 64) as u64] {
        hash ^= half;
        hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        hash ^= hash >> 31;
        hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
        hash ^= hash >> 29;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::super::attr::{Attribute, ChangeRequest};
    use super::super::encode::{encode_binding_request, BindingRequest, MessageWriter};
    use super::super::message::MessageType;
    use super::super::RESPONSE_BYTES_MAX;
    use super::*;

    const TID: TransactionId = TransactionId([9; 12]);

    fn client() -> SocketAddr {
        "198.51.100.7:40000".parse().unwrap()
    }

    fn primary() -> SocketAddr {
        "192.0.2.1:3478".parse().unwrap()
    }

    fn alternate() -> SocketAddr {
        "192.0.2.2:3479".parse().unwrap()
    }

    fn request(spec: BindingRequest<'_>) -> Vec<u8> {
        let mut out = vec![0u8; 512];
        let len = encode_binding_request(
            &mut out,
            &BindingRequest {
                transaction_id: TID,
                ..spec
            },
        )
        .unwrap();
        out.truncate(len);
        out
    }

    fn answer(responder: &Responder, bytes: &[u8], local: SocketAddr) -> (Response, Vec<u8>) {
        let mut out = [0u8; RESPONSE_BYTES_MAX];
        let response = responder.respond(bytes, client(), local, &mut out);
        let bytes = match response {
            Response::Send(reply) => out[..reply.len].to_vec(),
            Response::Drop(_) => Vec::new(),
        };
        (response, bytes)
    }

    fn rfc5780_responder() -> Responder {
        Responder::new(ResponderConfig {
            rfc5780: Some(Rfc5780Config {
                primary: primary(),
                alternate: alternate(),
            }),
            ..ResponderConfig::default()
        })
    }

    #[test]
    fn bare_20_byte_request_gets_a_32_byte_answer() {
        let responder = Responder::new(ResponderConfig::default());
        let bytes = request(BindingRequest::default());
        assert_eq!(bytes.len(), 20);
        let (response, out) = answer(&responder, &bytes, primary());
        let Response::Send(reply) = response else {
            panic!("dropped: {response:?}");
        };
        assert_eq!(reply.len, 32);
        assert_eq!(reply.destination, client());
        assert_eq!(reply.source, primary());
        assert_eq!(reply.kind, ReplyKind::Success);
        let message = StunMessage::parse(&out).unwrap();
        assert_eq!(message.message_type(), MessageType::BINDING_SUCCESS);
        assert_eq!(message.transaction_id(), TID);
        assert_eq!(message.xor_mapped_address(), Some(client()));
        assert_eq!(message.attributes().count(), 1);
    }

    #[test]
    fn fingerprint_is_mirrored_and_software_only_when_configured() {
        let responder = Responder::new(ResponderConfig::default());
        let bytes = request(BindingRequest {
            fingerprint: true,
            ..BindingRequest::default()
        });
        let (_, out) = answer(&responder, &bytes, primary());
        assert_eq!(out.len(), 40);
        StunMessage::parse(&out)
            .unwrap()
            .verify_fingerprint()
            .unwrap();

        let responder = Responder::new(ResponderConfig {
            software: Some("switchboard".into()),
            mapped_address: true,
            ..ResponderConfig::default()
        });
        let (_, out) = answer(&responder, &bytes, primary());
        let message = StunMessage::parse(&out).unwrap();
        assert_eq!(
            message.get(AttrType::SOFTWARE),
            Some(Attribute::Software("switchboard"))
        );
        assert_eq!(message.mapped_address(), Some(client()));
    }

    #[test]
    fn unknown_required_attributes_get_420_listing_them() {
        let responder = Responder::new(ResponderConfig::default());
        let mut bytes = [0u8; 64];
        let mut writer = MessageWriter::new(&mut bytes, MessageType::BINDING_REQUEST, TID).unwrap();
        writer.add_raw(AttrType(0x0002), &[1, 2, 3, 4]).unwrap();
        writer.add_raw(AttrType(0x8aaa), &[1]).unwrap(); // optional: ignored
        writer.add_raw(AttrType(0x7001), &[]).unwrap();
        let len = writer.finish();
        let (response, out) = answer(&responder, &bytes[..len], primary());
        assert!(matches!(
            response,
            Response::Send(Reply {
                kind: ReplyKind::Error { code: 420 },
                ..
            })
        ));
        let message = StunMessage::parse(&out).unwrap();
        assert_eq!(message.error_code().unwrap().code, 420);
        let Some(Attribute::UnknownAttributes(list)) = message.get(AttrType::UNKNOWN_ATTRIBUTES)
        else {
            panic!("no UNKNOWN-ATTRIBUTES");
        };
        assert_eq!(
            list.iter().collect::<Vec<_>>(),
            vec![AttrType(0x0002), AttrType(0x7001)]
        );
    }

    #[test]
    fn change_request_gets_420_without_rfc_5780() {
        let responder = Responder::new(ResponderConfig::default());
        let bytes = request(BindingRequest {
            change_request: Some(ChangeRequest::default()),
            response_port: Some(5000),
            ..BindingRequest::default()
        });
        let (response, out) = answer(&responder, &bytes, primary());
        assert!(matches!(
            response,
            Response::Send(Reply {
                kind: ReplyKind::Error { code: 420 },
                ..
            })
        ));
        let message = StunMessage::parse(&out).unwrap();
        let Some(Attribute::UnknownAttributes(list)) = message.get(AttrType::UNKNOWN_ATTRIBUTES)
        else {
            panic!("no UNKNOWN-ATTRIBUTES");
        };
        assert_eq!(
            list.iter().collect::<Vec<_>>(),
            vec![AttrType::CHANGE_REQUEST, AttrType::RESPONSE_PORT]
        );
    }

    #[test]
    fn rfc_5780_send_from_follows_change_request_on_every_socket() {
        let responder = rfc5780_responder();
        let sockets = [
            (Which::Primary, Which::Primary),
            (Which::Primary, Which::Alternate),
            (Which::Alternate, Which::Primary),
            (Which::Alternate, Which::Alternate),
        ];
        let config = responder.config().rfc5780.unwrap();
        for (address, port) in sockets {
            let received_on = SocketChoice { address, port };
            let local = socket_address(config, received_on);
            for (change_ip, change_port) in
                [(false, false), (true, false), (false, true), (true, true)]
            {
                let bytes = request(BindingRequest {
                    change_request: Some(ChangeRequest {
                        change_ip,
                        change_port,
                    }),
                    ..BindingRequest::default()
                });
                let (response, out) = answer(&responder, &bytes, local);
                let Response::Send(reply) = response else {
                    panic!("dropped: {response:?}");
                };
                let expected = SocketChoice {
                    address: address.flipped(change_ip),
                    port: port.flipped(change_port),
                };
                assert_eq!(
                    reply.socket, expected,
                    "from {local} with {change_ip}/{change_port}"
                );
                assert_eq!(reply.source, socket_address(config, expected));
                assert_eq!(reply.destination, client());
                let message = StunMessage::parse(&out).unwrap();
                assert_eq!(message.response_origin(), Some(reply.source));
                let other = SocketChoice {
                    address: address.flipped(true),
                    port: port.flipped(true),
                };
                assert_eq!(message.other_address(), Some(socket_address(config, other)));
                assert_eq!(message.xor_mapped_address(), Some(client()));
            }
        }
        // The primary's OTHER-ADDRESS is the configured alternate.
        let (_, out) = answer(&responder, &request(BindingRequest::default()), primary());
        assert_eq!(
            StunMessage::parse(&out).unwrap().other_address(),
            Some(alternate())
        );
    }

    #[test]
    fn response_port_changes_the_destination_only() {
        let responder = rfc5780_responder();
        let bytes = request(BindingRequest {
            response_port: Some(5555),
            ..BindingRequest::default()
        });
        let (response, out) = answer(&responder, &bytes, primary());
        let Response::Send(reply) = response else {
            panic!("dropped");
        };
        assert_eq!(reply.destination, "198.51.100.7:5555".parse().unwrap());
        assert_eq!(reply.source, primary());
        assert_eq!(
            StunMessage::parse(&out).unwrap().xor_mapped_address(),
            Some(client())
        );
        let zero = request(BindingRequest {
            response_port: Some(0),
            ..BindingRequest::default()
        });
        assert!(matches!(
            answer(&responder, &zero, primary()).0,
            Response::Send(Reply {
                kind: ReplyKind::Error { code: 400 },
                ..
            })
        ));
    }

    #[test]
    fn unknown_local_socket_is_dropped_with_rfc_5780() {
        let responder = rfc5780_responder();
        let bytes = request(BindingRequest::default());
        let elsewhere = "192.0.2.9:3478".parse().unwrap();
        assert_eq!(
            answer(&responder, &bytes, elsewhere).0,
            Response::Drop(DropReason::UnknownLocalSocket)
        );
    }

    #[test]
    fn drops_non_stun_responses_and_bad_fingerprints() {
        let responder = Responder::new(ResponderConfig::default());
        assert_eq!(
            answer(&responder, b"\x80hello", primary()).0,
            Response::Drop(DropReason::NotStun)
        );
        assert_eq!(
            answer(&responder, &[0; 19], primary()).0,
            Response::Drop(DropReason::NotStun)
        );
        let mut success = [0u8; 64];
        let len =
            encode_binding_success(&mut success, &BindingSuccess::new(TID, client())).unwrap();
        assert_eq!(
            answer(&responder, &success[..len], primary()).0,
            Response::Drop(DropReason::NotRequest)
        );
        let mut bytes = request(BindingRequest {
            fingerprint: true,
            ..BindingRequest::default()
        });
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            answer(&responder, &bytes, primary()).0,
            Response::Drop(DropReason::FingerprintMismatch)
        );
        let mut trailing = request(BindingRequest::default());
        trailing.push(0);
        assert_eq!(
            answer(&responder, &trailing, primary()).0,
            Response::Drop(DropReason::Malformed)
        );
    }

    #[test]
    fn malformed_known_attribute_and_other_methods_get_400() {
        let responder = Responder::new(ResponderConfig::default());
        let mut bytes = [0u8; 64];
        let mut writer = MessageWriter::new(&mut bytes, MessageType::BINDING_REQUEST, TID).unwrap();
        writer
            .add_raw(AttrType::XOR_MAPPED_ADDRESS, &[0, 9, 0, 0])
            .unwrap();
        let len = writer.finish();
        let (response, out) = answer(&responder, &bytes[..len], primary());
        assert!(matches!(
            response,
            Response::Send(Reply {
                kind: ReplyKind::Error { code: 400 },
                ..
            })
        ));
        assert_eq!(StunMessage::parse(&out).unwrap().transaction_id(), TID);

        let allocate = MessageType {
            method: Method(0x003),
            class: Class::Request,
        };
        let mut bytes = [0u8; 20];
        let len = MessageWriter::new(&mut bytes, allocate, TID)
            .unwrap()
            .finish();
        let (response, out) = answer(&responder, &bytes[..len], primary());
        assert!(matches!(
            response,
            Response::Send(Reply {
                kind: ReplyKind::Error { code: 400 },
                ..
            })
        ));
        assert_eq!(StunMessage::parse(&out).unwrap().method(), Method(0x003));
    }

    /// A classic request as Debian's `stun` 0.97 sends it: 128-bit id,
    /// CHANGE-REQUEST always present (`flags` 0, 4 or 2).
    fn classic_request(flags: u8) -> Vec<u8> {
        let mut bytes = vec![0x00, 0x01, 0x00, 0x08];
        bytes.extend_from_slice(&CLASSIC_TID.0);
        bytes.extend_from_slice(&[0x00, 0x03, 0x00, 0x04, 0, 0, 0, flags]);
        bytes
    }

    const CLASSIC_TID: ClassicTransactionId = ClassicTransactionId([
        0x6b, 0x45, 0x28, 0x91, 0x0a, 0x3f, 0x72, 0xc4, 0x19, 0xe0, 0x5d, 0x88, 0x31, 0x02, 0x77,
        0xab,
    ]);

    fn classic_code(response: Response) -> u16 {
        match response {
            Response::Send(Reply {
                kind: ReplyKind::Error { code },
                ..
            }) => code,
            other => panic!("not an error answer: {other:?}"),
        }
    }

    #[test]
    fn classic_request_gets_mapped_address_and_its_whole_id_back() {
        let responder = Responder::new(ResponderConfig::default());
        // The bare 20-byte request, typed by hand.
        let mut bare = vec![0x00, 0x01, 0x00, 0x00];
        bare.extend_from_slice(&CLASSIC_TID.0);
        for request in [bare, classic_request(0)] {
            let (response, out) = answer(&responder, &request, primary());
            let Response::Send(reply) = response else {
                panic!("dropped: {response:?}");
            };
            assert_eq!(reply.len, 32, "no bigger than an RFC 8489 answer");
            assert_eq!(reply.kind, ReplyKind::Success);
            assert_eq!(reply.destination, client());
            assert_eq!(reply.source, primary());
            assert_eq!(&out[..4], &[0x01, 0x01, 0x00, 0x0c]);
            assert_eq!(&out[4..20], &CLASSIC_TID.0, "the cookie's place echoed");
            assert!(StunMessage::parse(&out).is_err(), "no cookie in the answer");
            let message = ClassicMessage::parse(&out).unwrap();
            assert_eq!(message.mapped_address(), Some(client()));
            assert_eq!(
                message.attributes().count(),
                1,
                "no XOR, FINGERPRINT or SOFTWARE"
            );
        }
    }

    #[test]
    fn classic_change_request_needs_rfc_5780() {
        let responder = Responder::new(ResponderConfig::default());
        for flags in [2, 4, 6] {
            let (response, out) = answer(&responder, &classic_request(flags), primary());
            assert_eq!(classic_code(response), 420);
            let message = ClassicMessage::parse(&out).unwrap();
            assert_eq!(&out[4..20], &CLASSIC_TID.0);
            assert_eq!(message.error_code().unwrap().code, 420);
            assert_eq!(
                message.raw(AttrType::UNKNOWN_ATTRIBUTES).unwrap().value,
                &[0, 3, 0, 3]
            );
        }
    }

    #[test]
    fn classic_with_rfc_5780_honours_change_request_and_names_addresses() {
        let responder = rfc5780_responder();
        let config = responder.config().rfc5780.unwrap();
        for (address, port) in [
            (Which::Primary, Which::Primary),
            (Which::Primary, Which::Alternate),
            (Which::Alternate, Which::Primary),
            (Which::Alternate, Which::Alternate),
        ] {
            let received_on = SocketChoice { address, port };
            let local = socket_address(config, received_on);
            for (flags, change_ip, change_port) in [
                (0, false, false),
                (4, true, false),
                (2, false, true),
                (6, true, true),
            ] {
                let (response, out) = answer(&responder, &classic_request(flags), local);
                let Response::Send(reply) = response else {
                    panic!("dropped: {response:?}");
                };
                let expected = SocketChoice {
                    address: address.flipped(change_ip),
                    port: port.flipped(change_port),
                };
                assert_eq!(reply.socket, expected, "from {local} with flags {flags}");
                assert_eq!(reply.source, socket_address(config, expected));
                let message = ClassicMessage::parse(&out).unwrap();
                assert_eq!(message.mapped_address(), Some(client()));
                assert_eq!(message.source_address(), Some(reply.source));
                let other = SocketChoice {
                    address: address.flipped(true),
                    port: port.flipped(true),
                };
                assert_eq!(
                    message.changed_address(),
                    Some(socket_address(config, other))
                );
                assert!(message.raw(AttrType::FINGERPRINT).is_none());
                assert!(message.raw(AttrType::XOR_MAPPED_ADDRESS).is_none());
            }
        }
        let elsewhere = "192.0.2.9:3478".parse().unwrap();
        assert_eq!(
            answer(&responder, &classic_request(0), elsewhere).0,
            Response::Drop(DropReason::UnknownLocalSocket)
        );
    }

    #[test]
    fn classic_response_address_and_unknown_attributes_get_420() {
        let responder = rfc5780_responder();
        // RESPONSE-ADDRESS 203.0.113.5:9 would make us a reflector.
        let mut bytes = vec![0x00, 0x01, 0x00, 0x10];
        bytes.extend_from_slice(&CLASSIC_TID.0);
        bytes.extend_from_slice(&[0x00, 0x02, 0x00, 0x08, 0, 1, 0, 9, 203, 0, 113, 5]);
        bytes.extend_from_slice(&[0x00, 0x26, 0x00, 0x00]); // PADDING: not RFC 3489
        let (response, out) = answer(&responder, &bytes, primary());
        let Response::Send(reply) = response else {
            panic!("dropped");
        };
        assert_eq!(reply.kind, ReplyKind::Error { code: 420 });
        assert_eq!(reply.destination, client(), "never the RESPONSE-ADDRESS");
        let message = ClassicMessage::parse(&out).unwrap();
        assert_eq!(
            message.raw(AttrType::UNKNOWN_ATTRIBUTES).unwrap().value,
            &[0x00, 0x26, 0x00, 0x02]
        );
        // Comprehension-optional unknowns are fine.
        let mut optional = vec![0x00, 0x01, 0x00, 0x04];
        optional.extend_from_slice(&CLASSIC_TID.0);
        optional.extend_from_slice(&[0x80, 0x22, 0x00, 0x00]);
        let (response, _) = answer(&responder, &optional, primary());
        assert!(matches!(
            response,
            Response::Send(Reply {
                kind: ReplyKind::Success,
                ..
            })
        ));
    }

    #[test]
    fn classic_bad_value_gets_400_and_credentials_get_401() {
        let responder = Responder::new(ResponderConfig::default());
        let mut bytes = vec![0x00, 0x01, 0x00, 0x08];
        bytes.extend_from_slice(&CLASSIC_TID.0);
        bytes.extend_from_slice(&[0x00, 0x03, 0x00, 0x02, 0, 0, 0, 0]);
        let (response, out) = answer(&responder, &bytes, primary());
        assert_eq!(classic_code(response), 400);
        assert_eq!(
            ClassicMessage::parse(&out)
                .unwrap()
                .error_code()
                .unwrap()
                .reason,
            "Bad Request "
        );
        let responder = Responder::new(ResponderConfig {
            credentials: Some(ShortTermCredentials {
                username: "u".into(),
                password: b"p".to_vec(),
            }),
            ..ResponderConfig::default()
        });
        assert_eq!(
            classic_code(answer(&responder, &classic_request(0), primary()).0),
            401
        );
    }

    #[test]
    fn cookieless_bytes_that_are_not_classic_binding_are_dropped() {
        let responder = Responder::new(ResponderConfig {
            software: Some("switchboard".into()),
            ..ResponderConfig::default()
        });
        let not_stun = |bytes: &[u8]| answer(&responder, bytes, primary()).0;
        assert_eq!(not_stun(&[0; 20]), Response::Drop(DropReason::NotStun));
        let mut allocate = classic_request(0);
        allocate[1] = 0x03;
        assert_eq!(not_stun(&allocate), Response::Drop(DropReason::NotStun));
        let mut odd = classic_request(0);
        odd[3] = 0x07;
        assert_eq!(not_stun(&odd), Response::Drop(DropReason::NotStun));
        let mut top = classic_request(0);
        top[0] = 0x40;
        assert_eq!(not_stun(&top), Response::Drop(DropReason::NotStun));
        let mut trailing = classic_request(0);
        trailing.extend_from_slice(&[0; 4]);
        assert_eq!(not_stun(&trailing), Response::Drop(DropReason::Malformed));
        let mut truncated = classic_request(0);
        truncated[3] = 0x04;
        truncated.truncate(24);
        assert_eq!(not_stun(&truncated), Response::Drop(DropReason::Malformed));
        // A classic success response is not a request.
        let mut success = classic_request(0);
        success[0] = 0x01;
        success[1] = 0x01;
        success.truncate(20);
        success[3] = 0;
        assert_eq!(not_stun(&success), Response::Drop(DropReason::NotRequest));
        // SOFTWARE, when configured, is padded with spaces inside its length.
        let (_, out) = answer(&responder, &classic_request(0), primary());
        let message = ClassicMessage::parse(&out).unwrap();
        assert_eq!(
            message.raw(AttrType::SOFTWARE).unwrap().value,
            b"switchboard "
        );
    }

    #[test]
    fn short_term_credentials_are_enforced() {
        let responder = Responder::new(ResponderConfig {
            credentials: Some(ShortTermCredentials {
                username: "evtj:h6vY".into(),
                password: b"VOkJxbRl1RmTxUk/WvJxBt".to_vec(),
            }),
            ..ResponderConfig::default()
        });
        let code_of = |bytes: &[u8]| match answer(&responder, bytes, primary()).0 {
            Response::Send(Reply {
                kind: ReplyKind::Error { code },
                ..
            }) => code,
            Response::Send(_) => 200,
            Response::Drop(_) => 0,
        };
        assert_eq!(code_of(&request(BindingRequest::default())), 400);
        let wrong_password = request(BindingRequest {
            username: Some("evtj:h6vY"),
            integrity_key: Some(b"nope"),
            ..BindingRequest::default()
        });
        assert_eq!(code_of(&wrong_password), 401);
        let wrong_user = request(BindingRequest {
            username: Some("x:y"),
            integrity_key: Some(b"VOkJxbRl1RmTxUk/WvJxBt"),
            ..BindingRequest::default()
        });
        assert_eq!(code_of(&wrong_user), 401);
        let good = request(BindingRequest {
            username: Some("evtj:h6vY"),
            integrity_key: Some(b"VOkJxbRl1RmTxUk/WvJxBt"),
            fingerprint: true,
            ..BindingRequest::default()
        });
        assert_eq!(code_of(&good), 200);
        let (_, out) = answer(&responder, &good, primary());
        let message = StunMessage::parse(&out).unwrap();
        message.verify_integrity(b"VOkJxbRl1RmTxUk/WvJxBt").unwrap();
        message.verify_fingerprint().unwrap();
    }

    #[test]
    fn small_output_buffer_is_a_drop() {
        let responder = Responder::new(ResponderConfig::default());
        let mut out = [0u8; 31];
        let response = responder.respond(
            &request(BindingRequest::default()),
            client(),
            primary(),
            &mut out,
        );
        assert_eq!(response, Response::Drop(DropReason::OutputTooSmall));
    }

    #[test]
    #[should_panic(expected = "RFC 5780 needs an alternate address")]
    fn rfc_5780_config_must_differ_in_ip_and_port() {
        let _ = Responder::new(ResponderConfig {
            rfc5780: Some(Rfc5780Config {
                primary: primary(),
                alternate: "192.0.2.2:3478".parse().unwrap(),
            }),
            ..ResponderConfig::default()
        });
    }

    #[test]
    fn counters_partition_outcomes() {
        let responder = Responder::new(ResponderConfig::default());
        let mut counters = StunCounters::default();
        for bytes in [
            request(BindingRequest::default()),
            b"junk".to_vec(),
            request(BindingRequest {
                change_request: Some(ChangeRequest::default()),
                ..BindingRequest::default()
            }),
        ] {
            counters.record(&answer(&responder, &bytes, primary()).0);
        }
        counters.record_rate_limited();
        assert_eq!(counters.received, 4);
        assert_eq!(counters.responses_success, 1);
        assert_eq!(counters.drops_not_stun, 1);
        assert_eq!(counters.errors_420, 1);
        assert_eq!(counters.drops_rate_limited, 1);
        assert_eq!(counters.outcomes(), counters.received);
    }

    fn limiter(rate_per_second: u32, burst_max: u32, sources_max: usize) -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            rate_per_second,
            burst_max,
            sources_max,
            hash_seed: 0x1234_5678,
        })
    }

    #[test]
    fn rate_limiter_allows_a_burst_then_the_rate() {
        let mut limiter = limiter(10, 5, 64);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let mut now_ms = 1_000;
        for _ in 0..5 {
            assert!(limiter.allow(ip, now_ms));
        }
        assert!(!limiter.allow(ip, now_ms));
        // 10 per second is one per 100 ms.
        now_ms += 99;
        assert!(!limiter.allow(ip, now_ms));
        now_ms += 1;
        assert!(limiter.allow(ip, now_ms));
        assert!(!limiter.allow(ip, now_ms));
        // Over a simulated minute at 50 attempts per second, 10 per second pass.
        let mut allowed = 0;
        for _ in 0..3_000 {
            now_ms += 20;
            allowed += u32::from(limiter.allow(ip, now_ms));
        }
        assert_eq!(allowed, 600);
        // A long silence refills only up to the burst.
        now_ms += 3_600_000;
        let burst: u32 = (0..10).map(|_| u32::from(limiter.allow(ip, now_ms))).sum();
        assert_eq!(burst, 5);
        // Time stepping back neither panics nor refills.
        assert!(!limiter.allow(ip, now_ms - 10_000));
    }

    #[test]
    fn rate_limiter_sources_are_independent_and_ipv6_is_keyed_by_64() {
        let mut limiter = limiter(1, 1, 64);
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        let b: IpAddr = "198.51.100.8".parse().unwrap();
        assert!(limiter.allow(a, 0));
        assert!(!limiter.allow(a, 0));
        assert!(limiter.allow(b, 0));
        let v6_one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6_same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let v6_other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limiter.allow(v6_one, 0));
        assert!(!limiter.allow(v6_same_64, 0));
        assert!(limiter.allow(v6_other_64, 0));
    }

    #[test]
    fn rate_limiter_table_never_grows() {
        let mut limiter = limiter(1, 1, 16);
        let capacity = limiter.capacity();
        assert_eq!(capacity, 16);
        for n in 0..10_000u32 {
            let ip = IpAddr::V4(n.into());
            assert!(
                limiter.allow(ip, u64::from(n)),
                "a new source has its burst"
            );
        }
        assert_eq!(limiter.capacity(), capacity);
        assert!(limiter.sources_tracked() <= capacity);
    }
}
