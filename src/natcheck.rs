//! `switchboard nat-check`: RFC 5780 NAT behaviour discovery against a STUN
//! server, over one UDP socket.
//!
//! The protocol lives in the sans-IO [`NatCheck`] core; this module is its
//! driver. [`run`] does, in order:
//!
//! 1. Resolve the server (`HOST[:PORT]`, port 3478 when none is given) to an
//!    address of the same family as `--bind`.
//! 2. Bind the socket, and learn which local IP the route to the server uses
//!    (a second, connected socket tells), so the summary can say whether the
//!    public mapping is the local address: no NAT.
//! 3. Read a pool of random transaction ids from `/dev/urandom` (the core
//!    draws no randomness itself; no `unsafe` outside `src/shard/`).
//! 4. Loop: send what [`NatCheck::poll_transmit`] gives; stop when
//!    [`NatCheck::poll_report`] has a report; otherwise wait for a datagram
//!    until [`NatCheck::poll_timeout`], and feed it or the time back.
//! 5. Format the report as text or JSON.
//!
//! `--timeout-ms` is the time one unanswered test takes: four sends at
//! 0, r, 3r and 7r, then a wait until 15r, with r = timeout / 15. A check
//! against a NAT that filters waits out two such tests.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use crate::proto::stun::{
    Behaviour, NatCheck, NatCheckConfig, NatReport, TransactionId, Undetermined,
    NAT_CHECK_REQUEST_BYTES_MAX,
};

/// The STUN port when `HOST` has none (RFC 8489 §18.1).
pub const STUN_PORT_DEFAULT: u16 = 3478;

/// Transaction ids read up front: the check runs at most five tests, each
/// with one id that its retransmissions reuse.
const TRANSACTION_IDS_MAX: usize = 8;

/// Largest datagram read; STUN answers are far smaller.
const DATAGRAM_BYTES_MAX: usize = 1500;

/// Datagrams handled before giving up, so a flood of unrelated packets
/// cannot keep the check busy: a check needs about ten.
const DATAGRAMS_MAX: usize = 10_000;

/// Arguments of `switchboard nat-check`.
#[derive(Debug, Clone, clap::Args)]
pub struct NatCheckArgs {
    /// STUN server, HOST or HOST:PORT (port 3478 when none is given).
    pub server: String,
    /// Local address to send from.
    #[arg(long, default_value = "0.0.0.0:0")]
    pub bind: String,
    /// How long one unanswered test waits, retransmissions included.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs the check and returns the summary (text, or JSON with `--json`).
///
/// # Errors
///
/// A message for the operator when the check could not run (the server
/// name does not resolve, the socket cannot be bound) or found nothing: no
/// answer within `--timeout-ms`, or an error answer to the first request.
/// The caller should print it and exit non-zero.
pub fn run(args: &NatCheckArgs) -> Result<String, String> {
    let bind: SocketAddr = args
        .bind
        .parse()
        .map_err(|_| format!("--bind {}: expected IP:PORT, e.g. 0.0.0.0:0", args.bind))?;
    let (server, bind) = resolve(&args.server, bind)?;
    let socket = UdpSocket::bind(bind).map_err(|e| {
        format!("cannot bind {bind}: {e} (likely cause: the address is not on this host or the port is taken)")
    })?;
    let mut local = socket
        .local_addr()
        .map_err(|e| format!("local address of the socket: {e}"))?;
    if local.ip().is_unspecified() {
        if let Some(ip) = route_source(server) {
            local.set_ip(ip);
        }
    }
    let mut ids = random_transaction_ids()?.into_iter();
    let config = schedule(server, args.timeout_ms);
    let mut check = NatCheck::new(config, move || {
        ids.next()
            .unwrap_or_else(|| unreachable!("nat-check runs at most five tests"))
    });

    let start = Instant::now();
    let now_ms = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut out = [0u8; NAT_CHECK_REQUEST_BYTES_MAX];
    let mut datagram = [0u8; DATAGRAM_BYTES_MAX];
    let mut send_error = None;
    let mut datagrams = 0usize;
    let report = loop {
        while let Some(transmit) = check.poll_transmit(now_ms(), &mut out) {
            if let Err(e) = socket.send_to(&out[..transmit.len], transmit.destination) {
                // The test will time out; the error explains why.
                send_error = Some(format!("sending to {}: {e}", transmit.destination));
            }
        }
        if let Some(report) = check.poll_report() {
            break report;
        }
        let Some(deadline_ms) = check.poll_timeout() else {
            unreachable!("a running check always waits for something");
        };
        let now = now_ms();
        if deadline_ms <= now {
            check.handle_timeout(now);
            continue;
        }
        socket
            .set_read_timeout(Some(Duration::from_millis(deadline_ms - now)))
            .map_err(|e| format!("setting the read timeout: {e}"))?;
        match socket.recv_from(&mut datagram) {
            Ok((len, source)) => {
                datagrams += 1;
                if datagrams > DATAGRAMS_MAX {
                    return Err(format!(
                        "more than {DATAGRAMS_MAX} datagrams arrived during the check; \
                         something else is sending to {local}"
                    ));
                }
                check.handle_input(now_ms(), source, &datagram[..len]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                check.handle_timeout(now_ms());
            }
            // An ICMP error for an earlier send; the core's timers decide.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(format!("receiving on {local}: {e}")),
        }
    };
    summarize(&report, &args.server, server, local, args, send_error)
}

/// Splits `HOST[:PORT]` (IPv6 literals bare or in brackets) and resolves it
/// to an address of `bind`'s family. An unspecified `bind` of the other
/// family is switched to the server's when that is all the name resolves
/// to, so `nat-check ::1` works with the default `--bind`.
fn resolve(server: &str, bind: SocketAddr) -> Result<(SocketAddr, SocketAddr), String> {
    let candidates: Vec<SocketAddr> = if let Ok(address) = server.parse::<SocketAddr>() {
        vec![address]
    } else if let Ok(ip) = server
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        vec![SocketAddr::new(ip, STUN_PORT_DEFAULT)]
    } else {
        let (host, port) = match server.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| format!("{server}: the port after ':' is not a number"))?,
            ),
            None => (server, STUN_PORT_DEFAULT),
        };
        (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect()
    };
    if let Some(&same) = candidates
        .iter()
        .find(|address| address.is_ipv4() == bind.is_ipv4())
    {
        return Ok((same, bind));
    }
    match candidates.first() {
        Some(&other) if bind.ip().is_unspecified() => {
            let ip = if other.is_ipv4() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            };
            Ok((other, SocketAddr::new(ip, bind.port())))
        }
        Some(other) => Err(format!(
            "{server} resolves to {other}, another address family than --bind {bind}"
        )),
        None => Err(format!("{server} resolves to no address")),
    }
}

/// The local IP the kernel would send to `server` from.
fn route_source(server: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let probe = UdpSocket::bind(any).ok()?;
    probe.connect(server).ok()?;
    Some(probe.local_addr().ok()?.ip())
}

/// Reads the transaction ids the check will use.
fn random_transaction_ids() -> Result<Vec<TransactionId>, String> {
    let mut bytes = [0u8; 12 * TRANSACTION_IDS_MAX];
    File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut bytes))
        .map_err(|e| format!("reading /dev/urandom for transaction ids: {e}"))?;
    Ok(bytes
        .chunks_exact(12)
        .map(|chunk| {
            let mut id = TransactionId::default();
            id.0.copy_from_slice(chunk);
            id
        })
        .collect())
}

/// The retransmission schedule that makes one unanswered test last
/// `timeout_ms`: sends at 0, r, 3r, 7r and the end at 15r.
fn schedule(server: SocketAddr, timeout_ms: u64) -> NatCheckConfig {
    let rto_initial_ms = (timeout_ms / 15).max(1);
    NatCheckConfig {
        server,
        rto_initial_ms,
        transmissions_max: 4,
        final_wait_ms: timeout_ms.saturating_sub(7 * rto_initial_ms).max(1),
    }
}

fn behaviour_name(behaviour: Behaviour) -> &'static str {
    match behaviour {
        Behaviour::EndpointIndependent => "endpoint-independent",
        Behaviour::AddressDependent => "address-dependent",
        Behaviour::AddressAndPortDependent => "address-and-port-dependent",
    }
}

fn undetermined_reason(why: Undetermined, other_address: SocketAddr) -> String {
    match why {
        Undetermined::Timeout => format!(
            "undetermined: no answer from the server's alternate address {}",
            other_address.ip()
        ),
        Undetermined::ErrorResponse { code } => {
            format!("undetermined: the server answered with error {code}")
        }
        Undetermined::WrongSource { source } => format!(
            "undetermined: an answer came from {source}, not the address CHANGE-REQUEST asked \
             for (the server does not honour it)"
        ),
        Undetermined::NoMappedAddress => {
            "undetermined: an answer carried no mapped address".to_string()
        }
    }
}

/// The text (or JSON) for a finished check.
fn summarize(
    report: &NatReport,
    name: &str,
    server: SocketAddr,
    local: SocketAddr,
    args: &NatCheckArgs,
    send_error: Option<String>,
) -> Result<String, String> {
    let asked = if name == server.to_string() {
        server.to_string()
    } else {
        format!("{name} ({server})")
    };
    match *report {
        NatReport::NoResponse => {
            let mut message = format!("no response from {asked} within {} ms", args.timeout_ms);
            if let Some(error) = send_error {
                message.push_str(&format!(" ({error})"));
            }
            Err(message)
        }
        NatReport::ServerError { code: 0 } => Err(format!(
            "{asked} answered without a mapped address; it is not a working STUN server"
        )),
        NatReport::ServerError { code } => Err(format!(
            "{asked} answered the Binding request with error {code}"
        )),
        NatReport::NoRfc5780 { mapped } => {
            if args.json {
                let value = serde_json::json!({
                    "server": server.to_string(),
                    "local": local.to_string(),
                    "mapped": mapped.to_string(),
                    "nat": mapped != local,
                    "rfc5780": false,
                    "other_address": null,
                    "mapping": null,
                    "filtering": null,
                });
                return Ok(value.to_string());
            }
            Ok(format!(
                "server:              {asked}\n\
                 local address:       {local}\n\
                 public mapping:      {mapped}{}\n\
                 server does not support RFC 5780 (no OTHER-ADDRESS): mapping and filtering \
                 behaviour cannot be tested\n",
                nat_note(mapped, local)
            ))
        }
        NatReport::Complete {
            mapped,
            other_address,
            mapping,
            filtering,
        } => {
            let describe = |result: Result<Behaviour, Undetermined>| match result {
                Ok(behaviour) => behaviour_name(behaviour).to_string(),
                Err(why) => undetermined_reason(why, other_address),
            };
            if args.json {
                let name_of =
                    |result: Result<Behaviour, Undetermined>| result.ok().map(behaviour_name);
                let why_of = |result: Result<Behaviour, Undetermined>| {
                    result
                        .err()
                        .map(|why| undetermined_reason(why, other_address))
                };
                let value = serde_json::json!({
                    "server": server.to_string(),
                    "local": local.to_string(),
                    "mapped": mapped.to_string(),
                    "nat": mapped != local,
                    "rfc5780": true,
                    "other_address": other_address.to_string(),
                    "mapping": name_of(mapping),
                    "mapping_undetermined": why_of(mapping),
                    "filtering": name_of(filtering),
                    "filtering_undetermined": why_of(filtering),
                });
                return Ok(value.to_string());
            }
            Ok(format!(
                "server:              {asked}, alternate {other_address}\n\
                 local address:       {local}\n\
                 public mapping:      {mapped}{}\n\
                 mapping behaviour:   {}\n\
                 filtering behaviour: {}\n",
                nat_note(mapped, local),
                describe(mapping),
                describe(filtering),
            ))
        }
    }
}

fn nat_note(mapped: SocketAddr, local: SocketAddr) -> &'static str {
    if mapped == local {
        " (the local address: no NAT)"
    } else {
        " (differs from the local address: behind a NAT)"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::thread::JoinHandle;

    use super::*;
    use crate::proto::stun::{
        Responder, ResponderConfig, Response, Rfc5780Config, SocketChoice, Which,
        RESPONSE_BYTES_MAX,
    };

    /// An in-process STUN server: one thread per socket, each answering
    /// with the sans-IO responder from the socket it names.
    struct TestServer {
        primary: SocketAddr,
        stop: Arc<AtomicBool>,
        threads: Vec<JoinHandle<()>>,
    }

    impl TestServer {
        /// Without RFC 5780: one socket on 127.0.0.1.
        fn plain() -> TestServer {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let primary = socket.local_addr().unwrap();
            let responder = Responder::new(ResponderConfig::default());
            TestServer::serve(responder, vec![(SocketChoice::PRIMARY, socket)], primary)
        }

        /// With RFC 5780: 127.0.0.1 and 127.0.0.2 (both on `lo`), two ports.
        fn rfc5780() -> TestServer {
            for _ in 0..20 {
                let a = UdpSocket::bind("127.0.0.1:0").unwrap();
                let b = UdpSocket::bind("127.0.0.1:0").unwrap();
                let (port_a, port_b) = (
                    a.local_addr().unwrap().port(),
                    b.local_addr().unwrap().port(),
                );
                let (Ok(c), Ok(d)) = (
                    UdpSocket::bind(("127.0.0.2", port_a)),
                    UdpSocket::bind(("127.0.0.2", port_b)),
                ) else {
                    continue;
                };
                let primary = a.local_addr().unwrap();
                let alternate = d.local_addr().unwrap();
                let responder = Responder::new(ResponderConfig {
                    rfc5780: Some(Rfc5780Config { primary, alternate }),
                    ..ResponderConfig::default()
                });
                let choice = |address, port| SocketChoice { address, port };
                let sockets = vec![
                    (choice(Which::Primary, Which::Primary), a),
                    (choice(Which::Primary, Which::Alternate), b),
                    (choice(Which::Alternate, Which::Primary), c),
                    (choice(Which::Alternate, Which::Alternate), d),
                ];
                return TestServer::serve(responder, sockets, primary);
            }
            panic!("no pair of ports free on both 127.0.0.1 and 127.0.0.2");
        }

        fn serve(
            responder: Responder,
            sockets: Vec<(SocketChoice, UdpSocket)>,
            primary: SocketAddr,
        ) -> TestServer {
            let stop = Arc::new(AtomicBool::new(false));
            let sockets = Arc::new(sockets);
            let threads = (0..sockets.len())
                .map(|index| {
                    let (sockets, stop, responder) =
                        (Arc::clone(&sockets), Arc::clone(&stop), responder.clone());
                    std::thread::spawn(move || {
                        let socket = &sockets[index].1;
                        let local = socket.local_addr().unwrap();
                        socket
                            .set_read_timeout(Some(Duration::from_millis(20)))
                            .unwrap();
                        let mut datagram = [0u8; 1500];
                        let mut out = [0u8; RESPONSE_BYTES_MAX];
                        while !stop.load(Ordering::Relaxed) {
                            let Ok((len, source)) = socket.recv_from(&mut datagram) else {
                                continue;
                            };
                            let response =
                                responder.respond(&datagram[..len], source, local, &mut out);
                            if let Response::Send(reply) = response {
                                let (_, from) = sockets
                                    .iter()
                                    .find(|(choice, _)| *choice == reply.socket)
                                    .expect("the responder names one of our sockets");
                                from.send_to(&out[..reply.len], reply.destination).unwrap();
                            }
                        }
                    })
                })
                .collect();
            TestServer {
                primary,
                stop,
                threads,
            }
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
        }
    }

    fn args(server: String, json: bool) -> NatCheckArgs {
        NatCheckArgs {
            server,
            bind: "127.0.0.1:0".into(),
            timeout_ms: 600,
            json,
        }
    }

    #[test]
    fn rfc_5780_server_without_nat_is_endpoint_independent() {
        let server = TestServer::rfc5780();
        let started = Instant::now();
        let summary = run(&args(server.primary.to_string(), false)).unwrap();
        assert!(
            summary.contains("mapping behaviour:   endpoint-independent"),
            "{summary}"
        );
        assert!(
            summary.contains("filtering behaviour: endpoint-independent"),
            "{summary}"
        );
        assert!(summary.contains("no NAT"), "{summary}");
        assert!(summary.contains("alternate 127.0.0.2:"), "{summary}");
        // Every test was answered, so nothing waited for a timeout.
        assert!(started.elapsed() < Duration::from_millis(500), "{summary}");

        let json = run(&args(server.primary.to_string(), true)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["mapping"], "endpoint-independent");
        assert_eq!(value["filtering"], "endpoint-independent");
        assert_eq!(value["nat"], false);
        assert_eq!(value["rfc5780"], true);
        assert_eq!(value["mapped"], value["local"]);
    }

    #[test]
    fn server_without_rfc_5780_gives_only_the_mapping() {
        let server = TestServer::plain();
        let summary = run(&args(server.primary.to_string(), false)).unwrap();
        assert!(
            summary.contains("server does not support RFC 5780 (no OTHER-ADDRESS)"),
            "{summary}"
        );
        assert!(
            summary.contains("public mapping:      127.0.0.1:"),
            "{summary}"
        );
        let value: serde_json::Value =
            serde_json::from_str(&run(&args(server.primary.to_string(), true)).unwrap()).unwrap();
        assert_eq!(value["rfc5780"], false);
        assert_eq!(value["mapping"], serde_json::Value::Null);
    }

    #[test]
    fn silent_server_is_no_response_within_the_timeout() {
        // Bound but never read: no answer, and no ICMP error either.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = silent.local_addr().unwrap();
        let started = Instant::now();
        let error = run(&args(address.to_string(), false)).unwrap_err();
        assert_eq!(error, format!("no response from {address} within 600 ms"));
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(590) && elapsed < Duration::from_millis(1_500),
            "{elapsed:?}"
        );
    }

    #[test]
    fn server_names_resolve_with_the_default_port() {
        let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let (server, _) = resolve("127.0.0.1", any).unwrap();
        assert_eq!(server, "127.0.0.1:3478".parse().unwrap());
        let (server, _) = resolve("localhost:5000", any).unwrap();
        assert_eq!(server, "127.0.0.1:5000".parse().unwrap());
        let (server, bind) = resolve("[::1]", any).unwrap();
        assert_eq!(server, "[::1]:3478".parse().unwrap());
        assert!(bind.is_ipv6(), "an unspecified bind follows the server");
        assert!(resolve("localhost:http", any).is_err());
        let v4_bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert!(resolve("::1", v4_bind).is_err());
    }

    #[test]
    fn the_schedule_spends_the_timeout() {
        let server: SocketAddr = "127.0.0.1:3478".parse().unwrap();
        let config = schedule(server, 3_000);
        assert_eq!(config.rto_initial_ms, 200);
        assert_eq!(7 * config.rto_initial_ms + config.final_wait_ms, 3_000);
        let tiny = schedule(server, 5);
        assert!(tiny.rto_initial_ms >= 1 && tiny.final_wait_ms >= 1);
    }
}
