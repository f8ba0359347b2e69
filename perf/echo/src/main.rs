//! `echo-perf`: the reference WebSocket echo servers of `perf/compare.sh`.
//!
//! ```text
//! echo-perf uring  --listen IP:PORT    raw io_uring echo, the floor (src/uring.rs)
//! echo-perf fastws --listen IP:PORT    fastwebsockets on a current-thread tokio runtime
//! ```
//!
//! Both serve any path, print `listening=IP:PORT` on stdout once bound (port 0 picks a free
//! port), run on one thread, and exit with status 0 on SIGINT or SIGTERM. Drive them with
//! `switchboard bench --dialect echo`.

// Every unsafe block says what it relies on (STYLE.md, habit 5).
#![deny(clippy::undocumented_unsafe_blocks)]

mod fastws;
mod uring;
mod ws;

use std::io::{self, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::RawFd;
use std::process::ExitCode;

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the listener holds: the bench opens hundreds at once, and a full
/// backlog would cost a client a one-second SYN retry.
const LISTEN_BACKLOG: i32 = 4096;

const USAGE: &str = "usage: echo-perf uring|fastws --listen IP:PORT";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo-perf: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let (mode, listen) = match args {
        [mode, flag, addr] if flag == "--listen" => (mode.as_str(), addr),
        _ => return Err(USAGE.into()),
    };
    let listen: SocketAddr = listen
        .parse()
        .map_err(|_| format!("--listen {listen}: expected IP:PORT"))?;
    if mode != "uring" && mode != "fastws" {
        return Err(format!("unknown mode {mode:?}; {USAGE}"));
    }
    raise_nofile_limit();
    // The raw echo learns of signals through its ring; they are blocked before anything
    // else so that none arrives in between and kills the process instead.
    let signal_fd = if mode == "uring" {
        Some(block_signals_into_fd().map_err(|e| format!("signalfd: {e}"))?)
    } else {
        None
    };
    let listener = bind(listen).map_err(|e| format!("--listen {listen}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("--listen {listen}: {e}"))?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening={bound}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("stdout: {e}"))?;
    drop(stdout);
    let served = match signal_fd {
        Some(fd) => uring::run(listener, fd),
        None => fastws::run(listener),
    };
    served.map_err(|e| format!("{mode}: {e}"))
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Blocks SIGINT and SIGTERM for this (single-threaded) process and returns a signalfd that
/// becomes readable when one of them arrives.
fn block_signals_into_fd() -> io::Result<RawFd> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: each call gets a pointer to the live local set; the mask change affects only
    // this thread, which is the only one (the raw echo never starts another).
    let fd = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Raises the soft limit on open files to the hard limit, so that the idle run's ten
/// thousand sessions fit. A failure leaves the limit as it was; accepts beyond it fail and
/// the bench reports them.
fn raise_nofile_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: passes a pointer to a live rlimit, which getrlimit fills.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: passes a pointer to a live rlimit; raising the soft limit to the hard one is
    // always allowed.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
}
