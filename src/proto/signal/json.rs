//! Client frame parsing (simd-json) and the small JSON writers the router needs.
//!
//! simd-json unescapes strings in place, so the parser works on its own copy of the frame:
//! the original bytes stay untouched for the zero-copy relay. All buffers (the copy,
//! simd-json's scratch, the tape, the re-encoded `ref` and `meta`) live in [`Parser`] and
//! are reused, so a parse allocates nothing once they have grown to the frame sizes seen.

use simd_json::{Node, StaticNode, Tape};

use super::error::{ErrorCode, FrameError};

/// The message types a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Join a room.
    Join,
    /// Leave a room.
    Leave,
    /// SDP offer for `target`.
    Offer,
    /// SDP answer for `target`.
    Answer,
    /// Trickled ICE candidate for `target`.
    IceCandidate,
    /// End of trickled candidates for `target`.
    EndOfCandidates,
    /// Application message for `target`.
    Message,
    /// Message to every other member of `room`.
    Broadcast,
    /// Take over a session after a reconnect.
    Resume,
    /// Application-level ping.
    Ping,
}

impl Kind {
    fn from_wire(s: &str) -> Option<Kind> {
        Some(match s {
            "join" => Kind::Join,
            "leave" => Kind::Leave,
            "offer" => Kind::Offer,
            "answer" => Kind::Answer,
            "ice-candidate" => Kind::IceCandidate,
            "end-of-candidates" => Kind::EndOfCandidates,
            "message" => Kind::Message,
            "broadcast" => Kind::Broadcast,
            "resume" => Kind::Resume,
            "ping" => Kind::Ping,
            _ => return None,
        })
    }

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Join => "join",
            Kind::Leave => "leave",
            Kind::Offer => "offer",
            Kind::Answer => "answer",
            Kind::IceCandidate => "ice-candidate",
            Kind::EndOfCandidates => "end-of-candidates",
            Kind::Message => "message",
            Kind::Broadcast => "broadcast",
            Kind::Resume => "resume",
            Kind::Ping => "ping",
        }
    }

    /// Whether the message is relayed to a single `target`.
    #[must_use]
    pub fn is_targeted(self) -> bool {
        matches!(
            self,
            Kind::Offer | Kind::Answer | Kind::IceCandidate | Kind::EndOfCandidates | Kind::Message
        )
    }

    /// Every kind, for metrics.
    pub const ALL: [Kind; 10] = [
        Kind::Join,
        Kind::Leave,
        Kind::Offer,
        Kind::Answer,
        Kind::IceCandidate,
        Kind::EndOfCandidates,
        Kind::Message,
        Kind::Broadcast,
        Kind::Resume,
        Kind::Ping,
    ];
}

/// A validated client frame. String fields are unescaped; `meta` and `reference` are
/// re-encoded compact JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFrame<'a> {
    /// The message type.
    pub kind: Kind,
    /// `target` session id, for targeted messages.
    pub target: Option<&'a str>,
    /// `room`, for join, leave and broadcast.
    pub room: Option<&'a str>,
    /// `sdp`, for offers and answers.
    pub sdp: Option<&'a str>,
    /// `id`, for resume.
    pub id: Option<&'a str>,
    /// `resume` token, for resume.
    pub resume: Option<&'a str>,
    /// `meta`, any JSON value, for join.
    pub meta: Option<&'a [u8]>,
    /// `ref`, any JSON value, echoed in the reply.
    pub reference: Option<&'a [u8]>,
}

/// Reusable parsing state; one per shard.
pub struct Parser {
    copy: Vec<u8>,
    buffers: simd_json::Buffers,
    tape: Option<Tape<'static>>,
    reference: Vec<u8>,
    meta: Vec<u8>,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

impl std::fmt::Debug for Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parser").finish_non_exhaustive()
    }
}

/// Nodes a value at the head of `nodes` spans, itself included.
fn node_span(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

fn missing(field: &'static str) -> &'static str {
    match field {
        "target" => "the message needs a \"target\" session id",
        "room" => "the message needs a \"room\" name",
        "sdp" => "an offer or answer needs an \"sdp\" string",
        "id" => "resume needs the session \"id\"",
        "resume" => "resume needs the \"resume\" token",
        _ => "a required field is missing",
    }
}

impl Parser {
    /// A parser with empty buffers.
    #[must_use]
    pub fn new() -> Self {
        Parser {
            copy: Vec::new(),
            buffers: simd_json::Buffers::new(4096),
            tape: Some(Tape::null().reset()),
            reference: Vec::new(),
            meta: Vec::new(),
        }
    }

    /// Parses and validates one client frame (the text of a WebSocket message).
    ///
    /// # Errors
    /// A [`FrameError`] naming the protocol error code and what was wrong.
    pub fn parse<'a>(&'a mut self, text: &[u8]) -> Result<ClientFrame<'a>, FrameError<'a>> {
        let Parser {
            copy,
            buffers,
            tape,
            reference,
            meta,
        } = self;
        reference.clear();
        meta.clear();
        copy.clear();
        copy.extend_from_slice(text);
        let mut t: Tape<'a> = tape.take().unwrap_or_else(|| Tape::null().reset()).reset();
        let parsed = simd_json::fill_tape(copy.as_mut_slice(), buffers, &mut t);
        let result = match parsed {
            Err(_) => Err(FrameError {
                code: ErrorCode::BadJson,
                message: "the frame is not valid JSON",
                reference: None,
            }),
            Ok(()) => extract(&t.0, reference, meta),
        };
        *tape = Some(t.reset());
        // The frame borrows `copy` (strings) and the two re-encoded buffers, not the tape.
        result
            .map(|f| ClientFrame {
                reference: f.reference.map(|_| reference.as_slice()),
                meta: f.meta.map(|_| meta.as_slice()),
                ..f
            })
            .map_err(|e| FrameError {
                reference: e.reference.map(|_| reference.as_slice()),
                ..e
            })
    }
}

/// Fields read off the tape; `meta` and `reference` only say "present" here, their bytes
/// are in the parser's buffers.
fn extract<'a>(
    nodes: &[Node<'a>],
    reference: &mut Vec<u8>,
    meta: &mut Vec<u8>,
) -> Result<ClientFrame<'a>, FrameError<'static>> {
    let Some(Node::Object { len, .. }) = nodes.first() else {
        return Err(FrameError {
            code: ErrorCode::BadJson,
            message: "the frame must be a JSON object",
            reference: None,
        });
    };
    const PRESENT: &[u8] = b"";
    let mut kind: Option<&'a str> = None;
    let mut out = ClientFrame {
        kind: Kind::Ping,
        target: None,
        room: None,
        sdp: None,
        id: None,
        resume: None,
        meta: None,
        reference: None,
    };
    let mut bad: Option<FrameError<'static>> = None;
    let mut idx = 1;
    for _ in 0..*len {
        let Some(Node::String(key)) = nodes.get(idx) else {
            break;
        };
        let key: &'a str = key;
        let value = &nodes[idx + 1..];
        let span = node_span(&value[0]);
        idx += 1 + span;
        let as_str = |field: &'static str| -> Result<&'a str, FrameError<'static>> {
            match value[0] {
                Node::String(s) => Ok(s),
                _ => Err(FrameError {
                    code: ErrorCode::BadField,
                    message: match field {
                        "type" => "\"type\" must be a string",
                        "target" => "\"target\" must be a string",
                        "room" => "\"room\" must be a string",
                        "sdp" => "\"sdp\" must be a string",
                        _ => "a field has the wrong type",
                    },
                    reference: None,
                }),
            }
        };
        let slot: Option<(&mut Option<&'a str>, &'static str)> = match key {
            "type" => Some((&mut kind, "type")),
            "target" => Some((&mut out.target, "target")),
            "room" => Some((&mut out.room, "room")),
            "sdp" => Some((&mut out.sdp, "sdp")),
            "id" => Some((&mut out.id, "id")),
            "resume" => Some((&mut out.resume, "resume")),
            "ref" => {
                if out.reference.is_some() {
                    bad.get_or_insert(duplicate());
                }
                write_value(&value[..span], reference);
                out.reference = Some(PRESENT);
                None
            }
            "meta" => {
                if out.meta.is_some() {
                    bad.get_or_insert(duplicate());
                }
                write_value(&value[..span], meta);
                out.meta = Some(PRESENT);
                None
            }
            "from" => {
                bad.get_or_insert(FrameError {
                    code: ErrorCode::BadField,
                    message: "\"from\" is set by the server and may not be sent",
                    reference: None,
                });
                None
            }
            _ => None,
        };
        if let Some((slot, field)) = slot {
            if slot.is_some() {
                bad.get_or_insert(duplicate());
            }
            match as_str(field) {
                Ok(s) => *slot = Some(s),
                Err(e) => {
                    bad.get_or_insert(e);
                }
            }
        }
    }
    let with_ref = |mut e: FrameError<'static>| {
        if out.reference.is_some() {
            e.reference = Some(PRESENT);
        }
        e
    };
    if let Some(e) = bad {
        return Err(with_ref(e));
    }
    let Some(kind) = kind else {
        return Err(with_ref(FrameError {
            code: ErrorCode::MissingField,
            message: "the message needs a \"type\"",
            reference: None,
        }));
    };
    let Some(kind) = Kind::from_wire(kind) else {
        return Err(with_ref(FrameError {
            code: ErrorCode::UnknownType,
            message: "\"type\" names no message of protocol v1",
            reference: None,
        }));
    };
    out.kind = kind;
    let need = |v: Option<&str>, field: &'static str| match v {
        Some(_) => Ok(()),
        None => Err(FrameError {
            code: ErrorCode::MissingField,
            message: missing(field),
            reference: None,
        }),
    };
    let check = match kind {
        Kind::Join | Kind::Leave | Kind::Broadcast => need(out.room, "room"),
        Kind::Offer | Kind::Answer => need(out.target, "target").and(need(out.sdp, "sdp")),
        Kind::IceCandidate | Kind::EndOfCandidates | Kind::Message => need(out.target, "target"),
        Kind::Resume => need(out.id, "id").and(need(out.resume, "resume")),
        Kind::Ping => Ok(()),
    };
    check.map_err(with_ref)?;
    Ok(out)
}

fn duplicate() -> FrameError<'static> {
    FrameError {
        code: ErrorCode::BadJson,
        message: "a field appears twice",
        reference: None,
    }
}

/// Writes `s` as a JSON string literal, quotes included.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1F => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xF)]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Writes the value at the head of `nodes` as compact JSON.
fn write_value(nodes: &[Node<'_>], out: &mut Vec<u8>) {
    let mut idx = 0;
    write_node(nodes, &mut idx, out);
}

fn write_node(nodes: &[Node<'_>], idx: &mut usize, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let node = nodes[*idx];
    *idx += 1;
    match node {
        Node::String(s) => write_str(out, s),
        Node::Static(StaticNode::Null) => out.extend_from_slice(b"null"),
        Node::Static(StaticNode::Bool(b)) => {
            out.extend_from_slice(if b { b"true" } else { b"false" });
        }
        Node::Static(StaticNode::I64(v)) => {
            let _ = write!(out, "{v}");
        }
        Node::Static(StaticNode::U64(v)) => {
            let _ = write!(out, "{v}");
        }
        Node::Static(StaticNode::F64(v)) => {
            let _ = write!(out, "{v:?}");
        }
        Node::Array { len, .. } => {
            out.push(b'[');
            for i in 0..len {
                if i > 0 {
                    out.push(b',');
                }
                write_node(nodes, idx, out);
            }
            out.push(b']');
        }
        Node::Object { len, .. } => {
            out.push(b'{');
            for i in 0..len {
                if i > 0 {
                    out.push(b',');
                }
                write_node(nodes, idx, out);
                out.push(b':');
                write_node(nodes, idx, out);
            }
            out.push(b'}');
        }
    }
}

/// Byte offset just past the opening `{` of a frame already known to be a JSON object.
#[must_use]
pub fn after_open_brace(text: &[u8]) -> usize {
    text.iter()
        .position(|b| *b == b'{')
        .map_or(text.len(), |p| p + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> String {
        let mut p = Parser::new();
        let f = p.parse(text.as_bytes()).expect(text);
        format!(
            "{:?} t={:?} r={:?} sdp={:?} meta={:?} ref={:?}",
            f.kind,
            f.target,
            f.room,
            f.sdp.map(str::len),
            f.meta.map(|m| String::from_utf8_lossy(m).into_owned()),
            f.reference.map(|m| String::from_utf8_lossy(m).into_owned()),
        )
    }

    fn parse_err(text: &str) -> (ErrorCode, Option<String>) {
        let mut p = Parser::new();
        let e = p.parse(text.as_bytes()).expect_err(text);
        (
            e.code,
            e.reference.map(|m| String::from_utf8_lossy(m).into_owned()),
        )
    }

    #[test]
    fn frames_of_every_kind_parse() {
        assert_eq!(
            parse_ok(
                r#"{"type":"join","room":"r\u00e9","meta":{"n":[1,true,null,"x\"y"]},"ref":7}"#
            ),
            r#"Join t=None r=Some("ré") sdp=None meta=Some("{\"n\":[1,true,null,\"x\\\"y\"]}") ref=Some("7")"#
        );
        assert_eq!(
            parse_ok(
                r#" { "type" : "offer", "target":"AAAAAAAAAAA", "sdp":"v=0\r\n", "x":[{}] } "#
            ),
            r#"Offer t=Some("AAAAAAAAAAA") r=None sdp=Some(5) meta=None ref=None"#
        );
        assert_eq!(
            parse_ok(r#"{"type":"ping","ref":"a"}"#),
            r#"Ping t=None r=None sdp=None meta=None ref=Some("\"a\"")"#
        );
    }

    #[test]
    fn errors_carry_code_and_ref() {
        assert_eq!(parse_err("[1]"), (ErrorCode::BadJson, None));
        assert_eq!(parse_err("{\"type\":"), (ErrorCode::BadJson, None));
        assert_eq!(parse_err("{} {}"), (ErrorCode::BadJson, None));
        assert_eq!(
            parse_err(r#"{"type":"nope","ref":[1]}"#),
            (ErrorCode::UnknownType, Some("[1]".into()))
        );
        assert_eq!(
            parse_err(r#"{"ref":1}"#),
            (ErrorCode::MissingField, Some("1".into()))
        );
        assert_eq!(
            parse_err(r#"{"type":"offer","target":"x"}"#).0,
            ErrorCode::MissingField
        );
        assert_eq!(
            parse_err(r#"{"type":"message","data":1}"#).0,
            ErrorCode::MissingField
        );
        assert_eq!(
            parse_err(r#"{"type":"join","room":5}"#).0,
            ErrorCode::BadField
        );
        assert_eq!(
            parse_err(r#"{"type":"message","target":"x","from":"y"}"#).0,
            ErrorCode::BadField
        );
        assert_eq!(
            parse_err(r#"{"type":"ping","type":"join","room":"r"}"#).0,
            ErrorCode::BadJson
        );
    }

    #[test]
    fn parse_does_not_touch_the_original() {
        let text = br#"{"type":"message","target":"t","data":"a\nb\u0041"}"#.to_vec();
        let before = text.clone();
        let mut p = Parser::new();
        p.parse(&text).unwrap();
        assert_eq!(text, before);
        assert_eq!(after_open_brace(b"  {\"a\":1}"), 3);
    }

    #[test]
    fn string_writer_escapes_controls() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"\\\n\u{1}é");
        assert_eq!(out, r#""a\"\\\n\u0001é""#.as_bytes());
    }
}
