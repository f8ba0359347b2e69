//! Sans-IO reconnect storm: 10 000 sessions in pairs across 3 shards keep sending numbered
//! messages to their partners while connections drop and resume on random shards — some
//! after a clean drop, some while the old connection is still open (it is taken over).
//! Batches move between shards in random order and at random times.
//!
//! Checked: every receiver sees its partner's numbers exactly once and in order (0 lost,
//! 0 duplicated, order kept); no frame reaches a connection after it dropped or was
//! closed; grace expiry produces exactly one `peer-left` per room.

use serde_json::Value;
use switchboard::proto::signal::{Config, ConnToken, Limits, Router, SessionId, Sink};

const SHARDS: u8 = 3;

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
        let text: Vec<u8> = parts.concat();
        self.frames.push((conn, String::from_utf8(text).unwrap()));
    }
    fn close(&mut self, conn: ConnToken, code: u16, _reason: &str) {
        self.closes.push((conn, code));
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ConnState {
    /// Open: frames may arrive.
    Open,
    /// The client dropped it, or the server closed it: nothing may arrive any more.
    Gone,
}

struct Conn {
    client: usize,
    /// The session id the router knows this connection by (the stand-in after a resume).
    session: SessionId,
    state: ConnState,
    /// A resume was sent on this connection and `resumed` not yet seen.
    resume_pending: bool,
}

struct Client {
    /// The session id the client keeps across resumes.
    id: SessionId,
    token: String,
    /// The connection it currently sends on, if any.
    conn: Option<ConnToken>,
    partner: usize,
    sent: u64,
    /// Next number expected from the partner.
    expected: u64,
    peer_left: u32,
    errors: Vec<String>,
}

struct Sim {
    routers: Vec<Router>,
    conns: Vec<Conn>,
    clients: Vec<Client>,
    rng: Rng,
    now_ms: u64,
    resumed: u64,
}

impl Sim {
    fn new(seed: u64, grace_ms: u64) -> Sim {
        let routers = (0..SHARDS)
            .map(|shard| {
                Router::new(Config {
                    node: 0,
                    shard,
                    shards: SHARDS,
                    limits: Limits {
                        resume_grace_ms: grace_ms,
                        resume_queue_bytes_max: 1 << 20,
                        ..Limits::default()
                    },
                    ice_servers_json: "[]".into(),
                    heartbeat_ms: 25_000,
                    secret: [9; 32],
                    room_hash_seeds: [5, 6, 7, 8],
                    cluster: false,
                    turn: None,
                })
            })
            .collect();
        Sim {
            routers,
            conns: Vec::new(),
            clients: Vec::new(),
            rng: Rng(seed),
            now_ms: 1,
            resumed: 0,
        }
    }

    fn absorb(&mut self, rec: Recorder) {
        for (conn, text) in rec.frames {
            let c = &self.conns[conn as usize];
            assert_eq!(
                c.state,
                ConnState::Open,
                "frame to a gone connection: {text}"
            );
            let client = c.client;
            let v: Value = serde_json::from_str(&text).unwrap();
            let cl = &mut self.clients[client];
            match v["type"].as_str().unwrap() {
                "welcome" | "joined" | "peer-joined" => {}
                "resumed" => {
                    if client == 5113 {
                        eprintln!("resumed on {conn}: {text}");
                    }
                    assert!(self.conns[conn as usize].resume_pending, "unexpected resumed on conn {conn} session {} of client {client} (current conn {:?}) text {text}", self.conns[conn as usize].session, cl.conn);
                    self.conns[conn as usize].resume_pending = false;
                    assert_eq!(v["id"].as_str().unwrap(), cl.id.to_string());
                    self.resumed += 1;
                }
                "peer-left" => cl.peer_left += 1,
                "message" => {
                    let seq = v["seq"].as_u64().unwrap();
                    assert_eq!(
                        seq, cl.expected,
                        "client {client}: lost, duplicated or reordered"
                    );
                    cl.expected += 1;
                }
                "error" => cl.errors.push(v["code"].as_str().unwrap().to_owned()),
                other => panic!("unexpected frame {other}: {text}"),
            }
        }
        for (conn, code) in rec.closes {
            if self.conns[conn as usize].client == 5113 {
                eprintln!("close {conn} {code}");
            }
            assert_eq!(code, 4001);
            assert_eq!(self.conns[conn as usize].state, ConnState::Open);
            self.conns[conn as usize].state = ConnState::Gone;
        }
    }

    /// Moves some (or all) pending batches between shards.
    fn pump(&mut self, all: bool) {
        loop {
            let mut moved = false;
            for src in 0..SHARDS {
                for dst in 0..SHARDS {
                    if src == dst || (!all && self.rng.below(3) == 0) {
                        continue;
                    }
                    if let Some(b) = self.routers[src as usize].take_batch(dst) {
                        let mut rec = Recorder::default();
                        self.routers[dst as usize].handle_batch(&b, self.now_ms, &mut rec);
                        self.absorb(rec);
                        moved = true;
                    }
                }
            }
            if !moved || !all {
                return;
            }
        }
    }

    fn open_conn(&mut self, client: usize) -> (ConnToken, SessionId) {
        let shard = self.rng.below(usize::from(SHARDS));
        let token = self.conns.len() as ConnToken;
        self.conns.push(Conn {
            client,
            session: SessionId::from_u64(0),
            state: ConnState::Open,
            resume_pending: false,
        });
        let mut rec = Recorder::default();
        let id = self.routers[shard].open(token, &mut rec).unwrap();
        self.conns[token as usize].session = id;
        self.absorb(rec);
        (token, id)
    }

    fn send_on(&mut self, conn: ConnToken, text: &str) {
        let id = self.conns[conn as usize].session;
        let mut rec = Recorder::default();
        self.routers[id.shard() as usize].handle_text(id, text.as_bytes(), self.now_ms, &mut rec);
        self.absorb(rec);
    }

    fn drop_conn(&mut self, conn: ConnToken) {
        let c = &mut self.conns[conn as usize];
        if c.state == ConnState::Open {
            c.state = ConnState::Gone;
            let id = c.session;
            let mut rec = Recorder::default();
            self.routers[id.shard() as usize].detach(id, self.now_ms, &mut rec);
            self.absorb(rec);
        } else {
            // Closed by the server (taken over): the shard closes the socket without a
            // detach, exactly as the shard does for a kicked connection.
        }
    }

    fn setup(&mut self, pairs: usize) {
        for i in 0..pairs * 2 {
            self.clients.push(Client {
                id: SessionId::from_u64(0),
                token: String::new(),
                conn: None,
                partner: i ^ 1,
                sent: 0,
                expected: 0,
                peer_left: 0,
                errors: Vec::new(),
            });
            let (conn, id) = self.open_conn(i);
            let token = self.routers[id.shard() as usize].resume_token(id);
            let c = &mut self.clients[i];
            c.id = id;
            c.token = String::from_utf8(token.to_vec()).unwrap();
            c.conn = Some(conn);
        }
        for i in 0..pairs * 2 {
            let conn = self.clients[i].conn.unwrap();
            self.send_on(
                conn,
                &format!(r#"{{"type":"join","room":"pair-{}"}}"#, i / 2),
            );
        }
        self.pump(true);
    }

    fn send_seq(&mut self, i: usize) {
        let Some(conn) = self.clients[i].conn else {
            return;
        };
        if self.conns[conn as usize].state != ConnState::Open {
            return;
        }
        let partner = self.clients[self.clients[i].partner].id;
        let seq = self.clients[i].sent;
        self.clients[i].sent += 1;
        self.send_on(
            conn,
            &format!(r#"{{"type":"message","target":"{partner}","seq":{seq}}}"#),
        );
    }

    fn resume(&mut self, i: usize) {
        let (conn, _) = self.open_conn(i);
        if i == 5113 {
            eprintln!(
                "client {i} resume on conn {conn} session {}",
                self.conns[conn as usize].session
            );
        }
        let (id, token) = (self.clients[i].id, self.clients[i].token.clone());
        self.clients[i].conn = Some(conn);
        self.conns[conn as usize].resume_pending = true;
        self.send_on(
            conn,
            &format!(r#"{{"type":"resume","id":"{id}","resume":"{token}"}}"#),
        );
    }

    fn step(&mut self) {
        let i = self.rng.below(self.clients.len());
        match self.rng.below(100) {
            0..=69 => self.send_seq(i),
            70..=79 => {
                // Drop the connection.
                if let Some(conn) = self.clients[i].conn.take() {
                    if i == 5113 {
                        eprintln!("client {i} drops conn {conn}");
                    }
                    self.drop_conn(conn);
                }
            }
            80..=89 => {
                // Reconnect and resume (if connected, the old connection is taken over).
                self.resume(i);
            }
            _ => self.pump(false),
        }
    }
}

#[test]
fn reconnect_storm_loses_nothing_duplicates_nothing_keeps_order() {
    let mut sim = Sim::new(0xC0FFEE, 3_600_000);
    sim.setup(5_000);
    for _ in 0..120_000 {
        sim.step();
    }
    // Everyone who is not connected comes back; then everything settles.
    for i in 0..sim.clients.len() {
        let connected = sim.clients[i]
            .conn
            .is_some_and(|c| sim.conns[c as usize].state == ConnState::Open);
        if !connected {
            sim.resume(i);
        }
    }
    sim.pump(true);
    // Resumes that waited for bounced frames complete once those are in.
    sim.pump(true);
    let mut total = 0;
    for (i, c) in sim.clients.iter().enumerate() {
        let partner = &sim.clients[c.partner];
        let conn = &sim.conns[c.conn.unwrap() as usize];
        assert!(!conn.resume_pending, "client {i} never saw resumed");
        assert_eq!(
            c.expected, partner.sent,
            "client {i}: received {} of {}",
            c.expected, partner.sent
        );
        assert_eq!(c.peer_left, 0, "client {i}: spurious peer-left");
        assert!(c.errors.is_empty(), "client {i}: {:?}", c.errors);
        total += partner.sent;
    }
    assert!(total > 50_000, "only {total} messages exchanged");
    assert!(sim.resumed > 10_000, "only {} resumes", sim.resumed);
}

#[test]
fn grace_expiry_sends_exactly_one_peer_left_per_room() {
    let mut sim = Sim::new(7, 1_000);
    sim.setup(500);
    // One side of every pair drops; half of them resume in time.
    for p in 0..500 {
        let i = p * 2;
        let conn = sim.clients[i].conn.take().unwrap();
        sim.drop_conn(conn);
        if p % 2 == 0 {
            sim.resume(i);
        }
    }
    sim.pump(true);
    sim.pump(true);
    sim.now_ms += 2_000;
    for shard in 0..usize::from(SHARDS) {
        let mut rec = Recorder::default();
        sim.routers[shard].handle_timeout(sim.now_ms, &mut rec);
        sim.absorb(rec);
    }
    sim.pump(true);
    for p in 0..500 {
        let partner = &sim.clients[p * 2 + 1];
        let want = if p % 2 == 0 { 0 } else { 1 };
        assert_eq!(partner.peer_left, want, "pair {p}");
    }
    // A resume after the grace is told the session expired.
    sim.resume(2);
    sim.pump(true);
    assert_eq!(sim.clients[2].errors, vec!["session-expired".to_string()]);
}
