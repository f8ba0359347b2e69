//! Start-up: listeners, shards and their threads, and the stop signal.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod notify;
pub mod tls;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::proto::{http, signal, ws};
use crate::shard::{self, ring, sys, Core, DriverKind, Settings, ShardStats, Shared};
pub use config::{Config, ConfigError, DriverChoice};

/// A running server: its address, shared state and shard threads.
#[derive(Debug)]
pub struct Running {
    /// The bound signaling address (the port is resolved when the config gave 0).
    pub local_addr: SocketAddr,
    /// The driver the shards run.
    pub driver: DriverKind,
    /// The bound STUN address (UDP, and TCP when enabled), when STUN is on.
    pub stun_addr: Option<SocketAddr>,
    /// TLS state, when `wss://` is on; [`tls::TlsState::reload`] rereads the files.
    pub tls: Option<Arc<tls::TlsState>>,
    /// Shared state (stop flag, wakers, stats).
    pub shared: Arc<Shared>,
    /// The bound admin address (`/metrics`, `/healthz`, `/readyz`), when the admin
    /// listener is enabled.
    pub admin_addr: Option<SocketAddr>,
    threads: Vec<JoinHandle<std::io::Result<()>>>,
    /// The admin and sd-notify threads, told to quit through `control_quit` once the
    /// shards have stopped.
    control: Vec<JoinHandle<()>>,
    control_quit: Arc<AtomicBool>,
}

impl Running {
    /// Asks every shard to drain and stop (and tells systemd, when it listens).
    pub fn stop(&self) {
        self.shared.request_stop();
        notify::stopping();
    }

    /// Waits for every shard to finish.
    ///
    /// # Errors
    /// The first error a shard returned.
    pub fn join(self) -> std::io::Result<()> {
        let mut first = Ok(());
        for t in self.threads {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("shard thread panicked")));
            if first.is_ok() {
                first = r;
            }
        }
        // The admin listener answered /readyz 503 while the shards drained; now it goes.
        // The cluster bridge (the last waker, when there is one) publishes what the shards
        // sent last and stops.
        self.control_quit.store(true, Ordering::Release);
        for w in self.shared.wakers.iter().skip(self.shared.stats.len()) {
            w.wake_now();
        }
        for t in self.control {
            if t.join().is_err() && first.is_ok() {
                first = Err(std::io::Error::other("admin or sd-notify thread panicked"));
            }
        }
        first
    }
}

/// Number of shards the config asks for.
#[must_use]
pub fn shard_count(cfg: &Config) -> usize {
    if cfg.server.shards == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    } else {
        cfg.server.shards
    }
}

/// Picks the driver: io_uring when asked for or when `auto` and it starts here.
///
/// # Errors
/// `uring` was required but cannot start.
pub fn choose_driver(cfg: &Config) -> std::io::Result<(DriverKind, Option<String>)> {
    match cfg.server.driver {
        DriverChoice::Epoll => Ok((DriverKind::Epoll, Some("configured".into()))),
        DriverChoice::Uring => match shard::uring::probe(cfg.server.uring_entries) {
            Ok(()) => Ok((DriverKind::Uring, None)),
            Err(e) => Err(std::io::Error::other(format!(
                "io_uring was required (--driver uring) but cannot start: {e}"
            ))),
        },
        DriverChoice::Auto => match shard::uring::probe(cfg.server.uring_entries) {
            Ok(()) => Ok((DriverKind::Uring, None)),
            Err(e) => Ok((DriverKind::Epoll, Some(e))),
        },
    }
}

/// Starts the shards and returns at once.
///
/// # Errors
/// Binding a listener, creating the mesh, or a required driver failed.
pub fn start(cfg: &Config) -> std::io::Result<Running> {
    let shards = shard_count(cfg);
    let (driver, why) = choose_driver(cfg)?;
    match (&driver, why.clone()) {
        (DriverKind::Uring, _) => tracing::info!(driver = "uring", shards, "driver selected"),
        (DriverKind::Epoll, Some(why)) => {
            tracing::warn!(driver = "epoll", shards, reason = %why, "io_uring unavailable or not chosen; running on epoll");
        }
        (DriverKind::Epoll, None) => tracing::info!(driver = "epoll", shards, "driver selected"),
    }
    // Bind shard 0 first so a configured port 0 resolves to one port all shards share.
    let first = sys::reuseport_listener(cfg.server.listen, cfg.server.listen_backlog)?;
    let local_addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..shards {
        listeners.push(sys::reuseport_listener(
            local_addr,
            cfg.server.listen_backlog,
        )?);
    }
    tracing::info!(addr = %local_addr, "signaling listener bound");
    let stun_settings = stun_settings_of(cfg);
    let mut stun_per_shard: Vec<(Vec<std::net::UdpSocket>, Option<TcpListener>)> = Vec::new();
    let mut stun_addr = None;
    if let Some(st) = &stun_settings {
        let mut st = st.clone();
        if st.listen.port() == 0 && st.tcp && st.alternate.is_none() {
            // Port 0 (tests): find a port free for both UDP and TCP before binding shards.
            st.listen = free_udp_tcp_port(st.listen)?;
        }
        for _ in 0..shards {
            let mut udp = Vec::new();
            for addr in st.udp_addrs() {
                udp.push(
                    shard::stun::bind_udp(addr, &st).map_err(|e| {
                        std::io::Error::new(e.kind(), format!("STUN UDP {addr}: {e}"))
                    })?,
                );
            }
            if st.listen.port() == 0 {
                // Resolve port 0 once so every shard shares the port (tests use this).
                st.listen = udp[0].local_addr()?;
            }
            let tcp = if st.tcp {
                Some(
                    sys::reuseport_listener(st.listen, cfg.server.listen_backlog).map_err(|e| {
                        std::io::Error::new(e.kind(), format!("STUN TCP {}: {e}", st.listen))
                    })?,
                )
            } else {
                None
            };
            stun_per_shard.push((udp, tcp));
        }
        stun_addr = Some(st.listen);
        tracing::info!(addr = %st.listen, tcp = st.tcp, rfc5780 = st.alternate.is_some(), "STUN server bound");
    }
    let stun_settings = stun_settings.map(|mut s| {
        if let Some(a) = stun_addr {
            s.listen = a;
        }
        s
    });
    let mut stun_per_shard = stun_per_shard.into_iter();
    // After the STUN sockets: their TCP port follows the UDP port picked for port 0, so an
    // admin listener bound first on port 0 could take it.
    let admin_listener = if cfg.admin.enabled {
        let l = admin::bind(cfg.admin.listen).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("admin listener {}: {e}", cfg.admin.listen),
            )
        })?;
        tracing::info!(addr = %l.local_addr()?, "admin listener bound (/metrics, /healthz, /readyz)");
        Some(l)
    } else {
        None
    };
    let cluster_on = cfg.cluster.enabled;
    if cluster_on && shards > 255 {
        return Err(std::io::Error::other(
            "a cluster node has at most 255 shards (the bridge takes one ring index); set \
             server.shards",
        ));
    }
    // With a cluster the bridge thread is one more participant of the mesh, after the
    // shards, so it talks to them over the same rings as cross-shard traffic.
    let (wakers, mut links) = ring::mesh(
        shards + usize::from(cluster_on),
        cfg.server.ring_batches_max,
        cfg.server.ring_pending_bytes_max,
    )?;
    let bridge_links = if cluster_on { links.pop() } else { None };
    let cluster_stats: Option<Arc<shard::ClusterStats>> = cluster_on.then(Arc::default);
    let stats: Vec<Arc<ShardStats>> = (0..shards).map(|_| Arc::default()).collect();
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        wakers,
        stats: stats.clone(),
        driver,
        driver_reason: why,
        reload: std::sync::Mutex::new(None),
        reload_generation: std::sync::atomic::AtomicU64::new(0),
        cluster: cluster_stats.clone(),
    });
    let mut secret = [0u8; 32];
    sys::random_bytes(&mut secret)?;
    let mut seed_bytes = [0u8; 32];
    sys::random_bytes(&mut seed_bytes)?;
    let seeds: [u64; 4] = std::array::from_fn(|i| {
        u64::from_le_bytes(seed_bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    });
    let mut settings = settings_of(cfg);
    let tls = if cfg.tls.enabled {
        let state = tls::TlsState::new(&cfg.tls.cert_path, &cfg.tls.key_path)
            .map_err(std::io::Error::other)?;
        tracing::info!(cert = %cfg.tls.cert_path, "TLS enabled on the signaling listener");
        Some(Arc::new(state))
    } else {
        None
    };
    settings.tls = tls.clone();
    settings.auth = cfg
        .authenticator()
        .map_err(std::io::Error::other)?
        .map(Arc::new);
    if cfg.signal.sessions_per_ip_max > 0 {
        let mut seed = [0u8; 8];
        sys::random_bytes(&mut seed)?;
        // Four slots per possible session keep probe windows short (see iplimit).
        let slots = (shards * cfg.signal.sessions_per_shard_max as usize)
            .saturating_mul(4)
            .clamp(1024, 1 << 19);
        settings.ip_limiter = Some(Arc::new(shard::iplimit::IpLimiter::new(
            slots,
            cfg.signal.sessions_per_ip_max,
            u64::from_le_bytes(seed),
        )));
    }
    let ice = {
        // Advertise the port actually bound when the config asked for port 0.
        let mut c = cfg.clone();
        if let Some(a) = stun_addr {
            c.stun.listen = a;
        }
        c.ice_servers_json()
    };
    let mut threads = Vec::new();
    for ((shard, listener), links) in listeners.into_iter().enumerate().zip(links) {
        let router_cfg = signal::Config {
            node: cfg.signal.node_id,
            shard: shard as u8,
            shards: shards as u8,
            limits: signal_limits_of(cfg),
            ice_servers_json: ice.clone(),
            turn: (!cfg.turn.secret.is_empty()).then(|| signal::TurnConfig {
                secret: cfg.turn.secret.as_bytes().to_vec(),
                urls: cfg.turn.urls.clone(),
                ttl_s: cfg.turn.ttl_s,
            }),
            heartbeat_ms: cfg.signal.heartbeat_ms,
            secret,
            room_hash_seeds: seeds,
            cluster: cluster_on,
        };
        let settings = settings.clone();
        let shared2 = shared.clone();
        let stats = stats[shard].clone();
        let pin = cfg.server.pin_threads;
        let drain_ms = cfg.server.drain_timeout_ms;
        let stun = stun_per_shard.next();
        let stun_settings = stun_settings.clone();
        let uring_cfg = shard::uring::UringConfig {
            entries: cfg.server.uring_entries,
            buffers: cfg.server.uring_buffers,
        };
        let t = std::thread::Builder::new()
            .name(format!("shard-{shard}"))
            .spawn(move || {
                if pin {
                    if let Err(e) = sys::pin_to_cpu(shard) {
                        tracing::warn!(shard, error = %e, "could not pin shard thread");
                    }
                }
                let mut core = Core::new(shard, settings, router_cfg, links, stats);
                let mut stun_tcp = None;
                if let (Some((udp, tcp)), Some(st)) = (stun, stun_settings) {
                    core.set_stun(shard::stun::StunService::new(&st, udp));
                    stun_tcp = tcp;
                }
                let r = match driver {
                    DriverKind::Epoll => {
                        shard::epoll::run(&mut core, listener, stun_tcp, &shared2, drain_ms)
                    }
                    DriverKind::Uring => shard::uring::run(
                        &mut core, listener, stun_tcp, &shared2, drain_ms, uring_cfg,
                    ),
                };
                if let Err(e) = &r {
                    tracing::error!(shard, error = %e, "shard stopped with an error");
                    shared2.request_stop();
                }
                r
            })?;
        threads.push(t);
    }
    // Control plane: metrics and readiness, then sd_notify (READY=1 goes out only now that
    // every listener is bound and every shard thread runs).
    let control_quit = Arc::new(AtomicBool::new(false));
    let mut control = Vec::new();
    let admin_addr = admin_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let spawned = (|| {
        if let (Some(links), Some(stats)) = (bridge_links, cluster_stats) {
            let bridge_cfg = cluster::BridgeConfig {
                cluster: cfg.cluster.clone(),
                node: cfg.signal.node_id,
                shards: shards as u8,
                room_hash_seeds: seeds,
                resume_grace_ms: cfg.signal.resume_grace_ms,
            };
            control.push(cluster::spawn(
                bridge_cfg,
                links,
                shared.clone(),
                stats,
                control_quit.clone(),
            )?);
        }
        if let Some(l) = admin_listener {
            control.push(admin::spawn(l, shared.clone(), control_quit.clone())?);
        }
        let stall_ms = admin::LOOP_STALL_MS;
        if let Some(t) = notify::spawn_supervisor(shared.clone(), control_quit.clone(), stall_ms)? {
            control.push(t);
        }
        Ok::<(), std::io::Error>(())
    })();
    if let Err(e) = spawned {
        // The shards already run: stop them rather than leave them unsupervised.
        shared.request_stop();
        control_quit.store(true, Ordering::Release);
        return Err(e);
    }
    notify::ready(&format!(
        "serving on {local_addr} ({shards} shards, {})",
        driver.as_str()
    ));
    Ok(Running {
        local_addr,
        driver,
        stun_addr,
        tls,
        shared,
        admin_addr,
        threads,
        control,
        control_quit,
    })
}

/// A port on `addr`'s IP that is free for both UDP and TCP right now.
fn free_udp_tcp_port(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let mut last = None;
    for _ in 0..64 {
        let udp = std::net::UdpSocket::bind(addr)?;
        let candidate = udp.local_addr()?;
        match TcpListener::bind(candidate) {
            Ok(_) => return Ok(candidate),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free STUN port")))
}

fn stun_settings_of(cfg: &Config) -> Option<shard::stun::StunSettings> {
    let s = &cfg.stun;
    if !s.enabled {
        return None;
    }
    Some(shard::stun::StunSettings {
        listen: s.listen,
        alternate: s.alternate_listen.parse().ok(),
        tcp: s.tcp,
        software: (!s.software.is_empty()).then(|| s.software.clone()),
        rate: crate::proto::stun::RateLimitConfig {
            rate_per_second: s.rate_per_second,
            burst_max: s.burst_max,
            sources_max: s.sources_max,
            // A random seed, so nobody can aim sources at one bucket set.
            hash_seed: {
                let mut b = [0u8; 8];
                let _ = sys::random_bytes(&mut b);
                u64::from_le_bytes(b)
            },
        },
        udp_rcvbuf_bytes: s.udp_rcvbuf_bytes,
        udp_sndbuf_bytes: s.udp_sndbuf_bytes,
        udp_batch_max: s.udp_batch_max,
        tcp_idle_timeout_ms: s.tcp_idle_timeout_ms,
    })
}

/// The browser client, always served: apps load it from the signaling server itself.
const CLIENT_JS: shard::StaticFile = shard::StaticFile {
    path: "/v1/client.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("../../client/switchboard.js"),
};

const STATIC_CLIENT_ONLY: [shard::StaticFile; 1] = [CLIENT_JS];

/// The client plus the demo app at `/` (`server.demo = true`).
const STATIC_WITH_DEMO: [shard::StaticFile; 4] = [
    CLIENT_JS,
    shard::StaticFile {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../client/demo/index.html"),
    },
    shard::StaticFile {
        path: "/demo/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../client/demo/app.js"),
    },
    shard::StaticFile {
        path: "/demo/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../client/demo/style.css"),
    },
];

/// The router limits the config gives (the part of `[signal]` a reload may change).
fn signal_limits_of(cfg: &Config) -> signal::Limits {
    signal::Limits {
        message_bytes_max: cfg.signal.message_bytes_max,
        sdp_bytes_max: cfg.signal.sdp_bytes_max,
        room_name_bytes_max: cfg.signal.room_name_bytes_max,
        meta_bytes_max: cfg.signal.meta_bytes_max,
        rooms_per_session_max: cfg.signal.rooms_per_session_max,
        members_per_room_max: cfg.signal.members_per_room_max,
        sessions_max: cfg.signal.sessions_per_shard_max,
        validate_sdp: cfg.signal.validate_sdp,
        sdp_lines_max: cfg.signal.sdp_lines_max,
        resume_grace_ms: cfg.signal.resume_grace_ms,
        resume_queue_bytes_max: cfg.signal.resume_queue_bytes_max,
        messages_per_second: cfg.signal.messages_per_second,
        message_burst: cfg.signal.message_burst,
        rate_violations_max: cfg.signal.rate_violations_max,
    }
}

/// Hands new limits from `cfg` to every shard (SIGHUP). Listeners, shards, drivers, STUN,
/// TLS, auth and admin settings need a restart; the returned list names those that differ
/// from `running_cfg`, so the caller can say so.
#[must_use]
pub fn reload_limits(shared: &Shared, running_cfg: &Config, cfg: &Config) -> Vec<&'static str> {
    let reload = shard::Reload {
        limits: signal_limits_of(cfg),
        settings: settings_of(cfg),
    };
    *shared
        .reload
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(reload));
    shared
        .reload_generation
        .fetch_add(1, std::sync::atomic::Ordering::Release);
    for w in shared.wakers.iter() {
        w.wake_now();
    }
    let mut needs_restart = Vec::new();
    let (a, b) = (running_cfg, cfg);
    if a.server.listen != b.server.listen || a.server.shards != b.server.shards {
        needs_restart.push("server.listen/shards");
    }
    if a.server.driver != b.server.driver {
        needs_restart.push("server.driver");
    }
    if a.stun != b.stun {
        needs_restart.push("[stun]");
    }
    if a.auth != b.auth || a.turn != b.turn || a.tls != b.tls {
        needs_restart.push("[auth]/[turn]/[tls] (certificates do reload)");
    }
    if a.admin != b.admin {
        needs_restart.push("[admin]");
    }
    if a.cluster != b.cluster || (a.cluster.enabled && a.signal.node_id != b.signal.node_id) {
        needs_restart.push("[cluster]/signal.node_id");
    }
    needs_restart
}

fn settings_of(cfg: &Config) -> Settings {
    Settings {
        server_name: cfg.server.server_name.clone(),
        echo_endpoint: cfg.server.echo_endpoint,
        http: http::Limits {
            head_bytes_max: cfg.server.http_head_bytes_max,
        },
        ws_signal: ws::Limits {
            frame_bytes_max: cfg.websocket.frame_bytes_max,
            message_bytes_max: cfg.websocket.message_bytes_max,
        },
        ws_echo: ws::Limits {
            frame_bytes_max: cfg.websocket.echo_message_bytes_max,
            message_bytes_max: cfg.websocket.echo_message_bytes_max,
        },
        handshake_timeout_ms: cfg.server.handshake_timeout_ms,
        close_timeout_ms: cfg.server.close_timeout_ms,
        outbound_queue_bytes_max: cfg.server.outbound_queue_bytes_max,
        recv_buffer_bytes: cfg.server.recv_buffer_bytes,
        connections_max: cfg.signal.sessions_per_shard_max,
        auth: None,
        ip_limiter: None,
        tls: None,
        heartbeat_ms: cfg.signal.heartbeat_ms.max(100),
        idle_timeout_ms: cfg.signal.idle_timeout_ms,
        static_files: if cfg.server.demo {
            &STATIC_WITH_DEMO
        } else {
            &STATIC_CLIENT_ONLY
        },
    }
}
