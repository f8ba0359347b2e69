//! The sans-IO half of the cluster bridge: what crosses between nodes, and the mirror of
//! room members on other nodes.
//!
//! Each node runs one bridge thread (`server::cluster`) that owns a [`Bridge`] and does the
//! I/O: it feeds the bridge every [`Batch`] the shards sent it and every message that came
//! from Redis, and carries out what the bridge asks for. Driving it:
//!
//! 1. For each batch a shard pushed onto its ring to the bridge, call
//!    [`Bridge::handle_shard_batch`]. Records for sessions of other nodes become messages
//!    for those nodes' channels; room events become messages for every node plus changes
//!    to this node's member sets in Redis.
//! 2. For each message from Redis, call [`Bridge::handle_message`]. Its records are split
//!    into one batch per shard of this node (a relay goes to the target's shard, a room
//!    event to the room's owner shard).
//! 3. After a reconnect, read every other node's member sets and pass them to
//!    [`Bridge::resync`]: members that appeared or vanished meanwhile become
//!    `peer-joined`/`peer-left` on this node.
//! 4. When another node's heartbeat has been missing for the resume grace period, call
//!    [`Bridge::forget_node`]: its members leave their rooms here.
//! 5. Drain [`Bridge::take_publish`], [`Bridge::take_store`] and [`Bridge::take_batch`].
//!
//! Frames keep their order per sender: the records of one shard's ring are published in
//! ring order over one Redis connection, Redis delivers a publisher's messages in order to
//! each subscriber, and the receiving bridge pushes them onto one ring per shard in order.

use std::collections::HashMap;

use super::id::SessionId;
use super::router::{room_owner, Batch, Record, Span};

/// Where a published message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// One node's channel: relays and broadcasts for its sessions.
    Node(u16),
    /// Every node's: room membership events.
    All,
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Where it goes.
    pub channel: Channel,
    /// The encoded message.
    pub bytes: Vec<u8>,
    /// Records it carries (what is lost if it cannot be published).
    pub records: u32,
}

/// A change to this node's member sets in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// `session` joined `room` with `meta`.
    Add {
        /// Room name.
        room: Box<str>,
        /// The local member.
        session: SessionId,
        /// Its `meta` JSON, if any.
        meta: Option<Box<[u8]>>,
    },
    /// `session` left `room`.
    Remove {
        /// Room name.
        room: Box<str>,
        /// The local member.
        session: SessionId,
    },
}

/// A message that did not decode (a node running another version, or a stray publisher).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The version byte is not ours.
    #[error("unknown cluster message version {0}")]
    Version(u8),
    /// The message ends inside a record.
    #[error("cluster message truncated at byte {0}")]
    Truncated(usize),
    /// A record tag we do not know.
    #[error("unknown cluster record tag {tag} at byte {at}")]
    Tag {
        /// The tag.
        tag: u8,
        /// Where.
        at: usize,
    },
    /// A room name that is not UTF-8.
    #[error("room name at byte {0} is not UTF-8")]
    RoomName(usize),
}

/// Version byte that starts every message.
pub const WIRE_VERSION: u8 = 1;

const TAG_DELIVER: u8 = 1;
const TAG_JOIN: u8 = 2;
const TAG_LEAVE: u8 = 3;
const TAG_BROADCAST: u8 = 4;
const TAG_HELLO: u8 = 5;

/// What a decoded message asks of this node.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Records were queued for this node's shards.
    Records,
    /// Another node (re)connected and rewrote its member sets: read them again.
    Hello {
        /// The node.
        node: u16,
    },
    /// The message was this node's own (the all-nodes channel echoes it).
    Own,
}

/// Counters of the bridge's sans-IO half.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeCounters {
    /// Records published to other nodes.
    pub records_out: u64,
    /// Records received from other nodes and passed to shards.
    pub records_in: u64,
    /// Messages that did not decode.
    pub bad_messages: u64,
    /// Records for a session of this node whose shard does not exist.
    pub misrouted: u64,
    /// Remote room members not mirrored because `remote_members_max` was reached.
    pub remote_members_refused: u64,
}

type Members = HashMap<SessionId, Option<Box<[u8]>>, ahash::RandomState>;

/// The cluster bridge's state: see the module docs.
pub struct Bridge {
    node: u16,
    shards: u8,
    hasher: ahash::RandomState,
    /// Members of this node, by room: what this node writes (again) into Redis.
    local: HashMap<Box<str>, Members, ahash::RandomState>,
    /// Members of other nodes, by room: the mirror `joined` lists and broadcasts use.
    remote: HashMap<Box<str>, Members, ahash::RandomState>,
    remote_members: usize,
    remote_members_max: usize,
    publish: Vec<Outgoing>,
    store: Vec<StoreOp>,
    inbound: Vec<Batch>,
    /// Scratch: message under construction per channel for the current batch.
    building: Vec<Outgoing>,
    counters: BridgeCounters,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("node", &self.node)
            .field("local_rooms", &self.local.len())
            .field("remote_members", &self.remote_members)
            .finish_non_exhaustive()
    }
}

impl Bridge {
    /// A bridge for node `node` with `shards` shards whose rooms hash with `room_hasher`
    /// (the same seeds as the shards' routers); it mirrors at most `remote_members_max`
    /// members of other nodes.
    #[must_use]
    pub fn new(
        node: u16,
        shards: u8,
        room_hasher: ahash::RandomState,
        remote_members_max: usize,
    ) -> Self {
        assert!(shards >= 1, "a node has at least one shard");
        Bridge {
            node,
            shards,
            hasher: room_hasher,
            local: HashMap::default(),
            remote: HashMap::default(),
            remote_members: 0,
            remote_members_max,
            publish: Vec::new(),
            store: Vec::new(),
            inbound: (0..shards).map(|_| Batch::default()).collect(),
            building: Vec::new(),
            counters: BridgeCounters::default(),
        }
    }

    /// The counters so far.
    #[must_use]
    pub fn counters(&self) -> &BridgeCounters {
        &self.counters
    }

    /// Members of other nodes mirrored here.
    #[must_use]
    pub fn remote_member_count(&self) -> usize {
        self.remote_members
    }

    /// This node's members, by room (to write them into Redis again after a reconnect, and
    /// to refresh their TTL).
    pub fn local_rooms(&self) -> impl Iterator<Item = (&str, &Members)> {
        self.local.iter().map(|(r, m)| (&**r, m))
    }

    /// The nodes that hold members of `room`, besides this one.
    fn nodes_of(&self, room: &str, into: &mut Vec<u16>) {
        into.clear();
        if let Some(m) = self.remote.get(room) {
            for id in m.keys() {
                if !into.contains(&id.node()) {
                    into.push(id.node());
                }
            }
        }
    }

    /// The message being built for `channel` in this batch.
    fn message(&mut self, channel: Channel) -> &mut Vec<u8> {
        let i = match self.building.iter().position(|o| o.channel == channel) {
            Some(i) => i,
            None => {
                let mut bytes = Vec::with_capacity(256);
                bytes.push(WIRE_VERSION);
                bytes.extend_from_slice(&self.node.to_le_bytes());
                self.building.push(Outgoing {
                    channel,
                    bytes,
                    records: 0,
                });
                self.building.len() - 1
            }
        };
        let o = &mut self.building[i];
        o.records += 1;
        &mut o.bytes
    }

    /// Takes in one batch a shard sent to the bridge (step 1).
    pub fn handle_shard_batch(&mut self, batch: &Batch) {
        let mut nodes = Vec::new();
        for rec in &batch.records {
            match *rec {
                Record::Deliver {
                    target,
                    frame,
                    from,
                    reference,
                } => {
                    if target.node() == self.node {
                        debug_assert!(false, "a local delivery reached the bridge");
                        self.counters.misrouted += 1;
                        continue;
                    }
                    let m = self.message(Channel::Node(target.node()));
                    m.push(TAG_DELIVER);
                    put_u64(m, target.to_u64());
                    put_bytes(m, batch.bytes(frame));
                    put_opt_u64(m, from.map(SessionId::to_u64));
                    put_opt_bytes(m, reference.map(|r| batch.bytes(r)));
                    self.counters.records_out += 1;
                }
                Record::RemoteJoin {
                    room,
                    session,
                    meta,
                } => {
                    let name = batch_str(batch, room);
                    let meta = meta.map(|m| batch.bytes(m));
                    self.local
                        .entry(name.into())
                        .or_default()
                        .insert(session, meta.map(Into::into));
                    self.store.push(StoreOp::Add {
                        room: name.into(),
                        session,
                        meta: meta.map(Into::into),
                    });
                    let m = self.message(Channel::All);
                    m.push(TAG_JOIN);
                    put_bytes(m, name.as_bytes());
                    put_u64(m, session.to_u64());
                    put_opt_bytes(m, meta);
                    self.counters.records_out += 1;
                }
                Record::RemoteLeave { room, session } => {
                    let name = batch_str(batch, room);
                    if let Some(members) = self.local.get_mut(name) {
                        members.remove(&session);
                        if members.is_empty() {
                            self.local.remove(name);
                        }
                    }
                    self.store.push(StoreOp::Remove {
                        room: name.into(),
                        session,
                    });
                    let m = self.message(Channel::All);
                    m.push(TAG_LEAVE);
                    put_bytes(m, name.as_bytes());
                    put_u64(m, session.to_u64());
                    self.counters.records_out += 1;
                }
                Record::RemoteBroadcast { room, from, frame } => {
                    let name = batch_str(batch, room);
                    self.nodes_of(name, &mut nodes);
                    for &n in &nodes {
                        let m = self.message(Channel::Node(n));
                        m.push(TAG_BROADCAST);
                        put_bytes(m, name.as_bytes());
                        put_u64(m, from.to_u64());
                        put_bytes(m, batch.bytes(frame));
                        self.counters.records_out += 1;
                    }
                }
                _ => {
                    // Other records never leave a node (resume across nodes is not carried
                    // by the bridge yet).
                    self.counters.misrouted += 1;
                }
            }
        }
        self.publish.append(&mut self.building);
    }

    /// The message that tells every node to read this node's member sets again.
    #[must_use]
    pub fn hello(&self) -> Vec<u8> {
        let mut m = vec![WIRE_VERSION];
        m.extend_from_slice(&self.node.to_le_bytes());
        m.push(TAG_HELLO);
        m
    }

    /// Takes in one message from Redis (step 2).
    ///
    /// # Errors
    /// The message does not decode; nothing of it was applied.
    pub fn handle_message(&mut self, msg: &[u8]) -> Result<Inbound, WireError> {
        let r = self.decode(msg);
        if r.is_err() {
            self.counters.bad_messages += 1;
        }
        r
    }

    fn decode(&mut self, msg: &[u8]) -> Result<Inbound, WireError> {
        let mut rd = Reader { buf: msg, at: 0 };
        let version = rd.u8()?;
        if version != WIRE_VERSION {
            return Err(WireError::Version(version));
        }
        let origin = u16::from_le_bytes([rd.u8()?, rd.u8()?]);
        if origin == self.node {
            return Ok(Inbound::Own);
        }
        // Decode the whole message before applying any of it, so a bad one changes nothing.
        let mut recs: Vec<Rec<'_>> = Vec::new();
        while rd.at < msg.len() {
            let at = rd.at;
            let tag = rd.u8()?;
            let rec = match tag {
                TAG_DELIVER => Rec::Deliver {
                    target: SessionId::from_u64(rd.u64()?),
                    frame: rd.bytes()?,
                    from: rd.opt_u64()?.map(SessionId::from_u64),
                    reference: rd.opt_bytes()?,
                },
                TAG_JOIN => Rec::Join {
                    room: rd.room()?,
                    session: SessionId::from_u64(rd.u64()?),
                    meta: rd.opt_bytes()?,
                },
                TAG_LEAVE => Rec::Leave {
                    room: rd.room()?,
                    session: SessionId::from_u64(rd.u64()?),
                },
                TAG_BROADCAST => Rec::Broadcast {
                    room: rd.room()?,
                    from: SessionId::from_u64(rd.u64()?),
                    frame: rd.bytes()?,
                },
                TAG_HELLO => return Ok(Inbound::Hello { node: origin }),
                tag => return Err(WireError::Tag { tag, at }),
            };
            recs.push(rec);
        }
        for rec in recs {
            match rec {
                Rec::Deliver {
                    target,
                    frame,
                    from,
                    reference,
                } => {
                    if target.node() != self.node || target.shard() >= self.shards {
                        self.counters.misrouted += 1;
                        continue;
                    }
                    let b = &mut self.inbound[usize::from(target.shard())];
                    let frame = b.push_bytes(&[frame]);
                    let reference = reference.map(|r| b.push_bytes(&[r]));
                    b.records.push(Record::Deliver {
                        target,
                        frame,
                        from,
                        reference,
                    });
                }
                Rec::Join {
                    room,
                    session,
                    meta,
                } => self.add_remote(room, session, meta),
                Rec::Leave { room, session } => self.remove_remote(room, session),
                Rec::Broadcast { room, from, frame } => {
                    let b = self.owner_batch(room);
                    let room = b.push_bytes(&[room.as_bytes()]);
                    let frame = b.push_bytes(&[frame]);
                    b.records
                        .push(Record::RemoteBroadcast { room, from, frame });
                }
            }
            self.counters.records_in += 1;
        }
        Ok(Inbound::Records)
    }

    fn owner_batch(&mut self, room: &str) -> &mut Batch {
        let owner = room_owner(&self.hasher, self.shards, room);
        &mut self.inbound[usize::from(owner)]
    }

    fn add_remote(&mut self, room: &str, session: SessionId, meta: Option<&[u8]>) {
        if session.node() == self.node {
            return;
        }
        let known = self
            .remote
            .get(room)
            .is_some_and(|m| m.contains_key(&session));
        if known {
            return;
        }
        if self.remote_members >= self.remote_members_max {
            self.counters.remote_members_refused += 1;
            return;
        }
        self.remote
            .entry(room.into())
            .or_default()
            .insert(session, meta.map(Into::into));
        self.remote_members += 1;
        let b = self.owner_batch(room);
        let room = b.push_bytes(&[room.as_bytes()]);
        let meta = meta.map(|m| b.push_bytes(&[m]));
        b.records.push(Record::RemoteJoin {
            room,
            session,
            meta,
        });
    }

    fn remove_remote(&mut self, room: &str, session: SessionId) {
        let Some(members) = self.remote.get_mut(room) else {
            return;
        };
        if members.remove(&session).is_none() {
            return;
        }
        if members.is_empty() {
            self.remote.remove(room);
        }
        self.remote_members -= 1;
        let b = self.owner_batch(room);
        let room = b.push_bytes(&[room.as_bytes()]);
        b.records.push(Record::RemoteLeave { room, session });
    }

    /// Replaces the mirror of `node`'s members with what Redis holds now (step 3): members
    /// that appeared join, members that vanished leave. `rooms` lists `(room, session,
    /// meta)` of that node; sessions of other nodes in it are ignored.
    pub fn resync_node(&mut self, node: u16, rooms: &[(String, SessionId, Option<Vec<u8>>)]) {
        if node == self.node {
            return;
        }
        // A set of what Redis holds, so the comparison stays linear in the members.
        let present: std::collections::HashSet<(&str, SessionId), ahash::RandomState> =
            rooms.iter().map(|(r, s, _)| (r.as_str(), *s)).collect();
        let mut gone: Vec<(Box<str>, SessionId)> = Vec::new();
        for (room, members) in &self.remote {
            for id in members.keys() {
                if id.node() == node && !present.contains(&(&**room, *id)) {
                    gone.push((room.clone(), *id));
                }
            }
        }
        for (room, id) in gone {
            self.remove_remote(&room, id);
        }
        for (room, id, meta) in rooms {
            if id.node() == node {
                self.add_remote(room, *id, meta.as_deref());
            }
        }
    }

    /// The nodes that have members mirrored here.
    #[must_use]
    pub fn remote_nodes(&self) -> Vec<u16> {
        let mut out: Vec<u16> = Vec::new();
        for members in self.remote.values() {
            for id in members.keys() {
                if !out.contains(&id.node()) {
                    out.push(id.node());
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// `node` is gone for good (step 4): its members leave every room here.
    pub fn forget_node(&mut self, node: u16) {
        self.resync_node(node, &[]);
    }

    /// Messages to publish, in order.
    pub fn take_publish(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.publish)
    }

    /// Changes to this node's member sets, in order.
    pub fn take_store(&mut self) -> Vec<StoreOp> {
        std::mem::take(&mut self.store)
    }

    /// The batch gathered for shard `dest`, if it holds records.
    pub fn take_batch(&mut self, dest: u8) -> Option<Batch> {
        let b = &mut self.inbound[usize::from(dest)];
        if b.is_empty() {
            return None;
        }
        Some(std::mem::take(b))
    }
}

/// A decoded record, borrowing the message.
enum Rec<'a> {
    Deliver {
        target: SessionId,
        frame: &'a [u8],
        from: Option<SessionId>,
        reference: Option<&'a [u8]>,
    },
    Join {
        room: &'a str,
        session: SessionId,
        meta: Option<&'a [u8]>,
    },
    Leave {
        room: &'a str,
        session: SessionId,
    },
    Broadcast {
        room: &'a str,
        from: SessionId,
        frame: &'a [u8],
    },
}

fn batch_str(batch: &Batch, span: Span) -> &str {
    // Room names in batches come from parsed JSON strings: always UTF-8.
    std::str::from_utf8(batch.bytes(span)).unwrap_or("")
}

fn put_u64(m: &mut Vec<u8>, v: u64) {
    m.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(m: &mut Vec<u8>, b: &[u8]) {
    // Frames are bounded by signal.message_bytes_max, far below 4 GiB.
    m.extend_from_slice(&(b.len() as u32).to_le_bytes());
    m.extend_from_slice(b);
}

fn put_opt_u64(m: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            m.push(1);
            put_u64(m, v);
        }
        None => m.push(0),
    }
}

fn put_opt_bytes(m: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            m.push(1);
            put_bytes(m, b);
        }
        None => m.push(0),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(WireError::Truncated(self.at))?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let b = self.take(4)?;
        let n = u32::from_le_bytes(b.try_into().expect("4 bytes"));
        self.take(n as usize)
    }

    fn room(&mut self) -> Result<&'a str, WireError> {
        let at = self.at;
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| WireError::RoomName(at))
    }

    fn opt_u64(&mut self) -> Result<Option<u64>, WireError> {
        match self.u8()? {
            0 => Ok(None),
            _ => self.u64().map(Some),
        }
    }

    fn opt_bytes(&mut self) -> Result<Option<&'a [u8]>, WireError> {
        match self.u8()? {
            0 => Ok(None),
            _ => self.bytes().map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(node: u16, shard: u8, slot: u32) -> SessionId {
        SessionId::new(node, shard, slot, 0)
    }

    fn bridge(node: u16) -> Bridge {
        Bridge::new(node, 2, super::super::room_hasher([1, 2, 3, 4]), 100)
    }

    #[test]
    fn a_relay_crosses_to_the_target_shard_in_order() {
        let mut a = bridge(1);
        let mut b = bridge(2);
        let mut batch = Batch::default();
        for i in 0..3u8 {
            let frame = batch.push_bytes(&[b"{\"from\":\"x\",\"n\":", &[b'0' + i], b"}"]);
            batch.records.push(Record::Deliver {
                target: id(2, 1, 7),
                frame,
                from: Some(id(1, 0, 3)),
                reference: None,
            });
        }
        a.handle_shard_batch(&batch);
        let out = a.take_publish();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].channel, Channel::Node(2));
        assert_eq!(b.handle_message(&out[0].bytes), Ok(Inbound::Records));
        assert!(b.take_batch(0).is_none());
        let got = b.take_batch(1).unwrap();
        let frames: Vec<&[u8]> = got
            .records
            .iter()
            .map(|r| match r {
                Record::Deliver { frame, from, .. } => {
                    assert_eq!(*from, Some(id(1, 0, 3)));
                    got.bytes(*frame)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            frames,
            [
                &b"{\"from\":\"x\",\"n\":0}"[..],
                b"{\"from\":\"x\",\"n\":1}",
                b"{\"from\":\"x\",\"n\":2}"
            ]
        );
        // Its own echo on the all-nodes channel is ignored.
        assert_eq!(a.handle_message(&out[0].bytes), Ok(Inbound::Own));
    }

    #[test]
    fn room_events_mirror_members_and_broadcasts_reach_only_their_nodes() {
        let mut a = bridge(1);
        let mut b = bridge(2);
        let mut batch = Batch::default();
        let room = batch.push_bytes(&[b"r"]);
        let meta = batch.push_bytes(&[b"{\"n\":1}"]);
        batch.records.push(Record::RemoteJoin {
            room,
            session: id(2, 0, 1),
            meta: Some(meta),
        });
        b.handle_shard_batch(&batch);
        assert_eq!(
            b.take_store(),
            [StoreOp::Add {
                room: "r".into(),
                session: id(2, 0, 1),
                meta: Some(b"{\"n\":1}"[..].into())
            }]
        );
        let out = b.take_publish();
        assert_eq!(out[0].channel, Channel::All);
        a.handle_message(&out[0].bytes).unwrap();
        assert_eq!(a.remote_member_count(), 1);
        let owner = room_owner(&a.hasher, 2, "r");
        let got = a.take_batch(owner).unwrap();
        assert!(
            matches!(got.records[0], Record::RemoteJoin { session, .. } if session == id(2, 0, 1))
        );
        // The same join again (a resync) changes nothing.
        a.handle_message(&out[0].bytes).unwrap();
        assert!(a.take_batch(owner).is_none());

        // A broadcast from node 1 in room r goes to node 2 only; in room s, nowhere.
        let mut batch = Batch::default();
        for name in [&b"r"[..], b"s"] {
            let room = batch.push_bytes(&[name]);
            let frame = batch.push_bytes(&[b"{}"]);
            batch.records.push(Record::RemoteBroadcast {
                room,
                from: id(1, 0, 0),
                frame,
            });
        }
        a.handle_shard_batch(&batch);
        let out = a.take_publish();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].channel, Channel::Node(2));

        // Node 2 vanishes: its member leaves.
        a.forget_node(2);
        assert_eq!(a.remote_member_count(), 0);
        let got = a.take_batch(owner).unwrap();
        assert!(matches!(got.records[0], Record::RemoteLeave { .. }));
    }

    #[test]
    fn resync_adds_and_removes_by_difference() {
        let mut a = bridge(1);
        a.resync_node(
            3,
            &[
                ("r".into(), id(3, 0, 1), None),
                ("r".into(), id(3, 0, 2), None),
            ],
        );
        assert_eq!(a.remote_member_count(), 2);
        let owner = room_owner(&a.hasher, 2, "r");
        assert_eq!(a.take_batch(owner).unwrap().records.len(), 2);
        a.resync_node(3, &[("r".into(), id(3, 0, 2), None)]);
        assert_eq!(a.remote_member_count(), 1);
        let got = a.take_batch(owner).unwrap();
        assert_eq!(got.records.len(), 1);
        assert!(
            matches!(got.records[0], Record::RemoteLeave { session, .. } if session == id(3, 0, 1))
        );
        assert_eq!(a.remote_nodes(), [3]);
    }

    #[test]
    fn bad_messages_are_refused_whole() {
        let mut a = bridge(1);
        assert_eq!(a.handle_message(&[9]), Err(WireError::Version(9)));
        assert_eq!(
            a.handle_message(&[WIRE_VERSION, 2, 0, TAG_DELIVER, 1]),
            Err(WireError::Truncated(4))
        );
        assert_eq!(
            a.handle_message(&[WIRE_VERSION, 2, 0, 77]),
            Err(WireError::Tag { tag: 77, at: 3 })
        );
        assert_eq!(a.counters().bad_messages, 3);
        assert_eq!(a.handle_message(&a.hello()), Ok(Inbound::Own));
        let b = bridge(2);
        assert_eq!(a.handle_message(&b.hello()), Ok(Inbound::Hello { node: 2 }));
    }

    #[test]
    fn remote_members_are_bounded() {
        let mut a = Bridge::new(1, 1, super::super::room_hasher([0; 4]), 1);
        a.resync_node(
            2,
            &[
                ("r".into(), id(2, 0, 1), None),
                ("r".into(), id(2, 0, 2), None),
            ],
        );
        assert_eq!(a.remote_member_count(), 1);
        assert_eq!(a.counters().remote_members_refused, 1);
    }

    /// Two nodes of one shard each, their routers wired through two bridges in memory
    /// (Redis pub/sub replaced by handing every message to the other bridge).
    struct Pair {
        routers: [super::super::Router; 2],
        bridges: [Bridge; 2],
        sink: Frames,
    }

    #[derive(Default)]
    struct Frames(Vec<(u32, String)>);

    impl super::super::Sink for Frames {
        fn send_text(&mut self, conn: u32, parts: &[&[u8]]) {
            let bytes: Vec<u8> = parts.concat();
            self.0.push((conn, String::from_utf8(bytes).unwrap()));
        }
        fn close(&mut self, _conn: u32, _code: u16, _reason: &str) {}
    }

    impl Pair {
        fn new() -> Pair {
            let router = |node| {
                super::super::Router::new(super::super::Config {
                    node,
                    shard: 0,
                    shards: 1,
                    limits: super::super::Limits::default(),
                    ice_servers_json: "[]".into(),
                    heartbeat_ms: 1000,
                    secret: [1; 32],
                    room_hash_seeds: [1, 2, 3, 4],
                    turn: None,
                    cluster: true,
                })
            };
            let bridge = |node| Bridge::new(node, 1, super::super::room_hasher([1, 2, 3, 4]), 100);
            Pair {
                routers: [router(1), router(2)],
                bridges: [bridge(1), bridge(2)],
                sink: Frames::default(),
            }
        }

        /// Moves everything in flight until nothing moves.
        fn settle(&mut self) {
            for _ in 0..10 {
                for i in 0..2 {
                    if let Some(b) = self.routers[i].take_batch(1) {
                        self.bridges[i].handle_shard_batch(&b);
                    }
                    for o in self.bridges[i].take_publish() {
                        for j in 0..2 {
                            self.bridges[j].handle_message(&o.bytes).unwrap();
                        }
                    }
                }
                for i in 0..2 {
                    if let Some(b) = self.bridges[i].take_batch(0) {
                        self.routers[i].handle_batch(&b, 0, &mut self.sink);
                    }
                }
            }
        }

        fn take(&mut self, conn: u32) -> Vec<String> {
            let (mine, rest) = std::mem::take(&mut self.sink.0)
                .into_iter()
                .partition(|(c, _)| *c == conn);
            self.sink.0 = rest;
            mine.into_iter().map(|(_, f)| f).collect()
        }
    }

    #[test]
    fn routers_of_two_nodes_share_a_room_through_their_bridges() {
        let mut p = Pair::new();
        // conn 10 on node 1, conn 20 on node 2.
        let a = p.routers[0].open(10, &mut p.sink).unwrap();
        let b = p.routers[1].open(20, &mut p.sink).unwrap();
        let (a_text, b_text) = (
            String::from_utf8(a.encode().to_vec()).unwrap(),
            String::from_utf8(b.encode().to_vec()).unwrap(),
        );
        p.take(10);
        p.take(20);
        p.routers[0].handle_text(a, br#"{"type":"join","room":"r"}"#, 0, &mut p.sink);
        p.settle();
        assert_eq!(p.take(10), [r#"{"type":"joined","room":"r","peers":[]}"#]);
        p.routers[1].handle_text(b, br#"{"type":"join","room":"r","meta":1}"#, 0, &mut p.sink);
        p.settle();
        assert_eq!(
            p.take(20),
            [format!(
                r#"{{"type":"joined","room":"r","peers":[{{"id":"{a_text}"}}]}}"#
            )]
        );
        assert_eq!(
            p.take(10),
            [format!(
                r#"{{"type":"peer-joined","room":"r","id":"{b_text}","meta":1}}"#
            )]
        );
        // A relay across nodes, with from in front, and a broadcast.
        let msg = format!(r#"{{"type":"message","target":"{b_text}","data":7}}"#);
        p.routers[0].handle_text(a, msg.as_bytes(), 0, &mut p.sink);
        p.routers[0].handle_text(
            a,
            br#"{"type":"broadcast","room":"r","x":1}"#,
            0,
            &mut p.sink,
        );
        p.settle();
        assert_eq!(
            p.take(20),
            [
                format!(r#"{{"from":"{a_text}","type":"message","target":"{b_text}","data":7}}"#),
                format!(r#"{{"from":"{a_text}","type":"broadcast","room":"r","x":1}}"#),
            ]
        );
        assert!(
            p.take(10).is_empty(),
            "a sender does not hear its broadcast"
        );
        // The session on node 2 ends: node 1's member hears peer-left, and a relay to it
        // comes back as unknown-target.
        p.routers[1].close(b, &mut p.sink);
        p.settle();
        assert_eq!(
            p.take(10),
            [format!(
                r#"{{"type":"peer-left","room":"r","id":"{b_text}"}}"#
            )]
        );
        p.routers[0].handle_text(a, msg.as_bytes(), 0, &mut p.sink);
        p.settle();
        let e = p.take(10);
        assert!(e[0].contains("unknown-target"), "{e:?}");
        assert_eq!(p.bridges[0].remote_member_count(), 0);
        // a is still in the room, so node 2 still mirrors it.
        assert_eq!(p.bridges[1].remote_member_count(), 1);
    }
}
