//! The checks the signaling relay runs on every `offer` and `answer` before forwarding it.
//!
//! The relay does not negotiate media; it only refuses descriptions that cannot lead to a
//! secure connection or that cost too much to carry, so a peer gets a clear error at once
//! instead of a silent ICE or DTLS failure later.

use super::error::{SdpError, SdpErrorKind};
use super::parser::{
    Attribute, AttributeName, Attributes, MediaLine, ParseObserver, Sdp, Setup, MEDIA_SECTIONS_MAX,
};

/// Whether a description is an offer or an answer (RFC 3264).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SdpKind {
    /// An offer: `a=setup` may be `actpass`, `active` or `passive`.
    Offer,
    /// An answer: `a=setup` must be `active` or `passive`.
    Answer,
}

/// Size limits for [`validate`], fixed at start-up from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SdpLimits {
    /// The largest description accepted, in bytes.
    pub bytes_max: usize,
    /// The most lines accepted.
    pub lines_max: u32,
}

impl Default for SdpLimits {
    /// 64 KiB and 2000 lines: four times a large Chromium audio, video and data offer.
    fn default() -> Self {
        Self {
            bytes_max: 64 * 1024,
            lines_max: 2000,
        }
    }
}

/// Checks a description the relay is asked to forward.
///
/// In order: size, well-formedness ([`Sdp::parse`]), line count, then per media section:
///
/// 1. Rejected sections (port 0 without `a=bundle-only`) need nothing.
/// 2. In a BUNDLE group only the first section named by the group (the one whose transport
///    the group uses, RFC 9143 §7) needs ICE credentials and a fingerprint.
/// 3. Every other section needs `a=ice-ufrag`, `a=ice-pwd` and `a=fingerprint`, in the
///    section or at session level.
/// 4. Every `a=setup` must suit the kind: an answer picks `active` or `passive`, and
///    `holdconn` is refused in both.
/// 5. Every mid a BUNDLE group names must exist.
///
/// The media-level facts are gathered while parsing, in the same pass; only the
/// session-level lines (before the first `m=`) are read a second time. The result is the
/// same as [`Sdp::parse`] followed by [`validate_parsed`], error for error.
///
/// Allocates nothing.
pub fn validate(sdp_text: &str, kind: SdpKind, limits: &SdpLimits) -> Result<(), SdpError> {
    if sdp_text.len() > limits.bytes_max {
        return Err(SdpError::whole(SdpErrorKind::TooLarge));
    }
    let mut observed = Observed {
        kind,
        sections: [Transport::default(); MEDIA_SECTIONS_MAX],
        sections_len: 0,
        first_error: None,
    };
    let sdp = Sdp::parse_observed(sdp_text, &mut observed)?;
    if sdp.lines_len() > limits.lines_max {
        return Err(SdpError::at(
            SdpErrorKind::TooManyLines,
            limits.lines_max.saturating_add(1),
        ));
    }
    // `validate_parsed` reports the first bad `a=setup` of the media sections before
    // anything at session level, and so does this.
    if let Some(error) = observed.first_error {
        return Err(error);
    }
    debug_assert_eq!(observed.sections_len, sdp.media_len());
    check_session_and_sections(&sdp, &mut observed.sections[..observed.sections_len], kind)
}

/// Runs the checks of [`validate`] that follow parsing on an already parsed description.
///
/// Each attribute is read once, and the BUNDLE lookups compare mids from a fixed table, so the
/// cost stays linear in the text even for a description full of sections and groups.
pub fn validate_parsed(sdp: &Sdp<'_>, kind: SdpKind) -> Result<(), SdpError> {
    let mut sections = [Transport::default(); MEDIA_SECTIONS_MAX];
    let sections = &mut sections[..sdp.media_len()];
    for (section, transport) in sdp.media().zip(sections.iter_mut()) {
        let mut attributes = section.attributes();
        while let Some((number, attribute)) = next_relevant(&mut attributes) {
            transport.record(attribute);
            check_setup(number, attribute, kind)?;
        }
        transport.line = section.line();
        transport.port_zero = section.media_line().port == 0;
    }
    check_session_and_sections(sdp, sections, kind)
}

/// What [`validate`] gathers from the media sections while the description is parsed.
struct Observed<'a> {
    kind: SdpKind,
    sections: [Transport<'a>; MEDIA_SECTIONS_MAX],
    sections_len: usize,
    /// The first media-level `a=setup` that does not suit `kind`.
    first_error: Option<SdpError>,
}

impl<'a> ParseObserver<'a> for Observed<'a> {
    fn media(&mut self, number: u32, media: &MediaLine<'a>) {
        // The parser refuses more than MEDIA_SECTIONS_MAX sections before calling this.
        if let Some(section) = self.sections.get_mut(self.sections_len) {
            section.line = number;
            section.port_zero = media.port == 0;
            self.sections_len += 1;
        }
    }

    fn attribute(&mut self, number: u32, attribute: &Attribute<'a>) {
        // Session-level attributes are read again by `check_session_and_sections`, in order
        // with the BUNDLE groups.
        let Some(section) = self.sections_len.checked_sub(1) else {
            return;
        };
        self.sections[section].record(*attribute);
        if self.first_error.is_none() {
            self.first_error = check_setup(number, *attribute, self.kind).err();
        }
    }
}

/// The checks after the media sections' own: session-level `a=setup` and BUNDLE groups in
/// line order, then the credentials each section needs.
fn check_session_and_sections(
    sdp: &Sdp<'_>,
    sections: &mut [Transport<'_>],
    kind: SdpKind,
) -> Result<(), SdpError> {
    for section in sections.iter_mut() {
        section.rejected = section.port_zero && !section.bundle_only;
    }

    let mut session = Transport::default();
    let mut attributes = sdp.attributes();
    while let Some((number, attribute)) = next_relevant(&mut attributes) {
        session.record(attribute);
        check_setup(number, attribute, kind)?;
        let Attribute::Group(group) = attribute else {
            continue;
        };
        if group.semantics != "BUNDLE" {
            continue;
        }
        for (position, mid) in group.mids().enumerate() {
            let index = sections
                .iter()
                .position(|section| section.mid == Some(mid))
                .ok_or(SdpError::at(SdpErrorKind::BundleUnknownMid, number))?;
            // The first mid a group names owns the group's transport (RFC 9143 §7); the
            // others use it and need no credentials of their own.
            if position > 0 && !sections[index].tagged {
                sections[index].follows_bundle = true;
            } else if position == 0 && !sections[index].follows_bundle {
                sections[index].tagged = true;
            }
        }
    }

    for section in sections.iter() {
        if section.rejected || section.follows_bundle {
            continue;
        }
        let missing = if !section.ice_ufrag && !session.ice_ufrag {
            SdpErrorKind::MissingIceUfrag
        } else if !section.ice_pwd && !session.ice_pwd {
            SdpErrorKind::MissingIcePwd
        } else if !section.fingerprint && !session.fingerprint {
            SdpErrorKind::MissingFingerprint
        } else {
            continue;
        };
        return Err(SdpError::at(missing, section.line));
    }
    Ok(())
}

/// The next attribute the checks look at, parsed; the others (most of an offer: codecs,
/// header extensions, SSRCs) are skipped by name without being parsed again.
fn next_relevant<'a>(attributes: &mut Attributes<'a>) -> Option<(u32, Attribute<'a>)> {
    loop {
        let (number, text) = attributes.next_text()?;
        // Names found by length, then compared: a `match` on `&str` and `split_once` cost
        // more than the rest of the validation together.
        if matches!(
            AttributeName::of_text(text),
            AttributeName::Mid
                | AttributeName::IceUfrag
                | AttributeName::IcePwd
                | AttributeName::Fingerprint
                | AttributeName::Setup
                | AttributeName::BundleOnly
                | AttributeName::Group
        ) {
            let attribute = Attribute::parse(text).ok()?;
            return Some((number, attribute));
        }
    }
}

/// What one level (session or media section) says about its transport.
#[derive(Debug, Default, Clone, Copy)]
struct Transport<'a> {
    line: u32,
    mid: Option<&'a str>,
    ice_ufrag: bool,
    ice_pwd: bool,
    fingerprint: bool,
    bundle_only: bool,
    /// The `m=` line has port 0.
    port_zero: bool,
    /// Port 0 without `a=bundle-only`: the section needs nothing.
    rejected: bool,
    /// Named first by a BUNDLE group.
    tagged: bool,
    /// Named, but not first, by a BUNDLE group.
    follows_bundle: bool,
}

impl<'a> Transport<'a> {
    fn record(&mut self, attribute: Attribute<'a>) {
        match attribute {
            Attribute::Mid(mid) => self.mid = Some(mid),
            Attribute::IceUfrag(_) => self.ice_ufrag = true,
            Attribute::IcePwd(_) => self.ice_pwd = true,
            Attribute::Fingerprint(_) => self.fingerprint = true,
            Attribute::BundleOnly => self.bundle_only = true,
            _ => {}
        }
    }
}

fn check_setup(number: u32, attribute: Attribute<'_>, kind: SdpKind) -> Result<(), SdpError> {
    match (attribute, kind) {
        (Attribute::Setup(Setup::Holdconn), _) => {
            Err(SdpError::at(SdpErrorKind::SetupHoldconn, number))
        }
        (Attribute::Setup(Setup::Actpass), SdpKind::Answer) => {
            Err(SdpError::at(SdpErrorKind::SetupActpassInAnswer, number))
        }
        _ => Ok(()),
    }
}
