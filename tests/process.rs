//! The binary as an operator runs it: start-up logs, the epoll fallback when io_uring cannot
//! start, and a graceful drain on SIGTERM observed by a connected client.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Starts `cmd`, returns the child, its bound address and the log lines seen until then.
fn start(mut cmd: Command) -> (Child, SocketAddr, Vec<String>, mpsc::Receiver<String>) {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn switchboard");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no start-up line; saw {lines:?}");
        };
        lines.push(line.clone());
        if line.contains("switchboard started") {
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON logs");
            let addr = v["fields"]["addr"].as_str().unwrap().parse().unwrap();
            return (child, addr, lines, rx);
        }
    }
}

fn serve_args(cmd: &mut Command) {
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
    ]);
}

#[test]
fn falls_back_to_epoll_and_says_why() {
    // A non-root user with no locked memory cannot create io_uring rings here.
    let bin = env!("CARGO_BIN_EXE_switchboard");
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["prlimit", "--memlock=0:0", "--"])
        .arg(bin);
    serve_args(&mut cmd);
    let (mut child, addr, lines, _rx) = start(cmd);
    let fallback = lines
        .iter()
        .find(|l| l.contains("running on epoll"))
        .unwrap_or_else(|| panic!("no fallback line in {lines:?}"));
    assert!(fallback.contains("likely cause"), "{fallback}");
    assert!(lines
        .iter()
        .any(|l| l.contains(r#""driver":"epoll""#) && l.contains("switchboard started")));
    let r = common::http(addr, "GET /healthz HTTP/1.1\r\n\r\n");
    assert!(r.ends_with("ok\n"), "{r}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn uring_required_fails_loudly_where_it_cannot_start() {
    let bin = env!("CARGO_BIN_EXE_switchboard");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["prlimit", "--memlock=0:0", "--"])
        .arg(bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--stun-listen",
            "127.0.0.1:0",
        ])
        .args(["--driver", "uring"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("io_uring was required"), "{err}");
}

#[test]
fn sigterm_drains_connected_clients() {
    for driver in ["epoll", "uring"] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        serve_args(&mut cmd);
        cmd.args(["--driver", driver]);
        let (mut child, addr, lines, rx) = start(cmd);
        assert!(lines
            .iter()
            .any(|l| l.contains(&format!(r#""driver":"{driver}""#))));
        let mut s = common::raw_upgrade(addr, "/v1/signal");
        s.write_all(&common::client_frame(0x81, br#"{"type":"ping"}"#))
            .unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        // The client sees its welcome and pong, a `reconnect` notice with a suggested delay,
        // then a 1001 close; it answers the close.
        let mut notice = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&notice).contains(r#""type":"reconnect","delayMs":"#) {
            std::io::Read::read_exact(&mut s, &mut byte).expect("a reconnect notice");
            notice.push(byte[0]);
        }
        // The rest of that frame: the delay's digits and the closing brace.
        while byte[0] != b'}' {
            std::io::Read::read_exact(&mut s, &mut byte).expect("the end of the notice");
        }
        assert_eq!(common::read_close_code(&mut s), Some(1001), "{driver}");
        s.write_all(&common::client_frame(0x88, &1001u16.to_be_bytes()))
            .unwrap();
        let exit = child.wait().unwrap();
        assert!(exit.success(), "{driver}: {exit}");
        // The reader thread forwards the last lines once the pipe closes.
        let rest: Vec<String> =
            std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(5)).ok()).collect();
        assert!(rest.iter().any(|l| l.contains("draining")), "{rest:?}");
        assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
    }
}

/// Reads server frames until a text frame; returns its JSON.
fn next_text(s: &mut std::net::TcpStream) -> serde_json::Value {
    use std::io::Read;
    loop {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).unwrap();
        let len = match h[1] & 0x7F {
            126 => {
                let mut e = [0u8; 2];
                s.read_exact(&mut e).unwrap();
                usize::from(u16::from_be_bytes(e))
            }
            n => usize::from(n),
        };
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
        if h[0] & 0x0F == 0x1 {
            return serde_json::from_slice(&body).unwrap();
        }
    }
}

#[test]
fn sighup_reloads_limits_without_dropping_sessions() {
    let dir = std::env::temp_dir().join(format!("sb-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("switchboard.toml");
    let base = switchboard::server::config::DEFAULT_TOML
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace("listen = \"127.0.0.1:3478\"", "listen = \"127.0.0.1:0\"")
        .replace("listen = \"127.0.0.1:9090\"", "listen = \"127.0.0.1:0\"");
    std::fs::write(
        &file,
        base.replace("rooms_per_session_max = 8", "rooms_per_session_max = 1"),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(["serve", "--log-format", "json", "--config"])
        .arg(&file);
    let (mut child, addr, _lines, rx) = start(cmd);
    let mut s = common::raw_upgrade(addr, "/v1/signal");
    assert_eq!(next_text(&mut s)["type"], "welcome");
    s.write_all(&common::client_frame(
        0x81,
        br#"{"type":"join","room":"a"}"#,
    ))
    .unwrap();
    assert_eq!(next_text(&mut s)["type"], "joined");
    s.write_all(&common::client_frame(
        0x81,
        br#"{"type":"join","room":"b"}"#,
    ))
    .unwrap();
    assert_eq!(next_text(&mut s)["code"], "too-many-rooms");
    // Raise the limit, change a setting that needs a restart too, and send SIGHUP.
    std::fs::write(
        &file,
        base.replace("rooms_per_session_max = 8", "rooms_per_session_max = 3")
            .replace("rate_per_second = 50", "rate_per_second = 60"),
    )
    .unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("configuration reloaded"))
    {
        seen.push(
            rx.recv_timeout(Duration::from_secs(5))
                .expect("a reload log line"),
        );
    }
    // The session that was open keeps going, under the new limit.
    let mut joined = false;
    for _ in 0..50 {
        s.write_all(&common::client_frame(
            0x81,
            br#"{"type":"join","room":"b"}"#,
        ))
        .unwrap();
        let v = next_text(&mut s);
        if v["type"] == "joined" {
            joined = true;
            break;
        }
        assert_eq!(v["code"], "too-many-rooms");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(joined, "the new limit never applied");
    let warned: Vec<String> =
        std::iter::from_fn(|| rx.recv_timeout(Duration::from_millis(500)).ok()).collect();
    assert!(
        seen.iter()
            .chain(warned.iter())
            .any(|l| l.contains("only after a restart") && l.contains("[stun]")),
        "{seen:?} {warned:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
