//! SDP (RFC 8866) as WebRTC uses it (RFC 8829): a parser that borrows the text and allocates
//! nothing, a builder, the relay's offer/answer validator, and the ICE candidate parser.
//!
//! # How a description is parsed
//!
//! [`Sdp::parse`] walks the text once, line by line:
//!
//! 1. Refuse text over [`TEXT_BYTES_MAX`]; note whether the first line ends in CRLF or LF.
//! 2. Cut the next line at `\n` and drop a trailing `\r`, counting lines from 1 (eight bytes
//!    are tested at a time for the bytes below 0x0E, which holds LF, CR and NUL). A blank line
//!    ends the text if only line endings follow it; anywhere else it is an error.
//! 3. Check the `<letter>=` prefix, then the line's place in the order of RFC 8866 §5
//!    (`v o s i u e p c b t r z k a` at session level, `m i c b k a` per media section, one
//!    table lookup), and that `o=`, `s=` and `t=` came before anything that must follow them.
//! 4. Check the value's grammar: the fields of `o c b t m`, and for `a=` the attributes
//!    WebRTC sends ([`Attribute`]), including the full candidate grammar of RFC 8839 and the
//!    fingerprint's hex and length. Unknown attributes are kept as a raw name and value. The
//!    attribute parser is inlined into this loop, so the typed value is checked but not built.
//! 5. Count attributes against [`ATTRIBUTES_MAX`]; on `m=`, close the previous section and
//!    record the new one (its byte range and line) against [`MEDIA_SECTIONS_MAX`].
//!
//! Any failure stops the walk with an [`SdpError`] naming the reason and the line. The typed
//! views ([`Line`], [`Attribute`], [`MediaSection`]) are cut from the text again on access,
//! which costs less than filling a fixed array of records for every parse.
//!
//! # Writing
//!
//! [`Sdp::write_to`] copies the checked lines of a parsed description (its bytes, for a text
//! with one line ending throughout); [`Sdp::write_typed_to`] writes them from their typed
//! form, as [`SdpBuilder`] does when it writes a new description from typed lines. All append
//! to a `Vec<u8>` the caller reserved, and allocate nothing when the reserve suffices.
//!
//! # Validating
//!
//! [`validate`] is what the signaling relay runs on `offer` and `answer` messages: size and
//! line limits ([`SdpLimits`]), well-formedness, ICE credentials and DTLS fingerprints per
//! transport, and `a=setup` values legal for the [`SdpKind`]. It gathers the media sections'
//! transport facts during the parsing pass itself and reads only the session-level lines
//! again; [`validate_parsed`] does the same checks on a description parsed before.
//!
//! # Trickled candidates
//!
//! [`parse_candidate`] reads the `candidate` string of a trickle message in any of the forms
//! browsers and libraries send.

mod builder;
mod candidate;
mod error;
mod parser;
mod validate;

pub use builder::{write_candidate, SdpBuilder};
pub use candidate::{
    parse_candidate, Candidate, CandidateKind, ExtensionPairs, TcpType, FOUNDATION_CHARS_MAX,
};
pub use error::{CandidateError, SdpError, SdpErrorKind};
pub use parser::{
    Attribute, Attributes, Bandwidth, Connection, Direction, Extmap, Fingerprint, Fmtp, Group,
    Line, LineEnding, Lines, MediaLine, MediaSection, Msid, Origin, Rid, RtcpFb, Rtpmap, Sdp,
    Setup, Simulcast, Ssrc, SsrcGroup, Timing, ATTRIBUTES_MAX, MEDIA_SECTIONS_MAX, TEXT_BYTES_MAX,
};
pub use validate::{validate, validate_parsed, SdpKind, SdpLimits};

#[cfg(test)]
mod tests;
