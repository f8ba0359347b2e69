//! The wire dialects the bench speaks: switchboard's protocol v1 and those of the peers it is
//! compared with. Each dialect says how a client reaches a room, what the server's frames
//! mean, and how an offer, an answer, a candidate or an app message is written.
//!
//! Relayed frames (the hot path) are recognised by a fixed prefix without parsing; every
//! other frame (welcome, joined, errors) is rare and parsed with `serde_json`.

use serde_json::{json, Value};

/// A signaling server's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// switchboard protocol v1 (`/v1/signal`, `join`, `target`, `from`).
    Switchboard,
    /// matchbox_server 0.15: the room is the URL path, `Signal { receiver, data }`.
    Matchbox,
    /// PeerJS server 1.0: client-chosen ids in the query, `OFFER`/`ANSWER`/`CANDIDATE`.
    Peerjs,
    /// gst-webrtc-signalling-server: producer/consumer sessions, `peer` messages.
    Gst,
    /// A WebSocket echo server (the references of perf/echo): no greeting, no rooms, every
    /// frame goes back to its sender. Its cost per message is one receive and one send, as
    /// a relay's is, so it measures the floor under the signaling servers.
    Echo,
}

impl Dialect {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Switchboard => "switchboard",
            Dialect::Matchbox => "matchbox",
            Dialect::Peerjs => "peerjs",
            Dialect::Gst => "gst",
            Dialect::Echo => "echo",
        }
    }

    /// Whether the client picks its own id (PeerJS) instead of the server assigning one.
    pub(crate) fn client_chooses_id(self) -> bool {
        self == Dialect::Peerjs
    }

    /// Whether a group may start only after the server announced every member to another
    /// (matchbox registers a peer after sending its id, and drops signals to unknown peers).
    pub(crate) fn needs_presence(self) -> bool {
        self == Dialect::Matchbox
    }

    /// Whether the server speaks first once upgraded (an echo server says nothing until
    /// spoken to, so there the upgrade is the greeting).
    pub(crate) fn greets(self) -> bool {
        self != Dialect::Echo
    }

    /// Whether a client's messages come back to the client itself instead of going to its
    /// partner. Such a pair has nothing to negotiate through the server, and in closed loop
    /// the turn passes to the partner on each echo, as it does on each relay.
    pub(crate) fn echoes(self) -> bool {
        self == Dialect::Echo
    }

    /// Whether the dialect can broadcast to a room in one frame.
    pub(crate) fn has_broadcast(self) -> bool {
        self == Dialect::Switchboard
    }

    /// The request path (with query) for a client of `room`, given the path of `--target`.
    pub(crate) fn path(self, base: &str, room: &str, own_id: &str, token: &str) -> String {
        match self {
            Dialect::Switchboard | Dialect::Gst | Dialect::Echo => base.to_owned(),
            Dialect::Matchbox => {
                if base.ends_with('/') {
                    format!("{base}{room}")
                } else {
                    format!("{base}/{room}")
                }
            }
            Dialect::Peerjs => format!("{base}?key=peerjs&id={own_id}&token={token}"),
        }
    }

    /// The frame a client sends once the server greeted it, to enter its room (if the
    /// dialect has such a step). `producer` is the first member of a gst pair.
    pub(crate) fn join(self, room: &str, producer: bool) -> Option<String> {
        match self {
            Dialect::Switchboard => Some(json!({"type": "join", "room": room}).to_string()),
            Dialect::Gst if producer => Some(
                json!({"type": "setPeerStatus", "roles": ["producer"], "meta": null}).to_string(),
            ),
            _ => None,
        }
    }

    /// gst only: the consumer asks for a session with the producer.
    pub(crate) fn start_session(producer_id: &str) -> String {
        json!({"type": "startSession", "peerId": producer_id}).to_string()
    }

    /// A keep-alive frame and how often the server needs it, if it does.
    pub(crate) fn heartbeat(self) -> Option<(&'static str, u64)> {
        match self {
            // PeerJS drops a client silent for alive_timeout (90 s by default).
            Dialect::Peerjs => Some((r#"{"type":"HEARTBEAT"}"#, 30_000_000_000)),
            _ => None,
        }
    }

    /// A targeted message of `kind` to `target` (a peer id, or for gst a session id).
    pub(crate) fn targeted(self, kind: Kind<'_>, target: &str) -> String {
        let v = match self {
            // An echo server reads nothing: it gets switchboard's frames, so that the bytes
            // on the wire are as many as in a switchboard run.
            Dialect::Switchboard | Dialect::Echo => match kind {
                Kind::Offer(sdp) => json!({"type": "offer", "target": target, "sdp": sdp}),
                Kind::Answer(sdp) => json!({"type": "answer", "target": target, "sdp": sdp}),
                Kind::Candidate(c) => json!({"type": "ice-candidate", "target": target,
                    "candidate": c, "sdpMid": "0", "sdpMLineIndex": 0}),
                Kind::Message(d) => json!({"type": "message", "target": target, "data": d}),
            },
            Dialect::Matchbox => {
                let data = match kind {
                    Kind::Offer(sdp) => json!({"Offer": sdp}),
                    Kind::Answer(sdp) => json!({"Answer": sdp}),
                    Kind::Candidate(c) => json!({"IceCandidate":
                        json!({"candidate": c, "sdpMid": "0", "sdpMLineIndex": 0}).to_string()}),
                    Kind::Message(d) => json!({"IceCandidate": d}),
                };
                json!({"Signal": {"receiver": target, "data": data}})
            }
            Dialect::Peerjs => match kind {
                Kind::Offer(sdp) => json!({"type": "OFFER", "dst": target, "payload":
                    {"sdp": {"type": "offer", "sdp": sdp}, "type": "data",
                     "connectionId": "dc_bench"}}),
                Kind::Answer(sdp) => json!({"type": "ANSWER", "dst": target, "payload":
                    {"sdp": {"type": "answer", "sdp": sdp}, "type": "data",
                     "connectionId": "dc_bench"}}),
                Kind::Candidate(c) => json!({"type": "CANDIDATE", "dst": target, "payload":
                    {"candidate": {"candidate": c, "sdpMid": "0", "sdpMLineIndex": 0},
                     "type": "data", "connectionId": "dc_bench"}}),
                Kind::Message(d) => {
                    json!({"type": "CANDIDATE", "dst": target, "payload": {"data": d}})
                }
            },
            Dialect::Gst => match kind {
                Kind::Offer(sdp) => json!({"type": "peer", "sessionId": target,
                    "sdp": {"type": "offer", "sdp": sdp}}),
                Kind::Answer(sdp) => json!({"type": "peer", "sessionId": target,
                    "sdp": {"type": "answer", "sdp": sdp}}),
                Kind::Candidate(c) | Kind::Message(c) => json!({"type": "peer",
                    "sessionId": target, "ice": {"candidate": c, "sdpMLineIndex": 0}}),
            },
        };
        v.to_string()
    }

    /// A broadcast of `data` to every other member of `room` (switchboard only).
    pub(crate) fn broadcast(self, room: &str, data: &str) -> Option<String> {
        self.has_broadcast()
            .then(|| json!({"type": "broadcast", "room": room, "data": data}).to_string())
    }

    /// What a complete text message from the server means.
    pub(crate) fn classify(self, text: &[u8]) -> Inbound<'_> {
        match self {
            Dialect::Echo => return Inbound::Relayed { from: None },
            Dialect::Switchboard => {
                if let Some(rest) = text.strip_prefix(br#"{"from":""#) {
                    return Inbound::Relayed {
                        from: rest.iter().position(|&b| b == b'"').map(|n| &rest[..n]),
                    };
                }
            }
            Dialect::Matchbox => {
                if let Some(rest) = text.strip_prefix(br#"{"Signal":{"sender":""#) {
                    return Inbound::Relayed {
                        from: rest.iter().position(|&b| b == b'"').map(|n| &rest[..n]),
                    };
                }
            }
            Dialect::Peerjs => {
                if text.starts_with(br#"{"type":"CANDIDATE""#)
                    || text.starts_with(br#"{"type":"OFFER""#)
                    || text.starts_with(br#"{"type":"ANSWER""#)
                {
                    return Inbound::Relayed { from: None };
                }
            }
            Dialect::Gst => {
                if text.starts_with(br#"{"type":"peer""#) {
                    return Inbound::Relayed { from: None };
                }
            }
        }
        let Ok(v) = serde_json::from_slice::<Value>(text) else {
            return Inbound::Error(format!(
                "unparsable frame: {}",
                String::from_utf8_lossy(&text[..text.len().min(120)])
            ));
        };
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let ty = s("type").unwrap_or_default();
        match self {
            Dialect::Switchboard => match ty.as_str() {
                "welcome" => Inbound::Hello { id: s("id") },
                "joined" => Inbound::Joined,
                "peer-joined" => Inbound::Presence,
                "error" => Inbound::Error(format!(
                    "{}: {}",
                    s("code").unwrap_or_default(),
                    s("message").unwrap_or_default()
                )),
                _ => Inbound::Ignored,
            },
            Dialect::Matchbox => {
                if let Some(id) = v.get("IdAssigned").and_then(Value::as_str) {
                    Inbound::Hello {
                        id: Some(id.to_owned()),
                    }
                } else if v.get("NewPeer").is_some() {
                    Inbound::Presence
                } else {
                    Inbound::Ignored
                }
            }
            Dialect::Peerjs => match ty.as_str() {
                "OPEN" => Inbound::Hello { id: None },
                "ERROR" | "ID-TAKEN" => Inbound::Error(format!("{ty}: {}", v["payload"])),
                _ => Inbound::Ignored,
            },
            Dialect::Gst => match ty.as_str() {
                "welcome" => Inbound::Hello { id: s("peerId") },
                "startSession" | "sessionStarted" => match s("sessionId") {
                    Some(id) => Inbound::Session { id },
                    None => Inbound::Error(format!("{ty} without sessionId")),
                },
                "error" => Inbound::Error(format!("error: {}", s("details").unwrap_or_default())),
                "endSession" => Inbound::Error("endSession".into()),
                _ => Inbound::Ignored,
            },
            Dialect::Echo => Inbound::Ignored,
        }
    }
}

/// A negotiation or app message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind<'a> {
    /// An SDP offer.
    Offer(&'a str),
    /// An SDP answer.
    Answer(&'a str),
    /// A trickled ICE candidate line.
    Candidate(&'a str),
    /// App data (the steady-state ping-pong).
    Message(&'a str),
}

/// A server frame, as far as the bench cares.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inbound<'a> {
    /// The greeting, with the id the server assigned (if the dialect assigns ids).
    Hello {
        /// The assigned id.
        id: Option<String>,
    },
    /// The client is in its room.
    Joined,
    /// Another client arrived in the room.
    Presence,
    /// gst: a session was started (either side).
    Session {
        /// The session id messages are addressed to.
        id: String,
    },
    /// A message relayed from another client.
    Relayed {
        /// The sender's id when the dialect puts it first.
        from: Option<&'a [u8]>,
    },
    /// The server reported an error.
    Error(String),
    /// Anything else (list updates, peer-left, ...).
    Ignored,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_frames_are_recognised_without_parsing() {
        assert_eq!(
            Dialect::Switchboard.classify(br#"{"from":"AAAAAAAAAAA","type":"message"}"#),
            Inbound::Relayed {
                from: Some(b"AAAAAAAAAAA")
            }
        );
        assert_eq!(
            Dialect::Matchbox.classify(br#"{"Signal":{"sender":"u-1","data":1}}"#),
            Inbound::Relayed { from: Some(b"u-1") }
        );
        assert_eq!(
            Dialect::Peerjs.classify(br#"{"type":"CANDIDATE","src":"a","dst":"b"}"#),
            Inbound::Relayed { from: None }
        );
        assert_eq!(
            Dialect::Gst.classify(br#"{"type":"peer","sessionId":"s"}"#),
            Inbound::Relayed { from: None }
        );
    }

    #[test]
    fn an_echo_server_sends_back_what_it_got() {
        let d = Dialect::Echo;
        let frame = d.targeted(Kind::Message("data"), "");
        assert_eq!(
            frame,
            Dialect::Switchboard.targeted(Kind::Message("data"), "")
        );
        assert_eq!(
            d.classify(frame.as_bytes()),
            Inbound::Relayed { from: None }
        );
        assert_eq!(d.path("/any", "room", "", "t"), "/any");
        assert_eq!(d.join("room", true), None);
        assert!(!d.greets() && d.echoes() && !d.has_broadcast() && !d.needs_presence());
        for other in [
            Dialect::Switchboard,
            Dialect::Matchbox,
            Dialect::Peerjs,
            Dialect::Gst,
        ] {
            assert!(other.greets() && !other.echoes(), "{other:?}");
        }
    }

    #[test]
    fn control_frames_are_understood() {
        assert_eq!(
            Dialect::Switchboard.classify(br#"{"type":"welcome","id":"x","heartbeatMs":1}"#),
            Inbound::Hello {
                id: Some("x".into())
            }
        );
        assert_eq!(
            Dialect::Matchbox.classify(br#"{"IdAssigned":"u"}"#),
            Inbound::Hello {
                id: Some("u".into())
            }
        );
        assert_eq!(
            Dialect::Peerjs.classify(br#"{"type":"OPEN"}"#),
            Inbound::Hello { id: None }
        );
        assert_eq!(
            Dialect::Gst.classify(br#"{"type":"sessionStarted","peerId":"p","sessionId":"s"}"#),
            Inbound::Session { id: "s".into() }
        );
        assert!(matches!(
            Dialect::Switchboard.classify(br#"{"type":"error","code":"bad-json","message":"m"}"#),
            Inbound::Error(_)
        ));
    }

    #[test]
    fn messages_carry_the_same_payload_in_every_dialect() {
        let data = "x".repeat(256);
        for d in [
            Dialect::Switchboard,
            Dialect::Matchbox,
            Dialect::Peerjs,
            Dialect::Gst,
            Dialect::Echo,
        ] {
            let m = d.targeted(Kind::Message(&data), "T");
            let v: Value = serde_json::from_str(&m).unwrap();
            assert!(m.contains(&data), "{m}");
            assert!(v.is_object());
        }
    }
}
