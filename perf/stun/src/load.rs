//! The closed-loop load client: one thread, one socket, a fixed number of requests
//! outstanding. One turn of [`run`]'s loop:
//!
//! 1. Move between phases by the clock: warm-up, measured window, drain. Entering and
//!    leaving the window reads the server's and our own CPU time from `/proc`.
//! 2. While issuing, fill every free outstanding slot with a fresh request and send them
//!    with one `sendmmsg` (what the kernel refuses goes back to the free list). With
//!    `--rate`, only as many as the schedule (rate × time since start) allows: the open
//!    loop at equal offered load, still capped by `--outstanding`.
//! 3. `recvmmsg` what has arrived; match each answer to its slot by the transaction id
//!    (sequence number and slot index), record the latency, free the slot.
//! 4. If nothing moved, `ppoll` for up to 1 ms (100 µs with `--rate`, to keep the
//!    schedule smooth).
//! 5. Every 10 ms, requests older than `--timeout-ms` count as drops and free their slot.
//! 6. Stop when the duration or `--requests-max` is reached and every request is answered
//!    or timed out (the drain is itself bounded by `--timeout-ms`).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::Instant;

use crate::sys::{self, Batch};
use crate::wire;

/// Bytes of one receive slot: coturn's answers (with SOFTWARE and RFC 5780 attributes) are
/// under 200 bytes; anything longer is not a Binding answer to a bare request.
const ANSWER_BYTES_MAX: usize = 512;
/// Interval of the timeout scan.
const TIMEOUT_SCAN_NS: u64 = 10_000_000;

#[derive(Debug, Clone)]
pub struct LoadArgs {
    pub server: SocketAddrV4,
    pub bind: SocketAddrV4,
    pub outstanding: usize,
    pub batch_max: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub requests_max: u64,
    /// Requests per second offered (open loop), or `None` for as fast as answers come.
    pub rate_per_s: Option<f64>,
    pub timeout_ms: u64,
    pub server_pid: Option<u32>,
    pub label: String,
    pub round: u32,
    pub socket_buffer_bytes: usize,
}

/// A log-linear latency histogram over nanoseconds: 64 sub-buckets per power of two
/// (about 1.6 % resolution), fixed size, no allocation after construction.
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_ns: u64,
}

const SUB_BITS: u32 = 7;

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: vec![0; ((64 - SUB_BITS as usize) + 2) << (SUB_BITS - 1)],
            total: 0,
            max_ns: 0,
        }
    }

    fn index(v: u64) -> usize {
        let bits = 64 - v.leading_zeros();
        if bits <= SUB_BITS {
            v as usize
        } else {
            let shift = bits - SUB_BITS;
            ((shift as usize) << (SUB_BITS - 1)) + (v >> shift) as usize
        }
    }

    /// The middle of bucket `i`'s range.
    fn value(i: usize) -> u64 {
        let half = 1usize << (SUB_BITS - 1);
        if i < 2 * half {
            return i as u64;
        }
        let shift = (i / half - 1) as u32;
        let low = ((i % half + half) as u64) << shift;
        low + (1u64 << shift) / 2
    }

    fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.max_ns = self.max_ns.max(v);
    }

    fn quantile_ns(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max_ns);
            }
        }
        self.max_ns
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Window,
    Drain,
}

/// Runs the load and returns one `key=value` line (the format `report` reads).
pub fn run(a: &LoadArgs) -> io::Result<String> {
    assert!(a.outstanding > 0 && a.outstanding <= u32::MAX as usize);
    assert!(a.batch_max > 0);
    let socket = sys::bind_udp(a.bind, a.socket_buffer_bytes, true)?;
    let fd = socket.as_raw_fd();
    let local = match socket.local_addr()? {
        std::net::SocketAddr::V4(v4) => v4,
        std::net::SocketAddr::V6(_) => unreachable!("bound to an IPv4 address"),
    };
    let mut tx = Batch::new(a.batch_max, 64);
    let mut rx = Batch::new(a.batch_max, ANSWER_BYTES_MAX);
    let mut slot_seq = vec![0u64; a.outstanding];
    let mut slot_sent_ns = vec![0u64; a.outstanding];
    let mut slot_busy = vec![false; a.outstanding];
    let mut free: Vec<u32> = (0..a.outstanding as u32).rev().collect();
    let mut pending = vec![0u32; a.batch_max];
    let mut hist = Histogram::new();

    let warmup_ns = (a.warmup_s * 1e9) as u64;
    let end_ns = warmup_ns + (a.duration_s * 1e9) as u64;
    let timeout_ns = a.timeout_ms * 1_000_000;
    let mut phase = Phase::Warmup;
    let mut drain_deadline_ns = u64::MAX;
    let mut next_scan_ns = TIMEOUT_SCAN_NS;
    let mut seq = 0u64;

    let (mut sent, mut answered, mut dropped, mut late, mut bad, mut wrong_mapping) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut bytes_sent, mut bytes_answered) = (0u64, 0u64);
    let (mut answer_bytes_min, mut answer_bytes_max) = (usize::MAX, 0usize);
    let mut sends_calls = 0u64;
    // Snapshots at the start of the window: (answered, server cpu, client cpu, time).
    let mut window_start = (0u64, 0f64, 0f64, 0u64);
    let mut window = None;

    let start = Instant::now();
    let clock = || start.elapsed().as_nanos() as u64;
    let server_cpu = || match a.server_pid {
        Some(pid) => sys::process_cpu_s(pid).ok_or_else(|| {
            io::Error::other(format!(
                "server pid {pid} is gone (reading /proc/{pid}/stat)"
            ))
        }),
        None => Ok(0.0),
    };
    let self_pid = std::process::id();

    loop {
        let now = clock();
        // 1. Phases.
        if phase == Phase::Warmup && now >= warmup_ns {
            phase = Phase::Window;
            let own = sys::process_cpu_s(self_pid).unwrap_or(0.0);
            window_start = (answered, server_cpu()?, own, now);
        }
        if phase == Phase::Window && (now >= end_ns || sent >= a.requests_max) {
            phase = Phase::Drain;
            drain_deadline_ns = now + timeout_ns;
            let own = sys::process_cpu_s(self_pid).unwrap_or(0.0);
            window = Some((
                answered - window_start.0,
                server_cpu()? - window_start.1,
                own - window_start.2,
                now - window_start.3,
            ));
        }
        // A run bounded by --requests-max may end inside the warm-up: no window then.
        if phase == Phase::Warmup && sent >= a.requests_max {
            phase = Phase::Drain;
            drain_deadline_ns = now + timeout_ns;
        }

        // 2. Issue.
        let mut moved = false;
        if phase != Phase::Drain {
            let scheduled = match a.rate_per_s {
                Some(rate) => (rate * now as f64 / 1e9) as u64,
                None => u64::MAX,
            };
            let mut n = 0;
            while n < a.batch_max
                && sent + (n as u64) < a.requests_max
                && sent + (n as u64) < scheduled
            {
                let Some(slot) = free.pop() else { break };
                seq += 1;
                let s = slot as usize;
                slot_seq[s] = seq;
                slot_sent_ns[s] = now;
                slot_busy[s] = true;
                let len = wire::encode_request(tx.buf_mut(n), seq, slot);
                tx.fill(n, len, a.server);
                pending[n] = slot;
                n += 1;
            }
            let took = tx.send(fd, n)?;
            sends_calls += u64::from(n > 0);
            for &slot in &pending[took..n] {
                slot_busy[slot as usize] = false;
                free.push(slot);
            }
            sent += took as u64;
            bytes_sent += (took * wire::HEADER_BYTES) as u64;
            moved |= took > 0;
        }

        // 3. Collect.
        let got = rx.recv(fd, libc::MSG_DONTWAIT)?;
        let received_ns = clock();
        for k in 0..got {
            let data = rx.data(k);
            let answer = if rx.truncated(k) {
                None
            } else {
                wire::parse_answer(data)
            };
            let Some(answer) = answer else {
                bad += 1;
                continue;
            };
            let s = answer.slot as usize;
            if s >= a.outstanding || !slot_busy[s] || slot_seq[s] != answer.seq {
                late += 1;
                continue;
            }
            if answer.mapped != Some(local) {
                wrong_mapping += 1;
            }
            slot_busy[s] = false;
            free.push(answer.slot);
            answered += 1;
            bytes_answered += data.len() as u64;
            answer_bytes_min = answer_bytes_min.min(data.len());
            answer_bytes_max = answer_bytes_max.max(data.len());
            if phase == Phase::Window {
                hist.record(received_ns.saturating_sub(slot_sent_ns[s]));
            }
        }
        moved |= got > 0;

        // 5. Timeouts.
        let now = clock();
        if now >= next_scan_ns {
            next_scan_ns = now + TIMEOUT_SCAN_NS;
            for s in 0..a.outstanding {
                if slot_busy[s] && now - slot_sent_ns[s] > timeout_ns {
                    slot_busy[s] = false;
                    free.push(s as u32);
                    dropped += 1;
                }
            }
        }

        // 6. The end.
        if phase == Phase::Drain {
            let busy = a.outstanding - free.len();
            if busy == 0 {
                break;
            }
            if now >= drain_deadline_ns {
                dropped += busy as u64;
                break;
            }
        }

        // 4. Idle.
        if !moved {
            sys::wait_readable(fd, if a.rate_per_s.is_some() { 100 } else { 1_000 });
        }
    }

    let (window_answers, server_cpu_s, client_cpu_s, window_ns) =
        window.unwrap_or((0, 0.0, 0.0, 1));
    let window_s = window_ns as f64 / 1e9;
    let per_core_s = if server_cpu_s > 0.0 {
        window_answers as f64 / server_cpu_s
    } else {
        0.0
    };
    let answer_bytes_mean = if answered > 0 {
        bytes_answered as f64 / answered as f64
    } else {
        0.0
    };
    let scenario = if a.rate_per_s.is_some() {
        "rate"
    } else {
        "closed"
    };
    let fields: Vec<(&str, String)> = vec![
        ("label", a.label.clone()),
        ("round", a.round.to_string()),
        ("scenario", scenario.to_string()),
        ("outstanding", a.outstanding.to_string()),
        (
            "offered_per_s",
            a.rate_per_s
                .map_or("max".to_string(), |r| format!("{r:.0}")),
        ),
        ("window_s", format!("{window_s:.3}")),
        ("sent", sent.to_string()),
        ("answered", answered.to_string()),
        ("drops", dropped.to_string()),
        ("late", late.to_string()),
        ("bad", bad.to_string()),
        ("wrong_mapping", wrong_mapping.to_string()),
        (
            "responses_per_s",
            format!("{:.0}", window_answers as f64 / window_s),
        ),
        (
            "p50_us",
            format!("{:.1}", hist.quantile_ns(0.50) as f64 / 1e3),
        ),
        (
            "p99_us",
            format!("{:.1}", hist.quantile_ns(0.99) as f64 / 1e3),
        ),
        (
            "p999_us",
            format!("{:.1}", hist.quantile_ns(0.999) as f64 / 1e3),
        ),
        ("max_us", format!("{:.1}", hist.max_ns as f64 / 1e3)),
        ("server_cpu_s", format!("{server_cpu_s:.3}")),
        (
            "server_cpu_pct",
            format!("{:.1}", 100.0 * server_cpu_s / window_s),
        ),
        ("responses_per_core_s", format!("{per_core_s:.0}")),
        (
            "client_cpu_pct",
            format!("{:.1}", 100.0 * client_cpu_s / window_s),
        ),
        (
            "requests_per_sendmmsg",
            format!("{:.1}", sent as f64 / sends_calls.max(1) as f64),
        ),
        ("request_bytes", wire::HEADER_BYTES.to_string()),
        ("answer_bytes_mean", format!("{answer_bytes_mean:.1}")),
        (
            "answer_bytes_min",
            if answered > 0 {
                answer_bytes_min.to_string()
            } else {
                "0".into()
            },
        ),
        ("answer_bytes_max", answer_bytes_max.to_string()),
        (
            "amplification",
            format!("{:.3}", bytes_answered as f64 / bytes_sent.max(1) as f64),
        ),
    ];
    Ok(fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" "))
}

/// Sends one bare request and waits up to `timeout_ms` for its answer; returns the answer's
/// size and the mapped address (used to wait for a server to come up).
pub fn probe(server: SocketAddrV4, timeout_ms: u64) -> io::Result<(usize, Option<SocketAddrV4>)> {
    let socket = std::net::UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    let deadline = Instant::now() + std::time::Duration::from_millis(timeout_ms);
    let mut request = [0u8; wire::HEADER_BYTES];
    wire::encode_request(&mut request, 0x5eed, 0);
    let mut buf = [0u8; ANSWER_BYTES_MAX];
    while Instant::now() < deadline {
        socket.send_to(&request, server)?;
        socket.set_read_timeout(Some(std::time::Duration::from_millis(50)))?;
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            if let Some(answer) = wire::parse_answer(&buf[..len]) {
                return Ok((len, answer.mapped));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no STUN answer from {server} within {timeout_ms} ms"),
    ))
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn histogram_buckets_are_contiguous_and_close() {
        let mut prev = 0;
        for v in [
            0u64,
            1,
            127,
            128,
            129,
            255,
            256,
            1_000,
            65_432,
            1_000_000_000,
            u64::MAX / 2,
        ] {
            let i = Histogram::index(v);
            assert!(i >= prev && i < Histogram::new().counts.len());
            prev = i;
            let back = Histogram::value(i);
            assert!(
                back.abs_diff(v) as f64 <= 0.02 * v as f64 + 1.0,
                "{v} -> {i} -> {back}"
            );
        }
        let mut h = Histogram::new();
        for v in 1..=1000 {
            h.record(v * 1000);
        }
        let p50 = h.quantile_ns(0.5);
        assert!((490_000..=510_000).contains(&p50), "{p50}");
        assert!(h.quantile_ns(1.0) <= 1_000_000);
    }
}
