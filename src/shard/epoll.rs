//! The epoll driver (through mio), used where io_uring cannot start.
//!
//! Edge-triggered readiness: each readable event is read until `EAGAIN`, each connection
//! is registered for reads and writes once, and a writable edge re-queues a connection
//! whose send queue did not drain.

use std::io;
use std::net::{Shutdown, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::sys::{monotonic_ms, read_fd, write_fd};
use super::{CloseReason, Core, Shared};
use crate::proto::signal::ConnToken;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const STUN_TCP: Token = Token(usize::MAX - 3);
/// STUN UDP sockets take tokens from here down (at most four).
const STUN_UDP_BASE: usize = usize::MAX - 8;

/// Events handled per wait.
const EVENTS_PER_WAIT: usize = 1024;

/// Runs the shard until a stop is requested and its connections have drained (or
/// `drain_timeout_ms` has passed).
///
/// # Errors
/// Creating the poller or registering the listener failed.
pub fn run(
    core: &mut Core,
    listener: TcpListener,
    stun_listener: Option<TcpListener>,
    shared: &Shared,
    drain_timeout_ms: u64,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(EVENTS_PER_WAIT);
    poll.registry().register(
        &mut SourceFd(&listener.as_raw_fd()),
        LISTENER,
        Interest::READABLE,
    )?;
    let waker_fd = core.waker().eventfd().as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&waker_fd), WAKER, Interest::READABLE)?;
    if let Some(l) = &stun_listener {
        poll.registry()
            .register(&mut SourceFd(&l.as_raw_fd()), STUN_TCP, Interest::READABLE)?;
    }
    if let Some(st) = &core.stun {
        for (i, fd) in st.fds().into_iter().enumerate() {
            poll.registry().register(
                &mut SourceFd(&fd),
                Token(STUN_UDP_BASE - i),
                Interest::READABLE,
            )?;
        }
    }
    let mut listener = Some(listener);
    let mut stun_listener = stun_listener;
    let mut dirty: Vec<ConnToken> = Vec::new();
    let mut closing: Vec<(ConnToken, CloseReason)> = Vec::new();
    let mut stop_deadline_ms: Option<u64> = None;
    loop {
        let now_ms = monotonic_ms();
        if shared.stop.load(Ordering::Acquire) && stop_deadline_ms.is_none() {
            for l in [listener.take(), stun_listener.take()]
                .into_iter()
                .flatten()
            {
                let _ = poll.registry().deregister(&mut SourceFd(&l.as_raw_fd()));
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
        close_pending(core, &poll, &mut closing);
        let timeout_ms = core.wait_ms(next, now_ms, stop_deadline_ms.is_some());
        let block = timeout_ms > 0 && core.links().park();
        let wait = if block {
            Some(Duration::from_millis(timeout_ms))
        } else {
            Some(Duration::ZERO)
        };
        match poll.poll(&mut events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if block {
            core.links().unpark();
        }
        let now_ms = monotonic_ms();
        for ev in &events {
            match ev.token() {
                LISTENER => {
                    if let Some(l) = listener.as_ref() {
                        accept_all(core, l, &poll, now_ms, false);
                    }
                }
                STUN_TCP => {
                    if let Some(l) = stun_listener.as_ref() {
                        accept_all(core, l, &poll, now_ms, true);
                    }
                }
                Token(t) if t > STUN_UDP_BASE - 4 && t <= STUN_UDP_BASE => {
                    if let Some(st) = core.stun.as_mut() {
                        st.mark_ready(STUN_UDP_BASE - t);
                    }
                }
                WAKER => core.waker().eventfd().drain(),
                Token(t) => {
                    let t = t as ConnToken;
                    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                        read_all(core, t, now_ms);
                    }
                    if ev.is_writable() && core.stream(t).is_some() {
                        core.mark_dirty(t);
                    }
                }
            }
        }
        // Closes first: ending a session queues peer-left frames and cross-shard leaves
        // that must go out in this same turn.
        close_pending(core, &poll, &mut closing);
        if let Some(st) = core.stun.as_mut() {
            st.poll_udp(now_ms);
        }
        core.drain_rings();
        core.push_batches();
        flush(core, &mut dirty);
        close_pending(core, &poll, &mut closing);
        core.publish_stats();
    }
}

fn accept_all(core: &mut Core, listener: &TcpListener, poll: &Poll, now_ms: u64, stun: bool) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                let fd = stream.as_raw_fd();
                let (t, _) = if stun {
                    core.accept_stun(stream, now_ms)
                } else {
                    core.accept(stream, now_ms)
                };
                if poll
                    .registry()
                    .register(
                        &mut SourceFd(&fd),
                        Token(t as usize),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .is_err()
                {
                    core.closing.push((t, CloseReason::IoError));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // EMFILE and friends: stop for this turn; the listener stays readable.
            Err(_) => return,
        }
    }
}

fn read_all(core: &mut Core, t: ConnToken, now_ms: u64) {
    loop {
        let Some(fd) = core.stream(t).map(AsRawFd::as_raw_fd) else {
            return;
        };
        if core.has_partial(t) {
            let mut buf = core.take_inbuf(t);
            let old = buf.len();
            let hint = core.read_hint(t);
            buf.resize(old + hint, 0);
            match read_fd(fd, &mut buf[old..]) {
                Ok(0) => {
                    buf.truncate(old);
                    core.put_inbuf(t, buf);
                    core.closing.push((t, CloseReason::PeerClosed));
                    return;
                }
                Ok(n) => {
                    buf.truncate(old + n);
                    core.on_data_owned(t, buf, old, now_ms);
                }
                Err(e) => {
                    buf.truncate(old);
                    core.put_inbuf(t, buf);
                    if !read_error(core, t, &e) {
                        return;
                    }
                }
            }
        } else {
            let mut scratch = std::mem::take(&mut core.scratch);
            let res = read_fd(fd, &mut scratch);
            match res {
                Ok(0) => {
                    core.scratch = scratch;
                    core.closing.push((t, CloseReason::PeerClosed));
                    return;
                }
                Ok(n) => core.on_data(t, &mut scratch[..n], now_ms),
                Err(e) => {
                    core.scratch = scratch;
                    if !read_error(core, t, &e) {
                        return;
                    }
                    continue;
                }
            }
            core.scratch = scratch;
        }
    }
}

/// Handles a read error; returns true if reading should be retried.
fn read_error(core: &mut Core, t: ConnToken, e: &io::Error) -> bool {
    match e.kind() {
        io::ErrorKind::WouldBlock => false,
        io::ErrorKind::Interrupted => true,
        _ => {
            core.closing.push((t, CloseReason::IoError));
            false
        }
    }
}

fn flush(core: &mut Core, dirty: &mut Vec<ConnToken>) {
    dirty.clear();
    core.take_dirty(dirty, monotonic_ms());
    for &t in dirty.iter() {
        core.out_mut(t).queued = false;
        let Some(fd) = core.stream(t).map(AsRawFd::as_raw_fd) else {
            continue;
        };
        let mut written = 0;
        let mut failed = false;
        {
            let buf = &core.outs[t as usize].buf;
            while written < buf.len() {
                match write_fd(fd, &buf[written..]) {
                    Ok(0) => {
                        failed = true;
                        break;
                    }
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
        }
        core.flushed(t, written);
        core.consume_out(t, written);
        let empty = core.out_mut(t).buf.is_empty();
        if failed {
            core.closing.push((t, CloseReason::IoError));
        } else if empty && core.close_when_flushed(t) {
            core.closing.push((t, CloseReason::Done));
        }
    }
}

fn close_pending(core: &mut Core, poll: &Poll, closing: &mut Vec<(ConnToken, CloseReason)>) {
    closing.clear();
    core.take_closing(closing);
    for &(t, reason) in closing.iter() {
        if let Some(stream) = core.stream(t) {
            let _ = poll
                .registry()
                .deregister(&mut SourceFd(&stream.as_raw_fd()));
            if reason == CloseReason::Timeout {
                // The peer did not take our bytes in time; a RST frees the socket at once.
                let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
            } else {
                let _ = stream.shutdown(Shutdown::Write);
            }
        }
        drop(core.release(t));
    }
}
