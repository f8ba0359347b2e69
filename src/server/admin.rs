//! The admin listener: Prometheus metrics, liveness and readiness, on its own thread.
//!
//! This is the control plane. It never touches a shard: it reads the counters each shard
//! publishes into its [`ShardStats`] (plain atomics, written only by that shard), so a
//! scrape takes no lock and costs the data path nothing. It listens on its own address
//! (`[admin] listen`, loopback by default), apart from the public signaling port.
//!
//! The thread serves one request at a time:
//!
//! 1. Wait for a connection; `accept` gives up after [`ACCEPT_WAIT_MS`] so the thread sees
//!    the quit flag.
//! 2. Read the request head, at most [`HEAD_BYTES_MAX`] bytes (431 past it) and within
//!    [`IO_TIMEOUT_MS`].
//! 3. Answer `GET /metrics`, `GET /healthz` or `GET /readyz` (HEAD too), then close.
//!
//! Readiness means every shard turned its loop within the last [`LOOP_STALL_MS`]: an idle
//! shard still turns at least once a second (its wait is bounded), so a shard stuck in a
//! system call or a loop shows up here, and stops the systemd watchdog pings
//! ([`super::notify`]).

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::proto::signal::{ErrorCode, Kind};
use crate::shard::{sys, ClusterStats, ShardStats, Shared, CLOSE_CODES};

/// Largest request head the admin listener reads (431 past it).
pub const HEAD_BYTES_MAX: usize = 8192;
/// Read and write timeout of one admin connection.
pub const IO_TIMEOUT_MS: u64 = 2000;
/// How long one `accept` waits before the thread looks at its quit flag again.
pub const ACCEPT_WAIT_MS: u64 = 250;
/// A shard whose loop has not turned for this long is not ready (and not alive for the
/// watchdog). Idle shards turn at least every 1000 ms.
pub const LOOP_STALL_MS: u64 = 5000;

/// Why the server is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotReady {
    /// A stop was requested; the shards are draining.
    Stopping,
    /// A shard has not finished its first loop turn yet.
    NotStarted {
        /// The shard.
        shard: usize,
    },
    /// A shard's loop has not turned for `age_ms`.
    Stalled {
        /// The shard.
        shard: usize,
        /// Milliseconds since its last turn.
        age_ms: u64,
    },
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Stopping => write!(f, "stopping: draining connections"),
            NotReady::NotStarted { shard } => {
                write!(f, "shard {shard} has not started its loop yet")
            }
            NotReady::Stalled { shard, age_ms } => write!(
                f,
                "shard {shard} has not turned its loop for {age_ms} ms (likely cause: a hung \
                 system call or a busy loop in that shard)"
            ),
        }
    }
}

/// Whether every shard runs: not stopping, and each loop turned within `stall_ms` of
/// `now_ms` (milliseconds of [`sys::monotonic_ms`]).
///
/// # Errors
/// The first reason the server is not ready.
pub fn readiness(shared: &Shared, now_ms: u64, stall_ms: u64) -> Result<(), NotReady> {
    if shared.stop.load(Ordering::Acquire) {
        return Err(NotReady::Stopping);
    }
    for (shard, s) in shared.stats.iter().enumerate() {
        if s.loop_turns.load(Ordering::Relaxed) == 0 {
            return Err(NotReady::NotStarted { shard });
        }
        let age_ms = now_ms.saturating_sub(s.heartbeat_ms.load(Ordering::Relaxed));
        if age_ms > stall_ms {
            return Err(NotReady::Stalled { shard, age_ms });
        }
    }
    Ok(())
}

/// One per-shard series family read from a single counter.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    read: fn(&ShardStats) -> &AtomicU64,
}

const COUNTER: &str = "counter";
const GAUGE: &str = "gauge";

/// Every unlabelled per-shard family, in exposition order.
const FAMILIES: [Family; 20] = [
    Family {
        name: "switchboard_sessions",
        kind: GAUGE,
        help: "Live signaling sessions.",
        read: |s| &s.sessions,
    },
    Family {
        name: "switchboard_rooms",
        kind: GAUGE,
        help: "Rooms owned by the shard.",
        read: |s| &s.rooms,
    },
    Family {
        name: "switchboard_open_connections",
        kind: GAUGE,
        help: "TCP connections open (HTTP, WebSocket and STUN over TCP).",
        read: |s| &s.open_connections,
    },
    Family {
        name: "switchboard_accepted_total",
        kind: COUNTER,
        help: "Connections accepted.",
        read: |s| &s.accepted,
    },
    Family {
        name: "switchboard_text_frames_in_total",
        kind: COUNTER,
        help: "WebSocket text frames received.",
        read: |s| &s.frames_in,
    },
    Family {
        name: "switchboard_frames_out_total",
        kind: COUNTER,
        help: "WebSocket frames queued for sending.",
        read: |s| &s.frames_out,
    },
    Family {
        name: "switchboard_received_bytes_total",
        kind: COUNTER,
        help: "Bytes received on TCP connections.",
        read: |s| &s.bytes_in,
    },
    Family {
        name: "switchboard_sent_bytes_total",
        kind: COUNTER,
        help: "Bytes sent on TCP connections.",
        read: |s| &s.bytes_out,
    },
    Family {
        name: "switchboard_relayed_total",
        kind: COUNTER,
        help: "Signaling messages relayed to a target or broadcast.",
        read: |s| &s.relayed,
    },
    Family {
        name: "switchboard_protocol_closes_total",
        kind: COUNTER,
        help: "Connections closed for a WebSocket protocol error.",
        read: |s| &s.protocol_closes,
    },
    Family {
        name: "switchboard_slow_reader_closes_total",
        kind: COUNTER,
        help: "Connections closed (1008) because their send queue passed its limit.",
        read: |s| &s.slow_reader_closes,
    },
    Family {
        name: "switchboard_http_errors_total",
        kind: COUNTER,
        help: "HTTP error answers sent (404, 405, 426, 431, 503, ...).",
        read: |s| &s.http_errors,
    },
    Family {
        name: "switchboard_ring_depth",
        kind: GAUGE,
        help: "Batches waiting in the shard's inbound cross-shard rings after its last turn.",
        read: |s| &s.ring_depth,
    },
    Family {
        name: "switchboard_ring_dropped_total",
        kind: COUNTER,
        help: "Cross-shard records dropped because a destination ring stayed full.",
        read: |s| &s.ring_dropped,
    },
    Family {
        name: "switchboard_loop_turns_total",
        kind: COUNTER,
        help: "Event loop turns.",
        read: |s| &s.loop_turns,
    },
    Family {
        name: "switchboard_stun_received_total",
        kind: COUNTER,
        help: "STUN datagrams and TCP requests received.",
        read: |s| &s.stun_received,
    },
    Family {
        name: "switchboard_stun_responses_total",
        kind: COUNTER,
        help: "STUN success responses sent.",
        read: |s| &s.stun_responses,
    },
    Family {
        name: "switchboard_stun_errors_total",
        kind: COUNTER,
        help: "STUN error responses sent.",
        read: |s| &s.stun_errors,
    },
    Family {
        name: "switchboard_stun_dropped_total",
        kind: COUNTER,
        help: "STUN input dropped unanswered (not STUN, malformed, bad fingerprint, ...).",
        read: |s| &s.stun_dropped,
    },
    Family {
        name: "switchboard_stun_rate_limited_total",
        kind: COUNTER,
        help: "STUN requests refused by the per-source rate limit.",
        read: |s| &s.stun_rate_limited,
    },
];

// The labelled families below index these arrays by the protocol's own lists.
const _: () = assert!(Kind::ALL.len() == 10);
const _: () = assert!(ErrorCode::ALL.len() == 14);
const _: () = assert!(CLOSE_CODES.len() + 1 == 9);

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes the Prometheus text exposition (format 0.0.4) of every shard's counters.
pub fn render(shared: &Shared, now_ms: u64, out: &mut String) {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    for f in &FAMILIES {
        header(out, f.name, f.kind, f.help);
        for (shard, s) in shared.stats.iter().enumerate() {
            let _ = writeln!(out, "{}{{shard=\"{shard}\"}} {}", f.name, load((f.read)(s)));
        }
    }

    let name = "switchboard_frames_in_total";
    header(out, name, COUNTER, "Signaling frames received, by type.");
    for (shard, s) in shared.stats.iter().enumerate() {
        for (kind, v) in Kind::ALL.iter().zip(&s.frames_in_by_kind) {
            let kind = kind.as_str();
            let _ = writeln!(
                out,
                "{name}{{shard=\"{shard}\",type=\"{kind}\"}} {}",
                load(v)
            );
        }
    }

    let name = "switchboard_errors_total";
    header(out, name, COUNTER, "Signaling error frames sent, by code.");
    for (shard, s) in shared.stats.iter().enumerate() {
        for (code, v) in ErrorCode::ALL.iter().zip(&s.errors_by_code) {
            let code = code.as_str();
            let _ = writeln!(
                out,
                "{name}{{shard=\"{shard}\",code=\"{code}\"}} {}",
                load(v)
            );
        }
    }

    let name = "switchboard_closes_total";
    header(
        out,
        name,
        COUNTER,
        "WebSocket close frames sent, by close code (\"other\" for any code not listed).",
    );
    for (shard, s) in shared.stats.iter().enumerate() {
        for (i, v) in s.closes_by_code.iter().enumerate() {
            let v = load(v);
            match CLOSE_CODES.get(i) {
                Some(code) => {
                    let _ = writeln!(out, "{name}{{shard=\"{shard}\",code=\"{code}\"}} {v}");
                }
                None => {
                    let _ = writeln!(out, "{name}{{shard=\"{shard}\",code=\"other\"}} {v}");
                }
            }
        }
    }

    let name = "switchboard_loop_age_seconds";
    header(
        out,
        name,
        GAUGE,
        "Seconds since the shard's loop last turned.",
    );
    for (shard, s) in shared.stats.iter().enumerate() {
        let age_ms = if load(&s.loop_turns) == 0 {
            now_ms
        } else {
            now_ms.saturating_sub(load(&s.heartbeat_ms))
        };
        let _ = writeln!(
            out,
            "{name}{{shard=\"{shard}\"}} {:.3}",
            age_ms as f64 / 1000.0
        );
    }

    let ready = readiness(shared, now_ms, LOOP_STALL_MS).is_ok();
    header(
        out,
        "switchboard_ready",
        GAUGE,
        "1 when every shard's loop is alive and no stop was requested (as /readyz).",
    );
    let _ = writeln!(out, "switchboard_ready {}", u8::from(ready));

    header(
        out,
        "switchboard_shards",
        GAUGE,
        "Shards (event-loop threads).",
    );
    let _ = writeln!(out, "switchboard_shards {}", shared.stats.len());

    header(
        out,
        "switchboard_driver_info",
        GAUGE,
        "The I/O driver every shard runs.",
    );
    let _ = writeln!(
        out,
        "switchboard_driver_info{{driver=\"{}\"}} 1",
        shared.driver.as_str()
    );

    if let Some(c) = &shared.cluster {
        render_cluster(c, out);
    }

    header(out, "switchboard_build_info", GAUGE, "The running build.");
    let _ = writeln!(
        out,
        "switchboard_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
}

/// The cluster bridge's series (only with `[cluster]` on).
fn render_cluster(c: &ClusterStats, out: &mut String) {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let up = c.up.load(Ordering::Relaxed);
    header(
        out,
        "switchboard_cluster_up",
        GAUGE,
        "1 while the cluster bridge is connected to Redis; 0 means the cluster is degraded \
         (local traffic is served, frames for other nodes are dropped).",
    );
    let _ = writeln!(out, "switchboard_cluster_up {}", u8::from(up));
    let counters: [(&str, &str, &AtomicU64); 8] = [
        (
            "switchboard_cluster_connects_total",
            "Successful connections to Redis.",
            &c.connects,
        ),
        (
            "switchboard_cluster_connection_failures_total",
            "Failed connection attempts to Redis and lost connections.",
            &c.connection_failures,
        ),
        (
            "switchboard_cluster_records_out_total",
            "Records (relays, room events, broadcasts) published to other nodes.",
            &c.records_out,
        ),
        (
            "switchboard_cluster_records_in_total",
            "Records received from other nodes.",
            &c.records_in,
        ),
        (
            "switchboard_cluster_dropped_total",
            "Records for other nodes dropped because Redis was unreachable or a publish failed.",
            &c.dropped,
        ),
        (
            "switchboard_cluster_bad_messages_total",
            "Messages from Redis that did not decode.",
            &c.bad_messages,
        ),
        (
            "switchboard_cluster_nodes_forgotten_total",
            "Other nodes whose room members were dropped after their heartbeat stopped.",
            &c.nodes_forgotten,
        ),
        (
            "switchboard_cluster_node_id_conflicts_total",
            "Heartbeats that found another process in this node's key: more than one means \
             two nodes share a signal.node_id.",
            &c.node_id_conflicts,
        ),
    ];
    for (name, help, v) in counters {
        header(out, name, COUNTER, help);
        let _ = writeln!(out, "{name} {}", load(v));
    }
    header(
        out,
        "switchboard_cluster_remote_members",
        GAUGE,
        "Room members of other nodes mirrored on this node.",
    );
    let _ = writeln!(
        out,
        "switchboard_cluster_remote_members {}",
        load(&c.remote_members)
    );
}

/// Binds the admin listener (blocking; `accept` waits at most [`ACCEPT_WAIT_MS`]).
///
/// # Errors
/// The address cannot be bound.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    // Linux applies SO_RCVTIMEO to accept(2): it returns EAGAIN after the wait.
    socket2::SockRef::from(&listener)
        .set_read_timeout(Some(Duration::from_millis(ACCEPT_WAIT_MS)))?;
    Ok(listener)
}

/// Starts the admin thread on `listener`; it returns once `quit` is set.
///
/// # Errors
/// The thread could not be spawned.
pub fn spawn(
    listener: TcpListener,
    shared: Arc<Shared>,
    quit: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || serve(&listener, &shared, &quit))
}

fn serve(listener: &TcpListener, shared: &Shared, quit: &AtomicBool) {
    // Reused across requests: the admin path allocates once, like the data path.
    let mut head = vec![0u8; HEAD_BYTES_MAX];
    let mut body = String::with_capacity(64 * 1024);
    while !quit.load(Ordering::Acquire) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "admin accept failed");
                std::thread::sleep(Duration::from_millis(ACCEPT_WAIT_MS));
                continue;
            }
        };
        if let Err(e) = answer(stream, shared, &mut head, &mut body) {
            tracing::debug!(error = %e, "admin request failed");
        }
    }
}

/// Reads one request head into `buf`; returns its length, or `None` when it is too big.
fn read_head(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<Option<usize>> {
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            return Ok(None);
        }
        let n = stream.read(&mut buf[filled..])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        // Only the new bytes and the three before them can complete the terminator.
        let from = filled.saturating_sub(3);
        filled += n;
        if buf[from..filled].windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(Some(filled));
        }
    }
}

fn answer(
    mut stream: TcpStream,
    shared: &Shared,
    head: &mut [u8],
    body: &mut String,
) -> io::Result<()> {
    let timeout = Some(Duration::from_millis(IO_TIMEOUT_MS));
    stream.set_read_timeout(timeout)?;
    stream.set_write_timeout(timeout)?;
    body.clear();
    let Some(len) = read_head(&mut stream, head)? else {
        return respond(
            &mut stream,
            "431 Request Header Fields Too Large",
            TEXT,
            "request head too large\n",
            false,
        );
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let (method, path) = match req.parse(&head[..len]) {
        Ok(httparse::Status::Complete(_)) => (req.method.unwrap_or(""), req.path.unwrap_or("")),
        _ => return respond(&mut stream, "400 Bad Request", TEXT, "bad request\n", false),
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            TEXT,
            "use GET\n",
            false,
        );
    }
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let now_ms = sys::monotonic_ms();
    match path {
        "/metrics" => {
            render(shared, now_ms, body);
            respond(&mut stream, "200 OK", PROMETHEUS, body, head_only)
        }
        "/healthz" => respond(&mut stream, "200 OK", TEXT, "ok\n", head_only),
        "/readyz" => match readiness(shared, now_ms, LOOP_STALL_MS) {
            // A node whose Redis is unreachable still serves its own clients, so it stays
            // in the balancer: taking every node out when Redis fails would turn a partial
            // outage into a full one. The body says the cluster is degraded.
            Ok(()) => match &shared.cluster {
                Some(c) if !c.up.load(Ordering::Relaxed) => respond(
                    &mut stream,
                    "200 OK",
                    TEXT,
                    "ready; cluster degraded: no working connection to Redis, relays to \
                     other nodes are dropped until the bridge reconnects\n",
                    head_only,
                ),
                Some(_) => respond(
                    &mut stream,
                    "200 OK",
                    TEXT,
                    "ready; cluster up\n",
                    head_only,
                ),
                None => respond(&mut stream, "200 OK", TEXT, "ready\n", head_only),
            },
            Err(why) => {
                let _ = writeln!(body, "not ready: {why}");
                respond(
                    &mut stream,
                    "503 Service Unavailable",
                    TEXT,
                    body,
                    head_only,
                )
            }
        },
        _ => respond(
            &mut stream,
            "404 Not Found",
            TEXT,
            "not found; try /metrics, /healthz or /readyz\n",
            head_only,
        ),
    }
}

const TEXT: &str = "text/plain; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
    head_only: bool,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(shards: usize) -> Shared {
        let (wakers, _links) = crate::shard::ring::mesh(shards, 4, 1024).unwrap();
        Shared {
            stop: AtomicBool::new(false),
            wakers,
            stats: (0..shards).map(|_| Arc::default()).collect(),
            driver: crate::shard::DriverKind::Epoll,
            driver_reason: None,
            reload: std::sync::Mutex::new(None),
            reload_generation: std::sync::atomic::AtomicU64::new(0),
            cluster: None,
        }
    }

    #[test]
    fn readiness_follows_heartbeats_and_stop() {
        let sh = shared(2);
        assert_eq!(
            readiness(&sh, 100, 5000),
            Err(NotReady::NotStarted { shard: 0 })
        );
        for s in &sh.stats {
            s.loop_turns.store(1, Ordering::Relaxed);
            s.heartbeat_ms.store(100, Ordering::Relaxed);
        }
        assert_eq!(readiness(&sh, 5100, 5000), Ok(()));
        sh.stats[1].heartbeat_ms.store(50, Ordering::Relaxed);
        assert_eq!(
            readiness(&sh, 5100, 5000),
            Err(NotReady::Stalled {
                shard: 1,
                age_ms: 5050
            })
        );
        sh.stop.store(true, Ordering::Relaxed);
        assert_eq!(readiness(&sh, 5100, 5000), Err(NotReady::Stopping));
    }

    #[test]
    fn every_series_has_help_and_type_and_a_known_name() {
        let sh = shared(2);
        sh.stats[1].errors_by_code[0].store(3, Ordering::Relaxed);
        let mut out = String::new();
        render(&sh, 0, &mut out);
        let mut typed = std::collections::HashSet::new();
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(kind == "counter" || kind == "gauge", "{line}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
                assert!(typed.insert(name.to_owned()), "duplicate family {name}");
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(typed.contains(name), "series before its TYPE: {line}");
        }
        assert!(out.contains("switchboard_errors_total{shard=\"1\",code=\"bad-json\"} 3\n"));
        assert!(out.contains("switchboard_closes_total{shard=\"0\",code=\"other\"} 0\n"));
        assert!(out.contains("switchboard_driver_info{driver=\"epoll\"} 1\n"));
    }

    #[test]
    fn cluster_series_appear_only_with_a_cluster() {
        let mut sh = shared(1);
        let mut out = String::new();
        render(&sh, 0, &mut out);
        assert!(!out.contains("switchboard_cluster"));
        let c = Arc::new(ClusterStats::default());
        c.dropped.store(4, Ordering::Relaxed);
        sh.cluster = Some(c.clone());
        out.clear();
        render(&sh, 0, &mut out);
        assert!(out.contains("\nswitchboard_cluster_up 0\n"), "{out}");
        assert!(
            out.contains("\nswitchboard_cluster_dropped_total 4\n"),
            "{out}"
        );
        assert!(out.contains("# TYPE switchboard_cluster_remote_members gauge\n"));
        c.up.store(true, Ordering::Relaxed);
        out.clear();
        render(&sh, 0, &mut out);
        assert!(out.contains("\nswitchboard_cluster_up 1\n"), "{out}");
    }
}
