//! The system calls the client and the responder share: a UDP socket with large buffers,
//! `recvmmsg`/`sendmmsg` over a fixed set of slots, `poll`, and CPU time from `/proc`.
//!
//! IPv4 only: the benchmark runs on 127.0.0.1, and `sockaddr_in` keeps the slots small.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// Binds a UDP socket with `SO_RCVBUF`/`SO_SNDBUF` of `buffer_bytes` (forced past
/// `net.core.*mem_max` when running as root; the kernel default of 208 KiB drops
/// requests at a few hundred outstanding).
pub fn bind_udp(
    addr: SocketAddrV4,
    buffer_bytes: usize,
    nonblocking: bool,
) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    let fd = socket.as_raw_fd();
    let bytes = i32::try_from(buffer_bytes).unwrap_or(i32::MAX);
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if set_int(fd, force, bytes).is_err() {
            // Not root: the capped size is still better than the default.
            let _ = set_int(fd, plain, bytes);
        }
    }
    socket.set_nonblocking(nonblocking)?;
    Ok(socket)
}

fn set_int(fd: RawFd, option: i32, value: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a live i32 and its size; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            std::ptr::from_ref(&value).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `slots` datagram buffers of `slot_bytes` each, with the address, iovec and header of
/// every slot wired up once at construction: a batch call allocates nothing.
///
/// The headers hold raw pointers into the other vectors. None of them is ever resized, and
/// moving a `Vec` does not move its heap buffer, so the pointers stay valid for the life of
/// the `Batch`.
pub struct Batch {
    slot_bytes: usize,
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl Batch {
    pub fn new(slots: usize, slot_bytes: usize) -> Batch {
        assert!(
            slots > 0 && slot_bytes > 0,
            "a batch needs slots of some size"
        );
        let mut bufs = vec![0u8; slots * slot_bytes];
        // SAFETY: an all-zero sockaddr_in is a valid (AF_UNSPEC) value.
        let mut addrs: Vec<libc::sockaddr_in> = (0..slots).map(|_| unsafe { zeroed() }).collect();
        let mut iovs: Vec<libc::iovec> = (0..slots)
            .map(|k| libc::iovec {
                iov_base: bufs[k * slot_bytes..].as_mut_ptr().cast(),
                iov_len: slot_bytes,
            })
            .collect();
        let hdrs = (0..slots)
            .map(|k| {
                // SAFETY: an all-zero mmsghdr is a valid empty header.
                let mut h: libc::mmsghdr = unsafe { zeroed() };
                h.msg_hdr.msg_name = std::ptr::addr_of_mut!(addrs[k]).cast();
                h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
                h.msg_hdr.msg_iov = std::ptr::addr_of_mut!(iovs[k]);
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        Batch {
            slot_bytes,
            bufs,
            addrs,
            iovs,
            hdrs,
        }
    }

    /// Receives up to `slots()` datagrams. `flags` is `MSG_DONTWAIT` on a non-blocking poll
    /// or `MSG_WAITFORONE` on a blocking socket. Returns 0 when nothing was waiting.
    pub fn recv(&mut self, fd: RawFd, flags: i32) -> io::Result<usize> {
        for k in 0..self.hdrs.len() {
            self.iovs[k].iov_len = self.slot_bytes;
            self.hdrs[k].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
            self.hdrs[k].msg_hdr.msg_flags = 0;
        }
        // SAFETY: every header points at its own live sockaddr_in and iovec, each iovec at a
        // distinct slot_bytes slice of `bufs`; all outlive the call (see the type's docs).
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as u32,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
            _ => Err(e),
        }
    }

    /// Sends slots `0..count` (their bytes, lengths and addresses set with [`Batch::fill`]).
    /// Returns how many the kernel took; 0 when the send buffer is full.
    pub fn send(&mut self, fd: RawFd, count: usize) -> io::Result<usize> {
        assert!(count <= self.hdrs.len());
        if count == 0 {
            return Ok(0);
        }
        // SAFETY: as in `recv`; the kernel only reads the first `count` headers.
        let n =
            unsafe { libc::sendmmsg(fd, self.hdrs.as_mut_ptr(), count as u32, libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
            _ => Err(e),
        }
    }

    /// The received datagram in slot `k` (after [`Batch::recv`]); a truncated one is cut at
    /// the slot size, and the caller sees the `MSG_TRUNC` flag through [`Batch::truncated`].
    pub fn data(&self, k: usize) -> &[u8] {
        let len = (self.hdrs[k].msg_len as usize).min(self.slot_bytes);
        &self.bufs[k * self.slot_bytes..k * self.slot_bytes + len]
    }

    pub fn truncated(&self, k: usize) -> bool {
        self.hdrs[k].msg_hdr.msg_flags & libc::MSG_TRUNC != 0
    }

    /// The source of the datagram in slot `k`.
    pub fn peer(&self, k: usize) -> SocketAddrV4 {
        let sin = &self.addrs[k];
        SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
            u16::from_be(sin.sin_port),
        )
    }

    /// Slot `k`'s whole buffer, to write a datagram into before [`Batch::fill`].
    pub fn buf_mut(&mut self, k: usize) -> &mut [u8] {
        &mut self.bufs[k * self.slot_bytes..(k + 1) * self.slot_bytes]
    }

    /// Marks slot `k` as `len` bytes for `to`.
    pub fn fill(&mut self, k: usize, len: usize, to: SocketAddrV4) {
        assert!(len <= self.slot_bytes);
        self.iovs[k].iov_len = len;
        self.addrs[k] = sockaddr(to);
        self.hdrs[k].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
    }

    /// Copies slot `from`'s bytes into slot `to` and marks it for `peer` (the responder
    /// compacts its answers to the front).
    pub fn move_slot(&mut self, from: usize, to: usize, len: usize, peer: SocketAddrV4) {
        if from != to {
            let s = self.slot_bytes;
            self.bufs.copy_within(from * s..from * s + len, to * s);
        }
        self.fill(to, len, peer);
    }
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: an all-zero sockaddr_in is valid; the fields of AF_INET are then set.
    let mut sin: libc::sockaddr_in = unsafe { zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = addr.port().to_be();
    sin.sin_addr.s_addr = u32::from(*addr.ip()).to_be();
    sin
}

/// Waits up to `timeout_us` for `fd` to become readable.
pub fn wait_readable(fd: RawFd, timeout_us: u64) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let t = libc::timespec {
        tv_sec: (timeout_us / 1_000_000) as libc::time_t,
        tv_nsec: ((timeout_us % 1_000_000) * 1_000) as libc::c_long,
    };
    // SAFETY: one live pollfd, count 1, a live timespec, no signal mask. EINTR and timeouts
    // are both "look again".
    let _ = unsafe { libc::ppoll(&mut p, 1, &t, std::ptr::null()) };
}

/// Ticks per second of the utime/stime fields of `/proc/<pid>/stat`.
pub fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// utime + stime of a process (all its threads), in seconds; `None` if it is gone.
pub fn process_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_ascii_whitespace();
    // After the name, field 3 (state) is index 0; utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks_per_s() as f64)
}
