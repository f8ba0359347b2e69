//! Three nodes sharing rooms and relays through a real `redis-server` (Debian package
//! `redis-server`): relay across nodes with per-sender order, rooms spanning nodes, and a
//! Redis restart in the middle (local traffic goes on, cross-node traffic is dropped and
//! counted, then recovers).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use switchboard::server::DriverChoice;
use switchboard::shard::ClusterStats;

/// A `redis-server` child on a loopback port, killed when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Redis::start_on(port)
    }

    fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): these tests need a real Redis; install \
                     the Debian package with `apt-get install -y redis-server` (CI does this \
                     in .ci/run)"
                )
            });
        let r = Redis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !r.ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut b = [0u8; 7];
        s.read_exact(&mut b).is_ok() && &b == b"+PONG\r\n"
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Node `node` of a cluster on `redis`, with `shards` shards.
fn node(redis: &Redis, node: u16, shards: usize) -> Server {
    let mut cfg = config(DriverChoice::Auto, shards);
    cfg.signal.node_id = node;
    // No STUN: three nodes per test, and port 0 for UDP and TCP at once can race.
    cfg.stun.enabled = false;
    cfg.cluster.enabled = true;
    cfg.cluster.redis_url = redis.url();
    cfg.cluster.key_prefix = "sbtest".into();
    cfg.cluster.heartbeat_ms = 100;
    cfg.cluster.node_ttl_ms = 1000;
    cfg.cluster.reconnect_min_ms = 20;
    cfg.cluster.reconnect_max_ms = 200;
    Server::start(&cfg)
}

fn stats(s: &Server) -> &ClusterStats {
    s.running
        .as_ref()
        .unwrap()
        .shared
        .cluster
        .as_deref()
        .expect("cluster on")
}

fn admin(s: &Server) -> SocketAddr {
    s.running.as_ref().unwrap().admin_addr.unwrap()
}

/// Polls `f` for up to 10 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn all_up(nodes: &[&Server]) {
    eventually("every node connected to Redis", || {
        nodes.iter().all(|n| stats(n).up.load(Ordering::Relaxed))
    })
    .await;
}

/// Waits until each node mirrors `n` members of other nodes.
async fn remote_members(nodes: &[(&Server, u64)]) {
    eventually("room members mirrored on every node", || {
        nodes
            .iter()
            .all(|(s, n)| stats(s).remote_members.load(Ordering::Relaxed) == *n)
    })
    .await;
}

/// Joins `room` and returns the peers it learnt of, by id, with their meta: those in
/// `joined`, then `peer-joined` frames until there are `want` of them. (A member of another
/// node whose join is still on its way from this node's bridge to the room's owner shard
/// comes as `peer-joined` right after `joined` instead of in it.)
async fn join_seeing(c: &mut Client, room: &str, meta: &str, want: usize) -> Vec<(String, Value)> {
    c.send(&format!(
        r#"{{"type":"join","room":"{room}","meta":{meta}}}"#
    ))
    .await;
    let joined = c.recv().await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let mut peers: Vec<(String, Value)> = joined["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_owned(), p["meta"].clone()))
        .collect();
    while peers.len() < want {
        let m = c.recv().await;
        assert_eq!(m["type"], "peer-joined", "{m}");
        peers.push((m["id"].as_str().unwrap().to_owned(), m["meta"].clone()));
    }
    peers.sort_by(|x, y| x.0.cmp(&y.0));
    peers
}

fn ids(peers: &[(String, Value)]) -> Vec<String> {
    peers.iter().map(|p| p.0.clone()).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn three_nodes_share_a_room_relay_in_order_and_broadcast() {
    let redis = Redis::start();
    let n1 = node(&redis, 1, 2);
    let n2 = node(&redis, 2, 1);
    let n3 = node(&redis, 3, 2);
    runtime().block_on(async {
        all_up(&[&n1, &n2, &n3]).await;
        let mut a = connect(&n1.url()).await;
        let mut b = connect(&n2.url()).await;
        let mut c = connect(&n3.url()).await;
        assert!(a.id != b.id && b.id != c.id);

        // Rooms span nodes: joined lists peers of every node, peer-joined reaches them all.
        let joined = a.join("r").await;
        assert_eq!(joined["peers"], json!([]));
        remote_members(&[(&n2, 1), (&n3, 1)]).await;
        let peers = join_seeing(&mut b, "r", r#"{"name":"bob"}"#, 1).await;
        assert_eq!(ids(&peers), [a.id.clone()]);
        let pj = a.recv().await;
        assert_eq!(pj["type"], "peer-joined", "{pj}");
        assert_eq!(pj["id"], b.id.as_str());
        assert_eq!(pj["meta"]["name"], "bob");
        remote_members(&[(&n1, 1), (&n2, 1), (&n3, 2)]).await;
        let peers = join_seeing(&mut c, "r", "null", 2).await;
        assert_eq!(ids(&peers), sorted(vec![a.id.clone(), b.id.clone()]));
        let bob = &peers.iter().find(|p| p.0 == b.id).unwrap().1;
        assert_eq!(bob["name"], "bob", "meta crosses nodes");
        for x in [&mut a, &mut b] {
            let pj = x.recv().await;
            assert_eq!(pj["type"], "peer-joined", "{pj}");
            assert_eq!(pj["id"], c.id.as_str());
        }

        // Offer, answer and candidates between nodes, byte for byte with `from` in front.
        let offer = format!(
            r#"{{"type":"offer","target":"{}","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n","x":[1]}}"#,
            b.id
        );
        let mut no_validate = offer.clone();
        no_validate = no_validate.replace("\"offer\"", "\"message\"");
        a.send(&no_validate).await;
        let got = b.recv_text().await;
        assert_eq!(got, format!(r#"{{"from":"{}",{}"#, a.id, &no_validate[1..]));
        let answer = format!(r#"{{"type":"message","target":"{}","data":"answer"}}"#, a.id);
        b.send(&answer).await;
        assert_eq!(
            a.recv_text().await,
            format!(r#"{{"from":"{}",{}"#, b.id, &answer[1..])
        );
        let cand = format!(
            r#"{{"type":"ice-candidate","target":"{}","candidate":{{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host","sdpMid":"0"}}}}"#,
            c.id
        );
        a.send(&cand).await;
        assert_eq!(
            c.recv_text().await,
            format!(r#"{{"from":"{}",{}"#, a.id, &cand[1..])
        );

        // Order per sender: two senders on two nodes, 300 frames each, interleaved at c.
        const N: usize = 300;
        for i in 0..N {
            a.send(&format!(
                r#"{{"type":"message","target":"{}","data":{{"s":"a","n":{i}}}}}"#,
                c.id
            ))
            .await;
            b.send(&format!(
                r#"{{"type":"message","target":"{}","data":{{"s":"b","n":{i}}}}}"#,
                c.id
            ))
            .await;
        }
        let (mut next_a, mut next_b) = (0, 0);
        while next_a < N || next_b < N {
            let m = c.recv().await;
            let n = m["data"]["n"].as_u64().unwrap() as usize;
            match m["data"]["s"].as_str().unwrap() {
                "a" => {
                    assert_eq!(n, next_a, "frames from a out of order");
                    assert_eq!(m["from"], a.id.as_str());
                    next_a += 1;
                }
                _ => {
                    assert_eq!(n, next_b, "frames from b out of order");
                    next_b += 1;
                }
            }
        }

        // A broadcast reaches every other member on every node, not its sender.
        b.send(r#"{"type":"broadcast","room":"r","data":"hi all"}"#)
            .await;
        for x in [&mut a, &mut c] {
            let m = x.recv().await;
            assert_eq!(m["type"], "broadcast", "{m}");
            assert_eq!(m["from"], b.id.as_str());
            assert_eq!(m["data"], "hi all");
        }
        expect_silence(&mut b.ws, 200).await;

        // Leaving and closing reach the other nodes as peer-left.
        c.send(r#"{"type":"leave","room":"r"}"#).await;
        assert_eq!(c.recv().await["type"], "left");
        for x in [&mut a, &mut b] {
            let m = x.recv().await;
            assert_eq!(m["type"], "peer-left", "{m}");
            assert_eq!(m["id"], c.id.as_str());
        }
        let b_id = b.id.clone();
        drop(b);
        let m = a.recv().await;
        assert_eq!(m["type"], "peer-left", "{m}");
        assert_eq!(m["id"], b_id.as_str());

        // A relay to a session of another node that has ended comes back as unknown-target.
        a.send(&format!(
            r#"{{"type":"message","target":"{b_id}","data":1,"ref":"gone"}}"#
        ))
        .await;
        let e = a.recv().await;
        assert_eq!(e["code"], "unknown-target", "{e}");
        assert_eq!(e["ref"], "gone");
        assert_eq!(e["target"], b_id.as_str());

        let out: u64 = [&n1, &n2, &n3]
            .iter()
            .map(|n| stats(n).records_out.load(Ordering::Relaxed))
            .sum();
        assert!(out >= 2 * N as u64, "records_out {out}");
        assert!([&n1, &n2, &n3]
            .iter()
            .all(|n| stats(n).dropped.load(Ordering::Relaxed) == 0));
    });
}

#[test]
fn redis_restart_keeps_local_traffic_and_counts_what_was_dropped() {
    let mut redis = Redis::start();
    let port = redis.port;
    let n1 = node(&redis, 1, 2);
    let n2 = node(&redis, 2, 2);
    runtime().block_on(async {
        all_up(&[&n1, &n2]).await;
        let mut a = connect(&n1.url()).await;
        let mut a2 = connect(&n1.url()).await;
        let mut b = connect(&n2.url()).await;
        a.join("r").await;
        a2.join("r").await;
        assert_eq!(a.recv().await["type"], "peer-joined");
        remote_members(&[(&n2, 2)]).await;
        let peers = join_seeing(&mut b, "r", "null", 2).await;
        assert_eq!(ids(&peers), sorted(vec![a.id.clone(), a2.id.clone()]));
        for x in [&mut a, &mut a2] {
            assert_eq!(x.recv().await["type"], "peer-joined");
        }
        // Every shard reports its first loop turn within a second of starting.
        eventually("/readyz says ready", || {
            http(admin(&n1), "GET /readyz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200")
        })
        .await;
        let ready = http(admin(&n1), "GET /readyz HTTP/1.1\r\n\r\n");
        assert!(ready.contains("ready; cluster up"), "{ready}");

        redis.kill();
        eventually("both nodes notice Redis is gone", || {
            !stats(&n1).up.load(Ordering::Relaxed) && !stats(&n2).up.load(Ordering::Relaxed)
        })
        .await;
        let ready = http(admin(&n1), "GET /readyz HTTP/1.1\r\n\r\n");
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        assert!(ready.contains("cluster degraded"), "{ready}");
        let metrics = http(admin(&n1), "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(
            metrics.contains("\nswitchboard_cluster_up 0\n"),
            "{metrics}"
        );

        // Local relays go on; frames for the other node are dropped and counted, exactly.
        let dropped_before = stats(&n1).dropped.load(Ordering::Relaxed);
        const LOST: u64 = 5;
        for i in 0..LOST {
            a.send(&format!(
                r#"{{"type":"message","target":"{}","data":{i}}}"#,
                b.id
            ))
            .await;
            a.send(&format!(
                r#"{{"type":"message","target":"{}","data":{i}}}"#,
                a2.id
            ))
            .await;
            let m = a2.recv().await;
            assert_eq!(m["data"], i, "{m}");
        }
        eventually("the dropped frames counted", || {
            stats(&n1).dropped.load(Ordering::Relaxed) - dropped_before == LOST
        })
        .await;
        expect_silence(&mut b.ws, 300).await;
        assert_eq!(
            stats(&n1).dropped.load(Ordering::Relaxed) - dropped_before,
            LOST,
            "every frame for the other node sent while Redis was down is counted, once"
        );

        // Redis returns (empty: no persistence); the nodes reconnect, write their member
        // sets again and relay across nodes as before.
        let _redis = Redis::start_on(port);
        all_up(&[&n1, &n2]).await;
        let metrics = http(admin(&n1), "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(
            metrics.contains("\nswitchboard_cluster_up 1\n"),
            "{metrics}"
        );
        a.send(&format!(
            r#"{{"type":"message","target":"{}","data":"back"}}"#,
            b.id
        ))
        .await;
        let m = b.recv().await;
        assert_eq!(m["data"], "back", "{m}");
        assert_eq!(m["from"], a.id.as_str());
        // Nothing of the outage arrives late, and the room is whole: a broadcast from b
        // reaches both members on node 1.
        b.send(r#"{"type":"broadcast","room":"r","data":"still here"}"#)
            .await;
        for x in [&mut a, &mut a2] {
            let m = x.recv().await;
            assert_eq!(m["data"], "still here", "{m}");
        }
        // A node that joins after the restart sees every member in its joined list.
        let n3 = node(&_redis, 3, 1);
        all_up(&[&n3]).await;
        remote_members(&[(&n3, 3)]).await;
        let mut c = connect(&n3.url()).await;
        let peers = join_seeing(&mut c, "r", "null", 3).await;
        assert_eq!(
            ids(&peers),
            sorted(vec![a.id.clone(), a2.id.clone(), b.id.clone()])
        );
        // Clients go first: a node drains its connections before it stops.
        drop(c);
        drop(n3);
    });
}

#[test]
fn a_node_without_cluster_section_needs_no_redis() {
    // The embedded default has [cluster] enabled = false; a file without the section parses
    // to the same thing.
    let text = switchboard::server::config::DEFAULT_TOML;
    let cut = text.find("[cluster]").expect("documented section");
    let cfg = switchboard::server::Config::parse(&text[..cut], "no-cluster.toml").unwrap();
    assert!(!cfg.cluster.enabled);
    assert_eq!(cfg, switchboard::server::Config::embedded());
    let mut cfg = config(DriverChoice::Epoll, 1);
    cfg.stun.enabled = false;
    cfg.cluster.redis_url = "redis://127.0.0.1:1".into();
    let s = Server::start(&cfg);
    assert!(s.running.as_ref().unwrap().shared.cluster.is_none());
}

#[test]
fn two_nodes_with_one_node_id_are_reported() {
    let redis = Redis::start();
    let x = node(&redis, 7, 1);
    let y = node(&redis, 7, 1);
    let z = node(&redis, 8, 1);
    runtime().block_on(async {
        eventually("both nodes with id 7 see the other's heartbeat", || {
            [&x, &y]
                .iter()
                .all(|n| stats(n).node_id_conflicts.load(Ordering::Relaxed) >= 2)
        })
        .await;
    });
    assert_eq!(stats(&z).node_id_conflicts.load(Ordering::Relaxed), 0);
    let metrics = http(admin(&x), "GET /metrics HTTP/1.1\r\n\r\n");
    assert!(metrics.contains("switchboard_cluster_node_id_conflicts_total "));
}

/// A node started as a child process, so it can die by SIGKILL; killed when dropped.
struct ChildNode {
    child: Child,
    addr: SocketAddr,
}

impl ChildNode {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        self.kill();
    }
}

fn child_node(redis: &Redis, id: u16, grace_ms: u64) -> ChildNode {
    child_node_on(redis, id, grace_ms, DriverChoice::Epoll)
}

fn child_node_on(redis: &Redis, id: u16, grace_ms: u64, driver: DriverChoice) -> ChildNode {
    let mut cfg = config(driver, 1);
    cfg.signal.node_id = id;
    cfg.signal.resume_grace_ms = grace_ms;
    cfg.stun.enabled = false;
    cfg.admin.enabled = false;
    cfg.cluster.enabled = true;
    cfg.cluster.redis_url = redis.url();
    cfg.cluster.key_prefix = "sbtest".into();
    cfg.cluster.heartbeat_ms = 100;
    cfg.cluster.node_ttl_ms = 1000;
    let file = std::env::temp_dir().join(format!(
        "switchboard-cluster-{}-{id}.toml",
        std::process::id()
    ));
    std::fs::write(&file, toml::to_string(&cfg).unwrap()).unwrap();
    let mut node = ChildNode {
        child: Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["serve", "--log-format", "json", "--config"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchboard"),
        addr: "0.0.0.0:0".parse().unwrap(),
    };
    let stderr = node.child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the node logs its start");
        if line.contains("switchboard started") {
            let v: Value = serde_json::from_str(&line).unwrap();
            let _ = std::fs::remove_file(&file);
            // Keep reading, so the child never blocks on a full stderr pipe.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            node.addr = v["fields"]["addr"].as_str().unwrap().parse().unwrap();
            return node;
        }
    }
}

#[test]
fn a_killed_node_s_members_leave_once_its_heartbeat_and_grace_are_over() {
    let redis = Redis::start();
    let cfg_grace_ms = 500;
    let n1 = {
        let mut cfg = config(DriverChoice::Auto, 1);
        cfg.signal.node_id = 1;
        cfg.signal.resume_grace_ms = cfg_grace_ms;
        cfg.stun.enabled = false;
        cfg.cluster.enabled = true;
        cfg.cluster.redis_url = redis.url();
        cfg.cluster.key_prefix = "sbtest".into();
        cfg.cluster.heartbeat_ms = 100;
        cfg.cluster.node_ttl_ms = 1000;
        Server::start(&cfg)
    };
    let mut n2 = child_node(&redis, 2, cfg_grace_ms);
    let addr = n2.addr;
    runtime().block_on(async {
        all_up(&[&n1]).await;
        let mut a = connect(&n1.url()).await;
        let mut b = connect(&format!("ws://{addr}/v1/signal")).await;
        a.join("r").await;
        let peers = join_seeing(&mut b, "r", "null", 1).await;
        assert_eq!(ids(&peers), [a.id.clone()]);
        let pj = a.recv().await;
        assert_eq!(pj["id"], b.id.as_str());

        n2.kill();
        let killed = Instant::now();
        // Nothing for as long as the node's heartbeat may still be there.
        expect_silence(&mut a.ws, 800).await;
        let m = a.recv().await;
        assert_eq!(m["type"], "peer-left", "{m}");
        assert_eq!(m["id"], b.id.as_str());
        let after = killed.elapsed();
        // Heartbeat TTL (1 s) + max(grace, TTL) (1 s), give or take heartbeat ticks.
        assert!(
            after >= Duration::from_millis(1800) && after < Duration::from_secs(5),
            "peer-left {after:?} after the kill"
        );
        assert_eq!(stats(&n1).nodes_forgotten.load(Ordering::Relaxed), 1);
        remote_members(&[(&n1, 0)]).await;
    });
}

/// User + system CPU time of a process so far, in microseconds.
fn cpu_us(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // Linux reports times to user space in USER_HZ = 100 ticks per second.
    ticks * 10_000
}

fn percentiles(mut v: Vec<u64>) -> (u64, u64) {
    v.sort_unstable();
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

/// Round trips a→b→a, one message in flight; returns each round trip in µs.
async fn round_trips(a: &mut Client, b: &mut Client, n: usize) -> Vec<u64> {
    let to_b = format!(
        r#"{{"type":"message","target":"{}","data":"{}"}}"#,
        b.id,
        "x".repeat(200)
    );
    let to_a = format!(
        r#"{{"type":"message","target":"{}","data":"{}"}}"#,
        a.id,
        "y".repeat(200)
    );
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        a.send(&to_b).await;
        b.recv_text().await;
        b.send(&to_a).await;
        a.recv_text().await;
        out.push(t.elapsed().as_micros() as u64);
    }
    out
}

/// perf/: relay latency on one node and across two nodes (child processes, release build),
/// server CPU per cross-node message, and Redis pub/sub against Streams as the carrier.
#[test]
#[ignore = "measurement: cargo test --release --test cluster perf_ -- --ignored --nocapture"]
fn perf_cross_node_relay() {
    const N: usize = 20_000;
    let redis = Redis::start();
    let n1 = child_node_on(&redis, 1, 0, DriverChoice::Auto);
    let n2 = child_node_on(&redis, 2, 0, DriverChoice::Auto);
    let (p1, p2, pr) = (n1.child.id(), n2.child.id(), redis.child.id());
    runtime().block_on(async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut a = connect(&format!("ws://{}/v1/signal", n1.addr)).await;
        let mut a2 = connect(&format!("ws://{}/v1/signal", n1.addr)).await;
        let mut b = connect(&format!("ws://{}/v1/signal", n2.addr)).await;
        round_trips(&mut a, &mut a2, 2000).await;
        round_trips(&mut a, &mut b, 2000).await;
        let c0 = (cpu_us(p1), cpu_us(p2), cpu_us(pr));
        let same = round_trips(&mut a, &mut a2, N).await;
        let c1 = (cpu_us(p1), cpu_us(p2), cpu_us(pr));
        let cross = round_trips(&mut a, &mut b, N).await;
        let c2 = (cpu_us(p1), cpu_us(p2), cpu_us(pr));
        let (s50, s99) = percentiles(same);
        let (x50, x99) = percentiles(cross);
        let msgs = (2 * N) as f64;
        println!("relay round trip (a->b->a, 1 in flight, {N} rounds, 200 B payload), microseconds:");
        println!("  same node : p50 {s50} p99 {s99}");
        println!("  cross node: p50 {x50} p99 {x99}");
        println!(
            "  added per one-way relay: p50 {:.0} us, p99 {:.0} us",
            (x50 as f64 - s50 as f64) / 2.0,
            (x99 as f64 - s99 as f64) / 2.0
        );
        println!(
            "server CPU per message, same node: {:.1} us (node 1)",
            (c1.0 - c0.0) as f64 / msgs
        );
        println!(
            "server CPU per message, cross node: {:.1} us (node 1 + node 2: {:.1} + {:.1}), redis-server {:.1} us",
            ((c2.0 - c1.0) + (c2.1 - c1.1)) as f64 / msgs,
            (c2.0 - c1.0) as f64 / msgs,
            (c2.1 - c1.1) as f64 / msgs,
            (c2.2 - c1.2) as f64 / msgs
        );
        drop((a, a2, b));

        // The carrier: PUBLISH → subscriber against XADD → a reader blocked in XREAD.
        let client = redis::Client::open(redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut reader = client.get_multiplexed_async_connection().await.unwrap();
        let mut ps = client.get_async_pubsub().await.unwrap();
        ps.subscribe("perf").await.unwrap();
        let mut stream = ps.into_on_message();
        let payload = vec![b'z'; 256];
        let mut pub_rtt = Vec::with_capacity(N);
        let r0 = cpu_us(pr);
        for _ in 0..N {
            let t = Instant::now();
            let _: u64 = redis::cmd("PUBLISH").arg("perf").arg(&payload).query_async(&mut conn).await.unwrap();
            futures_util::StreamExt::next(&mut stream).await.unwrap();
            pub_rtt.push(t.elapsed().as_micros() as u64);
        }
        let r1 = cpu_us(pr);
        let mut xs_rtt = Vec::with_capacity(N);
        let mut last = "0-0".to_string();
        for _ in 0..N {
            let t = Instant::now();
            let mut read_cmd = redis::cmd("XREAD");
            read_cmd
                .arg("BLOCK")
                .arg(1000)
                .arg("STREAMS")
                .arg("perfs")
                .arg(&last);
            let mut add_cmd = redis::cmd("XADD");
            add_cmd
                .arg("perfs")
                .arg("MAXLEN")
                .arg("~")
                .arg(10000)
                .arg("*")
                .arg("f")
                .arg(&payload);
            let read = read_cmd.query_async::<redis::Value>(&mut reader);
            let add = add_cmd.query_async::<String>(&mut conn);
            let (r, id) = tokio::join!(read, add);
            r.unwrap();
            last = id.unwrap();
            xs_rtt.push(t.elapsed().as_micros() as u64);
        }
        let r2 = cpu_us(pr);
        let (p50, p99) = percentiles(pub_rtt);
        let (q50, q99) = percentiles(xs_rtt);
        println!("carrier, send to delivery ({N} messages of 256 B, 1 in flight), microseconds:");
        println!("  pub/sub : p50 {p50} p99 {p99}, redis-server CPU {:.1} us/msg", (r1 - r0) as f64 / N as f64);
        println!("  streams : p50 {q50} p99 {q99}, redis-server CPU {:.1} us/msg", (r2 - r1) as f64 / N as f64);
    });
    drop((n1, n2));
}
