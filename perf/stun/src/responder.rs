//! The reference responder: the least work that still answers a bare Binding request
//! correctly, so its responses per core-second are the physical limit of this machine's
//! UDP path. One thread, one blocking socket; each turn:
//!
//! 1. `recvmmsg` with `MSG_WAITFORONE`: sleep until one datagram is there, then take what
//!    else is waiting, up to the batch size.
//! 2. For each datagram that is a Binding request (type, cookie, length checked), turn it
//!    into the 32-byte XOR-MAPPED-ADDRESS answer in place and move it to the front.
//! 3. `sendmmsg` the answers back to their sources.
//!
//! No rate limit, no attributes read, no RFC 5780, no counters: it is not a STUN server.

use std::io;
use std::net::SocketAddrV4;
use std::os::fd::AsRawFd;

use crate::sys::{self, Batch};
use crate::wire;

pub fn run(listen: SocketAddrV4, batch_max: usize, buffer_bytes: usize) -> io::Result<()> {
    let socket = sys::bind_udp(listen, buffer_bytes, false)?;
    let fd = socket.as_raw_fd();
    eprintln!("stun-perf responder listening on {}", socket.local_addr()?);
    // Slots hold a whole datagram (so the length check sees it) and the answer.
    let mut batch = Batch::new(batch_max, 2048);
    loop {
        let n = batch.recv(fd, libc::MSG_WAITFORONE)?;
        let mut answers = 0;
        for k in 0..n {
            if batch.truncated(k) || !wire::is_binding_request(batch.data(k)) {
                continue;
            }
            let peer = batch.peer(k);
            let len = wire::answer_in_place(batch.buf_mut(k), peer);
            batch.move_slot(k, answers, len, peer);
            answers += 1;
        }
        let mut sent = 0;
        while sent < answers {
            // A full send buffer would block a blocking socket; `send` uses MSG_DONTWAIT,
            // so a refusal drops the rest, as the kernel would under overload anyway.
            let took = send_from(&mut batch, fd, sent, answers)?;
            if took == 0 {
                break;
            }
            sent += took;
        }
    }
}

/// Sends slots `from..to`. `Batch::send` starts at slot 0, so a partial send (rare: the
/// send buffer is 4 MiB) moves the rest to the front first.
fn send_from(batch: &mut Batch, fd: i32, from: usize, to: usize) -> io::Result<usize> {
    if from > 0 {
        for (j, k) in (from..to).enumerate() {
            let peer = batch.peer(k);
            batch.move_slot(k, j, wire::MINIMAL_ANSWER_BYTES, peer);
        }
    }
    batch.send(fd, to - from)
}
