//! The raw io_uring WebSocket echo: the least work a server on this machine can do per
//! 200-byte message, and so the floor that switchboard's relay cost is stated against.
//!
//! Why it is the floor: per message it does what any WebSocket server must do and nothing
//! else. The kernel's side is one receive completion (data already in a provided buffer, no
//! per-receive submission: the receive is multishot) and one send; our side is a 2-to-14-byte
//! header, one copy that unmasks the payload into the outgoing buffer, and a few words of
//! bookkeeping. There is no UTF-8 check, no JSON, no routing, no allocation once a
//! connection's two buffers have grown, no timers, and no lock. System calls are batched: the
//! whole loop turn costs one `io_uring_enter`, however many connections it served. What
//! remains is the loopback TCP path and the frame copy, which no server avoids.
//!
//! The loop, each turn:
//! 1. `io_uring_enter`: submit everything queued in the previous turn (sends, re-armed
//!    receives, a re-armed accept) and wait for at least one completion;
//! 2. for each completion: a new connection (set `TCP_NODELAY`, arm its multishot receive);
//!    received bytes (answer the upgrade, or echo every complete frame into the connection's
//!    outgoing buffer, then hand the provided buffer back); a finished send (a short send
//!    leaves the rest for this turn's send); the signal fd (leave the loop);
//! 3. make the returned buffers visible to the kernel with one store of the ring's tail;
//! 4. for each connection that has bytes to send and no send in flight: one send of
//!    everything it queued this turn (frames of one turn leave together);
//! 5. re-arm receives that ended (out of buffers) and close connections whose operations
//!    have all completed.
//!
//! Lifetimes the kernel relies on, and how they are kept:
//! - The provided buffers and the buffer ring live in [`BufRing`], which is never freed: it
//!   lives until the process exits (`run` leaks it after closing the ring).
//! - A send's bytes live in the connection's `inflight` vector, which is neither touched nor
//!   moved until the send's completion arrives; `Conn`s live in a vector that grows but never
//!   shrinks, and growing it moves the `Conn` structs, not the heap buffers they own.
//! - A socket is closed only once no operation on it is in flight (its multishot receive has
//!   ended and no send is pending), so its descriptor number, which indexes the connection
//!   table and the completions' `user_data`, cannot be reused while a completion for the old
//!   socket is still to come.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::ws::{self, Upgrade};

/// Submission queue entries: one turn queues at most a send and a receive per connection,
/// and a full queue is submitted early (see [`Server::push`]), so the size only decides how
/// many connections one `io_uring_enter` can serve before a busy turn needs a second.
const SUBMISSION_ENTRIES: u32 = 1024;
/// Completion queue entries: a turn may bring a receive and a send completion for every
/// connection; 16k keeps the kernel's overflow list (slower, still correct) out of the way
/// up to 8k busy connections.
const COMPLETION_ENTRIES: u32 = 16 * 1024;
/// Provided receive buffers (a power of two, as the buffer ring requires).
const RECEIVE_BUFFERS: u16 = 1024;
/// Bytes per provided buffer: a 200-byte frame, or a burst of a few dozen, fits in one.
const RECEIVE_BUFFER_BYTES: usize = 4096;
/// The buffer group of the provided buffers.
const BUFFER_GROUP: u16 = 0;

const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
const OP_SIGNAL: u64 = 4;

/// `user_data` of an operation on descriptor `fd`.
fn pack(fd: RawFd, op: u64) -> u64 {
    ((fd as u64) << 8) | op
}

fn unpack(user_data: u64) -> (usize, u64) {
    ((user_data >> 8) as usize, user_data & 0xff)
}

/// Provided receive buffers and the ring through which the kernel takes them.
struct BufRing {
    /// The ring of buffer descriptors, in its own page-aligned anonymous mapping.
    ring: *mut types::BufRingEntry,
    /// The buffers themselves.
    memory: Box<[u8]>,
    /// Our producer index; the kernel sees it once [`BufRing::publish`] stores it.
    tail: u16,
}

impl BufRing {
    fn new(uring: &IoUring) -> io::Result<BufRing> {
        const _: () = assert!(RECEIVE_BUFFERS.is_power_of_two());
        let ring_bytes = usize::from(RECEIVE_BUFFERS) * std::mem::size_of::<types::BufRingEntry>();
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing, with
        // no file; the result is checked against MAP_FAILED.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut bufs = BufRing {
            ring: ring.cast(),
            memory: vec![0u8; usize::from(RECEIVE_BUFFERS) * RECEIVE_BUFFER_BYTES]
                .into_boxed_slice(),
            tail: 0,
        };
        // SAFETY: the ring is page-aligned (a fresh mapping), zeroed, RECEIVE_BUFFERS entries
        // long, and stays mapped until the process exits (it is never unmapped).
        unsafe {
            uring.submitter().register_buf_ring_with_flags(
                bufs.ring as u64,
                RECEIVE_BUFFERS,
                BUFFER_GROUP,
                0,
            )?;
        }
        for bid in 0..RECEIVE_BUFFERS {
            bufs.give_back(bid);
        }
        bufs.publish();
        Ok(bufs)
    }

    /// Puts buffer `bid` back in the ring (the kernel sees it after [`BufRing::publish`]).
    fn give_back(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (RECEIVE_BUFFERS - 1));
        let addr = self.memory[usize::from(bid) * RECEIVE_BUFFER_BYTES..].as_ptr() as u64;
        // SAFETY: `slot` < RECEIVE_BUFFERS, so the entry is inside the mapping; the kernel
        // reads only the entries between its head and the published tail, and this one is
        // at or past the tail, so nobody reads it while we write. Each buffer is in the ring
        // at most once (it comes back only from the completion that took it), so there are
        // never more than RECEIVE_BUFFERS unconsumed entries.
        let entry = unsafe { &mut *self.ring.add(slot) };
        entry.set_addr(addr);
        entry.set_len(RECEIVE_BUFFER_BYTES as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the buffers given back so far visible to the kernel.
    fn publish(&mut self) {
        // SAFETY: the tail overlays the reserved field of entry 0, inside the mapping; the
        // kernel loads it with acquire ordering, so this release store publishes the entries
        // written before it.
        unsafe {
            let tail = types::BufRingEntry::tail(self.ring).cast_mut();
            (*tail.cast::<AtomicU16>()).store(self.tail, Ordering::Release);
        }
    }

    /// The first `len` bytes of buffer `bid`.
    fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * RECEIVE_BUFFER_BYTES;
        &self.memory[start..start + len.min(RECEIVE_BUFFER_BYTES)]
    }
}

/// One client connection, indexed by its descriptor.
#[derive(Default)]
struct Conn {
    open: bool,
    upgraded: bool,
    /// Bytes of an incomplete request head or frame, kept for the next receive.
    inbuf: Vec<u8>,
    /// Frames echoed this turn, waiting for the connection's send.
    out: Vec<u8>,
    /// The bytes of the send in flight; the kernel reads them until its completion.
    inflight: Vec<u8>,
    inflight_sent_bytes: usize,
    sending: bool,
    recv_armed: bool,
    /// On the list of connections to send for this turn.
    queued: bool,
    /// Send what is queued, then shut the socket down (a refused upgrade, a close frame).
    shutdown_after_send: bool,
    shut_down: bool,
    /// The peer is gone or the stream is broken: close once no operation is in flight.
    closing: bool,
}

struct Server {
    ring: IoUring,
    bufs: BufRing,
    conns: Vec<Conn>,
    listener_fd: RawFd,
    signal_fd: RawFd,
    accept_armed: bool,
    /// Connections with something to send (or to shut down) this turn.
    send_list: Vec<usize>,
    /// Connections whose multishot receive ended for want of buffers.
    rearm_list: Vec<usize>,
    /// Connections to close at the end of the turn.
    close_list: Vec<usize>,
    stop: bool,
}

/// Serves `listener` until SIGINT or SIGTERM, which `signal_fd` (a signalfd with both
/// signals blocked) reports.
pub fn run(listener: TcpListener, signal_fd: RawFd) -> io::Result<()> {
    // DEFER_TASKRUN runs completion work only inside our `io_uring_enter`, in one batch, with
    // no interrupt of the running loop: the cheapest mode the kernel has. Kernels before 6.1
    // lack it; COOP_TASKRUN is the next best.
    let (ring, mode) = match IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(COMPLETION_ENTRIES)
        .build(SUBMISSION_ENTRIES)
    {
        Ok(ring) => (ring, "single issuer, deferred task run"),
        Err(_) => (
            IoUring::builder()
                .setup_coop_taskrun()
                .setup_cqsize(COMPLETION_ENTRIES)
                .build(SUBMISSION_ENTRIES)?,
            "cooperative task run",
        ),
    };
    eprintln!("echo-perf uring: io_uring with {mode}");
    let bufs = BufRing::new(&ring)?;
    let mut server = Server {
        ring,
        bufs,
        conns: Vec::new(),
        listener_fd: listener.as_raw_fd(),
        signal_fd,
        accept_armed: false,
        send_list: Vec::new(),
        rearm_list: Vec::new(),
        close_list: Vec::new(),
        stop: false,
    };
    let result = server.serve();
    // The process exits right after this. Closing the ring starts the cancellation of its
    // operations, which the kernel finishes in the background, so the provided buffers and
    // the send vectors are leaked rather than freed: no memory the kernel may still touch
    // is handed out again. The exit closes the sockets.
    let Server {
        ring, bufs, conns, ..
    } = server;
    drop(ring);
    std::mem::forget(bufs);
    std::mem::forget(conns);
    drop(listener);
    result
}

impl Server {
    /// Queues an SQE, submitting early if the submission queue is full.
    fn push(&mut self, sqe: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every SQE this server builds points only at memory kept alive until its
            // completion (the module docs list what and how): a receive names a buffer group,
            // a send the connection's `inflight` vector, accept and poll no memory at all.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    fn arm_accept(&mut self) -> io::Result<()> {
        let sqe = opcode::AcceptMulti::new(types::Fd(self.listener_fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(pack(self.listener_fd, OP_ACCEPT));
        self.push(&sqe)?;
        self.accept_armed = true;
        Ok(())
    }

    fn arm_recv(&mut self, fd: usize) -> io::Result<()> {
        let sqe = opcode::RecvMulti::new(types::Fd(fd as RawFd), BUFFER_GROUP)
            .build()
            .user_data(pack(fd as RawFd, OP_RECV));
        self.push(&sqe)?;
        self.conns[fd].recv_armed = true;
        Ok(())
    }

    fn serve(&mut self) -> io::Result<()> {
        self.arm_accept()?;
        let sqe = opcode::PollAdd::new(types::Fd(self.signal_fd), libc::POLLIN as u32)
            .build()
            .user_data(pack(self.signal_fd, OP_SIGNAL));
        self.push(&sqe)?;
        let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(COMPLETION_ENTRIES as usize);
        while !self.stop {
            // Step 1: the turn's one system call.
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
                Err(e) => return Err(e),
            }
            // Step 2.
            cqes.clear();
            cqes.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            let mut gave_back = false;
            for &(user_data, result, flags) in &cqes {
                gave_back |= self.complete(user_data, result, flags)?;
            }
            // Step 3.
            if gave_back {
                self.bufs.publish();
            }
            // Step 4.
            let send_list = std::mem::take(&mut self.send_list);
            for &fd in &send_list {
                self.conns[fd].queued = false;
                self.send(fd)?;
            }
            self.send_list = send_list;
            self.send_list.clear();
            // Step 5.
            let rearm_list = std::mem::take(&mut self.rearm_list);
            for &fd in &rearm_list {
                let c = &self.conns[fd];
                if c.open && !c.closing && !c.recv_armed {
                    self.arm_recv(fd)?;
                }
            }
            self.rearm_list = rearm_list;
            self.rearm_list.clear();
            if !self.accept_armed {
                self.arm_accept()?;
            }
            let close_list = std::mem::take(&mut self.close_list);
            for &fd in &close_list {
                self.close_if_idle(fd);
            }
            self.close_list = close_list;
            self.close_list.clear();
        }
        Ok(())
    }

    /// Handles one completion; returns whether a provided buffer went back to the ring.
    fn complete(&mut self, user_data: u64, result: i32, flags: u32) -> io::Result<bool> {
        let (fd, op) = unpack(user_data);
        match op {
            OP_SIGNAL => self.stop = true,
            OP_ACCEPT => {
                if !cqueue::more(flags) {
                    // Re-armed at the end of the turn (step 5).
                    self.accept_armed = false;
                }
                if result >= 0 {
                    self.accepted(result as usize)?;
                }
            }
            OP_RECV => {
                let bid = cqueue::buffer_select(flags);
                if !cqueue::more(flags) {
                    self.conns[fd].recv_armed = false;
                    if result > 0 || result == -libc::ENOBUFS {
                        // The kernel ended the multishot receive (out of buffers, or for
                        // its own reasons) on a healthy stream: arm it again.
                        self.rearm_list.push(fd);
                    } else {
                        // End of stream or an error: nothing more will arrive.
                        self.fail(fd);
                    }
                }
                if result > 0 {
                    if let Some(bid) = bid {
                        self.received(fd, bid, result as usize);
                    }
                }
                if let Some(bid) = bid {
                    self.bufs.give_back(bid);
                    return Ok(true);
                }
            }
            OP_SEND => {
                let c = &mut self.conns[fd];
                c.sending = false;
                if c.closing {
                    // The receive side already failed; this send was the last thing pending.
                    self.close_list.push(fd);
                } else if result > 0 {
                    c.inflight_sent_bytes += result as usize;
                    if c.inflight_sent_bytes < c.inflight.len()
                        || !c.out.is_empty()
                        || c.shutdown_after_send
                    {
                        // The rest of a short send, what was echoed meanwhile, or the
                        // shutdown that waited for this send.
                        self.queue_send(fd);
                    }
                } else if result == -libc::EINTR || result == -libc::EAGAIN {
                    self.queue_send(fd);
                } else {
                    self.fail(fd);
                }
            }
            _ => {}
        }
        Ok(false)
    }

    fn accepted(&mut self, fd: usize) -> io::Result<()> {
        let one: libc::c_int = 1;
        // SAFETY: a descriptor the accept completion just gave us; the option value is a
        // live c_int of the size passed. Failure would only leave Nagle on: ignored.
        unsafe {
            libc::setsockopt(
                fd as RawFd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                std::ptr::addr_of!(one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        if self.conns.len() <= fd {
            self.conns.resize_with(fd + 1, Conn::default);
        }
        // A reused descriptor number gets a fresh state but keeps the old buffers' capacity.
        let c = &mut self.conns[fd];
        c.open = true;
        c.upgraded = false;
        c.inbuf.clear();
        c.out.clear();
        c.inflight.clear();
        c.inflight_sent_bytes = 0;
        c.sending = false;
        c.queued = false;
        c.shutdown_after_send = false;
        c.shut_down = false;
        c.closing = false;
        self.arm_recv(fd)
    }

    /// Echoes what arrived in buffer `bid` for connection `fd`.
    fn received(&mut self, fd: usize, bid: u16, len: usize) {
        let data = self.bufs.bytes(bid, len);
        let c = &mut self.conns[fd];
        if c.closing || c.shutdown_after_send {
            return;
        }
        let result = if c.upgraded && c.inbuf.is_empty() {
            // The common case: whole frames straight from the provided buffer; only an
            // incomplete tail is copied aside.
            ws::echo_frames(data, &mut c.out).map(|e| {
                c.inbuf.extend_from_slice(&data[e.used_bytes..]);
                e.closed
            })
        } else {
            c.inbuf.extend_from_slice(data);
            if !c.upgraded {
                match ws::answer_upgrade(&c.inbuf, &mut c.out) {
                    Upgrade::Incomplete => return,
                    Upgrade::Refused => {
                        c.shutdown_after_send = true;
                        self.queue_send(fd);
                        return;
                    }
                    Upgrade::Accepted(head_bytes) => {
                        c.upgraded = true;
                        c.inbuf.drain(..head_bytes);
                    }
                }
            }
            ws::echo_frames(&c.inbuf, &mut c.out).map(|e| {
                c.inbuf.drain(..e.used_bytes);
                e.closed
            })
        };
        match result {
            Ok(false) => {}
            // After a close frame (echoed) or a frame it cannot answer, the connection sends
            // what it has and ends.
            Ok(true) | Err(_) => c.shutdown_after_send = true,
        }
        self.queue_send(fd);
    }

    fn queue_send(&mut self, fd: usize) {
        let c = &mut self.conns[fd];
        if !c.queued {
            c.queued = true;
            self.send_list.push(fd);
        }
    }

    /// Step 4 for one connection: at most one send in flight, carrying everything queued.
    fn send(&mut self, fd: usize) -> io::Result<()> {
        let c = &mut self.conns[fd];
        if !c.open || c.closing || c.sending {
            return Ok(());
        }
        if c.inflight_sent_bytes >= c.inflight.len() {
            c.inflight.clear();
            c.inflight_sent_bytes = 0;
            std::mem::swap(&mut c.inflight, &mut c.out);
        }
        if c.inflight.is_empty() {
            if c.shutdown_after_send && !c.shut_down {
                c.shut_down = true;
                // SAFETY: an open descriptor this server owns. Shutting it down ends its
                // multishot receive, whose final completion then closes it.
                unsafe { libc::shutdown(fd as RawFd, libc::SHUT_RDWR) };
            }
            return Ok(());
        }
        let rest = &c.inflight[c.inflight_sent_bytes..];
        let sqe = opcode::Send::new(types::Fd(fd as RawFd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(pack(fd as RawFd, OP_SEND));
        c.sending = true;
        self.push(&sqe)
    }

    /// The stream of `fd` is over: stop echoing, end its receive if it is still armed (a
    /// shutdown completes it), and close it once nothing is in flight.
    fn fail(&mut self, fd: usize) {
        let c = &mut self.conns[fd];
        c.closing = true;
        if c.recv_armed && !c.shut_down {
            c.shut_down = true;
            // SAFETY: an open descriptor this server owns; shutting it down only makes its
            // pending operations complete.
            unsafe { libc::shutdown(fd as RawFd, libc::SHUT_RDWR) };
        }
        self.close_list.push(fd);
    }

    /// Closes `fd` once it is closing and nothing of it is in flight.
    fn close_if_idle(&mut self, fd: usize) {
        let c = &mut self.conns[fd];
        if !c.open || !c.closing || c.recv_armed || c.sending {
            return;
        }
        c.open = false;
        c.closing = false;
        // SAFETY: an accepted descriptor this server owns, with no operation in flight.
        unsafe { libc::close(fd as RawFd) };
    }
}
