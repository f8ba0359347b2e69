//! The SDP parser (RFC 8866) and the typed views it hands out.
//!
//! [`Sdp::parse`] checks every line once: the line order of RFC 8866 §5, the grammar of the
//! structured lines (`o c b t m`) and of the attributes WebRTC uses, including the full
//! candidate and fingerprint grammar. It keeps only the text and one small record per media
//! section. The typed views ([`Line`], [`Attribute`], [`MediaSection`]) are cut from the text
//! again when asked for: that is cheaper than storing a record per attribute, because a fixed
//! array big enough for a large offer costs more to initialise than a 20-line offer costs to
//! parse.

use super::candidate::{parse_candidate_value, Candidate};
use super::error::{SdpError, SdpErrorKind};

/// The most media sections (`m=` lines) a description may have.
pub const MEDIA_SECTIONS_MAX: usize = 64;

/// The most attribute (`a=`) lines a description may have, session and media levels together.
pub const ATTRIBUTES_MAX: usize = 4096;

/// The largest text the parser takes, in bytes: offsets are stored as `u32`.
pub const TEXT_BYTES_MAX: usize = u32::MAX as usize;

/// How the lines of a description end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LineEnding {
    /// `\r\n`, as RFC 8866 requires.
    #[default]
    Crlf,
    /// `\n` alone, as some stacks and hand-written descriptions use.
    Lf,
}

impl LineEnding {
    /// The bytes that end a line.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Self::Crlf => b"\r\n",
            Self::Lf => b"\n",
        }
    }
}

/// A parsed session description. It borrows the text and allocates nothing.
#[derive(Debug, Clone)]
pub struct Sdp<'a> {
    text: &'a str,
    line_ending: LineEnding,
    /// The session-level lines: from `v=` up to the first `m=` line.
    session: &'a str,
    sections: [SectionRecord; MEDIA_SECTIONS_MAX],
    sections_len: usize,
    lines_len: u32,
    /// When every line ends in `line_ending`: the length of the text up to the end of its
    /// last line, leaving out trailing blank lines. `write_to` then copies that prefix.
    verbatim_len: Option<u32>,
}

/// Where a media section lies in the text.
#[derive(Debug, Clone, Copy, Default)]
struct SectionRecord {
    start: u32,
    end: u32,
    line: u32,
}

/// One line of a description, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Line<'a> {
    /// `v=0`.
    Version,
    /// `o=`.
    Origin(Origin<'a>),
    /// `s=`.
    SessionName(&'a str),
    /// `i=`: session or media title.
    Information(&'a str),
    /// `u=`.
    Uri(&'a str),
    /// `e=`.
    Email(&'a str),
    /// `p=`.
    Phone(&'a str),
    /// `c=`.
    Connection(Connection<'a>),
    /// `b=`.
    Bandwidth(Bandwidth<'a>),
    /// `t=`.
    Timing(Timing),
    /// `r=`, kept as written.
    Repeat(&'a str),
    /// `z=`, kept as written.
    TimeZones(&'a str),
    /// `k=` (obsolete), kept as written.
    Key(&'a str),
    /// `a=`.
    Attribute(Attribute<'a>),
    /// `m=`: starts a media section.
    Media(MediaLine<'a>),
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The user name, `-` when there is none.
    pub username: &'a str,
    /// The session id: digits, possibly more than 64 bits' worth, so kept as text.
    pub session_id: &'a str,
    /// The session version: digits, kept as text for the same reason.
    pub session_version: &'a str,
    /// `IN`.
    pub network_type: &'a str,
    /// `IP4` or `IP6`.
    pub address_type: &'a str,
    /// The originator's address.
    pub address: &'a str,
}

/// `c=<nettype> <addrtype> <connection-address>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection<'a> {
    /// `IN`.
    pub network_type: &'a str,
    /// `IP4` or `IP6`.
    pub address_type: &'a str,
    /// The address, with `/ttl` and `/count` suffixes as written.
    pub address: &'a str,
}

/// `b=<bwtype>:<bandwidth>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bandwidth<'a> {
    /// `AS`, `CT`, `TIAS`, ...
    pub kind: &'a str,
    /// The bandwidth, in the unit the kind defines (kbit/s for `AS` and `CT`, bit/s for `TIAS`).
    pub value: u64,
}

/// `t=<start-time> <stop-time>`, NTP seconds; `t=0 0` is an unbounded session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    /// Start, NTP seconds (0 for unbounded).
    pub start: u64,
    /// Stop, NTP seconds (0 for unbounded).
    pub stop: u64,
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaLine<'a> {
    /// `audio`, `video`, `application`, ...
    pub media: &'a str,
    /// The port; 0 rejects the section (unless it is `bundle-only`).
    pub port: u16,
    /// The `/<count>` after the port, if any.
    pub port_count: Option<u16>,
    /// `UDP/TLS/RTP/SAVPF`, `UDP/DTLS/SCTP`, ...
    pub proto: &'a str,
    /// The formats as written, separated by single spaces.
    pub formats: &'a str,
}

impl<'a> MediaLine<'a> {
    /// Iterates over the formats (payload types for RTP).
    pub fn format_list(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.formats.split(' ')
    }
}

/// One `a=` line, typed for the attributes WebRTC uses and raw for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attribute<'a> {
    /// `a=mid:<tag>` (RFC 5888).
    Mid(&'a str),
    /// `a=ice-ufrag:<ufrag>` (RFC 8839).
    IceUfrag(&'a str),
    /// `a=ice-pwd:<pwd>` (RFC 8839).
    IcePwd(&'a str),
    /// `a=ice-options:<options>`, space separated, kept as written.
    IceOptions(&'a str),
    /// `a=ice-lite`.
    IceLite,
    /// `a=fingerprint:<hash> <hex>` (RFC 8122).
    Fingerprint(Fingerprint<'a>),
    /// `a=setup:<role>` (RFC 4145).
    Setup(Setup),
    /// `a=group:<semantics> <tag> ...` (RFC 5888), such as BUNDLE.
    Group(Group<'a>),
    /// `a=msid:<stream> [<track>]` (RFC 8830).
    Msid(Msid<'a>),
    /// `a=rtpmap:<pt> <name>/<rate>[/<params>]`.
    Rtpmap(Rtpmap<'a>),
    /// `a=fmtp:<format> <params>`.
    Fmtp(Fmtp<'a>),
    /// `a=rtcp-fb:<pt> <type> [<param>]` (RFC 4585).
    RtcpFb(RtcpFb<'a>),
    /// `a=rtcp-mux`.
    RtcpMux,
    /// `a=rtcp-mux-only` (RFC 8858).
    RtcpMuxOnly,
    /// `a=rtcp-rsize` (RFC 5506).
    RtcpRsize,
    /// `a=extmap:<id>[/<dir>] <uri> [<attributes>]` (RFC 8285).
    Extmap(Extmap<'a>),
    /// `a=ssrc:<ssrc> <attribute>[:<value>]` (RFC 5576).
    Ssrc(Ssrc<'a>),
    /// `a=ssrc-group:<semantics> <ssrc> ...` (RFC 5576).
    SsrcGroup(SsrcGroup<'a>),
    /// `a=sctp-port:<port>` (RFC 8841).
    SctpPort(u16),
    /// `a=max-message-size:<bytes>` (RFC 8841).
    MaxMessageSize(u64),
    /// `a=candidate:...` (RFC 8839).
    Candidate(Candidate<'a>),
    /// `a=end-of-candidates` (RFC 8840).
    EndOfCandidates,
    /// `a=sendrecv`, `a=sendonly`, `a=recvonly` or `a=inactive`.
    Direction(Direction),
    /// `a=simulcast:...` (RFC 8853).
    Simulcast(Simulcast<'a>),
    /// `a=rid:<id> <send|recv> [<params>]` (RFC 8851).
    Rid(Rid<'a>),
    /// `a=bundle-only` (RFC 9143).
    BundleOnly,
    /// Any other attribute, kept as written: `a=<name>` or `a=<name>:<value>`.
    Other {
        /// The attribute name.
        name: &'a str,
        /// The text after the first `:`, if there was one.
        value: Option<&'a str>,
    },
}

/// `a=fingerprint:<hash-function> <fingerprint>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint<'a> {
    /// `sha-256`, `sha-384`, ...
    pub hash_function: &'a str,
    /// Hex byte pairs separated by `:`, as written.
    pub value: &'a str,
}

impl Fingerprint<'_> {
    /// Iterates over the fingerprint's bytes.
    pub fn bytes(&self) -> impl Iterator<Item = u8> + '_ {
        self.value
            .split(':')
            .map(|pair| u8::from_str_radix(pair, 16).unwrap_or(0))
    }
}

/// The DTLS role (`a=setup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setup {
    /// Will connect.
    Active,
    /// Will accept.
    Passive,
    /// Either; the answerer chooses (offers only).
    Actpass,
    /// Not now (not used by WebRTC).
    Holdconn,
}

impl Setup {
    /// The SDP token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Passive => "passive",
            Self::Actpass => "actpass",
            Self::Holdconn => "holdconn",
        }
    }
}

/// The media direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `sendrecv`.
    SendRecv,
    /// `sendonly`.
    SendOnly,
    /// `recvonly`.
    RecvOnly,
    /// `inactive`.
    Inactive,
}

impl Direction {
    /// The SDP token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        match token {
            "sendrecv" => Some(Self::SendRecv),
            "sendonly" => Some(Self::SendOnly),
            "recvonly" => Some(Self::RecvOnly),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }
}

/// `a=group:<semantics> <tags>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group<'a> {
    /// `BUNDLE`, `LS`, ...
    pub semantics: &'a str,
    /// The mids, separated by single spaces; empty for an empty group.
    pub tags: &'a str,
}

impl<'a> Group<'a> {
    /// Iterates over the mids in the group, in order.
    pub fn mids(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.tags.split(' ').filter(|tag| !tag.is_empty())
    }
}

/// `a=msid:<stream-id> [<track-id>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msid<'a> {
    /// The media stream id (`-` for none).
    pub stream_id: &'a str,
    /// The track id ("appdata"), if given.
    pub track_id: Option<&'a str>,
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtpmap<'a> {
    /// 0..=127.
    pub payload_type: u8,
    /// `opus`, `VP8`, `H264`, `rtx`, ...
    pub encoding_name: &'a str,
    /// Hz.
    pub clock_rate: u32,
    /// The channel count for audio, as written.
    pub encoding_params: Option<&'a str>,
}

/// `a=fmtp:<format> <parameters>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fmtp<'a> {
    /// The payload type (or other format) the parameters apply to.
    pub format: &'a str,
    /// The parameters as written, usually `key=value` pairs separated by `;`.
    pub params: &'a str,
}

impl<'a> Fmtp<'a> {
    /// Iterates over `key=value` parameters; a parameter without `=` gives `(text, None)`.
    pub fn param_list(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        self.params.split(';').map(|param| {
            let param = param.trim_start();
            match param.split_byte(b'=') {
                Some((key, value)) => (key, Some(value)),
                None => (param, None),
            }
        })
    }
}

/// `a=rtcp-fb:<payload type or *> <type> [<parameter>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpFb<'a> {
    /// The payload type, or `*` for all.
    pub format: &'a str,
    /// `nack`, `ccm`, `goog-remb`, `transport-cc`, ...
    pub kind: &'a str,
    /// The rest, such as `pli` or `fir`.
    pub param: Option<&'a str>,
}

/// `a=extmap:<id>[/<direction>] <uri> [<attributes>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extmap<'a> {
    /// The header extension id.
    pub id: u16,
    /// The direction, if given.
    pub direction: Option<Direction>,
    /// The extension URI.
    pub uri: &'a str,
    /// Extension attributes after the URI, as written.
    pub attributes: Option<&'a str>,
}

/// `a=ssrc:<ssrc> <attribute>[:<value>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ssrc<'a> {
    /// The synchronisation source.
    pub ssrc: u32,
    /// `cname`, `msid`, ...
    pub attribute: &'a str,
    /// The text after `:`, if any.
    pub value: Option<&'a str>,
}

/// `a=ssrc-group:<semantics> <ssrc> ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsrcGroup<'a> {
    /// `FID`, `SIM`, `FEC-FR`, ...
    pub semantics: &'a str,
    /// The SSRCs as written, separated by single spaces.
    pub ssrcs: &'a str,
}

impl<'a> SsrcGroup<'a> {
    /// Iterates over the SSRCs.
    pub fn ssrc_list(&self) -> impl Iterator<Item = u32> + 'a {
        self.ssrcs.split(' ').filter_map(parse_u32)
    }
}

/// `a=rid:<id> <direction> [<restrictions>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rid<'a> {
    /// The RTP stream id.
    pub id: &'a str,
    /// `send` or `recv`, as written.
    pub direction: &'a str,
    /// Restrictions such as `pt=96;max-width=1280`, as written.
    pub params: Option<&'a str>,
}

/// `a=simulcast:<dir> <list> [<dir> <list>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Simulcast<'a> {
    /// The send list (`;`-separated alternatives of `,`-separated rids), as written.
    pub send: Option<&'a str>,
    /// The receive list, as written.
    pub recv: Option<&'a str>,
    /// Whether `recv` was written before `send`, kept so the line can be written back alike.
    pub recv_first: bool,
}

impl<'a> Attribute<'a> {
    /// The attribute name, as it appears before the `:`.
    pub fn name(&self) -> &'a str {
        match self {
            Self::Mid(_) => "mid",
            Self::IceUfrag(_) => "ice-ufrag",
            Self::IcePwd(_) => "ice-pwd",
            Self::IceOptions(_) => "ice-options",
            Self::IceLite => "ice-lite",
            Self::Fingerprint(_) => "fingerprint",
            Self::Setup(_) => "setup",
            Self::Group(_) => "group",
            Self::Msid(_) => "msid",
            Self::Rtpmap(_) => "rtpmap",
            Self::Fmtp(_) => "fmtp",
            Self::RtcpFb(_) => "rtcp-fb",
            Self::RtcpMux => "rtcp-mux",
            Self::RtcpMuxOnly => "rtcp-mux-only",
            Self::RtcpRsize => "rtcp-rsize",
            Self::Extmap(_) => "extmap",
            Self::Ssrc(_) => "ssrc",
            Self::SsrcGroup(_) => "ssrc-group",
            Self::SctpPort(_) => "sctp-port",
            Self::MaxMessageSize(_) => "max-message-size",
            Self::Candidate(_) => "candidate",
            Self::EndOfCandidates => "end-of-candidates",
            Self::Direction(direction) => direction.as_str(),
            Self::Simulcast(_) => "simulcast",
            Self::Rid(_) => "rid",
            Self::BundleOnly => "bundle-only",
            Self::Other { name, .. } => name,
        }
    }

    /// Parses the text after `a=`, which must be one line without its line ending (as the
    /// lines of a description that [`Sdp::parse`] accepted are).
    pub fn parse(text: &'a str) -> Result<Self, SdpErrorKind> {
        Self::parse_inline(text)
    }

    /// [`parse`](Self::parse), inlined into the parsing loop so that the compiler can leave
    /// out building values that nobody reads.
    #[inline(always)]
    fn parse_inline(text: &'a str) -> Result<Self, SdpErrorKind> {
        // The name runs up to the first `:`, found eight bytes at a time. A name we know is a
        // token already, so only the others are checked byte by byte.
        let bytes = text.as_bytes();
        let name_len = find_byte(bytes, b':').unwrap_or(bytes.len());
        let kind = AttributeName::of(&bytes[..name_len]);
        if kind == AttributeName::Other && !is_token(&text[..name_len]) {
            return Err(SdpErrorKind::AttributeName);
        }
        let name = &text[..name_len];
        let value = text.get(name_len + 1..);
        use AttributeName as N;
        Ok(match kind {
            N::Mid => Self::Mid(token_value(value, "mid")?),
            N::IceUfrag => Self::IceUfrag(ice_value(value, "ice-ufrag")?),
            N::IcePwd => Self::IcePwd(ice_value(value, "ice-pwd")?),
            N::IceOptions => Self::IceOptions(non_empty(value, "ice-options")?),
            N::IceLite => flag(value, "ice-lite", Self::IceLite)?,
            N::Fingerprint => Self::Fingerprint(parse_fingerprint(value)?),
            N::Setup => Self::Setup(parse_setup(value)?),
            N::Group => Self::Group(parse_group(value)?),
            N::Msid => Self::Msid(parse_msid(value)?),
            N::Rtpmap => Self::Rtpmap(parse_rtpmap(value)?),
            N::Fmtp => Self::Fmtp(parse_fmtp(value)?),
            N::RtcpFb => Self::RtcpFb(parse_rtcp_fb(value)?),
            N::RtcpMux => flag(value, "rtcp-mux", Self::RtcpMux)?,
            N::RtcpMuxOnly => flag(value, "rtcp-mux-only", Self::RtcpMuxOnly)?,
            N::RtcpRsize => flag(value, "rtcp-rsize", Self::RtcpRsize)?,
            N::Extmap => Self::Extmap(parse_extmap(value)?),
            N::Ssrc => Self::Ssrc(parse_ssrc(value)?),
            N::SsrcGroup => Self::SsrcGroup(parse_ssrc_group(value)?),
            N::SctpPort => Self::SctpPort(
                value
                    .and_then(parse_u16)
                    .ok_or(SdpErrorKind::AttributeValue("sctp-port"))?,
            ),
            N::MaxMessageSize => Self::MaxMessageSize(
                value
                    .and_then(parse_u64)
                    .ok_or(SdpErrorKind::AttributeValue("max-message-size"))?,
            ),
            N::Candidate => Self::Candidate(
                parse_candidate_value(value.unwrap_or("")).map_err(SdpErrorKind::Candidate)?,
            ),
            N::EndOfCandidates => flag(value, "end-of-candidates", Self::EndOfCandidates)?,
            N::SendRecv => flag(value, "sendrecv", Self::Direction(Direction::SendRecv))?,
            N::SendOnly => flag(value, "sendonly", Self::Direction(Direction::SendOnly))?,
            N::RecvOnly => flag(value, "recvonly", Self::Direction(Direction::RecvOnly))?,
            N::Inactive => flag(value, "inactive", Self::Direction(Direction::Inactive))?,
            N::Simulcast => Self::Simulcast(parse_simulcast(value)?),
            N::Rid => Self::Rid(parse_rid(value)?),
            N::BundleOnly => flag(value, "bundle-only", Self::BundleOnly)?,
            N::Other => Self::Other { name, value },
        })
    }
}

/// The attribute names [`Attribute`] gives a typed value, found by length first and then
/// by comparing the few names of that length: with the length known, each comparison
/// compiles to one or two integer loads and compares, where a `match` on `&str` tries every
/// arm in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttributeName {
    Mid,
    IceUfrag,
    IcePwd,
    IceOptions,
    IceLite,
    Fingerprint,
    Setup,
    Group,
    Msid,
    Rtpmap,
    Fmtp,
    RtcpFb,
    RtcpMux,
    RtcpMuxOnly,
    RtcpRsize,
    Extmap,
    Ssrc,
    SsrcGroup,
    SctpPort,
    MaxMessageSize,
    Candidate,
    EndOfCandidates,
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
    Simulcast,
    Rid,
    BundleOnly,
    /// Any name without a typed value.
    Other,
}

impl AttributeName {
    /// The name `name` (without the `:`).
    #[inline(always)]
    pub(crate) fn of(name: &[u8]) -> Self {
        let is = |candidate: &[u8]| name == candidate;
        match name.len() {
            3 if is(b"mid") => Self::Mid,
            3 if is(b"rid") => Self::Rid,
            4 if is(b"fmtp") => Self::Fmtp,
            4 if is(b"ssrc") => Self::Ssrc,
            4 if is(b"msid") => Self::Msid,
            5 if is(b"setup") => Self::Setup,
            5 if is(b"group") => Self::Group,
            6 if is(b"rtpmap") => Self::Rtpmap,
            6 if is(b"extmap") => Self::Extmap,
            7 if is(b"rtcp-fb") => Self::RtcpFb,
            7 if is(b"ice-pwd") => Self::IcePwd,
            8 if is(b"rtcp-mux") => Self::RtcpMux,
            8 if is(b"sendrecv") => Self::SendRecv,
            8 if is(b"sendonly") => Self::SendOnly,
            8 if is(b"recvonly") => Self::RecvOnly,
            8 if is(b"inactive") => Self::Inactive,
            8 if is(b"ice-lite") => Self::IceLite,
            9 if is(b"candidate") => Self::Candidate,
            9 if is(b"ice-ufrag") => Self::IceUfrag,
            9 if is(b"sctp-port") => Self::SctpPort,
            9 if is(b"simulcast") => Self::Simulcast,
            10 if is(b"rtcp-rsize") => Self::RtcpRsize,
            10 if is(b"ssrc-group") => Self::SsrcGroup,
            11 if is(b"fingerprint") => Self::Fingerprint,
            11 if is(b"ice-options") => Self::IceOptions,
            11 if is(b"bundle-only") => Self::BundleOnly,
            13 if is(b"rtcp-mux-only") => Self::RtcpMuxOnly,
            16 if is(b"max-message-size") => Self::MaxMessageSize,
            17 if is(b"end-of-candidates") => Self::EndOfCandidates,
            _ => Self::Other,
        }
    }

    /// The name at the start of an attribute's text (up to its `:`), for picking attributes
    /// out by name without parsing them.
    #[inline]
    pub(crate) fn of_text(text: &str) -> Self {
        let bytes = text.as_bytes();
        let name_len = bytes
            .iter()
            .take(18)
            .position(|&byte| byte == b':')
            .unwrap_or(bytes.len());
        Self::of(&bytes[..name_len])
    }
}

fn flag<'a>(
    value: Option<&str>,
    name: &'static str,
    attribute: Attribute<'a>,
) -> Result<Attribute<'a>, SdpErrorKind> {
    match value {
        None => Ok(attribute),
        Some(_) => Err(SdpErrorKind::UnexpectedValue(name)),
    }
}

fn non_empty<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, SdpErrorKind> {
    value
        .filter(|value| !value.is_empty())
        .ok_or(SdpErrorKind::AttributeValue(name))
}

fn token_value<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, SdpErrorKind> {
    value
        .filter(|value| is_token(value))
        .ok_or(SdpErrorKind::AttributeValue(name))
}

/// ICE credentials are ice-chars only (RFC 8839 §5.4); we do not enforce the minimum lengths
/// (4 and 22) because a relay has no business rejecting what both peers accept.
fn ice_value<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, SdpErrorKind> {
    value
        .filter(|value| !value.is_empty() && value.bytes().all(super::candidate::is_ice_char))
        .ok_or(SdpErrorKind::AttributeValue(name))
}

fn parse_fingerprint(value: Option<&str>) -> Result<Fingerprint<'_>, SdpErrorKind> {
    const ERROR: SdpErrorKind = SdpErrorKind::AttributeValue("fingerprint");
    let (hash_function, hex) = value.and_then(|v| v.split_byte(b' ')).ok_or(ERROR)?;
    if !is_token(hash_function) || hex.is_empty() {
        return Err(ERROR);
    }
    // Each byte is two hex digits, and bytes are separated by single colons: `XX:` groups
    // and a final `XX`. The groups are checked without a branch each, then tested once.
    let bytes = hex.as_bytes();
    if (bytes.len() + 1) % 3 != 0 {
        return Err(ERROR);
    }
    let mut groups = bytes.chunks_exact(3);
    let mut ok = true;
    for group in &mut groups {
        ok &= HEX_DIGITS[usize::from(group[0])]
            & HEX_DIGITS[usize::from(group[1])]
            & (group[2] == b':');
    }
    // The length check leaves exactly two bytes over.
    if let [high, low] = *groups.remainder() {
        ok &= HEX_DIGITS[usize::from(high)] & HEX_DIGITS[usize::from(low)];
    } else {
        ok = false;
    }
    if !ok {
        return Err(ERROR);
    }
    let bytes_len = (bytes.len() + 1) / 3;
    if digest_bytes_len(hash_function).is_some_and(|expected| expected != bytes_len) {
        return Err(ERROR);
    }
    Ok(Fingerprint {
        hash_function,
        value: hex,
    })
}

/// The digest size of the hash functions RFC 8122 lists, matched case-insensitively without
/// building a lowercase copy; `None` for others, whose length we cannot check.
fn digest_bytes_len(hash_function: &str) -> Option<usize> {
    // Every listed name is 3, 5 or 7 bytes long; most others are told apart without a compare.
    if !matches!(hash_function.len(), 3 | 5 | 7) {
        return None;
    }
    [
        ("sha-1", 20),
        ("sha-224", 28),
        ("sha-256", 32),
        ("sha-384", 48),
        ("sha-512", 64),
        ("md5", 16),
        ("md2", 16),
    ]
    .into_iter()
    .find(|(name, _)| name.eq_ignore_ascii_case(hash_function))
    .map(|(_, bytes_len)| bytes_len)
}

fn parse_setup(value: Option<&str>) -> Result<Setup, SdpErrorKind> {
    match value {
        Some("active") => Ok(Setup::Active),
        Some("passive") => Ok(Setup::Passive),
        Some("actpass") => Ok(Setup::Actpass),
        Some("holdconn") => Ok(Setup::Holdconn),
        _ => Err(SdpErrorKind::AttributeValue("setup")),
    }
}

fn parse_group(value: Option<&str>) -> Result<Group<'_>, SdpErrorKind> {
    const ERROR: SdpErrorKind = SdpErrorKind::AttributeValue("group");
    let value = value.ok_or(ERROR)?;
    let (semantics, tags) = value.split_byte(b' ').unwrap_or((value, ""));
    if !is_token(semantics) || !(tags.is_empty() || is_token_list(tags)) {
        return Err(ERROR);
    }
    Ok(Group { semantics, tags })
}

fn parse_msid(value: Option<&str>) -> Result<Msid<'_>, SdpErrorKind> {
    const ERROR: SdpErrorKind = SdpErrorKind::AttributeValue("msid");
    let mut scan = Scanner::new(value.ok_or(ERROR)?);
    let stream_id = scan.token_until(b' ').ok_or(ERROR)?;
    let track_id = if scan.is_done() {
        None
    } else {
        scan.expect(b' ').ok_or(ERROR)?;
        Some(
            scan.token_until(b' ')
                .filter(|_| scan.is_done())
                .ok_or(ERROR)?,
        )
    };
    Ok(Msid {
        stream_id,
        track_id,
    })
}
fn parse_rtpmap(value: Option<&str>) -> Result<Rtpmap<'_>, SdpErrorKind> {
    const ERROR: SdpErrorKind = SdpErrorKind::AttributeValue("rtpmap");
    let mut scan = Scanner::new(value.ok_or(ERROR)?);
    let payload_type = scan.number().filter(|pt| *pt <= 127).ok_or(ERROR)? as u8;
    scan.expect(b' ').ok_or(ERROR)?;
    let encoding_name = scan.token_until(b'/').ok_or(ERROR)?;
    scan.expect(b'/').ok_or(ERROR)?;
    let clock_rate = scan
        .number()
        .and_then(|rate| u32::try_from(rate).ok())
        .ok_or(ERROR)?;
    let encoding_params = if scan.is_done() {
        None
    } else {
        scan.expect(b'/').ok_or(ERROR)?;
        Some(
            scan.token_until(b' ')
                .filter(|_| scan.is_done())
                .ok_or(ERROR)?,
        )
    };
    Ok(Rtpmap {
        payload_type,
        encoding_name,
        clock_rate,
        encoding_params,
    })
}
fn parse_fmtp(value: Option<&str>) -> Result<Fmtp<'_>, SdpErrorKind> {
    const ERROR: SdpErrorKind = SdpErrorKind::AttributeValue("fmtp");
    let mut scan = Scanner::new(value.ok_or(ERROR)?);
    let format = scan.token_until(b' ').ok_or(ERROR)?;
    scan.expect(b' ').ok_or(ERROR)?;
    let params = scan.rest();
    if params.is_empty() {
        return Err(ERROR);
    }
    Ok(Fmtp { format, params })
}
fn parse_rtcp_fb(value: Option<&str>) -> Result<RtcpFb<'_>, SdpErrorKind> {
    const ERROR: SdpErrorKind = SdpErrorKind::AttributeValue("rtcp-fb");
    let mut scan = Scanner::new(value.ok_or(ERROR)?);
    let format = match scan.peek() {
        Some(b'*') => scan.take(1),
        _ => {
            // The digits are read and added up in one pass, then cut as text.
            let start = scan.position;
            scan.number()
                .filter(|pt| *pt <= u64::from(u16::MAX))
                .ok_or(ERROR)?;
            &scan.text[start..scan.position]
        }
    };
    scan.expect(b' ').ok_or(ERROR)?;
    let kind = scan.token_until(b' ').ok_or(ERROR)?;
    let param = if scan.is_done() {
        None
    } else {
        scan.expect(b' ').ok_or(ERROR)?;
        Some(scan.rest()).filter(|param| !param.is_empty())
    };
    if param.is_none() && !scan.is_done() {
        return Err(ERROR);
    }
    Ok(RtcpFb {
        format,
        kind,
        param,
    })
}
fn parse_extmap(value: Option<&str>) -> Result<Extmap<'_>, SdpErrorKind> {
    const ERROR: SdpErrorKind = SdpErrorKind::AttributeValue("extmap");
    let mut scan = Scanner::new(value.ok_or(ERROR)?);
    let id = scan
        .number()
        .and_then(|id| u16::try_from(id).ok())
        .ok_or(ERROR)?;
    let direction = if scan.peek() == Some(b'/') {
        scan.take(1);
        let direction = scan.token_until(b' ').ok_or(ERROR)?;
        Some(Direction::from_token(direction).ok_or(ERROR)?)
    } else {
        None
    };
    scan.expect(b' ').ok_or(ERROR)?;
    let rest = scan.rest();
    let (uri, attributes) = match rest.split_byte(b' ') {
        Some((uri, attributes)) => (uri, Some(attributes)),
        None => (rest, None),
    };
    if uri.is_empty() || attributes.is_some_and(str::is_empty) {
        return Err(ERROR);
    }
    Ok(Extmap {
        id,
        direction,
        uri,
        attributes,
    })
}
fn parse_ssrc(value: Option<&str>) -> Result<Ssrc<'_>, SdpErrorKind> {
    const ERROR: SdpErrorKind = SdpErrorKind::AttributeValue("ssrc");
    let mut scan = Scanner::new(value.ok_or(ERROR)?);
    let ssrc = scan
        .number()
        .and_then(|ssrc| u32::try_from(ssrc).ok())
        .ok_or(ERROR)?;
    scan.expect(b' ').ok_or(ERROR)?;
    let attribute = scan.token_until(b':').ok_or(ERROR)?;
    let value = if scan.is_done() {
        None
    } else {
        scan.expect(b':').ok_or(ERROR)?;
        Some(scan.rest())
    };
    Ok(Ssrc {
        ssrc,
        attribute,
        value,
    })
}
fn parse_ssrc_group(value: Option<&str>) -> Result<SsrcGroup<'_>, SdpErrorKind> {
    const ERROR: SdpErrorKind = SdpErrorKind::AttributeValue("ssrc-group");
    let (semantics, ssrcs) = value.and_then(|v| v.split_byte(b' ')).ok_or(ERROR)?;
    if !is_token(semantics) || !is_number_list(ssrcs) {
        return Err(ERROR);
    }
    Ok(SsrcGroup { semantics, ssrcs })
}

fn parse_rid(value: Option<&str>) -> Result<Rid<'_>, SdpErrorKind> {
    const ERROR: SdpErrorKind = SdpErrorKind::AttributeValue("rid");
    let (id, rest) = value.and_then(|v| v.split_byte(b' ')).ok_or(ERROR)?;
    let (direction, params) = match rest.split_byte(b' ') {
        Some((direction, params)) => (direction, Some(params)),
        None => (rest, None),
    };
    if !is_rid_id(id) || !matches!(direction, "send" | "recv") || params.is_some_and(str::is_empty)
    {
        return Err(ERROR);
    }
    Ok(Rid {
        id,
        direction,
        params,
    })
}

/// `rid-id = 1*(alpha-numeric / "-" / "_")` (RFC 8851 §10).
fn is_rid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

fn parse_simulcast(value: Option<&str>) -> Result<Simulcast<'_>, SdpErrorKind> {
    const ERROR: SdpErrorKind = SdpErrorKind::AttributeValue("simulcast");
    let value = value.ok_or(ERROR)?;
    let (first_direction, rest) = value.split_byte(b' ').ok_or(ERROR)?;
    let (first_list, second) = match rest.split_byte(b' ') {
        Some((list, second)) => (list, Some(second)),
        None => (rest, None),
    };
    let mut simulcast = Simulcast {
        send: None,
        recv: None,
        recv_first: first_direction == "recv",
    };
    let second = match second {
        Some(second) => Some(second.split_byte(b' ').ok_or(ERROR)?),
        None => None,
    };
    for (direction, list) in [Some((first_direction, first_list)), second]
        .into_iter()
        .flatten()
    {
        if !is_rid_list(list) {
            return Err(ERROR);
        }
        match direction {
            "send" if simulcast.send.is_none() => simulcast.send = Some(list),
            "recv" if simulcast.recv.is_none() => simulcast.recv = Some(list),
            _ => return Err(ERROR),
        }
    }
    Ok(simulcast)
}

/// A simulcast list: `;`-separated alternatives of `,`-separated rids, each of which may be
/// paused with a leading `~` (RFC 8853 §5.1).
fn is_rid_list(list: &str) -> bool {
    list.split([';', ',']).all(|rid| {
        let rid = rid.strip_prefix('~').unwrap_or(rid);
        is_rid_id(rid)
    })
}

fn parse_origin(value: &str) -> Result<Origin<'_>, SdpErrorKind> {
    const ERROR: SdpErrorKind = SdpErrorKind::Origin;
    let mut fields = Words { rest: value };
    let origin = Origin {
        username: fields.next().ok_or(ERROR)?,
        session_id: fields.next().ok_or(ERROR)?,
        session_version: fields.next().ok_or(ERROR)?,
        network_type: fields.next().ok_or(ERROR)?,
        address_type: fields.next().ok_or(ERROR)?,
        address: fields.last().ok_or(ERROR)?,
    };
    let digits = |field: &str| field.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(origin.session_id) || !digits(origin.session_version) {
        return Err(ERROR);
    }
    Ok(origin)
}

fn parse_connection(value: &str) -> Result<Connection<'_>, SdpErrorKind> {
    const ERROR: SdpErrorKind = SdpErrorKind::Connection;
    let mut fields = Words { rest: value };
    Ok(Connection {
        network_type: fields.next().ok_or(ERROR)?,
        address_type: fields.next().ok_or(ERROR)?,
        address: fields.last().ok_or(ERROR)?,
    })
}

/// Cuts single-space separated, non-empty words off the front of a line.
struct Words<'a> {
    rest: &'a str,
}

impl<'a> Words<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let (word, rest) = self.rest.split_byte(b' ')?;
        self.rest = rest;
        (!word.is_empty()).then_some(word)
    }

    /// The remainder, which must be one non-empty word.
    fn last(self) -> Option<&'a str> {
        (!self.rest.is_empty() && !self.rest.as_bytes().contains(&b' ')).then_some(self.rest)
    }
}

fn parse_bandwidth(value: &str) -> Result<Bandwidth<'_>, SdpErrorKind> {
    let (kind, value) = value.split_byte(b':').ok_or(SdpErrorKind::Bandwidth)?;
    let value = parse_u64(value).ok_or(SdpErrorKind::Bandwidth)?;
    if !is_token(kind) {
        return Err(SdpErrorKind::Bandwidth);
    }
    Ok(Bandwidth { kind, value })
}

fn parse_timing(value: &str) -> Result<Timing, SdpErrorKind> {
    let (start, stop) = value.split_byte(b' ').ok_or(SdpErrorKind::Timing)?;
    Ok(Timing {
        start: parse_u64(start).ok_or(SdpErrorKind::Timing)?,
        stop: parse_u64(stop).ok_or(SdpErrorKind::Timing)?,
    })
}

fn parse_media(value: &str) -> Result<MediaLine<'_>, SdpErrorKind> {
    const ERROR: SdpErrorKind = SdpErrorKind::Media;
    let (media, rest) = value.split_byte(b' ').ok_or(ERROR)?;
    let (port, rest) = rest.split_byte(b' ').ok_or(ERROR)?;
    let (proto, formats) = rest.split_byte(b' ').ok_or(ERROR)?;
    let (port, port_count) = match port.split_byte(b'/') {
        Some((port, count)) => (port, Some(parse_u16(count).ok_or(ERROR)?)),
        None => (port, None),
    };
    let port = parse_u16(port).ok_or(ERROR)?;
    if !is_token(media) || proto.is_empty() || !is_token_list(formats) {
        return Err(ERROR);
    }
    Ok(MediaLine {
        media,
        port,
        port_count,
        proto,
        formats,
    })
}

impl<'a> Line<'a> {
    /// Parses one line without its line ending; `kind` is the letter before `=`.
    pub(crate) fn parse(kind: u8, value: &'a str) -> Result<Self, SdpErrorKind> {
        Ok(match kind {
            b'v' if value == "0" => Self::Version,
            b'v' => return Err(SdpErrorKind::Version),
            b'o' => Self::Origin(parse_origin(value)?),
            b's' => Self::SessionName(value),
            b'i' => Self::Information(value),
            b'u' => Self::Uri(value),
            b'e' => Self::Email(value),
            b'p' => Self::Phone(value),
            b'c' => Self::Connection(parse_connection(value)?),
            b'b' => Self::Bandwidth(parse_bandwidth(value)?),
            b't' => Self::Timing(parse_timing(value)?),
            b'r' => Self::Repeat(value),
            b'z' => Self::TimeZones(value),
            b'k' => Self::Key(value),
            b'a' => Self::Attribute(Attribute::parse(value)?),
            b'm' => Self::Media(parse_media(value)?),
            _ => return Err(SdpErrorKind::UnknownLineType),
        })
    }

    /// The type letter before `=`.
    pub fn letter(&self) -> u8 {
        match self {
            Self::Version => b'v',
            Self::Origin(_) => b'o',
            Self::SessionName(_) => b's',
            Self::Information(_) => b'i',
            Self::Uri(_) => b'u',
            Self::Email(_) => b'e',
            Self::Phone(_) => b'p',
            Self::Connection(_) => b'c',
            Self::Bandwidth(_) => b'b',
            Self::Timing(_) => b't',
            Self::Repeat(_) => b'r',
            Self::TimeZones(_) => b'z',
            Self::Key(_) => b'k',
            Self::Attribute(_) => b'a',
            Self::Media(_) => b'm',
        }
    }
}

/// The place of each line type in the order RFC 8866 §5 fixes, and whether it may repeat.
/// Session-level ranks come first; media-level ranks follow `m=`.
pub(crate) fn rank(letter: u8, in_media: bool) -> Option<(u8, bool)> {
    let entry = RANKS[usize::from(in_media)][usize::from(letter)];
    (entry != NO_RANK).then_some((entry & !REPEATS, entry & REPEATS != 0))
}

/// [`rank`] as a table lookup, one row per level: the rank, with [`REPEATS`] set for lines
/// that may repeat, or [`NO_RANK`].
const RANKS: [[u8; 256]; 2] = {
    let mut table = [[NO_RANK; 256]; 2];
    let session: [(u8, u8); 15] = [
        (b'v', 0),
        (b'o', 1),
        (b's', 2),
        (b'i', 3),
        (b'u', 4),
        (b'e', 5 | REPEATS),
        (b'p', 6 | REPEATS),
        (b'c', 7),
        (b'b', 8 | REPEATS),
        // `r=` shares the rank of `t=`: it repeats the `t=` before it.
        (b't', 9 | REPEATS),
        (b'r', 9 | REPEATS),
        (b'z', 10),
        (b'k', 11),
        (b'a', 12 | REPEATS),
        (b'm', 20 | REPEATS),
    ];
    let media: [(u8, u8); 6] = [
        (b'm', 20 | REPEATS),
        (b'i', 21),
        (b'c', 22 | REPEATS),
        (b'b', 23 | REPEATS),
        (b'k', 24),
        (b'a', 25 | REPEATS),
    ];
    let mut index = 0;
    while index < session.len() {
        table[0][session[index].0 as usize] = session[index].1;
        index += 1;
    }
    index = 0;
    while index < media.len() {
        table[1][media[index].0 as usize] = media[index].1;
        index += 1;
    }
    table
};
const REPEATS: u8 = 0x80;
const NO_RANK: u8 = 0xFF;

const RANK_ORIGIN: u8 = 1;
const RANK_SESSION_NAME: u8 = 2;
pub(crate) const RANK_TIMING: u8 = 9;

/// Iterator over typed lines with their 1-based numbers.
///
/// It stops at the first empty line; [`Sdp::parse`] has checked that only line endings follow.
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    text: &'a str,
    position: usize,
    number: u32,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str, first_number: u32) -> Self {
        Self {
            text,
            position: 0,
            number: first_number.saturating_sub(1),
        }
    }

    /// The next line as its number and its text without the line ending.
    pub(crate) fn next_raw(&mut self) -> Option<(u32, &'a str)> {
        self.next_checked().map(|(number, line, _)| (number, line))
    }

    /// The next line, and whether it is clean: free of NUL and of any CR but the one of its
    /// CRLF ending. RFC 8866 allows neither inside a line, and a stray CR would turn into a
    /// line break when the line is written back with a CRLF ending.
    fn next_checked(&mut self) -> Option<(u32, &'a str, bool)> {
        let rest = self.text.get(self.position..)?;
        if rest.is_empty() {
            return None;
        }
        let (line_len, advance, clean) = cut_line(rest.as_bytes());
        self.position += advance;
        self.number += 1;
        Some((self.number, &rest[..line_len], clean))
    }
}

/// Cuts the first line off `bytes`: its length without the line ending, the bytes to skip to
/// the next line, and whether the line is clean: free of NUL and of any CR but the one of its
/// CRLF ending. The line length always falls on a character boundary, before an ASCII byte
/// or at the end.
#[inline(always)]
fn cut_line(bytes: &[u8]) -> (usize, usize, bool) {
    match find_line_break(bytes) {
        Some(end) => match (bytes[end], bytes.get(end + 1)) {
            (b'\n', _) => (end, end + 1, true),
            (b'\r', Some(b'\n')) => (end, end + 2, true),
            // A CR that ends the text ends its last line.
            (b'\r', None) => (end, end + 1, true),
            // A lone CR or a NUL: cut the line at the next LF and report it.
            _ => {
                let end = find_line_break_lf(bytes).unwrap_or(bytes.len());
                (end, (end + 1).min(bytes.len()), false)
            }
        },
        None => (bytes.len(), bytes.len(), true),
    }
}

/// Finds the next LF, for cutting a line that is already known to be bad.
fn find_line_break_lf(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&byte| byte == b'\n')
}

impl<'a> Iterator for Lines<'a> {
    type Item = (u32, Line<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let (number, line) = self.next_raw()?;
        let bytes = line.as_bytes();
        if bytes.len() < 2 {
            return None;
        }
        Some((number, validated(Line::parse(bytes[0], &line[2..]))))
    }
}

/// Unwraps a re-parse of text that [`Sdp::parse`] has already accepted.
fn validated<T>(result: Result<T, SdpErrorKind>) -> T {
    match result {
        Ok(value) => value,
        // The text is immutable and `Sdp` can only be built by `parse`, which ran the same
        // function on the same bytes; reaching this is a bug in this module.
        Err(error) => unreachable!("Sdp::parse accepted a line its accessor rejects: {error}"),
    }
}

impl<'a> Sdp<'a> {
    /// Parses a session description. CRLF and LF line endings are both accepted; a final line
    /// without an ending and trailing empty lines are tolerated.
    ///
    /// Allocates nothing; the result borrows `text`.
    pub fn parse(text: &'a str) -> Result<Self, SdpError> {
        Self::parse_observed(text, &mut ())
    }

    /// [`parse`](Self::parse), showing `observer` each `m=` line and attribute as it is
    /// accepted, so that [`validate`](super::validate) needs no second pass over the text.
    /// The observer only records; whether parsing succeeds does not depend on it.
    pub(crate) fn parse_observed<O: ParseObserver<'a>>(
        text: &'a str,
        observer: &mut O,
    ) -> Result<Self, SdpError> {
        if text.len() > TEXT_BYTES_MAX {
            return Err(SdpError::whole(SdpErrorKind::TooLarge));
        }
        let line_ending = match text.find('\n') {
            Some(end) if end > 0 && text.as_bytes()[end - 1] != b'\r' => LineEnding::Lf,
            _ => LineEnding::Crlf,
        };
        let mut sdp = Sdp {
            text,
            line_ending,
            session: text,
            sections: [SectionRecord::default(); MEDIA_SECTIONS_MAX],
            sections_len: 0,
            lines_len: 0,
            verbatim_len: None,
        };
        let mut current_rank: Option<u8> = None;
        let mut in_media = false;
        let mut attributes_len = 0usize;
        let mut last_number = 0;
        // The start of the next line; the lines are cut here as `Lines` cuts them.
        let mut next_start = 0;
        let mut number = 0u32;
        let mut verbatim = true;
        // Where the last line ends: the text's end, or the start of trailing blank lines.
        let mut verbatim_end = text.len();
        let line_ending_len = line_ending.as_bytes().len();

        while let Some(rest) = text
            .as_bytes()
            .get(next_start..)
            .filter(|rest| !rest.is_empty())
        {
            let start = next_start;
            let (line_len, advance, clean) = cut_line(rest);
            next_start += advance;
            number += 1;
            // `cut_line` cuts before an ASCII byte or at the end: a character boundary.
            let line = &text[start..start + line_len];
            last_number = number;
            if line.is_empty() {
                // Blank lines are not SDP, but some stacks end their text with one.
                let rest = &text.as_bytes()[start..];
                if rest.iter().all(|byte| matches!(byte, b'\r' | b'\n')) {
                    last_number = number - 1;
                    verbatim_end = start;
                    break;
                }
                return Err(SdpError::at(SdpErrorKind::MalformedLine, number));
            }
            // Whether the line ends in the line ending of the first line, so that `write_to`
            // can copy the text as it is. (A lone CR that ends the text also counts one byte;
            // it is ruled out after the loop.)
            verbatim &= advance - line_len == line_ending_len;
            let bytes = line.as_bytes();
            if !clean || bytes.len() < 2 || bytes[1] != b'=' {
                return Err(SdpError::at(SdpErrorKind::MalformedLine, number));
            }
            let letter = bytes[0];
            if number == 1 && letter != b'v' {
                return Err(SdpError::at(SdpErrorKind::Version, number));
            }
            let (rank, repeats) = match rank(letter, in_media) {
                Some(found) => found,
                None if rank(letter, !in_media).is_some() => {
                    return Err(SdpError::at(SdpErrorKind::OutOfOrder, number));
                }
                None => return Err(SdpError::at(SdpErrorKind::UnknownLineType, number)),
            };
            match current_rank {
                // An `m=` line closes the section before it, whatever that section held.
                _ if letter == b'm' => {}
                Some(current) if rank < current || (rank == current && !repeats) => {
                    return Err(SdpError::at(SdpErrorKind::OutOfOrder, number));
                }
                // `r=` repeats the `t=` line before it, so it must follow one.
                Some(current) if letter == b'r' && current != RANK_TIMING => {
                    return Err(SdpError::at(SdpErrorKind::OutOfOrder, number));
                }
                _ => {}
            }
            if !in_media {
                check_required(current_rank, rank, number)?;
            }
            current_rank = Some(rank);

            let value = &line[2..];
            // The typed value goes to the observer only. For `Sdp::parse` the observer ignores
            // it, and with the parsers inlined here the compiler keeps the checks and leaves
            // out building the value.
            match letter {
                b'a' => {
                    let attribute = Attribute::parse_inline(value)
                        .map_err(|kind| SdpError::at(kind, number))?;
                    attributes_len += 1;
                    if attributes_len > ATTRIBUTES_MAX {
                        return Err(SdpError::at(SdpErrorKind::TooManyAttributes, number));
                    }
                    observer.attribute(number, &attribute);
                }
                b'm' => {
                    let media = parse_media(value).map_err(|kind| SdpError::at(kind, number))?;
                    if sdp.sections_len == MEDIA_SECTIONS_MAX {
                        return Err(SdpError::at(SdpErrorKind::TooManyMediaSections, number));
                    }
                    if sdp.sections_len == 0 {
                        sdp.session = &text[..start];
                    } else {
                        sdp.sections[sdp.sections_len - 1].end = start as u32;
                    }
                    sdp.sections[sdp.sections_len] = SectionRecord {
                        start: start as u32,
                        end: text.len() as u32,
                        line: number,
                    };
                    sdp.sections_len += 1;
                    in_media = true;
                    observer.media(number, &media);
                }
                // The other letters `rank` lets through, checked as `Line::parse` checks them.
                _ => {
                    let checked = match letter {
                        b'v' if value == "0" => Ok(()),
                        b'v' => Err(SdpErrorKind::Version),
                        b'o' => parse_origin(value).map(drop),
                        b'c' => parse_connection(value).map(drop),
                        b'b' => parse_bandwidth(value).map(drop),
                        b't' => parse_timing(value).map(drop),
                        // `s i u e p r z k` hold free text.
                        _ => Ok(()),
                    };
                    checked.map_err(|kind| SdpError::at(kind, number))?;
                    // The accessors read this line with `Line::parse`; it must agree.
                    debug_assert!(Line::parse(letter, value).is_ok());
                }
            }
        }

        if last_number == 0 {
            return Err(SdpError::whole(SdpErrorKind::Empty));
        }
        if !in_media {
            // Without media the whole text is session level; its requirements still hold.
            check_required(current_rank, 20, 0).map_err(|error| SdpError::whole(error.kind()))?;
        }
        sdp.lines_len = last_number;
        // `verbatim_end` is at most the text's length, which fits a `u32`.
        let last_byte = verbatim_end
            .checked_sub(1)
            .map(|index| text.as_bytes()[index]);
        verbatim &= last_byte == Some(*line_ending.as_bytes().last().unwrap_or(&b'\n'));
        sdp.verbatim_len = verbatim.then_some(verbatim_end as u32);
        Ok(sdp)
    }

    /// The text this description was parsed from.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The length of the text up to the end of its last line, if every line ends in
    /// [`line_ending`](Self::line_ending): the bytes `write_to` copies as they are.
    pub(crate) fn verbatim_len(&self) -> Option<usize> {
        self.verbatim_len.map(|len| len as usize)
    }

    /// The line ending of the first line, which the builder reuses.
    pub fn line_ending(&self) -> LineEnding {
        self.line_ending
    }

    /// The number of lines.
    pub fn lines_len(&self) -> u32 {
        self.lines_len
    }

    /// Every line in order, with its 1-based number.
    pub fn lines(&self) -> Lines<'a> {
        Lines::new(self.text, 1)
    }

    /// The session-level lines (`v=` up to the first `m=`), with their numbers.
    pub fn session_lines(&self) -> Lines<'a> {
        Lines::new(self.session, 1)
    }

    /// The session-level attributes.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            lines: self.session_lines(),
        }
    }

    /// The `o=` line.
    pub fn origin(&self) -> Origin<'a> {
        self.session_lines()
            .find_map(|(_, line)| match line {
                Line::Origin(origin) => Some(origin),
                _ => None,
            })
            .unwrap_or_else(|| unreachable!("Sdp::parse requires an o= line"))
    }

    /// The `s=` line.
    pub fn session_name(&self) -> &'a str {
        self.session_lines()
            .find_map(|(_, line)| match line {
                Line::SessionName(name) => Some(name),
                _ => None,
            })
            .unwrap_or("")
    }

    /// The session-level `c=` line, if any.
    pub fn connection(&self) -> Option<Connection<'a>> {
        self.session_lines().find_map(|(_, line)| match line {
            Line::Connection(connection) => Some(connection),
            _ => None,
        })
    }

    /// The first `t=` line.
    pub fn timing(&self) -> Timing {
        self.session_lines()
            .find_map(|(_, line)| match line {
                Line::Timing(timing) => Some(timing),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// The number of media sections.
    pub fn media_len(&self) -> usize {
        self.sections_len
    }

    /// The media section at `index` (0-based), if there is one.
    pub fn media_section(&self, index: usize) -> Option<MediaSection<'a>> {
        let record = self.sections[..self.sections_len].get(index)?;
        let text = &self.text[record.start as usize..record.end as usize];
        Some(MediaSection {
            text,
            line: record.line,
            index,
        })
    }

    /// The media sections in order.
    pub fn media(&self) -> impl Iterator<Item = MediaSection<'a>> + '_ {
        (0..self.sections_len).filter_map(|index| self.media_section(index))
    }

    /// The media section whose `a=mid` is `mid`.
    pub fn media_by_mid(&self, mid: &str) -> Option<MediaSection<'a>> {
        self.media().find(|section| section.mid() == Some(mid))
    }
}

/// Sees the lines [`Sdp::parse_observed`] accepts, in order. Both methods default to doing
/// nothing, which is what [`Sdp::parse`] uses: the calls and the typed values they would get
/// are then compiled out.
pub(crate) trait ParseObserver<'a> {
    /// An `m=` line, with its 1-based line number; the attributes that follow belong to it.
    #[inline]
    fn media(&mut self, _number: u32, _media: &MediaLine<'a>) {}

    /// An `a=` line, with its 1-based line number.
    #[inline]
    fn attribute(&mut self, _number: u32, _attribute: &Attribute<'a>) {}
}

impl ParseObserver<'_> for () {}

/// Checks that `o=`, `s=` and `t=` came before a line of rank `rank`.
fn check_required(current: Option<u8>, rank: u8, number: u32) -> Result<(), SdpError> {
    let reached = current.unwrap_or(0);
    let missing = if rank > RANK_ORIGIN && reached < RANK_ORIGIN {
        SdpErrorKind::MissingOrigin
    } else if rank > RANK_SESSION_NAME && reached < RANK_SESSION_NAME {
        SdpErrorKind::MissingSessionName
    } else if rank > RANK_TIMING && reached < RANK_TIMING {
        SdpErrorKind::MissingTiming
    } else {
        return Ok(());
    };
    Err(SdpError::at(missing, number))
}

/// A media section: the `m=` line and the lines up to the next one.
#[derive(Debug, Clone, Copy)]
pub struct MediaSection<'a> {
    text: &'a str,
    line: u32,
    index: usize,
}

impl<'a> MediaSection<'a> {
    /// The 0-based index of this section among the description's sections.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The 1-based line number of the `m=` line.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The `m=` line.
    pub fn media_line(&self) -> MediaLine<'a> {
        match self.lines().next() {
            Some((_, Line::Media(media))) => media,
            _ => unreachable!("a media section starts with its m= line"),
        }
    }

    /// Every line of the section, the `m=` line first, with their numbers.
    pub fn lines(&self) -> Lines<'a> {
        Lines::new(self.text, self.line)
    }

    /// The section's attributes.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            lines: self.lines(),
        }
    }

    /// The first attribute for which `pick` returns something.
    fn find<T>(&self, pick: impl FnMut(Attribute<'a>) -> Option<T>) -> Option<T> {
        self.attributes().find_map(pick)
    }

    /// The `c=` line, if the section has one.
    pub fn connection(&self) -> Option<Connection<'a>> {
        self.lines().find_map(|(_, line)| match line {
            Line::Connection(connection) => Some(connection),
            _ => None,
        })
    }

    /// `a=mid`.
    pub fn mid(&self) -> Option<&'a str> {
        self.find(|attribute| match attribute {
            Attribute::Mid(mid) => Some(mid),
            _ => None,
        })
    }

    /// `a=ice-ufrag`.
    pub fn ice_ufrag(&self) -> Option<&'a str> {
        self.find(|attribute| match attribute {
            Attribute::IceUfrag(ufrag) => Some(ufrag),
            _ => None,
        })
    }

    /// `a=ice-pwd`.
    pub fn ice_pwd(&self) -> Option<&'a str> {
        self.find(|attribute| match attribute {
            Attribute::IcePwd(pwd) => Some(pwd),
            _ => None,
        })
    }

    /// The first `a=fingerprint`.
    pub fn fingerprint(&self) -> Option<Fingerprint<'a>> {
        self.find(|attribute| match attribute {
            Attribute::Fingerprint(fingerprint) => Some(fingerprint),
            _ => None,
        })
    }

    /// `a=setup`.
    pub fn setup(&self) -> Option<Setup> {
        self.find(|attribute| match attribute {
            Attribute::Setup(setup) => Some(setup),
            _ => None,
        })
    }

    /// The direction attribute; `sendrecv` when there is none (RFC 8866 §6.7).
    pub fn direction(&self) -> Direction {
        self.find(|attribute| match attribute {
            Attribute::Direction(direction) => Some(direction),
            _ => None,
        })
        .unwrap_or(Direction::SendRecv)
    }

    /// Whether the section carries `a=bundle-only`.
    pub fn is_bundle_only(&self) -> bool {
        self.find(|attribute| (attribute == Attribute::BundleOnly).then_some(()))
            .is_some()
    }

    /// Whether the section is rejected: port 0 without `a=bundle-only`.
    pub fn is_rejected(&self) -> bool {
        self.media_line().port == 0 && !self.is_bundle_only()
    }

    /// The `a=candidate` lines.
    pub fn candidates(&self) -> impl Iterator<Item = Candidate<'a>> + 'a {
        self.attributes().filter_map(|attribute| match attribute {
            Attribute::Candidate(candidate) => Some(candidate),
            _ => None,
        })
    }
}

/// Iterator over the attributes of a session or media level.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    lines: Lines<'a>,
}

impl<'a> Attributes<'a> {
    /// Yields each attribute with its 1-based line number.
    pub fn numbered(self) -> impl Iterator<Item = (u32, Attribute<'a>)> + 'a {
        self.lines.filter_map(|(number, line)| match line {
            Line::Attribute(attribute) => Some((number, attribute)),
            _ => None,
        })
    }
}

impl<'a> Attributes<'a> {
    /// The next attribute's line number and text after `a=`, not parsed.
    pub(crate) fn next_text(&mut self) -> Option<(u32, &'a str)> {
        loop {
            // Attribute lines are the only ones starting with `a`; skip the others unparsed.
            let (number, line) = self.lines.next_raw()?;
            let bytes = line.as_bytes();
            if bytes.len() < 2 {
                return None;
            }
            if bytes[0] == b'a' {
                return Some((number, &line[2..]));
            }
        }
    }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Attribute<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let (_, text) = self.next_text()?;
        Some(validated(Attribute::parse(text)))
    }
}

/// `token-char` of RFC 8866 §9: printable ASCII except space and `"(),/:;<=>?@[\]{}`.
pub(crate) const TOKEN_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = matches!(byte, 0x21 | 0x23..=0x27 | 0x2A..=0x2B | 0x2D..=0x2E | 0x30..=0x39
            | 0x41..=0x5A | 0x5E..=0x7E);
        byte += 1;
    }
    table
};

/// ASCII hex digits, either case.
const HEX_DIGITS: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = (byte as u8).is_ascii_hexdigit();
        byte += 1;
    }
    table
};

/// Whether `text` is a non-empty token.
pub(crate) fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| TOKEN_CHARS[usize::from(byte)])
}

/// Whether `text` is tokens separated by single spaces.
fn is_token_list(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut previous = b' ';
    for &byte in bytes {
        if byte == b' ' {
            if previous == b' ' {
                return false;
            }
        } else if !TOKEN_CHARS[usize::from(byte)] {
            return false;
        }
        previous = byte;
    }
    previous != b' '
}

/// Whether `text` is 32-bit decimal numbers separated by single spaces.
fn is_number_list(text: &str) -> bool {
    let mut rest = text;
    loop {
        let (number, tail) = rest.split_byte(b' ').unwrap_or((rest, ""));
        if parse_u32(number).is_none() {
            return false;
        }
        if tail.is_empty() {
            return rest.len() == number.len();
        }
        rest = tail;
    }
}

/// Finds the first `needle` in `bytes`, eight bytes at a time. In each word the bytes equal
/// to `needle` become zero, and the zero-byte test flags them; its lowest flag is exact (a
/// borrow only runs upwards), so it gives the index without a byte loop.
#[inline(always)]
fn find_byte(bytes: &[u8], needle: u8) -> Option<usize> {
    const LOW_BITS: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH_BITS: u64 = u64::from_le_bytes([0x80; 8]);
    let needles = u64::from_le_bytes([needle; 8]);
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default()) ^ needles;
        let flags = word.wrapping_sub(LOW_BITS) & !word & HIGH_BITS;
        if flags != 0 {
            // `trailing_zeros` is 7, 15, ... or 63: the index is 0..=7.
            return Some(offset + flags.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&byte| byte == needle)
        .map(|index| offset + index)
}

/// Finds the first LF, CR or NUL, eight bytes at a time: lines are long enough that a byte
/// loop was a fifth of the parse time.
///
/// One test per word flags every byte below 0x0E, which covers the three line-break bytes
/// and a few rarer controls (such as TAB); a flagged word is then looked at byte by byte.
#[inline(always)]
fn find_line_break(bytes: &[u8]) -> Option<usize> {
    const HIGH_BITS: u64 = u64::from_le_bytes([0x80; 8]);
    const BELOW: u64 = u64::from_le_bytes([0x0E; 8]);
    let is_break = |byte: &u8| matches!(byte, b'\n' | b'\r' | 0);
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default());
        // The lowest flag is exact; flags above it may be false, so the word is re-read.
        if word.wrapping_sub(BELOW) & !word & HIGH_BITS != 0 {
            if let Some(index) = chunk.iter().position(is_break) {
                return Some(offset + index);
            }
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(is_break)
        .map(|index| offset + index)
}

/// A single-pass reader over an attribute value: each byte is looked at once, where
/// splitting first and validating after looked at it twice.
struct Scanner<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, position: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.position).copied()
    }

    fn is_done(&self) -> bool {
        self.position >= self.text.len()
    }

    /// Takes `len` bytes, which the caller has seen to be ASCII.
    fn take(&mut self, len: usize) -> &'a str {
        let start = self.position;
        self.position = (start + len).min(self.text.len());
        self.text.get(start..self.position).unwrap_or("")
    }

    /// Consumes `byte` if it is next.
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.position += 1)
    }

    /// Takes a decimal number of up to 20 digits that fits a `u64`. The digits are taken
    /// and added up in one pass; on `None` the caller fails the whole value.
    #[inline]
    fn number(&mut self) -> Option<u64> {
        let bytes = self.text.as_bytes();
        let start = self.position;
        let mut value: u64 = 0;
        while let Some(&byte) = bytes.get(self.position) {
            let digit = byte.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            // Up to 19 digits cannot overflow; longer numbers are read again with checks.
            value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
            self.position += 1;
        }
        match self.position - start {
            0 => None,
            1..=19 => Some(value),
            _ => parse_u64(&self.text[start..self.position]),
        }
    }

    /// Takes a non-empty token that ends at `end` or at the end of the text; any other
    /// non-token byte fails.
    fn token_until(&mut self, end: u8) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        let start = self.position;
        while let Some(&byte) = bytes.get(self.position) {
            if byte == end {
                break;
            }
            if !TOKEN_CHARS[usize::from(byte)] {
                return None;
            }
            self.position += 1;
        }
        (self.position > start).then(|| &self.text[start..self.position])
    }

    /// Takes everything left.
    fn rest(&mut self) -> &'a str {
        let rest = self.text.get(self.position..).unwrap_or("");
        self.position = self.text.len();
        rest
    }
}

/// Splitting at an ASCII byte with an inlined search ([`find_byte`], eight bytes at a time):
/// `str::split_once(char)` goes through the generic pattern searcher and `memchr`, whose set-up
/// costs more than the short fields SDP has.
pub(crate) trait SplitByte {
    /// Splits at the first `byte` (which must be ASCII), dropping it.
    fn split_byte(&self, byte: u8) -> Option<(&str, &str)>;
}

impl SplitByte for str {
    #[inline]
    fn split_byte(&self, byte: u8) -> Option<(&str, &str)> {
        debug_assert!(byte.is_ascii());
        let index = find_byte(self.as_bytes(), byte)?;
        // An ASCII byte is always a character boundary, so these slices cannot panic.
        Some((&self[..index], &self[index + 1..]))
    }
}

/// Parses 1 to 20 decimal digits, no sign, into a `u64` that did not overflow.
pub(crate) fn parse_u64(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for byte in text.bytes() {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    Some(value)
}

/// Parses decimal digits into a `u32`.
pub(crate) fn parse_u32(text: &str) -> Option<u32> {
    parse_u64(text).and_then(|value| u32::try_from(value).ok())
}

/// Parses decimal digits into a `u16`.
pub(crate) fn parse_u16(text: &str) -> Option<u16> {
    parse_u64(text).and_then(|value| u16::try_from(value).ok())
}
