//! The cluster bridge thread: this node's link to the other nodes, through Redis.
//!
//! The shards never touch Redis. They push records for other nodes onto their SPSC ring to
//! the bridge (the mesh has one more participant than there are shards), and the bridge
//! pushes what other nodes sent onto its ring to each shard, exactly like cross-shard
//! traffic. The bridge runs a tokio current-thread runtime with the `redis` crate; when
//! Redis is slow or gone, only the bridge waits: its rings fill, the shards' pending
//! batches hit `server.ring_pending_bytes_max` and further records are dropped and counted.
//!
//! Redis layout (`P` is `cluster.key_prefix`):
//! - `P:n:<node>`: pub/sub channel of one node: relays and broadcasts for its sessions.
//! - `P:all`: pub/sub channel of every node: room joins and leaves, and `hello`.
//! - `P:m:<node>:<room>`: hash of `node`'s members of `room` (session id → meta), with a
//!   TTL of `cluster.membership_ttl_ms` that the node refreshes every `heartbeat_ms`.
//! - `P:alive:<node>`: the node's heartbeat, TTL `cluster.node_ttl_ms`.
//!
//! The loop, one turn:
//!
//! 1. Pop every batch the shards sent; the sans-IO [`Bridge`] turns them into messages and
//!    member-set changes, which go to Redis in one pipeline (member sets first, so a node
//!    that reads them after hearing the event finds them).
//! 2. Push the batches the [`Bridge`] built from other nodes' messages to their shards.
//! 3. Park (the shards' wake handshake) and wait for a wake, a message or event from the
//!    connection task, or the heartbeat tick.
//!
//! A separate task owns the connections: it connects (within `connect_timeout_ms`),
//! subscribes, hands the command connection to the loop, forwards messages, and when the
//! subscription ends or the loop reports a failed command, reconnects with exponential
//! back-off from `reconnect_min_ms` to `reconnect_max_ms`. After every connect the loop
//! writes this node's member sets again (Redis may have restarted empty), publishes
//! `hello`, and reads every other node's member sets ([`Bridge::resync_node`]).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, Notify};

use super::config;
use crate::proto::signal::cluster::{Bridge, Channel, Inbound, Outgoing, StoreOp};
use crate::proto::signal::{room_hasher, SessionId};
use crate::shard::{ring, sys, ClusterStats, Shared};

/// Everything the bridge needs, fixed at start-up.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// `[cluster]`.
    pub cluster: config::Cluster,
    /// This node's id (`signal.node_id`).
    pub node: u16,
    /// Shards on this node.
    pub shards: u8,
    /// The room hash seeds the shards use.
    pub room_hash_seeds: [u64; 4],
    /// How long a session may stay away before it ends (`signal.resume_grace_ms`): a node
    /// whose heartbeat stopped keeps its members that long.
    pub resume_grace_ms: u64,
}

/// Starts the bridge thread. It stops when `quit` is set and its waker is woken.
///
/// # Errors
/// The Redis URL does not parse, or the thread could not start.
pub fn spawn(
    cfg: BridgeConfig,
    links: ring::Links,
    shared: Arc<Shared>,
    stats: Arc<ClusterStats>,
    quit: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let client = redis::Client::open(cfg.cluster.redis_url.as_str()).map_err(|e| {
        std::io::Error::other(format!(
            "cluster.redis_url = {:?}: {e}",
            cfg.cluster.redis_url
        ))
    })?;
    stats.node.store(u64::from(cfg.node), Ordering::Relaxed);
    std::thread::Builder::new()
        .name("cluster-bridge".into())
        .spawn(move || {
            // However the thread ends (a panic included), the cluster is reported down.
            let _down = DownOnExit(stats.clone());
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cluster bridge: no runtime; the cluster is off");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, run(cfg, client, links, shared, stats, quit));
        })
}

/// The loop's request to rebuild the connections after a failed command. It names the
/// connection that failed, so a request that arrives after the connection task has already
/// moved on to a newer one is ignored (a `Notify` keeps one wake for a task not waiting).
#[derive(Default)]
struct Restart {
    notify: Notify,
    /// The connection the loop gave up on.
    failed: std::cell::Cell<u64>,
}

/// Marks the cluster down when the bridge thread ends, so that a bridge that died (a bug,
/// or a panic while logging to a closed stderr) shows in `/readyz` and metrics instead of
/// leaving the node silently cut off. It does not log: it may run while unwinding.
struct DownOnExit(Arc<ClusterStats>);

impl Drop for DownOnExit {
    fn drop(&mut self) {
        self.0.up.store(false, Ordering::Relaxed);
    }
}

/// What the connection task tells the loop.
enum Event {
    /// A new command connection, numbered; the subscription is active.
    Up(MultiplexedConnection, u64),
    /// A message from a subscribed channel.
    Message(Vec<u8>),
    /// The subscription ended: Redis is unreachable until the next `Up`.
    Down,
}

struct Names {
    prefix: String,
}

impl Names {
    fn channel(&self, c: Channel) -> String {
        match c {
            Channel::Node(n) => format!("{}:n:{n}", self.prefix),
            Channel::All => format!("{}:all", self.prefix),
        }
    }

    fn members(&self, node: u16, room: &str) -> String {
        format!("{}:m:{node}:{room}", self.prefix)
    }

    fn alive(&self, node: u16) -> String {
        format!("{}:alive:{node}", self.prefix)
    }

    /// The node and room of a member-set key.
    fn parse_members<'k>(&self, key: &'k str) -> Option<(u16, &'k str)> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix(":m:")?;
        let (node, room) = rest.split_once(':')?;
        Some((node.parse().ok()?, room))
    }
}

struct Loop {
    cfg: BridgeConfig,
    bridge: Bridge,
    links: ring::Links,
    shared: Arc<Shared>,
    stats: Arc<ClusterStats>,
    names: Names,
    conn: Option<MultiplexedConnection>,
    /// The number of the connection in `conn`.
    conn_number: u64,
    restart: Rc<Restart>,
    /// Other nodes whose heartbeat was first seen missing at this time (ms).
    missing_since_ms: HashMap<u16, u64>,
    cursor: usize,
    /// A random number this process writes into its heartbeat key.
    instance: u64,
    /// Heartbeats that found another process's number in the key.
    id_conflicts: u64,
}

async fn run(
    cfg: BridgeConfig,
    client: redis::Client,
    links: ring::Links,
    shared: Arc<Shared>,
    stats: Arc<ClusterStats>,
    quit: Arc<AtomicBool>,
) {
    let wake = match links
        .own_waker()
        .eventfd()
        .try_clone()
        .and_then(sys::EventFd::into_async)
    {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cluster bridge: cannot watch its eventfd; the cluster is off");
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel(cfg.cluster.inbound_messages_max);
    let restart = Rc::new(Restart::default());
    tokio::task::spawn_local(connect_loop(
        client,
        cfg.clone(),
        tx,
        restart.clone(),
        stats.clone(),
    ));
    let mut lp = Loop {
        bridge: Bridge::new(
            cfg.node,
            cfg.shards,
            room_hasher(cfg.room_hash_seeds),
            cfg.cluster.remote_members_max,
        ),
        names: Names {
            prefix: cfg.cluster.key_prefix.clone(),
        },
        cfg,
        links,
        shared,
        stats,
        conn: None,
        conn_number: 0,
        restart,
        missing_since_ms: HashMap::new(),
        cursor: 0,
        instance: {
            let mut b = [0u8; 8];
            // Zero (no randomness) only weakens the duplicate-id check.
            let _ = sys::random_bytes(&mut b);
            u64::from_le_bytes(b)
        },
        id_conflicts: 0,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(lp.cfg.cluster.heartbeat_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(node = lp.cfg.node, redis = %lp.cfg.cluster.redis_url, "cluster bridge started");
    loop {
        lp.turn().await;
        if quit.load(Ordering::Acquire) {
            lp.shutdown().await;
            return;
        }
        if lp.links.has_pending() {
            // A shard's ring is full: give it a moment to drain, then retry.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        if !lp.links.park() {
            continue;
        }
        let woke = tokio::select! {
            biased;
            r = wake.readable() => {
                if let Ok(mut guard) = r {
                    guard.get_inner().drain();
                    guard.clear_ready();
                }
                Woke::Rings
            }
            ev = rx.recv() => match ev {
                Some(ev) => Woke::Event(ev),
                None => return,
            },
            _ = tick.tick() => Woke::Tick,
        };
        lp.links.unpark();
        match woke {
            Woke::Rings => {}
            Woke::Event(ev) => {
                lp.event(ev).await;
                // Take whatever else is waiting, up to one channel's worth, before the
                // rings are looked at again.
                for _ in 0..lp.cfg.cluster.inbound_messages_max {
                    match rx.try_recv() {
                        Ok(ev) => lp.event(ev).await,
                        Err(_) => break,
                    }
                }
            }
            Woke::Tick => lp.heartbeat().await,
        }
    }
}

/// Why the loop woke.
enum Woke {
    Rings,
    Event(Event),
    Tick,
}

impl Loop {
    /// Steps 1 and 2 of the module docs.
    async fn turn(&mut self) {
        let mut n = 0;
        while let Some(batch) = self.links.pop_any(&mut self.cursor) {
            self.bridge.handle_shard_batch(&batch);
            n += 1;
        }
        if n > 0 {
            self.flush().await;
        }
        self.push_to_shards();
    }

    fn push_to_shards(&mut self) {
        self.links.retry_pending();
        for dest in 0..self.cfg.shards {
            if let Some(b) = self.bridge.take_batch(dest) {
                self.links.send(usize::from(dest), b);
            }
        }
        let c = self.bridge.counters();
        self.stats.records_in.store(c.records_in, Ordering::Relaxed);
        self.stats
            .bad_messages
            .store(c.bad_messages, Ordering::Relaxed);
        self.stats
            .remote_members
            .store(self.bridge.remote_member_count() as u64, Ordering::Relaxed);
    }

    /// Sends this turn's member-set changes and messages in one pipeline.
    async fn flush(&mut self) {
        let store = self.bridge.take_store();
        let publish = self.bridge.take_publish();
        if store.is_empty() && publish.is_empty() {
            return;
        }
        let records: u64 = publish.iter().map(|o| u64::from(o.records)).sum();
        let Some(conn) = self.conn.as_mut() else {
            // Degraded: member-set changes are kept in the bridge's own map and written
            // again on reconnect; frames for other nodes are lost, and counted.
            self.stats.dropped.fetch_add(records, Ordering::Relaxed);
            return;
        };
        let mut pipe = redis::pipe();
        let ttl = self.cfg.cluster.membership_ttl_ms;
        for op in &store {
            match op {
                StoreOp::Add {
                    room,
                    session,
                    meta,
                } => {
                    let key = self.names.members(self.cfg.node, room);
                    pipe.hset(&key, &session.encode()[..], meta.as_deref().unwrap_or(b""))
                        .ignore()
                        .pexpire(&key, ttl as i64)
                        .ignore();
                }
                StoreOp::Remove { room, session } => {
                    pipe.hdel(
                        self.names.members(self.cfg.node, room),
                        &session.encode()[..],
                    )
                    .ignore();
                }
            }
        }
        // PUBLISH answers how many subscribers got the message: none on a node's channel
        // means that node is down or between connections, and the records are lost.
        for Outgoing { channel, bytes, .. } in &publish {
            pipe.publish(self.names.channel(*channel), &bytes[..]);
        }
        let timeout = Duration::from_millis(self.cfg.cluster.command_timeout_ms);
        match tokio::time::timeout(timeout, pipe.query_async::<Vec<u64>>(conn)).await {
            Ok(Ok(receivers)) => {
                let unheard: u64 = publish
                    .iter()
                    .zip(receivers)
                    .filter(|(o, n)| *n == 0 && matches!(o.channel, Channel::Node(_)))
                    .map(|(o, _)| u64::from(o.records))
                    .sum();
                self.stats
                    .records_out
                    .fetch_add(records - unheard, Ordering::Relaxed);
                self.stats.dropped.fetch_add(unheard, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, records, "cluster: publish failed; reconnecting");
                self.lost(records);
            }
            Err(_) => {
                tracing::warn!(records, "cluster: publish timed out; reconnecting");
                self.lost(records);
            }
        }
    }

    /// The command connection failed: count what was lost and have it rebuilt.
    fn lost(&mut self, records: u64) {
        self.stats.dropped.fetch_add(records, Ordering::Relaxed);
        self.go_down();
        self.restart.failed.set(self.conn_number);
        self.restart.notify.notify_one();
    }

    fn go_down(&mut self) {
        if self.conn.take().is_some() {
            self.stats
                .connection_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        self.stats.up.store(false, Ordering::Relaxed);
    }

    async fn event(&mut self, ev: Event) {
        match ev {
            Event::Up(conn, number) => {
                self.conn = Some(conn);
                self.conn_number = number;
                if self.announce().await {
                    self.stats.up.store(true, Ordering::Relaxed);
                    self.stats.connects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(node = self.cfg.node, "cluster: connected to Redis");
                    self.resync().await;
                }
            }
            Event::Down => {
                if self.conn.is_some() {
                    tracing::warn!(
                        node = self.cfg.node,
                        "cluster: lost Redis; serving local traffic only until it returns"
                    );
                }
                self.go_down();
            }
            Event::Message(bytes) => match self.bridge.handle_message(&bytes) {
                Ok(Inbound::Hello { node }) => {
                    // That node rewrote its member sets: read them.
                    self.resync_nodes(&[node]).await;
                }
                Ok(Inbound::Records | Inbound::Own) => {}
                Err(e) => tracing::debug!(error = %e, "cluster: undecodable message dropped"),
            },
        }
        self.push_to_shards();
    }

    /// Writes this node's heartbeat and member sets (Redis may have restarted empty) and
    /// publishes `hello`. False when Redis failed meanwhile.
    async fn announce(&mut self) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let node = self.cfg.node;
        let ttl = self.cfg.cluster.membership_ttl_ms as i64;
        // Member sets first, then the heartbeat: other nodes read a node's sets only while
        // its heartbeat exists, so they never read half-written ones.
        let mut pipe = redis::pipe();
        for (room, members) in self.bridge.local_rooms() {
            let key = self.names.members(node, room);
            pipe.del(&key).ignore();
            for (id, meta) in members {
                pipe.hset(&key, &id.encode()[..], meta.as_deref().unwrap_or(b""))
                    .ignore();
            }
            pipe.pexpire(&key, ttl).ignore();
        }
        pipe.cmd("SET")
            .arg(self.names.alive(node))
            .arg(self.instance)
            .arg("PX")
            .arg(self.cfg.cluster.node_ttl_ms)
            .ignore();
        pipe.publish(self.names.channel(Channel::All), self.bridge.hello())
            .ignore();
        let timeout = Duration::from_millis(self.cfg.cluster.command_timeout_ms);
        match tokio::time::timeout(timeout, pipe.query_async::<()>(conn)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cluster: writing member sets failed; reconnecting");
                self.lost(0);
                false
            }
            Err(_) => {
                tracing::warn!("cluster: writing member sets timed out; reconnecting");
                self.lost(0);
                false
            }
        }
    }

    /// Reads every other node's member sets and brings the mirror up to date.
    async fn resync(&mut self) {
        let mut nodes = self.bridge.remote_nodes();
        if let Some(found) = self.scan_nodes().await {
            for n in found {
                if !nodes.contains(&n) {
                    nodes.push(n);
                }
            }
            self.resync_nodes(&nodes).await;
        }
    }

    /// The nodes that have member sets in Redis (`None` when Redis failed).
    async fn scan_nodes(&mut self) -> Option<Vec<u16>> {
        let pattern = format!("{}:m:*", self.names.prefix);
        let mut nodes = Vec::new();
        for k in self.scan(&pattern).await? {
            if let Some((n, _)) = self.names.parse_members(&k) {
                if n != self.cfg.node && !nodes.contains(&n) {
                    nodes.push(n);
                }
            }
        }
        Some(nodes)
    }

    /// Every key matching `pattern` (`None`, and the connection counted as lost, when
    /// Redis failed). SCAN in pages rather than KEYS, so a large keyspace never blocks
    /// Redis for other nodes.
    async fn scan(&mut self, pattern: &str) -> Option<Vec<String>> {
        let conn = self.conn.as_mut()?;
        let timeout = Duration::from_millis(self.cfg.cluster.command_timeout_ms);
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let r = tokio::time::timeout(
                timeout,
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async::<(u64, Vec<String>)>(conn),
            )
            .await;
            let Ok(Ok((next, found))) = r else {
                self.lost(0);
                return None;
            };
            keys.extend(found);
            if next == 0 {
                return Some(keys);
            }
            cursor = next;
        }
    }

    /// Reads the member sets of `nodes` and replaces their mirror.
    async fn resync_nodes(&mut self, nodes: &[u16]) {
        for &node in nodes {
            if node == self.cfg.node {
                continue;
            }
            let Some(conn) = self.conn.as_mut() else {
                return;
            };
            let timeout = Duration::from_millis(self.cfg.cluster.command_timeout_ms);
            // A node without a heartbeat has not written its member sets (yet: Redis may
            // have restarted before it reconnected). Its mirror stays as it is; the
            // heartbeat check ends it if the node stays away.
            let alive = tokio::time::timeout(
                timeout,
                redis::cmd("EXISTS")
                    .arg(self.names.alive(node))
                    .query_async::<bool>(conn),
            )
            .await;
            match alive {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => continue,
                _ => {
                    self.lost(0);
                    return;
                }
            }
            let pattern = format!("{}:m:{node}:*", self.names.prefix);
            let Some(keys) = self.scan(&pattern).await else {
                return;
            };
            let Some(conn) = self.conn.as_mut() else {
                return;
            };
            let mut members: Vec<(String, SessionId, Option<Vec<u8>>)> = Vec::new();
            for key in keys {
                let Some((_, room)) = self.names.parse_members(&key) else {
                    continue;
                };
                let room = room.to_owned();
                let r = tokio::time::timeout(
                    timeout,
                    redis::cmd("HGETALL")
                        .arg(&key)
                        .query_async::<Vec<(Vec<u8>, Vec<u8>)>>(conn),
                )
                .await;
                let Ok(Ok(pairs)) = r else {
                    self.lost(0);
                    return;
                };
                for (id, meta) in pairs {
                    if let Some(id) = SessionId::parse(&id).filter(|i| i.node() == node) {
                        members.push((room.clone(), id, (!meta.is_empty()).then_some(meta)));
                    }
                }
            }
            self.bridge.resync_node(node, &members);
            self.push_to_shards();
        }
    }

    /// Every `heartbeat_ms`: refresh this node's heartbeat and member-set TTLs, and look
    /// for other nodes whose heartbeat stopped.
    async fn heartbeat(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let node = self.cfg.node;
        let ttl = self.cfg.cluster.membership_ttl_ms as i64;
        let remote = self.bridge.remote_nodes();
        let mut pipe = redis::pipe();
        // The heartbeat holds this process's random instance number; finding another one
        // there means a second node runs with the same signal.node_id (their relays would
        // mix), which only the operator can fix.
        pipe.cmd("SET")
            .arg(self.names.alive(node))
            .arg(self.instance)
            .arg("PX")
            .arg(self.cfg.cluster.node_ttl_ms)
            .arg("GET");
        for (room, _) in self.bridge.local_rooms() {
            pipe.pexpire(self.names.members(node, room), ttl).ignore();
        }
        for n in &remote {
            pipe.exists(self.names.alive(*n));
        }
        let timeout = Duration::from_millis(self.cfg.cluster.command_timeout_ms);
        let answers = match tokio::time::timeout(
            timeout,
            pipe.query_async::<Vec<redis::Value>>(conn),
        )
        .await
        {
            Ok(Ok(v)) if v.len() == remote.len() + 1 => v,
            _ => {
                tracing::warn!("cluster: heartbeat failed; reconnecting");
                self.lost(0);
                return;
            }
        };
        let mut answers = answers.into_iter();
        let previous: Option<u64> = answers
            .next()
            .and_then(|v| redis::from_redis_value(v).ok())
            .flatten();
        if previous.is_some_and(|p| p != self.instance) {
            // A restart within the heartbeat TTL finds its predecessor's number once;
            // a duplicate finds the other node's at every beat.
            self.id_conflicts += 1;
            self.stats.node_id_conflicts.fetch_add(1, Ordering::Relaxed);
            if self.id_conflicts > 1 && self.id_conflicts % 60 == 2 {
                tracing::error!(
                    node,
                    "cluster: another process heartbeats as this node; every node needs its \
                     own signal.node_id (hint: check the configs of the nodes behind this \
                     balancer)"
                );
            }
        }
        let alive: Vec<bool> = answers
            .map(|v| redis::from_redis_value(v).unwrap_or(true))
            .collect();
        let now_ms = sys::monotonic_ms();
        // A dead node's clients may resume elsewhere within the grace period; its members
        // stay until then (and at least a heartbeat TTL, so a Redis restart that lost every
        // heartbeat key does not look like every node dying).
        let wait_ms = self.cfg.resume_grace_ms.max(self.cfg.cluster.node_ttl_ms);
        for (n, up) in remote.iter().zip(alive) {
            if up {
                self.missing_since_ms.remove(n);
                continue;
            }
            let since = *self.missing_since_ms.entry(*n).or_insert(now_ms);
            if now_ms.saturating_sub(since) >= wait_ms {
                tracing::warn!(
                    node = n,
                    "cluster: node's heartbeat stopped; its members leave their rooms"
                );
                self.missing_since_ms.remove(n);
                self.bridge.forget_node(*n);
                self.stats.nodes_forgotten.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.missing_since_ms.retain(|n, _| remote.contains(n));
        self.push_to_shards();
    }

    /// The shards have stopped: publish what they sent last, then take this node's
    /// heartbeat down so the others need not wait for its TTL.
    async fn shutdown(&mut self) {
        self.turn().await;
        if let Some(conn) = self.conn.as_mut() {
            let timeout = Duration::from_millis(self.cfg.cluster.command_timeout_ms);
            let mut pipe = redis::pipe();
            pipe.del(self.names.alive(self.cfg.node)).ignore();
            let _ = tokio::time::timeout(timeout, pipe.query_async::<()>(conn)).await;
        }
        let _ = &self.shared;
        tracing::info!(node = self.cfg.node, "cluster bridge stopped");
    }
}

/// Owns the Redis connections: connect, subscribe, forward messages, reconnect with
/// back-off.
async fn connect_loop(
    client: redis::Client,
    cfg: BridgeConfig,
    tx: mpsc::Sender<Event>,
    restart: Rc<Restart>,
    stats: Arc<ClusterStats>,
) {
    let c = &cfg.cluster;
    let own = format!("{}:n:{}", c.key_prefix, cfg.node);
    let all = format!("{}:all", c.key_prefix);
    let mut backoff_ms = c.reconnect_min_ms;
    let mut number: u64 = 0;
    loop {
        let connect = async {
            let conn_cfg = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_millis(c.connect_timeout_ms)))
                .set_response_timeout(Some(Duration::from_millis(c.command_timeout_ms)));
            let conn = client
                .get_multiplexed_async_connection_with_config(&conn_cfg)
                .await?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&own).await?;
            pubsub.subscribe(&all).await?;
            Ok::<_, redis::RedisError>((conn, pubsub))
        };
        let timeout = Duration::from_millis(c.connect_timeout_ms);
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok((conn, pubsub))) => {
                backoff_ms = c.reconnect_min_ms;
                number += 1;
                if tx.send(Event::Up(conn, number)).await.is_err() {
                    return;
                }
                let mut stream = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        m = stream.next() => match m {
                            Some(m) => {
                                if tx.send(Event::Message(m.get_payload_bytes().to_vec())).await.is_err() {
                                    return;
                                }
                            }
                            None => break,
                        },
                        () = restart.notify.notified() => {
                            if restart.failed.get() == number {
                                break;
                            }
                        }
                    }
                }
                if tx.send(Event::Down).await.is_err() {
                    return;
                }
            }
            Ok(Err(e)) => {
                stats.connection_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, backoff_ms, "cluster: cannot reach Redis");
            }
            Err(_) => {
                stats.connection_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(backoff_ms, "cluster: connecting to Redis timed out");
            }
        }
        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
        backoff_ms = (backoff_ms * 2).min(c.reconnect_max_ms);
    }
}
