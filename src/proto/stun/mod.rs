//! STUN (RFC 8489) with the NAT behaviour discovery of RFC 5780: a codec over
//! borrowed bytes, a Binding responder, a per-source rate limiter and a
//! nat-check client core. All of it is sans-IO: nothing here reads a clock,
//! draws a random number or touches a socket; time comes in as `now_ms`
//! arguments (milliseconds from any fixed origin the caller picks) and
//! randomness as transaction ids the caller supplies.
//!
//! # Serving Binding requests (the shard's loop)
//!
//! At start-up, build a [`Responder`] from a [`ResponderConfig`], a
//! [`RateLimiter`] from a [`RateLimitConfig`] (it allocates its fixed table
//! there, once) and a [`StunCounters`]. Then, for every datagram:
//!
//! 1. Receive it on one of the server's sockets: `source` is the peer,
//!    `local` the socket's own address (with RFC 5780, one of four).
//! 2. Call [`Responder::respond`] with the datagram, `source`, `local` and a
//!    [`RESPONSE_BYTES_MAX`]-byte output buffer. It allocates nothing.
//! 3. On [`Response::Drop`], count it with [`StunCounters::record`] and stop.
//! 4. On [`Response::Send`], ask [`RateLimiter::allow`] with
//!    `source.ip()` and `now_ms`. If it refuses, call
//!    [`StunCounters::record_rate_limited`] and stop. Limiting after the
//!    decision means garbage, which gets no answer anyway, spends no tokens.
//! 5. Otherwise send `out[..reply.len]` to `reply.destination` from the
//!    socket [`Reply::socket`] names (which differs from the receiving one
//!    only for RFC 5780 CHANGE-REQUEST), and [`StunCounters::record`] it.
//!
//! Over TCP (RFC 8489 §6.2.2), cut the stream with [`frame_len`] first: a
//! frame goes to step 2; `Ok(None)` means read more; an error means the
//! bytes are not STUN and that connection (only that one) should close.
//!
//! # Discovering NAT behaviour (`switchboard nat-check`)
//!
//! Build a [`NatCheck`] with a [`NatCheckConfig`], `now_ms` and a source of
//! random transaction ids. Then loop:
//!
//! 1. Drain [`NatCheck::poll_transmit`]: send each [`Transmit`] (its bytes
//!    are in the buffer you passed) to its destination from one socket.
//! 2. If [`NatCheck::poll_report`] gives a [`NatReport`], stop.
//! 3. Wait until a datagram arrives or [`NatCheck::poll_timeout`] passes.
//! 4. Feed a datagram to [`NatCheck::handle_input`], or the time to
//!    [`NatCheck::handle_timeout`], and go back to step 1.
//!
//! # RFC 3489 clients
//!
//! Requests without the magic cookie come from RFC 3489 ("classic") clients.
//! [`check`] and [`StunMessage::parse`] report them as
//! [`StunError::BadMagicCookie`]; [`ClassicMessage::parse`] accepts them when
//! they are well-formed Binding messages, and [`Responder::respond`] answers
//! classic Binding requests in their own dialect (MAPPED-ADDRESS, the whole
//! 128-bit transaction id echoed, no FINGERPRINT). RFC 3489 ran over UDP
//! only, so [`frame_len`] keeps refusing cookieless bytes on a stream.
//!
//! # Parsing by hand
//!
//! [`check`] tells whether bytes are STUN and how long the message is;
//! [`StunMessage::parse`] validates it and lends out typed [`Attribute`]s;
//! [`StunMessage::verify_integrity`] and [`StunMessage::verify_fingerprint`]
//! check the hashes. [`MessageWriter`] and the `encode_*` functions write
//! messages into a caller's buffer and return their length.

#![warn(missing_docs, unreachable_pub)]

mod attr;
mod classic;
mod encode;
mod error;
mod message;
mod natcheck;
mod server;
mod tcp;

#[cfg(test)]
mod proptests;

pub use attr::{
    AttrType, Attribute, ChangeRequest, ErrorCode, UnknownAttributes, FINGERPRINT_XOR,
    INTEGRITY_BYTES, INTEGRITY_SHA256_BYTES_MAX, INTEGRITY_SHA256_BYTES_MIN, TEXT_BYTES_MAX,
    USERNAME_BYTES_MAX,
};
pub use classic::{
    encode_classic_binding_request, encode_classic_binding_success, encode_classic_error_response,
    ClassicBindingRequest, ClassicBindingSuccess, ClassicErrorResponse, ClassicMessage,
    ClassicTransactionId,
};
pub use encode::{
    encode_binding_request, encode_binding_success, encode_error_response, BindingRequest,
    BindingSuccess, ErrorResponse, MessageWriter,
};
pub use error::StunError;
pub use message::{
    check, Attributes, Class, MessageType, Method, RawAttribute, StunMessage, TransactionId,
};
pub use natcheck::{
    Behaviour, NatCheck, NatCheckConfig, NatReport, Transmit, Undetermined,
    NAT_CHECK_REQUEST_BYTES_MAX,
};
pub use server::{
    DropReason, RateLimitConfig, RateLimiter, Reply, ReplyKind, Responder, ResponderConfig,
    Response, Rfc5780Config, ShortTermCredentials, SocketChoice, StunCounters, Which,
};
pub use tcp::{frame_len, Frames};

/// The magic cookie every RFC 5389/8489 message carries at offset 4.
pub const MAGIC_COOKIE: u32 = 0x2112_a442;

/// Length of the STUN header: type, length, cookie, transaction id.
pub const HEADER_BYTES: usize = 20;

/// Most attributes one message may carry. Real Binding traffic has fewer
/// than ten; the limit bounds the work a hostile packet can cause, since
/// every lookup walks the attributes again.
pub const ATTRIBUTES_MAX: usize = 32;

/// Most unknown comprehension-required types one message records and a 420
/// lists in UNKNOWN-ATTRIBUTES.
pub const UNKNOWN_ATTRIBUTES_MAX: usize = 8;

/// An output buffer this long always holds the responder's answer: the
/// largest is a success response with every RFC 5780 address in IPv6,
/// SOFTWARE, MESSAGE-INTEGRITY and FINGERPRINT.
pub const RESPONSE_BYTES_MAX: usize = 1024;

const _: () = assert!(
    HEADER_BYTES + 4 * (4 + 20) + (4 + TEXT_BYTES_MAX + 1) + (4 + 20) + 8 <= RESPONSE_BYTES_MAX
);
const _: () = assert!(ATTRIBUTES_MAX >= UNKNOWN_ATTRIBUTES_MAX);
