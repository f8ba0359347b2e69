//! `switchboard bench`: a load generator for WebRTC signaling servers.
//!
//! One process, one thread, one epoll loop drives thousands of WebSocket clients with
//! pre-masked frames (`src/bench/engine.rs` documents the loop). Scenarios: `pairs` (offer, answer,
//! trickled candidates, then message ping-pong), `rooms` (broadcast fan-out), `storm`
//! (connect + welcome + join as fast as possible) and `idle` (server memory per session).
//! Latency goes into an HdrHistogram; open-loop mode (`--rate`) charges lateness from the
//! scheduled send time (no coordinated omission). The server's CPU per relayed message comes
//! from `/proc/<pid>/stat` over the measured window, beside the client's own.
//!
//! Library use (tests, perf/): build [`BenchArgs`] with [`BenchArgs::new`], then
//! [`run_report`] returns the [`Report`] that `--json` writes.

mod dialect;
mod engine;
mod report;
mod sdp;
use crate::shard::host as sys;
mod wire;

use std::io::IsTerminal as _;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;

pub use dialect::Dialect;
pub use engine::Scenario;
pub use report::{Percentiles, Report, StepLatencies};

/// Arguments of `switchboard bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// WebSocket URL of the server under test. switchboard: ws://HOST:PORT/v1/signal;
    /// matchbox: ws://HOST:PORT/ (the room is appended); peerjs: ws://HOST:PORT/myapp/peerjs
    /// (the query is appended); gst: ws://HOST:PORT/; echo: ws://HOST:PORT/ (any path).
    #[arg(long, default_value = "ws://127.0.0.1:8080/v1/signal")]
    pub target: String,
    /// What the clients do.
    #[arg(long, value_enum, default_value = "pairs")]
    pub scenario: Scenario,
    /// The server's protocol.
    #[arg(long, value_enum, default_value = "switchboard")]
    pub dialect: Dialect,
    /// Clients to open (pairs: two per room).
    #[arg(long, default_value_t = 200)]
    pub connections: usize,
    /// Members per room for rooms, storm and idle (pairs always use 2).
    #[arg(long, default_value_t = 2)]
    pub room_size: usize,
    /// App payload per steady-state message, bytes (the same bytes in every dialect).
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: usize,
    /// Messages per second offered in total, on a fixed schedule (open loop); 0 = closed
    /// loop with --depth messages in flight per room.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Messages in flight per room in closed-loop mode.
    #[arg(long, default_value_t = 1)]
    pub depth: usize,
    /// Measured time, seconds (idle: how long the sessions are held).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Traffic before the measured window, seconds (not recorded).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Longest set-up (connect, join, negotiate), seconds.
    #[arg(long, default_value_t = 60.0)]
    pub setup_timeout: f64,
    /// Longest wait for messages still in flight after the window, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub drain_timeout: f64,
    /// Handshakes in flight at once during set-up.
    #[arg(long, default_value_t = 512)]
    pub concurrency: usize,
    /// Source addresses to spread client ports over, comma-separated
    /// (e.g. 127.0.0.1,127.0.0.2 for more than ~28k connections to one server port).
    #[arg(long, value_delimiter = ',')]
    pub source_ips: Vec<IpAddr>,
    /// The server's process id: enables server CPU per message and RSS per session.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write the steady-state latency (storm/idle: connection set-up) as an .hgrm file.
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// Write the report as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG plot of latency by percentile.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Add a series from an .hgrm file to the plot, as LABEL=FILE (repeatable).
    #[arg(long, value_name = "LABEL=FILE")]
    pub plot_hgrm: Vec<String>,
    /// Label of this run's series in the plot.
    #[arg(long)]
    pub label: Option<String>,
    /// Do not run: only draw --plot from the --plot-hgrm series.
    #[arg(long)]
    pub plot_only: bool,
    /// Print nothing but errors (the JSON and files are still written).
    #[arg(long)]
    pub quiet: bool,
}

impl BenchArgs {
    /// Defaults for `target`, as the command line would give them.
    #[must_use]
    pub fn new(target: &str) -> Self {
        BenchArgs {
            target: target.to_owned(),
            scenario: Scenario::Pairs,
            dialect: Dialect::Switchboard,
            connections: 200,
            room_size: 2,
            payload_bytes: 256,
            rate: 0.0,
            depth: 1,
            duration: 10.0,
            warmup: 2.0,
            setup_timeout: 60.0,
            drain_timeout: 5.0,
            concurrency: 512,
            source_ips: Vec::new(),
            server_pid: None,
            hgrm: None,
            json: None,
            plot: None,
            plot_hgrm: Vec::new(),
            label: None,
            plot_only: false,
            quiet: true,
        }
    }
}

/// Splits `ws://host:port/path?query` into the socket address, the Host header and the
/// request path.
fn parse_target(url: &str) -> Result<(SocketAddr, String, String), String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("--target {url}: only ws:// URLs are supported"))?;
    let (host, path) = match rest.find('/') {
        Some(n) => (&rest[..n], &rest[n..]),
        None => (rest, "/"),
    };
    let with_port = if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_owned()
    } else {
        format!("{host}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("--target {url}: cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("--target {url}: {host} has no address"))?;
    Ok((addr, host.to_owned(), path.to_owned()))
}

fn secs_to_ns(s: f64, name: &str) -> Result<u64, String> {
    if !(0.0..=86_400.0).contains(&s) {
        return Err(format!("--{name} {s}: must be between 0 and 86400 seconds"));
    }
    Ok((s * 1e9) as u64)
}

/// A payload of printable characters, `n` bytes, that needs no JSON escaping.
fn payload(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..n)
        .map(|i| ALPHABET[(i * 7 + i / 62) % ALPHABET.len()] as char)
        .collect()
}

fn plan_of(args: &BenchArgs) -> Result<engine::Plan, String> {
    let (addr, host, base_path) = parse_target(&args.target)?;
    let group_size = match args.scenario {
        Scenario::Pairs => 2,
        _ => args.room_size,
    };
    if group_size == 0 || group_size > 4096 {
        return Err(format!("--room-size {group_size}: must be 1..=4096"));
    }
    if args.connections == 0 || args.connections > 1_000_000 {
        return Err(format!(
            "--connections {}: must be 1..=1000000",
            args.connections
        ));
    }
    if args.scenario == Scenario::Pairs && !args.connections.is_multiple_of(2) {
        return Err(format!(
            "--connections {}: pairs need an even number",
            args.connections
        ));
    }
    if args.scenario == Scenario::Rooms && !args.dialect.has_broadcast() {
        return Err(format!(
            "--scenario rooms needs a room broadcast, which only --dialect switchboard has \
             ({} would need one send per member)",
            args.dialect.as_str()
        ));
    }
    if args.scenario == Scenario::Rooms && group_size < 2 {
        return Err("--scenario rooms needs --room-size of at least 2".into());
    }
    if args.scenario == Scenario::Idle && args.server_pid.is_none() {
        return Err("--scenario idle measures the server's memory: give --server-pid".into());
    }
    if !(0.0..=10_000_000.0).contains(&args.rate) {
        return Err(format!("--rate {}: must be 0..=10000000", args.rate));
    }
    if args.depth == 0 || args.depth > 65_536 {
        return Err(format!("--depth {}: must be 1..=65536", args.depth));
    }
    if args.payload_bytes > 60_000 {
        return Err(format!(
            "--payload-bytes {}: at most 60000 (the server's message limit is 64 KiB)",
            args.payload_bytes
        ));
    }
    Ok(engine::Plan {
        scenario: args.scenario,
        dialect: args.dialect,
        addr,
        host,
        base_path,
        connections: args.connections,
        group_size,
        payload: payload(args.payload_bytes),
        rate: args.rate,
        depth: args.depth,
        warmup_ns: secs_to_ns(args.warmup, "warmup")?,
        duration_ns: secs_to_ns(args.duration, "duration")?,
        setup_timeout_ns: secs_to_ns(args.setup_timeout, "setup-timeout")?,
        drain_timeout_ns: secs_to_ns(args.drain_timeout, "drain-timeout")?,
        concurrency: args.concurrency.clamp(1, 1_000_000),
        source_ips: args.source_ips.clone(),
        server_pid: args.server_pid,
        progress: !args.quiet && std::io::stderr().is_terminal(),
    })
}

fn overlays(args: &BenchArgs) -> Result<Vec<report::Series>, String> {
    args.plot_hgrm
        .iter()
        .map(|spec| {
            let (label, file) = spec
                .split_once('=')
                .ok_or_else(|| format!("--plot-hgrm {spec}: expected LABEL=FILE"))?;
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("--plot-hgrm {file}: {e}"))?;
            Ok((label.to_owned(), report::parse_hgrm(&text)))
        })
        .collect()
}

/// Runs the load described by `args` and returns its report, writing the files it asks for
/// (`--json`, `--hgrm`, `--plot`). Nothing is printed.
///
/// # Errors
/// A bad argument, an unreachable target, or a file that cannot be written.
pub fn run_report(args: &BenchArgs) -> Result<Report, String> {
    let plan = plan_of(args)?;
    let outcome = engine::run(&plan)?;
    let echo = report::Echo {
        scenario: args.scenario,
        dialect: args.dialect,
        target: args.target.clone(),
        connections: args.connections as u64,
        room_size: plan.group_size as u64,
        payload_bytes: args.payload_bytes as u64,
        rate: args.rate,
        depth: args.depth as u64,
        warmup_s: args.warmup,
        duration_s: args.duration,
        server_pid: args.server_pid,
    };
    let rep = report::build(&echo, &outcome);
    let main_hist = if matches!(args.scenario, Scenario::Storm | Scenario::Idle) {
        &outcome.steps.total
    } else {
        &outcome.latency
    };
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&rep).map_err(|e| format!("json: {e}"))?;
        std::fs::write(p, text + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &args.hgrm {
        std::fs::write(p, report::hgrm(main_hist)).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &args.plot {
        let mut series = vec![(
            args.label
                .clone()
                .unwrap_or_else(|| args.dialect.as_str().to_owned()),
            report::points(main_hist),
        )];
        series.extend(overlays(args)?);
        let title = format!(
            "{:?}, {} connections, {} B, {}",
            args.scenario,
            args.connections,
            args.payload_bytes,
            if args.rate > 0.0 {
                format!("{:.0} msgs/s offered", args.rate)
            } else {
                format!("depth {}", args.depth)
            }
        );
        report::plot(&p.to_string_lossy(), &title, &series)?;
    }
    Ok(rep)
}

/// Runs `switchboard bench`: the load, then the summary table on stdout.
///
/// # Errors
/// A description of what failed.
pub fn run(args: &BenchArgs) -> Result<(), String> {
    if args.plot_only {
        let p = args.plot.as_ref().ok_or("--plot-only needs --plot FILE")?;
        let series = overlays(args)?;
        if series.is_empty() {
            return Err("--plot-only needs at least one --plot-hgrm LABEL=FILE".into());
        }
        let title = args
            .label
            .clone()
            .unwrap_or_else(|| "latency by percentile".into());
        return report::plot(&p.to_string_lossy(), &title, &series);
    }
    let rep = run_report(args)?;
    if !args.quiet {
        print!("{}", report::table(&rep));
    }
    let steady = matches!(args.scenario, Scenario::Pairs | Scenario::Rooms);
    if (steady && rep.rooms_live == 0) || rep.connections_ready == 0 {
        return Err("nothing was measured (see the errors above)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let (a, h, p) = parse_target("ws://127.0.0.1:9/v1/signal").unwrap();
        assert_eq!(a.port(), 9);
        assert_eq!(h, "127.0.0.1:9");
        assert_eq!(p, "/v1/signal");
        assert_eq!(parse_target("ws://127.0.0.1:9").unwrap().2, "/");
        assert!(parse_target("http://x").is_err());
    }

    #[test]
    fn payload_has_the_requested_length_and_needs_no_escaping() {
        let p = payload(256);
        assert_eq!(p.len(), 256);
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
