//! `wss://` over a real TLS stack (rustls as the client), on both drivers: relay between a
//! TLS and a plain client on the same listener, and a certificate reload mid-session that
//! keeps the established session.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

struct Cert {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn make_cert() -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    Cert {
        der: ck.cert.der().clone(),
        cert_pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
    }
}

fn connect_tls(addr: SocketAddr, trust: &CertificateDer<'static>) -> std::io::Result<Tls> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    write!(
        s,
        "GET /v1/signal HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )?;
    s.flush()?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b)?;
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    Ok(s)
}

/// Reads one unmasked text frame.
fn read_text(s: &mut impl Read) -> Value {
    loop {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).unwrap();
        let len = match h[1] & 0x7F {
            126 => {
                let mut e = [0u8; 2];
                s.read_exact(&mut e).unwrap();
                usize::from(u16::from_be_bytes(e))
            }
            127 => {
                let mut e = [0u8; 8];
                s.read_exact(&mut e).unwrap();
                u64::from_be_bytes(e) as usize
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

fn send_text(s: &mut impl Write, text: &str) {
    s.write_all(&client_frame(0x81, text.as_bytes())).unwrap();
    s.flush().unwrap();
}

#[test]
fn wss_relays_and_survives_a_certificate_reload() {
    for driver in DRIVERS {
        let dir = std::env::temp_dir().join(format!("sb-tls-{}-{driver:?}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        let first = make_cert();
        std::fs::write(&cert_path, &first.cert_pem).unwrap();
        std::fs::write(&key_path, &first.key_pem).unwrap();
        let mut cfg = config(driver, 2);
        cfg.tls.enabled = true;
        cfg.server.close_timeout_ms = 200;
        cfg.tls.cert_path = cert_path.display().to_string();
        cfg.tls.key_path = key_path.display().to_string();
        let server = Server::start(&cfg);
        let addr = server.addr;

        // A TLS client and a plain client on the same port meet in a room.
        let mut a = connect_tls(addr, &first.der).unwrap();
        let wa = read_text(&mut a);
        let a_id = wa["id"].as_str().unwrap().to_owned();
        let mut b = raw_upgrade(addr, "/v1/signal");
        let wb = read_text(&mut b);
        let b_id = wb["id"].as_str().unwrap().to_owned();
        send_text(&mut a, r#"{"type":"join","room":"secure"}"#);
        assert_eq!(read_text(&mut a)["type"], "joined");
        send_text(&mut b, r#"{"type":"join","room":"secure"}"#);
        assert_eq!(read_text(&mut b)["type"], "joined");
        assert_eq!(read_text(&mut a)["type"], "peer-joined");
        // A large frame crosses TLS records in both directions.
        let big = "x".repeat(40_000);
        send_text(
            &mut a,
            &format!(r#"{{"type":"message","target":"{b_id}","big":"{big}"}}"#),
        );
        let m = read_text(&mut b);
        assert_eq!(m["big"].as_str().unwrap().len(), 40_000);
        send_text(
            &mut b,
            &format!(r#"{{"type":"message","target":"{a_id}","big":"{big}"}}"#),
        );
        assert_eq!(read_text(&mut a)["from"], b_id.as_str());

        // Rotate the certificate and reload.
        let second = make_cert();
        std::fs::write(&cert_path, &second.cert_pem).unwrap();
        std::fs::write(&key_path, &second.key_pem).unwrap();
        server
            .running
            .as_ref()
            .unwrap()
            .tls
            .as_ref()
            .unwrap()
            .reload()
            .unwrap();
        // New handshakes present the new certificate; the old one is no longer trusted.
        assert!(
            connect_tls(addr, &first.der).is_err(),
            "{driver:?}: old cert still served"
        );
        let mut c = connect_tls(addr, &second.der).unwrap();
        assert_eq!(read_text(&mut c)["type"], "welcome");
        // The session established before the reload still relays.
        send_text(
            &mut b,
            &format!(r#"{{"type":"message","target":"{a_id}","after":"reload"}}"#),
        );
        assert_eq!(read_text(&mut a)["after"], "reload");
        send_text(&mut a, r#"{"type":"ping"}"#);
        assert_eq!(read_text(&mut a)["type"], "pong");
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn stun_over_tls_on_the_stun_tcp_port() {
    use switchboard::proto::stun::{
        encode_binding_request, BindingRequest, StunMessage, TransactionId,
    };
    let dir = std::env::temp_dir().join(format!("sb-stuntls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = make_cert();
    std::fs::write(dir.join("cert.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &cert.key_pem).unwrap();
    let mut cfg = config(switchboard::server::DriverChoice::Uring, 1);
    cfg.tls.enabled = true;
    cfg.tls.cert_path = dir.join("cert.pem").display().to_string();
    cfg.tls.key_path = dir.join("key.pem").display().to_string();
    let server = Server::start(&cfg);
    let stun = server.running.as_ref().unwrap().stun_addr.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ccfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(ccfg), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let tcp = TcpStream::connect(stun).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = tcp.local_addr().unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut req = [0u8; 64];
    let n = encode_binding_request(
        &mut req,
        &BindingRequest {
            transaction_id: TransactionId([3; 12]),
            change_request: None,
            response_port: None,
            padding_bytes: None,
            username: None,
            software: None,
            integrity_key: None,
            fingerprint: false,
        },
    )
    .unwrap();
    s.write_all(&req[..n]).unwrap();
    s.flush().unwrap();
    let mut ans = [0u8; 32];
    s.read_exact(&mut ans).unwrap();
    let m = StunMessage::parse(&ans).unwrap();
    assert_eq!(m.transaction_id(), TransactionId([3; 12]));
    assert_eq!(m.xor_mapped_address(), Some(local));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
