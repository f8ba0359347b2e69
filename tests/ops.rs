//! Operations: the admin listener's metrics and readiness, sd_notify as systemd sees it,
//! the unit file as `systemd-analyze` judges it, `check-config`, and the package layout.
//!
//! Real sockets and processes on loopback; every wait is bounded.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{config, connect, Server, DRIVERS};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("switchboard-ops-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One HTTP/1.1 request to the admin listener: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("a whole response");
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(body.len(), len, "{head}");
    (status, body.to_owned())
}

/// One sample of the exposition: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A strict parser for the Prometheus text format as we emit it: every line is
/// `# HELP name text`, `# TYPE name counter|gauge`, or `name{k="v",...} value` of a family
/// whose HELP and TYPE came first; names start with `switchboard_`; counters end in
/// `_total`; label sets are unique per family.
fn parse_exposition(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "exposition must end with a newline");
    let mut helped = std::collections::HashSet::new();
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
            assert!(valid_name(name) && !help.is_empty(), "{}", at());
            assert!(helped.insert(name.to_owned()), "second HELP: {}", at());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
            assert!(helped.contains(name), "TYPE before HELP: {}", at());
            assert!(kind == "counter" || kind == "gauge", "{}", at());
            assert_eq!(kind == "counter", name.ends_with("_total"), "{}", at());
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "second TYPE: {}",
                at()
            );
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{}", at());
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{}", at()));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {}", at()));
        assert!(value.is_finite() && value >= 0.0, "{}", at());
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{}", at()));
                let mut labels = BTreeMap::new();
                for pair in body.split(',') {
                    let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{}", at()));
                    assert!(valid_name(k), "label name: {}", at());
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or_else(|| panic!("label value: {}", at()));
                    assert!(!v.contains(['"', '\\', '\n']), "{}", at());
                    assert!(
                        labels.insert(k.to_owned(), v.to_owned()).is_none(),
                        "{}",
                        at()
                    );
                }
                (name, labels)
            }
        };
        assert!(valid_name(name), "{}", at());
        assert!(name.starts_with("switchboard_"), "{}", at());
        assert!(typed.contains_key(name), "sample before its TYPE: {}", at());
        assert!(seen.insert(series.to_owned()), "duplicate series: {}", at());
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

/// Sum of `name` over every sample whose labels include all of `want`.
fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// Scrapes until `ok` holds (shards publish at the end of their loop turn) or 5 s pass.
fn scrape_until(admin: SocketAddr, ok: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = get(admin, "/metrics");
        assert_eq!(status, 200);
        let samples = parse_exposition(&body);
        if ok(&samples) || Instant::now() > deadline {
            return samples;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const RELAYED: usize = 40;

#[test]
fn metrics_count_what_clients_did() {
    for driver in DRIVERS {
        let server = Server::start(&config(driver, 2));
        let running = server.running.as_ref().unwrap();
        let admin = running.admin_addr.expect("admin listener on");
        let want_driver = running.driver.as_str();
        let url = server.url();
        runtime().block_on(async move {
            let mut a = connect(&url).await;
            let mut b = connect(&url).await;
            a.join("ops").await;
            b.join("ops").await;
            assert_eq!(a.recv().await["type"], "peer-joined");
            for n in 0..RELAYED {
                a.send(&format!(
                    r#"{{"type":"message","target":"{}","n":{n}}}"#,
                    b.id
                ))
                .await;
            }
            for n in 0..RELAYED {
                let m = b.recv().await;
                assert_eq!(
                    (m["type"].as_str(), m["n"].as_u64()),
                    (Some("message"), Some(n as u64))
                );
            }
            a.send("not json").await;
            assert_eq!(a.recv().await["code"], "bad-json");

            let s = scrape_until(admin, |s| {
                sum(s, "switchboard_frames_in_total", &[("type", "message")]) >= RELAYED as f64
                    && sum(s, "switchboard_errors_total", &[("code", "bad-json")]) >= 1.0
                    && sum(s, "switchboard_sessions", &[]) >= 2.0
            });
            let by_type = |t| sum(&s, "switchboard_frames_in_total", &[("type", t)]);
            assert_eq!(by_type("message"), RELAYED as f64, "{driver:?}");
            assert_eq!(by_type("join"), 2.0);
            assert!(sum(&s, "switchboard_relayed_total", &[]) >= RELAYED as f64);
            assert_eq!(sum(&s, "switchboard_sessions", &[]), 2.0);
            assert_eq!(sum(&s, "switchboard_rooms", &[]), 1.0);
            assert_eq!(sum(&s, "switchboard_open_connections", &[]), 2.0);
            assert_eq!(sum(&s, "switchboard_accepted_total", &[]), 2.0);
            assert_eq!(
                sum(&s, "switchboard_errors_total", &[("code", "bad-json")]),
                1.0
            );
            assert_eq!(sum(&s, "switchboard_errors_total", &[]), 1.0);
            assert!(sum(&s, "switchboard_received_bytes_total", &[]) > 0.0);
            assert!(sum(&s, "switchboard_sent_bytes_total", &[]) > 0.0);
            assert!(sum(&s, "switchboard_frames_out_total", &[]) >= RELAYED as f64);
            assert!(sum(&s, "switchboard_loop_turns_total", &[]) > 0.0);
            assert_eq!(sum(&s, "switchboard_ready", &[]), 1.0);
            assert_eq!(sum(&s, "switchboard_shards", &[]), 2.0);
            assert_eq!(
                sum(&s, "switchboard_driver_info", &[("driver", want_driver)]),
                1.0
            );
            let version = env!("CARGO_PKG_VERSION");
            assert_eq!(
                sum(&s, "switchboard_build_info", &[("version", version)]),
                1.0
            );
            // Every per-shard family has one series per shard (and per label value).
            for s in s.iter().filter(|s| s.name == "switchboard_sessions") {
                assert!(["0", "1"].contains(&s.labels["shard"].as_str()));
            }
            let closes: Vec<&str> = s
                .iter()
                .filter(|s| s.name == "switchboard_closes_total" && s.labels["shard"] == "0")
                .map(|s| s.labels["code"].as_str())
                .collect();
            assert_eq!(closes.len(), 9);
            assert_eq!(closes.last(), Some(&"other"));

            // Sessions end with their sockets (tests run with no resume grace).
            drop(a);
            drop(b);
            let s = scrape_until(admin, |s| sum(s, "switchboard_sessions", &[]) == 0.0);
            assert_eq!(sum(&s, "switchboard_sessions", &[]), 0.0, "{driver:?}");
        });
        drop(server);
    }
}

#[test]
fn health_and_readiness_follow_the_server() {
    let server = Server::start(&config(common::DRIVERS[0], 2));
    let running = server.running.as_ref().unwrap();
    let admin = running.admin_addr.unwrap();
    // Ready once both shards have turned their loop (right away in practice).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut ready = get(admin, "/readyz");
    while ready.0 != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        ready = get(admin, "/readyz");
    }
    assert_eq!(ready, (200, "ready\n".into()));
    // Idle shards keep turning (their wait is bounded), so readiness holds while idle.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get(admin, "/readyz").0, 200);
    assert_eq!(get(admin, "/healthz"), (200, "ok\n".into()));
    assert_eq!(get(admin, "/metrics?x=1").0, 200);
    assert_eq!(get(admin, "/nope").0, 404);
    // Not GET: 405.
    let r = common::http(admin, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 405"), "{r}");
    // A head past the cap: 431, and the admin thread goes on serving.
    let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(big.as_bytes());
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    // A client that sends nothing holds the thread for at most the I/O timeout.
    let idle = TcpStream::connect(admin).unwrap();
    let t = Instant::now();
    assert_eq!(get(admin, "/healthz").0, 200);
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    drop(idle);
    // Once a stop is requested the server is no longer ready, and says why.
    running.stop();
    let (status, body) = get(admin, "/readyz");
    assert_eq!(status, 503);
    assert!(body.contains("stopping"), "{body}");
    drop(server);
    // The admin listener closes with the shards.
    assert!(TcpStream::connect(admin).is_err());
}

/// Receives datagrams until one contains `want` or `within` passes; returns all seen.
fn wait_for(sock: &UnixDatagram, want: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = msg.lines().any(|l| l == want);
                seen.push(msg);
                if hit {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no {want} within {within:?}; saw {seen:?}");
}

fn spawn_serve(notify_socket: &str, watchdog_usec: Option<&str>) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--stun-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ])
    .env("NOTIFY_SOCKET", notify_socket)
    .env_remove("WATCHDOG_PID")
    .env_remove("WATCHDOG_USEC")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if let Some(w) = watchdog_usec {
        cmd.env("WATCHDOG_USEC", w);
    }
    let mut child = cmd.spawn().expect("spawn switchboard");
    // Drain the logs so the child never blocks on a full pipe.
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(stderr).lines().map_while(Result::ok) {});
    child
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn sd_notify_ready_watchdog_and_stopping() {
    let dir = TempDir::new("notify");
    let path = dir.0.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut child = spawn_serve(path.to_str().unwrap(), Some("200000"));
    let seen = wait_for(&sock, "READY=1", Duration::from_secs(10));
    let ready = seen.last().unwrap();
    assert!(ready.contains("STATUS=serving on 127.0.0.1:"), "{ready}");
    // Pings at half the 200 ms interval: at least 5 in a second.
    let t = Instant::now();
    for _ in 0..5 {
        wait_for(&sock, "WATCHDOG=1", Duration::from_secs(2));
    }
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    sigterm(&child);
    wait_for(&sock, "STOPPING=1", Duration::from_secs(5));
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status}");
}

#[test]
fn sd_notify_reaches_an_abstract_socket_and_no_watchdog_without_watchdog_usec() {
    let name = format!("switchboard-ops-{}", std::process::id());
    let addr = {
        use std::os::linux::net::SocketAddrExt as _;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap()
    };
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    let mut child = spawn_serve(&format!("@{name}"), None);
    let seen = wait_for(&sock, "READY=1", Duration::from_secs(10));
    assert!(seen.iter().all(|m| !m.contains("WATCHDOG=1")), "{seen:?}");
    // No watchdog pings without WATCHDOG_USEC.
    sock.set_read_timeout(Some(Duration::from_millis(600)))
        .unwrap();
    let mut buf = [0u8; 256];
    if let Ok(n) = sock.recv(&mut buf) {
        panic!("unexpected {:?}", String::from_utf8_lossy(&buf[..n]));
    }
    sigterm(&child);
    wait_for(&sock, "STOPPING=1", Duration::from_secs(5));
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn systemd_analyze() -> &'static str {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "systemd-analyze not found: install Debian's `systemd` package (.ci/run does)"
    );
    "systemd-analyze"
}

/// The shipped unit with ExecStart pointing at the binary under test, in a temp dir.
fn unit_for_test(dir: &TempDir) -> PathBuf {
    let unit = std::fs::read_to_string(repo("systemd/switchboard.service")).unwrap();
    assert!(unit.contains(
        "\nExecStart=/usr/bin/switchboard serve --config /etc/switchboard/switchboard.toml"
    ));
    let unit = unit.replace(
        "ExecStart=/usr/bin/switchboard",
        &format!("ExecStart={BIN}"),
    );
    let path = dir.0.join("switchboard.service");
    std::fs::write(&path, unit).unwrap();
    path
}

fn seconds_of(unit: &str, key: &str) -> u64 {
    let v = unit
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"));
    v.strip_suffix('s')
        .unwrap_or(v)
        .parse()
        .unwrap_or_else(|_| panic!("{key}={v}: expected seconds"))
}

#[test]
fn unit_verifies_and_is_hardened() {
    let analyze = systemd_analyze();
    let dir = TempDir::new("unit");
    let unit = unit_for_test(&dir);
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed: {stderr}");
    assert!(
        !stderr.contains("switchboard.service"),
        "verify complains about the unit: {stderr}"
    );

    let out = Command::new(analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level for switchboard.service:"))
        .unwrap_or_else(|| {
            panic!(
                "no exposure line: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    eprintln!("{line}");
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{stdout}");

    // The stop timeout must outlast the drain, or systemd kills a draining server.
    let text = std::fs::read_to_string(repo("systemd/switchboard.service")).unwrap();
    let drain_ms = switchboard::server::Config::embedded()
        .server
        .drain_timeout_ms;
    assert!(seconds_of(&text, "TimeoutStopSec") * 1000 > drain_ms + 1000);
    assert!(
        seconds_of(&text, "WatchdogSec") * 1000 > 2 * switchboard::server::admin::LOOP_STALL_MS
    );
    for key in [
        "Type=notify",
        "DynamicUser=yes",
        "LimitMEMLOCK=infinity",
        "Restart=on-failure",
    ] {
        assert!(text.lines().any(|l| l == key), "missing {key}");
    }
}

fn check_config(file: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("check-config").arg(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_prints_validates_and_applies_the_environment() {
    let good = repo("systemd/switchboard.toml");
    let (code, out, err) = check_config(&good, &[]);
    assert_eq!(code, 0, "{err}");
    // The output is itself a complete configuration.
    let printed = switchboard::server::Config::parse(&out, "<stdout>").unwrap();
    assert_eq!(printed, switchboard::server::Config::embedded());
    assert!(
        out.contains("[admin]") && out.contains("listen = \"127.0.0.1:9090\""),
        "{out}"
    );

    let (code, out, err) = check_config(
        &good,
        &[
            ("SWITCHBOARD_SERVER_LISTEN", "0.0.0.0:8443"),
            ("SWITCHBOARD_ADMIN_LISTEN", "10.0.0.1:9100"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("listen = \"0.0.0.0:8443\""), "{out}");
    assert!(out.contains("listen = \"10.0.0.1:9100\""), "{out}");

    let dir = TempDir::new("config");
    let bad = dir.0.join("bad.toml");
    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace("[admin]\n", "[admin]\nbogus_key = 1\n");
    let line = text.lines().position(|l| l == "bogus_key = 1").unwrap() + 1;
    std::fs::write(&bad, &text).unwrap();
    let (code, _, err) = check_config(&bad, &[]);
    assert_eq!(code, 2, "{err}");
    let want = format!("{}:{line}:1:", bad.display());
    assert!(err.contains(&want), "want {want} in {err}");
    assert!(err.contains("bogus_key"), "{err}");
}

#[test]
fn package_metadata_ships_binary_unit_config_and_docs() {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo("Cargo.toml")).unwrap()).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets: Vec<(String, String)> = deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a[0].as_str().unwrap().to_owned(),
                a[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (src, _) in &assets {
        if !src.starts_with("target/") {
            assert!(repo(src).is_file(), "asset {src} missing");
        }
    }
    let dests: Vec<&str> = assets.iter().map(|(_, d)| d.as_str()).collect();
    for want in [
        "usr/bin/",
        "etc/switchboard/switchboard.toml",
        "usr/share/doc/switchboard/README.md",
        "usr/share/doc/switchboard/protocol.md",
    ] {
        assert!(dests.contains(&want), "{want} not shipped: {dests:?}");
    }
    assert_eq!(
        deb["conf-files"].as_array().unwrap()[0].as_str(),
        Some("/etc/switchboard/switchboard.toml")
    );
    let units = &deb["systemd-units"];
    assert_eq!(units["enable"].as_bool(), Some(false));
    let dir = units["unit-scripts"].as_str().unwrap();
    assert!(repo(dir).join("switchboard.service").is_file());
}
