//! Interop: TURN REST credentials from `switchboard::proto::turn_rest` against a real
//! coturn (Debian `coturn`, `turnserver --use-auth-secret`), exercised with coturn's own
//! client `turnutils_uclient`.
//!
//! A good credential must get an allocation (the client's whole run succeeds and coturn
//! logs `ALLOCATE processed, success` for that username); a credential made with the wrong
//! secret, and one whose expiry has passed, must not. The test fails, never skips, when
//! coturn is not installed: `apt-get install -y coturn`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use switchboard::proto::turn_rest::credentials;

const SECRET: &[u8] = b"interop-shared-secret";
const REALM: &str = "switchboard";
/// coturn logs this once its auth and admin threads run; allocations before it can fail.
const READY_LINE: &str = "IO method (admin thread)";

/// A running `turnserver`, killed (and its scratch directory removed) on drop, so a
/// failing assertion does not leave it behind.
struct Coturn {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
    dir: PathBuf,
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Coturn {
    fn start() -> Coturn {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("sb-turn-interop-{}-{port}", std::process::id()));
        fs::create_dir_all(&dir).expect("create the scratch directory");
        let spawned = Command::new("turnserver")
            .args([
                "-n", // no configuration file
                "-v",
                "--use-auth-secret",
                &format!(
                    "--static-auth-secret={}",
                    std::str::from_utf8(SECRET).unwrap()
                ),
                &format!("--realm={REALM}"),
                "--listening-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                "--relay-ip=127.0.0.1",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--allow-loopback-peers",
                "--log-file=stdout",
                // Keep every file this instance writes in its own directory, so parallel
                // runs on one machine do not share a pid file or user database.
                &format!("--pidfile={}", dir.join("turnserver.pid").display()),
                &format!("--userdb={}", dir.join("turndb").display()),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = fs::remove_dir_all(&dir);
                panic!("turnserver not found: this test needs coturn (apt-get install -y coturn)")
            }
            Err(e) => panic!("cannot start turnserver: {e}"),
        };
        let log = Arc::new(Mutex::new(String::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let mut server = Coturn {
            child,
            port,
            log,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !server.log().contains(READY_LINE) {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "turnserver exited early ({status}); its log:\n{}",
                    server.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "turnserver not ready after 15 s; its log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Runs `turnutils_uclient` with the given credentials; returns whether it succeeded
    /// and what it printed.
    fn uclient(&self, username: &str, password: &str) -> (bool, String) {
        let out_path = self
            .dir
            .join(format!("uclient-{}.log", username.replace(':', "_")));
        let out = fs::File::create(&out_path).expect("create the client log");
        let spawned = Command::new("turnutils_uclient")
            .args([
                "-y", // client-to-client: two allocations relay to each other, no peer needed
                "-n",
                "2", // messages per client
                "-m",
                "1", // one client pair
                "-u",
                username,
                "-w",
                password,
                "-p",
                &self.port.to_string(),
                "127.0.0.1",
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!(
                    "turnutils_uclient not found: it comes with coturn (apt-get install -y coturn)"
                )
            }
            Err(e) => panic!("cannot start turnutils_uclient: {e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "turnutils_uclient still running after 60 s; its output:\n{}",
                    fs::read_to_string(&out_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (
            status.success(),
            fs::read_to_string(&out_path).unwrap_or_default(),
        )
    }
}

/// A loopback port free for both UDP and TCP right now (coturn listens on both).
fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

fn now_unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn allocated(log: &str, username: &str) -> bool {
    log.contains(&format!(
        "user <{username}>: incoming packet ALLOCATE processed, success"
    ))
}

#[test]
fn coturn_accepts_our_rest_credentials_and_refuses_bad_ones() {
    let started = Instant::now();
    let server = Coturn::start();

    // 1. Good credentials: the whole client run succeeds and coturn allocated for them.
    //    A couple of tries cover a server that logged readiness a moment early; a real
    //    mismatch fails every time.
    let (user, pass) = credentials(SECRET, "interop-session-1", now_unix_s(), 600);
    assert!(user.ends_with(":interop-session-1"));
    let mut ok = false;
    let mut last = String::new();
    for _ in 0..3 {
        let (success, output) = server.uclient(&user, &pass);
        if success && allocated(&server.log(), &user) {
            ok = true;
            break;
        }
        last = output;
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        ok,
        "coturn refused valid REST credentials {user} / {pass}\nclient:\n{last}\nserver:\n{}",
        server.log()
    );

    // 2. Credential made with another secret: no allocation.
    let (bad_user, bad_pass) =
        credentials(b"not-the-secret", "interop-intruder", now_unix_s(), 600);
    let (success, output) = server.uclient(&bad_user, &bad_pass);
    assert!(!success, "a wrong credential got through:\n{output}");
    assert!(
        output.contains("Cannot complete Allocation"),
        "unexpected client output:\n{output}"
    );
    assert!(!allocated(&server.log(), &bad_user));

    // 3. Right secret, expiry passed an hour ago: no allocation.
    let (old_user, old_pass) = credentials(SECRET, "interop-late", now_unix_s() - 3600, 60);
    let (success, output) = server.uclient(&old_user, &old_pass);
    assert!(!success, "an expired credential got through:\n{output}");
    assert!(!allocated(&server.log(), &old_user));

    // 4. The refusals were coturn's authentication at work, not a dead server.
    let log = server.log();
    for refused in [&bad_user, &old_user] {
        assert!(
            log.contains(&format!(
                "user <{refused}>: incoming packet message processed, error 401"
            )),
            "coturn did not answer 401 to {refused}; server log:\n{log}"
        );
    }
    drop(server);
    eprintln!(
        "coturn interop took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
