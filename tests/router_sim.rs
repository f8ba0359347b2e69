//! Sans-IO scenario: several shards' routers exchanging batches in a simulated mesh, no
//! sockets and no clock. 10 000 sessions join, relay, broadcast, leave and close in random
//! order; after every delivery round the invariants are checked:
//! - no frame ever reaches a connection whose session has closed (stale ids are detected);
//! - each member's view of a room (from `joined`, `peer-joined`, `peer-left`) equals the
//!   owner's member list, so every `peer-joined` is matched by a `peer-left`;
//! - when every session has closed, every table is empty.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;
use switchboard::proto::signal::{Config, ConnToken, Limits, Router, SessionId, Sink};

const SHARDS: u8 = 3;
const SESSIONS: usize = 10_000;
const ROOMS: usize = 300;

/// xorshift64*: deterministic, so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Default)]
struct Recorder {
    frames: Vec<(ConnToken, String)>,
    closes: Vec<(ConnToken, u16)>,
}

impl Sink for Recorder {
    fn send_text(&mut self, conn: ConnToken, parts: &[&[u8]]) {
        let mut text = Vec::new();
        for p in parts {
            text.extend_from_slice(p);
        }
        self.frames
            .push((conn, String::from_utf8(text).expect("frames are UTF-8")));
    }

    fn close(&mut self, conn: ConnToken, code: u16, _reason: &str) {
        self.closes.push((conn, code));
    }
}

#[derive(Default)]
struct Client {
    id: Option<SessionId>,
    live: bool,
    /// Rooms the client believes it is in, with the peers it believes are there.
    views: HashMap<String, BTreeSet<String>>,
    relays_received: u64,
}

struct Sim {
    routers: Vec<Router>,
    clients: Vec<Client>,
    /// Session id text → client index, for live sessions.
    by_id: HashMap<String, usize>,
    rng: Rng,
    errors: HashMap<String, u64>,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let routers = (0..SHARDS)
            .map(|shard| {
                Router::new(Config {
                    node: 1,
                    shard,
                    shards: SHARDS,
                    limits: Limits {
                        rooms_per_session_max: 4,
                        members_per_room_max: 10_000,
                        resume_grace_ms: 0,
                        ..Limits::default()
                    },
                    ice_servers_json: "[]".into(),
                    heartbeat_ms: 25_000,
                    secret: [7; 32],
                    room_hash_seeds: [1, 2, 3, 4],
                    cluster: false,
                    turn: None,
                })
            })
            .collect();
        Sim {
            routers,
            clients: Vec::new(),
            by_id: HashMap::new(),
            rng: Rng(seed),
            errors: HashMap::new(),
        }
    }

    /// Conn tokens are client indices and are never reused, so a frame for a closed
    /// client's token is a frame delivered to a stale session.
    fn absorb(&mut self, rec: Recorder) {
        for (conn, text) in rec.frames {
            let c = &mut self.clients[conn as usize];
            assert!(c.live, "frame to a closed session: {text}");
            let v: Value = serde_json::from_str(&text).expect("valid JSON");
            let room = v["room"].as_str().map(str::to_owned);
            match v["type"].as_str().unwrap() {
                "welcome" => {}
                "joined" => {
                    let peers: BTreeSet<String> = v["peers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p["id"].as_str().unwrap().to_owned())
                        .collect();
                    let old = c.views.insert(room.unwrap(), peers);
                    assert!(old.is_none() || old.as_ref().is_some_and(BTreeSet::is_empty));
                }
                "peer-joined" => {
                    let view = c
                        .views
                        .get_mut(&room.unwrap())
                        .expect("peer-joined for a room we are in");
                    assert!(
                        view.insert(v["id"].as_str().unwrap().to_owned()),
                        "duplicate peer-joined"
                    );
                }
                "peer-left" => {
                    let view = c
                        .views
                        .get_mut(&room.unwrap())
                        .expect("peer-left for a room we are in");
                    assert!(
                        view.remove(v["id"].as_str().unwrap()),
                        "peer-left without peer-joined"
                    );
                }
                "left" => {
                    c.views
                        .remove(&room.unwrap())
                        .expect("left a room we were in");
                }
                "error" => {
                    *self
                        .errors
                        .entry(v["code"].as_str().unwrap().to_owned())
                        .or_default() += 1;
                }
                "message" | "broadcast" => {
                    let from = v["from"].as_str().expect("relays carry from");
                    assert!(SessionId::parse(from.as_bytes()).is_some());
                    c.relays_received += 1;
                }
                other => panic!("unexpected frame type {other}"),
            }
        }
    }

    /// Delivers batches until no router has cross-shard work left.
    fn quiesce(&mut self) {
        loop {
            let mut moved = false;
            for src in 0..SHARDS {
                for dst in 0..SHARDS {
                    if src == dst {
                        continue;
                    }
                    if let Some(b) = self.routers[src as usize].take_batch(dst) {
                        let mut rec = Recorder::default();
                        self.routers[dst as usize].handle_batch(&b, 0, &mut rec);
                        self.absorb(rec);
                        moved = true;
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn open(&mut self) {
        let shard = self.rng.below(usize::from(SHARDS));
        let conn = self.clients.len() as ConnToken;
        self.clients.push(Client {
            live: true,
            ..Client::default()
        });
        let mut rec = Recorder::default();
        let id = self.routers[shard]
            .open(conn, &mut rec)
            .expect("room for sessions");
        self.absorb(rec);
        self.clients[conn as usize].id = Some(id);
        self.by_id.insert(id.to_string(), conn as usize);
    }

    fn live_client(&mut self) -> Option<usize> {
        if self.by_id.is_empty() {
            return None;
        }
        for _ in 0..8 {
            let i = self.rng.below(self.clients.len());
            if self.clients[i].live {
                return Some(i);
            }
        }
        self.by_id.values().next().copied()
    }

    fn send(&mut self, i: usize, text: &str) {
        let id = self.clients[i].id.unwrap();
        let mut rec = Recorder::default();
        self.routers[id.shard() as usize].handle_text(id, text.as_bytes(), 0, &mut rec);
        self.absorb(rec);
    }

    fn close(&mut self, i: usize) {
        let id = self.clients[i].id.unwrap();
        self.clients[i].live = false;
        self.clients[i].views.clear();
        self.by_id.remove(&id.to_string());
        let mut rec = Recorder::default();
        self.routers[id.shard() as usize].close(id, &mut rec);
        self.absorb(rec);
    }

    fn step(&mut self) {
        let action = self.rng.below(100);
        let Some(i) = self.live_client() else {
            self.open();
            return;
        };
        match action {
            0..=14 => self.open(),
            15..=22 => self.close(i),
            23..=47 => {
                let room = format!("room-{}", self.rng.below(ROOMS));
                self.send(i, &format!(r#"{{"type":"join","room":"{room}"}}"#));
            }
            48..=57 => {
                let room = self.clients[i].views.keys().next().cloned();
                let room = room.unwrap_or_else(|| format!("room-{}", self.rng.below(ROOMS)));
                self.send(i, &format!(r#"{{"type":"leave","room":"{room}"}}"#));
            }
            58..=67 => {
                if let Some(room) = self.clients[i].views.keys().next().cloned() {
                    self.send(
                        i,
                        &format!(r#"{{"type":"broadcast","room":"{room}","x":1}}"#),
                    );
                }
            }
            _ => {
                // Relay to a random client, live or not: stale targets must be refused.
                let j = self.rng.below(self.clients.len());
                let target = self.clients[j].id.unwrap();
                self.send(
                    i,
                    &format!(r#"{{"type":"message","target":"{target}","n":1}}"#),
                );
            }
        }
    }

    fn check_views(&self) {
        let mut owned_members: HashMap<String, HashSet<String>> = HashMap::new();
        for r in &self.routers {
            for k in 0..ROOMS {
                let room = format!("room-{k}");
                if let Some(m) = r.room_members(&room) {
                    assert!(!m.is_empty(), "empty rooms are removed");
                    let prev =
                        owned_members.insert(room, m.iter().map(ToString::to_string).collect());
                    assert!(prev.is_none(), "a room has one owner");
                }
            }
        }
        for c in self.clients.iter().filter(|c| c.live) {
            let me = c.id.unwrap().to_string();
            for (room, view) in &c.views {
                let members = owned_members
                    .get(room)
                    .expect("a room a client is in exists");
                assert!(members.contains(&me), "{me} thinks it is in {room}");
                let others: BTreeSet<String> =
                    members.iter().filter(|m| **m != me).cloned().collect();
                assert_eq!(&others, view, "view of {room} by {me}");
            }
        }
        for (room, members) in &owned_members {
            for m in members {
                let c = &self.clients[self.by_id[m]];
                assert!(
                    c.views.contains_key(room),
                    "{m} is a member of {room} but was not told"
                );
            }
        }
    }
}

#[test]
fn ten_thousand_sessions_random_order_keep_invariants() {
    let mut sim = Sim::new(0x5EED_1234_ABCD_0001);
    let mut rounds = 0;
    while sim.clients.len() < SESSIONS {
        for _ in 0..50 {
            sim.step();
        }
        sim.quiesce();
        rounds += 1;
        if rounds % 20 == 0 {
            sim.check_views();
        }
    }
    sim.check_views();
    let relays: u64 = sim.clients.iter().map(|c| c.relays_received).sum();
    assert!(relays > 1000, "the scenario relayed {relays} frames");
    assert!(
        sim.errors.get("unknown-target").copied().unwrap_or(0) > 100,
        "{:?}",
        sim.errors
    );
    // Close everyone in random order: every table must come back empty.
    let mut live: Vec<usize> = sim.by_id.values().copied().collect();
    live.sort_unstable();
    while !live.is_empty() {
        let k = sim.rng.below(live.len());
        let i = live.swap_remove(k);
        sim.close(i);
        if live.len().is_multiple_of(97) {
            sim.quiesce();
            sim.check_views();
        }
    }
    sim.quiesce();
    for r in &sim.routers {
        assert_eq!(r.session_count(), 0);
        assert_eq!(r.room_count(), 0);
        assert!(!r.has_outbound());
    }
}

#[test]
fn churn_of_joins_and_leaves_returns_tables_to_empty() {
    let mut sim = Sim::new(42);
    for _ in 0..300 {
        sim.open();
    }
    for n in 0..1_000_000u64 {
        let i = sim.rng.below(300);
        let room = format!("room-{}", n % 50);
        if sim.clients[i].views.contains_key(&room) {
            sim.send(i, &format!(r#"{{"type":"leave","room":"{room}"}}"#));
        } else {
            sim.send(i, &format!(r#"{{"type":"join","room":"{room}"}}"#));
        }
        if n % 64 == 0 {
            sim.quiesce();
        }
    }
    sim.quiesce();
    sim.check_views();
    for i in 0..300 {
        sim.close(i);
    }
    sim.quiesce();
    for r in &sim.routers {
        assert_eq!((r.session_count(), r.room_count()), (0, 0));
    }
}
