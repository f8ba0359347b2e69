//! The STUN server of the real binary against real clients: coturn's
//! `turnutils_stunclient` and `turnutils_natdiscovery`, Debian's RFC 3489
//! `stun` client, and aioice; STUN over TCP, the amplification rule and the
//! rate limiter over real sockets; and RFC 5780 inside a network namespace
//! this test creates (and deletes, even on failure).
//!
//! The tools are installed by `.ci/run` (apt: coturn, stun-client, iproute2;
//! pip: aioice). A missing tool fails the test with the install command: it
//! is never a skip. The namespace test needs root, as CI has.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use switchboard::proto::stun::{
    encode_binding_request, encode_classic_binding_request, frame_len, BindingRequest,
    ClassicBindingRequest, ClassicMessage, ClassicTransactionId, StunMessage, TransactionId,
};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// A generous rate for tests that are not about the rate limiter.
const RATE_UNLIMITED: &str = "100000";

/// The server binary as a child process; killed when dropped.
struct Server {
    child: Child,
    stun: SocketAddr,
}

impl Server {
    /// Starts `switchboard serve` with STUN on `stun`, optionally inside a
    /// network namespace, and waits for its "switchboard started" log line.
    fn start(stun: SocketAddr, env: &[(&str, &str)], netns: Option<&str>) -> Server {
        let mut command = match netns {
            Some(name) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", name, BIN]);
                command
            }
            None => Command::new(BIN),
        };
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(["--shards", "2", "--log-format", "json", "--stun-listen"])
            .arg(stun.to_string())
            .env("SWITCHBOARD_STUN_RATE_PER_SECOND", RATE_UNLIMITED)
            .env("SWITCHBOARD_STUN_BURST_MAX", RATE_UNLIMITED)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn switchboard");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Keep draining after start-up so the child never blocks on a full pipe.
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(line) if line.contains("switchboard started") => break,
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("switchboard did not start; its log: {seen:#?}");
                }
            }
        }
        Server { child, stun }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (the server binds both).
/// The server's sockets use SO_REUSEPORT, so only a port nothing holds is safe.
fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

fn local_server(env: &[(&str, &str)]) -> Server {
    let stun = SocketAddr::from(([127, 0, 0, 1], free_port()));
    Server::start(stun, env, None)
}

/// The full path of a tool, or a loud failure saying how to install it.
/// `PATH` comes first, so the `python3` that has aioice is the one found;
/// the sbin directories follow, since `ip` lives there.
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

/// The address after `marker` on the first line holding it.
fn address_after(output: &str, marker: &str) -> Option<SocketAddr> {
    let line = output.lines().find(|line| line.contains(marker))?;
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

fn binding_request(tid: u8, fingerprint: bool) -> Vec<u8> {
    let mut out = [0u8; 64];
    let request = BindingRequest {
        transaction_id: TransactionId([tid; 12]),
        fingerprint,
        ..BindingRequest::default()
    };
    let len = encode_binding_request(&mut out, &request).unwrap();
    out[..len].to_vec()
}

fn client_socket(read_timeout_ms: u64) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(read_timeout_ms)))
        .unwrap();
    socket
}

fn ask(socket: &UdpSocket, server: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
    socket.send_to(request, server).unwrap();
    let mut buf = [0u8; 1500];
    let (len, from) = socket.recv_from(&mut buf).ok()?;
    assert_eq!(from, server, "answers come from the address asked");
    Some(buf[..len].to_vec())
}

#[test]
fn turnutils_stunclient_gets_the_mapped_address() {
    let stunclient = tool("turnutils_stunclient", "apt-get install -y coturn");
    let server = local_server(&[]);
    let output = run(
        Command::new(stunclient).args(["-p", &server.stun.port().to_string(), "127.0.0.1"]),
        Duration::from_secs(20),
    );
    let output = text(&output);
    let mapped = address_after(&output, "UDP reflexive addr:")
        .unwrap_or_else(|| panic!("no reflexive address in:\n{output}"));
    assert_eq!(mapped.ip().to_string(), "127.0.0.1", "{output}");
    assert_ne!(mapped.port(), 0);
}

#[test]
fn debian_stun_client_gets_a_classic_binding_answer() {
    // stun-client 0.97 speaks RFC 3489 only. Its `-p` is the *source* port;
    // the server's port goes after the host.
    let stun = tool("stun", "apt-get install -y stun-client");
    let server = local_server(&[]);
    let output = run(
        Command::new(stun).args([&server.stun.to_string(), "-v"]),
        Duration::from_secs(30),
    );
    // Its exit status is the NAT type it concluded, not success or failure.
    let output = text(&output);
    let mapped = address_after(&output, "MappedAddress = ")
        .unwrap_or_else(|| panic!("no MappedAddress in:\n{output}"));
    assert_eq!(mapped.ip().to_string(), "127.0.0.1", "{output}");
    assert!(output.contains("test I = 1"), "test I answered:\n{output}");
    // 257 = 0x0101, a Binding success response.
    assert!(output.contains("Received message of type 257"), "{output}");
}

#[test]
fn aioice_gets_the_xor_mapped_address() {
    let python = tool("python3", "apt-get install -y python3");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/stun/aioice_binding.py");
    let check = run(
        Command::new(&python).args(["-c", "import aioice"]),
        Duration::from_secs(20),
    );
    assert!(
        check.status.success(),
        "aioice is not installed; install it with `python3 -m pip install aioice==0.13.0` \
         (.ci/run does):\n{}",
        text(&check)
    );
    let server = local_server(&[]);
    let output = run(
        Command::new(&python).args([script, "127.0.0.1", &server.stun.port().to_string()]),
        Duration::from_secs(30),
    );
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    let mapped = address_after(&printed, "XOR-MAPPED-ADDRESS ").expect("a mapping");
    let local = address_after(&printed, "LOCAL ").expect("the local address");
    assert_eq!(mapped, local, "{printed}");
    assert_eq!(address_after(&printed, "FROM "), Some(server.stun));
}

#[test]
fn stun_over_tcp_answers_back_to_back_requests() {
    // turnutils_stunclient has no TCP mode, so this client is ours.
    let server = local_server(&[]);
    let mut stream = TcpStream::connect(server.stun).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let me = stream.local_addr().unwrap();
    let mut both = binding_request(1, false);
    both.extend_from_slice(&binding_request(2, true));
    stream.write_all(&both).unwrap();
    let mut buffer = Vec::new();
    let mut answers = Vec::new();
    while answers.len() < 2 {
        match frame_len(&buffer).expect("the server speaks STUN") {
            Some(len) => answers.push(buffer.drain(..len).collect::<Vec<u8>>()),
            None => {
                let mut chunk = [0u8; 512];
                let read = stream.read(&mut chunk).expect("answers within 5 s");
                assert!(read > 0, "the server closed the connection");
                buffer.extend_from_slice(&chunk[..read]);
            }
        }
    }
    for (answer, tid) in answers.iter().zip([1u8, 2]) {
        let message = StunMessage::parse(answer).unwrap();
        assert_eq!(message.transaction_id(), TransactionId([tid; 12]));
        assert_eq!(message.xor_mapped_address(), Some(me));
    }
    assert_eq!(answers[0].len(), 32);
    assert_eq!(answers[1].len(), 40);
}

#[test]
fn answers_are_no_bigger_than_the_rules_allow() {
    let server = local_server(&[]);
    let socket = client_socket(2_000);
    let me = socket.local_addr().unwrap();

    let bare = binding_request(3, false);
    assert_eq!(bare.len(), 20);
    let answer = ask(&socket, server.stun, &bare).expect("an answer");
    assert_eq!(answer.len(), 32, "XOR-MAPPED-ADDRESS only");
    assert_eq!(
        StunMessage::parse(&answer).unwrap().xor_mapped_address(),
        Some(me)
    );

    let with_fingerprint = binding_request(4, true);
    assert_eq!(with_fingerprint.len(), 28);
    let answer = ask(&socket, server.stun, &with_fingerprint).expect("an answer");
    assert_eq!(answer.len(), 40, "XOR-MAPPED-ADDRESS and FINGERPRINT");
    StunMessage::parse(&answer)
        .unwrap()
        .verify_fingerprint()
        .unwrap();

    // A bare RFC 3489 request gets a classic answer of the same size.
    let mut classic = [0u8; 20];
    let tid = ClassicTransactionId(*b"classic-request!");
    let len = encode_classic_binding_request(
        &mut classic,
        &ClassicBindingRequest {
            transaction_id: tid,
            change_request: None,
        },
    )
    .unwrap();
    let answer = ask(&socket, server.stun, &classic[..len]).expect("a classic answer");
    assert_eq!(answer.len(), 32);
    let message = ClassicMessage::parse(&answer).unwrap();
    assert_eq!(message.transaction_id(), tid);
    assert_eq!(message.mapped_address(), Some(me));

    // Garbage gets nothing, and the server still answers afterwards.
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    for garbage in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0u8; 20][..],
        &[0x17, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        &bare[..19],
    ] {
        assert_eq!(ask(&socket, server.stun, garbage), None, "{garbage:02x?}");
    }
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert!(ask(&socket, server.stun, &bare).is_some());
}

#[test]
fn rate_limiter_caps_one_source() {
    let server = local_server(&[
        ("SWITCHBOARD_STUN_RATE_PER_SECOND", "5"),
        ("SWITCHBOARD_STUN_BURST_MAX", "5"),
    ]);
    let socket = client_socket(300);
    let started = Instant::now();
    for tid in 0..50u8 {
        socket
            .send_to(&binding_request(tid, false), server.stun)
            .unwrap();
    }
    let sent_in = started.elapsed();
    let mut answers = 0;
    let mut buf = [0u8; 1500];
    while socket.recv_from(&mut buf).is_ok() {
        answers += 1;
    }
    // The burst of 5, plus at most one token earned while sending.
    let earned = 5 * sent_in.as_millis() / 1000;
    assert!(
        (5..=6 + earned).contains(&answers),
        "{answers} answers to 50 requests sent in {sent_in:?}"
    );
}

/// A network namespace, deleted when dropped (so also when a test fails).
struct Netns {
    name: String,
}

impl Netns {
    fn create(tag: &str) -> Netns {
        let ip = tool("ip", "apt-get install -y iproute2");
        let name = format!("sbtest-{}-{tag}", std::process::id());
        let netns = Netns { name };
        netns.ip(&ip, &["netns", "add", &netns.name]);
        netns
    }

    fn ip(&self, ip: &str, args: &[&str]) {
        let output = run(Command::new(ip).args(args), Duration::from_secs(10));
        assert!(
            output.status.success(),
            "ip {}: {} (the namespace tests need root)",
            args.join(" "),
            text(&output)
        );
    }

    /// `ip -n NAME ARGS...`
    fn inside(&self, args: &[&str]) {
        let ip = tool("ip", "apt-get install -y iproute2");
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        self.ip(&ip, &all);
    }

    /// A command run inside the namespace.
    fn exec(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn rfc_5780_behaviour_discovery_in_a_namespace() {
    let natdiscovery = tool("turnutils_natdiscovery", "apt-get install -y coturn");
    let stun = tool("stun", "apt-get install -y stun-client");
    // Two server addresses on a veth inside a namespace of our own: some
    // clients skip loopback adapters, and the namespace isolates the ports.
    let netns = Netns::create("5780");
    netns.inside(&["link", "set", "lo", "up"]);
    netns.inside(&[
        "link", "add", "sb5780a", "type", "veth", "peer", "name", "sb5780b",
    ]);
    netns.inside(&["link", "set", "sb5780a", "up"]);
    netns.inside(&["link", "set", "sb5780b", "up"]);
    netns.inside(&["addr", "add", "127.0.0.2/32", "dev", "sb5780a"]);
    netns.inside(&["addr", "add", "127.0.0.3/32", "dev", "sb5780a"]);
    let primary: SocketAddr = "127.0.0.2:3478".parse().unwrap();
    let _server = Server::start(
        primary,
        &[("SWITCHBOARD_STUN_ALTERNATE_LISTEN", "127.0.0.3:3479")],
        Some(&netns.name),
    );

    // Our own client. It binds 127.0.0.1: from an unbound socket the kernel
    // would pick 127.0.0.3 as the source towards 127.0.0.3, which a STUN
    // server rightly reports as a different mapping.
    let output = run(
        netns.exec(BIN).args([
            "nat-check",
            "--bind",
            "127.0.0.1:0",
            "--timeout-ms",
            "1500",
            "127.0.0.2:3478",
        ]),
        Duration::from_secs(30),
    );
    let summary = text(&output);
    assert!(output.status.success(), "nat-check failed:\n{summary}");
    assert!(
        summary.contains("mapping behaviour:   endpoint-independent"),
        "{summary}"
    );
    assert!(
        summary.contains("filtering behaviour: endpoint-independent"),
        "{summary}"
    );
    assert!(summary.contains("no NAT"), "{summary}");
    assert!(summary.contains("alternate 127.0.0.3:3479"), "{summary}");

    // coturn's RFC 5780 client agrees.
    let output = run(
        netns
            .exec(&natdiscovery)
            .args(["-m", "-f", "-L", "127.0.0.1", "-p", "3478", "127.0.0.2"]),
        Duration::from_secs(60),
    );
    let report = text(&output);
    assert!(
        report.contains("Endpoint Independent Mapping"),
        "turnutils_natdiscovery:\n{report}"
    );
    assert!(
        report.contains("Endpoint Independent Filtering"),
        "turnutils_natdiscovery:\n{report}"
    );
    assert!(
        !report.contains("Dependent"),
        "turnutils_natdiscovery:\n{report}"
    );

    // The RFC 3489 client gets its CHANGE-REQUESTs honoured and concludes
    // "Open": no NAT, no firewall.
    let output = run(
        netns
            .exec(&stun)
            .args(["127.0.0.2:3478", "-v", "-i", "127.0.0.1"]),
        Duration::from_secs(30),
    );
    let report = text(&output);
    assert!(report.contains("test I = 1"), "stun:\n{report}");
    assert!(report.contains("test II = 1"), "stun:\n{report}");
    assert!(report.contains("Primary: Open"), "stun:\n{report}");
}
