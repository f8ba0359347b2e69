//! The checks the signaling relay runs on every `offer` and `answer` before forwarding it.
//!
//! The relay does not negotiate media; it only refuses descriptions that cannot lead to a
//! secure connection or that cost too much to carry, so a peer gets a clear error at once
//! instead of a silent ICE or DTLS failure later.

use super::error::{SdpError, SdpErrorKind};
use super::parser::{Attribute, Sdp, Setup};

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
/// Allocates nothing.
pub fn validate(sdp_text: &str, kind: SdpKind, limits: &SdpLimits) -> Result<(), SdpError> {
    if sdp_text.len() > limits.bytes_max {
        return Err(SdpError::whole(SdpErrorKind::TooLarge));
    }
    let sdp = Sdp::parse(sdp_text)?;
    if sdp.lines_len() > limits.lines_max {
        return Err(SdpError::at(
            SdpErrorKind::TooManyLines,
            limits.lines_max.saturating_add(1),
        ));
    }
    validate_parsed(&sdp, kind)
}

/// Runs the checks of [`validate`] that follow parsing on an already parsed description.
pub fn validate_parsed(sdp: &Sdp<'_>, kind: SdpKind) -> Result<(), SdpError> {
    let mut session = Credentials::default();
    for (number, attribute) in sdp.attributes().numbered() {
        session.record(attribute);
        check_setup(number, attribute, kind)?;
        if let Attribute::Group(group) = attribute {
            if group.semantics == "BUNDLE"
                && !group.mids().all(|mid| sdp.media_by_mid(mid).is_some())
            {
                return Err(SdpError::at(SdpErrorKind::BundleUnknownMid, number));
            }
        }
    }

    for section in sdp.media() {
        let mut own = Credentials::default();
        for (number, attribute) in section.attributes().numbered() {
            own.record(attribute);
            check_setup(number, attribute, kind)?;
        }
        let rejected = section.media_line().port == 0 && !own.bundle_only;
        if rejected || !carries_transport(sdp, own.mid) {
            continue;
        }
        let missing = if !own.ice_ufrag && !session.ice_ufrag {
            SdpErrorKind::MissingIceUfrag
        } else if !own.ice_pwd && !session.ice_pwd {
            SdpErrorKind::MissingIcePwd
        } else if !own.fingerprint && !session.fingerprint {
            SdpErrorKind::MissingFingerprint
        } else {
            continue;
        };
        return Err(SdpError::at(missing, section.line()));
    }
    Ok(())
}

/// What one level (session or media section) says about its transport.
#[derive(Debug, Default)]
struct Credentials<'a> {
    mid: Option<&'a str>,
    ice_ufrag: bool,
    ice_pwd: bool,
    fingerprint: bool,
    bundle_only: bool,
}

impl<'a> Credentials<'a> {
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

/// Whether a section must describe its own transport: it is in no BUNDLE group, or it is the
/// first section its group names.
fn carries_transport(sdp: &Sdp<'_>, mid: Option<&str>) -> bool {
    let Some(mid) = mid else {
        return true;
    };
    for attribute in sdp.attributes() {
        if let Attribute::Group(group) = attribute {
            if group.semantics == "BUNDLE" && group.mids().any(|tag| tag == mid) {
                return group.mids().next() == Some(mid);
            }
        }
    }
    true
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
