//! Errors of the SDP parser, validator and candidate parser.
//!
//! Every error is a fixed value: no `String` is built for a bad description, so a peer that
//! sends garbage costs us no allocation. What was wrong ([`SdpErrorKind`]) is kept apart from
//! where it was (the 1-based line number in [`SdpError`]).

use core::fmt;

/// What was wrong with an ICE candidate (RFC 8839 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CandidateError {
    /// The string held nothing after its prefix.
    #[error("empty candidate")]
    Empty,
    /// The foundation is missing, longer than 32 characters or not ice-chars.
    #[error("bad foundation")]
    Foundation,
    /// The component id is missing or not an integer in 1..=256.
    #[error("bad component id")]
    Component,
    /// The transport is missing or not a token.
    #[error("bad transport")]
    Transport,
    /// The priority is missing or not an integer that fits 32 bits.
    #[error("bad priority")]
    Priority,
    /// The connection address is missing or holds a character no address has.
    #[error("bad connection address")]
    Address,
    /// The port is missing or not an integer in 0..=65535.
    #[error("bad port")]
    Port,
    /// The `typ` keyword is missing.
    #[error("missing typ")]
    MissingTyp,
    /// The candidate type is not host, srflx, prflx or relay.
    #[error("bad candidate type")]
    Type,
    /// `raddr` has no valid address after it.
    #[error("bad raddr")]
    RelatedAddress,
    /// `rport` has no valid port after it.
    #[error("bad rport")]
    RelatedPort,
    /// An extension name has no value after it.
    #[error("extension without value")]
    ExtensionWithoutValue,
    /// A known extension (`generation`, `network-id`, `network-cost`, `tcptype`, `ufrag`)
    /// has a value of the wrong form; the field names which one.
    #[error("bad {0} value")]
    ExtensionValue(&'static str),
    /// Two spaces in a row, or a leading or trailing space.
    #[error("empty field")]
    EmptyField,
    /// A NUL, CR or LF inside the candidate (RFC 8839 byte-strings exclude them).
    #[error("control character")]
    ControlCharacter,
}

/// What was wrong with a session description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpErrorKind {
    /// The text held no line at all.
    #[error("empty description")]
    Empty,
    /// The text is larger than the limit in force (`SdpLimits::bytes_max`, or 4 GiB).
    #[error("description too large")]
    TooLarge,
    /// The text has more lines than `SdpLimits::lines_max`.
    #[error("too many lines")]
    TooManyLines,
    /// More media sections than [`MEDIA_SECTIONS_MAX`](super::MEDIA_SECTIONS_MAX).
    #[error("too many media sections")]
    TooManyMediaSections,
    /// More attributes than [`ATTRIBUTES_MAX`](super::ATTRIBUTES_MAX).
    #[error("too many attributes")]
    TooManyAttributes,
    /// A line is not of the form `<letter>=<value>`.
    #[error("malformed line")]
    MalformedLine,
    /// A line starts with a letter that is not an SDP line type.
    #[error("unknown line type")]
    UnknownLineType,
    /// A line is legal but not at this place (RFC 8866 §5 fixes the order), or is repeated.
    #[error("line out of order")]
    OutOfOrder,
    /// The first line is not `v=0`.
    #[error("first line must be v=0")]
    Version,
    /// The `o=` line is missing.
    #[error("missing o= line")]
    MissingOrigin,
    /// The `s=` line is missing.
    #[error("missing s= line")]
    MissingSessionName,
    /// The `t=` line is missing.
    #[error("missing t= line")]
    MissingTiming,
    /// The `o=` line does not have six fields with numeric session id and version.
    #[error("malformed o= line")]
    Origin,
    /// The `c=` line does not have three fields.
    #[error("malformed c= line")]
    Connection,
    /// The `b=` line is not `<type>:<integer>`.
    #[error("malformed b= line")]
    Bandwidth,
    /// The `t=` line is not two integers.
    #[error("malformed t= line")]
    Timing,
    /// The `m=` line is not `<media> <port>[/<count>] <proto> <fmt> ...`.
    #[error("malformed m= line")]
    Media,
    /// An attribute name is empty or not a token.
    #[error("malformed attribute name")]
    AttributeName,
    /// A known attribute has a value of the wrong form; the field names the attribute.
    #[error("malformed a={0} value")]
    AttributeValue(&'static str),
    /// A flag attribute (such as `rtcp-mux` or `sendrecv`) carries a value.
    #[error("a={0} takes no value")]
    UnexpectedValue(&'static str),
    /// An `a=candidate` line breaks RFC 8839 §5.1.
    #[error("bad candidate: {0}")]
    Candidate(CandidateError),
    /// `a=ice-ufrag` is missing for a media section that needs it.
    #[error("missing ice-ufrag")]
    MissingIceUfrag,
    /// `a=ice-pwd` is missing for a media section that needs it.
    #[error("missing ice-pwd")]
    MissingIcePwd,
    /// `a=fingerprint` is missing for a media section that needs it.
    #[error("missing fingerprint")]
    MissingFingerprint,
    /// An answer offers `a=setup:actpass`; it must pick `active` or `passive` (RFC 5763 §5).
    #[error("setup:actpass is not allowed in an answer")]
    SetupActpassInAnswer,
    /// `a=setup:holdconn` is not used by WebRTC (RFC 8842 §5.1).
    #[error("setup:holdconn is not allowed")]
    SetupHoldconn,
    /// A BUNDLE group names a mid that no media section has.
    #[error("BUNDLE group names an unknown mid")]
    BundleUnknownMid,
}

/// An error in a session description: what was wrong and, where known, on which line.
///
/// Displays as `line 7: missing ice-pwd`, or just the reason when no line applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdpError {
    kind: SdpErrorKind,
    line: Option<u32>,
}

impl SdpError {
    /// An error on the given 1-based line.
    pub fn at(kind: SdpErrorKind, line: u32) -> Self {
        Self {
            kind,
            line: Some(line),
        }
    }

    /// An error of the description as a whole.
    pub fn whole(kind: SdpErrorKind) -> Self {
        Self { kind, line: None }
    }

    /// What was wrong.
    pub fn kind(&self) -> SdpErrorKind {
        self.kind
    }

    /// The 1-based line number it was wrong on, if the error belongs to one line.
    pub fn line(&self) -> Option<u32> {
        self.line
    }
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for SdpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_line_and_reason() {
        let error = SdpError::at(SdpErrorKind::MissingIcePwd, 7);
        assert_eq!(error.to_string(), "line 7: missing ice-pwd");
        assert_eq!(error.line(), Some(7));
        assert_eq!(error.kind(), SdpErrorKind::MissingIcePwd);
        let error = SdpError::whole(SdpErrorKind::TooLarge);
        assert_eq!(error.to_string(), "description too large");
        assert_eq!(error.line(), None);
        let error = SdpError::at(SdpErrorKind::Candidate(CandidateError::Port), 3);
        assert_eq!(error.to_string(), "line 3: bad candidate: bad port");
        let error = SdpError::at(SdpErrorKind::AttributeValue("rtpmap"), 9);
        assert_eq!(error.to_string(), "line 9: malformed a=rtpmap value");
    }
}
