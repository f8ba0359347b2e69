//! The STUN server inside the shards, over real sockets on both drivers: UDP answers with
//! the RFC minimum size, STUN over TCP, garbage dropped, and `welcome` advertising it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{config, Server, DRIVERS};
use switchboard::proto::stun::{
    encode_binding_request, BindingRequest, StunMessage, TransactionId,
};

fn request(tid: u8, fingerprint: bool) -> Vec<u8> {
    let mut out = [0u8; 128];
    let n = encode_binding_request(
        &mut out,
        &BindingRequest {
            transaction_id: TransactionId([tid; 12]),
            change_request: None,
            response_port: None,
            padding_bytes: None,
            username: None,
            software: None,
            integrity_key: None,
            fingerprint,
        },
    )
    .expect("encode");
    out[..n].to_vec()
}

fn ask(sock: &UdpSocket, server: SocketAddr, req: &[u8]) -> Option<Vec<u8>> {
    sock.send_to(req, server).unwrap();
    let mut buf = [0u8; 1500];
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(from, server, "the answer comes from the address asked");
                return Some(buf[..n].to_vec());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

#[test]
fn udp_and_tcp_binding_on_both_drivers() {
    for driver in DRIVERS {
        let mut cfg = config(driver, 2);
        cfg.stun.rate_per_second = 100_000;
        cfg.stun.burst_max = 100_000;
        let server = Server::start(&cfg);
        let running = server.running.as_ref().unwrap();
        let stun = running.stun_addr.expect("STUN is on by default");
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let me = sock.local_addr().unwrap();

        // A bare 20-byte request gets the RFC minimum: 32 bytes, XOR-MAPPED-ADDRESS only.
        let req = request(1, false);
        assert_eq!(req.len(), 20);
        let ans = ask(&sock, stun, &req).expect("an answer");
        assert_eq!(ans.len(), 32, "{driver:?}");
        let msg = StunMessage::parse(&ans).unwrap();
        assert_eq!(msg.transaction_id(), TransactionId([1; 12]));
        assert_eq!(msg.xor_mapped_address(), Some(me));
        // With FINGERPRINT in the request, the answer carries one too (40 bytes).
        let ans = ask(&sock, stun, &request(2, true)).expect("an answer");
        assert_eq!(ans.len(), 40);
        assert!(StunMessage::parse(&ans)
            .unwrap()
            .verify_fingerprint()
            .is_ok());
        // Garbage gets nothing; the next good request still works.
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert_eq!(ask(&sock, stun, b"GET / HTTP/1.1\r\n\r\n"), None);
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        // Many sources over many shards: every one is answered with its own address.
        for k in 0..40u8 {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let ans = ask(&s, stun, &request(k, false)).expect("answer");
            let m = StunMessage::parse(&ans).unwrap();
            assert_eq!(m.xor_mapped_address(), Some(s.local_addr().unwrap()));
        }

        // STUN over TCP: two requests back to back in one write, two answers.
        let mut tcp = TcpStream::connect(stun).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut both = request(7, false);
        both.extend(request(8, true));
        tcp.write_all(&both).unwrap();
        let mut got = vec![0u8; 32 + 40];
        tcp.read_exact(&mut got).unwrap();
        let first = StunMessage::parse(&got[..32]).unwrap();
        assert_eq!(first.transaction_id(), TransactionId([7; 12]));
        assert_eq!(first.xor_mapped_address(), Some(tcp.local_addr().unwrap()));
        let second = StunMessage::parse(&got[32..]).unwrap();
        assert_eq!(second.transaction_id(), TransactionId([8; 12]));
        // Bytes that are not STUN end that TCP connection.
        tcp.write_all(b"\xff\xff\xff\xff not stun at all....")
            .unwrap();
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest);
        assert!(rest.is_empty());

        // The counters saw it all (published once per loop turn).
        std::thread::sleep(Duration::from_millis(50));
        let stats = &running.shared.stats;
        let sum =
            |f: fn(&switchboard::shard::ShardStats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
        assert_eq!(
            sum(|s| s.stun_responses.load(Ordering::Relaxed)),
            2 + 40 + 2
        );
        assert_eq!(sum(|s| s.stun_dropped.load(Ordering::Relaxed)), 2);
        drop(server);
    }
}

#[test]
fn welcome_advertises_our_stun_server() {
    let server = Server::start(&config(switchboard::server::DriverChoice::Epoll, 1));
    let stun = server.running.as_ref().unwrap().stun_addr.unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = common::connect(&server.url()).await;
        let urls = &c.welcome["iceServers"][0]["urls"];
        assert_eq!(urls[0], format!("stun:{stun}"), "{}", c.welcome);
        assert_eq!(
            urls.as_array().unwrap().len(),
            1,
            "stun: URIs carry no transport"
        );
    });
}

#[test]
fn rate_limit_per_source() {
    let mut cfg = config(switchboard::server::DriverChoice::Uring, 1);
    cfg.stun.rate_per_second = 1;
    cfg.stun.burst_max = 5;
    let server = Server::start(&cfg);
    let stun = server.running.as_ref().unwrap().stun_addr.unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for k in 0..50u8 {
        sock.send_to(&request(k, false), stun).unwrap();
    }
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut answers = 0;
    let mut buf = [0u8; 1500];
    while sock.recv_from(&mut buf).is_ok() {
        answers += 1;
    }
    assert!(
        (5..=7).contains(&answers),
        "{answers} answers to 50 requests at burst 5"
    );
    let limited: u64 = server
        .running
        .as_ref()
        .unwrap()
        .shared
        .stats
        .iter()
        .map(|s| s.stun_rate_limited.load(Ordering::Relaxed))
        .sum();
    assert!(limited >= 43, "{limited}");
}
