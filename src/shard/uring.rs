//! The io_uring driver: multishot accept, multishot receive into a provided buffer ring,
//! one send in flight per connection, one `io_uring_enter` per loop turn.
//!
//! Lifetimes the kernel relies on, and how they are kept:
//! - The provided buffers and the buffer ring live in [`BufRing`], which outlives the
//!   ring's registration (it is unregistered in `Drop` before the memory is freed, and the
//!   `IoUring` is dropped — cancelling everything — before `BufRing`).
//! - A send's bytes live in the connection's `inflight` vector, which is not touched until
//!   the send's completion arrives. A connection closed with a send in flight moves that
//!   vector to `orphans` until then.
//! - The eventfd read target is a boxed `u64` owned by the driver.
//!
//! Completions carry `token | generation | op` in `user_data`; a completion whose
//! generation no longer matches the slot belongs to a closed connection and only releases
//! what it held.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::sys::monotonic_ms;
use super::{CloseReason, Core, Shared};
use crate::proto::signal::ConnToken;

/// io_uring sizes.
#[derive(Debug, Clone, Copy)]
pub struct UringConfig {
    /// Submission queue entries.
    pub entries: u32,
    /// Provided receive buffers.
    pub buffers: u16,
}

const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
const OP_WAKE: u64 = 4;
const OP_ACCEPT_STUN: u64 = 5;
/// Readiness of STUN UDP socket N (N in the token field).
const OP_UDP_POLL: u64 = 6;

const BUFFER_GROUP: u16 = 0;

fn pack(token: ConnToken, generation: u32, op: u64) -> u64 {
    (u64::from(token) << 32) | (u64::from(generation & 0x00FF_FFFF) << 8) | op
}

fn unpack(user_data: u64) -> (ConnToken, u32, u64) {
    (
        (user_data >> 32) as u32,
        ((user_data >> 8) & 0x00FF_FFFF) as u32,
        user_data & 0xFF,
    )
}

/// Checks that io_uring can start here with what the driver needs (ring setup, a
/// provided-buffer ring), so `auto` can fall back before any shard commits to it.
///
/// # Errors
/// Why not, as a sentence for the log, with the likely cause.
pub fn probe(entries: u32) -> Result<(), String> {
    // The probe runs on a thread of its own: tearing a ring down leaves io_uring task work
    // on the creating thread, which interrupts that thread's next blocking call with EINTR
    // (seen as failed socket reads in the caller of `server::start`).
    std::thread::Builder::new()
        .name("uring-probe".into())
        .spawn(move || probe_here(entries))
        .map_err(|e| format!("cannot start the io_uring probe thread: {e}"))?
        .join()
        .unwrap_or_else(|_| Err("the io_uring probe panicked".into()))
}

fn probe_here(entries: u32) -> Result<(), String> {
    let ring = IoUring::new(entries.min(64)).map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(libc::EPERM) => "blocked by seccomp or kernel.io_uring_disabled",
            Some(libc::ENOSYS) => "the kernel lacks io_uring or seccomp hides it",
            Some(libc::ENOMEM) => "locked-memory limit too low (raise LimitMEMLOCK / ulimit -l)",
            _ => "io_uring_setup failed",
        };
        format!("io_uring_setup: {e} (likely cause: {hint})")
    })?;
    let bufs = BufRing::new(&ring, 2, 64).map_err(|e| {
        format!("registering a provided-buffer ring failed: {e} (kernel older than 5.19?)")
    })?;
    drop(ring);
    drop(bufs);
    Ok(())
}

/// Provided receive buffers and their ring, shared with the kernel.
struct BufRing {
    ring: *mut types::BufRingEntry,
    ring_layout: std::alloc::Layout,
    memory: Vec<u8>,
    entries: u16,
    buffer_bytes: usize,
    tail: u16,
}

impl BufRing {
    fn new(uring: &IoUring, entries: u16, buffer_bytes: usize) -> io::Result<BufRing> {
        assert!(
            entries.is_power_of_two(),
            "buffer ring entries must be a power of two"
        );
        let ring_layout = std::alloc::Layout::from_size_align(
            usize::from(entries) * std::mem::size_of::<types::BufRingEntry>(),
            4096,
        )
        .map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size (entries >= 1).
        let ring = unsafe { std::alloc::alloc_zeroed(ring_layout) }.cast::<types::BufRingEntry>();
        if ring.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut br = BufRing {
            ring,
            ring_layout,
            memory: vec![0u8; usize::from(entries) * buffer_bytes],
            entries,
            buffer_bytes,
            tail: 0,
        };
        // SAFETY: the ring memory is page-aligned, zeroed, and lives until Drop, which
        // unregisters it first.
        unsafe {
            uring.submitter().register_buf_ring_with_flags(
                ring as u64,
                entries,
                BUFFER_GROUP,
                0,
            )?;
        }
        for bid in 0..entries {
            br.push(bid);
        }
        br.publish();
        Ok(br)
    }

    /// Queues buffer `bid` for the kernel (visible after [`BufRing::publish`]).
    fn push(&mut self, bid: u16) {
        let mask = self.entries - 1;
        let idx = usize::from(self.tail & mask);
        let addr = self.memory[usize::from(bid) * self.buffer_bytes..].as_ptr() as u64;
        // SAFETY: idx < entries, inside the ring allocation; the kernel only reads entries
        // between its head and our published tail, and this slot is past the tail.
        let entry = unsafe { &mut *self.ring.add(idx) };
        entry.set_addr(addr);
        entry.set_len(self.buffer_bytes as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes pushed buffers visible to the kernel.
    fn publish(&mut self) {
        // SAFETY: the tail field overlays entry 0's reserved field, inside the ring; the
        // kernel reads it with acquire semantics, so a release store orders the entries
        // written before it.
        unsafe {
            let tail = types::BufRingEntry::tail(self.ring).cast_mut();
            (*tail.cast::<AtomicU16>()).store(self.tail, Ordering::Release);
        }
    }

    /// The bytes of buffer `bid`.
    fn buffer(&mut self, bid: u16, len: usize) -> &mut [u8] {
        let start = usize::from(bid) * self.buffer_bytes;
        &mut self.memory[start..start + len.min(self.buffer_bytes)]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the kernel no longer uses it (the
        // owning IoUring is dropped before this struct).
        unsafe { std::alloc::dealloc(self.ring.cast(), self.ring_layout) };
    }
}

/// Per-connection send state.
#[derive(Default)]
struct SendState {
    inflight: Vec<u8>,
    offset: usize,
    sending: bool,
    recv_armed: bool,
}

struct Driver {
    ring: IoUring,
    bufs: BufRing,
    sends: Vec<SendState>,
    orphans: HashMap<u64, Vec<u8>>,
    wake_buf: Box<u64>,
    listener_fd: RawFd,
    stun_listener_fd: Option<RawFd>,
    stun_accept_armed: bool,
    /// The shard's eventfd, re-read after every wake.
    wake_fd: RawFd,
    /// STUN UDP sockets, watched with multishot polls.
    udp_fds: Vec<RawFd>,
    /// Connections whose multishot receive ended and must be re-armed.
    rearm: Vec<(ConnToken, u32)>,
    accept_armed: bool,
    accepting: bool,
}

/// Runs the shard on io_uring until a stop is requested and its connections have drained.
///
/// # Errors
/// Setting up the ring failed, or `io_uring_enter` failed unexpectedly.
pub fn run(
    core: &mut Core,
    listener: TcpListener,
    stun_listener: Option<TcpListener>,
    shared: &Shared,
    drain_timeout_ms: u64,
    cfg: UringConfig,
) -> io::Result<()> {
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .build(cfg.entries)
        .or_else(|_| IoUring::new(cfg.entries))?;
    let bufs = BufRing::new(&ring, cfg.buffers, core.settings.recv_buffer_bytes)?;
    let mut d = Driver {
        ring,
        bufs,
        sends: Vec::new(),
        orphans: HashMap::new(),
        wake_buf: Box::new(0),
        listener_fd: listener.as_raw_fd(),
        stun_listener_fd: stun_listener.as_ref().map(AsRawFd::as_raw_fd),
        stun_accept_armed: false,
        wake_fd: -1,
        udp_fds: Vec::new(),
        rearm: Vec::new(),
        accept_armed: false,
        accepting: true,
    };
    let result = d.run(core, shared, drain_timeout_ms);
    // Closing the listener ends the multishot accept; dropping the ring cancels the rest
    // before the buffer memory goes.
    drop(listener);
    drop(stun_listener);
    let Driver { ring, bufs, .. } = d;
    drop(ring);
    drop(bufs);
    result
}

impl Driver {
    fn push_sqe(&mut self, sqe: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every SQE built by this driver points only at memory the driver keeps
            // alive until its completion (see the module docs).
            let pushed = unsafe { self.ring.submission().push(sqe) };
            if pushed.is_ok() {
                return Ok(());
            }
            // The submission queue is full: hand what is there to the kernel and retry.
            self.ring.submit()?;
        }
    }

    fn arm_accept(&mut self) -> io::Result<()> {
        if !self.accepting {
            return Ok(());
        }
        if !self.accept_armed {
            let sqe = opcode::AcceptMulti::new(types::Fd(self.listener_fd))
                .flags(libc::SOCK_CLOEXEC)
                .build()
                .user_data(pack(0, 0, OP_ACCEPT));
            self.push_sqe(&sqe)?;
            self.accept_armed = true;
        }
        if let (Some(fd), false) = (self.stun_listener_fd, self.stun_accept_armed) {
            let sqe = opcode::AcceptMulti::new(types::Fd(fd))
                .flags(libc::SOCK_CLOEXEC)
                .build()
                .user_data(pack(0, 0, OP_ACCEPT_STUN));
            self.push_sqe(&sqe)?;
            self.stun_accept_armed = true;
        }
        Ok(())
    }

    /// Watches STUN UDP socket `i` for readability (multishot poll; datagrams are then
    /// read in batches with recvmmsg).
    fn arm_udp_poll(&mut self, i: usize, fd: RawFd) -> io::Result<()> {
        let sqe = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(pack(i as u32, 0, OP_UDP_POLL));
        self.push_sqe(&sqe)
    }

    fn arm_wake(&mut self, fd: RawFd) -> io::Result<()> {
        let ptr = std::ptr::addr_of_mut!(*self.wake_buf).cast::<u8>();
        let sqe = opcode::Read::new(types::Fd(fd), ptr, 8)
            .build()
            .user_data(pack(0, 0, OP_WAKE));
        self.push_sqe(&sqe)
    }

    fn arm_recv(&mut self, core: &Core, t: ConnToken) -> io::Result<()> {
        let Some(fd) = core.stream(t).map(AsRawFd::as_raw_fd) else {
            return Ok(());
        };
        let generation = core.outs[t as usize].generation;
        let sqe = opcode::RecvMulti::new(types::Fd(fd), BUFFER_GROUP)
            .build()
            .user_data(pack(t, generation, OP_RECV));
        self.push_sqe(&sqe)?;
        self.sends[t as usize].recv_armed = true;
        Ok(())
    }

    fn start_send(&mut self, core: &mut Core, t: ConnToken) -> io::Result<()> {
        let Some(fd) = core.stream(t).map(AsRawFd::as_raw_fd) else {
            return Ok(());
        };
        let generation = core.outs[t as usize].generation;
        let st = &mut self.sends[t as usize];
        if st.sending {
            return Ok(());
        }
        if st.offset >= st.inflight.len() {
            st.inflight.clear();
            st.offset = 0;
            let out = &mut core.outs[t as usize].buf;
            if out.is_empty() {
                return Ok(());
            }
            std::mem::swap(&mut st.inflight, out);
            core.outs[t as usize].cipher_len = 0;
        }
        let rest = &st.inflight[st.offset..];
        let sqe = opcode::Send::new(types::Fd(fd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(pack(t, generation, OP_SEND));
        st.sending = true;
        self.push_sqe(&sqe)
    }

    fn run(&mut self, core: &mut Core, shared: &Shared, drain_timeout_ms: u64) -> io::Result<()> {
        let wake_fd = core.waker().eventfd().as_raw_fd();
        self.arm_accept()?;
        self.arm_wake(wake_fd)?;
        self.wake_fd = wake_fd;
        self.udp_fds = core
            .stun
            .as_ref()
            .map(super::stun::StunService::fds)
            .unwrap_or_default();
        for (i, fd) in self.udp_fds.clone().into_iter().enumerate() {
            self.arm_udp_poll(i, fd)?;
        }
        let mut dirty: Vec<ConnToken> = Vec::new();
        let mut closing: Vec<(ConnToken, CloseReason)> = Vec::new();
        let mut stop_deadline_ms: Option<u64> = None;
        let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(1024);
        loop {
            let now_ms = monotonic_ms();
            if shared.stop.load(Ordering::Acquire) && stop_deadline_ms.is_none() {
                self.accepting = false;
                // SAFETY: shutting down the listening socket makes the multishot accept
                // complete; the fd stays open until `run` returns.
                unsafe { libc::shutdown(self.listener_fd, libc::SHUT_RDWR) };
                if let Some(fd) = self.stun_listener_fd {
                    // SAFETY: as above, for the STUN-over-TCP listener.
                    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
                }
                core.close_all(now_ms);
                stop_deadline_ms = Some(now_ms + drain_timeout_ms);
            }
            if let Some(deadline) = stop_deadline_ms {
                if core.open_connections() == 0 || now_ms >= deadline {
                    return Ok(());
                }
            }
            core.check_reload(shared);
            let next = core.expire(now_ms);
            self.close_pending(core, &mut closing);
            let timeout_ms = core.wait_ms(next, now_ms, stop_deadline_ms.is_some());
            let block = timeout_ms > 0 && core.links().park();
            let ts = types::Timespec::new()
                .sec(timeout_ms / 1000)
                .nsec(((timeout_ms % 1000) * 1_000_000) as u32);
            let args = types::SubmitArgs::new().timespec(&ts);
            let want = usize::from(block);
            match self.ring.submitter().submit_with_args(want, &args) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                    ) => {}
                Err(e) => return Err(e),
            }
            if block {
                core.links().unpark();
            }
            let now_ms = monotonic_ms();
            cqes.clear();
            cqes.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            let mut returned_buffers = false;
            for &(ud, res, flags) in &cqes {
                returned_buffers |= self.complete(core, ud, res, flags, now_ms)?;
            }
            if returned_buffers {
                self.bufs.publish();
            }
            if let Some(st) = core.stun.as_mut() {
                st.poll_udp(now_ms);
            }
            // Closes first: ending a session queues peer-left frames and cross-shard
            // leaves that must go out in this same turn.
            self.close_pending(core, &mut closing);
            core.drain_rings();
            core.push_batches();
            dirty.clear();
            core.take_dirty(&mut dirty, now_ms);
            for &t in &dirty {
                core.outs[t as usize].queued = false;
                if core.stream(t).is_some() {
                    self.ensure_slot(t);
                    self.start_send(core, t)?;
                    self.check_drained(core, t);
                }
            }
            self.close_pending(core, &mut closing);
            // Re-arm receives that ended (ENOBUFS or a finished multishot) now that
            // buffers are back.
            self.rearm_receives(core)?;
            core.publish_stats();
        }
    }

    fn ensure_slot(&mut self, t: ConnToken) {
        if self.sends.len() <= t as usize {
            self.sends.resize_with(t as usize + 1, SendState::default);
        }
    }

    fn rearm_receives(&mut self, core: &Core) -> io::Result<()> {
        let list = std::mem::take(&mut self.rearm);
        for &(t, generation) in &list {
            if core.is_live(t, generation) && !self.sends[t as usize].recv_armed {
                self.arm_recv(core, t)?;
            }
        }
        self.rearm = list;
        self.rearm.clear();
        Ok(())
    }

    /// Handles one completion; returns whether a provided buffer went back to the ring.
    fn complete(
        &mut self,
        core: &mut Core,
        ud: u64,
        res: i32,
        flags: u32,
        now_ms: u64,
    ) -> io::Result<bool> {
        let wake_fd = self.wake_fd;
        let (t, generation, op) = unpack(ud);
        match op {
            OP_UDP_POLL => {
                if let Some(st) = core.stun.as_mut() {
                    st.mark_ready(t as usize);
                }
                if !cqueue::more(flags) {
                    if let Some(fd) = self.udp_fds.get(t as usize).copied() {
                        self.arm_udp_poll(t as usize, fd)?;
                    }
                }
                Ok(false)
            }
            OP_ACCEPT | OP_ACCEPT_STUN => {
                if !cqueue::more(flags) {
                    if op == OP_ACCEPT {
                        self.accept_armed = false;
                    } else {
                        self.stun_accept_armed = false;
                    }
                    self.arm_accept()?;
                }
                if res >= 0 {
                    // SAFETY: a successful accept completion returns a new fd we now own.
                    let stream = unsafe { TcpStream::from_raw_fd(res) };
                    let (t, _) = if op == OP_ACCEPT {
                        core.accept(stream, now_ms)
                    } else {
                        core.accept_stun(stream, now_ms)
                    };
                    self.ensure_slot(t);
                    self.sends[t as usize] = SendState::default();
                    self.arm_recv(core, t)?;
                }
                Ok(false)
            }
            OP_WAKE => {
                self.arm_wake(wake_fd)?;
                Ok(false)
            }
            OP_RECV => {
                let live = core
                    .outs
                    .get(t as usize)
                    .is_some_and(|o| o.generation & 0x00FF_FFFF == generation)
                    && core.stream(t).is_some();
                let bid = cqueue::buffer_select(flags);
                if live && !cqueue::more(flags) {
                    self.sends[t as usize].recv_armed = false;
                    self.rearm.push((t, core.outs[t as usize].generation));
                }
                if live {
                    if res > 0 {
                        if let Some(bid) = bid {
                            let n = res as usize;
                            if core.has_partial(t) {
                                let mut buf = core.take_inbuf(t);
                                let old = buf.len();
                                buf.extend_from_slice(self.bufs.buffer(bid, n));
                                core.on_data_owned(t, buf, old, now_ms);
                            } else {
                                let data = self.bufs.buffer(bid, n);
                                core.on_data(t, data, now_ms);
                            }
                        }
                    } else if res == 0 {
                        core.closing.push((t, CloseReason::PeerClosed));
                    } else if res != -libc::ENOBUFS {
                        core.closing.push((t, CloseReason::IoError));
                    }
                }
                if let Some(bid) = bid {
                    self.bufs.push(bid);
                    return Ok(true);
                }
                Ok(false)
            }
            OP_SEND => {
                if let Some(buf) = self.orphans.remove(&ud) {
                    drop(buf);
                    return Ok(false);
                }
                let live = core
                    .outs
                    .get(t as usize)
                    .is_some_and(|o| o.generation & 0x00FF_FFFF == generation)
                    && core.stream(t).is_some();
                if !live {
                    return Ok(false);
                }
                let st = &mut self.sends[t as usize];
                st.sending = false;
                if res < 0 {
                    if res == -libc::EAGAIN || res == -libc::EINTR {
                        self.start_send(core, t)?;
                    } else {
                        core.closing.push((t, CloseReason::IoError));
                    }
                    return Ok(false);
                }
                st.offset += res as usize;
                core.flushed(t, res as usize);
                if st.offset < st.inflight.len() {
                    // A short send: the rest of the same bytes.
                    self.start_send(core, t)?;
                } else if !core.outs[t as usize].buf.is_empty() {
                    // New frames queued meanwhile go out through the dirty list this turn,
                    // where TLS connections get them encrypted first.
                    core.mark_dirty(t);
                }
                self.check_drained(core, t);
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    /// Closes a draining connection once everything it queued has gone.
    fn check_drained(&mut self, core: &mut Core, t: ConnToken) {
        let st = &self.sends[t as usize];
        if !st.sending && core.outs[t as usize].buf.is_empty() && core.close_when_flushed(t) {
            core.closing.push((t, CloseReason::Done));
        }
    }

    fn close_pending(&mut self, core: &mut Core, closing: &mut Vec<(ConnToken, CloseReason)>) {
        closing.clear();
        core.take_closing(closing);
        for &(t, reason) in closing.iter() {
            let Some(stream) = core.stream(t) else {
                continue;
            };
            if reason == CloseReason::Timeout {
                let _ = socket2::SockRef::from(stream).set_linger(Some(std::time::Duration::ZERO));
            }
            // Shutting the socket down completes its pending receive and send; the kernel
            // holds its own reference to the file until they finish.
            let _ = stream.shutdown(if reason == CloseReason::Timeout {
                Shutdown::Both
            } else {
                Shutdown::Write
            });
            let generation = core.outs[t as usize].generation;
            self.ensure_slot(t);
            let st = std::mem::take(&mut self.sends[t as usize]);
            if st.recv_armed {
                // The multishot receive holds the file open; cancel it so the socket is
                // released now rather than when the peer closes.
                let cancel = opcode::AsyncCancel::new(pack(t, generation, OP_RECV))
                    .build()
                    .user_data(0);
                let _ = self.push_sqe(&cancel);
            }
            if st.sending {
                self.orphans
                    .insert(pack(t, generation, OP_SEND), st.inflight);
            }
            drop(core.release(t));
        }
    }
}
