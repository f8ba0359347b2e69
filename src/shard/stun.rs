//! The STUN Binding server of one shard: UDP sockets read and answered in batches with
//! `recvmmsg`/`sendmmsg`, and the STUN-over-TCP listener (its connections are handled by
//! [`super::Core`] like any other).
//!
//! Each shard binds its own sockets with `SO_REUSEPORT` on the same addresses, so the kernel
//! spreads datagrams across shards by source. One turn of [`StunService::poll_udp`]:
//!
//! 1. `recvmmsg` up to `udp_batch_max` datagrams from a ready socket (non-blocking).
//! 2. For each: rate limit by source, then the sans-IO responder writes the answer into
//!    that datagram's slot of the send buffer.
//! 3. `sendmmsg` every answer leaving from the receiving socket in one call; the rare
//!    RFC 5780 answer from another socket goes out with `sendto`.
//! 4. Repeat while datagrams keep coming, up to a per-turn budget so signaling is not
//!    starved; a socket still readable stays marked ready for the next turn.

use std::io;
use std::mem::{size_of, zeroed, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

use crate::proto::stun::{
    RateLimitConfig, RateLimiter, Responder, ResponderConfig, Response, Rfc5780Config,
    StunCounters, RESPONSE_BYTES_MAX,
};

/// Largest datagram read; longer ones are truncated by the kernel and dropped as malformed.
const DATAGRAM_BYTES_MAX: usize = 2048;
/// Batches one socket may take per loop turn before other work runs.
const BATCHES_PER_TURN: usize = 8;

/// Settings of the STUN service, fixed at start-up.
#[derive(Debug, Clone)]
pub struct StunSettings {
    /// Primary address (UDP, and TCP when enabled).
    pub listen: SocketAddr,
    /// RFC 5780 alternate address, if behaviour discovery is on.
    pub alternate: Option<SocketAddr>,
    /// Whether STUN over TCP is served.
    pub tcp: bool,
    /// SOFTWARE attribute value.
    pub software: Option<String>,
    /// Rate limiter.
    pub rate: RateLimitConfig,
    /// `SO_RCVBUF` per UDP socket.
    pub udp_rcvbuf_bytes: usize,
    /// `SO_SNDBUF` per UDP socket.
    pub udp_sndbuf_bytes: usize,
    /// Datagrams per batch call.
    pub udp_batch_max: usize,
    /// Idle limit of STUN-over-TCP connections.
    pub tcp_idle_timeout_ms: u64,
}

impl StunSettings {
    /// Every UDP address this server binds: the primary, then with RFC 5780 the three
    /// other combinations of address and port.
    #[must_use]
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        let mut v = vec![self.listen];
        if let Some(alt) = self.alternate {
            v.push(SocketAddr::new(self.listen.ip(), alt.port()));
            v.push(SocketAddr::new(alt.ip(), self.listen.port()));
            v.push(alt);
        }
        v
    }
}

/// Binds one `SO_REUSEPORT` UDP socket.
///
/// # Errors
/// The socket could not be created or bound.
pub fn bind_udp(addr: SocketAddr, s: &StunSettings) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Buffer sizes are best effort: the kernel caps them at net.core.*mem_max.
    let _ = socket.set_recv_buffer_size(s.udp_rcvbuf_bytes);
    let _ = socket.set_send_buffer_size(s.udp_sndbuf_bytes);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// One shard's STUN server.
pub struct StunService {
    responder: Responder,
    limiter: RateLimiter,
    /// What happened to every datagram and TCP request.
    pub counters: StunCounters,
    sockets: Vec<(UdpSocket, SocketAddr)>,
    ready: Vec<bool>,
    batch_max: usize,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Idle limit of STUN-over-TCP connections.
    pub tcp_idle_timeout_ms: u64,
    /// Scratch for one TCP answer.
    pub(crate) tcp_out: [u8; RESPONSE_BYTES_MAX],
    /// Batch headers, reused so a batch allocates nothing; their pointers are rebuilt for
    /// every call.
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    out: Vec<(libc::sockaddr_storage, u32, usize, usize)>,
    tx_iovs: Vec<libc::iovec>,
    tx_msgs: Vec<libc::mmsghdr>,
}

impl std::fmt::Debug for StunService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StunService")
            .field("sockets", &self.sockets.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl StunService {
    /// A service answering on `sockets` (bound by [`bind_udp`] to `settings.udp_addrs()`).
    #[must_use]
    pub fn new(settings: &StunSettings, sockets: Vec<UdpSocket>) -> StunService {
        let addrs = settings.udp_addrs();
        assert_eq!(addrs.len(), sockets.len(), "one socket per STUN address");
        let rfc5780 = settings.alternate.map(|alternate| Rfc5780Config {
            primary: settings.listen,
            alternate,
        });
        let responder = Responder::new(ResponderConfig {
            software: settings.software.clone(),
            mapped_address: false,
            rfc5780,
            credentials: None,
        });
        let batch = settings.udp_batch_max;
        let n = sockets.len();
        StunService {
            responder,
            limiter: RateLimiter::new(settings.rate),
            counters: StunCounters::default(),
            sockets: sockets.into_iter().zip(addrs).collect(),
            ready: vec![true; n],
            batch_max: batch,
            rx: vec![0u8; batch * DATAGRAM_BYTES_MAX],
            tx: vec![0u8; batch * RESPONSE_BYTES_MAX],
            tcp_idle_timeout_ms: settings.tcp_idle_timeout_ms,
            tcp_out: [0u8; RESPONSE_BYTES_MAX],
            addrs: Vec::with_capacity(batch),
            iovs: Vec::with_capacity(batch),
            msgs: Vec::with_capacity(batch),
            out: Vec::with_capacity(batch),
            tx_iovs: Vec::with_capacity(batch),
            tx_msgs: Vec::with_capacity(batch),
        }
    }

    /// The UDP sockets' descriptors, for the driver to watch.
    pub fn fds(&self) -> Vec<RawFd> {
        self.sockets.iter().map(|(s, _)| s.as_raw_fd()).collect()
    }

    /// Marks socket `i` readable.
    pub fn mark_ready(&mut self, i: usize) {
        if let Some(r) = self.ready.get_mut(i) {
            *r = true;
        }
    }

    /// Whether a socket still has datagrams waiting from the last turn.
    #[must_use]
    pub fn has_ready(&self) -> bool {
        self.ready.iter().any(|r| *r)
    }

    /// Answers one STUN-over-TCP request; returns the answer's length, if any.
    pub fn respond_tcp(
        &mut self,
        request: &[u8],
        peer: SocketAddr,
        local: SocketAddr,
        now_ms: u64,
    ) -> Option<usize> {
        let r = self
            .responder
            .respond(request, peer, local, &mut self.tcp_out);
        if matches!(r, Response::Send(_)) && !self.limiter.allow(peer.ip(), now_ms) {
            self.counters.record_rate_limited();
            return None;
        }
        self.counters.record(&r);
        match r {
            Response::Send(reply) => Some(reply.len),
            Response::Drop(_) => None,
        }
    }

    /// Reads and answers datagrams on every ready socket, within the per-turn budget.
    pub fn poll_udp(&mut self, now_ms: u64) {
        for i in 0..self.sockets.len() {
            if !self.ready[i] {
                continue;
            }
            for _ in 0..BATCHES_PER_TURN {
                match self.one_batch(i, now_ms) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.ready[i] = false;
                        break;
                    }
                    Err(_) => {
                        // A transient error (e.g. ICMP feedback) on one datagram must not
                        // stall the socket; the next readiness event resumes it.
                        self.ready[i] = false;
                        break;
                    }
                }
            }
        }
    }

    /// One `recvmmsg` + answers + `sendmmsg`; returns whether the batch was full (more
    /// may be waiting).
    fn one_batch(&mut self, i: usize, now_ms: u64) -> io::Result<bool> {
        let fd = self.sockets[i].0.as_raw_fd();
        let local = self.sockets[i].1;
        let batch = self.batch_max;
        let StunService {
            addrs, iovs, msgs, ..
        } = self;
        addrs.clear();
        iovs.clear();
        msgs.clear();
        // SAFETY: zeroed sockaddr_storage / iovec / mmsghdr are valid "empty" values.
        addrs.extend((0..batch).map(|_| unsafe { zeroed::<libc::sockaddr_storage>() }));
        for k in 0..batch {
            iovs.push(libc::iovec {
                iov_base: self.rx[k * DATAGRAM_BYTES_MAX..].as_mut_ptr().cast(),
                iov_len: DATAGRAM_BYTES_MAX,
            });
        }
        for k in 0..batch {
            // SAFETY: see above.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = std::ptr::addr_of_mut!(addrs[k]).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
            h.msg_hdr.msg_iov = std::ptr::addr_of_mut!(iovs[k]);
            h.msg_hdr.msg_iovlen = 1;
            msgs.push(h);
        }
        // SAFETY: every header points at a live address slot and a live iovec over a
        // distinct DATAGRAM_BYTES_MAX slice of `self.rx`; all outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                batch as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(false),
                io::ErrorKind::Interrupted => Ok(true),
                _ => Err(e),
            };
        }
        let n = n as usize;
        // Answers leaving from this socket: (destination, tx slot, length).
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        for k in 0..n {
            let len = self.msgs[k].msg_len as usize;
            let truncated = self.msgs[k].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let Some(src) = sockaddr_to_std(&self.addrs[k]) else {
                continue;
            };
            let request = if truncated {
                // A datagram longer than any request we answer: let the responder drop it.
                &self.rx[k * DATAGRAM_BYTES_MAX..k * DATAGRAM_BYTES_MAX + 1]
            } else {
                &self.rx[k * DATAGRAM_BYTES_MAX..k * DATAGRAM_BYTES_MAX + len]
            };
            let slot = &mut self.tx[k * RESPONSE_BYTES_MAX..(k + 1) * RESPONSE_BYTES_MAX];
            let r = self.responder.respond(request, src, local, slot);
            // The limit applies to answers: what is not answered anyway costs no token.
            if matches!(r, Response::Send(_)) && !self.limiter.allow(src.ip(), now_ms) {
                self.counters.record_rate_limited();
                continue;
            }
            self.counters.record(&r);
            if let Response::Send(reply) = r {
                if reply.source == local {
                    let (ss, sl) = std_to_sockaddr(reply.destination);
                    out.push((ss, sl, k, reply.len));
                } else if let Some((sock, _)) =
                    self.sockets.iter().find(|(_, a)| *a == reply.source)
                {
                    // RFC 5780 CHANGE-REQUEST: answer from the other address or port.
                    let _ = sock.send_to(&slot[..reply.len], reply.destination);
                }
            }
        }
        if !out.is_empty() {
            self.send_batch(fd, &mut out);
        }
        self.out = out;
        Ok(n == batch)
    }

    fn send_batch(&mut self, fd: RawFd, out: &mut [(libc::sockaddr_storage, u32, usize, usize)]) {
        let StunService {
            tx_iovs: iovs,
            tx_msgs: msgs,
            tx,
            ..
        } = self;
        iovs.clear();
        msgs.clear();
        iovs.extend(out.iter().map(|&(_, _, k, len)| libc::iovec {
            iov_base: tx[k * RESPONSE_BYTES_MAX..].as_mut_ptr().cast(),
            iov_len: len,
        }));
        for (j, (ss, sl, _, _)) in out.iter_mut().enumerate() {
            // SAFETY: a zeroed mmsghdr is a valid empty header.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = std::ptr::addr_of_mut!(*ss).cast();
            h.msg_hdr.msg_namelen = *sl;
            h.msg_hdr.msg_iov = std::ptr::addr_of_mut!(iovs[j]);
            h.msg_hdr.msg_iovlen = 1;
            msgs.push(h);
        }
        let mut sent = 0;
        while sent < msgs.len() {
            // SAFETY: the headers point at live addresses and iovecs over `self.tx`, which
            // outlive the call.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    msgs[sent..].as_mut_ptr(),
                    (msgs.len() - sent) as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                // A full send buffer drops the rest, as UDP would anyway; clients retry.
                break;
            }
            sent += n as usize;
        }
    }
}

/// Converts a kernel socket address to std's.
fn sockaddr_to_std(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which is smaller.
            let sin: &libc::sockaddr_in = unsafe { &*std::ptr::from_ref(ss).cast() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which is smaller.
            let sin6: &libc::sockaddr_in6 = unsafe { &*std::ptr::from_ref(ss).cast() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Converts std's socket address to the kernel's.
fn std_to_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, u32) {
    let mut ss = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_in fits in sockaddr_storage; the storage is zeroed.
            let sin: &mut libc::sockaddr_in = unsafe { &mut *ss.as_mut_ptr().cast() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_in6 fits in sockaddr_storage; the storage is zeroed.
            let sin6: &mut libc::sockaddr_in6 = unsafe { &mut *ss.as_mut_ptr().cast() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: zero-initialised, then the fields of the family were written.
    (unsafe { ss.assume_init() }, len as u32)
}
