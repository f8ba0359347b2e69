//! Helpers shared by the integration tests: an in-process server and a small client.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use switchboard::server::{self, Config, DriverChoice, Running};
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Both drivers, so every behaviour is checked on each.
pub const DRIVERS: [DriverChoice; 2] = [DriverChoice::Epoll, DriverChoice::Uring];

/// A config on an ephemeral loopback port.
pub fn config(driver: DriverChoice, shards: usize) -> Config {
    let mut c = Config::embedded();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.server.shards = shards;
    c.server.driver = driver;
    c.server.pin_threads = false;
    // Port 0 everywhere: tests run in parallel and must not share the STUN port.
    c.stun.listen = "127.0.0.1:0".parse().unwrap();
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    // Sessions end with their socket and no rate limit applies, unless a test asks.
    c.signal.resume_grace_ms = 0;
    c.signal.messages_per_second = 0;
    c
}

pub struct Server {
    pub running: Option<Running>,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(cfg: &Config) -> Server {
        let running = server::start(cfg).expect("server starts");
        let addr = running.local_addr;
        Server {
            running: Some(running),
            addr,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/v1/signal", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop();
            r.join().expect("shards stop cleanly");
        }
    }
}

pub struct Client {
    pub ws: Ws,
    pub id: String,
    pub welcome: Value,
}

pub async fn connect(url: &str) -> Client {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let welcome = recv_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let id = welcome["id"].as_str().unwrap().to_owned();
    Client { ws, id, welcome }
}

pub async fn recv_text(ws: &mut Ws) -> String {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("stream open")
            .expect("frame ok");
        match msg {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

pub async fn recv_json(ws: &mut Ws) -> Value {
    let t = recv_text(ws).await;
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("server sent invalid JSON {t}: {e}"))
}

/// Asserts nothing arrives for a short while.
pub async fn expect_silence(ws: &mut Ws, ms: u64) {
    if let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(ms), ws.next()).await {
        panic!("expected silence, got {m:?}");
    }
}

pub async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text.to_owned())).await.expect("send");
}

impl Client {
    pub async fn send(&mut self, text: &str) {
        send(&mut self.ws, text).await;
    }
    pub async fn recv(&mut self) -> Value {
        recv_json(&mut self.ws).await
    }
    pub async fn recv_text(&mut self) -> String {
        recv_text(&mut self.ws).await
    }
    pub async fn join(&mut self, room: &str) -> Value {
        self.send(&format!(r#"{{"type":"join","room":"{room}"}}"#))
            .await;
        let v = self.recv().await;
        assert_eq!(v["type"], "joined", "{v}");
        v
    }
    pub fn shard(&self) -> u8 {
        switchboard::proto::signal::SessionId::parse(self.id.as_bytes())
            .expect("server ids parse")
            .shard()
    }
}

/// Opens a raw TCP connection and completes the upgrade on `path`.
pub fn raw_upgrade(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Reads an HTTP response head.
pub fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            // A blocking read with a timeout is not restarted after a signal; io_uring's
            // task work on this thread (the driver probe ran here) can deliver one.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A masked client frame.
pub fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut out = vec![b0];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads server frames until a close frame; returns its status code.
pub fn read_close_code(s: &mut TcpStream) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Parse whatever whole frames are buffered.
        loop {
            if buf.len() < 2 {
                break;
            }
            let op = buf[0] & 0x0F;
            let (len, hl) = match buf[1] & 0x7F {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => (
                    u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if buf.len() < hl + len {
                break;
            }
            if op == 0x8 {
                return (len >= 2).then(|| u16::from_be_bytes([buf[hl], buf[hl + 1]]));
            }
            buf.drain(..hl + len);
        }
        match s.read(&mut chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Sends a raw HTTP request and returns the whole response (the server closes after it).
pub fn http(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
