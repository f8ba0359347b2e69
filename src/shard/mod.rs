//! The per-core shard: connections, buffers, timers and the drivers that move bytes.
//!
//! This is the only module with `unsafe` (system calls and io_uring submissions), and
//! every block says why it is sound.
//!
//! A shard owns its listener (`SO_REUSEPORT`), its connections, its signaling
//! [`Router`], and its ends of the cross-shard mesh. One loop turn of either driver:
//!
//! 1. Wait for readiness (epoll) or completions (io_uring), bounded by the next deadline.
//! 2. Accept new connections; feed received bytes to [`Core::on_data`], which runs the HTTP
//!    and WebSocket cores and the router. Frames for local sessions are appended straight
//!    to their send queues; frames for other shards go into one batch per shard.
//! 3. Drain the inbound rings into the router.
//! 4. Push this turn's batches onto the rings, waking parked shards once each.
//! 5. Flush every connection with queued bytes: one send per connection per turn.
//! 6. Expire deadlines (handshake and close timeouts).

pub mod epoll;
pub mod host;
pub mod iplimit;
pub mod ring;
pub mod stun;
pub mod sys;
pub mod uring;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::proto::http;
use crate::proto::signal::{self, ConnToken, Router, SessionId, Sink};
use crate::proto::ws::{self, close, Decoded, Decoder, Message, OpCode};

/// Which driver a shard runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    /// io_uring.
    Uring,
    /// epoll (through mio).
    Epoll,
}

impl DriverKind {
    /// The name used in logs, metrics and the CLI.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Uring => "uring",
            DriverKind::Epoll => "epoll",
        }
    }
}

/// Everything a shard needs from the configuration; fixed at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `Server:` header value.
    pub server_name: String,
    /// Whether `/v1/echo` answers (Autobahn conformance only).
    pub echo_endpoint: bool,
    /// Request-head limits.
    pub http: http::Limits,
    /// WebSocket limits on `/v1/signal`.
    pub ws_signal: ws::Limits,
    /// WebSocket limits on `/v1/echo`.
    pub ws_echo: ws::Limits,
    /// Time a connection has to complete its upgrade.
    pub handshake_timeout_ms: u64,
    /// Time the peer has to answer our close frame before the socket is dropped.
    pub close_timeout_ms: u64,
    /// Bytes a connection's send queue may hold; past it the reader is too slow and is
    /// closed with 1008.
    pub outbound_queue_bytes_max: usize,
    /// Bytes read per receive call (and the size of each provided buffer with io_uring).
    pub recv_buffer_bytes: usize,
    /// Connections this shard may hold (upgrades past it get 503).
    pub connections_max: u32,
    /// The server pings each WebSocket connection this often.
    pub heartbeat_ms: u64,
    /// A WebSocket connection silent this long is dropped.
    pub idle_timeout_ms: u64,
    /// Files served on plain GETs (the browser client and the demo).
    pub static_files: &'static [StaticFile],
    /// Token and origin checks on the signaling upgrade, when configured.
    pub auth: Option<Arc<crate::proto::auth::Authenticator>>,
    /// Sessions per source address across all shards, when limited.
    pub ip_limiter: Option<Arc<iplimit::IpLimiter>>,
    /// TLS for `wss://` on the same listener (detected by the first byte), when configured.
    pub tls: Option<Arc<crate::server::tls::TlsState>>,
}

/// A file embedded in the binary and served as is.
#[derive(Debug, Clone, Copy)]
pub struct StaticFile {
    /// Request path, e.g. `/v1/client.js`.
    pub path: &'static str,
    /// `Content-Type` value.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

/// Counters one shard publishes for the metrics thread; written only by the shard.
#[derive(Debug, Default)]
pub struct ShardStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections currently open.
    pub open_connections: AtomicU64,
    /// Live signaling sessions.
    pub sessions: AtomicU64,
    /// Rooms owned by the shard.
    pub rooms: AtomicU64,
    /// Text frames received.
    pub frames_in: AtomicU64,
    /// Frames queued for sending.
    pub frames_out: AtomicU64,
    /// Bytes received.
    pub bytes_in: AtomicU64,
    /// Bytes sent.
    pub bytes_out: AtomicU64,
    /// Messages relayed to a target.
    pub relayed: AtomicU64,
    /// Close frames sent for framing errors.
    pub protocol_closes: AtomicU64,
    /// Connections closed because their reader was too slow.
    pub slow_reader_closes: AtomicU64,
    /// HTTP error answers sent.
    pub http_errors: AtomicU64,
    /// Loop turns.
    pub loop_turns: AtomicU64,
    /// [`sys::monotonic_ms`] at the end of the last loop turn (readiness and watchdog).
    pub heartbeat_ms: AtomicU64,
    /// Client frames by kind, indexed like [`signal::Kind::ALL`].
    pub frames_in_by_kind: [AtomicU64; 10],
    /// Error frames sent, indexed like [`signal::ErrorCode::ALL`].
    pub errors_by_code: [AtomicU64; 14],
    /// Close frames sent, indexed like [`CLOSE_CODES`] (the last slot counts any other code).
    pub closes_by_code: [AtomicU64; 9],
    /// Batches waiting in this shard's inbound rings at the end of the last turn.
    pub ring_depth: AtomicU64,
    /// Cross-shard records dropped because a destination ring stayed full.
    pub ring_dropped: AtomicU64,
    /// STUN datagrams and TCP requests received.
    pub stun_received: AtomicU64,
    /// STUN success responses sent.
    pub stun_responses: AtomicU64,
    /// STUN error responses sent (400, 401, 420, other).
    pub stun_errors: AtomicU64,
    /// STUN input dropped unanswered (not STUN, malformed, not a request, bad fingerprint).
    pub stun_dropped: AtomicU64,
    /// STUN requests refused by the per-source rate limit.
    pub stun_rate_limited: AtomicU64,
}

/// The close codes counted one by one in [`ShardStats::closes_by_code`].
pub const CLOSE_CODES: [u16; 8] = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011];

impl ShardStats {
    fn count_close(&self, code: Option<u16>) {
        let i = code
            .and_then(|c| CLOSE_CODES.iter().position(|k| *k == c))
            .unwrap_or(CLOSE_CODES.len());
        self.closes_by_code[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// State shared by all shards and the control thread.
#[derive(Debug)]
pub struct Shared {
    /// Set once to stop every shard.
    pub stop: AtomicBool,
    /// Per-shard wakers.
    pub wakers: Arc<[ring::Waker]>,
    /// Per-shard stats.
    pub stats: Vec<Arc<ShardStats>>,
    /// The driver every shard runs.
    pub driver: DriverKind,
    /// Why epoll runs when it does (`None` with io_uring).
    pub driver_reason: Option<String>,
    /// New limits published by a configuration reload (SIGHUP).
    pub reload: std::sync::Mutex<Option<Arc<Reload>>>,
    /// Bumped with every reload; shards compare it once per loop turn.
    pub reload_generation: AtomicU64,
    /// The cluster bridge's counters, when `[cluster]` is on.
    pub cluster: Option<Arc<ClusterStats>>,
}

/// Counters and state the cluster bridge publishes for the metrics thread; written only by
/// the bridge.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// This node's id.
    pub node: AtomicU64,
    /// Whether the bridge has a working Redis connection (else the cluster is degraded).
    pub up: AtomicBool,
    /// Successful (re)connections to Redis.
    pub connects: AtomicU64,
    /// Failed connection attempts and lost connections.
    pub connection_failures: AtomicU64,
    /// Records published to other nodes.
    pub records_out: AtomicU64,
    /// Records received from other nodes.
    pub records_in: AtomicU64,
    /// Records for other nodes dropped because Redis was unreachable or a publish failed.
    pub dropped: AtomicU64,
    /// Messages from Redis that did not decode.
    pub bad_messages: AtomicU64,
    /// Members of other nodes mirrored here.
    pub remote_members: AtomicU64,
    /// Other nodes whose members were dropped because their heartbeat stopped.
    pub nodes_forgotten: AtomicU64,
    /// Heartbeats that found another process's mark in this node's key (a duplicate
    /// `signal.node_id`, or once after a quick restart).
    pub node_id_conflicts: AtomicU64,
}

/// Limits a configuration reload may change while sessions continue.
#[derive(Debug, Clone)]
pub struct Reload {
    /// The router's limits.
    pub limits: signal::Limits,
    /// The shard settings; only the limits and timeouts among them are applied.
    pub settings: Settings,
}

impl Shared {
    /// Asks every shard to stop and wakes them.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.wakers.iter() {
            w.wake_now();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Http,
    Signal(SessionId),
    Echo,
    /// A close frame was sent; waiting for the peer's close or the timeout.
    Closing,
    /// STUN over TCP (RFC 8489 §6.2.2): requests back to back on the stream.
    StunTcp {
        peer: SocketAddr,
        local: SocketAddr,
    },
    /// Flush what is queued, then close the socket.
    Draining,
}

/// One accepted connection's receive side and state.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    generation: u32,
    phase: Phase,
    inbuf: Vec<u8>,
    decoder: Option<Decoder>,
    deadline_ms: u64,
    last_active_ms: u64,
    /// The source address counted against the per-address session limit.
    ip_held: Option<std::net::IpAddr>,
    /// TLS state of a `wss://` connection.
    tls: Option<Box<rustls::ServerConnection>>,
    /// Whether any byte has arrived (TLS is detected on the first one).
    seen_bytes: bool,
}

/// One connection's send queue.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub(crate) buf: Vec<u8>,
    /// On TLS connections: how much of `buf` (from the front) is already ciphertext.
    pub(crate) cipher_len: usize,
    queued: bool,
    generation: u32,
    /// The queue passed its cap: no more frames are accepted.
    overflow: bool,
}

/// An [`OutSink`] over the core's send queues, built from disjoint field borrows so the
/// router and the stats stay usable beside it.
macro_rules! out_sink {
    ($core:expr) => {
        OutSink {
            outs: &mut $core.outs,
            dirty: &mut $core.dirty,
            kicks: &mut $core.kicks,
            cap: $core.settings.outbound_queue_bytes_max,
            frames: 0,
        }
    };
}

/// Appends router frames to send queues.
struct OutSink<'a> {
    outs: &'a mut [Out],
    dirty: &'a mut Vec<ConnToken>,
    /// Connections the router closed without ending a session (see [`Sink::close`]).
    kicks: &'a mut Vec<ConnToken>,
    cap: usize,
    frames: u64,
}

impl OutSink<'_> {
    fn queue(&mut self, conn: ConnToken, opcode: OpCode, parts: &[&[u8]]) {
        let out = &mut self.outs[conn as usize];
        if out.overflow {
            return;
        }
        // The cap bounds the backlog, not one frame: a queue still under it takes the next
        // frame whole (each is bounded by the message limits), so a connection holds at
        // most the cap plus one message.
        if out.buf.len() >= self.cap {
            out.overflow = true;
        } else {
            ws::write_frame(&mut out.buf, opcode, parts);
            self.frames += 1;
        }
        if !out.queued {
            out.queued = true;
            self.dirty.push(conn);
        }
    }
}

impl Sink for OutSink<'_> {
    fn send_text(&mut self, conn: ConnToken, parts: &[&[u8]]) {
        self.queue(conn, OpCode::Text, parts);
    }

    fn close(&mut self, conn: ConnToken, code: u16, reason: &str) {
        let out = &mut self.outs[conn as usize];
        out.overflow = false;
        ws::write_close(&mut out.buf, Some(code), reason);
        if !out.queued {
            out.queued = true;
            self.dirty.push(conn);
        }
        self.kicks.push(conn);
    }
}

/// Why a connection's socket is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    PeerClosed,
    Done,
    Timeout,
    IoError,
    Shutdown,
}

/// The driver-independent part of a shard.
pub struct Core {
    shard: usize,
    settings: Settings,
    conns: Vec<Option<Conn>>,
    outs: Vec<Out>,
    free: Vec<u32>,
    /// Connections with bytes queued this turn.
    dirty: Vec<ConnToken>,
    /// Connections to close once the driver gets to them.
    closing: Vec<(ConnToken, CloseReason)>,
    timers: BinaryHeap<Reverse<(u64, u32, u32)>>,
    router: Router,
    links: ring::Links,
    ring_cursor: usize,
    stats: Arc<ShardStats>,
    open: u32,
    /// Scratch for reads when a connection has no partial frame buffered.
    pub(crate) scratch: Vec<u8>,
    /// The STUN server, when enabled.
    pub(crate) stun: Option<stun::StunService>,
    /// Connections the router closed during the current call.
    kicks: Vec<ConnToken>,
    /// Scratch for decrypted TLS input.
    tls_plain: Vec<u8>,
    /// This shard's copy of the current TLS config and its generation.
    tls_cache: Option<(u64, Arc<rustls::ServerConfig>)>,
    /// The time of the current loop turn.
    now_ms: u64,
    /// The last configuration reload applied.
    reload_seen: u64,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("shard", &self.shard)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A shard core with no connections.
    #[must_use]
    pub fn new(
        shard: usize,
        settings: Settings,
        router_cfg: signal::Config,
        links: ring::Links,
        stats: Arc<ShardStats>,
    ) -> Self {
        let scratch = vec![0u8; settings.recv_buffer_bytes];
        Core {
            shard,
            settings,
            conns: Vec::new(),
            outs: Vec::new(),
            free: Vec::new(),
            dirty: Vec::new(),
            closing: Vec::new(),
            timers: BinaryHeap::new(),
            router: Router::new(router_cfg),
            links,
            ring_cursor: 0,
            stats,
            open: 0,
            scratch,
            stun: None,
            kicks: Vec::new(),
            tls_plain: Vec::new(),
            tls_cache: None,
            now_ms: 0,
            reload_seen: 0,
        }
    }

    /// Applies a configuration reload if one was published since the last turn: one atomic
    /// load per turn, the lock only when something changed.
    pub(crate) fn check_reload(&mut self, shared: &Shared) {
        let g = shared.reload_generation.load(Ordering::Acquire);
        if g == self.reload_seen {
            return;
        }
        self.reload_seen = g;
        let reload = shared
            .reload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some(r) = reload else {
            return;
        };
        self.router.set_limits(r.limits.clone());
        let n = &r.settings;
        let s = &mut self.settings;
        s.http = n.http;
        s.ws_signal = n.ws_signal;
        s.ws_echo = n.ws_echo;
        s.handshake_timeout_ms = n.handshake_timeout_ms;
        s.close_timeout_ms = n.close_timeout_ms;
        s.outbound_queue_bytes_max = n.outbound_queue_bytes_max;
        s.connections_max = n.connections_max;
        s.heartbeat_ms = n.heartbeat_ms;
        s.idle_timeout_ms = n.idle_timeout_ms;
        tracing::info!(shard = self.shard, "limits reloaded");
    }

    /// Moves connections the router closed (a resume elsewhere took their session over, or
    /// a rate-limit close) to the closing phase without ending any session.
    fn apply_kicks(&mut self) {
        let timeout = self.settings.close_timeout_ms;
        let now_ms = self.now_ms;
        while let Some(t) = self.kicks.pop() {
            if let Some(Some(c)) = self.conns.get_mut(t as usize) {
                if matches!(c.phase, Phase::Signal(_)) {
                    c.phase = Phase::Closing;
                    c.deadline_ms = now_ms + timeout;
                    self.timers
                        .push(Reverse((now_ms + timeout, t, c.generation)));
                    self.stats.count_close(None);
                }
            }
        }
    }

    /// Adds the STUN service (its UDP sockets are already bound).
    pub fn set_stun(&mut self, service: stun::StunService) {
        self.stun = Some(service);
    }

    /// The waker other shards use to wake this one.
    #[must_use]
    pub fn waker(&self) -> &ring::Waker {
        self.links.own_waker()
    }

    /// Registers an accepted stream; returns its token and generation.
    pub(crate) fn accept(&mut self, stream: TcpStream, now_ms: u64) -> (ConnToken, u32) {
        self.accept_as(stream, now_ms, false)
    }

    /// Registers a stream accepted on the STUN-over-TCP listener.
    pub(crate) fn accept_stun(&mut self, stream: TcpStream, now_ms: u64) -> (ConnToken, u32) {
        self.accept_as(stream, now_ms, true)
    }

    fn accept_as(&mut self, stream: TcpStream, now_ms: u64, stun: bool) -> (ConnToken, u32) {
        let _ = stream.set_nodelay(true);
        let token = match self.free.pop() {
            Some(t) => t,
            None => {
                self.conns.push(None);
                self.outs.push(Out::default());
                (self.conns.len() - 1) as u32
            }
        };
        let generation = self.next_generation(token);
        let (phase, deadline_ms) = match (stun, stream.peer_addr(), stream.local_addr()) {
            (true, Ok(peer), Ok(local)) => {
                let idle = self.stun.as_ref().map_or(30_000, |s| s.tcp_idle_timeout_ms);
                (Phase::StunTcp { peer, local }, now_ms + idle)
            }
            // A STUN connection without addresses cannot be answered: drop it at once.
            (true, _, _) => (Phase::Draining, now_ms),
            (false, _, _) => (Phase::Http, now_ms + self.settings.handshake_timeout_ms),
        };
        self.conns[token as usize] = Some(Conn {
            stream,
            generation,
            phase,
            inbuf: Vec::new(),
            decoder: None,
            deadline_ms,
            last_active_ms: now_ms,
            ip_held: None,
            tls: None,
            seen_bytes: false,
        });
        self.timers.push(Reverse((deadline_ms, token, generation)));
        self.open += 1;
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        (token, generation)
    }

    fn next_generation(&mut self, token: ConnToken) -> u32 {
        // The generation lives in the Out slot, which persists across reuse of the token,
        // so completions for an earlier connection in the slot are recognised as stale.
        let out = &mut self.outs[token as usize];
        debug_assert!(out.buf.is_empty());
        out.overflow = false;
        out.queued = false;
        out.generation = out.generation.wrapping_add(1);
        out.generation
    }

    /// The stream of a live connection.
    pub(crate) fn stream(&self, token: ConnToken) -> Option<&TcpStream> {
        self.conns.get(token as usize)?.as_ref().map(|c| &c.stream)
    }

    /// Whether `token` is live with this generation (compared on the low 24 bits that
    /// io_uring completions carry).
    pub(crate) fn is_live(&self, token: ConnToken, generation: u32) -> bool {
        matches!(self.conns.get(token as usize), Some(Some(c)) if c.generation & 0x00FF_FFFF == generation & 0x00FF_FFFF)
    }

    /// Whether a connection holds a partial frame or head (so reads should go straight
    /// into its own buffer).
    pub(crate) fn has_partial(&self, token: ConnToken) -> bool {
        // A TLS connection's buffer holds plaintext: its reads always go through `on_data`.
        matches!(self.conns.get(token as usize), Some(Some(c)) if !c.inbuf.is_empty() && c.tls.is_none())
    }

    /// Takes a connection's partial buffer so a driver can read into it; it must be
    /// handed back through [`Core::on_data_owned`].
    pub(crate) fn take_inbuf(&mut self, token: ConnToken) -> Vec<u8> {
        match self.conns.get_mut(token as usize) {
            Some(Some(c)) => std::mem::take(&mut c.inbuf),
            _ => Vec::new(),
        }
    }

    /// Handles bytes received on a connection with no partial buffer: they are processed
    /// in place, and only an incomplete tail is copied into the connection.
    pub(crate) fn on_data(&mut self, token: ConnToken, data: &mut [u8], now_ms: u64) {
        self.touch(token, now_ms);
        self.stats
            .bytes_in
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if self.tls_input(token, data, now_ms) {
            return;
        }
        let used = self.process(token, data, now_ms);
        if used < data.len() {
            if let Some(Some(c)) = self.conns.get_mut(token as usize) {
                if c.phase != Phase::Draining {
                    c.inbuf.extend_from_slice(&data[used..]);
                }
            }
        }
    }

    /// Handles TLS records: starts TLS on a first byte that opens a handshake (when TLS is
    /// configured), decrypts, and runs the plaintext through the usual path. Returns false
    /// for plaintext connections.
    fn tls_input(&mut self, token: ConnToken, data: &[u8], now_ms: u64) -> bool {
        let Some(Some(c)) = self.conns.get_mut(token as usize) else {
            return false;
        };
        if c.tls.is_none() {
            // Signaling (wss://) and STUN over TCP (STUN over TLS, RFC 8489 §6.2.3) both
            // detect TLS on their first byte.
            let fresh = matches!(c.phase, Phase::Http | Phase::StunTcp { .. })
                && c.inbuf.is_empty()
                && !c.seen_bytes;
            c.seen_bytes = true;
            // 0x16 is a TLS handshake record; an HTTP request starts with a method name.
            let Some(state) = self.settings.tls.as_ref() else {
                return false;
            };
            if !(fresh && data.first() == Some(&0x16)) {
                return false;
            }
            let cfg = state.config(&mut self.tls_cache);
            match rustls::ServerConnection::new(cfg) {
                Ok(conn) => c.tls = Some(Box::new(conn)),
                Err(_) => {
                    self.closing.push((token, CloseReason::IoError));
                    return true;
                }
            }
        }
        let Some(tls) = c.tls.as_mut() else {
            return false;
        };
        let mut rest = data;
        let mut plain = std::mem::take(&mut self.tls_plain);
        plain.clear();
        let mut failed = false;
        while !rest.is_empty() {
            match tls.read_tls(&mut rest) {
                Ok(0) | Err(_) => {
                    failed = true;
                    break;
                }
                Ok(_) => {}
            }
            if tls.process_new_packets().is_err() {
                failed = true;
                break;
            }
            loop {
                let at = plain.len();
                plain.resize(at + 16 * 1024, 0);
                match std::io::Read::read(&mut tls.reader(), &mut plain[at..]) {
                    Ok(n) if n > 0 => plain.truncate(at + n),
                    _ => {
                        plain.truncate(at);
                        break;
                    }
                }
            }
        }
        let wants_write = tls.wants_write();
        if failed {
            // The alert, if rustls produced one, goes out before the socket closes.
            self.encrypt_pending(token);
            self.finish(token);
            self.tls_plain = plain;
            return true;
        }
        if wants_write {
            self.mark_dirty(token);
        }
        if !plain.is_empty() {
            let mut buf = self.take_inbuf(token);
            let from = buf.len();
            buf.extend_from_slice(&plain);
            let used = self.process(token, &mut buf, now_ms);
            buf.drain(..used);
            if from == 0 && buf.capacity() > 64 * 1024 && buf.is_empty() {
                buf = Vec::new();
            }
            self.put_inbuf(token, buf);
        }
        self.tls_plain = plain;
        true
    }

    /// Encrypts what was queued in plaintext on a TLS connection since the last call, so
    /// the send queue holds only ciphertext when the driver takes it.
    pub(crate) fn encrypt_pending(&mut self, token: ConnToken) {
        let Some(Some(c)) = self.conns.get_mut(token as usize) else {
            return;
        };
        let Some(tls) = c.tls.as_mut() else {
            return;
        };
        let out = &mut self.outs[token as usize];
        if out.cipher_len < out.buf.len() {
            let _ = std::io::Write::write_all(&mut tls.writer(), &out.buf[out.cipher_len..]);
            out.buf.truncate(out.cipher_len);
        }
        while tls.wants_write() {
            match tls.write_tls(&mut out.buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        out.cipher_len = out.buf.len();
    }

    /// The driver sent `n` bytes from the front of a connection's queue.
    pub(crate) fn consume_out(&mut self, token: ConnToken, n: usize) {
        let out = &mut self.outs[token as usize];
        out.buf.drain(..n);
        out.cipher_len = out.cipher_len.saturating_sub(n);
    }

    /// Records activity on a connection (for the idle timeout) and the current time.
    fn touch(&mut self, token: ConnToken, now_ms: u64) {
        self.now_ms = now_ms;
        if let Some(Some(c)) = self.conns.get_mut(token as usize) {
            c.last_active_ms = now_ms;
        }
    }

    /// Handles a connection's own buffer after new bytes were appended to it at
    /// `new_from`.
    pub(crate) fn on_data_owned(
        &mut self,
        token: ConnToken,
        mut buf: Vec<u8>,
        new_from: usize,
        now_ms: u64,
    ) {
        self.touch(token, now_ms);
        self.stats
            .bytes_in
            .fetch_add((buf.len() - new_from) as u64, Ordering::Relaxed);
        let used = self.process(token, &mut buf, now_ms);
        buf.drain(..used);
        if let Some(Some(c)) = self.conns.get_mut(token as usize) {
            if buf.is_empty() && buf.capacity() > 64 * 1024 {
                buf = Vec::new();
            }
            if c.phase != Phase::Draining {
                c.inbuf = buf;
            }
        }
    }

    /// How many bytes a read for this connection should at least make room for.
    pub(crate) fn read_hint(&self, token: ConnToken) -> usize {
        self.settings
            .recv_buffer_bytes
            .max(match self.conns.get(token as usize) {
                Some(Some(c)) => c.inbuf.len() / 2,
                _ => 0,
            })
    }

    /// Runs the protocol cores over `data`; returns the bytes consumed.
    fn process(&mut self, token: ConnToken, data: &mut [u8], now_ms: u64) -> usize {
        let mut pos = 0;
        loop {
            let Some(Some(conn)) = self.conns.get_mut(token as usize) else {
                return data.len();
            };
            match conn.phase {
                Phase::Http => match self.handle_head(token, &data[pos..], now_ms) {
                    Some(n) => pos += n,
                    None => return pos,
                },
                Phase::Signal(_) | Phase::Echo | Phase::Closing => {
                    if pos == data.len() {
                        return pos;
                    }
                    match self.handle_frame(token, &mut data[pos..]) {
                        Some(n) => pos += n,
                        None => return pos,
                    }
                }
                Phase::StunTcp { peer, local } => {
                    conn.last_active_ms = now_ms;
                    return pos + self.handle_stun_tcp(token, &data[pos..], peer, local, now_ms);
                }
                Phase::Draining => return data.len(),
            }
        }
    }

    /// Answers the whole STUN messages at the head of `data`; returns the bytes consumed.
    /// Bytes that cannot be STUN end the connection (RFC 8489 has no way to resynchronise).
    fn handle_stun_tcp(
        &mut self,
        token: ConnToken,
        data: &[u8],
        peer: SocketAddr,
        local: SocketAddr,
        now_ms: u64,
    ) -> usize {
        let Some(stun) = self.stun.as_mut() else {
            self.finish(token);
            return data.len();
        };
        let mut pos = 0;
        loop {
            match crate::proto::stun::frame_len(&data[pos..]) {
                Ok(Some(n)) => {
                    if let Some(len) = stun.respond_tcp(&data[pos..pos + n], peer, local, now_ms) {
                        self.outs[token as usize]
                            .buf
                            .extend_from_slice(&stun.tcp_out[..len]);
                    }
                    pos += n;
                }
                Ok(None) => break,
                Err(_) => {
                    stun.counters.received += 1;
                    stun.counters.drops_not_stun += 1;
                    self.finish(token);
                    return data.len();
                }
            }
        }
        if !self.outs[token as usize].buf.is_empty() {
            self.mark_dirty(token);
        }
        pos
    }

    /// Handles an HTTP head; returns the bytes consumed, or `None` if incomplete or done.
    fn handle_head(&mut self, token: ConnToken, data: &[u8], now_ms: u64) -> Option<usize> {
        let server = self.settings.server_name.clone();
        let parsed = http::parse_head(data, self.settings.http);
        let out = &mut self.outs[token as usize].buf;
        let (req, head_len) = match parsed {
            Ok(Some(v)) => v,
            Ok(None) => return None,
            Err(e) => {
                http::write_error(out, &e, &server);
                self.stats.http_errors.fetch_add(1, Ordering::Relaxed);
                self.finish(token);
                return None;
            }
        };
        let path = req.path;
        let is_signal = path == "/v1/signal";
        let is_echo = path == "/v1/echo" && self.settings.echo_endpoint;
        if is_signal || is_echo {
            if !req.wants_upgrade() && req.method == "GET" {
                let e = http::HttpError::MissingUpgrade;
                http::write_response(
                    out,
                    426,
                    "text/plain; charset=utf-8",
                    b"this endpoint speaks WebSocket: send an upgrade request\n",
                    "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
                    &server,
                );
                let _ = e;
                self.stats.http_errors.fetch_add(1, Ordering::Relaxed);
                self.finish(token);
                return None;
            }
            let accept = match req.upgrade() {
                Ok(a) => a,
                Err(e) => {
                    http::write_error(out, &e, &server);
                    self.stats.http_errors.fetch_add(1, Ordering::Relaxed);
                    self.finish(token);
                    return None;
                }
            };
            let mut grant = None;
            if is_signal {
                let refusal = self.admit(token, &req);
                let out = &mut self.outs[token as usize].buf;
                match refusal {
                    Ok(g) => grant = g,
                    Err((status, reason)) => {
                        let mut body = reason.into_bytes();
                        body.push(b'\n');
                        http::write_response(
                            out,
                            status,
                            "text/plain; charset=utf-8",
                            &body,
                            "",
                            &server,
                        );
                        self.stats.http_errors.fetch_add(1, Ordering::Relaxed);
                        self.finish(token);
                        return None;
                    }
                }
            }
            let out = &mut self.outs[token as usize].buf;
            if is_signal && self.router.session_count() >= self.settings.connections_max {
                http::write_response(
                    out,
                    503,
                    "text/plain; charset=utf-8",
                    b"this shard is at its session limit (signal.sessions_per_shard_max); retry later\n",
                    "Retry-After: 1\r\n",
                    &server,
                );
                self.stats.http_errors.fetch_add(1, Ordering::Relaxed);
                self.finish(token);
                return None;
            }
            http::write_upgrade_response(out, &accept, &server);
            self.mark_dirty(token);
            let limits = if is_signal {
                self.settings.ws_signal
            } else {
                self.settings.ws_echo
            };
            let phase = if is_signal {
                let mut sink = out_sink!(self);
                let now_unix_s = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let Some(id) = self.router.open_with(token, grant, now_unix_s, &mut sink) else {
                    self.finish(token);
                    return None;
                };
                self.stats
                    .frames_out
                    .fetch_add(sink.frames, Ordering::Relaxed);
                Phase::Signal(id)
            } else {
                Phase::Echo
            };
            let heartbeat = self.settings.heartbeat_ms;
            if let Some(Some(c)) = self.conns.get_mut(token as usize) {
                c.phase = phase;
                c.decoder = Some(Decoder::new(limits));
                // From now on the deadline is the next heartbeat.
                c.deadline_ms = now_ms + heartbeat;
                self.timers
                    .push(Reverse((c.deadline_ms, token, c.generation)));
            }
            return Some(head_len);
        }
        if matches!(req.method, "GET" | "HEAD") {
            if let Some(f) = self.settings.static_files.iter().find(|f| f.path == path) {
                let body = if req.method == "HEAD" {
                    &[][..]
                } else {
                    f.body
                };
                http::write_response(
                    out,
                    200,
                    f.content_type,
                    body,
                    "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n",
                    &server,
                );
                self.finish(token);
                return None;
            }
        }
        let (status, body): (u16, &[u8]) = match (req.method, path) {
            ("GET" | "HEAD", "/healthz") => (200, b"ok\n"),
            ("GET" | "HEAD", _) => (404, b"no such path; signaling is at /v1/signal\n"),
            _ => (405, b"method not allowed\n"),
        };
        let extra = if status == 405 { "Allow: GET\r\n" } else { "" };
        http::write_response(
            out,
            status,
            "text/plain; charset=utf-8",
            body,
            extra,
            &server,
        );
        if status != 200 {
            self.stats.http_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.finish(token);
        None
    }

    /// Checks a signaling upgrade against auth and the per-address session limit; on
    /// success the address is counted until the connection is released.
    fn admit(
        &mut self,
        token: ConnToken,
        req: &http::Request<'_>,
    ) -> Result<Option<crate::proto::auth::Claims>, (u16, String)> {
        let mut grant = None;
        if let Some(auth) = &self.settings.auth {
            let now_unix_s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            grant = auth
                .check(req.query, req.authorization, req.origin, now_unix_s)
                .map_err(|e| (e.status(), e.to_string()))?;
        }
        if let Some(limiter) = &self.settings.ip_limiter {
            let Some(Some(c)) = self.conns.get_mut(token as usize) else {
                return Err((400, "connection gone".into()));
            };
            if let Ok(peer) = c.stream.peer_addr() {
                if !limiter.try_acquire(peer.ip()) {
                    return Err((
                        429,
                        "too many sessions from this address (signal.sessions_per_ip_max)".into(),
                    ));
                }
                c.ip_held = Some(peer.ip());
            }
        }
        Ok(grant)
    }

    /// Decodes and handles one frame; returns the bytes consumed, or `None` when more
    /// bytes are needed or the connection is finished.
    fn handle_frame(&mut self, token: ConnToken, data: &mut [u8]) -> Option<usize> {
        let Some(Some(conn)) = self.conns.get_mut(token as usize) else {
            return None;
        };
        let phase = conn.phase;
        let decoder = conn.decoder.as_mut()?;
        let mut sink = out_sink!(self);
        let result = match decoder.decode(data) {
            Ok(Decoded::Incomplete { .. }) => return None,
            Ok(Decoded::Fragment { consumed }) => Ok(consumed),
            // After our close frame only the peer's close matters (RFC 6455 §5.5.1).
            Ok(Decoded::Message {
                message: Message::Close { .. },
                ..
            }) if phase == Phase::Closing => Err((0, "")),
            Ok(Decoded::Message { consumed, .. }) if phase == Phase::Closing => Ok(consumed),
            Err(_) if phase == Phase::Closing => Err((0, "")),
            Ok(Decoded::Message { message, consumed }) => match message {
                Message::Text(text) => {
                    self.stats.frames_in.fetch_add(1, Ordering::Relaxed);
                    match phase {
                        Phase::Signal(id) => {
                            self.router.handle_text(id, text, self.now_ms, &mut sink);
                        }
                        _ => sink.queue(token, OpCode::Text, &[text]),
                    }
                    Ok(consumed)
                }
                Message::Binary(bin) => match phase {
                    Phase::Echo => {
                        sink.queue(token, OpCode::Binary, &[bin]);
                        Ok(consumed)
                    }
                    _ => Err((
                        close::UNSUPPORTED_DATA,
                        "signaling frames are JSON text; binary frames are not accepted",
                    )),
                },
                Message::Ping(p) => {
                    sink.queue(token, OpCode::Pong, &[p]);
                    Ok(consumed)
                }
                Message::Pong(_) => Ok(consumed),
                Message::Close { code, .. } => {
                    let out = &mut sink.outs[token as usize];
                    ws::write_close(&mut out.buf, ws::close_reply_code(code), "");
                    self.stats.count_close(ws::close_reply_code(code));
                    Err((0, ""))
                }
            },
            Err(e) => {
                let mut reason = [0u8; 123];
                let n = {
                    use std::io::Write as _;
                    let mut cur = std::io::Cursor::new(&mut reason[..]);
                    let _ = write!(cur, "{e}");
                    cur.position() as usize
                };
                let out = &mut sink.outs[token as usize];
                ws::write_close(
                    &mut out.buf,
                    Some(e.close_code()),
                    std::str::from_utf8(&reason[..n]).unwrap_or(""),
                );
                self.stats.protocol_closes.fetch_add(1, Ordering::Relaxed);
                self.stats.count_close(Some(e.close_code()));
                Err((0, ""))
            }
        };
        self.stats
            .frames_out
            .fetch_add(sink.frames, Ordering::Relaxed);
        if let Some(Some(c)) = self.conns.get_mut(token as usize) {
            if let Some(d) = c.decoder.as_mut() {
                d.release_assembly();
            }
        }
        match result {
            Ok(n) => Some(n),
            Err((0, _)) => {
                // A close frame is queued (our reply, or our error): flush, then close.
                self.finish(token);
                None
            }
            Err((code, reason)) => {
                ws::write_close(&mut self.outs[token as usize].buf, Some(code), reason);
                self.stats.count_close(Some(code));
                self.stats.protocol_closes.fetch_add(1, Ordering::Relaxed);
                self.finish(token);
                None
            }
        }
    }

    fn mark_dirty(&mut self, token: ConnToken) {
        let out = &mut self.outs[token as usize];
        if !out.queued {
            out.queued = true;
            self.dirty.push(token);
        }
    }

    /// Flush what is queued, then close: the session ends now, the socket after the flush.
    fn finish(&mut self, token: ConnToken) {
        self.end_session(token);
        if let Some(Some(c)) = self.conns.get_mut(token as usize) {
            if let Some(tls) = c.tls.as_mut() {
                tls.send_close_notify();
            }
            c.phase = Phase::Draining;
            c.inbuf = Vec::new();
            c.decoder = None;
        }
        self.mark_dirty(token);
    }

    /// Sends a close frame and waits for the peer's close (or the close timeout).
    pub(crate) fn start_close(&mut self, token: ConnToken, code: u16, reason: &str, now_ms: u64) {
        self.end_session(token);
        let timeout = self.settings.close_timeout_ms;
        if let Some(Some(c)) = self.conns.get_mut(token as usize) {
            if matches!(c.phase, Phase::Closing | Phase::Draining) {
                return;
            }
            c.phase = Phase::Closing;
            c.deadline_ms = now_ms + timeout;
            let g = c.generation;
            self.timers.push(Reverse((now_ms + timeout, token, g)));
            let out = &mut self.outs[token as usize];
            out.overflow = false;
            ws::write_close(&mut out.buf, Some(code), reason);
            self.stats.count_close(Some(code));
            self.mark_dirty(token);
        }
    }

    fn end_session(&mut self, token: ConnToken) {
        let Some(Some(c)) = self.conns.get_mut(token as usize) else {
            return;
        };
        if let Phase::Signal(id) = c.phase {
            c.phase = Phase::Echo;
            let mut sink = out_sink!(self);
            self.router.detach(id, self.now_ms, &mut sink);
            self.apply_kicks();
        }
    }

    /// Drains inbound rings into the router.
    pub(crate) fn drain_rings(&mut self) -> usize {
        let mut n = 0;
        while let Some(batch) = self.links.pop_any(&mut self.ring_cursor) {
            let mut sink = out_sink!(self);
            self.router.handle_batch(&batch, self.now_ms, &mut sink);
            self.stats
                .frames_out
                .fetch_add(sink.frames, Ordering::Relaxed);
            n += 1;
        }
        n
    }

    /// Pushes this turn's batches onto the rings.
    pub(crate) fn push_batches(&mut self) {
        self.links.retry_pending();
        if !self.router.has_outbound() {
            return;
        }
        // With a cluster the mesh has one more participant after the shards: the bridge.
        for dest in 0..self.links.destinations() {
            if dest == self.shard {
                continue;
            }
            if let Some(b) = self.router.take_batch(dest as u8) {
                self.links.send(dest, b);
            }
        }
    }

    /// Takes the list of connections with queued bytes; the driver flushes each and
    /// reports back with [`Core::flushed`].
    pub(crate) fn take_dirty(&mut self, into: &mut Vec<ConnToken>, now_ms: u64) {
        // An overflowing queue means a slow reader: its session ends and a 1008 close
        // frame goes after what is queued; if even that cannot drain within the close
        // timeout, the socket is dropped.
        for i in 0..self.dirty.len() {
            let t = self.dirty[i];
            if self.outs[t as usize].overflow {
                self.stats
                    .slow_reader_closes
                    .fetch_add(1, Ordering::Relaxed);
                self.start_close(
                    t,
                    close::POLICY_VIOLATION,
                    "send queue exceeded server.outbound_queue_bytes_max: reader too slow",
                    now_ms,
                );
            }
        }
        std::mem::swap(&mut self.dirty, into);
        for &t in into.iter() {
            self.encrypt_pending(t);
        }
    }

    /// Hands back a buffer taken with [`Core::take_inbuf`] when no bytes were added.
    pub(crate) fn put_inbuf(&mut self, token: ConnToken, buf: Vec<u8>) {
        if let Some(Some(c)) = self.conns.get_mut(token as usize) {
            c.inbuf = buf;
        }
    }

    /// The send queue of a connection.
    pub(crate) fn out_mut(&mut self, token: ConnToken) -> &mut Out {
        &mut self.outs[token as usize]
    }

    /// Called by the driver after it wrote `n` bytes of a connection's queue.
    pub(crate) fn flushed(&mut self, token: ConnToken, n: usize) {
        self.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        let _ = token;
    }

    /// Whether the connection should be closed once its queue is empty.
    pub(crate) fn close_when_flushed(&self, token: ConnToken) -> bool {
        matches!(
            self.conns.get(token as usize),
            Some(Some(Conn {
                phase: Phase::Draining,
                ..
            }))
        )
    }

    /// Connections the core wants closed now.
    pub(crate) fn take_closing(&mut self, into: &mut Vec<(ConnToken, CloseReason)>) {
        std::mem::swap(&mut self.closing, into);
    }

    /// Forgets a connection whose socket the driver has closed (or is closing).
    pub(crate) fn release(&mut self, token: ConnToken) -> Option<TcpStream> {
        self.end_session(token);
        let conn = self.conns.get_mut(token as usize)?.take()?;
        if let (Some(ip), Some(limiter)) = (conn.ip_held, &self.settings.ip_limiter) {
            limiter.release(ip);
        }
        let out = &mut self.outs[token as usize];
        out.buf.clear();
        out.cipher_len = 0;
        // A freed slot keeps no send buffer: slots outlive their connections, and buffers
        // kept in idle slots would add up to the peak of every slot ever used.
        out.buf = Vec::new();
        out.queued = false;
        out.overflow = false;
        self.free.push(token);
        self.open -= 1;
        Some(conn.stream)
    }

    /// Expires deadlines up to `now_ms`; returns the next deadline, if any.
    pub(crate) fn expire(&mut self, now_ms: u64) -> Option<u64> {
        self.now_ms = now_ms;
        if self.router.poll_timeout().is_some_and(|at| at <= now_ms) {
            let mut sink = out_sink!(self);
            self.router.handle_timeout(now_ms, &mut sink);
            self.apply_kicks();
        }
        let router_next = self.router.poll_timeout();
        let earliest = |conn_next: Option<u64>| match (conn_next, router_next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        while let Some(Reverse((at, token, generation))) = self.timers.peek().copied() {
            if at > now_ms {
                return earliest(Some(at));
            }
            self.timers.pop();
            let Some(Some(c)) = self.conns.get(token as usize) else {
                continue;
            };
            if c.generation != generation || c.deadline_ms != at {
                continue;
            }
            match c.phase {
                Phase::Http | Phase::Closing | Phase::Draining => {
                    self.closing.push((token, CloseReason::Timeout));
                }
                Phase::StunTcp { .. } => {
                    let idle = self.stun.as_ref().map_or(0, |s| s.tcp_idle_timeout_ms);
                    let due = c.last_active_ms + idle;
                    if due <= now_ms {
                        self.closing.push((token, CloseReason::Timeout));
                    } else if let Some(Some(c)) = self.conns.get_mut(token as usize) {
                        c.deadline_ms = due;
                        self.timers.push(Reverse((due, token, generation)));
                    }
                }
                Phase::Signal(_) | Phase::Echo => {
                    // Heartbeat: drop a connection silent past the idle timeout, else ping.
                    let silent_ms = now_ms.saturating_sub(c.last_active_ms);
                    if silent_ms >= self.settings.idle_timeout_ms {
                        self.start_close(token, close::GOING_AWAY, "idle timeout", now_ms);
                    } else {
                        let next = now_ms + self.settings.heartbeat_ms;
                        if let Some(Some(c)) = self.conns.get_mut(token as usize) {
                            c.deadline_ms = next;
                        }
                        self.timers.push(Reverse((next, token, generation)));
                        let out = &mut self.outs[token as usize];
                        if !out.overflow {
                            ws::write_frame(&mut out.buf, OpCode::Ping, &[]);
                            self.mark_dirty(token);
                        }
                    }
                }
            }
        }
        earliest(None)
    }

    /// Starts a graceful close of every WebSocket connection (server shutdown).
    pub(crate) fn close_all(&mut self, now_ms: u64) {
        for t in 0..self.conns.len() as u32 {
            let phase = match &self.conns[t as usize] {
                Some(c) => c.phase,
                None => continue,
            };
            match phase {
                Phase::Signal(_) => {
                    // Tell the client to come back (to another node, through the balancer)
                    // after a short, spread-out delay, then close.
                    let delay_ms = 250 + (u64::from(t) * 7919) % 2000;
                    let notice = format!("{{\"type\":\"reconnect\",\"delayMs\":{delay_ms}}}");
                    let out = &mut self.outs[t as usize];
                    ws::write_frame(&mut out.buf, OpCode::Text, &[notice.as_bytes()]);
                    self.start_close(t, close::GOING_AWAY, "server shutting down", now_ms);
                }
                Phase::Echo => {
                    self.start_close(t, close::GOING_AWAY, "server shutting down", now_ms);
                }
                Phase::Http | Phase::StunTcp { .. } => {
                    self.closing.push((t, CloseReason::Shutdown))
                }
                Phase::Closing | Phase::Draining => {}
            }
        }
    }

    /// Open connections.
    #[must_use]
    pub fn open_connections(&self) -> u32 {
        self.open
    }

    /// Publishes gauges for the metrics thread.
    pub(crate) fn publish_stats(&self) {
        let s = &self.stats;
        s.open_connections
            .store(u64::from(self.open), Ordering::Relaxed);
        s.sessions
            .store(u64::from(self.router.session_count()), Ordering::Relaxed);
        s.rooms
            .store(self.router.room_count() as u64, Ordering::Relaxed);
        let c = self.router.counters();
        s.relayed.store(c.relayed, Ordering::Relaxed);
        for (dst, v) in s.frames_in_by_kind.iter().zip(c.frames_in) {
            dst.store(v, Ordering::Relaxed);
        }
        for (dst, v) in s.errors_by_code.iter().zip(c.errors) {
            dst.store(v, Ordering::Relaxed);
        }
        s.ring_depth
            .store(self.links.inbound_depth() as u64, Ordering::Relaxed);
        s.ring_dropped
            .store(self.links.dropped_records, Ordering::Relaxed);
        if let Some(st) = &self.stun {
            let c = &st.counters;
            s.stun_received.store(c.received, Ordering::Relaxed);
            s.stun_responses
                .store(c.responses_success, Ordering::Relaxed);
            s.stun_errors.store(
                c.errors_400 + c.errors_401 + c.errors_420 + c.errors_other,
                Ordering::Relaxed,
            );
            s.stun_dropped.store(
                c.drops_not_stun
                    + c.drops_malformed
                    + c.drops_not_request
                    + c.drops_fingerprint_mismatch
                    + c.drops_unknown_local_socket
                    + c.drops_output_too_small,
                Ordering::Relaxed,
            );
            s.stun_rate_limited
                .store(c.drops_rate_limited, Ordering::Relaxed);
        }
        s.heartbeat_ms.store(sys::monotonic_ms(), Ordering::Relaxed);
        s.loop_turns.fetch_add(1, Ordering::Relaxed);
    }

    /// How long the driver may block: not at all with work pending, else until the next
    /// deadline (at most a second, and 50 ms while draining so the stop is noticed).
    pub(crate) fn wait_ms(&self, next: Option<u64>, now_ms: u64, draining: bool) -> u64 {
        if self.has_pending_work() {
            return 0;
        }
        let t = next.map_or(1000, |at| at.saturating_sub(now_ms)).min(1000);
        if draining {
            t.min(50)
        } else {
            t
        }
    }

    /// Whether the shard has cross-shard work in flight that needs another turn.
    pub(crate) fn has_pending_work(&self) -> bool {
        self.links.has_pending()
            || self.stun.as_ref().is_some_and(stun::StunService::has_ready)
            || self.router.has_outbound()
            || !self.dirty.is_empty()
            || !self.closing.is_empty()
    }

    /// This shard's mesh links.
    pub(crate) fn links(&self) -> &ring::Links {
        &self.links
    }
}
