//! The per-shard signaling router: sessions, rooms and relay.
//!
//! Each shard runs one [`Router`]. It owns the sessions accepted by that shard (a slab with
//! generation-checked slots) and the rooms whose name hashes to that shard. Work for
//! another shard — a relay to one of its sessions, a join to one of its rooms — is appended
//! to an outbound [`Batch`] for that shard; the shard loop moves batches over the SPSC
//! rings and feeds them to the receiving router's [`Router::handle_batch`].
//!
//! Driving it:
//!
//! 1. When a WebSocket upgrade on `/v1/signal` completes, call [`Router::open`]; it writes
//!    the `welcome` frame to the connection through the [`Sink`].
//! 2. For every text message, call [`Router::handle_text`]. Frames for local sessions are
//!    written through the sink at once; frames for other shards are batched.
//! 3. For every batch another shard sent, call [`Router::handle_batch`].
//! 4. Once per loop turn, drain [`Router::take_batch`] for each other shard and push the
//!    batches onto the rings.
//! 5. When the connection ends, call [`Router::close`]: its rooms get `peer-left`.
//!
//! Frames relayed to a target are the sender's bytes with `{"from":"<id>",` in front of
//! everything after the opening `{`: nothing is re-serialised.

use std::collections::HashMap;

use sha1::{Digest, Sha1};

use super::error::{ErrorCode, FrameError};
use super::id::{SessionId, GENERATION_MOD, ID_TEXT_LEN, SLOTS_MAX};
use super::json::{after_open_brace, write_str, ClientFrame, Kind, Parser};
use crate::proto::auth::Claims;
use crate::proto::sdp::{self, SdpKind, SdpLimits};
use crate::proto::turn_rest;

/// Index of a connection in the shard's connection table.
pub type ConnToken = u32;

/// Where the router's frames go: the shard appends them to the connection's send queue.
pub trait Sink {
    /// Queues one text frame whose payload is the concatenation of `parts`.
    fn send_text(&mut self, conn: ConnToken, parts: &[&[u8]]);

    /// Closes a connection whose session has moved on (a resume took it over): send a
    /// close frame with `code` and close, without ending any session.
    fn close(&mut self, conn: ConnToken, code: u16, reason: &str);
}

/// Close code for a connection whose session was resumed on another connection.
pub const CLOSE_RESUMED_ELSEWHERE: u16 = 4001;
/// Close code for a session that kept sending over its rate limit.
pub const CLOSE_RATE_LIMITED: u16 = 1008;

/// Limits the router enforces; all come from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest signaling message accepted (larger ones get `too-large`).
    pub message_bytes_max: usize,
    /// Largest `sdp` in an offer or answer.
    pub sdp_bytes_max: usize,
    /// Longest room name.
    pub room_name_bytes_max: usize,
    /// Largest `meta` value (re-encoded JSON).
    pub meta_bytes_max: usize,
    /// Rooms one session may be in at once.
    pub rooms_per_session_max: usize,
    /// Members one room may hold.
    pub members_per_room_max: usize,
    /// Sessions this shard may hold.
    pub sessions_max: u32,
    /// Validate the SDP of offers and answers before relaying them.
    pub validate_sdp: bool,
    /// Most lines an SDP may have.
    pub sdp_lines_max: u32,
    /// How long a session outlives its connection, waiting for a resume (0: not at all).
    pub resume_grace_ms: u64,
    /// Bytes of frames queued for a detached session; past it the session ends.
    pub resume_queue_bytes_max: usize,
    /// Messages per second a session may send (token bucket refill; 0 = unlimited).
    pub messages_per_second: u32,
    /// Burst of messages above the rate.
    pub message_burst: u32,
    /// Refused messages in a row after which the connection is closed with 1008.
    pub rate_violations_max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            message_bytes_max: 64 * 1024,
            sdp_bytes_max: 32 * 1024,
            room_name_bytes_max: 128,
            meta_bytes_max: 1024,
            rooms_per_session_max: 8,
            members_per_room_max: 256,
            sessions_max: 1 << 20,
            validate_sdp: true,
            sdp_lines_max: 2000,
            resume_grace_ms: 15_000,
            resume_queue_bytes_max: 256 * 1024,
            messages_per_second: 0,
            message_burst: 100,
            rate_violations_max: 50,
        }
    }
}

/// Static configuration of one shard's router.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's id.
    pub node: u16,
    /// This shard's index.
    pub shard: u8,
    /// Number of shards on this node.
    pub shards: u8,
    /// Limits.
    pub limits: Limits,
    /// The `iceServers` JSON array sent in `welcome`.
    pub ice_servers_json: String,
    /// Heartbeat interval advertised in `welcome`.
    pub heartbeat_ms: u64,
    /// Secret that resume tokens are derived from; the same on every shard of a node.
    pub secret: [u8; 32],
    /// Seeds of the room hash; the same on every shard so all agree on room owners.
    pub room_hash_seeds: [u64; 4],
    /// TURN REST credentials for `welcome` (coturn `use-auth-secret`), when configured.
    pub turn: Option<TurnConfig>,
    /// This node is part of a cluster: work for sessions of other nodes, and room events
    /// other nodes must hear, go to the bridge (outbound batch index `shards`).
    pub cluster: bool,
}

/// TURN servers that accept REST credentials derived from a shared secret.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// The secret shared with the TURN server (`static-auth-secret`).
    pub secret: Vec<u8>,
    /// `turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// Lifetime of a credential.
    pub ttl_s: u64,
}

/// A byte range in a batch's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub(super) start: u32,
    pub(super) len: u32,
}

/// One record of cross-shard work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Deliver a text frame to a session of the receiving shard. If it is gone, answer
    /// `unknown-target` to `from` (unless `from` is the server itself).
    Deliver {
        /// The target session.
        target: SessionId,
        /// The frame payload.
        frame: Span,
        /// The sender, told when the target is gone.
        from: Option<SessionId>,
        /// The sender's `ref`, for that error.
        reference: Option<Span>,
    },
    /// Add `session` to a room the receiving shard owns.
    Join {
        /// Room name.
        room: Span,
        /// The joining session.
        session: SessionId,
        /// The member's `meta` JSON.
        meta: Option<Span>,
        /// The request's `ref`.
        reference: Option<Span>,
    },
    /// Remove `session` from a room the receiving shard owns.
    Leave {
        /// Room name.
        room: Span,
        /// The leaving session.
        session: SessionId,
        /// Whether to answer `left` (false when the session is gone).
        reply: bool,
        /// The request's `ref`.
        reference: Option<Span>,
    },
    /// Fan a frame out to every member of a room the receiving shard owns, but `from`.
    Broadcast {
        /// Room name.
        room: Span,
        /// The sender.
        from: SessionId,
        /// The frame payload.
        frame: Span,
    },
    /// The owner refused a join: drop the room from the session's list.
    JoinRefused {
        /// Room name.
        room: Span,
        /// The session that asked.
        session: SessionId,
    },
    /// A client frame that arrived on `proxy`'s connection, for the resumed `session`
    /// whose home is the receiving shard.
    ClientText {
        /// The resumed session.
        session: SessionId,
        /// The stand-in session whose connection carries it.
        proxy: SessionId,
        /// The frame.
        text: Span,
    },
    /// A frame for `session`, to write on `proxy`'s connection (receiving shard).
    ToConn {
        /// The stand-in session.
        proxy: SessionId,
        /// The resumed session the frame is for.
        session: SessionId,
        /// The frame.
        frame: Span,
        /// Whether the frame goes back to the session's queue if the stand-in is gone
        /// (false for the `resumed` reply, which only means something on that connection).
        requeue: bool,
    },
    /// A frame that found `proxy` gone; back to `session`'s queue, oldest first.
    Requeue {
        /// The resumed session.
        session: SessionId,
        /// The stand-in that was gone.
        proxy: SessionId,
        /// The frame.
        frame: Span,
    },
    /// `proxy`'s connection ended: `session` is detached.
    Detach {
        /// The resumed session.
        session: SessionId,
        /// The stand-in that ended.
        proxy: SessionId,
    },
    /// The home saw the detach and sends nothing more to `proxy`.
    DetachAck {
        /// The stand-in.
        proxy: SessionId,
        /// The resumed session.
        session: SessionId,
    },
    /// Every frame bounced from `proxy` has been sent back.
    RequeueDone {
        /// The resumed session.
        session: SessionId,
        /// The stand-in.
        proxy: SessionId,
    },
    /// A client on `proxy`'s connection resumes `session` (its token already checked).
    ResumeRequest {
        /// The session to take over.
        session: SessionId,
        /// The stand-in session of the new connection.
        proxy: SessionId,
        /// The request's `ref`.
        reference: Option<Span>,
    },
    /// The resume failed: the session has ended.
    ResumeFailed {
        /// The stand-in session of the new connection.
        proxy: SessionId,
        /// The request's `ref`.
        reference: Option<Span>,
    },
    /// Another connection took `session` over: close `proxy`'s connection with 4001 and
    /// answer `RequeueDone` once frames sent to it before are accounted for.
    Kick {
        /// The stand-in to close.
        proxy: SessionId,
        /// The session it stood in for.
        session: SessionId,
    },
    /// A session of another node joined a room (cluster). From a room's owner to the
    /// bridge it means "tell the other nodes"; from the bridge to the owner, "a member of
    /// another node joined": its local members get `peer-joined`.
    RemoteJoin {
        /// Room name.
        room: Span,
        /// The member (of the node the event comes from).
        session: SessionId,
        /// The member's `meta` JSON.
        meta: Option<Span>,
    },
    /// A member left a room (cluster); directions as for [`Record::RemoteJoin`].
    RemoteLeave {
        /// Room name.
        room: Span,
        /// The member that left.
        session: SessionId,
    },
    /// A broadcast in a room that has members on other nodes (cluster); directions as for
    /// [`Record::RemoteJoin`].
    RemoteBroadcast {
        /// Room name.
        room: Span,
        /// The sender.
        from: SessionId,
        /// The frame payload (already carrying `from`).
        frame: Span,
    },
}

impl Record {
    /// The same record with every span moved by `base` bytes.
    fn shifted(self, base: u32) -> Record {
        let sh = |s: Span| Span {
            start: s.start + base,
            len: s.len,
        };
        match self {
            Record::Deliver {
                target,
                frame,
                from,
                reference,
            } => Record::Deliver {
                target,
                frame: sh(frame),
                from,
                reference: reference.map(sh),
            },
            Record::Join {
                room,
                session,
                meta,
                reference,
            } => Record::Join {
                room: sh(room),
                session,
                meta: meta.map(sh),
                reference: reference.map(sh),
            },
            Record::Leave {
                room,
                session,
                reply,
                reference,
            } => Record::Leave {
                room: sh(room),
                session,
                reply,
                reference: reference.map(sh),
            },
            Record::Broadcast { room, from, frame } => Record::Broadcast {
                room: sh(room),
                from,
                frame: sh(frame),
            },
            Record::JoinRefused { room, session } => Record::JoinRefused {
                room: sh(room),
                session,
            },
            Record::ClientText {
                session,
                proxy,
                text,
            } => Record::ClientText {
                session,
                proxy,
                text: sh(text),
            },
            Record::ToConn {
                proxy,
                session,
                frame,
                requeue,
            } => Record::ToConn {
                proxy,
                session,
                frame: sh(frame),
                requeue,
            },
            Record::Requeue {
                session,
                proxy,
                frame,
            } => Record::Requeue {
                session,
                proxy,
                frame: sh(frame),
            },
            Record::ResumeRequest {
                session,
                proxy,
                reference,
            } => Record::ResumeRequest {
                session,
                proxy,
                reference: reference.map(sh),
            },
            Record::ResumeFailed { proxy, reference } => Record::ResumeFailed {
                proxy,
                reference: reference.map(sh),
            },
            Record::RemoteJoin {
                room,
                session,
                meta,
            } => Record::RemoteJoin {
                room: sh(room),
                session,
                meta: meta.map(sh),
            },
            Record::RemoteLeave { room, session } => Record::RemoteLeave {
                room: sh(room),
                session,
            },
            Record::RemoteBroadcast { room, from, frame } => Record::RemoteBroadcast {
                room: sh(room),
                from,
                frame: sh(frame),
            },
            r @ (Record::Detach { .. }
            | Record::DetachAck { .. }
            | Record::RequeueDone { .. }
            | Record::Kick { .. }) => r,
        }
    }
}

/// Cross-shard work for one destination shard, gathered over one loop turn.
#[derive(Debug, Default)]
pub struct Batch {
    /// The records, in order.
    pub records: Vec<Record>,
    data: Vec<u8>,
}

impl Batch {
    /// Appends bytes to the batch's data and returns their span (the bridge builds
    /// batches from messages of other nodes with it).
    pub fn push_bytes(&mut self, parts: &[&[u8]]) -> Span {
        let start = self.data.len() as u32;
        for p in parts {
            self.data.extend_from_slice(p);
        }
        Span {
            start,
            len: self.data.len() as u32 - start,
        }
    }

    /// The bytes of `span`.
    #[must_use]
    pub fn bytes(&self, span: Span) -> &[u8] {
        &self.data[span.start as usize..(span.start + span.len) as usize]
    }

    fn str(&self, span: Span) -> &str {
        // Only valid UTF-8 (room names) is stored under spans read with this.
        std::str::from_utf8(self.bytes(span)).unwrap_or("")
    }

    /// Whether the batch holds no records.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes of payload the batch carries.
    #[must_use]
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Appends all of `other`'s records (used when a ring is full and batches merge).
    pub fn append(&mut self, other: Batch) {
        let base = self.data.len() as u32;
        self.data.extend_from_slice(&other.data);
        self.records
            .extend(other.records.into_iter().map(|r| r.shifted(base)));
    }
}

/// Counters a shard exports; plain integers, read by the metrics thread from a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Sessions opened.
    pub sessions_opened: u64,
    /// Sessions closed.
    pub sessions_closed: u64,
    /// Client frames received, by kind (index of [`Kind::ALL`]).
    pub frames_in: [u64; 10],
    /// Frames relayed to a target (local or remote).
    pub relayed: u64,
    /// Error frames sent, by code (index of [`ErrorCode::ALL`]).
    pub errors: [u64; 14],
}

/// Where a session's frames go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attach {
    /// Straight to a connection of this shard.
    Local(ConnToken),
    /// Through a stand-in session (possibly on another shard) whose connection resumed it.
    Proxy(SessionId),
    /// Nowhere: frames queue until a resume or until the deadline ends the session.
    Detached { deadline_ms: u64 },
}

struct Session {
    generation: u32,
    live: bool,
    attach: Attach,
    rooms: Vec<Box<str>>,
    /// Set on a stand-in: the session (anywhere) this connection resumed.
    proxy_for: Option<SessionId>,
    /// No client frame has arrived yet (a resume must come first).
    fresh: bool,
    queue: std::collections::VecDeque<Box<[u8]>>,
    queue_bytes: usize,
    /// Where frames bounced back from a gone remote stand-in are inserted (they are older
    /// than anything queued after the detach).
    requeue_at: usize,
    /// A remote stand-in detached; its bounced frames are still on the way.
    awaiting_requeue: Option<SessionId>,
    /// A resume that waits for those frames.
    pending_resume: Option<(SessionId, Option<Box<[u8]>>)>,
    /// What the session's token granted (rooms, `sub`), when auth is on.
    grant: Option<Box<Claims>>,
    /// Token bucket of the message rate limit (thousandths of a message).
    tokens_milli: u64,
    tokens_at_ms: u64,
    violations: u32,
}

impl Session {
    fn new(conn: ConnToken) -> Session {
        Session {
            generation: 0,
            live: true,
            attach: Attach::Local(conn),
            rooms: Vec::new(),
            proxy_for: None,
            fresh: true,
            queue: std::collections::VecDeque::new(),
            queue_bytes: 0,
            requeue_at: 0,
            awaiting_requeue: None,
            pending_resume: None,
            grant: None,
            tokens_milli: 0,
            tokens_at_ms: 0,
            violations: 0,
        }
    }
}

struct Member {
    id: SessionId,
    meta: Option<Box<[u8]>>,
}

struct Room {
    members: Vec<Member>,
}

/// The ids of a room's members that live on `node` (a join is announced to these; members
/// of other nodes hear of it from their own node).
fn local_members(members: &[Member], node: u16) -> Vec<SessionId> {
    members
        .iter()
        .map(|m| m.id)
        .filter(|m| m.node() == node)
        .collect()
}

/// The per-shard router.
pub struct Router {
    cfg: Config,
    sessions: Vec<Session>,
    free_slots: Vec<u32>,
    live_sessions: u32,
    rooms: HashMap<Box<str>, Room, ahash::RandomState>,
    room_hasher: ahash::RandomState,
    outbound: Vec<Batch>,
    /// `None` only while a frame is being handled (the frame borrows the parser's buffers).
    parser: Option<Box<Parser>>,
    scratch: Vec<u8>,
    counters: Counters,
    /// Grace deadlines of detached sessions: (deadline, slot, generation).
    deadlines: std::collections::BinaryHeap<std::cmp::Reverse<(u64, u32, u32)>>,
    /// Sessions to end once the current call has finished (queue overflow).
    to_end: Vec<SessionId>,
    /// The time the current call was made with.
    now_ms: u64,
    /// Scratch for the member list of a broadcast.
    fanout: Vec<SessionId>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("shard", &self.cfg.shard)
            .field("sessions", &self.live_sessions)
            .field("rooms", &self.rooms.len())
            .finish_non_exhaustive()
    }
}

/// Where a frame goes after a relay attempt.
enum Bounce<'a> {
    /// Tell this sender if the target is gone.
    To(SessionId, Option<&'a [u8]>),
    /// Server-originated: nobody to tell.
    Nobody,
}

impl Router {
    /// A router with no sessions and no rooms.
    #[must_use]
    pub fn new(cfg: Config) -> Self {
        assert!(
            cfg.shards >= 1 && cfg.shard < cfg.shards,
            "shard index out of range"
        );
        assert!(
            cfg.limits.sessions_max <= SLOTS_MAX,
            "sessions_max exceeds the id's slot field"
        );
        let room_hasher = room_hasher(cfg.room_hash_seeds);
        // With a cluster, one more outbound batch: the bridge's, at index `shards`.
        let destinations = usize::from(cfg.shards) + usize::from(cfg.cluster);
        let outbound = (0..destinations).map(|_| Batch::default()).collect();
        Router {
            cfg,
            sessions: Vec::new(),
            free_slots: Vec::new(),
            live_sessions: 0,
            rooms: HashMap::default(),
            room_hasher,
            outbound,
            parser: Some(Box::new(Parser::new())),
            scratch: Vec::with_capacity(1024),
            counters: Counters::default(),
            deadlines: std::collections::BinaryHeap::new(),
            to_end: Vec::new(),
            now_ms: 0,
            fanout: Vec::new(),
        }
    }

    /// Replaces the limits (configuration reload). Existing sessions and rooms stay; the
    /// new limits apply to what happens next.
    pub fn set_limits(&mut self, limits: Limits) {
        assert!(
            limits.sessions_max <= SLOTS_MAX,
            "sessions_max exceeds the id's slot field"
        );
        self.cfg.limits = limits;
    }

    /// Sessions alive on this shard.
    #[must_use]
    pub fn session_count(&self) -> u32 {
        self.live_sessions
    }

    /// Rooms this shard owns.
    #[must_use]
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Members of a room this shard owns, if it exists.
    #[must_use]
    pub fn room_members(&self, room: &str) -> Option<Vec<SessionId>> {
        self.rooms
            .get(room)
            .map(|r| r.members.iter().map(|m| m.id).collect())
    }

    /// The counters so far.
    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The shard that owns `room`.
    #[must_use]
    pub fn room_owner(&self, room: &str) -> u8 {
        room_owner(&self.room_hasher, self.cfg.shards, room)
    }

    /// The outbound index of the cluster bridge (one past the last shard).
    fn bridge(&self) -> usize {
        debug_assert!(self.cfg.cluster);
        usize::from(self.cfg.shards)
    }

    /// The connection of a live local session attached to a connection of this shard.
    #[must_use]
    pub fn lookup(&self, id: SessionId) -> Option<ConnToken> {
        match self.session(id)?.attach {
            Attach::Local(conn) => Some(conn),
            _ => None,
        }
    }

    /// Whether `id` names a live session of this shard (attached or not).
    #[must_use]
    pub fn is_live(&self, id: SessionId) -> bool {
        self.session(id).is_some()
    }

    fn session(&self, id: SessionId) -> Option<&Session> {
        if id.node() != self.cfg.node || id.shard() != self.cfg.shard {
            return None;
        }
        let s = self.sessions.get(id.slot() as usize)?;
        (s.live && s.generation == id.generation()).then_some(s)
    }

    fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        if id.node() != self.cfg.node || id.shard() != self.cfg.shard {
            return None;
        }
        let s = self.sessions.get_mut(id.slot() as usize)?;
        (s.live && s.generation == id.generation()).then_some(s)
    }

    /// The resume token of a session: derived from the node secret, so nothing is stored.
    #[must_use]
    pub fn resume_token(&self, id: SessionId) -> [u8; 22] {
        use base64::Engine as _;
        let mut sha = Sha1::new();
        sha.update(self.cfg.secret);
        sha.update(id.to_u64().to_be_bytes());
        let digest = sha.finalize();
        let mut out = [0u8; 22];
        let _ =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_slice(&digest[..16], &mut out);
        out
    }

    /// Opens a session for connection `conn` and sends it `welcome`. `None` when the shard
    /// is at `sessions_max` (the caller should have refused the upgrade before).
    pub fn open(&mut self, conn: ConnToken, sink: &mut impl Sink) -> Option<SessionId> {
        self.open_with(conn, None, 0, sink)
    }

    /// Opens a session with what its token granted (`None` without auth) and the wall-clock
    /// time in Unix seconds, which TURN credentials in `welcome` expire from.
    pub fn open_with(
        &mut self,
        conn: ConnToken,
        grant: Option<Claims>,
        now_unix_s: u64,
        sink: &mut impl Sink,
    ) -> Option<SessionId> {
        if self.live_sessions >= self.cfg.limits.sessions_max {
            return None;
        }
        let burst_milli = u64::from(self.cfg.limits.message_burst) * 1000;
        let now_ms = self.now_ms;
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                let s = &mut self.sessions[slot as usize];
                let generation = s.generation;
                let rooms = std::mem::take(&mut s.rooms);
                debug_assert!(rooms.is_empty());
                *s = Session::new(conn);
                s.generation = generation;
                s.rooms = rooms;
                slot
            }
            None => {
                let slot = self.sessions.len() as u32;
                self.sessions.push(Session::new(conn));
                slot
            }
        };
        {
            let s = &mut self.sessions[slot as usize];
            s.tokens_milli = burst_milli;
            s.tokens_at_ms = now_ms;
            s.grant = grant.map(Box::new);
        }
        self.live_sessions += 1;
        self.counters.sessions_opened += 1;
        let id = SessionId::new(
            self.cfg.node,
            self.cfg.shard,
            slot,
            self.sessions[slot as usize].generation,
        );
        let token = self.resume_token(id);
        let buf = &mut self.scratch;
        buf.clear();
        buf.extend_from_slice(b"{\"type\":\"welcome\",\"id\":\"");
        buf.extend_from_slice(&id.encode());
        buf.extend_from_slice(b"\",\"resume\":\"");
        buf.extend_from_slice(&token);
        buf.extend_from_slice(b"\",\"iceServers\":");
        match &self.cfg.turn {
            Some(turn) => {
                // Time-limited TURN REST credentials first, then the static servers.
                let (user, pass) = turn_rest::credentials(
                    &turn.secret,
                    std::str::from_utf8(&id.encode()).unwrap_or_default(),
                    now_unix_s,
                    turn.ttl_s,
                );
                let urls: Vec<&str> = turn.urls.iter().map(String::as_str).collect();
                buf.push(b'[');
                turn_rest::write_ice_server(buf, &urls, &user, &pass);
                let rest = self.cfg.ice_servers_json.as_bytes();
                if rest.len() > 2 {
                    buf.push(b',');
                    buf.extend_from_slice(&rest[1..]);
                } else {
                    buf.push(b']');
                }
            }
            None => buf.extend_from_slice(self.cfg.ice_servers_json.as_bytes()),
        }
        buf.extend_from_slice(b",\"heartbeatMs\":");
        buf.extend_from_slice(self.cfg.heartbeat_ms.to_string().as_bytes());
        buf.push(b'}');
        sink.send_text(conn, &[&self.scratch]);
        Some(id)
    }

    /// Ends a session now: its rooms get `peer-left`, its slot is freed for a later
    /// generation, and a stand-in connection it was resumed on is closed.
    pub fn close(&mut self, id: SessionId, sink: &mut impl Sink) {
        self.end(id, sink);
        self.finish_call(sink);
    }

    fn end(&mut self, id: SessionId, sink: &mut impl Sink) {
        let Some(s) = self.session_mut(id) else {
            return;
        };
        let attach = s.attach;
        let proxy_for = s.proxy_for.take();
        let rooms = std::mem::take(&mut s.rooms);
        s.queue.clear();
        s.queue_bytes = 0;
        s.pending_resume = None;
        s.awaiting_requeue = None;
        for room in &rooms {
            self.leave_at_owner(room, id, false, None, sink);
        }
        if let Attach::Proxy(proxy) = attach {
            self.kick(proxy, id, sink);
        }
        if let Some(home) = proxy_for {
            // A stand-in that ends tells the session it stood in for.
            self.proxy_detached(home, id, sink);
        }
        let slot = id.slot() as usize;
        let s = &mut self.sessions[slot];
        s.live = false;
        s.generation = (s.generation + 1) % GENERATION_MOD;
        // Keep the (now empty) list's allocation for the slot's next session.
        s.rooms = rooms;
        s.rooms.clear();
        self.free_slots.push(slot as u32);
        self.live_sessions -= 1;
        self.counters.sessions_closed += 1;
    }

    /// The connection of session `id` has gone. The session waits `resume_grace_ms` for a
    /// resume, queuing what is sent to it; with no grace it ends at once.
    pub fn detach(&mut self, id: SessionId, now_ms: u64, sink: &mut impl Sink) {
        self.now_ms = now_ms;
        let grace = self.cfg.limits.resume_grace_ms;
        let Some(s) = self.session_mut(id) else {
            return;
        };
        // A stand-in, or a session that never did anything, has nothing to resume.
        if s.proxy_for.is_some() || grace == 0 || (s.fresh && s.rooms.is_empty()) {
            self.end(id, sink);
        } else {
            let deadline_ms = now_ms + grace;
            s.attach = Attach::Detached { deadline_ms };
            self.deadlines
                .push(std::cmp::Reverse((deadline_ms, id.slot(), id.generation())));
        }
        self.finish_call(sink);
    }

    /// The next grace deadline, if any session is detached.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.deadlines.peek().map(|r| r.0 .0)
    }

    /// Ends detached sessions whose grace has passed.
    pub fn handle_timeout(&mut self, now_ms: u64, sink: &mut impl Sink) {
        self.now_ms = now_ms;
        while let Some(std::cmp::Reverse((at, slot, generation))) = self.deadlines.peek().copied() {
            if at > now_ms {
                break;
            }
            self.deadlines.pop();
            let id = SessionId::new(self.cfg.node, self.cfg.shard, slot, generation);
            let expired = self
                .session(id)
                .is_some_and(|s| s.attach == Attach::Detached { deadline_ms: at });
            if expired {
                self.end(id, sink);
            }
        }
        self.finish_call(sink);
    }

    /// Ends the sessions marked during the call.
    fn finish_call(&mut self, sink: &mut impl Sink) {
        while let Some(id) = self.to_end.pop() {
            self.end(id, sink);
        }
    }

    /// Writes a frame to session `id` of this shard wherever it is attached; queues it
    /// when detached. Returns false when there is no such session.
    fn emit(&mut self, id: SessionId, parts: &[&[u8]], sink: &mut impl Sink) -> bool {
        self.emit_with(id, parts, true, sink)
    }

    fn emit_with(
        &mut self,
        id: SessionId,
        parts: &[&[u8]],
        requeue: bool,
        sink: &mut impl Sink,
    ) -> bool {
        let queue_max = self.cfg.limits.resume_queue_bytes_max;
        let Some(s) = self.session_mut(id) else {
            return false;
        };
        match s.attach {
            Attach::Local(conn) => sink.send_text(conn, parts),
            Attach::Proxy(proxy) => {
                if proxy.shard() == self.cfg.shard {
                    if let Some(conn) = self.lookup(proxy) {
                        sink.send_text(conn, parts);
                    }
                } else {
                    let b = &mut self.outbound[proxy.shard() as usize];
                    let frame = b.push_bytes(parts);
                    b.records.push(Record::ToConn {
                        proxy,
                        session: id,
                        frame,
                        requeue,
                    });
                }
            }
            Attach::Detached { .. } => {
                let len: usize = parts.iter().map(|p| p.len()).sum();
                if s.queue_bytes + len > queue_max {
                    // Frames would be lost: end the session instead, so peers see
                    // peer-left and a late resume hears it has expired.
                    self.to_end.push(id);
                    return true;
                }
                let mut v = Vec::with_capacity(len);
                for p in parts {
                    v.extend_from_slice(p);
                }
                s.queue_bytes += len;
                s.queue.push_back(v.into_boxed_slice());
            }
        }
        true
    }

    fn emit_scratch(&mut self, id: SessionId, sink: &mut impl Sink) {
        let buf = std::mem::take(&mut self.scratch);
        self.emit(id, &[&buf], sink);
        self.scratch = buf;
    }

    /// Closes the connection of stand-in `proxy` (anywhere) without ending a session.
    fn kick(&mut self, proxy: SessionId, session: SessionId, sink: &mut impl Sink) {
        if proxy.shard() != self.cfg.shard {
            self.outbound[proxy.shard() as usize]
                .records
                .push(Record::Kick { proxy, session });
            return;
        }
        if let Some(conn) = self.lookup(proxy) {
            sink.close(
                conn,
                CLOSE_RESUMED_ELSEWHERE,
                "the session was resumed on another connection",
            );
        }
        if let Some(s) = self.session_mut(proxy) {
            // The stand-in ends silently: it was never in a room.
            s.proxy_for = None;
        }
        self.end(proxy, sink);
    }

    /// Stand-in `proxy` of session `home` has ended (its connection went away).
    fn proxy_detached(&mut self, home: SessionId, proxy: SessionId, sink: &mut impl Sink) {
        if home.shard() != self.cfg.shard {
            self.outbound[home.shard() as usize]
                .records
                .push(Record::Detach {
                    session: home,
                    proxy,
                });
            return;
        }
        self.home_detach(home, proxy, false, sink);
    }

    /// At the home shard: `proxy` no longer carries `home`.
    fn home_detach(
        &mut self,
        home: SessionId,
        proxy: SessionId,
        remote: bool,
        sink: &mut impl Sink,
    ) {
        let grace = self.cfg.limits.resume_grace_ms;
        let now_ms = self.now_ms;
        let Some(s) = self.session_mut(home) else {
            if remote {
                self.outbound[proxy.shard() as usize]
                    .records
                    .push(Record::DetachAck {
                        proxy,
                        session: home,
                    });
            }
            return;
        };
        if s.pending_resume.as_ref().is_some_and(|p| p.0 == proxy) {
            // The new connection died before its resume completed: nothing was sent to it.
            s.pending_resume = None;
        }
        if s.attach != Attach::Proxy(proxy) {
            return;
        }
        let deadline_ms = now_ms + grace;
        s.attach = Attach::Detached { deadline_ms };
        s.requeue_at = 0;
        if remote {
            s.awaiting_requeue = Some(proxy);
            self.outbound[proxy.shard() as usize]
                .records
                .push(Record::DetachAck {
                    proxy,
                    session: home,
                });
        }
        self.deadlines.push(std::cmp::Reverse((
            deadline_ms,
            home.slot(),
            home.generation(),
        )));
        if grace == 0 {
            self.to_end.push(home);
        }
        let _ = sink;
    }

    /// At the home shard: stand-in `proxy` (anywhere) resumes `home`.
    fn resume_at_home(
        &mut self,
        home: SessionId,
        proxy: SessionId,
        reference: Option<&[u8]>,
        sink: &mut impl Sink,
    ) {
        let grace = self.cfg.limits.resume_grace_ms;
        let now_ms = self.now_ms;
        let shard = self.cfg.shard;
        let Some(s) = self.session_mut(home) else {
            self.resume_failed(proxy, reference, sink);
            return;
        };
        if s.awaiting_requeue.is_some() {
            // Frames bounced from an old stand-in are still coming: finish when they are in.
            let earlier = s.pending_resume.replace((proxy, reference.map(Into::into)));
            if let Some((earlier, _)) = earlier.filter(|e| e.0 != proxy) {
                // A newer connection wins; the one that asked before is closed.
                self.kick(earlier, home, sink);
            }
            return;
        }
        let old = s.attach;
        match old {
            Attach::Proxy(q) if q == proxy => return,
            Attach::Proxy(q) if q.shard() != shard => {
                // Frames sent to the old remote stand-in may bounce back: queue from now on,
                // and attach once its shard says every bounce is in.
                s.awaiting_requeue = Some(q);
                s.requeue_at = 0;
                s.pending_resume = Some((proxy, reference.map(Into::into)));
                let deadline_ms = now_ms + grace.max(1);
                s.attach = Attach::Detached { deadline_ms };
                self.deadlines.push(std::cmp::Reverse((
                    deadline_ms,
                    home.slot(),
                    home.generation(),
                )));
                self.outbound[q.shard() as usize]
                    .records
                    .push(Record::Kick {
                        proxy: q,
                        session: home,
                    });
                return;
            }
            _ => {}
        }
        s.attach = Attach::Proxy(proxy);
        let queued: Vec<Box<[u8]>> = s.queue.drain(..).collect();
        s.queue_bytes = 0;
        s.requeue_at = 0;
        match old {
            Attach::Local(conn) => sink.close(
                conn,
                CLOSE_RESUMED_ELSEWHERE,
                "the session was resumed on another connection",
            ),
            Attach::Proxy(q) => self.kick(q, home, sink),
            Attach::Detached { .. } => {}
        }
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(b"{\"type\":\"resumed\",\"id\":\"");
        buf.extend_from_slice(&home.encode());
        buf.extend_from_slice(b"\",\"delivered\":");
        buf.extend_from_slice(queued.len().to_string().as_bytes());
        push_ref(&mut buf, reference);
        buf.push(b'}');
        self.emit_with(home, &[&buf], false, sink);
        self.scratch = buf;
        for f in &queued {
            self.emit(home, &[f], sink);
        }
    }

    /// Tells stand-in `proxy` (anywhere) that its resume failed; it stays a fresh session.
    fn resume_failed(&mut self, proxy: SessionId, reference: Option<&[u8]>, sink: &mut impl Sink) {
        if proxy.shard() != self.cfg.shard {
            let b = &mut self.outbound[proxy.shard() as usize];
            let reference = reference.map(|r| b.push_bytes(&[r]));
            b.records.push(Record::ResumeFailed { proxy, reference });
            return;
        }
        if let Some(s) = self.session_mut(proxy) {
            s.proxy_for = None;
        }
        write_error(
            &mut self.scratch,
            ErrorCode::SessionExpired,
            "that session has ended; join your rooms again with this session",
            reference,
            &[],
        );
        self.count_error(ErrorCode::SessionExpired);
        self.emit_scratch(proxy, sink);
    }

    /// Takes one message from the session's token bucket; false when it is over its rate.
    fn take_token(&mut self, id: SessionId) -> bool {
        let rate = u64::from(self.cfg.limits.messages_per_second);
        if rate == 0 {
            return true;
        }
        let burst = u64::from(self.cfg.limits.message_burst) * 1000;
        let now_ms = self.now_ms;
        let Some(s) = self.session_mut(id) else {
            return false;
        };
        let elapsed = now_ms.saturating_sub(s.tokens_at_ms);
        s.tokens_milli = (s.tokens_milli + elapsed * rate).min(burst);
        s.tokens_at_ms = now_ms;
        if s.tokens_milli >= 1000 {
            s.tokens_milli -= 1000;
            s.violations = 0;
            true
        } else {
            s.violations += 1;
            false
        }
    }

    /// Handles one text message from the connection of session `id`.
    pub fn handle_text(&mut self, id: SessionId, text: &[u8], now_ms: u64, sink: &mut impl Sink) {
        self.now_ms = now_ms;
        let Some(s) = self.session_mut(id) else {
            return;
        };
        s.fresh = false;
        let proxy_for = s.proxy_for;
        match proxy_for {
            Some(home) if home.shard() == self.cfg.shard => self.handle_as(home, id, text, sink),
            Some(home) => {
                let b = &mut self.outbound[home.shard() as usize];
                let text = b.push_bytes(&[text]);
                b.records.push(Record::ClientText {
                    session: home,
                    proxy: id,
                    text,
                });
            }
            None => self.handle_as(id, id, text, sink),
        }
        self.finish_call(sink);
    }

    /// Handles a client frame for session `id` of this shard that arrived on the
    /// connection of `via` (the session itself, or the stand-in that resumed it).
    fn handle_as(&mut self, id: SessionId, via: SessionId, text: &[u8], sink: &mut impl Sink) {
        match self.session(id) {
            Some(s)
                if id == via
                    || s.attach == Attach::Proxy(via)
                    || s.pending_resume.as_ref().is_some_and(|p| p.0 == via) => {}
            _ => return,
        }
        if !self.take_token(id) {
            let violations = self.session(id).map_or(0, |s| s.violations);
            if violations > self.cfg.limits.rate_violations_max {
                // Sustained abuse: drop the connection (the session may still resume).
                if let Some(conn) = self.lookup(via) {
                    sink.close(
                        conn,
                        CLOSE_RATE_LIMITED,
                        "message rate limit exceeded, repeatedly",
                    );
                }
                return;
            }
            self.send_error(
                id,
                ErrorCode::RateLimited,
                "over signal.messages_per_second; slow down",
                None,
                sink,
            );
            return;
        }
        if text.len() > self.cfg.limits.message_bytes_max {
            self.send_error(
                id,
                ErrorCode::TooLarge,
                "the message exceeds signal.message_bytes_max",
                None,
                sink,
            );
            return;
        }
        // The parser's buffers are borrowed by the frame; move it out for the call so the
        // rest of the router stays usable (a pointer move, nothing allocated).
        let mut parser = self.parser.take().expect("handle_text is not re-entered");
        match parser.parse(text) {
            Ok(frame) => {
                if let Some(i) = Kind::ALL.iter().position(|k| *k == frame.kind) {
                    self.counters.frames_in[i] += 1;
                }
                self.dispatch(id, text, &frame, sink);
            }
            Err(FrameError {
                code,
                message,
                reference,
            }) => self.send_error(id, code, message, reference, sink),
        }
        self.parser = Some(parser);
    }

    /// Relays an already-validated targeted frame: the zero-copy path that
    /// [`Router::handle_text`] takes after parsing. Public so benchmarks can measure the relay
    /// apart from JSON validation; the shard never calls it directly.
    #[doc(hidden)]
    pub fn relay_validated(
        &mut self,
        from: SessionId,
        target: SessionId,
        text: &[u8],
        sink: &mut impl Sink,
    ) {
        let from_text = from.encode();
        let prefix = from_prefix(&from_text);
        let rest = &text[after_open_brace(text)..];
        self.counters.relayed += 1;
        self.deliver(target, &[&prefix, rest], Bounce::To(from, None), sink);
    }

    fn dispatch(
        &mut self,
        id: SessionId,
        text: &[u8],
        frame: &ClientFrame<'_>,
        sink: &mut impl Sink,
    ) {
        let reference = frame.reference;
        match frame.kind {
            k if k.is_targeted() => {
                let target = frame.target.unwrap_or_default();
                if let Some(sdp) = frame.sdp {
                    if sdp.len() > self.cfg.limits.sdp_bytes_max {
                        self.send_error(
                            id,
                            ErrorCode::TooLarge,
                            "the sdp exceeds signal.sdp_bytes_max",
                            reference,
                            sink,
                        );
                        return;
                    }
                }
                if let (Some(sdp), true) = (frame.sdp, self.cfg.limits.validate_sdp) {
                    let kind = if frame.kind == Kind::Offer {
                        SdpKind::Offer
                    } else {
                        SdpKind::Answer
                    };
                    let limits = SdpLimits {
                        bytes_max: self.cfg.limits.sdp_bytes_max,
                        lines_max: self.cfg.limits.sdp_lines_max,
                    };
                    if let Err(e) = sdp::validate(sdp, kind, &limits) {
                        // The error path may allocate: it says what was wrong and where.
                        let message = format!("invalid SDP: {e}");
                        let extra = e
                            .line()
                            .map(|l| format!(",\"line\":{l}"))
                            .unwrap_or_default();
                        write_error(
                            &mut self.scratch,
                            ErrorCode::InvalidSdp,
                            &message,
                            reference,
                            extra.as_bytes(),
                        );
                        self.count_error(ErrorCode::InvalidSdp);
                        self.emit_scratch(id, sink);
                        return;
                    }
                }
                let Some(target_id) =
                    SessionId::parse(target.as_bytes()).filter(|t| self.routable(*t))
                else {
                    self.send_unknown_target(id, target.as_bytes(), reference, sink);
                    return;
                };
                let from = id.encode();
                let rest = &text[after_open_brace(text)..];
                let prefix = from_prefix(&from);
                self.counters.relayed += 1;
                self.deliver(target_id, &[&prefix, rest], Bounce::To(id, reference), sink);
            }
            Kind::Join => self.join(id, frame, sink),
            Kind::Leave => {
                let room = frame.room.unwrap_or_default();
                let s = &mut self.sessions[id.slot() as usize];
                let Some(pos) = s.rooms.iter().position(|r| &**r == room) else {
                    self.send_error(
                        id,
                        ErrorCode::NotInRoom,
                        "the session is not a member of that room",
                        reference,
                        sink,
                    );
                    return;
                };
                s.rooms.swap_remove(pos);
                self.leave_at_owner(room, id, true, reference, sink);
            }
            Kind::Broadcast => {
                let room = frame.room.unwrap_or_default();
                if !self.sessions[id.slot() as usize]
                    .rooms
                    .iter()
                    .any(|r| &**r == room)
                {
                    self.send_error(
                        id,
                        ErrorCode::NotInRoom,
                        "broadcast needs membership of the room",
                        reference,
                        sink,
                    );
                    return;
                }
                let from = id.encode();
                let prefix = from_prefix(&from);
                let rest = &text[after_open_brace(text)..];
                let owner = self.room_owner(room);
                if owner == self.cfg.shard {
                    self.fan_out(room, id, &[&prefix, rest], sink);
                } else {
                    let b = &mut self.outbound[owner as usize];
                    let room = b.push_bytes(&[room.as_bytes()]);
                    let frame = b.push_bytes(&[&prefix, rest]);
                    b.records.push(Record::Broadcast {
                        room,
                        from: id,
                        frame,
                    });
                }
            }
            Kind::Ping => {
                let buf = &mut self.scratch;
                buf.clear();
                buf.extend_from_slice(b"{\"type\":\"pong\"");
                push_ref(buf, reference);
                buf.push(b'}');
                self.emit_scratch(id, sink);
            }
            Kind::Resume => self.resume(id, frame, sink),
            _ => unreachable!("every kind is handled above"),
        }
    }

    /// Whether frames for `id` have somewhere to go: a shard of this node, or (in a
    /// cluster) another node.
    fn routable(&self, id: SessionId) -> bool {
        if id.node() == self.cfg.node {
            id.shard() < self.cfg.shards
        } else {
            self.cfg.cluster
        }
    }

    /// A client asks to take over an earlier session (`frame.id`) on this connection.
    fn resume(&mut self, id: SessionId, frame: &ClientFrame<'_>, sink: &mut impl Sink) {
        let reference = frame.reference;
        let target = frame
            .id
            .and_then(|t| SessionId::parse(t.as_bytes()))
            .filter(|t| t.node() == self.cfg.node && t.shard() < self.cfg.shards);
        let valid = target.is_some_and(|old| {
            Some(self.resume_token(old).as_slice()) == frame.resume.map(str::as_bytes)
        });
        let Some(home) = target.filter(|_| valid) else {
            self.send_error(
                id,
                ErrorCode::Unauthorized,
                "the resume token does not match the session id",
                reference,
                sink,
            );
            return;
        };
        let usable = self
            .session(id)
            .is_some_and(|s| s.rooms.is_empty() && s.proxy_for.is_none() && home != id);
        if !usable {
            self.send_error(
                id,
                ErrorCode::BadField,
                "resume must be the first message of a new connection",
                reference,
                sink,
            );
            return;
        }
        if let Some(s) = self.session_mut(id) {
            s.proxy_for = Some(home);
        }
        if home.shard() == self.cfg.shard {
            self.resume_at_home(home, id, reference, sink);
        } else {
            let b = &mut self.outbound[home.shard() as usize];
            let reference = reference.map(|r| b.push_bytes(&[r]));
            b.records.push(Record::ResumeRequest {
                session: home,
                proxy: id,
                reference,
            });
        }
    }

    fn join(&mut self, id: SessionId, frame: &ClientFrame<'_>, sink: &mut impl Sink) {
        let reference = frame.reference;
        let room = frame.room.unwrap_or_default();
        let limits = &self.cfg.limits;
        let refusal = if room.is_empty() || room.len() > limits.room_name_bytes_max {
            Some((
                ErrorCode::BadField,
                "a room name needs 1 to signal.room_name_bytes_max bytes",
            ))
        } else if frame.meta.is_some_and(|m| m.len() > limits.meta_bytes_max) {
            Some((ErrorCode::TooLarge, "meta exceeds signal.meta_bytes_max"))
        } else {
            let rooms = &self.sessions[id.slot() as usize].rooms;
            if rooms.iter().any(|r| &**r == room) {
                Some((
                    ErrorCode::AlreadyInRoom,
                    "the session is already in that room",
                ))
            } else if rooms.len() >= limits.rooms_per_session_max {
                Some((
                    ErrorCode::TooManyRooms,
                    "the session is in signal.rooms_per_session_max rooms already",
                ))
            } else {
                None
            }
        };
        let grant = self.session(id).and_then(|s| s.grant.as_deref());
        let refusal = refusal.or_else(|| {
            grant.filter(|g| !g.may_join(room)).map(|_| {
                (
                    ErrorCode::Unauthorized,
                    "the session's token does not allow this room",
                )
            })
        });
        // An authenticated member's meta carries the token's `sub`, which the client cannot
        // forge: {"sub":…,"app":<the client's meta>}.
        let meta_owned: Option<Vec<u8>> = grant.and_then(|g| g.sub.as_deref()).map(|sub| {
            let mut m = Vec::with_capacity(sub.len() + 16);
            m.extend_from_slice(b"{\"sub\":");
            write_str(&mut m, sub);
            if let Some(app) = frame.meta {
                m.extend_from_slice(b",\"app\":");
                m.extend_from_slice(app);
            }
            m.push(b'}');
            m
        });
        if let Some((code, message)) = refusal {
            self.send_error(id, code, message, reference, sink);
            return;
        }
        let meta = meta_owned.as_deref().or(frame.meta);
        // Record membership at home at once, so a second join or a broadcast right after
        // sees it; the owner sends JoinRefused if it turns the join down.
        self.sessions[id.slot() as usize].rooms.push(room.into());
        let owner = self.room_owner(room);
        if owner == self.cfg.shard {
            self.join_at_owner(room, id, meta, reference, sink);
        } else {
            let b = &mut self.outbound[owner as usize];
            let room = b.push_bytes(&[room.as_bytes()]);
            let meta = meta.map(|m| b.push_bytes(&[m]));
            let reference = reference.map(|r| b.push_bytes(&[r]));
            b.records.push(Record::Join {
                room,
                session: id,
                meta,
                reference,
            });
        }
    }

    /// The owner's half of a join.
    fn join_at_owner(
        &mut self,
        room: &str,
        id: SessionId,
        meta: Option<&[u8]>,
        reference: Option<&[u8]>,
        sink: &mut impl Sink,
    ) {
        let members_max = self.cfg.limits.members_per_room_max;
        let r = self.rooms.entry(room.into()).or_insert_with(|| Room {
            members: Vec::new(),
        });
        if r.members.len() >= members_max || r.members.iter().any(|m| m.id == id) {
            let full = r.members.len() >= members_max;
            if r.members.is_empty() {
                self.rooms.remove(room);
            }
            let mut buf = std::mem::take(&mut self.scratch);
            let (code, message) = if full {
                (
                    ErrorCode::RoomFull,
                    "the room has signal.members_per_room_max members",
                )
            } else {
                (
                    ErrorCode::AlreadyInRoom,
                    "the session is already in that room",
                )
            };
            write_error(&mut buf, code, message, reference, &[]);
            self.count_error(code);
            self.deliver(id, &[&buf], Bounce::Nobody, sink);
            self.scratch = buf;
            if id.shard() == self.cfg.shard {
                self.drop_room_from_session(id, room);
            } else {
                let b = &mut self.outbound[id.shard() as usize];
                let room = b.push_bytes(&[room.as_bytes()]);
                b.records.push(Record::JoinRefused { room, session: id });
            }
            return;
        }
        // Reply `joined` with the current members, then tell each of them.
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(b"{\"type\":\"joined\",\"room\":");
        write_str(&mut buf, room);
        buf.extend_from_slice(b",\"peers\":[");
        for (i, m) in r.members.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            write_peer(&mut buf, m.id, m.meta.as_deref());
        }
        buf.push(b']');
        push_ref(&mut buf, reference);
        buf.push(b'}');
        // Members of other nodes hear of the join from their own node (through the bridge).
        let members = local_members(&r.members, self.cfg.node);
        r.members.push(Member {
            id,
            meta: meta.map(Into::into),
        });
        self.deliver(id, &[&buf], Bounce::Nobody, sink);
        self.scratch = buf;
        self.announce_join(room, id, meta, &members, sink);
        if self.cfg.cluster {
            let b = &mut self.outbound[usize::from(self.cfg.shards)];
            let room = b.push_bytes(&[room.as_bytes()]);
            let meta = meta.map(|m| b.push_bytes(&[m]));
            b.records.push(Record::RemoteJoin {
                room,
                session: id,
                meta,
            });
        }
    }

    /// Sends `peer-joined` for `id` to `members`.
    fn announce_join(
        &mut self,
        room: &str,
        id: SessionId,
        meta: Option<&[u8]>,
        members: &[SessionId],
        sink: &mut impl Sink,
    ) {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(b"{\"type\":\"peer-joined\",\"room\":");
        write_str(&mut buf, room);
        buf.push(b',');
        write_peer_fields(&mut buf, id, meta);
        buf.push(b'}');
        for &m in members {
            self.deliver(m, &[&buf], Bounce::Nobody, sink);
        }
        self.scratch = buf;
    }

    /// The owner's half of a join on another node (cluster): the member is listed in
    /// `joined` replies from now on and this node's members get `peer-joined`. A room
    /// already at `members_per_room_max` does not list it (the limit holds per node).
    fn remote_join(
        &mut self,
        room: &str,
        id: SessionId,
        meta: Option<&[u8]>,
        sink: &mut impl Sink,
    ) {
        if id.node() == self.cfg.node {
            debug_assert!(false, "remote join of a local session");
            return;
        }
        let members_max = self.cfg.limits.members_per_room_max;
        let node = self.cfg.node;
        let r = self.rooms.entry(room.into()).or_insert_with(|| Room {
            members: Vec::new(),
        });
        if r.members.len() >= members_max || r.members.iter().any(|m| m.id == id) {
            return;
        }
        let members = local_members(&r.members, node);
        r.members.push(Member {
            id,
            meta: meta.map(Into::into),
        });
        self.announce_join(room, id, meta, &members, sink);
    }

    fn drop_room_from_session(&mut self, id: SessionId, room: &str) {
        if self.is_live(id) {
            let rooms = &mut self.sessions[id.slot() as usize].rooms;
            if let Some(pos) = rooms.iter().position(|r| &**r == room) {
                rooms.swap_remove(pos);
            }
        }
    }

    /// Sends the leave to the room's owner (possibly this shard).
    fn leave_at_owner(
        &mut self,
        room: &str,
        id: SessionId,
        reply: bool,
        reference: Option<&[u8]>,
        sink: &mut impl Sink,
    ) {
        let owner = self.room_owner(room);
        if owner == self.cfg.shard {
            self.leave_owned(room, id, reply, reference, sink);
        } else {
            let b = &mut self.outbound[owner as usize];
            let room = b.push_bytes(&[room.as_bytes()]);
            let reference = reference.map(|r| b.push_bytes(&[r]));
            b.records.push(Record::Leave {
                room,
                session: id,
                reply,
                reference,
            });
        }
    }

    /// The owner's half of a leave.
    fn leave_owned(
        &mut self,
        room: &str,
        id: SessionId,
        reply: bool,
        reference: Option<&[u8]>,
        sink: &mut impl Sink,
    ) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let Some(pos) = r.members.iter().position(|m| m.id == id) else {
            return;
        };
        // Keep join order for the remaining members' `joined` lists.
        r.members.remove(pos);
        let node = self.cfg.node;
        let members: Vec<SessionId> = r
            .members
            .iter()
            .map(|m| m.id)
            .filter(|m| m.node() == node)
            .collect();
        if r.members.is_empty() {
            self.rooms.remove(room);
        }
        if self.cfg.cluster && id.node() == node {
            let b = &mut self.outbound[usize::from(self.cfg.shards)];
            let room = b.push_bytes(&[room.as_bytes()]);
            b.records.push(Record::RemoteLeave { room, session: id });
        }
        let mut buf = std::mem::take(&mut self.scratch);
        if reply {
            buf.clear();
            buf.extend_from_slice(b"{\"type\":\"left\",\"room\":");
            write_str(&mut buf, room);
            push_ref(&mut buf, reference);
            buf.push(b'}');
            self.deliver(id, &[&buf], Bounce::Nobody, sink);
        }
        buf.clear();
        buf.extend_from_slice(b"{\"type\":\"peer-left\",\"room\":");
        write_str(&mut buf, room);
        buf.extend_from_slice(b",\"id\":\"");
        buf.extend_from_slice(&id.encode());
        buf.extend_from_slice(b"\"}");
        for m in members {
            self.deliver(m, &[&buf], Bounce::Nobody, sink);
        }
        self.scratch = buf;
    }

    /// The owner's half of a broadcast.
    fn fan_out(&mut self, room: &str, from: SessionId, parts: &[&[u8]], sink: &mut impl Sink) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        // The member list is copied so that delivery may touch `self` freely; the copy goes
        // into a buffer the router keeps, so a broadcast allocates nothing once it has grown
        // to the largest room (bounded by members_per_room_max).
        let mut members = std::mem::take(&mut self.fanout);
        members.clear();
        let node = self.cfg.node;
        members.extend(r.members.iter().map(|m| m.id).filter(|m| *m != from));
        if self.cfg.cluster {
            // Members of other nodes get it from their own node: one record to the bridge
            // when a local sender's room has any, and only local members here.
            let remote = members.len();
            members.retain(|m| m.node() == node);
            if remote != members.len() && from.node() == node {
                let b = &mut self.outbound[usize::from(self.cfg.shards)];
                let room = b.push_bytes(&[room.as_bytes()]);
                let frame = b.push_bytes(parts);
                b.records
                    .push(Record::RemoteBroadcast { room, from, frame });
            }
        }
        for &m in &members {
            self.counters.relayed += 1;
            self.deliver(m, parts, Bounce::Nobody, sink);
        }
        self.fanout = members;
    }

    /// Delivers a frame to a session on this shard or batches it for its shard.
    fn deliver(
        &mut self,
        target: SessionId,
        parts: &[&[u8]],
        bounce: Bounce<'_>,
        sink: &mut impl Sink,
    ) {
        if target.shard() == self.cfg.shard && target.node() == self.cfg.node {
            if !self.emit(target, parts, sink) {
                if let Bounce::To(from, reference) = bounce {
                    self.bounce_unknown(from, target, reference, sink);
                }
            }
            return;
        }
        // Another node's session: its node's bridge delivers it (ids of other nodes only
        // get this far with a cluster configured; dispatch refuses them otherwise).
        let dest = if target.node() == self.cfg.node {
            target.shard() as usize
        } else {
            self.bridge()
        };
        let b = &mut self.outbound[dest];
        let frame = b.push_bytes(parts);
        let (from, reference) = match bounce {
            Bounce::To(from, reference) => (Some(from), reference.map(|r| b.push_bytes(&[r]))),
            Bounce::Nobody => (None, None),
        };
        b.records.push(Record::Deliver {
            target,
            frame,
            from,
            reference,
        });
    }

    /// Tells `from` (wherever it lives) that `target` is gone.
    fn bounce_unknown(
        &mut self,
        from: SessionId,
        target: SessionId,
        reference: Option<&[u8]>,
        sink: &mut impl Sink,
    ) {
        let mut buf = std::mem::take(&mut self.scratch);
        write_unknown_target(&mut buf, &target.encode(), reference);
        self.count_error(ErrorCode::UnknownTarget);
        self.deliver(from, &[&buf], Bounce::Nobody, sink);
        self.scratch = buf;
    }

    fn send_unknown_target(
        &mut self,
        to: SessionId,
        target: &[u8],
        reference: Option<&[u8]>,
        sink: &mut impl Sink,
    ) {
        write_unknown_target(&mut self.scratch, target, reference);
        self.count_error(ErrorCode::UnknownTarget);
        self.emit_scratch(to, sink);
    }

    fn count_error(&mut self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.counters.errors[i] += 1;
        }
    }

    fn send_error(
        &mut self,
        to: SessionId,
        code: ErrorCode,
        message: &str,
        reference: Option<&[u8]>,
        sink: &mut impl Sink,
    ) {
        write_error(&mut self.scratch, code, message, reference, &[]);
        self.count_error(code);
        self.emit_scratch(to, sink);
    }

    /// Handles a batch another shard sent.
    pub fn handle_batch(&mut self, batch: &Batch, now_ms: u64, sink: &mut impl Sink) {
        self.now_ms = now_ms;
        for rec in &batch.records {
            match *rec {
                Record::Deliver {
                    target,
                    frame,
                    from,
                    reference,
                } => {
                    if !self.emit(target, &[batch.bytes(frame)], sink) {
                        if let Some(from) = from {
                            let reference = reference.map(|r| batch.bytes(r));
                            self.bounce_unknown(from, target, reference, sink);
                        }
                    }
                }
                Record::Join {
                    room,
                    session,
                    meta,
                    reference,
                } => self.join_at_owner(
                    batch.str(room),
                    session,
                    meta.map(|m| batch.bytes(m)),
                    reference.map(|r| batch.bytes(r)),
                    sink,
                ),
                Record::Leave {
                    room,
                    session,
                    reply,
                    reference,
                } => self.leave_owned(
                    batch.str(room),
                    session,
                    reply,
                    reference.map(|r| batch.bytes(r)),
                    sink,
                ),
                Record::Broadcast { room, from, frame } => {
                    self.fan_out(batch.str(room), from, &[batch.bytes(frame)], sink);
                }
                Record::JoinRefused { room, session } => {
                    self.drop_room_from_session(session, batch.str(room));
                }
                Record::ClientText {
                    session,
                    proxy,
                    text,
                } => self.handle_as(session, proxy, batch.bytes(text), sink),
                Record::ToConn {
                    proxy,
                    session,
                    frame,
                    requeue,
                } => {
                    let conn = self
                        .session(proxy)
                        .filter(|p| p.proxy_for == Some(session))
                        .and_then(|_| self.lookup(proxy));
                    match conn {
                        Some(conn) => sink.send_text(conn, &[batch.bytes(frame)]),
                        None if !requeue => {}
                        None => {
                            let b = &mut self.outbound[session.shard() as usize];
                            let frame = b.push_bytes(&[batch.bytes(frame)]);
                            b.records.push(Record::Requeue {
                                session,
                                proxy,
                                frame,
                            });
                        }
                    }
                }
                Record::Requeue {
                    session,
                    proxy,
                    frame,
                } => {
                    let queue_max = self.cfg.limits.resume_queue_bytes_max;
                    if let Some(s) = self.session_mut(session) {
                        if s.awaiting_requeue == Some(proxy) {
                            let f = batch.bytes(frame);
                            if s.queue_bytes + f.len() > queue_max {
                                self.to_end.push(session);
                            } else {
                                s.queue_bytes += f.len();
                                let at = s.requeue_at;
                                s.queue.insert(at, f.into());
                                s.requeue_at += 1;
                            }
                        }
                    }
                }
                Record::Detach { session, proxy } => {
                    self.home_detach(session, proxy, true, sink);
                }
                Record::DetachAck { proxy, session } => {
                    self.outbound[session.shard() as usize]
                        .records
                        .push(Record::RequeueDone { session, proxy });
                }
                Record::RequeueDone { session, proxy } => {
                    let pending = match self.session_mut(session) {
                        Some(s) if s.awaiting_requeue == Some(proxy) => {
                            s.awaiting_requeue = None;
                            s.pending_resume.take()
                        }
                        _ => None,
                    };
                    if let Some((new_proxy, reference)) = pending {
                        self.resume_at_home(session, new_proxy, reference.as_deref(), sink);
                    }
                }
                Record::ResumeRequest {
                    session,
                    proxy,
                    reference,
                } => self.resume_at_home(session, proxy, reference.map(|r| batch.bytes(r)), sink),
                Record::ResumeFailed { proxy, reference } => {
                    self.resume_failed(proxy, reference.map(|r| batch.bytes(r)), sink);
                }
                Record::RemoteJoin {
                    room,
                    session,
                    meta,
                } => self.remote_join(batch.str(room), session, meta.map(|m| batch.bytes(m)), sink),
                Record::RemoteLeave { room, session } => {
                    if session.node() != self.cfg.node {
                        self.leave_owned(batch.str(room), session, false, None, sink);
                    }
                }
                Record::RemoteBroadcast { room, from, frame } => {
                    if from.node() != self.cfg.node {
                        self.fan_out(batch.str(room), from, &[batch.bytes(frame)], sink);
                    }
                }
                Record::Kick { proxy, session } => {
                    self.kick(proxy, session, sink);
                    // Frames sent to the stand-in before the kick were delivered or bounced
                    // ahead of this record.
                    self.outbound[session.shard() as usize]
                        .records
                        .push(Record::RequeueDone { session, proxy });
                }
            }
        }
        self.finish_call(sink);
    }

    /// Takes the batch gathered for shard `dest`, leaving an empty one.
    pub fn take_batch(&mut self, dest: u8) -> Option<Batch> {
        let b = &mut self.outbound[dest as usize];
        if b.is_empty() {
            return None;
        }
        Some(std::mem::take(b))
    }

    /// Whether any outbound batch holds records.
    #[must_use]
    pub fn has_outbound(&self) -> bool {
        self.outbound.iter().any(|b| !b.is_empty())
    }
}

/// The room-name hasher every shard of a node (and its bridge) builds from the same seeds.
#[must_use]
pub fn room_hasher(seeds: [u64; 4]) -> ahash::RandomState {
    ahash::RandomState::with_seeds(seeds[0], seeds[1], seeds[2], seeds[3])
}

/// The shard of `shards` that owns `room`.
#[must_use]
pub fn room_owner(hasher: &ahash::RandomState, shards: u8, room: &str) -> u8 {
    (hasher.hash_one(room) % u64::from(shards)) as u8
}

/// `{"from":"<id>",` — what goes in front of the relayed bytes.
fn from_prefix(from: &[u8; ID_TEXT_LEN]) -> [u8; ID_TEXT_LEN + 11] {
    let mut p = [0u8; ID_TEXT_LEN + 11];
    p[..9].copy_from_slice(b"{\"from\":\"");
    p[9..9 + ID_TEXT_LEN].copy_from_slice(from);
    p[9 + ID_TEXT_LEN..].copy_from_slice(b"\",");
    p
}

fn push_ref(buf: &mut Vec<u8>, reference: Option<&[u8]>) {
    if let Some(r) = reference {
        buf.extend_from_slice(b",\"ref\":");
        buf.extend_from_slice(r);
    }
}

fn write_peer_fields(buf: &mut Vec<u8>, id: SessionId, meta: Option<&[u8]>) {
    buf.extend_from_slice(b"\"id\":\"");
    buf.extend_from_slice(&id.encode());
    buf.push(b'"');
    if let Some(meta) = meta {
        buf.extend_from_slice(b",\"meta\":");
        buf.extend_from_slice(meta);
    }
}

fn write_peer(buf: &mut Vec<u8>, id: SessionId, meta: Option<&[u8]>) {
    buf.push(b'{');
    write_peer_fields(buf, id, meta);
    buf.push(b'}');
}

/// Writes an `error` frame; `extra` is appended raw before the closing brace.
fn write_error(
    buf: &mut Vec<u8>,
    code: ErrorCode,
    message: &str,
    reference: Option<&[u8]>,
    extra: &[u8],
) {
    buf.clear();
    buf.extend_from_slice(b"{\"type\":\"error\",\"code\":\"");
    buf.extend_from_slice(code.as_str().as_bytes());
    buf.extend_from_slice(b"\",\"message\":");
    write_str(buf, message);
    push_ref(buf, reference);
    buf.extend_from_slice(extra);
    buf.push(b'}');
}

fn write_unknown_target(buf: &mut Vec<u8>, target: &[u8], reference: Option<&[u8]>) {
    let mut extra = Vec::with_capacity(target.len() + 16);
    extra.extend_from_slice(b",\"target\":");
    write_str(&mut extra, &String::from_utf8_lossy(target));
    write_error(
        buf,
        ErrorCode::UnknownTarget,
        "no session has that id",
        reference,
        &extra,
    );
}
