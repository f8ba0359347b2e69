//! Signaling over real sockets, on both drivers: relay, rooms across shards, every error
//! code, and bad input that must harm only its sender.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use serde_json::Value;

const CHROMIUM_OFFER: &str = include_str!("vectors/sdp/chromium-dc-offer.sdp");
const CHROMIUM_ANSWER: &str = include_str!("vectors/sdp/chromium-dc-answer.sdp");

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` against a fresh server for each driver.
fn each_driver<F, Fut>(shards: usize, tweak: impl Fn(&mut switchboard::server::Config), f: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for driver in DRIVERS {
        let mut cfg = config(driver, shards);
        tweak(&mut cfg);
        let server = Server::start(&cfg);
        eprintln!("driver {driver:?}");
        runtime().block_on(f(server.url()));
        drop(server);
    }
}

#[test]
fn two_peers_trade_offer_answer_and_candidates() {
    each_driver(
        1,
        |_| {},
        |url| async move {
            let mut a = connect(&url).await;
            let mut b = connect(&url).await;
            assert_ne!(a.id, b.id);
            assert!(a.welcome["resume"].as_str().unwrap().len() >= 16);
            assert!(a.welcome["iceServers"].is_array());
            let joined = a.join("room-1").await;
            assert_eq!(joined["peers"], serde_json::json!([]));
            b.send(r#"{"type":"join","room":"room-1","meta":{"name":"bob"},"ref":"j1"}"#)
                .await;
            let joined = b.recv().await;
            assert_eq!(joined["type"], "joined");
            assert_eq!(joined["ref"], "j1");
            assert_eq!(joined["peers"][0]["id"], a.id.as_str());
            let pj = a.recv().await;
            assert_eq!(pj["type"], "peer-joined");
            assert_eq!(pj["id"], b.id.as_str());
            assert_eq!(pj["meta"]["name"], "bob");

            // A real Chromium offer relays byte-for-byte: the sender's bytes with
            // `{"from":"<id>",` in front.
            let offer_sdp = serde_json::to_string(CHROMIUM_OFFER).unwrap();
            let offer = format!(
                r#"{{"type":"offer","target":"{}","sdp":{offer_sdp},"extra":[1,{{"k":null}}]}}"#,
                b.id
            );
            a.send(&offer).await;
            let got = b.recv_text().await;
            assert_eq!(got, format!(r#"{{"from":"{}",{}"#, a.id, &offer[1..]));
            // A broken SDP is refused with its line number, and the target receives nothing.
            let broken = CHROMIUM_OFFER.replacen("a=ice-pwd:", "a=ice-pwx:", 1);
            a.send(&format!(
                r#"{{"type":"offer","target":"{}","sdp":{},"ref":"o2"}}"#,
                b.id,
                serde_json::to_string(&broken).unwrap()
            ))
            .await;
            let e = a.recv().await;
            assert_eq!(
                (e["code"].as_str(), e["ref"].as_str()),
                (Some("invalid-sdp"), Some("o2")),
                "{e}"
            );
            assert!(e["message"].as_str().unwrap().contains("ice-pwd"), "{e}");
            assert!(e["line"].as_u64().is_some(), "{e}");
            let garbled = CHROMIUM_OFFER.replacen("\nt=0 0", "\nt=zero", 1);
            assert_ne!(garbled, CHROMIUM_OFFER);
            a.send(&format!(
                r#"{{"type":"offer","target":"{}","sdp":{}}}"#,
                b.id,
                serde_json::to_string(&garbled).unwrap()
            ))
            .await;
            let e = a.recv().await;
            let want_line = garbled.lines().position(|l| l.starts_with("t=")).unwrap() + 1;
            assert_eq!(e["line"].as_u64(), Some(want_line as u64), "{e}");
            expect_silence(&mut b.ws, 100).await;

            let answer_sdp = serde_json::to_string(CHROMIUM_ANSWER).unwrap();
            let answer = format!(
                r#"{{"type":"answer","target":"{}","sdp":{answer_sdp}}}"#,
                a.id
            );
            b.send(&answer).await;
            let got: Value = a.recv().await;
            assert_eq!(got["type"], "answer");
            assert_eq!(got["from"], b.id.as_str());
            for i in 0..8 {
                a.send(&format!(
                r#"{{"type":"ice-candidate","target":"{}","candidate":{{"candidate":"candidate:{i} 1 udp 2122260223 127.0.0.1 5{i}000 typ host","sdpMid":"0"}}}}"#,
                b.id
            ))
            .await;
            }
            a.send(&format!(
                r#"{{"type":"end-of-candidates","target":"{}"}}"#,
                b.id
            ))
            .await;
            for i in 0..8 {
                let c = b.recv().await;
                assert_eq!(c["type"], "ice-candidate");
                assert!(c["candidate"]["candidate"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("candidate:{i} ")));
            }
            assert_eq!(b.recv().await["type"], "end-of-candidates");
            b.send(&format!(
                r#"{{"type":"message","target":"{}","data":"hi"}}"#,
                a.id
            ))
            .await;
            let m = a.recv().await;
            assert_eq!(
                (m["type"].as_str(), m["data"].as_str()),
                (Some("message"), Some("hi"))
            );
            a.send(r#"{"type":"ping","ref":42}"#).await;
            assert_eq!(a.recv().await, serde_json::json!({"type":"pong","ref":42}));

            // Leaving tells the others; closing tells them too.
            a.send(r#"{"type":"leave","room":"room-1"}"#).await;
            assert_eq!(a.recv().await["type"], "left");
            let pl = b.recv().await;
            assert_eq!(
                (pl["type"].as_str(), pl["id"].as_str()),
                (Some("peer-left"), Some(a.id.as_str()))
            );
            a.join("room-1").await;
            assert_eq!(b.recv().await["type"], "peer-joined");
            drop(a);
            let pl = b.recv().await;
            assert_eq!(pl["type"], "peer-left");
        },
    );
}

/// Connects until at least `per_shard` clients sit on each of the two shards.
async fn clients_on_both_shards(url: &str, per_shard: usize) -> (Vec<Client>, Vec<Client>) {
    let (mut s0, mut s1) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        if s0.len() >= per_shard && s1.len() >= per_shard {
            break;
        }
        let c = connect(url).await;
        if c.shard() == 0 {
            s0.push(c);
        } else {
            s1.push(c);
        }
    }
    assert!(
        s0.len() >= per_shard && s1.len() >= per_shard,
        "kernel never spread connections"
    );
    s0.truncate(per_shard);
    s1.truncate(per_shard);
    (s0, s1)
}

#[test]
fn relay_and_broadcast_cross_shards_in_order() {
    each_driver(
        2,
        |_| {},
        |url| async move {
            let (mut s0, mut s1) = clients_on_both_shards(&url, 2).await;
            let mut all: Vec<Client> = Vec::new();
            all.append(&mut s0);
            all.append(&mut s1);
            // Several rooms so that both shards own some of them.
            for room in ["alpha", "beta", "gamma", "delta"] {
                for i in 0..all.len() {
                    let j = all[i].join(room).await;
                    assert_eq!(j["peers"].as_array().unwrap().len(), i);
                    for k in 0..i {
                        let pj = all[k].recv().await;
                        assert_eq!(pj["type"], "peer-joined");
                        assert_eq!(pj["id"], all[i].id.as_str());
                    }
                }
                // Broadcast from each member reaches every other member once.
                for i in 0..all.len() {
                    let text = format!(r#"{{"type":"broadcast","room":"{room}","n":{i}}}"#);
                    all[i].send(&text).await;
                    for k in 0..all.len() {
                        if k == i {
                            continue;
                        }
                        let m = all[k].recv().await;
                        assert_eq!(m["from"], all[i].id.as_str());
                        assert_eq!(m["n"], i);
                    }
                }
            }
            // 200 messages from a shard-0 client to a shard-1 client arrive in order.
            let target = all[2].id.clone();
            for n in 0..200 {
                all[0]
                    .send(&format!(
                        r#"{{"type":"message","target":"{target}","n":{n}}}"#
                    ))
                    .await;
            }
            for n in 0..200 {
                let m = all[2].recv().await;
                assert_eq!(m["n"], n);
                assert_eq!(m["from"], all[0].id.as_str());
            }
            // A cross-shard target that has gone: the sender hears unknown-target, with ref.
            let gone = all.pop().unwrap();
            let gone_id = gone.id.clone();
            drop(gone);
            for _ in 0..4 {
                // peer-left from each room
                let pl = all[0].recv().await;
                assert_eq!(pl["type"], "peer-left");
            }
            all[0]
                .send(&format!(
                    r#"{{"type":"message","target":"{gone_id}","ref":"x"}}"#
                ))
                .await;
            let e = all[0].recv().await;
            assert_eq!(e["code"], "unknown-target", "{e}");
            assert_eq!(e["ref"], "x");
        },
    );
}

#[test]
fn every_error_code_is_provoked() {
    each_driver(
        1,
        |c| {
            c.signal.members_per_room_max = 2;
            c.signal.rooms_per_session_max = 2;
            c.signal.message_bytes_max = 4096;
        },
        |url| async move {
            let mut a = connect(&url).await;
            let mut b = connect(&url).await;
            let mut c = connect(&url).await;
            let cases: Vec<(String, &str)> = vec![
                ("not json".into(), "bad-json"),
                ("[1,2]".into(), "bad-json"),
                (r#"{"type":"ping","type":"ping"}"#.into(), "bad-json"),
                (r#"{"type":"launch","ref":1}"#.into(), "unknown-type"),
                (r#"{"room":"r"}"#.into(), "missing-field"),
                (r#"{"type":"offer","sdp":"v=0"}"#.into(), "missing-field"),
                (r#"{"type":"join"}"#.into(), "missing-field"),
                (r#"{"type":"join","room":7}"#.into(), "bad-field"),
                (r#"{"type":"join","room":""}"#.into(), "bad-field"),
                (
                    format!(r#"{{"type":"message","target":"{}","from":"spoof"}}"#, b.id),
                    "bad-field",
                ),
                (
                    r#"{"type":"message","target":"nobody"}"#.into(),
                    "unknown-target",
                ),
                (
                    format!(
                        r#"{{"type":"message","target":"{}"}}"#,
                        switchboard::proto::signal::SessionId::new(0, 0, 4000, 9)
                    ),
                    "unknown-target",
                ),
                (r#"{"type":"leave","room":"r"}"#.into(), "not-in-room"),
                (r#"{"type":"broadcast","room":"r"}"#.into(), "not-in-room"),
                (
                    format!(
                        r#"{{"type":"message","target":"{}","data":"{}"}}"#,
                        b.id,
                        "x".repeat(5000)
                    ),
                    "too-large",
                ),
                (
                    format!(r#"{{"type":"resume","id":"{}","resume":"wrong"}}"#, b.id),
                    "unauthorized",
                ),
            ];
            for (i, (frame, code)) in cases.iter().enumerate() {
                a.send(frame).await;
                let e = a.recv().await;
                assert_eq!(e["type"], "error", "{frame}");
                assert_eq!(e["code"], *code, "case {i}: {frame} -> {e}");
                assert!(e["message"].as_str().unwrap().len() > 5);
            }
            // ref is echoed on errors.
            a.send(r#"{"type":"launch","ref":{"k":[1,"two"]}}"#).await;
            assert_eq!(a.recv().await["ref"], serde_json::json!({"k":[1,"two"]}));
            // already-in-room, room-full, too-many-rooms.
            a.join("r").await;
            a.send(r#"{"type":"join","room":"r"}"#).await;
            assert_eq!(a.recv().await["code"], "already-in-room");
            b.join("r").await;
            assert_eq!(a.recv().await["type"], "peer-joined");
            c.send(r#"{"type":"join","room":"r","ref":3}"#).await;
            let e = c.recv().await;
            assert_eq!(
                (e["code"].as_str(), e["ref"].as_i64()),
                (Some("room-full"), Some(3))
            );
            // c was refused, so it is not a member: broadcast says not-in-room.
            c.send(r#"{"type":"broadcast","room":"r"}"#).await;
            assert_eq!(c.recv().await["code"], "not-in-room");
            a.join("s").await;
            a.send(r#"{"type":"join","room":"t"}"#).await;
            assert_eq!(a.recv().await["code"], "too-many-rooms");
            // A valid token for a session that has ended: session-expired.
            let token = c.welcome["resume"].as_str().unwrap().to_owned();
            let cid = c.id.clone();
            drop(c);
            // Resume is the first message of a new connection.
            let mut d = connect(&url).await;
            let resume = format!(r#"{{"type":"resume","id":"{cid}","resume":"{token}"}}"#);
            d.send(&resume).await;
            assert_eq!(d.recv().await["code"], "session-expired");
            a.send(&resume).await;
            assert_eq!(a.recv().await["code"], "bad-field");
            // After all of that, a and b still relay.
            a.send(&format!(
                r#"{{"type":"message","target":"{}","ok":true}}"#,
                b.id
            ))
            .await;
            assert_eq!(b.recv().await["ok"], true);
        },
    );
}

#[test]
fn bad_frames_close_only_their_sender() {
    each_driver(
        1,
        |c| {
            c.websocket.frame_bytes_max = 8192;
            c.websocket.message_bytes_max = 8192;
            c.signal.message_bytes_max = 8192;
        },
        |url| async move {
            let addr: std::net::SocketAddr = url
                .trim_start_matches("ws://")
                .trim_end_matches("/v1/signal")
                .parse()
                .unwrap();
            let mut a = connect(&url).await;
            let mut b = connect(&url).await;
            a.join("iso").await;
            b.join("iso").await;
            assert_eq!(a.recv().await["type"], "peer-joined");
            let bad: Vec<(Vec<u8>, u16)> = vec![
                (client_frame(0x82, b"\x00\x01"), 1003),
                (client_frame(0x81, b"\xff\xfe"), 1007),
                (vec![0x81, 0x02, b'h', b'i'], 1002),
                (client_frame(0xC1, b"x"), 1002),
                (client_frame(0x83, b"x"), 1002),
                (client_frame(0x81, &vec![b'a'; 9000]), 1009),
                (client_frame(0x88, &[0x03]), 1002),
            ];
            for (frame, want) in bad {
                let mut s = raw_upgrade(addr, "/v1/signal");
                s.write_all(&frame).unwrap();
                assert_eq!(
                    read_close_code(&mut s),
                    Some(want),
                    "frame {:02x?}",
                    &frame[..4]
                );
                // Meanwhile the other pair is untouched.
                a.send(&format!(
                    r#"{{"type":"message","target":"{}","k":{want}}}"#,
                    b.id
                ))
                .await;
                assert_eq!(b.recv().await["k"], want);
            }
            // A clean close is answered with the same code.
            let mut s = raw_upgrade(addr, "/v1/signal");
            s.write_all(&client_frame(0x88, &[0x0F, 0xA0, b'b', b'y', b'e']))
                .unwrap();
            assert_eq!(read_close_code(&mut s), Some(4000));
            expect_silence(&mut a.ws, 100).await;
        },
    );
}

#[test]
fn http_answers_and_limits() {
    for driver in DRIVERS {
        let mut cfg = config(driver, 1);
        cfg.server.handshake_timeout_ms = 300;
        cfg.server.http_head_bytes_max = 1024;
        let server = Server::start(&cfg);
        let addr = server.addr;
        let r = http(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("ok\n"),
            "{r}"
        );
        assert!(r.contains("Server: switchboard\r\n"));
        let r = http(addr, "GET /nowhere HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 404 "), "{r}");
        let r = http(addr, "POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
        let r = http(addr, "GET /v1/signal HTTP/1.1\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 426 ") && r.contains("WebSocket"),
            "{r}"
        );
        let r = http(addr, "GET /v1/signal HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 400 ") && r.contains("Sec-WebSocket-Key"),
            "{r}"
        );
        let r = http(addr, "GET /v1/signal HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 426 ") && r.contains("Sec-WebSocket-Version: 13"),
            "{r}"
        );
        // The echo endpoint is off by default.
        let r = http(addr, "GET /v1/echo HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 404 "), "{r}");
        let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(2000));
        let r = http(addr, &big);
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
        let r = http(
            addr,
            "\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03 garbage\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
        // Slowloris: a head that never completes is dropped after the handshake timeout.
        let started = std::time::Instant::now();
        let r = http(addr, "GET /v1/signal HTTP/1.1\r\nHost: x\r\n");
        assert_eq!(r, "");
        assert!(started.elapsed() < Duration::from_secs(4));
        drop(server);
    }
}

#[test]
fn slow_reader_is_closed_and_others_continue() {
    each_driver(
        1,
        |c| c.server.outbound_queue_bytes_max = 64 * 1024,
        |url| async move {
            let addr: std::net::SocketAddr = url
                .trim_start_matches("ws://")
                .trim_end_matches("/v1/signal")
                .parse()
                .unwrap();
            let mut a = connect(&url).await;
            let mut b = connect(&url).await;
            // The slow reader: a raw socket with a small receive buffer that never reads.
            let slow =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            slow.set_recv_buffer_size(4096).unwrap();
            slow.connect(&addr.into()).unwrap();
            let mut slow: std::net::TcpStream = slow.into();
            slow.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            write!(
                slow,
                "GET /v1/signal HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .unwrap();
            let head = read_head(&mut slow);
            assert!(head.starts_with("HTTP/1.1 101"));
            // Read the welcome frame header and id without parsing JSON.
            let mut hdr = [0u8; 2];
            std::io::Read::read_exact(&mut slow, &mut hdr).unwrap();
            let len = match hdr[1] & 0x7F {
                126 => {
                    let mut ext = [0u8; 2];
                    std::io::Read::read_exact(&mut slow, &mut ext).unwrap();
                    usize::from(u16::from_be_bytes(ext))
                }
                n => usize::from(n),
            };
            let mut welcome = vec![0u8; len];
            std::io::Read::read_exact(&mut slow, &mut welcome).unwrap();
            let w: Value = serde_json::from_slice(&welcome).unwrap();
            let slow_id = w["id"].as_str().unwrap().to_owned();
            let chunk = "x".repeat(30_000);
            let mut saw_error = false;
            for n in 0..600 {
                a.send(&format!(
                    r#"{{"type":"message","target":"{slow_id}","n":{n},"pad":"{chunk}"}}"#
                ))
                .await;
                if n % 50 == 49 {
                    // Once the slow session is gone, relays to it fail with unknown-target.
                    a.send(&format!(
                        r#"{{"type":"message","target":"{}","n":{n}}}"#,
                        b.id
                    ))
                    .await;
                    assert_eq!(b.recv().await["n"], n);
                    if let Ok(Some(Ok(m))) = tokio::time::timeout(
                        Duration::from_millis(20),
                        futures_util::StreamExt::next(&mut a.ws),
                    )
                    .await
                    {
                        let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
                        assert_eq!(v["code"], "unknown-target", "{v}");
                        saw_error = true;
                        break;
                    }
                }
            }
            assert!(saw_error, "the slow reader was never cut off");
            // The slow socket sees its queued frames, then a 1008 close (or a reset once the
            // close timeout passed).
            let code = read_close_code(&mut slow);
            assert!(matches!(code, Some(1008) | None), "{code:?}");
        },
    );
}
