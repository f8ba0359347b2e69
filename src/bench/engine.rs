//! The client side of every scenario: one thread, one mio (epoll) loop, thousands of
//! WebSocket clients.
//!
//! The loop, each turn:
//! 1. wait in `epoll_wait` for socket readiness or the open-loop timer (timeout: the next
//!    phase deadline, at most 100 ms);
//! 2. for each ready client, finish a pending connect, read until the socket is drained,
//!    and handle every complete server frame: greetings and joins advance the set-up,
//!    relayed messages are timed against the send timestamps queued for that sender and, in
//!    closed-loop mode, answered at once;
//! 3. do the time-driven work: start more connections (at most `concurrency` handshakes in
//!    flight), send the open-loop messages that are due (timestamped with their *scheduled*
//!    time, so that a late client or a slow server is charged for the delay), heartbeats,
//!    phase changes (set-up → warm-up → measure → drain → done);
//! 4. write each client's queued frames with one `write` (frames queued within a turn
//!    leave together), keeping the rest for the next writable event.
//!
//! Frames are built once per client and pre-masked with a fixed key, so the steady state
//! copies bytes and parses two header bytes per message; the client's CPU per message is
//! reported beside the server's to show it is not the bottleneck.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use super::dialect::{Dialect, Inbound, Kind};
use super::sdp;
use super::sys;
use super::wire::{self, Frame, Upgrade};

/// Token of the open-loop timer (client tokens are their indices).
const TIMER: Token = Token(usize::MAX - 1);
/// Bytes read per `read` call.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Reads of one client per readiness event before it is put off to the next turn.
const READS_PER_EVENT_MAX: usize = 64;
/// Open-loop messages sent per turn at most (the rest go out next turn, still late-charged).
const SCHEDULED_PER_TURN_MAX: u64 = 65_536;
/// Connection attempts per client before it counts as failed.
const ATTEMPTS_MAX: u8 = 3;
/// Outbound bytes one client may queue before further sends are refused (and counted).
const OUT_QUEUE_BYTES_MAX: usize = 16 << 20;
/// gst: how many times a consumer asks for a session before giving up.
const SESSION_TRIES_MAX: u8 = 50;
/// Error messages kept for the report.
const ERROR_SAMPLES_MAX: usize = 8;
/// Largest latency the histograms hold, in nanoseconds (60 s).
const LATENCY_NS_MAX: u64 = 60_000_000_000;

/// What the clients do once connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Two-client rooms: offer, answer, trickled candidates, then message ping-pong.
    Pairs,
    /// Rooms of `--room-size` members with `broadcast` fan-out.
    Rooms,
    /// Connect, welcome and join as fast as possible.
    Storm,
    /// Hold sessions open and measure the server's memory per session.
    Idle,
}

/// Everything the engine needs, resolved from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) scenario: Scenario,
    pub(crate) dialect: Dialect,
    pub(crate) addr: SocketAddr,
    pub(crate) host: String,
    pub(crate) base_path: String,
    pub(crate) connections: usize,
    pub(crate) group_size: usize,
    pub(crate) payload: String,
    pub(crate) rate: f64,
    pub(crate) depth: usize,
    pub(crate) warmup_ns: u64,
    pub(crate) duration_ns: u64,
    pub(crate) setup_timeout_ns: u64,
    pub(crate) drain_timeout_ns: u64,
    pub(crate) concurrency: usize,
    pub(crate) source_ips: Vec<IpAddr>,
    pub(crate) server_pid: Option<u32>,
    pub(crate) progress: bool,
}

impl Plan {
    fn negotiates(&self) -> bool {
        self.scenario == Scenario::Pairs && !self.dialect.echoes()
    }

    fn steady(&self) -> bool {
        matches!(self.scenario, Scenario::Pairs | Scenario::Rooms)
    }
}

/// Histograms of the connection steps (storm and idle).
#[derive(Debug)]
pub(crate) struct Steps {
    pub(crate) connect: Histogram<u64>,
    pub(crate) upgrade: Histogram<u64>,
    pub(crate) hello: Histogram<u64>,
    pub(crate) join: Histogram<u64>,
    pub(crate) total: Histogram<u64>,
}

/// What a run measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Steady-state latency, send (or scheduled send) to receipt, ns.
    pub(crate) latency: Histogram<u64>,
    /// Offer/answer/candidate latency during set-up, ns.
    pub(crate) negotiation: Histogram<u64>,
    pub(crate) steps: Steps,
    /// Messages sent with a (scheduled) send time inside the measured window.
    pub(crate) sent: u64,
    /// Deliveries those messages should cause (sent × receivers).
    pub(crate) expected: u64,
    /// Deliveries of those messages that arrived (during the window or the drain).
    pub(crate) received: u64,
    /// Deliveries that arrived inside the window, whenever sent: the server's work there.
    pub(crate) delivered_in_window: u64,
    pub(crate) errors: u64,
    pub(crate) reconnects: u64,
    pub(crate) unexpected: u64,
    pub(crate) refused_sends: u64,
    pub(crate) connections_ready: u64,
    pub(crate) connections_failed: u64,
    pub(crate) groups_live: u64,
    pub(crate) window_ns: u64,
    pub(crate) client_cpu_us: u64,
    pub(crate) server_cpu_us: Option<u64>,
    pub(crate) rss_before_kib: Option<u64>,
    pub(crate) rss_connected_kib: Option<u64>,
    pub(crate) rss_after_kib: Option<u64>,
    pub(crate) setup_ns: u64,
    pub(crate) nofile_limit: u64,
    pub(crate) error_samples: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    NotStarted,
    Connecting,
    Upgrading,
    Open,
    Closed,
}

#[derive(Debug)]
struct Conn {
    stream: Option<TcpStream>,
    state: State,
    group: usize,
    pos: usize,
    id: String,
    session: String,
    accept: String,
    mask: [u8; 4],
    attempts: u8,
    session_tries: u8,
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    frag: Vec<u8>,
    frag_open: bool,
    /// Send timestamps of messages in flight to this client, one queue per sender position.
    fifos: Vec<VecDeque<u64>>,
    steady: Vec<u8>,
    hello: bool,
    ready: bool,
    neg_recv: usize,
    negotiated: bool,
    dirty: bool,
    reread: bool,
    /// start, TCP connected, 101 received, greeting, ready (ns).
    t: [u64; 5],
    retry_at: u64,
}

#[derive(Debug, Default)]
struct Group {
    name: String,
    members: Vec<usize>,
    ready: usize,
    presence: usize,
    started: bool,
    negotiated: usize,
    failed: bool,
    settled: bool,
    live: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Setup,
    Warmup,
    Measure,
    Drain,
    Hold,
    Done,
}

struct Engine<'p> {
    plan: &'p Plan,
    poll: Poll,
    timer: sys::Timer,
    conns: Vec<Conn>,
    groups: Vec<Group>,
    scratch: Vec<u8>,
    dirty: Vec<usize>,
    reread: Vec<usize>,
    phase: Phase,
    started: usize,
    finished: usize,
    next_to_start: usize,
    groups_settled: usize,
    in_flight: u64,
    t_begin: u64,
    t_steady: u64,
    measure_start: u64,
    measure_end: u64,
    drain_deadline: u64,
    hold_end: u64,
    hard_deadline: u64,
    senders: Vec<usize>,
    next_k: u64,
    interval_ns: f64,
    next_heartbeat: u64,
    nonce: u64,
    cpu_client_start: u64,
    cpu_server_start: Option<u64>,
    ticks: u64,
    out: Outcome,
    bar: indicatif::ProgressBar,
    last_progress: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).expect("static histogram bounds are valid")
}

/// Runs one scenario to completion.
pub(crate) fn run(plan: &Plan) -> Result<Outcome, String> {
    let nofile = sys::raise_nofile_limit();
    if (plan.connections as u64) + 64 > nofile {
        return Err(format!(
            "{} connections need more file descriptors than RLIMIT_NOFILE allows ({nofile})\n  \
             hint: raise the hard limit (ulimit -Hn, or LimitNOFILE= under systemd)",
            plan.connections
        ));
    }
    let mut engine = Engine::new(plan, nofile)?;
    engine.run()?;
    Ok(engine.out)
}

impl<'p> Engine<'p> {
    fn new(plan: &'p Plan, nofile: u64) -> Result<Self, String> {
        let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
        let timer = sys::Timer::new().map_err(|e| format!("timerfd: {e}"))?;
        poll.registry()
            .register(&mut SourceFd(&timer.as_raw_fd()), TIMER, Interest::READABLE)
            .map_err(|e| format!("register timer: {e}"))?;
        let now = sys::mono_ns();
        let nonce = now ^ u64::from(std::process::id()).rotate_left(32);
        let group_size = plan.group_size.max(1);
        let group_count = plan.connections.div_ceil(group_size);
        let mut groups: Vec<Group> = (0..group_count)
            .map(|g| Group {
                name: format!("b{:x}-{g}", nonce & 0xffff),
                ..Group::default()
            })
            .collect();
        let conns = (0..plan.connections)
            .map(|i| {
                let g = i / group_size;
                groups[g].members.push(i);
                let m = (i as u32).wrapping_mul(0x9e37_79b9) ^ 0x5a5a_a5a5;
                Conn {
                    stream: None,
                    state: State::NotStarted,
                    group: g,
                    pos: i % group_size,
                    id: if plan.dialect.client_chooses_id() {
                        format!("b{:x}x{i}", nonce & 0xff_ffff)
                    } else {
                        String::new()
                    },
                    session: String::new(),
                    accept: String::new(),
                    mask: m.to_le_bytes(),
                    attempts: 0,
                    session_tries: 0,
                    out: Vec::new(),
                    out_pos: 0,
                    inbuf: Vec::new(),
                    frag: Vec::new(),
                    frag_open: false,
                    fifos: Vec::new(),
                    steady: Vec::new(),
                    hello: false,
                    ready: false,
                    neg_recv: 0,
                    negotiated: false,
                    dirty: false,
                    reread: false,
                    t: [0; 5],
                    retry_at: 0,
                }
            })
            .collect();
        let hard_deadline = now
            + plan.setup_timeout_ns
            + plan.warmup_ns
            + plan.duration_ns
            + plan.drain_timeout_ns
            + 5_000_000_000;
        let bar = if plan.progress {
            let b = indicatif::ProgressBar::with_draw_target(
                Some(plan.connections as u64),
                indicatif::ProgressDrawTarget::stderr_with_hz(5),
            );
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {prefix:>8} [{bar:30}] {pos}/{len} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.set_prefix("connect");
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        Ok(Engine {
            plan,
            poll,
            timer,
            conns,
            groups,
            scratch: vec![0; READ_CHUNK_BYTES],
            dirty: Vec::new(),
            reread: Vec::new(),
            phase: Phase::Setup,
            started: 0,
            finished: 0,
            next_to_start: 0,
            groups_settled: 0,
            in_flight: 0,
            t_begin: now,
            t_steady: 0,
            measure_start: u64::MAX,
            measure_end: u64::MAX,
            drain_deadline: u64::MAX,
            hold_end: u64::MAX,
            hard_deadline,
            senders: Vec::new(),
            next_k: 0,
            interval_ns: 0.0,
            next_heartbeat: plan
                .dialect
                .heartbeat()
                .map_or(u64::MAX, |(_, every)| now + every),
            nonce,
            cpu_client_start: 0,
            cpu_server_start: None,
            ticks: sys::clock_ticks_per_s(),
            out: Outcome {
                latency: histogram(),
                negotiation: histogram(),
                steps: Steps {
                    connect: histogram(),
                    upgrade: histogram(),
                    hello: histogram(),
                    join: histogram(),
                    total: histogram(),
                },
                sent: 0,
                expected: 0,
                received: 0,
                delivered_in_window: 0,
                errors: 0,
                reconnects: 0,
                unexpected: 0,
                refused_sends: 0,
                connections_ready: 0,
                connections_failed: 0,
                groups_live: 0,
                window_ns: 0,
                client_cpu_us: 0,
                server_cpu_us: None,
                rss_before_kib: plan.server_pid.and_then(sys::proc_rss_kib),
                rss_connected_kib: None,
                rss_after_kib: None,
                setup_ns: 0,
                nofile_limit: nofile,
                error_samples: Vec::new(),
            },
            bar,
            last_progress: 0,
        })
    }

    fn run(&mut self) -> Result<(), String> {
        if self.plan.scenario == Scenario::Storm {
            self.window_begin();
        }
        let mut events = Events::with_capacity(4096);
        while self.phase != Phase::Done {
            let now = sys::mono_ns();
            if now >= self.hard_deadline {
                self.note_error("hard deadline reached; stopping".into());
                break;
            }
            let timeout = self.poll_timeout(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(format!("epoll_wait: {e}"));
                }
            }
            for ev in &events {
                if ev.token() == TIMER {
                    self.timer.drain();
                    continue;
                }
                self.on_event(
                    ev.token().0,
                    ev.is_writable(),
                    ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                );
            }
            let reread = std::mem::take(&mut self.reread);
            for i in reread {
                self.conns[i].reread = false;
                if matches!(self.conns[i].state, State::Upgrading | State::Open) {
                    self.on_event(i, false, true);
                }
            }
            self.tick(sys::mono_ns());
            self.flush_dirty();
            self.progress(sys::mono_ns());
        }
        self.bar.finish_and_clear();
        self.finish();
        Ok(())
    }

    fn poll_timeout(&self, now: u64) -> Duration {
        if !self.reread.is_empty() || !self.dirty.is_empty() {
            return Duration::ZERO;
        }
        let next = match self.phase {
            Phase::Setup => now + 10_000_000,
            Phase::Warmup => self.measure_start,
            Phase::Measure => self.measure_end,
            Phase::Drain => self.drain_deadline.min(now + 10_000_000),
            Phase::Hold => self.hold_end,
            Phase::Done => now,
        };
        let next = next.min(self.next_heartbeat).min(now + 100_000_000);
        Duration::from_nanos(next.saturating_sub(now))
    }

    // ----- connections -------------------------------------------------------------------

    fn start_connect(&mut self, i: usize, now: u64) {
        let plan = self.plan;
        let c = &mut self.conns[i];
        c.attempts += 1;
        c.t = [now, 0, 0, 0, 0];
        c.inbuf.clear();
        c.out.clear();
        c.out_pos = 0;
        let result = (|| -> io::Result<TcpStream> {
            let sock = Socket::new(
                Domain::for_address(plan.addr),
                Type::STREAM,
                Some(Protocol::TCP),
            )?;
            sock.set_nonblocking(true)?;
            sock.set_tcp_nodelay(true)?;
            if !plan.source_ips.is_empty() {
                let ip = plan.source_ips[i % plan.source_ips.len()];
                sock.bind(&SocketAddr::new(ip, 0).into())?;
            }
            match sock.connect(&plan.addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(e),
            }
            Ok(TcpStream::from_std(sock.into()))
        })();
        match result {
            Ok(mut s) => {
                if let Err(e) = self.poll.registry().register(
                    &mut s,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    self.conn_failed(i, format!("register: {e}"));
                    return;
                }
                let c = &mut self.conns[i];
                c.stream = Some(s);
                c.state = State::Connecting;
            }
            Err(e) => self.conn_failed(i, format!("connect {}: {e}", plan.addr)),
        }
    }

    /// A connection attempt failed or an open connection ended.
    fn conn_failed(&mut self, i: usize, why: String) {
        let now = sys::mono_ns();
        let c = &mut self.conns[i];
        if let Some(mut s) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        let was = c.state;
        c.state = State::Closed;
        c.inbuf.clear();
        c.frag.clear();
        c.frag_open = false;
        if self.phase == Phase::Done || (self.phase >= Phase::Drain && was == State::Open) {
            return;
        }
        let before_ready = !c.ready && self.phase == Phase::Setup;
        if before_ready && c.attempts < ATTEMPTS_MAX && !c.hello {
            self.out.reconnects += 1;
            self.start_connect(i, now);
            return;
        }
        self.note_error(why);
        let g = self.conns[i].group;
        if !self.conns[i].ready {
            self.out.connections_failed += 1;
            self.finished += 1;
        }
        self.fail_group(g);
    }

    fn fail_group(&mut self, g: usize) {
        let grp = &mut self.groups[g];
        if grp.failed {
            return;
        }
        grp.failed = true;
        if grp.live {
            grp.live = false;
            self.out.groups_live = self.out.groups_live.saturating_sub(1);
        }
        // A group that had not settled settles now (as failed); drop what its members
        // still expect, so that the drain does not wait for it.
        let members = grp.members.clone();
        self.settle(g);
        for m in members {
            let c = &mut self.conns[m];
            for f in &mut c.fifos {
                self.in_flight -= f.len() as u64;
                f.clear();
            }
        }
    }

    /// Counts group `g` as done with set-up (ready, or failed), once.
    fn settle(&mut self, g: usize) {
        if !self.groups[g].settled {
            self.groups[g].settled = true;
            self.groups_settled += 1;
        }
    }

    fn note_error(&mut self, why: String) {
        self.out.errors += 1;
        if self.out.error_samples.len() < ERROR_SAMPLES_MAX
            && !self.out.error_samples.contains(&why)
        {
            self.out.error_samples.push(why);
        }
    }

    fn on_event(&mut self, i: usize, writable: bool, readable: bool) {
        let Some(c) = self.conns.get(i) else { return };
        match c.state {
            State::Connecting => {
                let s = c.stream.as_ref().expect("a connecting client has a socket");
                match s.take_error() {
                    Ok(None) => {}
                    Ok(Some(e)) | Err(e) => {
                        self.conn_failed(i, format!("connect: {e}"));
                        return;
                    }
                }
                match s.peer_addr() {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        if readable {
                            self.conn_failed(i, "connect: closed".into());
                        }
                        return;
                    }
                    Err(e) => {
                        self.conn_failed(i, format!("connect: {e}"));
                        return;
                    }
                }
                let now = sys::mono_ns();
                let plan = self.plan;
                let (key, accept) = wire::handshake_key(i, self.nonce ^ u64::from(c.attempts));
                let token = format!("t{:x}", self.nonce.rotate_left(i as u32 % 64));
                let c = &mut self.conns[i];
                let room = &self.groups[c.group].name;
                let path = plan.dialect.path(&plan.base_path, room, &c.id, &token);
                c.out
                    .extend_from_slice(&wire::upgrade_request(&plan.host, &path, &key));
                c.accept = accept;
                c.t[1] = now;
                c.state = State::Upgrading;
                self.mark_dirty(i);
                if readable {
                    self.read_ready(i);
                }
            }
            State::Upgrading | State::Open => {
                if readable {
                    self.read_ready(i);
                }
                if writable && self.conns[i].out.len() > self.conns[i].out_pos {
                    self.mark_dirty(i);
                }
            }
            State::NotStarted | State::Closed => {}
        }
    }

    fn read_ready(&mut self, i: usize) {
        // Edge-triggered: read until WouldBlock, but at most READS_PER_EVENT_MAX times per
        // turn so that one busy client cannot starve the rest; the remainder is read next
        // turn.
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut exhausted = true;
        for _ in 0..READS_PER_EVENT_MAX {
            let state = self.conns[i].state;
            let Some(s) = self.conns[i].stream.as_mut() else {
                exhausted = false;
                break;
            };
            if !matches!(state, State::Upgrading | State::Open) {
                exhausted = false;
                break;
            }
            match s.read(&mut scratch) {
                Ok(0) => {
                    self.conn_failed(i, "server closed the connection".into());
                    exhausted = false;
                    break;
                }
                Ok(n) => {
                    self.on_bytes(i, &scratch[..n]);
                    if n < scratch.len() {
                        // A short read took everything the socket held; data arriving
                        // later raises a new edge, so the confirming read that would
                        // return EAGAIN (one wasted syscall per message) is skipped.
                        exhausted = false;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    exhausted = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.conn_failed(i, format!("read: {e}"));
                    exhausted = false;
                    break;
                }
            }
        }
        if exhausted && !self.conns[i].reread {
            self.conns[i].reread = true;
            self.reread.push(i);
        }
        self.scratch = scratch;
    }

    fn on_bytes(&mut self, i: usize, data: &[u8]) {
        let c = &mut self.conns[i];
        if c.state == State::Upgrading {
            c.inbuf.extend_from_slice(data);
            match wire::check_upgrade(&c.inbuf, &c.accept) {
                Upgrade::Incomplete => return,
                Upgrade::Refused(status) => {
                    let why = format!("upgrade refused: {status}");
                    self.conn_failed(i, why);
                    return;
                }
                Upgrade::Accepted(off) => {
                    c.inbuf.drain(..off);
                    c.state = State::Open;
                    c.t[2] = sys::mono_ns();
                    if !self.plan.dialect.greets() {
                        // Nothing will greet this client: the upgrade stands for the
                        // greeting, and with no room to join the client is ready.
                        c.hello = true;
                        c.t[3] = c.t[2];
                        self.mark_ready(i);
                    }
                }
            }
            let c = &mut self.conns[i];
            let buf = std::mem::take(&mut c.inbuf);
            let used = self.on_frames(i, &buf);
            self.keep_rest(i, buf, used);
            return;
        }
        if c.inbuf.is_empty() {
            let used = self.on_frames(i, data);
            if used < data.len() && self.conns[i].state == State::Open {
                self.conns[i].inbuf.extend_from_slice(&data[used..]);
            }
        } else {
            c.inbuf.extend_from_slice(data);
            let buf = std::mem::take(&mut c.inbuf);
            let used = self.on_frames(i, &buf);
            self.keep_rest(i, buf, used);
        }
    }

    fn keep_rest(&mut self, i: usize, mut buf: Vec<u8>, used: usize) {
        let c = &mut self.conns[i];
        if c.state != State::Open {
            return;
        }
        buf.drain(..used.min(buf.len()));
        // Anything appended meanwhile (nothing, today) would follow the kept bytes.
        buf.extend_from_slice(&c.inbuf);
        c.inbuf = buf;
    }

    /// Handles the complete frames at the start of `buf`; returns the bytes used.
    fn on_frames(&mut self, i: usize, buf: &[u8]) -> usize {
        let mut off = 0;
        while self.conns[i].state == State::Open {
            match wire::parse_frame(&buf[off..]) {
                Frame::Incomplete => break,
                Frame::Invalid => {
                    self.conn_failed(i, "invalid frame from the server".into());
                    return buf.len();
                }
                Frame::Complete {
                    fin,
                    opcode,
                    payload,
                    len,
                } => {
                    off += len;
                    match opcode {
                        wire::OP_TEXT | wire::OP_BINARY if fin && !self.conns[i].frag_open => {
                            self.on_message(i, payload);
                        }
                        wire::OP_TEXT | wire::OP_BINARY | wire::OP_CONTINUATION => {
                            let c = &mut self.conns[i];
                            c.frag.extend_from_slice(payload);
                            c.frag_open = !fin;
                            if fin {
                                let msg = std::mem::take(&mut c.frag);
                                self.on_message(i, &msg);
                                let c = &mut self.conns[i];
                                c.frag = msg;
                                c.frag.clear();
                            }
                        }
                        wire::OP_PING => {
                            let c = &mut self.conns[i];
                            wire::push_masked(&mut c.out, wire::OP_PONG, payload, c.mask);
                            self.mark_dirty(i);
                        }
                        wire::OP_CLOSE => {
                            let c = &mut self.conns[i];
                            wire::push_masked(&mut c.out, wire::OP_CLOSE, &[], c.mask);
                            if let Some(s) = c.stream.as_mut() {
                                let _ = s.write(&c.out[c.out_pos..]);
                            }
                            let code = payload
                                .get(..2)
                                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
                            let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or(&[]))
                                .into_owned();
                            self.conn_failed(i, format!("server closed: {code} {reason}"));
                            return buf.len();
                        }
                        _ => {}
                    }
                }
            }
        }
        off
    }

    fn mark_dirty(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(i);
        }
    }

    fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &i in &dirty {
            self.conns[i].dirty = false;
            self.flush(i);
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    fn flush(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let Some(s) = c.stream.as_mut() else {
            c.out.clear();
            c.out_pos = 0;
            return;
        };
        if c.state == State::Connecting {
            return;
        }
        while c.out_pos < c.out.len() {
            match s.write(&c.out[c.out_pos..]) {
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.conn_failed(i, format!("write: {e}"));
                    return;
                }
            }
        }
        c.out.clear();
        c.out_pos = 0;
    }

    fn send_text(&mut self, i: usize, text: &str) {
        let c = &mut self.conns[i];
        wire::push_masked(&mut c.out, wire::OP_TEXT, text.as_bytes(), c.mask);
        self.mark_dirty(i);
    }

    // ----- protocol events ---------------------------------------------------------------

    fn on_message(&mut self, i: usize, text: &[u8]) {
        let dialect = self.plan.dialect;
        match dialect.classify(text) {
            Inbound::Relayed { from } => self.on_relayed(i, from),
            Inbound::Hello { id } => {
                let now = sys::mono_ns();
                let c = &mut self.conns[i];
                if c.hello {
                    return;
                }
                c.hello = true;
                c.t[3] = now;
                if let Some(id) = id {
                    c.id = id;
                }
                let g = c.group;
                let producer = c.pos == 0;
                match dialect.join(&self.groups[g].name, producer) {
                    Some(join) => self.send_text(i, &join),
                    None if dialect == Dialect::Gst => {}
                    None => self.mark_ready(i),
                }
                if dialect == Dialect::Gst {
                    if self.plan.group_size == 1 {
                        // A lone gst client (storm/idle with --room-size 1) is ready once
                        // greeted: there is no one to start a session with.
                        self.mark_ready(i);
                    } else {
                        self.maybe_request_session(g, now);
                    }
                }
            }
            Inbound::Joined => self.mark_ready(i),
            Inbound::Presence => {
                let g = self.conns[i].group;
                self.groups[g].presence += 1;
                self.maybe_start_group(g);
            }
            Inbound::Session { id } => {
                let c = &mut self.conns[i];
                c.session = id;
                self.mark_ready(i);
            }
            Inbound::Error(why) => {
                let c = &self.conns[i];
                if dialect == Dialect::Gst
                    && !c.ready
                    && c.pos == 1
                    && c.session_tries < SESSION_TRIES_MAX
                    && self.phase == Phase::Setup
                {
                    // The producer's status may not have reached the server yet: ask again.
                    let c = &mut self.conns[i];
                    c.retry_at = sys::mono_ns() + 20_000_000;
                    return;
                }
                self.note_error(why);
            }
            Inbound::Ignored => {}
        }
    }

    /// gst: the consumer asks for a session once both members are greeted.
    fn maybe_request_session(&mut self, g: usize, now: u64) {
        let members = &self.groups[g].members;
        if members.len() < 2 || !members.iter().all(|&m| self.conns[m].hello) {
            return;
        }
        let consumer = members[1];
        // Give the producer's setPeerStatus a head start (it goes out this turn).
        self.conns[consumer].retry_at = now + 2_000_000;
    }

    fn mark_ready(&mut self, i: usize) {
        let now = sys::mono_ns();
        let c = &mut self.conns[i];
        if c.ready {
            return;
        }
        c.ready = true;
        c.t[4] = now;
        let t = c.t;
        let s = &mut self.out.steps;
        let rec = |h: &mut Histogram<u64>, a: u64, b: u64| {
            if a != 0 && b >= a {
                h.saturating_record((b - a).max(1));
            }
        };
        rec(&mut s.connect, t[0], t[1]);
        rec(&mut s.upgrade, t[1], t[2]);
        rec(&mut s.hello, t[2], t[3]);
        rec(&mut s.join, t[3], t[4]);
        rec(&mut s.total, t[0], t[4]);
        self.out.connections_ready += 1;
        self.finished += 1;
        let g = c.group;
        self.groups[g].ready += 1;
        self.maybe_start_group(g);
    }

    fn maybe_start_group(&mut self, g: usize) {
        let plan = self.plan;
        let grp = &self.groups[g];
        let n = grp.members.len();
        if grp.started
            || grp.failed
            || grp.ready < n
            || (plan.dialect.needs_presence() && n > 1 && grp.presence < n - 1)
        {
            return;
        }
        self.groups[g].started = true;
        if !plan.steady() {
            self.settle(g);
            return;
        }
        // Per-sender timestamp queues and the pre-masked steady frame of every member.
        let members = self.groups[g].members.clone();
        for (pos, &m) in members.iter().enumerate() {
            let frame = if plan.scenario == Scenario::Rooms {
                plan.dialect
                    .broadcast(&self.groups[g].name, &plan.payload)
                    .unwrap_or_default()
            } else {
                let partner = members[(pos + 1) % n];
                plan.dialect
                    .targeted(Kind::Message(&plan.payload), &self.target_of(m, partner))
            };
            let c = &mut self.conns[m];
            c.fifos = (0..n).map(|_| VecDeque::new()).collect();
            c.steady = wire::masked_text(frame.as_bytes(), c.mask);
        }
        if plan.negotiates() && n == 2 {
            self.send_offer(members[0], members[1]);
        } else {
            for &m in &members {
                self.conns[m].negotiated = true;
            }
            self.groups[g].negotiated = n;
            self.settle(g);
        }
    }

    /// The address `from` uses to reach `to`: its id, or (gst) their shared session.
    fn target_of(&self, from: usize, to: usize) -> String {
        if self.plan.dialect == Dialect::Gst {
            self.conns[from].session.clone()
        } else {
            self.conns[to].id.clone()
        }
    }

    fn send_negotiation(&mut self, from: usize, to: usize, kind: Kind<'_>) {
        let text = self.plan.dialect.targeted(kind, &self.target_of(from, to));
        let now = sys::mono_ns();
        let pos = self.conns[from].pos;
        self.conns[to].fifos[pos].push_back(now);
        self.in_flight += 1;
        self.send_text(from, &text);
    }

    fn send_offer(&mut self, caller: usize, callee: usize) {
        let offer = sdp::offer(caller as u64 ^ self.nonce);
        self.send_negotiation(caller, callee, Kind::Offer(&offer));
        for n in 0..sdp::CANDIDATES_PER_SIDE {
            let cand = sdp::candidate(caller as u64 ^ self.nonce, n);
            self.send_negotiation(caller, callee, Kind::Candidate(&cand));
        }
    }

    fn send_answer(&mut self, callee: usize, caller: usize) {
        let answer = sdp::answer(callee as u64 ^ self.nonce);
        self.send_negotiation(callee, caller, Kind::Answer(&answer));
        for n in 0..sdp::CANDIDATES_PER_SIDE {
            let cand = sdp::candidate(callee as u64 ^ self.nonce, n);
            self.send_negotiation(callee, caller, Kind::Candidate(&cand));
        }
    }

    fn on_relayed(&mut self, i: usize, from: Option<&[u8]>) {
        let now = sys::mono_ns();
        let g = self.conns[i].group;
        let n = self.groups[g].members.len();
        let me = self.conns[i].pos;
        let from_pos = if self.plan.dialect.echoes() {
            me
        } else if n == 2 {
            1 - me
        } else {
            let found = from.and_then(|f| {
                self.groups[g]
                    .members
                    .iter()
                    .position(|&m| self.conns[m].id.as_bytes() == f)
            });
            match found {
                Some(p) => p,
                None => {
                    self.out.unexpected += 1;
                    return;
                }
            }
        };
        let Some(ts) = self.conns[i]
            .fifos
            .get_mut(from_pos)
            .and_then(VecDeque::pop_front)
        else {
            self.out.unexpected += 1;
            return;
        };
        self.in_flight -= 1;
        let latency = now.saturating_sub(ts).max(1);
        if !self.conns[i].negotiated {
            self.out.negotiation.saturating_record(latency);
            let c = &mut self.conns[i];
            c.neg_recv += 1;
            if me == 1 && c.neg_recv == 1 {
                let caller = self.groups[g].members[0];
                self.send_answer(i, caller);
            }
            let c = &mut self.conns[i];
            if c.neg_recv == 1 + sdp::CANDIDATES_PER_SIDE {
                c.negotiated = true;
                self.groups[g].negotiated += 1;
                if self.groups[g].negotiated == n {
                    self.settle(g);
                }
            }
            return;
        }
        if ts >= self.measure_start && ts < self.measure_end {
            self.out.received += 1;
            self.out
                .latency
                .saturating_record(latency.min(LATENCY_NS_MAX));
        }
        if now >= self.measure_start && now < self.measure_end {
            self.out.delivered_in_window += 1;
        }
        let closed_loop = self.plan.rate <= 0.0;
        let running =
            matches!(self.phase, Phase::Warmup | Phase::Measure) && now < self.measure_end;
        if closed_loop && running {
            let predecessor = (me + n - 1) % n;
            if self.plan.dialect.echoes() {
                // The turn passes to the partner, as a relayed reply would.
                let partner = self.groups[g].members[(me + 1) % n];
                self.send_steady(partner, now);
            } else if n == 2 || from_pos == predecessor {
                self.send_steady(i, now);
            }
        }
    }

    /// Queues client `i`'s steady frame, timestamped `ts` (actual or scheduled send time).
    fn send_steady(&mut self, i: usize, ts: u64) {
        let g = self.conns[i].group;
        if self.groups[g].failed || !self.groups[g].live {
            return;
        }
        let c = &mut self.conns[i];
        if c.out.len() > OUT_QUEUE_BYTES_MAX {
            self.out.refused_sends += 1;
            return;
        }
        c.out.extend_from_slice(&c.steady);
        let pos = c.pos;
        let n = self.groups[g].members.len();
        let receivers = if self.plan.dialect.echoes() {
            self.conns[i].fifos[pos].push_back(ts);
            self.in_flight += 1;
            1
        } else {
            for k in 0..n {
                let r = self.groups[g].members[k];
                if r != i {
                    self.conns[r].fifos[pos].push_back(ts);
                    self.in_flight += 1;
                }
            }
            n as u64 - 1
        };
        if ts >= self.measure_start && ts < self.measure_end {
            self.out.sent += 1;
            self.out.expected += receivers;
        }
        self.mark_dirty(i);
    }

    // ----- time-driven work --------------------------------------------------------------

    fn tick(&mut self, now: u64) {
        match self.phase {
            Phase::Setup => self.tick_setup(now),
            Phase::Warmup => {
                self.send_scheduled(now);
                if now >= self.measure_start {
                    self.window_begin();
                    self.phase = Phase::Measure;
                }
            }
            Phase::Measure => {
                self.send_scheduled(now);
                if now >= self.measure_end {
                    self.window_end(now);
                    self.phase = Phase::Drain;
                    self.drain_deadline = now + self.plan.drain_timeout_ns;
                }
            }
            Phase::Drain => {
                if self.in_flight == 0 || now >= self.drain_deadline {
                    if self.in_flight != 0 {
                        self.note_error(format!(
                            "{} messages still in flight after the drain timeout",
                            self.in_flight
                        ));
                    }
                    self.phase = Phase::Done;
                }
            }
            Phase::Hold => {
                if now >= self.hold_end {
                    self.out.rss_after_kib = self.plan.server_pid.and_then(sys::proc_rss_kib);
                    self.window_end(now);
                    self.phase = Phase::Done;
                }
            }
            Phase::Done => {}
        }
        if now >= self.next_heartbeat {
            if let Some((frame, every)) = self.plan.dialect.heartbeat() {
                for i in 0..self.conns.len() {
                    if self.conns[i].state == State::Open {
                        self.send_text(i, frame);
                    }
                }
                self.next_heartbeat = now + every;
            }
        }
    }

    fn tick_setup(&mut self, now: u64) {
        // Start connections while fewer than `concurrency` handshakes are in flight.
        while self.next_to_start < self.conns.len()
            && self.started - self.finished < self.plan.concurrency
        {
            let i = self.next_to_start;
            self.next_to_start += 1;
            self.started += 1;
            self.start_connect(i, now);
        }
        if self.plan.dialect == Dialect::Gst {
            for i in 0..self.conns.len() {
                let c = &self.conns[i];
                if c.retry_at != 0 && c.retry_at <= now && !c.ready {
                    let producer = self.groups[c.group].members[0];
                    let text = Dialect::start_session(&self.conns[producer].id);
                    let c = &mut self.conns[i];
                    c.retry_at = 0;
                    c.session_tries += 1;
                    self.send_text(i, &text);
                }
            }
        }
        let all_started = self.next_to_start == self.conns.len();
        let settled = self.groups_settled >= self.groups.len();
        let timed_out = now >= self.t_begin + self.plan.setup_timeout_ns;
        if !(all_started && (settled || timed_out)) {
            return;
        }
        self.out.setup_ns = now - self.t_begin;
        if timed_out && !settled {
            let unsettled = self
                .groups
                .iter()
                .filter(|g| !(g.failed || g.started && g.negotiated == g.members.len()))
                .count();
            self.note_error(format!(
                "set-up timed out with {unsettled} groups not ready (--setup-timeout)"
            ));
        }
        match self.plan.scenario {
            Scenario::Storm => {
                self.window_end(now);
                self.phase = Phase::Done;
            }
            Scenario::Idle => {
                self.out.rss_connected_kib = self.plan.server_pid.and_then(sys::proc_rss_kib);
                self.window_begin();
                self.hold_end = now + self.plan.duration_ns;
                self.phase = Phase::Hold;
                self.bar.set_prefix("hold");
            }
            Scenario::Pairs | Scenario::Rooms => self.begin_steady(now),
        }
    }

    fn begin_steady(&mut self, now: u64) {
        for g in 0..self.groups.len() {
            let grp = &mut self.groups[g];
            if !grp.failed && grp.started && grp.negotiated == grp.members.len() {
                grp.live = true;
                self.out.groups_live += 1;
                for &m in &grp.members {
                    self.senders.push(m);
                }
            }
        }
        if self.out.groups_live == 0 {
            self.note_error("no group finished set-up; nothing to measure".into());
            self.phase = Phase::Done;
            return;
        }
        self.t_steady = now;
        self.measure_start = now + self.plan.warmup_ns;
        self.measure_end = self.measure_start + self.plan.duration_ns;
        self.phase = Phase::Warmup;
        self.bar.set_prefix("warmup");
        self.bar
            .set_length((self.plan.warmup_ns + self.plan.duration_ns) / 1_000_000);
        if self.plan.rate > 0.0 {
            // Senders take turns on one evenly spaced schedule.
            self.interval_ns = 1e9 / self.plan.rate;
            self.next_k = 0;
            self.timer.arm_at(now);
        } else {
            for g in 0..self.groups.len() {
                if self.groups[g].live {
                    let first = self.groups[g].members[0];
                    for _ in 0..self.plan.depth.max(1) {
                        self.send_steady(first, now);
                    }
                }
            }
        }
        if self.plan.warmup_ns == 0 {
            self.window_begin();
            self.phase = Phase::Measure;
        }
    }

    fn send_scheduled(&mut self, now: u64) {
        if self.plan.rate <= 0.0 || self.senders.is_empty() {
            return;
        }
        let senders = self.senders.len() as u64;
        let mut sent = 0;
        loop {
            let due = self.t_steady + (self.next_k as f64 * self.interval_ns) as u64;
            if due >= self.measure_end {
                return;
            }
            if due > now || sent >= SCHEDULED_PER_TURN_MAX {
                self.timer.arm_at(due);
                return;
            }
            let i = self.senders[(self.next_k % senders) as usize];
            self.send_steady(i, due);
            self.next_k += 1;
            sent += 1;
        }
    }

    fn window_begin(&mut self) {
        self.cpu_client_start = sys::own_cpu_us();
        self.cpu_server_start = self
            .plan
            .server_pid
            .and_then(|p| sys::proc_cpu_us(p, self.ticks));
        if self.measure_start == u64::MAX {
            self.measure_start = sys::mono_ns();
        }
        self.bar.set_prefix("measure");
    }

    fn window_end(&mut self, now: u64) {
        let start = if self.measure_start == u64::MAX {
            self.t_begin
        } else {
            self.measure_start
        };
        self.out.window_ns = now.saturating_sub(start);
        self.out.client_cpu_us = sys::own_cpu_us().saturating_sub(self.cpu_client_start);
        let end = self
            .plan
            .server_pid
            .and_then(|p| sys::proc_cpu_us(p, self.ticks));
        self.out.server_cpu_us = match (self.cpu_server_start, end) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        self.bar.set_prefix("drain");
    }

    fn progress(&mut self, now: u64) {
        if !self.plan.progress || now < self.last_progress + 200_000_000 {
            return;
        }
        self.last_progress = now;
        match self.phase {
            Phase::Setup => {
                self.bar.set_position(self.out.connections_ready);
                self.bar.set_message(format!(
                    "ready, {} groups settled, {} errors",
                    self.groups_settled, self.out.errors
                ));
            }
            Phase::Warmup | Phase::Measure | Phase::Hold => {
                let base = if self.phase == Phase::Hold {
                    self.hold_end - self.plan.duration_ns
                } else {
                    self.t_steady
                };
                self.bar.set_position(now.saturating_sub(base) / 1_000_000);
                let secs = now.saturating_sub(self.measure_start.min(now)) as f64 / 1e9;
                let rate = if secs > 0.0 {
                    self.out.delivered_in_window as f64 / secs
                } else {
                    0.0
                };
                self.bar.set_message(format!(
                    "ms, {:.0} msgs/s, p99 {} µs, {} errors",
                    rate,
                    self.out.latency.value_at_quantile(0.99) / 1000,
                    self.out.errors
                ));
            }
            _ => {}
        }
    }

    fn finish(&mut self) {
        if self.phase != Phase::Done && self.out.window_ns == 0 {
            self.window_end(sys::mono_ns());
        }
        for i in 0..self.conns.len() {
            if let Some(mut s) = self.conns[i].stream.take() {
                let _ = self.poll.registry().deregister(&mut s);
            }
        }
    }
}
