//! `switchboard nat-check` behind real Linux NATs: a server, a router and a client network
//! namespace joined by veth pairs, the router translating with iptables, the switchboard
//! STUN server (RFC 5780, two addresses) in the server namespace and `nat-check` in the
//! client namespace. Each test builds its own three namespaces and deletes them when it
//! ends, even on failure (the guards' `Drop`); every wait is bounded.
//!
//! ```text
//!  server ns                     router ns                          client ns
//!  127.0.1.1 (primary :3478)     127.0.1.254 [sbr0]   [sbr1] 127.0.2.1   127.0.2.2 [sbc0]
//!  127.0.1.2 (alternate :3479) ──┘ iptables NAT out of sbr0           └── default via .2.1
//!  [sbs0], 127.0.2.0/24 via 127.0.1.254
//! ```
//!
//! Every address is in 127.0.0.0/8, so nothing here can reach or impersonate a real network
//! even if a namespace leaked. Three settings make 127/8 routable between namespaces:
//! `net.ipv4.conf.all.route_localnet=1` (else the kernel drops such packets as martians and
//! ignores ARP for them); `lo` keeps only 127.0.0.1/32, since the 127.0.0.0/8 it gets on
//! "up" would make every 127.x address local; and addresses are added with `scope global`,
//! since iproute2 gives 127.x addresses host scope, which MASQUERADE and source selection
//! skip.
//!
//! The NATs and what RFC 5780 must report for them (RFC 4787 terms):
//!
//! | router rules | mapping | filtering |
//! |---|---|---|
//! | none (routed) | no NAT | endpoint-independent |
//! | `MASQUERADE` | endpoint-independent (conntrack keeps the port when it can) | address-and-port-dependent (only conntrack replies pass) |
//! | `MASQUERADE --random-fully` | address-and-port-dependent (a new port per flow) | address-and-port-dependent |
//! | static `SNAT` + `DNAT` of one port ("full cone") | endpoint-independent | endpoint-independent |
//! | the same + a `recent` match passing only addresses the client sent to | endpoint-independent | address-dependent |
//!
//! Needs root, `ip` (iproute2), `iptables`, and for the cross-check `turnutils_natdiscovery`
//! (coturn); `.ci/run` installs them. A missing tool fails the test with the install
//! command: it is never a skip.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

const SERVER_PRIMARY: &str = "127.0.1.1";
const SERVER_ALTERNATE: &str = "127.0.1.2";
const ROUTER_OUTSIDE: &str = "127.0.1.254";
const ROUTER_INSIDE: &str = "127.0.2.1";
const CLIENT: &str = "127.0.2.2";
const STUN_PORT: u16 = 3478;
const ALTERNATE_PORT: u16 = 3479;
/// The client's port in the static-mapping (cone) cases.
const CONE_PORT: u16 = 40000;

/// One unanswered nat-check test waits this long; a check against a filtering NAT waits
/// out two of them.
const NAT_CHECK_TIMEOUT_MS: u64 = 1500;
/// Bound on any one command (ip, iptables, sysctl).
const COMMAND_LIMIT: Duration = Duration::from_secs(10);
/// Bound on nat-check and turnutils_natdiscovery.
const CHECK_LIMIT: Duration = Duration::from_secs(40);
/// Bound on the server's start-up.
const START_LIMIT: Duration = Duration::from_secs(10);

/// The full path of a tool, or a loud failure saying how to install it.
fn tool(name: &str, install: &str) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"]);
    for dir in dirs.filter(|dir| !dir.is_empty()) {
        let candidate = format!("{dir}/{name}");
        if Path::new(&candidate).is_file() {
            return candidate;
        }
    }
    panic!("{name} is not installed; install it with `{install}` (.ci/run does)");
}

/// Runs a command to completion, killing it after `limit`.
fn run(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A network namespace, deleted when dropped (so also when a test fails).
struct Netns {
    name: String,
}

impl Netns {
    fn create(name: String) -> Netns {
        let ip = tool("ip", "apt-get install -y iproute2");
        let output = run(
            Command::new(ip).args(["netns", "add", &name]),
            COMMAND_LIMIT,
        );
        assert!(
            output.status.success(),
            "ip netns add {name}: {} (the NAT tests need root)",
            text(&output)
        );
        Netns { name }
    }

    /// A command run inside the namespace.
    fn exec(&self, program: &str) -> Command {
        let mut command = Command::new(tool("ip", "apt-get install -y iproute2"));
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs `program args` inside the namespace and fails the test if it fails.
    fn must(&self, program: &str, args: &[&str]) {
        let output = run(self.exec(program).args(args), COMMAND_LIMIT);
        assert!(
            output.status.success(),
            "in {}: {program} {}: {}",
            self.name,
            args.join(" "),
            text(&output)
        );
    }

    /// `ip ARGS...` inside the namespace.
    fn ip(&self, args: &[&str]) {
        self.must(&tool("ip", "apt-get install -y iproute2"), args);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the name frees the namespace, and with it its veth ends, once no
        // process is left in it (the server guard is dropped first; see `Lab`).
        let _ = run(
            Command::new(tool("ip", "apt-get install -y iproute2"))
                .args(["netns", "del", &self.name]),
            COMMAND_LIMIT,
        );
    }
}

/// The switchboard server as a child process; killed when dropped.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The three namespaces and the server. Fields drop in order: the server first, then the
/// namespaces.
struct Lab {
    server: Option<Server>,
    client: Netns,
    router: Netns,
    server_ns: Netns,
    iptables: String,
}

impl Lab {
    /// Builds the topology of the module docs, routed but not yet translating.
    fn build(tag: &str) -> Lab {
        let iptables = tool("iptables", "apt-get install -y iptables");
        let name = |role: &str| format!("sbnat-{}-{tag}-{role}", std::process::id());
        let lab = Lab {
            server: None,
            client: Netns::create(name("c")),
            router: Netns::create(name("r")),
            server_ns: Netns::create(name("s")),
            iptables,
        };
        let sysctl = tool("sysctl", "apt-get install -y procps");
        for ns in [&lab.server_ns, &lab.router, &lab.client] {
            ns.must(
                &sysctl,
                &[
                    "-qw",
                    "net.ipv4.conf.all.route_localnet=1",
                    "net.ipv4.conf.default.route_localnet=1",
                ],
            );
            ns.ip(&["addr", "add", "127.0.0.1/32", "dev", "lo"]);
            ns.ip(&["link", "set", "lo", "up"]);
            // "up" adds 127.0.0.1/8 and with it a local route for all of 127/8.
            ns.ip(&["addr", "del", "127.0.0.1/8", "dev", "lo"]);
        }
        lab.router.must(&sysctl, &["-qw", "net.ipv4.ip_forward=1"]);
        // Each pair is created with its ends already in their namespaces, so the names
        // never meet in the root namespace (tests run in parallel).
        let ip = tool("ip", "apt-get install -y iproute2");
        for (a, a_ns, b, b_ns) in [
            ("sbs0", &lab.server_ns, "sbr0", &lab.router),
            ("sbc0", &lab.client, "sbr1", &lab.router),
        ] {
            let output = run(
                Command::new(&ip).args([
                    "link", "add", a, "netns", &a_ns.name, "type", "veth", "peer", "name", b,
                    "netns", &b_ns.name,
                ]),
                COMMAND_LIMIT,
            );
            assert!(output.status.success(), "veth {a}/{b}: {}", text(&output));
        }
        let global = |ns: &Netns, address: &str, dev: &str| {
            ns.ip(&["addr", "add", address, "dev", dev, "scope", "global"]);
            ns.ip(&["link", "set", dev, "up"]);
        };
        global(&lab.server_ns, &format!("{SERVER_PRIMARY}/24"), "sbs0");
        global(&lab.server_ns, &format!("{SERVER_ALTERNATE}/24"), "sbs0");
        global(&lab.router, &format!("{ROUTER_OUTSIDE}/24"), "sbr0");
        global(&lab.router, &format!("{ROUTER_INSIDE}/24"), "sbr1");
        global(&lab.client, &format!("{CLIENT}/24"), "sbc0");
        // Only needed without NAT: with it the server answers the router's own address.
        lab.server_ns
            .ip(&["route", "add", "127.0.2.0/24", "via", ROUTER_OUTSIDE]);
        lab.client
            .ip(&["route", "add", "default", "via", ROUTER_INSIDE]);
        lab
    }

    /// `iptables -w 5 ARGS...` in the router namespace.
    fn iptables(&self, args: &[&str]) {
        let mut all = vec!["-w", "5"];
        all.extend_from_slice(args);
        self.router.must(&self.iptables, &all);
    }

    /// The router's rules, for failure messages.
    fn rules(&self) -> String {
        let save = tool("iptables-save", "apt-get install -y iptables");
        text(&run(&mut self.router.exec(&save), COMMAND_LIMIT))
    }

    /// Starts switchboard in the server namespace with RFC 5780 on both addresses and waits
    /// for its "switchboard started" line.
    fn start_server(&mut self) {
        let mut child = self
            .server_ns
            .exec(BIN)
            .args([
                "serve",
                "--listen",
                &format!("{SERVER_PRIMARY}:0"),
                "--admin-listen",
                "127.0.0.1:0",
                "--shards",
                "1",
                "--log-format",
                "json",
                "--stun-listen",
                &format!("{SERVER_PRIMARY}:{STUN_PORT}"),
            ])
            .env(
                "SWITCHBOARD_STUN_ALTERNATE_LISTEN",
                format!("{SERVER_ALTERNATE}:{ALTERNATE_PORT}"),
            )
            .env("SWITCHBOARD_STUN_RATE_PER_SECOND", "100000")
            .env("SWITCHBOARD_STUN_BURST_MAX", "100000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchboard");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining after start-up so the child never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        self.server = Some(Server { child });
        let deadline = Instant::now() + START_LIMIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("switchboard started") => return,
                Ok(line) => seen.push(line),
                Err(_) => {
                    panic!("switchboard did not start within {START_LIMIT:?}; its log: {seen:#?}")
                }
            }
        }
    }

    /// Runs `switchboard nat-check --json` in the client namespace and returns its answer.
    fn nat_check(&self, bind: &str) -> serde_json::Value {
        let started = Instant::now();
        let output = run(
            self.client.exec(BIN).args([
                "nat-check",
                "--json",
                "--bind",
                bind,
                "--timeout-ms",
                &NAT_CHECK_TIMEOUT_MS.to_string(),
                &format!("{SERVER_PRIMARY}:{STUN_PORT}"),
            ]),
            CHECK_LIMIT,
        );
        let printed = text(&output);
        assert!(
            output.status.success(),
            "nat-check failed after {:?}:\n{printed}\nrouter rules:\n{}",
            started.elapsed(),
            self.rules()
        );
        serde_json::from_str(String::from_utf8_lossy(&output.stdout).trim())
            .unwrap_or_else(|e| panic!("nat-check --json printed no JSON ({e}):\n{printed}"))
    }

    /// Runs coturn's RFC 5780 client in the client namespace.
    fn natdiscovery(&self) -> String {
        let natdiscovery = tool("turnutils_natdiscovery", "apt-get install -y coturn");
        let output = run(
            self.client.exec(&natdiscovery).args([
                "-m",
                "-f",
                "-p",
                &STUN_PORT.to_string(),
                SERVER_PRIMARY,
            ]),
            CHECK_LIMIT,
        );
        text(&output)
    }
}

/// Asserts what nat-check reported, with the whole report and the rules on failure.
fn expect(lab: &Lab, report: &serde_json::Value, nat: bool, mapping: &str, filtering: &str) {
    let why = || {
        format!(
            "nat-check reported:\n{report:#}\nrouter rules:\n{}",
            lab.rules()
        )
    };
    assert_eq!(report["rfc5780"], true, "{}", why());
    assert_eq!(
        report["other_address"],
        format!("{SERVER_ALTERNATE}:{ALTERNATE_PORT}"),
        "{}",
        why()
    );
    assert_eq!(report["nat"], nat, "{}", why());
    let mapped: std::net::SocketAddr = report["mapped"]
        .as_str()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no mapped address; {}", why()));
    let seen_as = if nat { ROUTER_OUTSIDE } else { CLIENT };
    assert_eq!(mapped.ip().to_string(), seen_as, "{}", why());
    assert_eq!(report["mapping"], mapping, "{}", why());
    assert_eq!(report["filtering"], filtering, "{}", why());
}

#[test]
fn routed_without_nat_is_seen_as_no_nat() {
    let mut lab = Lab::build("none");
    lab.start_server();
    let report = lab.nat_check("0.0.0.0:0");
    expect(
        &lab,
        &report,
        false,
        "endpoint-independent",
        "endpoint-independent",
    );
    assert_eq!(report["mapped"], report["local"]);
}

#[test]
fn masquerade_maps_independently_and_filters_by_address_and_port() {
    let mut lab = Lab::build("masq");
    lab.iptables(&[
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-o",
        "sbr0",
        "-j",
        "MASQUERADE",
    ]);
    lab.start_server();
    let report = lab.nat_check("0.0.0.0:0");
    // Linux conntrack keeps the source port when the translated tuple is free, and uses
    // the same one towards every destination: endpoint-independent mapping. Inbound
    // packets pass only as replies of an existing conntrack entry, i.e. from exactly the
    // address and port the client sent to.
    expect(
        &lab,
        &report,
        true,
        "endpoint-independent",
        "address-and-port-dependent",
    );
    let local: std::net::SocketAddr = report["local"].as_str().unwrap().parse().unwrap();
    let mapped: std::net::SocketAddr = report["mapped"].as_str().unwrap().parse().unwrap();
    assert_eq!(mapped.port(), local.port(), "MASQUERADE keeps a free port");

    // coturn's RFC 5780 client agrees.
    let other = lab.natdiscovery();
    assert!(
        other.contains("NAT with Endpoint Independent Mapping"),
        "turnutils_natdiscovery:\n{other}"
    );
    assert!(
        other.contains("NAT with Address and Port Dependent Filtering"),
        "turnutils_natdiscovery:\n{other}"
    );
}

#[test]
fn masquerade_random_fully_maps_by_address_and_port() {
    let mut lab = Lab::build("rand");
    lab.iptables(&[
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-o",
        "sbr0",
        "-j",
        "MASQUERADE",
        "--random-fully",
    ]);
    lab.start_server();
    let report = lab.nat_check("0.0.0.0:0");
    // A fresh random port per conntrack entry, so per destination address and port: the
    // "symmetric" NAT. (A repeat of the same port for two destinations is a 1 in 64k
    // chance, and would show as address-dependent.)
    expect(
        &lab,
        &report,
        true,
        "address-and-port-dependent",
        "address-and-port-dependent",
    );
    let other = lab.natdiscovery();
    assert!(
        other.contains("NAT with Address and Port Dependent Mapping"),
        "turnutils_natdiscovery:\n{other}"
    );
    assert!(
        other.contains("NAT with Address and Port Dependent Filtering"),
        "turnutils_natdiscovery:\n{other}"
    );
}

/// A static one-port mapping both ways: `SNAT` of the client's port to the same port
/// outside, and `DNAT` of anything arriving there back to the client.
fn full_cone(lab: &Lab) {
    let port = CONE_PORT.to_string();
    lab.iptables(&[
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-o",
        "sbr0",
        "-p",
        "udp",
        "-s",
        CLIENT,
        "--sport",
        &port,
        "-j",
        "SNAT",
        "--to-source",
        &format!("{ROUTER_OUTSIDE}:{port}"),
    ]);
    lab.iptables(&[
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-i",
        "sbr0",
        "-p",
        "udp",
        "--dport",
        &port,
        "-j",
        "DNAT",
        "--to-destination",
        &format!("{CLIENT}:{port}"),
    ]);
}

#[test]
fn static_snat_and_dnat_is_a_full_cone() {
    let mut lab = Lab::build("cone");
    full_cone(&lab);
    lab.start_server();
    let report = lab.nat_check(&format!("{CLIENT}:{CONE_PORT}"));
    expect(
        &lab,
        &report,
        true,
        "endpoint-independent",
        "endpoint-independent",
    );
    assert_eq!(
        report["mapped"],
        format!("{ROUTER_OUTSIDE}:{CONE_PORT}"),
        "{report:#}"
    );
}

#[test]
fn a_filter_on_contacted_addresses_is_address_dependent() {
    let mut lab = Lab::build("rcone");
    full_cone(&lab);
    // Outbound: remember the destination address. Inbound: replies, or anything from a
    // remembered address (any port), pass; the rest is dropped.
    lab.iptables(&[
        "-A",
        "FORWARD",
        "-i",
        "sbr1",
        "-o",
        "sbr0",
        "-m",
        "recent",
        "--name",
        "contacted",
        "--rdest",
        "--set",
        "-j",
        "ACCEPT",
    ]);
    lab.iptables(&[
        "-A",
        "FORWARD",
        "-i",
        "sbr0",
        "-o",
        "sbr1",
        "-m",
        "conntrack",
        "--ctstate",
        "ESTABLISHED,RELATED",
        "-j",
        "ACCEPT",
    ]);
    lab.iptables(&[
        "-A",
        "FORWARD",
        "-i",
        "sbr0",
        "-o",
        "sbr1",
        "-m",
        "recent",
        "--name",
        "contacted",
        "--rsource",
        "--rcheck",
        "-j",
        "ACCEPT",
    ]);
    lab.iptables(&["-A", "FORWARD", "-i", "sbr0", "-o", "sbr1", "-j", "DROP"]);
    lab.start_server();
    let report = lab.nat_check(&format!("{CLIENT}:{CONE_PORT}"));
    expect(
        &lab,
        &report,
        true,
        "endpoint-independent",
        "address-dependent",
    );
}
