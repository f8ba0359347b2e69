//! Thin wrappers over the few system calls the shards need beyond std: eventfd, thread
//! pinning, random bytes, and socket options.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A non-blocking eventfd used to wake a parked shard.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// Creates a non-blocking, close-on-exec eventfd.
    ///
    /// # Errors
    /// The `eventfd(2)` error.
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; a negative return is an error code.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    /// Adds one to the counter, waking a reader.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local; the fd is valid while `self` lives. A
        // failure (EAGAIN when the counter is saturated) still leaves the fd readable, which
        // is all a wake needs.
        unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                std::ptr::addr_of!(one).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }

    /// Resets the counter after a wake was seen.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live local; EAGAIN (nothing to read) is harmless.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                std::ptr::addr_of_mut!(v).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }
}

impl EventFd {
    /// A second descriptor for the same eventfd (`dup`): a wake written to either is seen
    /// on both.
    ///
    /// # Errors
    /// The `dup(2)` error.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(EventFd {
            fd: self.fd.try_clone()?,
        })
    }

    /// Registers the eventfd with the current tokio reactor, for the cluster bridge, which
    /// waits on its waker with tokio rather than in a shard driver.
    ///
    /// # Errors
    /// The registration failed.
    ///
    /// # Panics
    /// Outside a tokio runtime with I/O enabled.
    pub fn into_async(self) -> io::Result<tokio::io::unix::AsyncFd<EventFd>> {
        // SAFETY: the AsyncFd takes `self`, which owns its descriptor, so the descriptor
        // stays open and names the same eventfd until the AsyncFd is dropped, and
        // `as_raw_fd` always returns that one descriptor.
        unsafe { tokio::io::unix::AsyncFd::register(self) }.map_err(io::Error::from)
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Pins the calling thread to one CPU. Failure is reported, not fatal: a container may
/// forbid it.
///
/// # Errors
/// The `sched_setaffinity(2)` error.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    let allowed = allowed_cpus()?;
    if allowed.is_empty() {
        return Err(io::Error::other("no CPU in this thread's affinity mask"));
    }
    // Pin within the mask the process was started with (taskset, cgroups, systemd's
    // CPUAffinity=), never outside it: shard N takes the N-th allowed CPU.
    let cpu = allowed[cpu % allowed.len()];
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes inside `set`, bounds are checked by the macro's implementation
    // against CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: passes a pointer to a live cpu_set_t of the size given.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPUs this thread may run on.
///
/// # Errors
/// The `sched_getaffinity(2)` error.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: passes a pointer to a live cpu_set_t of the size given.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET reads inside `set`; every index is below CPU_SETSIZE.
    Ok((0..max)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Fills `buf` from the kernel's CSPRNG.
///
/// # Errors
/// The `getrandom(2)` error.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: writes at most rest.len() bytes into the live slice.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}

/// CPU time (user + system) of this process, in microseconds.
#[must_use]
pub fn process_cpu_us() -> u64 {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: passes a pointer to a live rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Milliseconds on the monotonic clock. Shards read time once per loop turn and pass it to
/// the sans-IO cores.
#[must_use]
pub fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    start.elapsed().as_millis() as u64
}

/// `read(2)` on a raw descriptor.
///
/// # Errors
/// The OS error, `WouldBlock` included.
pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reads at most buf.len() bytes into the live slice; the caller owns `fd`.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `send(2)` with `MSG_NOSIGNAL` on a raw descriptor, so a peer that went away yields
/// `EPIPE` instead of killing the process.
///
/// # Errors
/// The OS error, `WouldBlock` included.
pub fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: reads at most buf.len() bytes from the live slice; the caller owns `fd`.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Binds a listening TCP socket that joins the `SO_REUSEPORT` group of its address: one
/// per shard, so the kernel spreads connections across shards.
///
/// # Errors
/// The socket could not be created or bound.
pub fn reuseport_listener(
    addr: std::net::SocketAddr,
    backlog: i32,
) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
