//! Sessions that survive the real world, over real sockets: resume after a dropped socket
//! (across shards), auth failures before the upgrade, rooms limited by the token, sessions
//! per address, TURN REST credentials in `welcome`, rate limits, idle timeouts.

mod common;

use std::io::Write;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use hmac::{KeyInit, Mac};
use serde_json::Value;
use switchboard::server::{Config, DriverChoice};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const SECRET: &str = "a test secret that is at least 32 bytes long";

/// An HS256 JWT over `claims`.
fn jwt(claims: &Value) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let head = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64(claims.to_string().as_bytes());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{head}.{body}").as_bytes());
    let sig = b64(&mac.finalize().into_bytes());
    format!("{head}.{body}.{sig}")
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn upgrade_request(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n")
}

fn auth_config() -> Config {
    let mut c = config(DriverChoice::Epoll, 2);
    c.auth.required = true;
    c.auth.hs256_secrets = vec![switchboard::server::config::AuthKey {
        kid: None,
        key: SECRET.into(),
    }];
    c.auth.origins = vec!["https://app.example.com".into()];
    c
}

#[test]
fn auth_failures_are_refused_before_the_upgrade() {
    let server = Server::start(&auth_config());
    let addr = server.addr;
    let good = jwt(&serde_json::json!({"sub":"alice","exp":now_s() + 600,"rooms":["team-*"]}));
    let expired = jwt(&serde_json::json!({"sub":"alice","exp":now_s() - 3600}));
    let cases = [
        (upgrade_request("/v1/signal", ""), "401"),
        (upgrade_request("/v1/signal?token=not.a.jwt", ""), "401"),
        (
            upgrade_request(&format!("/v1/signal?token={expired}"), ""),
            "401",
        ),
        (
            upgrade_request(
                &format!("/v1/signal?token={}x", &good[..good.len() - 1]),
                "",
            ),
            "401",
        ),
        (
            upgrade_request(
                &format!("/v1/signal?token={good}"),
                "Origin: https://evil.example.net\r\n",
            ),
            "403",
        ),
    ];
    for (req, status) in cases {
        let r = http(addr, &req);
        assert!(r.starts_with(&format!("HTTP/1.1 {status} ")), "{req}\n{r}");
        let body = r.split("\r\n\r\n").nth(1).unwrap_or("");
        assert!(body.len() > 5, "a reason in the body: {r}");
    }
    // The good token, in the query or the header, with an allowed origin, upgrades.
    let r = {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(
            upgrade_request(
                "/v1/signal",
                &format!("Authorization: Bearer {good}\r\nOrigin: https://app.example.com\r\n"),
            )
            .as_bytes(),
        )
        .unwrap();
        read_head(&mut s)
    };
    assert!(r.starts_with("HTTP/1.1 101 "), "{r}");
    runtime().block_on(async {
        let url = format!("{}?token={good}", server.url());
        let mut a = connect(&url).await;
        let mut b = connect(&url).await;
        a.join("team-blue").await;
        b.send(r#"{"type":"join","room":"team-blue","meta":{"color":"red"}}"#)
            .await;
        let j = b.recv().await;
        assert_eq!(j["peers"][0]["meta"]["sub"], "alice", "{j}");
        let pj = a.recv().await;
        assert_eq!(
            pj["meta"],
            serde_json::json!({"sub":"alice","app":{"color":"red"}})
        );
        // The token allows team-* rooms only.
        a.send(r#"{"type":"join","room":"lobby","ref":1}"#).await;
        let e = a.recv().await;
        assert_eq!(
            (e["code"].as_str(), e["ref"].as_i64()),
            (Some("unauthorized"), Some(1))
        );
    });
}

#[test]
fn sessions_per_address_are_limited_and_others_continue() {
    let mut cfg = config(DriverChoice::Uring, 2);
    cfg.signal.sessions_per_ip_max = 2;
    let server = Server::start(&cfg);
    runtime().block_on(async {
        let mut a = connect(&server.url()).await;
        let b = connect(&server.url()).await;
        let r = http(server.addr, &upgrade_request("/v1/signal", ""));
        assert!(
            r.starts_with("HTTP/1.1 429 ") && r.contains("sessions_per_ip_max"),
            "{r}"
        );
        a.send(r#"{"type":"ping"}"#).await;
        assert_eq!(a.recv().await["type"], "pong");
        drop(b);
        // Released on close: a new session fits again (the close is asynchronous).
        let mut ok = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if http(server.addr, &upgrade_request("/v1/signal", "")).starts_with("HTTP/1.1 101 ") {
                ok = true;
                break;
            }
        }
        assert!(ok, "the address was never released");
    });
}

#[test]
fn welcome_carries_turn_rest_credentials() {
    let mut cfg = config(DriverChoice::Epoll, 1);
    cfg.turn.secret = "turn-shared-secret".into();
    cfg.turn.urls = vec!["turn:127.0.0.1:3479?transport=udp".into()];
    cfg.turn.ttl_s = 3600;
    let server = Server::start(&cfg);
    runtime().block_on(async {
        let c = connect(&server.url()).await;
        let turn = &c.welcome["iceServers"][0];
        assert_eq!(turn["urls"][0], "turn:127.0.0.1:3479?transport=udp");
        let user = turn["username"].as_str().unwrap();
        let (expiry, id) = user.split_once(':').unwrap();
        assert_eq!(id, c.id);
        let expiry: u64 = expiry.parse().unwrap();
        assert!(expiry > now_s() + 3500 && expiry <= now_s() + 3601);
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"turn-shared-secret").unwrap();
        mac.update(user.as_bytes());
        let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(turn["credential"], want.as_str());
        // Our own STUN server follows.
        assert!(c.welcome["iceServers"][1]["urls"][0]
            .as_str()
            .unwrap()
            .starts_with("stun:"));
    });
}

#[test]
fn resume_after_a_dropped_socket_delivers_what_was_sent_meanwhile() {
    for driver in DRIVERS {
        let mut cfg = config(driver, 2);
        cfg.signal.resume_grace_ms = 5_000;
        let server = Server::start(&cfg);
        let url = server.url();
        runtime().block_on(async {
            let mut a = connect(&url).await;
            let mut b = connect(&url).await;
            a.join("call").await;
            b.join("call").await;
            assert_eq!(a.recv().await["type"], "peer-joined");
            let (a_id, a_token) = (
                a.id.clone(),
                a.welcome["resume"].as_str().unwrap().to_owned(),
            );
            // The network drops a's socket (no close handshake).
            drop(a);
            tokio::time::sleep(Duration::from_millis(100)).await;
            for n in 0..5 {
                b.send(&format!(
                    r#"{{"type":"message","target":"{a_id}","n":{n}}}"#
                ))
                .await;
            }
            // Reconnect (possibly to the other shard) and resume.
            for attempt in 0..6 {
                let mut a2 = connect(&url).await;
                a2.send(&format!(
                    r#"{{"type":"resume","id":"{a_id}","resume":"{a_token}","ref":{attempt}}}"#
                ))
                .await;
                let r = a2.recv().await;
                assert_eq!(r["type"], "resumed", "{r}");
                assert_eq!(r["id"], a_id.as_str());
                let delivered = r["delivered"].as_u64().unwrap();
                if attempt == 0 {
                    // Frames still on their way between shards arrive after the queued ones.
                    assert!(delivered <= 5);
                    for n in 0..5 {
                        let m = a2.recv().await;
                        assert_eq!(
                            (m["n"].as_i64(), m["from"].as_str()),
                            (Some(n), Some(b.id.as_str()))
                        );
                    }
                }
                // The resumed session relays both ways, with its old id.
                a2.send(&format!(
                    r#"{{"type":"message","target":"{}","back":{attempt}}}"#,
                    b.id
                ))
                .await;
                let m = b.recv().await;
                assert_eq!(
                    (m["from"].as_str(), m["back"].as_i64()),
                    (Some(a_id.as_str()), Some(attempt))
                );
                b.send(&format!(
                    r#"{{"type":"message","target":"{a_id}","fwd":{attempt}}}"#
                ))
                .await;
                assert_eq!(a2.recv().await["fwd"], attempt);
                a2.send(r#"{"type":"ping"}"#).await;
                assert_eq!(a2.recv().await["type"], "pong");
                drop(a2);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // b never saw a leave.
            expect_silence(&mut b.ws, 200).await;
        });
    }
}

#[test]
fn resume_while_the_old_socket_is_open_closes_it_with_4001() {
    let mut cfg = config(DriverChoice::Uring, 2);
    cfg.signal.resume_grace_ms = 5_000;

    let server = Server::start(&cfg);
    let addr = server.addr;

    runtime().block_on(async {
        // The old connection is raw so its close code can be read.
        let mut old = raw_upgrade(addr, "/v1/signal");
        let mut hdr = [0u8; 4];
        std::io::Read::read_exact(&mut old, &mut hdr[..2]).unwrap();
        let len = if hdr[1] & 0x7F == 126 {
            std::io::Read::read_exact(&mut old, &mut hdr[2..4]).unwrap();
            usize::from(u16::from_be_bytes([hdr[2], hdr[3]]))
        } else {
            usize::from(hdr[1] & 0x7F)
        };
        let mut w = vec![0u8; len];
        std::io::Read::read_exact(&mut old, &mut w).unwrap();
        let w: Value = serde_json::from_slice(&w).unwrap();
        let (id, token) = (w["id"].as_str().unwrap(), w["resume"].as_str().unwrap());
        old.write_all(&client_frame(0x81, br#"{"type":"join","room":"x"}"#))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut new = connect(&server.url()).await;
        new.send(&format!(
            r#"{{"type":"resume","id":"{id}","resume":"{token}"}}"#
        ))
        .await;
        assert_eq!(new.recv().await["type"], "resumed");
        assert_eq!(read_close_code(&mut old), Some(4001));
    });
}

#[test]
fn rate_limit_answers_then_closes_sustained_abuse() {
    let mut cfg = config(DriverChoice::Epoll, 1);
    cfg.signal.messages_per_second = 5;
    cfg.signal.message_burst = 5;
    cfg.signal.rate_violations_max = 20;
    let server = Server::start(&cfg);
    runtime().block_on(async {
        let mut calm = connect(&server.url()).await;
        let mut noisy = connect(&server.url()).await;
        for _ in 0..10 {
            noisy.send(r#"{"type":"ping"}"#).await;
        }
        let mut limited = 0;
        for _ in 0..10 {
            let v = noisy.recv().await;
            if v["code"] == "rate-limited" {
                limited += 1;
            }
        }
        assert!(
            (4..=6).contains(&limited),
            "{limited} of 10 over a burst of 5"
        );
        // Keep going: the connection is closed with 1008.
        for _ in 0..40 {
            if futures_util::SinkExt::send(
                &mut noisy.ws,
                tokio_tungstenite::tungstenite::Message::text(r#"{"type":"ping"}"#),
            )
            .await
            .is_err()
            {
                break;
            }
        }
        let mut code = None;
        while let Ok(Some(Ok(m))) = tokio::time::timeout(
            Duration::from_secs(2),
            futures_util::StreamExt::next(&mut noisy.ws),
        )
        .await
        {
            if let tokio_tungstenite::tungstenite::Message::Close(Some(f)) = m {
                code = Some(u16::from(f.code));
                break;
            }
        }
        assert_eq!(code, Some(1008));
        calm.send(r#"{"type":"ping"}"#).await;
        assert_eq!(calm.recv().await["type"], "pong");
    });
}

#[test]
fn silent_connections_are_pinged_then_dropped() {
    let mut cfg = config(DriverChoice::Uring, 1);
    cfg.signal.heartbeat_ms = 100;
    cfg.signal.idle_timeout_ms = 400;
    let server = Server::start(&cfg);
    runtime().block_on(async {
        // tokio-tungstenite answers pings, so this client stays.
        let mut alive = connect(&server.url()).await;
        alive.join("r").await;
        // A raw client that never answers anything.
        let mut silent = raw_upgrade(server.addr, "/v1/signal");
        silent
            .write_all(&client_frame(0x81, br#"{"type":"join","room":"r"}"#))
            .unwrap();
        assert_eq!(alive.recv().await["type"], "peer-joined");
        let started = std::time::Instant::now();
        // It sees pings, then a 1001 close for the idle timeout; meanwhile the other client
        // keeps talking, so it stays.
        let reader = std::thread::spawn(move || read_close_code(&mut silent));
        while !reader.is_finished() {
            alive.send(r#"{"type":"ping"}"#).await;
            assert_eq!(alive.recv().await["type"], "pong");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(reader.join().unwrap(), Some(1001));
        assert!(started.elapsed() < Duration::from_secs(3));
        // With no grace, the room hears it left; the answering client is still there.
        let mut pl = alive.recv().await;
        while pl["type"] == "pong" {
            pl = alive.recv().await;
        }
        assert_eq!(pl["type"], "peer-left");
        alive.send(r#"{"type":"ping"}"#).await;
        assert_eq!(alive.recv().await["type"], "pong");
    });
}

#[test]
fn a_full_shard_refuses_new_upgrades_with_503_and_keeps_its_sessions() {
    let mut cfg = config(DriverChoice::Epoll, 1);
    cfg.signal.sessions_per_shard_max = 2;
    let server = Server::start(&cfg);
    runtime().block_on(async {
        let mut a = connect(&server.url()).await;
        let _b = connect(&server.url()).await;
        let r = http(server.addr, &upgrade_request("/v1/signal", ""));
        assert!(
            r.starts_with("HTTP/1.1 503 ") && r.contains("sessions_per_shard_max"),
            "{r}"
        );
        a.send(r#"{"type":"ping"}"#).await;
        assert_eq!(a.recv().await["type"], "pong");
    });
}
