//! The sans-IO client core of `switchboard nat-check`: RFC 5780 NAT mapping
//! (§4.3) and filtering (§4.4) behaviour discovery against one server.
//!
//! The tests run one at a time from a single local socket, in this order:
//!
//! 1. Test I: a plain Binding request to the server's primary address. It
//!    gives the public mapping and, in OTHER-ADDRESS, the alternate address.
//!    Without OTHER-ADDRESS the server lacks RFC 5780 and the check ends.
//! 2. Filtering test II: CHANGE-REQUEST "change IP and port" to the primary.
//!    An answer means endpoint-independent filtering.
//! 3. Filtering test III (if II got none): CHANGE-REQUEST "change port".
//!    An answer means address-dependent filtering, none
//!    address-and-port-dependent.
//! 4. Mapping test II: a request to the alternate IP, primary port. The same
//!    mapping as test I means endpoint-independent mapping.
//! 5. Mapping test III (if it differed): to the alternate IP and port. The
//!    same mapping as mapping test II means address-dependent mapping,
//!    another one address-and-port-dependent.
//!
//! Filtering runs before mapping on purpose: the mapping tests send to the
//! alternate IP, which would open an address-dependent filter to it and make
//! filtering test II pass on a NAT that does filter.
//!
//! Each request is retransmitted with the same transaction id after
//! `rto_initial_ms`, doubling, up to `transmissions_max` sends, then waits
//! `final_wait_ms` for a late answer (RFC 8489 §6.2.1).

use std::net::SocketAddr;

use super::attr::ChangeRequest;
use super::encode::{encode_binding_request, BindingRequest};
use super::message::{Class, Method, StunMessage, TransactionId};

/// How a NAT maps or filters (RFC 4787 terms, as RFC 5780 uses them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// The same for every remote endpoint.
    EndpointIndependent,
    /// Depends on the remote IP address only.
    AddressDependent,
    /// Depends on the remote IP address and port.
    AddressAndPortDependent,
}

/// Why one behaviour could not be determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Undetermined {
    /// A mapping test got no answer: the alternate address did not reply.
    Timeout,
    /// The server answered a test with this error code (420 means it
    /// does not do CHANGE-REQUEST after all).
    ErrorResponse {
        /// The ERROR-CODE of the answer.
        code: u16,
    },
    /// An answer to a CHANGE-REQUEST came from an address the flags did not
    /// ask for, so the server did not honour them.
    WrongSource {
        /// Where the answer came from.
        source: SocketAddr,
    },
    /// A success response without XOR-MAPPED-ADDRESS or MAPPED-ADDRESS.
    NoMappedAddress,
}

/// The final result of a nat-check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatReport {
    /// Test I got no answer: the server is unreachable or the path drops
    /// STUN.
    NoResponse,
    /// Test I got an error response, or a success without a mapping.
    ServerError {
        /// The ERROR-CODE, or 0 when a success response lacked a mapping.
        code: u16,
    },
    /// The server answered without OTHER-ADDRESS: it lacks RFC 5780, and
    /// only the public mapping is known.
    NoRfc5780 {
        /// The public address the server saw.
        mapped: SocketAddr,
    },
    /// All tests ran.
    Complete {
        /// The public address the server saw in test I. If it equals the
        /// local socket's address, there is no NAT on the path.
        mapped: SocketAddr,
        /// The server's alternate address (OTHER-ADDRESS).
        other_address: SocketAddr,
        /// Mapping behaviour (RFC 5780 §4.3).
        mapping: Result<Behaviour, Undetermined>,
        /// Filtering behaviour (RFC 5780 §4.4).
        filtering: Result<Behaviour, Undetermined>,
    },
}

/// Where and how a nat-check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatCheckConfig {
    /// The server's primary address.
    pub server: SocketAddr,
    /// First retransmission timeout; it doubles after each send.
    pub rto_initial_ms: u64,
    /// Most sends of one request, the first included (RFC 8489's Rc).
    pub transmissions_max: u32,
    /// Wait after the last send before a test counts as unanswered.
    pub final_wait_ms: u64,
}

impl NatCheckConfig {
    /// Defaults for `server`: 500 ms initial RTO, 4 sends, 4 s final wait,
    /// so an unanswered test takes 7.5 s. RFC 8489's defaults (7 sends,
    /// 39.5 s) suit connectivity, but filtering tests expect silence and
    /// two of them would take over a minute.
    #[must_use]
    pub fn new(server: SocketAddr) -> NatCheckConfig {
        NatCheckConfig {
            server,
            rto_initial_ms: 500,
            transmissions_max: 4,
            final_wait_ms: 4_000,
        }
    }
}

/// A request the caller must send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// Its length at the front of the buffer given to
    /// [`NatCheck::poll_transmit`].
    pub len: usize,
}

/// Bytes [`NatCheck::poll_transmit`] needs in its output buffer.
pub const NAT_CHECK_REQUEST_BYTES_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    One,
    FilteringTwo,
    FilteringThree,
    MappingTwo,
    MappingThree,
}

/// One outstanding request and its retransmission schedule.
#[derive(Debug, Clone, Copy)]
struct Pending {
    test: Test,
    transaction_id: TransactionId,
    destination: SocketAddr,
    change_request: Option<ChangeRequest>,
    transmissions: u32,
    rto_ms: u64,
    deadline_ms: u64,
    send_due: bool,
}

/// What one test's answer was.
enum Outcome<'a> {
    Answer {
        message: StunMessage<'a>,
        source: SocketAddr,
    },
    Silence,
}

/// The nat-check state machine; see the module docs for its tests and
/// [`super`] for the loop that drives it. `R` yields fresh random
/// transaction ids; the core never draws randomness itself.
#[derive(Debug)]
pub struct NatCheck<R> {
    config: NatCheckConfig,
    transaction_ids: R,
    pending: Option<Pending>,
    mapped: Option<SocketAddr>,
    other_address: Option<SocketAddr>,
    mapped_two: Option<SocketAddr>,
    filtering: Option<Result<Behaviour, Undetermined>>,
    report: Option<NatReport>,
}

impl<R: FnMut() -> TransactionId> NatCheck<R> {
    /// Starts a check; the first request is due at once.
    ///
    /// # Panics
    ///
    /// When `transmissions_max` is zero: no request would ever be sent.
    #[must_use]
    pub fn new(config: NatCheckConfig, transaction_ids: R) -> NatCheck<R> {
        assert!(
            config.transmissions_max > 0,
            "transmissions_max must be > 0"
        );
        let mut check = NatCheck {
            config,
            transaction_ids,
            pending: None,
            mapped: None,
            other_address: None,
            mapped_two: None,
            filtering: None,
            report: None,
        };
        check.start(Test::One, config.server, None);
        check
    }

    fn start(
        &mut self,
        test: Test,
        destination: SocketAddr,
        change_request: Option<ChangeRequest>,
    ) {
        self.pending = Some(Pending {
            test,
            transaction_id: (self.transaction_ids)(),
            destination,
            change_request,
            transmissions: 0,
            rto_ms: self.config.rto_initial_ms,
            deadline_ms: 0,
            send_due: true,
        });
    }

    /// The next request to send, written into `out` (at least
    /// [`NAT_CHECK_REQUEST_BYTES_MAX`] bytes). Call until it returns `None`
    /// after creating the check and after every `handle_*` call.
    ///
    /// # Panics
    ///
    /// When `out` is shorter than [`NAT_CHECK_REQUEST_BYTES_MAX`].
    #[must_use]
    pub fn poll_transmit(&mut self, now_ms: u64, out: &mut [u8]) -> Option<Transmit> {
        assert!(
            out.len() >= NAT_CHECK_REQUEST_BYTES_MAX,
            "nat-check needs a {NAT_CHECK_REQUEST_BYTES_MAX}-byte buffer, got {}",
            out.len()
        );
        let transmissions_max = self.config.transmissions_max;
        let final_wait_ms = self.config.final_wait_ms;
        let pending = self.pending.as_mut().filter(|pending| pending.send_due)?;
        let request = BindingRequest {
            transaction_id: pending.transaction_id,
            change_request: pending.change_request,
            fingerprint: true,
            ..BindingRequest::default()
        };
        // The buffer size was asserted above and a request with these
        // attributes is 36 bytes, so encoding cannot fail.
        let len = encode_binding_request(out, &request).ok()?;
        pending.send_due = false;
        pending.transmissions += 1;
        pending.deadline_ms = if pending.transmissions < transmissions_max {
            let deadline_ms = now_ms.saturating_add(pending.rto_ms);
            pending.rto_ms = pending.rto_ms.saturating_mul(2);
            deadline_ms
        } else {
            now_ms.saturating_add(final_wait_ms)
        };
        Some(Transmit {
            destination: pending.destination,
            len,
        })
    }

    /// When [`NatCheck::handle_timeout`] must be called next, if anything
    /// is waiting.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.pending
            .filter(|pending| !pending.send_due)
            .map(|pending| pending.deadline_ms)
    }

    /// The result, once the check has finished.
    #[must_use]
    pub fn poll_report(&self) -> Option<NatReport> {
        self.report
    }

    /// Advances time: retransmits, or gives up on the current test.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        if pending.send_due || now_ms < pending.deadline_ms {
            return;
        }
        if pending.transmissions < self.config.transmissions_max {
            pending.send_due = true;
        } else {
            let test = pending.test;
            self.pending = None;
            self.finish_test(test, Outcome::Silence);
        }
    }

    /// Feeds a datagram received on the check's socket from `source`.
    /// Anything that is not an answer to the current request is ignored.
    pub fn handle_input(&mut self, _now_ms: u64, source: SocketAddr, datagram: &[u8]) {
        let Some(pending) = self.pending else {
            return;
        };
        let Ok(message) = StunMessage::parse(datagram) else {
            return;
        };
        let is_answer = message.method() == Method::BINDING
            && matches!(
                message.class(),
                Class::SuccessResponse | Class::ErrorResponse
            )
            && message.transaction_id() == pending.transaction_id;
        if !is_answer || (message.has_fingerprint() && message.verify_fingerprint().is_err()) {
            return;
        }
        self.pending = None;
        self.finish_test(pending.test, Outcome::Answer { message, source });
    }

    /// Records a test's result and starts the next test or ends the check.
    fn finish_test(&mut self, test: Test, outcome: Outcome<'_>) {
        let server = self.config.server;
        match test {
            Test::One => match outcome {
                Outcome::Silence => self.report = Some(NatReport::NoResponse),
                Outcome::Answer { message, .. } => match answer_mapping(&message) {
                    Err(Undetermined::ErrorResponse { code }) => {
                        self.report = Some(NatReport::ServerError { code });
                    }
                    Err(_) => self.report = Some(NatReport::ServerError { code: 0 }),
                    Ok(mapped) => {
                        self.mapped = Some(mapped);
                        match message.other_address() {
                            None => self.report = Some(NatReport::NoRfc5780 { mapped }),
                            Some(other) => {
                                self.other_address = Some(other);
                                let both = ChangeRequest {
                                    change_ip: true,
                                    change_port: true,
                                };
                                self.start(Test::FilteringTwo, server, Some(both));
                            }
                        }
                    }
                },
            },
            Test::FilteringTwo => match self.filtering_answer(outcome, true) {
                Some(Ok(())) => self.filtering_done(Ok(Behaviour::EndpointIndependent)),
                Some(Err(why)) => self.filtering_done(Err(why)),
                None => {
                    let port_only = ChangeRequest {
                        change_ip: false,
                        change_port: true,
                    };
                    self.start(Test::FilteringThree, server, Some(port_only));
                }
            },
            Test::FilteringThree => match self.filtering_answer(outcome, false) {
                Some(Ok(())) => self.filtering_done(Ok(Behaviour::AddressDependent)),
                Some(Err(why)) => self.filtering_done(Err(why)),
                None => self.filtering_done(Ok(Behaviour::AddressAndPortDependent)),
            },
            Test::MappingTwo => match mapping_of(outcome) {
                Err(why) => self.complete(Err(why)),
                Ok(mapped_two) if Some(mapped_two) == self.mapped => {
                    self.complete(Ok(Behaviour::EndpointIndependent));
                }
                Ok(mapped_two) => {
                    self.mapped_two = Some(mapped_two);
                    let other = self.other_address.unwrap_or(server);
                    self.start(Test::MappingThree, other, None);
                }
            },
            Test::MappingThree => match mapping_of(outcome) {
                Err(why) => self.complete(Err(why)),
                Ok(mapped_three) if Some(mapped_three) == self.mapped_two => {
                    self.complete(Ok(Behaviour::AddressDependent));
                }
                Ok(_) => self.complete(Ok(Behaviour::AddressAndPortDependent)),
            },
        }
    }

    /// `None` for silence (the filter dropped it), `Some(Ok)` for a success
    /// from the address the flags asked for, `Some(Err)` otherwise.
    fn filtering_answer(
        &self,
        outcome: Outcome<'_>,
        change_ip: bool,
    ) -> Option<Result<(), Undetermined>> {
        let Outcome::Answer { message, source } = outcome else {
            return None;
        };
        if let Err(why) = answer_mapping(&message) {
            return Some(Err(why));
        }
        let server = self.config.server;
        let ip_as_asked = (source.ip() != server.ip()) == change_ip;
        let port_changed = source.port() != server.port();
        if ip_as_asked && port_changed {
            Some(Ok(()))
        } else {
            Some(Err(Undetermined::WrongSource { source }))
        }
    }

    fn filtering_done(&mut self, filtering: Result<Behaviour, Undetermined>) {
        self.filtering = Some(filtering);
        // Mapping test II goes to the alternate IP and the primary port.
        let other = self.other_address.unwrap_or(self.config.server);
        let destination = SocketAddr::new(other.ip(), self.config.server.port());
        self.start(Test::MappingTwo, destination, None);
    }

    fn complete(&mut self, mapping: Result<Behaviour, Undetermined>) {
        let (Some(mapped), Some(other_address), Some(filtering)) =
            (self.mapped, self.other_address, self.filtering)
        else {
            unreachable!("mapping tests run only after test I and the filtering tests");
        };
        self.report = Some(NatReport::Complete {
            mapped,
            other_address,
            mapping,
            filtering,
        });
    }
}

/// The mapping in a success response, or why there is none.
fn answer_mapping(message: &StunMessage<'_>) -> Result<SocketAddr, Undetermined> {
    if message.class() == Class::ErrorResponse {
        let code = message.error_code().map_or(0, |error| error.code);
        return Err(Undetermined::ErrorResponse { code });
    }
    message
        .xor_mapped_address()
        .or_else(|| message.mapped_address())
        .ok_or(Undetermined::NoMappedAddress)
}

/// The mapping a mapping test saw, or why it saw none.
fn mapping_of(outcome: Outcome<'_>) -> Result<SocketAddr, Undetermined> {
    match outcome {
        Outcome::Silence => Err(Undetermined::Timeout),
        Outcome::Answer { message, .. } => answer_mapping(&message),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet, VecDeque};
    use std::net::IpAddr;

    use super::super::server::{Reply, Responder, ResponderConfig, Response, Rfc5780Config};
    use super::super::RESPONSE_BYTES_MAX;
    use super::*;

    const CLIENT: &str = "10.0.0.2:5000";
    const NAT_IP: &str = "203.0.113.9";
    const PRIMARY: &str = "192.0.2.1:3478";
    const ALTERNATE: &str = "192.0.2.2:3479";

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    /// A NAT with one internal host, of configurable mapping and filtering.
    struct Nat {
        mapping: Behaviour,
        filtering: Behaviour,
        /// Mapping key to external port.
        mappings: HashMap<(Option<IpAddr>, Option<u16>), u16>,
        /// External port to the destinations sent to through it.
        contacted: HashMap<u16, HashSet<SocketAddr>>,
        next_port: u16,
    }

    impl Nat {
        fn new(mapping: Behaviour, filtering: Behaviour) -> Self {
            Nat {
                mapping,
                filtering,
                mappings: HashMap::new(),
                contacted: HashMap::new(),
                next_port: 60_000,
            }
        }

        /// Translates an outbound packet's source.
        fn outbound(&mut self, destination: SocketAddr) -> SocketAddr {
            let key = match self.mapping {
                Behaviour::EndpointIndependent => (None, None),
                Behaviour::AddressDependent => (Some(destination.ip()), None),
                Behaviour::AddressAndPortDependent => {
                    (Some(destination.ip()), Some(destination.port()))
                }
            };
            let next_port = &mut self.next_port;
            let port = *self.mappings.entry(key).or_insert_with(|| {
                *next_port += 1;
                *next_port
            });
            self.contacted.entry(port).or_default().insert(destination);
            SocketAddr::new(NAT_IP.parse().unwrap(), port)
        }

        /// Whether an inbound packet from `source` to the external `port`
        /// passes the filter.
        fn inbound(&self, source: SocketAddr, port: u16) -> bool {
            let Some(contacted) = self.contacted.get(&port) else {
                return false;
            };
            match self.filtering {
                Behaviour::EndpointIndependent => true,
                Behaviour::AddressDependent => contacted.iter().any(|c| c.ip() == source.ip()),
                Behaviour::AddressAndPortDependent => contacted.contains(&source),
            }
        }
    }

    /// Runs a check against a server behind (optionally) a NAT, on simulated
    /// time with zero latency; returns the report and the time taken.
    fn run(
        mut nat: Option<Nat>,
        server: Option<&Responder>,
        mut lose_first: usize,
    ) -> (NatReport, u64) {
        let mut next_id = 0u8;
        let mut check = NatCheck::new(NatCheckConfig::new(addr(PRIMARY)), || {
            next_id += 1;
            TransactionId([next_id; 12])
        });
        let mut now_ms = 0u64;
        let mut inbox: VecDeque<(SocketAddr, Vec<u8>)> = VecDeque::new();
        for _ in 0..1_000 {
            let mut out = [0u8; NAT_CHECK_REQUEST_BYTES_MAX];
            while let Some(transmit) = check.poll_transmit(now_ms, &mut out) {
                if lose_first > 0 {
                    lose_first -= 1;
                    continue;
                }
                let Some(server) = server else { continue };
                let public_source = match nat.as_mut() {
                    Some(nat) => nat.outbound(transmit.destination),
                    None => addr(CLIENT),
                };
                let mut answer = [0u8; RESPONSE_BYTES_MAX];
                let response = server.respond(
                    &out[..transmit.len],
                    public_source,
                    transmit.destination,
                    &mut answer,
                );
                if let Response::Send(Reply {
                    len,
                    destination,
                    source,
                    ..
                }) = response
                {
                    let delivered = match nat.as_ref() {
                        Some(nat) => {
                            destination.ip() == NAT_IP.parse::<IpAddr>().unwrap()
                                && nat.inbound(source, destination.port())
                        }
                        None => destination == addr(CLIENT),
                    };
                    if delivered {
                        inbox.push_back((source, answer[..len].to_vec()));
                    }
                }
            }
            if let Some(report) = check.poll_report() {
                return (report, now_ms);
            }
            if let Some((source, bytes)) = inbox.pop_front() {
                check.handle_input(now_ms, source, &bytes);
                continue;
            }
            let deadline = check
                .poll_timeout()
                .expect("a running check has a deadline");
            assert!(deadline >= now_ms);
            now_ms = deadline;
            check.handle_timeout(now_ms);
        }
        panic!("the check did not finish");
    }

    fn rfc5780_server() -> Responder {
        Responder::new(ResponderConfig {
            rfc5780: Some(Rfc5780Config {
                primary: addr(PRIMARY),
                alternate: addr(ALTERNATE),
            }),
            ..ResponderConfig::default()
        })
    }

    const BEHAVIOURS: [Behaviour; 3] = [
        Behaviour::EndpointIndependent,
        Behaviour::AddressDependent,
        Behaviour::AddressAndPortDependent,
    ];

    #[test]
    fn every_mapping_and_filtering_combination_is_found() {
        let server = rfc5780_server();
        for mapping in BEHAVIOURS {
            for filtering in BEHAVIOURS {
                let (report, _) = run(Some(Nat::new(mapping, filtering)), Some(&server), 0);
                let NatReport::Complete {
                    mapped,
                    other_address,
                    mapping: found_mapping,
                    filtering: found_filtering,
                } = report
                else {
                    panic!("{mapping:?}/{filtering:?}: {report:?}");
                };
                assert_eq!(mapped.ip(), NAT_IP.parse::<IpAddr>().unwrap());
                assert_eq!(other_address, addr(ALTERNATE));
                assert_eq!(
                    found_mapping,
                    Ok(mapping),
                    "mapping of {mapping:?}/{filtering:?}"
                );
                assert_eq!(
                    found_filtering,
                    Ok(filtering),
                    "filtering of {mapping:?}/{filtering:?}"
                );
            }
        }
    }

    #[test]
    fn no_nat_is_endpoint_independent_with_the_local_address_mapped() {
        let server = rfc5780_server();
        let (report, _) = run(None, Some(&server), 0);
        assert_eq!(
            report,
            NatReport::Complete {
                mapped: addr(CLIENT),
                other_address: addr(ALTERNATE),
                mapping: Ok(Behaviour::EndpointIndependent),
                filtering: Ok(Behaviour::EndpointIndependent),
            }
        );
    }

    #[test]
    fn server_without_rfc_5780_reports_just_the_mapping() {
        let server = Responder::new(ResponderConfig::default());
        let nat = Nat::new(
            Behaviour::EndpointIndependent,
            Behaviour::EndpointIndependent,
        );
        let (report, _) = run(Some(nat), Some(&server), 0);
        let NatReport::NoRfc5780 { mapped } = report else {
            panic!("{report:?}");
        };
        assert_eq!(mapped.ip(), NAT_IP.parse::<IpAddr>().unwrap());
    }

    #[test]
    fn unreachable_server_times_out_after_the_schedule() {
        let (report, elapsed_ms) = run(None, None, 0);
        assert_eq!(report, NatReport::NoResponse);
        // Sends at 0, 500, 1500 and 3500 ms, then a 4 s final wait.
        assert_eq!(elapsed_ms, 7_500);
    }

    #[test]
    fn lost_requests_are_retransmitted() {
        let server = rfc5780_server();
        let nat = Nat::new(Behaviour::AddressDependent, Behaviour::AddressDependent);
        let (report, elapsed_ms) = run(Some(nat), Some(&server), 3);
        assert!(matches!(
            report,
            NatReport::Complete {
                mapping: Ok(Behaviour::AddressDependent),
                filtering: Ok(Behaviour::AddressDependent),
                ..
            }
        ));
        // Test I needed its fourth send at 3500 ms; filtering test II then
        // waited out its 7.5 s schedule.
        assert!(elapsed_ms >= 3_500 + 7_500, "{elapsed_ms}");
    }

    #[test]
    fn unrelated_and_late_packets_are_ignored() {
        let mut check = NatCheck::new(NatCheckConfig::new(addr(PRIMARY)), || {
            TransactionId([7; 12])
        });
        let mut out = [0u8; NAT_CHECK_REQUEST_BYTES_MAX];
        let transmit = check.poll_transmit(0, &mut out).unwrap();
        assert_eq!(transmit.destination, addr(PRIMARY));
        assert!(check.poll_transmit(0, &mut out).is_none());
        assert_eq!(check.poll_timeout(), Some(500));
        check.handle_input(10, addr(PRIMARY), b"not stun");
        // The request itself echoed back is not an answer.
        let request = out[..transmit.len].to_vec();
        check.handle_input(10, addr(PRIMARY), &request);
        // Early timeouts change nothing.
        check.handle_timeout(499);
        assert!(check.poll_transmit(499, &mut out).is_none());
        check.handle_timeout(500);
        let again = check.poll_transmit(500, &mut out).unwrap();
        assert_eq!(&out[..again.len], &request[..], "same transaction id");
        assert_eq!(check.poll_timeout(), Some(1_500));
        assert_eq!(check.poll_report(), None);
    }
}
