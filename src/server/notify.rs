//! systemd's service notification protocol (`sd_notify(3)`), without libsystemd.
//!
//! When systemd starts a `Type=notify` service it puts the path of a Unix datagram socket in
//! `NOTIFY_SOCKET` (a leading `@` names an abstract socket). Each notification is one
//! datagram of newline-separated `KEY=VALUE` lines. Without `NOTIFY_SOCKET` every function
//! here does nothing, so the same binary runs under systemd, in a container or by hand.
//!
//! The supervisor thread ([`spawn_supervisor`]) does the periodic part:
//!
//! 1. Every tick (half the watchdog interval, at most [`TICK_MS_MAX`]), check whether a stop
//!    was requested (by a shard that failed, say; the signal handler and
//!    [`super::Running::stop`] send it at once); the first time it was, send `STOPPING=1`.
//! 2. When the watchdog is on and a ping is due, send `WATCHDOG=1` only if every shard's
//!    loop is alive ([`super::admin::readiness`]): a hung shard stops the pings, and systemd
//!    restarts the service after `WatchdogSec=`.
//! 3. Exit when the server's control threads are told to stop (after the shards have).

use std::io;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::shard::{sys, Shared};

/// The longest the supervisor sleeps between looks at the stop flag.
pub const TICK_MS_MAX: u64 = 250;

/// Where notifications go, from `NOTIFY_SOCKET`; `None` when unset or empty.
fn notify_addr() -> io::Result<Option<UnixAddr>> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(None);
    };
    let bytes = path.as_encoded_bytes();
    if bytes.is_empty() {
        return Ok(None);
    }
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt as _;
        return UnixAddr::from_abstract_name(name).map(Some);
    }
    if bytes[0] != b'/' {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is neither an absolute path nor an abstract name (@...)",
        ));
    }
    UnixAddr::from_pathname(std::path::Path::new(&path)).map(Some)
}

/// Sends one notification. Returns whether it was sent (`false` without `NOTIFY_SOCKET`).
///
/// # Errors
/// `NOTIFY_SOCKET` is malformed or the datagram could not be sent.
pub fn send(state: &str) -> io::Result<bool> {
    let Some(addr) = notify_addr()? else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}

fn send_logged(state: &str) {
    if let Err(e) = send(state) {
        tracing::warn!(error = %e, state, "sd_notify failed");
    }
}

/// Tells systemd the service is up: every listener is bound and every shard runs.
pub fn ready(status: &str) {
    send_logged(&format!("READY=1\nSTATUS={status}"));
}

/// Tells systemd the service is draining and will exit; only the first call sends.
pub fn stopping() {
    static SENT: AtomicBool = AtomicBool::new(false);
    if !SENT.swap(true, Ordering::AcqRel) {
        send_logged("STOPPING=1\nSTATUS=draining connections");
    }
}

/// Tells systemd the service is alive (resets the `WatchdogSec=` timer).
pub fn watchdog() {
    send_logged("WATCHDOG=1");
}

/// The watchdog interval systemd expects pings within, when it is on for this process:
/// `WATCHDOG_USEC` set and nonzero, and `WATCHDOG_PID` absent or ours.
#[must_use]
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// Starts the supervisor thread when systemd listens (`NOTIFY_SOCKET` set); `None` otherwise.
///
/// # Errors
/// The thread could not be spawned.
pub fn spawn_supervisor(
    shared: Arc<Shared>,
    quit: Arc<AtomicBool>,
    stall_ms: u64,
) -> io::Result<Option<JoinHandle<()>>> {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return Ok(None);
    }
    let watchdog_every = watchdog_interval().map(|d| d / 2);
    if let Some(d) = watchdog_every {
        tracing::info!(ping_ms = d.as_millis() as u64, "systemd watchdog on");
    }
    let tick = watchdog_every
        .unwrap_or(Duration::MAX)
        .min(Duration::from_millis(TICK_MS_MAX));
    let handle = std::thread::Builder::new()
        .name("sd-notify".into())
        .spawn(move || supervise(&shared, &quit, tick, watchdog_every, stall_ms))?;
    Ok(Some(handle))
}

fn supervise(
    shared: &Shared,
    quit: &AtomicBool,
    tick: Duration,
    watchdog_every: Option<Duration>,
    stall_ms: u64,
) {
    let mut last_ping_ms: Option<u64> = None;
    while !quit.load(Ordering::Acquire) {
        if shared.stop.load(Ordering::Acquire) {
            stopping();
        }
        if let Some(every) = watchdog_every {
            let now_ms = sys::monotonic_ms();
            // A ping may go out up to one tick early, never one tick late.
            let every_ms = every.saturating_sub(tick).as_millis() as u64;
            let due = last_ping_ms.is_none_or(|at| now_ms.saturating_sub(at) >= every_ms);
            if due && super::admin::readiness(shared, now_ms, stall_ms).is_ok() {
                watchdog();
                last_ping_ms = Some(now_ms);
            }
        }
        std::thread::sleep(tick);
    }
    // A stop that drained within one tick still gets its STOPPING=1.
    if shared.stop.load(Ordering::Acquire) {
        stopping();
    }
}
