//! Writing session descriptions: a parsed [`Sdp`] back to text, or a new one from typed lines.
//!
//! Both append to a caller's `Vec<u8>`. The caller reserves room for the description (a few
//! KiB covers WebRTC offers); when the reserve suffices nothing is allocated, and when it
//! does not the vector grows as usual. The output is ASCII or UTF-8 whenever the input
//! strings were, so `String::from_utf8` on it cannot fail for values cut from a `&str`.

use super::candidate::Candidate;
use super::parser::{rank, Attribute, Line, LineEnding, MediaLine, Origin, Sdp, RANK_TIMING};

impl Sdp<'_> {
    /// Appends the description to `out` with the line ending of its first line, and returns
    /// the number of bytes written.
    ///
    /// The lines were checked by [`Sdp::parse`] and are copied as they are, so the output is
    /// the input's bytes whenever the input used one line ending throughout and had no
    /// trailing blank line.
    pub fn write_to(&self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        // With one line ending throughout, the lines and their endings are the text itself.
        if let Some(verbatim_len) = self.verbatim_len() {
            out.extend_from_slice(&self.text().as_bytes()[..verbatim_len]);
            return out.len() - start;
        }
        let line_ending = self.line_ending().as_bytes();
        let mut lines = self.lines();
        while let Some((_, line)) = lines.next_raw() {
            if line.is_empty() {
                break;
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(line_ending);
        }
        out.len() - start
    }

    /// Like [`write_to`](Self::write_to), but writes every line from its typed form, as
    /// [`SdpBuilder`] does: numbers come out in canonical form (no leading zeros), everything
    /// else as written. Slower; it proves the typed views lose nothing.
    pub fn write_typed_to(&self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        let line_ending = self.line_ending().as_bytes();
        for (_, line) in self.lines() {
            write_line(out, &line, line_ending);
        }
        out.len() - start
    }
}

/// Writes a session description from typed lines, in RFC 8866 order.
///
/// `new` writes `v=`, `o=` and `s=`; a `t=0 0` line is added by itself if none was written
/// before the first line that must follow it. Attributes written before the first
/// [`media`](Self::media) call are session-level; after it they belong to the last section.
///
/// ```
/// use switchboard::proto::sdp::*;
///
/// let mut out = Vec::with_capacity(1024);
/// let origin = Origin {
///     username: "-",
///     session_id: "1",
///     session_version: "2",
///     network_type: "IN",
///     address_type: "IP4",
///     address: "127.0.0.1",
/// };
/// let mut builder = SdpBuilder::new(&mut out, &origin, "-");
/// builder
///     .attribute(&Attribute::Group(Group { semantics: "BUNDLE", tags: "0" }))
///     .media(&MediaLine {
///         media: "application",
///         port: 9,
///         port_count: None,
///         proto: "UDP/DTLS/SCTP",
///         formats: "webrtc-datachannel",
///     })
///     .attribute(&Attribute::Mid("0"))
///     .attribute(&Attribute::SctpPort(5000));
/// let bytes_written = builder.finish();
/// assert_eq!(bytes_written, out.len());
/// assert!(Sdp::parse(std::str::from_utf8(&out).unwrap()).is_ok());
/// ```
#[derive(Debug)]
pub struct SdpBuilder<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
    line_ending: &'static [u8],
    rank: u8,
    in_media: bool,
}

impl<'o> SdpBuilder<'o> {
    /// Starts a description with CRLF line endings, writing `v=0`, `o=` and `s=`.
    pub fn new(out: &'o mut Vec<u8>, origin: &Origin<'_>, session_name: &str) -> Self {
        Self::with_line_ending(out, LineEnding::Crlf, origin, session_name)
    }

    /// Starts a description with the given line ending.
    pub fn with_line_ending(
        out: &'o mut Vec<u8>,
        line_ending: LineEnding,
        origin: &Origin<'_>,
        session_name: &str,
    ) -> Self {
        let start = out.len();
        let mut builder = Self {
            out,
            start,
            line_ending: line_ending.as_bytes(),
            rank: 0,
            in_media: false,
        };
        builder
            .line(&Line::Version)
            .line(&Line::Origin(*origin))
            .line(&Line::SessionName(session_name));
        builder
    }

    /// Writes any line.
    ///
    /// # Panics
    ///
    /// If the line breaks RFC 8866 order (say a `c=` after an `a=` of the same level, or a
    /// second `v=`): that is a bug in the caller, not bad input.
    pub fn line(&mut self, line: &Line<'_>) -> &mut Self {
        let letter = line.letter();
        let (rank, repeats) = rank(letter, self.in_media)
            .unwrap_or_else(|| panic!("SdpBuilder: {}= is not allowed here", char::from(letter)));
        if !self.in_media && rank > RANK_TIMING && self.rank < RANK_TIMING {
            write_line(
                self.out,
                &Line::Timing(Default::default()),
                self.line_ending,
            );
            self.rank = RANK_TIMING;
        }
        assert!(
            letter != b'r' || self.rank == RANK_TIMING,
            "SdpBuilder: r= must follow a t= line"
        );
        let first = self.out.len() == self.start;
        assert!(
            first || rank > self.rank || (rank == self.rank && repeats),
            "SdpBuilder: {}= is out of RFC 8866 order",
            char::from(letter)
        );
        self.rank = rank;
        if letter == b'm' {
            self.in_media = true;
        }
        write_line(self.out, line, self.line_ending);
        self
    }

    /// Writes an `a=` line at the current level.
    pub fn attribute(&mut self, attribute: &Attribute<'_>) -> &mut Self {
        self.line(&Line::Attribute(*attribute))
    }

    /// Starts a media section with its `m=` line.
    pub fn media(&mut self, media: &MediaLine<'_>) -> &mut Self {
        self.line(&Line::Media(*media))
    }

    /// Ends the description and returns the number of bytes written.
    pub fn finish(self) -> usize {
        if !self.in_media && self.rank < RANK_TIMING {
            write_line(
                self.out,
                &Line::Timing(Default::default()),
                self.line_ending,
            );
        }
        self.out.len() - self.start
    }
}

/// Appends one line and its ending.
pub(crate) fn write_line(out: &mut Vec<u8>, line: &Line<'_>, line_ending: &[u8]) {
    out.push(line.letter());
    out.push(b'=');
    match line {
        Line::Version => out.push(b'0'),
        Line::Origin(origin) => {
            for (index, field) in [
                origin.username,
                origin.session_id,
                origin.session_version,
                origin.network_type,
                origin.address_type,
                origin.address,
            ]
            .into_iter()
            .enumerate()
            {
                if index > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(field.as_bytes());
            }
        }
        Line::SessionName(text)
        | Line::Information(text)
        | Line::Uri(text)
        | Line::Email(text)
        | Line::Phone(text)
        | Line::Repeat(text)
        | Line::TimeZones(text)
        | Line::Key(text) => out.extend_from_slice(text.as_bytes()),
        Line::Connection(connection) => {
            words(
                out,
                &[
                    connection.network_type,
                    connection.address_type,
                    connection.address,
                ],
            );
        }
        Line::Bandwidth(bandwidth) => {
            out.extend_from_slice(bandwidth.kind.as_bytes());
            out.push(b':');
            write_u64(out, bandwidth.value);
        }
        Line::Timing(timing) => {
            write_u64(out, timing.start);
            out.push(b' ');
            write_u64(out, timing.stop);
        }
        Line::Attribute(attribute) => write_attribute(out, attribute),
        Line::Media(media) => {
            out.extend_from_slice(media.media.as_bytes());
            out.push(b' ');
            write_u64(out, u64::from(media.port));
            if let Some(count) = media.port_count {
                out.push(b'/');
                write_u64(out, u64::from(count));
            }
            out.push(b' ');
            words(out, &[media.proto, media.formats]);
        }
    }
    out.extend_from_slice(line_ending);
}

/// Writes the text after `a=`.
fn write_attribute(out: &mut Vec<u8>, attribute: &Attribute<'_>) {
    out.extend_from_slice(attribute.name().as_bytes());
    match attribute {
        Attribute::Mid(text)
        | Attribute::IceUfrag(text)
        | Attribute::IcePwd(text)
        | Attribute::IceOptions(text) => {
            out.push(b':');
            out.extend_from_slice(text.as_bytes());
        }
        Attribute::IceLite
        | Attribute::RtcpMux
        | Attribute::RtcpMuxOnly
        | Attribute::RtcpRsize
        | Attribute::EndOfCandidates
        | Attribute::Direction(_)
        | Attribute::BundleOnly => {}
        Attribute::Fingerprint(fingerprint) => {
            out.push(b':');
            words(out, &[fingerprint.hash_function, fingerprint.value]);
        }
        Attribute::Setup(setup) => {
            out.push(b':');
            out.extend_from_slice(setup.as_str().as_bytes());
        }
        Attribute::Group(group) => {
            out.push(b':');
            out.extend_from_slice(group.semantics.as_bytes());
            if !group.tags.is_empty() {
                out.push(b' ');
                out.extend_from_slice(group.tags.as_bytes());
            }
        }
        Attribute::Msid(msid) => {
            out.push(b':');
            out.extend_from_slice(msid.stream_id.as_bytes());
            optional_word(out, b' ', msid.track_id);
        }
        Attribute::Rtpmap(rtpmap) => {
            out.push(b':');
            write_u64(out, u64::from(rtpmap.payload_type));
            out.push(b' ');
            out.extend_from_slice(rtpmap.encoding_name.as_bytes());
            out.push(b'/');
            write_u64(out, u64::from(rtpmap.clock_rate));
            optional_word(out, b'/', rtpmap.encoding_params);
        }
        Attribute::Fmtp(fmtp) => {
            out.push(b':');
            words(out, &[fmtp.format, fmtp.params]);
        }
        Attribute::RtcpFb(feedback) => {
            out.push(b':');
            words(out, &[feedback.format, feedback.kind]);
            optional_word(out, b' ', feedback.param);
        }
        Attribute::Extmap(extmap) => {
            out.push(b':');
            write_u64(out, u64::from(extmap.id));
            if let Some(direction) = extmap.direction {
                out.push(b'/');
                out.extend_from_slice(direction.as_str().as_bytes());
            }
            out.push(b' ');
            out.extend_from_slice(extmap.uri.as_bytes());
            optional_word(out, b' ', extmap.attributes);
        }
        Attribute::Ssrc(ssrc) => {
            out.push(b':');
            write_u64(out, u64::from(ssrc.ssrc));
            out.push(b' ');
            out.extend_from_slice(ssrc.attribute.as_bytes());
            optional_word(out, b':', ssrc.value);
        }
        Attribute::SsrcGroup(group) => {
            out.push(b':');
            words(out, &[group.semantics, group.ssrcs]);
        }
        Attribute::SctpPort(port) => {
            out.push(b':');
            write_u64(out, u64::from(*port));
        }
        Attribute::MaxMessageSize(bytes) => {
            out.push(b':');
            write_u64(out, *bytes);
        }
        Attribute::Candidate(candidate) => {
            out.push(b':');
            write_candidate(out, candidate);
        }
        Attribute::Simulcast(simulcast) => {
            out.push(b':');
            let send = simulcast.send.map(|list| ("send", list));
            let recv = simulcast.recv.map(|list| ("recv", list));
            let (first, second) = if simulcast.recv_first {
                (recv, send)
            } else {
                (send, recv)
            };
            for (index, (direction, list)) in first.into_iter().chain(second).enumerate() {
                if index > 0 {
                    out.push(b' ');
                }
                words(out, &[direction, list]);
            }
        }
        Attribute::Rid(rid) => {
            out.push(b':');
            words(out, &[rid.id, rid.direction]);
            optional_word(out, b' ', rid.params);
        }
        Attribute::Other { value, .. } => optional_word(out, b':', *value),
    }
}

/// Writes a candidate's fields (the text after `candidate:`).
pub fn write_candidate(out: &mut Vec<u8>, candidate: &Candidate<'_>) {
    out.extend_from_slice(candidate.foundation.as_bytes());
    out.push(b' ');
    write_u64(out, u64::from(candidate.component));
    out.push(b' ');
    out.extend_from_slice(candidate.transport.as_bytes());
    out.push(b' ');
    write_u64(out, u64::from(candidate.priority));
    out.push(b' ');
    out.extend_from_slice(candidate.address.as_bytes());
    out.push(b' ');
    write_u64(out, u64::from(candidate.port));
    out.extend_from_slice(b" typ ");
    out.extend_from_slice(candidate.kind.as_str().as_bytes());
    if let Some(address) = candidate.related_address {
        out.extend_from_slice(b" raddr ");
        out.extend_from_slice(address.as_bytes());
    }
    if let Some(port) = candidate.related_port {
        out.extend_from_slice(b" rport ");
        write_u64(out, u64::from(port));
    }
    if !candidate.extensions.is_empty() {
        out.push(b' ');
        out.extend_from_slice(candidate.extensions.as_bytes());
    }
}

/// Writes words separated by single spaces.
fn words(out: &mut Vec<u8>, words: &[&str]) {
    for (index, word) in words.iter().enumerate() {
        if index > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(word.as_bytes());
    }
}

fn optional_word(out: &mut Vec<u8>, separator: u8, word: Option<&str>) {
    if let Some(word) = word {
        out.push(separator);
        out.extend_from_slice(word.as_bytes());
    }
}

/// Writes a decimal number without going through `core::fmt`, which is several times slower
/// for the short numbers SDP is full of.
fn write_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::super::parser::{Direction, Fingerprint, Group, Rtpmap, Setup};
    use super::*;

    fn origin() -> Origin<'static> {
        Origin {
            username: "-",
            session_id: "4962303333179871722",
            session_version: "1",
            network_type: "IN",
            address_type: "IP4",
            address: "0.0.0.0",
        }
    }

    #[test]
    fn writes_numbers() {
        let mut out = Vec::new();
        for value in [0, 9, 10, 65535, u64::MAX] {
            out.clear();
            write_u64(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes());
        }
    }

    #[test]
    fn builds_a_minimal_description_with_implicit_timing() {
        let mut out = Vec::new();
        let bytes_written = SdpBuilder::new(&mut out, &origin(), "-").finish();
        assert_eq!(
            out,
            b"v=0\r\no=- 4962303333179871722 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        );
        assert_eq!(bytes_written, out.len());
    }

    #[test]
    fn builds_sections_with_typed_attributes() {
        let mut out = b"prefix".to_vec();
        let mut builder = SdpBuilder::with_line_ending(&mut out, LineEnding::Lf, &origin(), "-");
        builder
            .attribute(&Attribute::Group(Group {
                semantics: "BUNDLE",
                tags: "a1",
            }))
            .media(&MediaLine {
                media: "audio",
                port: 9,
                port_count: None,
                proto: "UDP/TLS/RTP/SAVPF",
                formats: "111",
            })
            .attribute(&Attribute::Mid("a1"))
            .attribute(&Attribute::Direction(Direction::SendOnly))
            .attribute(&Attribute::Setup(Setup::Actpass))
            .attribute(&Attribute::Fingerprint(Fingerprint {
                hash_function: "sha-1",
                value: "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33",
            }))
            .attribute(&Attribute::Rtpmap(Rtpmap {
                payload_type: 111,
                encoding_name: "opus",
                clock_rate: 48000,
                encoding_params: Some("2"),
            }));
        let bytes_written = builder.finish();
        let text = std::str::from_utf8(&out[6..]).unwrap();
        assert_eq!(bytes_written, text.len());
        assert_eq!(
            text,
            "v=0\no=- 4962303333179871722 1 IN IP4 0.0.0.0\ns=-\nt=0 0\n\
             a=group:BUNDLE a1\nm=audio 9 UDP/TLS/RTP/SAVPF 111\na=mid:a1\na=sendonly\n\
             a=setup:actpass\n\
             a=fingerprint:sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33\n\
             a=rtpmap:111 opus/48000/2\n"
        );
        let sdp = Sdp::parse(text).unwrap();
        assert_eq!(sdp.line_ending(), LineEnding::Lf);
        assert_eq!(
            sdp.media_by_mid("a1").unwrap().direction(),
            Direction::SendOnly
        );
    }

    #[test]
    fn builds_the_documented_example() {
        let mut out = Vec::with_capacity(1024);
        let mut builder = SdpBuilder::new(&mut out, &origin(), "-");
        builder
            .attribute(&Attribute::Group(Group {
                semantics: "BUNDLE",
                tags: "0",
            }))
            .media(&MediaLine {
                media: "application",
                port: 9,
                port_count: None,
                proto: "UDP/DTLS/SCTP",
                formats: "webrtc-datachannel",
            })
            .attribute(&Attribute::Mid("0"))
            .attribute(&Attribute::SctpPort(5000));
        let bytes_written = builder.finish();
        assert_eq!(bytes_written, out.len());
        assert!(Sdp::parse(std::str::from_utf8(&out).unwrap()).is_ok());
    }

    #[test]
    #[should_panic(expected = "out of RFC 8866 order")]
    fn panics_on_out_of_order_line() {
        let mut out = Vec::new();
        let mut builder = SdpBuilder::new(&mut out, &origin(), "-");
        builder.attribute(&Attribute::IceLite);
        builder.line(&Line::Uri("http://example.com"));
    }
}
