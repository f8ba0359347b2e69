//! The configuration file (TOML): every listener and limit in one place.
//!
//! `serve` with no file runs on [`DEFAULT_TOML`], embedded in the binary. Unknown keys and
//! bad values are errors that name the file, line and column.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The embedded default configuration (also shipped as `systemd/switchboard.toml`).
pub const DEFAULT_TOML: &str = include_str!("../../systemd/switchboard.toml");

/// Which I/O driver the shards use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DriverChoice {
    /// io_uring where it starts, else epoll.
    #[default]
    Auto,
    /// io_uring or fail.
    Uring,
    /// epoll.
    Epoll,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners, shards and connection handling.
    pub server: Server,
    /// WebSocket framing limits.
    pub websocket: WebSocket,
    /// Signaling protocol limits.
    pub signal: Signal,
    /// The STUN Binding server.
    pub stun: Stun,
    /// The admin listener: metrics, liveness, readiness.
    pub admin: Admin,
    /// Tokens and origins allowed on the WebSocket upgrade.
    pub auth: Auth,
    /// TURN servers advertised with time-limited REST credentials.
    pub turn: Turn,
    /// `wss://` on the signaling listener.
    pub tls: Tls,
    /// Several nodes sharing rooms and relays through Redis. A file without this section
    /// runs a single node, as before the section existed.
    #[serde(default)]
    pub cluster: Cluster,
}

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Join a cluster: relays to sessions of other nodes and rooms spanning nodes go
    /// through Redis. Every node needs its own `signal.node_id`.
    pub enabled: bool,
    /// The Redis server (`redis://[user:password@]host:port[/db]`).
    pub redis_url: String,
    /// Prefix of every Redis key and channel, so clusters can share a Redis.
    pub key_prefix: String,
    /// How often the node refreshes its heartbeat key and its member sets' TTL.
    pub heartbeat_ms: u64,
    /// TTL of the heartbeat key: a node silent this long is considered dead.
    pub node_ttl_ms: u64,
    /// TTL of this node's member sets in Redis (refreshed every `heartbeat_ms`): a dead
    /// node's members vanish from Redis after it.
    pub membership_ttl_ms: u64,
    /// Give up connecting to Redis after this long (then back off and retry).
    pub connect_timeout_ms: u64,
    /// Give up on one Redis command after this long and reconnect.
    pub command_timeout_ms: u64,
    /// First wait before reconnecting to Redis; it doubles up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    /// Longest wait between reconnect attempts.
    pub reconnect_max_ms: u64,
    /// Members of other nodes this node mirrors (for `joined` lists and broadcasts).
    pub remote_members_max: usize,
    /// Messages from Redis buffered between the subscriber and the bridge loop; when it is
    /// full the subscriber stops reading and Redis buffers (up to its own output limit).
    pub inbound_messages_max: usize,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            enabled: false,
            redis_url: "redis://127.0.0.1:6379".into(),
            key_prefix: "switchboard".into(),
            heartbeat_ms: 1000,
            node_ttl_ms: 3000,
            membership_ttl_ms: 30_000,
            connect_timeout_ms: 1000,
            command_timeout_ms: 1000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5000,
            remote_members_max: 1_000_000,
            inbound_messages_max: 4096,
        }
    }
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Accept TLS on the signaling listener (a connection whose first byte opens a TLS
    /// handshake is served as `wss://`, others as `ws://`).
    pub enabled: bool,
    /// PEM certificate chain; reloaded on SIGHUP.
    pub cert_path: String,
    /// PEM private key; reloaded on SIGHUP.
    pub key_path: String,
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Refuse upgrades without a valid token (401). With no keys and not required, tokens
    /// are ignored.
    pub required: bool,
    /// HS256 shared secrets (at least 32 bytes each); `kid` selects one when set.
    pub hs256_secrets: Vec<AuthKey>,
    /// Ed25519 public keys for EdDSA tokens (PEM or base64).
    pub ed25519_public_keys: Vec<AuthKey>,
    /// Required `aud` claim ("" = tokens must not carry one).
    pub audience: String,
    /// Required `iss` claim ("" = not checked).
    pub issuer: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_s: u64,
    /// `Origin` allow-list (403 otherwise); empty allows any. Entries are exact origins or
    /// `https://*.example.com` wildcards.
    pub origins: Vec<String>,
}

/// One key of `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthKey {
    /// Key id matched against the token's `kid` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The secret (HS256) or public key (EdDSA).
    pub key: String,
}

/// `[turn]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// The secret shared with the TURN server (coturn `static-auth-secret`); "" = off.
    pub secret: String,
    /// `turn:`/`turns:` URLs of the TURN servers.
    pub urls: Vec<String>,
    /// Lifetime of the credentials in `welcome`.
    pub ttl_s: u64,
}

impl Config {
    /// The authenticator for `[auth]`, or `None` when auth is off.
    ///
    /// # Errors
    /// A key that does not parse, or a secret that is too short.
    pub fn authenticator(&self) -> Result<Option<crate::proto::auth::Authenticator>, String> {
        use crate::proto::auth::{AuthConfig, Authenticator, Ed25519PublicKey, Hs256Secret};
        let a = &self.auth;
        if !a.required
            && a.hs256_secrets.is_empty()
            && a.ed25519_public_keys.is_empty()
            && a.origins.is_empty()
        {
            return Ok(None);
        }
        let cfg = AuthConfig {
            required: a.required,
            hs256_secrets: a
                .hs256_secrets
                .iter()
                .map(|k| Hs256Secret {
                    kid: k.kid.clone(),
                    secret: k.key.as_bytes().to_vec(),
                })
                .collect(),
            ed25519_public_keys: a
                .ed25519_public_keys
                .iter()
                .map(|k| Ed25519PublicKey {
                    kid: k.kid.clone(),
                    public_key: k.key.clone(),
                })
                .collect(),
            audience: (!a.audience.is_empty()).then(|| a.audience.clone()),
            issuer: (!a.issuer.is_empty()).then(|| a.issuer.clone()),
            leeway_s: a.leeway_s,
            origins: a.origins.clone(),
        };
        Authenticator::new(&cfg)
            .map(Some)
            .map_err(|e| format!("[auth]: {e}"))
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Address of the WebSocket listener (`/v1/signal`, `/healthz`).
    pub listen: SocketAddr,
    /// Shards (threads, one per core); 0 means one per online CPU.
    pub shards: usize,
    /// I/O driver.
    pub driver: DriverChoice,
    /// Pin each shard thread to its own CPU.
    pub pin_threads: bool,
    /// Answer `/v1/echo` (Autobahn conformance only; off in production).
    pub echo_endpoint: bool,
    /// Serve the demo app at `/` (the client at `/v1/client.js` is always served).
    pub demo: bool,
    /// `Server:` header.
    pub server_name: String,
    /// Time a connection has to complete its HTTP upgrade.
    pub handshake_timeout_ms: u64,
    /// Time a peer has to answer our close frame.
    pub close_timeout_ms: u64,
    /// Time a stop waits for connections to close before exiting.
    pub drain_timeout_ms: u64,
    /// Bytes a connection's send queue may hold before its reader counts as too slow.
    pub outbound_queue_bytes_max: usize,
    /// Largest HTTP request head.
    pub http_head_bytes_max: usize,
    /// Bytes read per receive call.
    pub recv_buffer_bytes: usize,
    /// io_uring provided receive buffers per shard.
    pub uring_buffers: u16,
    /// io_uring submission queue entries.
    pub uring_entries: u32,
    /// Batches one cross-shard ring holds.
    pub ring_batches_max: usize,
    /// Bytes of cross-shard work that may wait for a full ring before records are dropped.
    pub ring_pending_bytes_max: usize,
    /// Listen backlog.
    pub listen_backlog: i32,
}

/// `[websocket]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocket {
    /// Largest frame on `/v1/signal` (larger: close 1009).
    pub frame_bytes_max: usize,
    /// Largest reassembled message on `/v1/signal` (larger: close 1009).
    pub message_bytes_max: usize,
    /// Largest frame and message on `/v1/echo`.
    pub echo_message_bytes_max: usize,
}

/// `[signal]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signal {
    /// This node's id (0–1023), carried in every session id.
    pub node_id: u16,
    /// Largest signaling message (larger: `too-large` error, the connection stays).
    pub message_bytes_max: usize,
    /// Largest `sdp` field.
    pub sdp_bytes_max: usize,
    /// Most lines an `sdp` field may have.
    pub sdp_lines_max: u32,
    /// Validate offers' and answers' SDP before relaying (`invalid-sdp` with the line).
    pub validate_sdp: bool,
    /// Longest room name.
    pub room_name_bytes_max: usize,
    /// Largest `meta` value.
    pub meta_bytes_max: usize,
    /// Rooms one session may be in.
    pub rooms_per_session_max: usize,
    /// Members one room may hold.
    pub members_per_room_max: usize,
    /// Sessions one shard may hold (new upgrades get HTTP 503 past it).
    pub sessions_per_shard_max: u32,
    /// Sessions one source address (IPv6: /64) may hold across all shards (HTTP 429 past
    /// it); 0 = unlimited.
    pub sessions_per_ip_max: u32,
    /// Heartbeat interval: the server pings every connection this often, and advertises it
    /// in `welcome`.
    pub heartbeat_ms: u64,
    /// A connection silent (no frame, not even a pong) this long is dropped; its session
    /// then waits `resume_grace_ms`.
    pub idle_timeout_ms: u64,
    /// How long a session outlives its connection, waiting for a `resume` (0: not at all).
    pub resume_grace_ms: u64,
    /// Bytes of frames queued for a disconnected session; past it the session ends.
    pub resume_queue_bytes_max: usize,
    /// Messages per second one session may send (0 = unlimited); past it `rate-limited`.
    pub messages_per_second: u32,
    /// Burst of messages above that rate.
    pub message_burst: u32,
    /// Refused messages in a row after which the connection is closed with 1008.
    pub rate_violations_max: u32,
    /// STUN/TURN servers advertised in `welcome`.
    pub ice_servers: Vec<IceServer>,
}

/// `[stun]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stun {
    /// Answer STUN Binding requests.
    pub enabled: bool,
    /// UDP (and TCP) address of the STUN server.
    pub listen: SocketAddr,
    /// Also answer STUN over TCP on the same address.
    pub tcp: bool,
    /// `stun:` URLs advertised in `welcome`; empty derives one from `listen`.
    pub advertise: Vec<String>,
    /// RFC 5780 behaviour discovery: the alternate `IP:PORT` ("" = off). The server then
    /// also binds IP:PORT2, IP2:PORT and IP2:PORT2.
    pub alternate_listen: String,
    /// SOFTWARE attribute in answers ("" = none: it only amplifies).
    pub software: String,
    /// Requests per second answered per source IP (IPv6: per /64).
    pub rate_per_second: u32,
    /// Burst allowance per source.
    pub burst_max: u32,
    /// Sources the rate limiter tracks per shard (the least recent is evicted).
    pub sources_max: usize,
    /// `SO_RCVBUF` of each UDP socket (the kernel default drops requests under load).
    pub udp_rcvbuf_bytes: usize,
    /// `SO_SNDBUF` of each UDP socket.
    pub udp_sndbuf_bytes: usize,
    /// Datagrams received or sent per `recvmmsg`/`sendmmsg` call.
    pub udp_batch_max: usize,
    /// A STUN-over-TCP connection idle this long is closed.
    pub tcp_idle_timeout_ms: u64,
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Serve `/metrics`, `/healthz` and `/readyz` on `listen`.
    pub enabled: bool,
    /// Address of the admin listener; keep it off the public network.
    pub listen: SocketAddr,
}

/// One `iceServers` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:` or `turn:` URLs.
    pub urls: Vec<String>,
    /// Static TURN username, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Static TURN credential, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A configuration that failed to load, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax, unknown key or wrong type.
    #[error("{path}:{line}:{column}: {message}\n  hint: see systemd/switchboard.toml for every key, its type and default")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// A value that parses but is not allowed.
    #[error("{path}: {key} = {value}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An environment override that does not parse.
    #[error("environment {name}={value}: {reason}")]
    Env {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
}

impl Config {
    /// The embedded default.
    #[must_use]
    pub fn embedded() -> Config {
        Config::parse(DEFAULT_TOML, "<embedded>").expect("the embedded config is valid")
    }

    /// Parses TOML text; `path` names it in errors.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] with line and column, or [`ConfigError::Invalid`].
    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Reads and parses a file.
    ///
    /// # Errors
    /// As [`Config::parse`], or [`ConfigError::Read`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Config::parse(&text, &shown)
    }

    /// Applies `SWITCHBOARD_<SECTION>_<KEY>` overrides from `vars` (e.g.
    /// `SWITCHBOARD_SERVER_LISTEN=0.0.0.0:8080`) for scalar keys.
    ///
    /// # Errors
    /// [`ConfigError::Env`] for an unknown key or a value that does not parse.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let mut table = toml::Table::try_from(&*self).map_err(|e| ConfigError::Env {
            name: String::new(),
            value: String::new(),
            reason: e.to_string(),
        })?;
        let mut changed = false;
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("SWITCHBOARD_") else {
                continue;
            };
            let lower = rest.to_ascii_lowercase();
            let Some((section, key)) = lower.split_once('_') else {
                continue;
            };
            let env_err = |reason: String| ConfigError::Env {
                name: name.clone(),
                value: value.clone(),
                reason,
            };
            let Some(toml::Value::Table(sec)) = table.get_mut(section) else {
                return Err(env_err(format!("no section [{section}]")));
            };
            let Some(old) = sec.get(key) else {
                return Err(env_err(format!("no key {key} in [{section}]")));
            };
            let new = match old {
                toml::Value::String(_) => toml::Value::String(value.clone()),
                toml::Value::Integer(_) => toml::Value::Integer(
                    value
                        .parse()
                        .map_err(|_| env_err("expected an integer".into()))?,
                ),
                toml::Value::Boolean(_) => toml::Value::Boolean(
                    value
                        .parse()
                        .map_err(|_| env_err("expected true or false".into()))?,
                ),
                _ => {
                    return Err(env_err(
                        "only scalar keys can be set from the environment".into(),
                    ))
                }
            };
            sec.insert(key.to_owned(), new);
            changed = true;
        }
        if changed {
            let text = toml::to_string(&table).map_err(|e| ConfigError::Env {
                name: "SWITCHBOARD_*".into(),
                value: String::new(),
                reason: e.to_string(),
            })?;
            *self = Config::parse(&text, "<environment>")?;
        }
        Ok(())
    }

    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let invalid = |key, value: String, reason| {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                key,
                value,
                reason,
            })
        };
        let s = &self.server;
        if s.shards > 256 {
            return invalid("server.shards", s.shards.to_string(), "at most 256 shards");
        }
        if s.recv_buffer_bytes < 4096 || s.recv_buffer_bytes > 1 << 20 {
            return invalid(
                "server.recv_buffer_bytes",
                s.recv_buffer_bytes.to_string(),
                "must be between 4096 and 1048576",
            );
        }
        if !s.uring_buffers.is_power_of_two() {
            return invalid(
                "server.uring_buffers",
                s.uring_buffers.to_string(),
                "must be a power of two",
            );
        }
        if s.ring_batches_max == 0 {
            return invalid("server.ring_batches_max", "0".into(), "must be at least 1");
        }
        if s.http_head_bytes_max < 256 {
            return invalid(
                "server.http_head_bytes_max",
                s.http_head_bytes_max.to_string(),
                "must be at least 256",
            );
        }
        let w = &self.websocket;
        if w.frame_bytes_max > w.message_bytes_max {
            return invalid(
                "websocket.frame_bytes_max",
                w.frame_bytes_max.to_string(),
                "must not exceed websocket.message_bytes_max",
            );
        }
        let st = &self.stun;
        if !st.alternate_listen.is_empty() && st.alternate_listen.parse::<SocketAddr>().is_err() {
            return invalid(
                "stun.alternate_listen",
                st.alternate_listen.clone(),
                "must be IP:PORT or empty",
            );
        }
        if st.udp_batch_max == 0 || st.udp_batch_max > 1024 {
            return invalid(
                "stun.udp_batch_max",
                st.udp_batch_max.to_string(),
                "must be between 1 and 1024",
            );
        }
        if st.rate_per_second == 0 || st.burst_max == 0 || st.sources_max == 0 {
            return invalid(
                "stun.rate_per_second",
                st.rate_per_second.to_string(),
                "rate, burst and sources must be at least 1",
            );
        }
        let g = &self.signal;
        if u32::from(g.node_id) >= crate::proto::signal::id::NODES_MAX {
            return invalid(
                "signal.node_id",
                g.node_id.to_string(),
                "must be below 1024",
            );
        }
        if g.message_bytes_max > w.message_bytes_max {
            return invalid(
                "signal.message_bytes_max",
                g.message_bytes_max.to_string(),
                "must not exceed websocket.message_bytes_max",
            );
        }
        if g.sessions_per_shard_max == 0
            || g.sessions_per_shard_max > crate::proto::signal::id::SLOTS_MAX
        {
            return invalid(
                "signal.sessions_per_shard_max",
                g.sessions_per_shard_max.to_string(),
                "must be between 1 and 16777216",
            );
        }
        if g.rooms_per_session_max == 0 || g.members_per_room_max == 0 {
            return invalid(
                "signal.rooms_per_session_max",
                g.rooms_per_session_max.to_string(),
                "room limits must be at least 1",
            );
        }
        let c = &self.cluster;
        if c.enabled {
            if !c.redis_url.starts_with("redis://") && !c.redis_url.starts_with("unix://") {
                return invalid(
                    "cluster.redis_url",
                    c.redis_url.clone(),
                    "must start with redis:// or unix://",
                );
            }
            if c.key_prefix.is_empty() {
                return invalid("cluster.key_prefix", String::new(), "must not be empty");
            }
            if c.heartbeat_ms == 0 || c.node_ttl_ms <= c.heartbeat_ms {
                return invalid(
                    "cluster.node_ttl_ms",
                    c.node_ttl_ms.to_string(),
                    "must exceed cluster.heartbeat_ms (> 0), or live nodes look dead",
                );
            }
            if c.membership_ttl_ms <= c.heartbeat_ms {
                return invalid(
                    "cluster.membership_ttl_ms",
                    c.membership_ttl_ms.to_string(),
                    "must exceed cluster.heartbeat_ms, or live members expire",
                );
            }
            if c.reconnect_min_ms == 0 || c.reconnect_max_ms < c.reconnect_min_ms {
                return invalid(
                    "cluster.reconnect_max_ms",
                    c.reconnect_max_ms.to_string(),
                    "needs 0 < reconnect_min_ms <= reconnect_max_ms",
                );
            }
            if c.connect_timeout_ms == 0 || c.command_timeout_ms == 0 {
                return invalid(
                    "cluster.command_timeout_ms",
                    c.command_timeout_ms.to_string(),
                    "timeouts must be at least 1 ms",
                );
            }
            if c.inbound_messages_max == 0 {
                return invalid(
                    "cluster.inbound_messages_max",
                    "0".into(),
                    "must be at least 1",
                );
            }
            if s.shards > 255 {
                return invalid(
                    "server.shards",
                    s.shards.to_string(),
                    "a cluster node has at most 255 shards (the bridge takes a ring)",
                );
            }
        }
        Ok(())
    }

    /// The `stun:` URLs `welcome` advertises for our own STUN server.
    #[must_use]
    pub fn stun_urls(&self) -> Vec<String> {
        if !self.stun.enabled {
            return Vec::new();
        }
        if !self.stun.advertise.is_empty() {
            return self.stun.advertise.clone();
        }
        let l = self.stun.listen;
        if l.ip().is_unspecified() {
            // A wildcard address says nothing a client can use; `advertise` must name it.
            return Vec::new();
        }
        let host = match l.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        // A `stun:` URI has no transport parameter (RFC 7064; browsers reject one): clients
        // use UDP, and TCP is there for those that try it on their own.
        vec![format!("stun:{host}:{}", l.port())]
    }

    /// The `iceServers` JSON array for `welcome`: our STUN server first, then the
    /// configured ones.
    #[must_use]
    pub fn ice_servers_json(&self) -> String {
        use crate::proto::signal::json::write_str;
        let ours = IceServer {
            urls: self.stun_urls(),
            username: None,
            credential: None,
        };
        let mut servers: Vec<&IceServer> = Vec::new();
        if !ours.urls.is_empty() {
            servers.push(&ours);
        }
        servers.extend(self.signal.ice_servers.iter());
        let mut out = Vec::new();
        out.push(b'[');
        for (i, s) in servers.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"urls\":[");
            for (j, u) in s.urls.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                write_str(&mut out, u);
            }
            out.push(b']');
            if let Some(u) = &s.username {
                out.extend_from_slice(b",\"username\":");
                write_str(&mut out, u);
            }
            if let Some(c) = &s.credential {
                out.extend_from_slice(b",\"credential\":");
                write_str(&mut out, c);
            }
            out.push(b'}');
        }
        out.push(b']');
        String::from_utf8(out).expect("JSON written from strings is UTF-8")
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |p| before.len() - p - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_and_listens_on_loopback() {
        let cfg = Config::embedded();
        assert!(cfg.server.listen.ip().is_loopback());
        assert!(!cfg.server.echo_endpoint);
        assert!(cfg.stun.listen.ip().is_loopback());
        assert_eq!(
            cfg.ice_servers_json(),
            r#"[{"urls":["stun:127.0.0.1:3478"]}]"#
        );
    }

    #[test]
    fn unknown_keys_name_line_and_column() {
        let text = DEFAULT_TOML.replace("[signal]", "[signal]\nbogus_key = 1");
        let err = Config::parse(&text, "x.toml").unwrap_err().to_string();
        let line = text
            .lines()
            .position(|l| l.starts_with("bogus_key"))
            .unwrap()
            + 1;
        assert!(
            err.starts_with(&format!("x.toml:{line}:1: unknown field `bogus_key`")),
            "{err}"
        );
        assert!(err.contains("hint:"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        let text = DEFAULT_TOML.replace("uring_buffers = 512", "uring_buffers = 1000");
        let err = Config::parse(&text, "x.toml").unwrap_err().to_string();
        assert_eq!(
            err,
            "x.toml: server.uring_buffers = 1000: must be a power of two"
        );
    }

    #[test]
    fn environment_overrides_scalars() {
        let mut cfg = Config::embedded();
        cfg.apply_env([
            (
                "SWITCHBOARD_SERVER_LISTEN".to_string(),
                "127.0.0.2:9999".to_string(),
            ),
            (
                "SWITCHBOARD_SIGNAL_ROOMS_PER_SESSION_MAX".to_string(),
                "3".to_string(),
            ),
            ("PATH".to_string(), "/bin".to_string()),
        ])
        .unwrap();
        assert_eq!(cfg.server.listen, "127.0.0.2:9999".parse().unwrap());
        assert_eq!(cfg.signal.rooms_per_session_max, 3);
        let err = cfg
            .apply_env([("SWITCHBOARD_SERVER_NOPE".to_string(), "1".to_string())])
            .unwrap_err();
        assert!(err.to_string().contains("no key nope in [server]"), "{err}");
    }

    #[test]
    fn cluster_is_off_by_default_and_checked_when_on() {
        let cfg = Config::embedded();
        assert!(!cfg.cluster.enabled);
        assert_eq!(cfg.cluster, Cluster::default());
        let text = DEFAULT_TOML
            .replace("[cluster]\n", "[cluster]\nenabled = true\n")
            .replace("enabled = false\n# redis://", "# redis://")
            .replace("node_ttl_ms = 3000", "node_ttl_ms = 500");
        let err = Config::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("x.toml: cluster.node_ttl_ms = 500:"),
            "{err}"
        );
    }
}
