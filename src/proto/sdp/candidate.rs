//! ICE candidates (RFC 8839 §5.1), as found in `a=candidate` lines and trickle messages.
//!
//! ```text
//! candidate-attribute = "candidate" ":" foundation SP component-id SP transport SP priority SP
//!                       connection-address SP port SP "typ" SP cand-type
//!                       [SP "raddr" SP connection-address] [SP "rport" SP port]
//!                       *(SP extension-att-name SP extension-att-value)
//! ```
//!
//! The extensions (`generation`, `ufrag`, `network-id`, `network-cost`, `tcptype`, and any
//! unknown one) are checked when the candidate is parsed and kept as the raw tail of the line,
//! so that writing a candidate back reproduces its extensions in their original order; the
//! typed accessors ([`Candidate::generation`] and friends) read them from that tail.

use super::error::CandidateError;
use super::parser::{parse_u16, parse_u32, SplitByte, TOKEN_CHARS};

/// The longest foundation RFC 8839 allows, in characters.
pub const FOUNDATION_CHARS_MAX: usize = 32;

/// An ICE candidate; every `&str` is a view of the parsed text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Groups candidates that share a base and server (1 to 32 ice-chars).
    pub foundation: &'a str,
    /// 1 for RTP, 2 for RTCP (1..=256).
    pub component: u16,
    /// The transport as written (`udp`, `UDP`, `tcp`, ...).
    pub transport: &'a str,
    /// The candidate priority (RFC 8445 §5.1.2).
    pub priority: u32,
    /// An IPv4 or IPv6 address, or a host name (such as an mDNS `.local` name).
    pub address: &'a str,
    /// The port; 9 (discard) for active TCP candidates.
    pub port: u16,
    /// How the candidate was found.
    pub kind: CandidateKind,
    /// The `raddr` value, for reflexive and relayed candidates.
    pub related_address: Option<&'a str>,
    /// The `rport` value, for reflexive and relayed candidates.
    pub related_port: Option<u16>,
    /// Every extension pair after the fixed fields, as written, without leading space; empty
    /// when there are none. Already checked to be `name value` pairs.
    pub extensions: &'a str,
}

/// The candidate type (`typ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CandidateKind {
    /// A local interface address.
    Host,
    /// Server reflexive: the address a STUN server saw.
    ServerReflexive,
    /// Peer reflexive: the address a peer's connectivity check saw.
    PeerReflexive,
    /// An address on a TURN relay.
    Relayed,
}

impl CandidateKind {
    /// The SDP token (`host`, `srflx`, `prflx`, `relay`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::ServerReflexive => "srflx",
            Self::PeerReflexive => "prflx",
            Self::Relayed => "relay",
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        match token {
            "host" => Some(Self::Host),
            "srflx" => Some(Self::ServerReflexive),
            "prflx" => Some(Self::PeerReflexive),
            "relay" => Some(Self::Relayed),
            _ => None,
        }
    }
}

/// The `tcptype` extension (RFC 6544 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpType {
    /// Opens the connection.
    Active,
    /// Accepts the connection.
    Passive,
    /// Simultaneous open.
    SimultaneousOpen,
}

impl TcpType {
    /// The SDP token (`active`, `passive`, `so`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Passive => "passive",
            Self::SimultaneousOpen => "so",
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        match token {
            "active" => Some(Self::Active),
            "passive" => Some(Self::Passive),
            "so" => Some(Self::SimultaneousOpen),
            _ => None,
        }
    }
}

impl<'a> Candidate<'a> {
    /// The value of the extension named `name`, if present.
    pub fn extension(&self, name: &str) -> Option<&'a str> {
        self.extension_pairs()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    /// Iterates over the extension pairs in the order they were written.
    pub fn extension_pairs(&self) -> ExtensionPairs<'a> {
        ExtensionPairs {
            rest: self.extensions,
        }
    }

    /// The `generation` extension (a WebRTC convention, not in RFC 8839).
    pub fn generation(&self) -> Option<u32> {
        self.extension("generation").and_then(parse_u32)
    }

    /// The `ufrag` extension: the ICE username fragment the candidate belongs to.
    pub fn ufrag(&self) -> Option<&'a str> {
        self.extension("ufrag")
    }

    /// The `network-id` extension (a WebRTC convention).
    pub fn network_id(&self) -> Option<u32> {
        self.extension("network-id").and_then(parse_u32)
    }

    /// The `network-cost` extension (a WebRTC convention).
    pub fn network_cost(&self) -> Option<u32> {
        self.extension("network-cost").and_then(parse_u32)
    }

    /// The `tcptype` extension (RFC 6544).
    pub fn tcp_type(&self) -> Option<TcpType> {
        self.extension("tcptype").and_then(TcpType::from_token)
    }
}

/// Iterator over a candidate's `name value` extension pairs.
#[derive(Debug, Clone)]
pub struct ExtensionPairs<'a> {
    rest: &'a str,
}

impl<'a> Iterator for ExtensionPairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let (name, rest) = self.rest.split_byte(b' ')?;
        let (value, rest) = rest.split_byte(b' ').unwrap_or((rest, ""));
        self.rest = rest;
        Some((name, value))
    }
}

/// Parses a candidate from a trickle message or an SDP line.
///
/// Accepts `candidate:<fields>`, `a=candidate:<fields>` and a bare `<fields>` (starting with
/// the foundation); a trailing `\r\n` or `\n` is ignored. The empty string, which trickle ICE
/// uses to mean "end of candidates", is [`CandidateError::Empty`].
pub fn parse_candidate(s: &str) -> Result<Candidate<'_>, CandidateError> {
    let s = s.strip_suffix('\n').unwrap_or(s);
    let s = s.strip_suffix('\r').unwrap_or(s);
    let s = s.strip_prefix("a=").unwrap_or(s);
    let s = s.strip_prefix("candidate:").unwrap_or(s);
    // Lines of a parsed description cannot hold these; a trickle message can.
    if s.bytes().any(|byte| matches!(byte, 0 | b'\r' | b'\n')) {
        return Err(CandidateError::ControlCharacter);
    }
    parse_candidate_value(s)
}

/// Parses the value of an `a=candidate` attribute (the text after `candidate:`).
pub(crate) fn parse_candidate_value(value: &str) -> Result<Candidate<'_>, CandidateError> {
    // Most candidates take the fast path; whatever it does not take (an error, or a rare
    // form such as a number with leading zeros) gets the field-by-field reading below,
    // which names the error.
    if let Some(candidate) = parse_common(value) {
        // Every test, proptest and debug fuzz run that reaches here checks the fast path
        // against the field-by-field reading.
        debug_assert_eq!(parse_fields(value), Ok(candidate));
        return Ok(candidate);
    }
    parse_fields(value)
}

/// Reads a candidate in one pass over its bytes, each looked at once, or gives up with
/// `None`. It accepts only text that [`parse_fields`] accepts too, with the same result (a
/// debug assertion, a unit test and a proptest check this), and gives up on every error and
/// on the rarer valid forms (such as numbers written with more digits than their range
/// needs), which `parse_fields` then reads. The fields are checked as they are cut, so each
/// byte is looked at once; the numbers are added up in the same pass.
#[inline]
fn parse_common(value: &str) -> Option<Candidate<'_>> {
    let mut cursor = Cursor {
        text: value,
        position: 0,
    };
    let foundation = cursor.field(ICE)?;
    if foundation.len() > FOUNDATION_CHARS_MAX {
        return None;
    }
    let component = cursor
        .number(3)
        .filter(|component| (1..=256).contains(component))?;
    let transport = cursor.field(TOKEN)?;
    let priority = cursor
        .number(10)
        .and_then(|priority| u32::try_from(priority).ok())?;
    let address = cursor.field(ADDRESS)?;
    let port = cursor.number(5).and_then(|port| u16::try_from(port).ok())?;
    if !cursor.word(b"typ") {
        return None;
    }
    let kind = CandidateKind::from_token(cursor.field(TOKEN)?)?;
    let mut related_address = None;
    if cursor.word(b"raddr") {
        related_address = Some(cursor.field(ADDRESS)?);
    }
    let mut related_port = None;
    if cursor.word(b"rport") {
        related_port = Some(cursor.number(5).and_then(|port| u16::try_from(port).ok())?);
    }
    let extensions = cursor.rest();
    while !cursor.is_done() {
        let name = cursor.field(ANY)?;
        let ok = match name.as_bytes() {
            b"generation" | b"network-id" | b"network-cost" => cursor
                .number(10)
                .is_some_and(|number| number <= u64::from(u32::MAX)),
            b"tcptype" => cursor
                .field(TOKEN)
                .is_some_and(|token| TcpType::from_token(token).is_some()),
            b"ufrag" => cursor.field(ICE).is_some(),
            _ => cursor.field(ANY).is_some(),
        };
        if !ok {
            return None;
        }
    }
    Some(Candidate {
        foundation,
        component: component as u16,
        transport,
        priority,
        address,
        port,
        kind,
        related_address,
        related_port,
        extensions,
    })
}

/// The reader of [`parse_common`]: each step takes one space-separated field and the single
/// space after it, unless the field ends the text.
struct Cursor<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Cursor<'a> {
    fn is_done(&self) -> bool {
        self.position >= self.text.len()
    }

    /// The text from here to the end.
    fn rest(&self) -> &'a str {
        self.text.get(self.position..).unwrap_or("")
    }

    /// Takes a non-empty field whose every byte is in `class`.
    #[inline(always)]
    fn field(&mut self, class: u8) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        let start = self.position;
        let mut end = start;
        // A space is in no class, so the loop stops at the field's end or at a bad byte.
        while bytes
            .get(end)
            .is_some_and(|&byte| CLASSES[usize::from(byte)] & class != 0)
        {
            end += 1;
        }
        self.end_field(start, end)
    }

    /// Takes a field of 1 to `digits_max` decimal digits (at most 19, which cannot overflow).
    #[inline(always)]
    fn number(&mut self, digits_max: usize) -> Option<u64> {
        debug_assert!(digits_max <= 19);
        let bytes = self.text.as_bytes();
        let start = self.position;
        let mut end = start;
        let mut number: u64 = 0;
        while let Some(digit) = bytes.get(end).map(|byte| byte.wrapping_sub(b'0')) {
            if digit > 9 {
                break;
            }
            // Wrapping, because a run longer than `digits_max` is refused below anyway.
            number = number.wrapping_mul(10).wrapping_add(u64::from(digit));
            end += 1;
        }
        if end - start > digits_max {
            return None;
        }
        self.end_field(start, end).map(|_| number)
    }

    /// Takes the field if it is `word`; takes nothing otherwise.
    #[inline(always)]
    fn word(&mut self, word: &[u8]) -> bool {
        let rest = &self.text.as_bytes()[self.position.min(self.text.len())..];
        let matches = rest.starts_with(word)
            && rest
                .get(word.len())
                .is_none_or(|&byte| byte == b' ' && rest.len() > word.len() + 1);
        if matches {
            self.position += (word.len() + 1).min(rest.len());
        }
        matches
    }

    /// Ends a field at `end`, which must be the text's end or a space with more text after.
    #[inline(always)]
    fn end_field(&mut self, start: usize, end: usize) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        if end == start {
            return None;
        }
        match bytes.get(end) {
            None => self.position = end,
            Some(b' ') if end + 1 < bytes.len() => self.position = end + 1,
            _ => return None,
        }
        // `end` is at a space or the end, and `start` after a space or at the start: both are
        // character boundaries.
        Some(&self.text[start..end])
    }
}

/// [`parse_candidate_value`] one field at a time, naming the first bad field.
#[cold]
#[inline(never)]
fn parse_fields(value: &str) -> Result<Candidate<'_>, CandidateError> {
    if value.is_empty() {
        return Err(CandidateError::Empty);
    }
    let mut fields = Fields::new(value);

    // Each field is cut and classified in one pass (see `Fields::next_classified`); the
    // numeric ones are then read from their few digits.
    let (foundation, class) = fields.next_classified().ok_or(CandidateError::Foundation)?;
    if foundation.len() > FOUNDATION_CHARS_MAX || class & ICE == 0 {
        return Err(CandidateError::Foundation);
    }
    let component = fields
        .next()
        .filter(|field| field.len() <= 3)
        .and_then(parse_u16)
        .filter(|component| (1..=256).contains(component))
        .ok_or(CandidateError::Component)?;
    let transport = fields
        .next_classified()
        .filter(|(_, class)| class & TOKEN != 0)
        .ok_or(CandidateError::Transport)?
        .0;
    let priority = fields
        .next()
        .filter(|field| field.len() <= 10)
        .and_then(parse_u32)
        .ok_or(CandidateError::Priority)?;
    let address = fields
        .next_classified()
        .filter(|(_, class)| class & ADDRESS != 0)
        .ok_or(CandidateError::Address)?
        .0;
    let port = fields
        .next()
        .and_then(parse_u16)
        .ok_or(CandidateError::Port)?;
    if fields.next() != Some("typ") {
        return Err(CandidateError::MissingTyp);
    }
    let kind = fields
        .next()
        .and_then(CandidateKind::from_token)
        .ok_or(CandidateError::Type)?;

    let mut related_address = None;
    if starts_with_word(fields.rest, "raddr") {
        fields.next();
        let (address, class) = fields
            .next_classified()
            .ok_or(CandidateError::RelatedAddress)?;
        if class & ADDRESS == 0 {
            return Err(CandidateError::RelatedAddress);
        }
        related_address = Some(address);
    }
    let mut related_port = None;
    if starts_with_word(fields.rest, "rport") {
        fields.next();
        let port = fields
            .next()
            .and_then(parse_u16)
            .ok_or(CandidateError::RelatedPort)?;
        related_port = Some(port);
    }

    let extensions = fields.rest;
    while let Some(name) = fields.next() {
        let Some(value) = fields.next() else {
            return Err(if fields.empty_field {
                CandidateError::EmptyField
            } else {
                CandidateError::ExtensionWithoutValue
            });
        };
        check_extension(name, value)?;
    }
    if fields.empty_field {
        return Err(CandidateError::EmptyField);
    }

    Ok(Candidate {
        foundation,
        component,
        transport,
        priority,
        address,
        port,
        kind,
        related_address,
        related_port,
        extensions,
    })
}

/// Whether `text` starts with the whole word `word`.
fn starts_with_word(text: &str, word: &str) -> bool {
    text.strip_prefix(word)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
}

/// Checks the value of the extensions we give a typed accessor, so the accessors never meet
/// a value they cannot read.
fn check_extension(name: &str, value: &str) -> Result<(), CandidateError> {
    let ok = match name {
        "generation" => parse_u32(value).is_some(),
        "network-id" => parse_u32(value).is_some(),
        "network-cost" => parse_u32(value).is_some(),
        "tcptype" => TcpType::from_token(value).is_some(),
        "ufrag" => value.bytes().all(is_ice_char),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        // The names are matched above, so a static copy of each can be returned.
        Err(CandidateError::ExtensionValue(match name {
            "generation" => "generation",
            "network-id" => "network-id",
            "network-cost" => "network-cost",
            "tcptype" => "tcptype",
            _ => "ufrag",
        }))
    }
}

/// Splits on single spaces and remembers whether an empty field was seen, so that a doubled
/// space is an error rather than a silently skipped field.
struct Fields<'a> {
    rest: &'a str,
    empty_field: bool,
}

impl<'a> Fields<'a> {
    fn new(rest: &'a str) -> Self {
        Self {
            rest,
            empty_field: false,
        }
    }

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        self.next_classified().map(|(field, _)| field)
    }

    /// Like `next`, and also returns the classes ([`ICE`], [`TOKEN`], [`ADDRESS`]) that every
    /// byte of the field belongs to, found in the same pass that looks for the space.
    #[inline(always)]
    fn next_classified(&mut self) -> Option<(&'a str, u8)> {
        if self.rest.is_empty() {
            return None;
        }
        let bytes = self.rest.as_bytes();
        let mut class = u8::MAX;
        let mut end = 0;
        while let Some(&byte) = bytes.get(end) {
            if byte == b' ' {
                break;
            }
            class &= CLASSES[usize::from(byte)];
            end += 1;
        }
        // The space is ASCII, so both cuts fall on character boundaries.
        let (field, rest) = match self.rest.get(end + 1..) {
            Some(rest) => (&self.rest[..end], rest),
            None => (self.rest, ""),
        };
        // A space at the very end leaves an empty `rest` behind a split; count that too.
        if field.is_empty() || (rest.is_empty() && self.rest.len() != field.len()) {
            self.empty_field = true;
        }
        self.rest = rest;
        if field.is_empty() {
            None
        } else {
            Some((field, class))
        }
    }
}

/// Class bits of [`CLASSES`]. `ice-char` (RFC 8839 §5.1).
const ICE: u8 = 1;
/// `token-char` (RFC 8866 §9).
const TOKEN: u8 = 2;
/// A character of a connection address: an IPv4 or IPv6 literal or a host name. We check the
/// character set only; resolving or range-checking addresses is the ICE agent's business.
const ADDRESS: u8 = 4;
/// Any byte but the space, for the fields (extension names and values) whose characters
/// are not checked.
const ANY: u8 = 8;

/// The classes each byte belongs to, so a field is classified in the pass that cuts it.
const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        let mut class = 0;
        if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' {
            class |= ICE;
        }
        if TOKEN_CHARS[byte] {
            class |= TOKEN;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'-' | b'_' | b'%') {
            class |= ADDRESS;
        }
        if b != b' ' {
            class |= ANY;
        }
        table[byte] = class;
        byte += 1;
    }
    table
};

/// `ice-char = ALPHA / DIGIT / "+" / "/"` (RFC 8839 §5.1).
pub(crate) fn is_ice_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'+' || byte == b'/'
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "candidate:2543964205 1 udp 2122260223 127.0.0.1 57526 typ host \
                        generation 0 network-id 1 network-cost 50";

    #[test]
    fn parses_chromium_host_candidate() {
        let candidate = parse_candidate(HOST).unwrap();
        assert_eq!(candidate.foundation, "2543964205");
        assert_eq!(candidate.component, 1);
        assert_eq!(candidate.transport, "udp");
        assert_eq!(candidate.priority, 2122260223);
        assert_eq!(candidate.address, "127.0.0.1");
        assert_eq!(candidate.port, 57526);
        assert_eq!(candidate.kind, CandidateKind::Host);
        assert_eq!(candidate.related_address, None);
        assert_eq!(candidate.generation(), Some(0));
        assert_eq!(candidate.network_id(), Some(1));
        assert_eq!(candidate.network_cost(), Some(50));
        assert_eq!(candidate.tcp_type(), None);
        assert_eq!(candidate.ufrag(), None);
        assert_eq!(
            candidate.extensions,
            "generation 0 network-id 1 network-cost 50"
        );
    }

    #[test]
    fn accepts_three_prefix_forms() {
        let bare = HOST.strip_prefix("candidate:").unwrap();
        let with_a = format!("a={HOST}\r\n");
        for text in [HOST, bare, with_a.as_str()] {
            assert_eq!(
                parse_candidate(text).unwrap(),
                parse_candidate(HOST).unwrap()
            );
        }
    }

    #[test]
    fn parses_relay_with_related_address_and_tcp() {
        let text =
            "candidate:1 1 udp 255 192.0.2.100 12100 typ relay raddr 198.51.100.100 rport 11100";
        let candidate = parse_candidate(text).unwrap();
        assert_eq!(candidate.kind, CandidateKind::Relayed);
        assert_eq!(candidate.related_address, Some("198.51.100.100"));
        assert_eq!(candidate.related_port, Some(11100));
        assert_eq!(candidate.extensions, "");

        let text = "candidate:3916313269 1 tcp 1518280447 ::1 9 typ host tcptype active \
                    generation 0 ufrag si0G network-id 1";
        let candidate = parse_candidate(text).unwrap();
        assert_eq!(candidate.tcp_type(), Some(TcpType::Active));
        assert_eq!(candidate.ufrag(), Some("si0G"));
        assert_eq!(candidate.address, "::1");
        let pairs: Vec<_> = candidate.extension_pairs().collect();
        assert_eq!(pairs[0], ("tcptype", "active"));
        assert_eq!(pairs.len(), 4);

        let mdns = "candidate:1 1 UDP 2114977791 4bb8a6c1-1d9a-4a6c-a8a5-0a3a3c2f1e1f.local \
                    48073 typ host";
        assert!(parse_candidate(mdns).is_ok());
        let srflx = "candidate:8 1 udp 1686052607 203.0.113.7 3478 typ srflx raddr 0.0.0.0 rport 0";
        assert_eq!(
            parse_candidate(srflx).unwrap().kind,
            CandidateKind::ServerReflexive
        );
        let prflx = "candidate:9 1 udp 1 10.0.0.1 1 typ prflx";
        assert_eq!(
            parse_candidate(prflx).unwrap().kind,
            CandidateKind::PeerReflexive
        );
    }

    #[test]
    fn rejects_each_bad_field() {
        let cases = [
            ("", CandidateError::Empty),
            ("candidate:", CandidateError::Empty),
            ("a=candidate:", CandidateError::Empty),
            ("x*y 1 udp 1 1.2.3.4 1 typ host", CandidateError::Foundation),
            (
                "123456789012345678901234567890123 1 udp 1 1.2.3.4 1 typ host",
                CandidateError::Foundation,
            ),
            ("1 0 udp 1 1.2.3.4 1 typ host", CandidateError::Component),
            ("1 257 udp 1 1.2.3.4 1 typ host", CandidateError::Component),
            ("1 x udp 1 1.2.3.4 1 typ host", CandidateError::Component),
            ("1 1", CandidateError::Transport),
            (
                "1 1 udp 4294967296 1.2.3.4 1 typ host",
                CandidateError::Priority,
            ),
            ("1 1 udp -1 1.2.3.4 1 typ host", CandidateError::Priority),
            ("1 1 udp 1 1.2.3.4/8 1 typ host", CandidateError::Address),
            ("1 1 udp 1 1.2.3.4 65536 typ host", CandidateError::Port),
            ("1 1 udp 1 1.2.3.4 1 type host", CandidateError::MissingTyp),
            ("1 1 udp 1 1.2.3.4 1", CandidateError::MissingTyp),
            ("1 1 udp 1 1.2.3.4 1 typ cloud", CandidateError::Type),
            (
                "1 1 udp 1 1.2.3.4 1 typ srflx raddr",
                CandidateError::RelatedAddress,
            ),
            (
                "1 1 udp 1 1.2.3.4 1 typ srflx raddr 1.2.3.4 rport x",
                CandidateError::RelatedPort,
            ),
            (
                "1 1 udp 1 1.2.3.4 1 typ host generation",
                CandidateError::ExtensionWithoutValue,
            ),
            (
                "1 1 udp 1 1.2.3.4 1 typ host generation x",
                CandidateError::ExtensionValue("generation"),
            ),
            (
                "1 1 udp 1 1.2.3.4 1 typ host tcptype sideways",
                CandidateError::ExtensionValue("tcptype"),
            ),
            ("1 1 udp 1 1.2.3.4 1 typ host ", CandidateError::EmptyField),
            ("1 1  udp 1 1.2.3.4 1 typ host", CandidateError::Transport),
            (
                "1 1 udp 1 1.2.3.4 1 typ host a  b",
                CandidateError::EmptyField,
            ),
            (
                "1 1 udp 1 1.2.3.4 1 typ host a b\n\r\n",
                CandidateError::ControlCharacter,
            ),
            (
                "1 1 udp 1 1.2.3.4 1 typ host a \0",
                CandidateError::ControlCharacter,
            ),
        ];
        for (text, error) in cases {
            assert_eq!(parse_candidate(text), Err(error), "{text:?}");
        }
    }

    /// The fast path must accept only what the field-by-field reading accepts, with the same
    /// result; on everything else it must give up.
    fn check_fast_path(text: &str) {
        if let Some(fast) = parse_common(text) {
            assert_eq!(parse_fields(text), Ok(fast), "{text:?}");
        }
    }

    #[test]
    fn fast_path_agrees_with_field_reading() {
        let texts = [
            HOST.strip_prefix("candidate:").unwrap(),
            "1 1 udp 255 192.0.2.100 12100 typ relay raddr 198.51.100.100 rport 11100",
            "3916313269 1 tcp 1518280447 ::1 9 typ host tcptype active generation 0 ufrag si0G",
            "1 1 UDP 2114977791 4bb8a6c1-1d9a-4a6c-a8a5-0a3a3c2f1e1f.local 48073 typ host",
            "1 1 udp 1 1.2.3.4 1 typ host foo bar generation 2 baz qux",
            "1 1 udp 1 1.2.3.4 00001 typ host",
            "1 001 udp 1 1.2.3.4 1 typ host",
            "1436142939 1 udp 2122260223 127.0.0.1 57298 typ host generation 0 network-id 1 \
             network-cost 50",
            "727068611 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active generation 0 \
             network-id 1 network-cost 50",
        ];
        for text in texts {
            assert!(parse_common(text).is_some(), "{text:?}");
            check_fast_path(text);
        }
        for text in [
            "1 1 udp 1 1.2.3.4 000001 typ host",
            "1 1 udp 1 1.2.3.4 1 typ host ",
            "1 1 udp 1 1.2.3.4 1 typ host generation 00000000000",
        ] {
            assert!(parse_common(text).is_none(), "{text:?}");
            check_fast_path(text);
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_path_agrees_on_candidate_like_text(
            fields in proptest::collection::vec(proptest::sample::select(vec![
                "", "1", "0", "9", "256", "257", "0001", "65535", "65536", "4294967295",
                "4294967296", "00000000001", "123456789012345678901234", "udp", "UDP", "tcp",
                "u*p", "typ", "host", "srflx", "prflx", "relay", "cloud", "raddr", "rport",
                "generation", "network-id",
                "network-cost", "tcptype", "ufrag", "active", "so", "1.2.3.4", "::1", "a+b/",
                "x.local", "fe80::1%eth0", "\u{e9}", "a=b",
            ]), 0..18),
        ) {
            check_fast_path(&fields.join(" "));
        }
    }

    #[test]
    fn unknown_extensions_are_kept_in_order() {
        let text = "1 1 udp 1 1.2.3.4 1 typ host foo bar generation 2 baz qux";
        let candidate = parse_candidate(text).unwrap();
        assert_eq!(candidate.extensions, "foo bar generation 2 baz qux");
        assert_eq!(candidate.extension("baz"), Some("qux"));
        assert_eq!(candidate.generation(), Some(2));
    }
}
