//! `switchboard bench` end to end: an in-process server, a short pairs run through the
//! library, and a sanity check of the JSON report it writes. Not a timing assertion.
//!
//! Why `messages_sent == messages_received` holds exactly: a message counts as sent when its
//! send timestamp falls inside the measured window, and after the window the bench stops
//! sending and drains until every message still in flight has arrived (or the drain
//! timeout passes, which the report would show as `undelivered` and an error).

use serde_json::Value;
use switchboard::bench::{self, BenchArgs, Scenario};

fn start_server() -> switchboard::server::Running {
    let cfg = {
        let mut c = switchboard::server::Config::embedded();
        c.server.listen = "127.0.0.1:0".parse().unwrap();
        c.server.shards = 1;
        c.server.pin_threads = false;
        // A per-session message rate limit (where the server has one) would turn a
        // closed-loop run into "rate-limited" errors, and an admin listener on a fixed port
        // would collide between tests running in parallel: switch both off. A server
        // without such a key rejects its override, which is then moot.
        for (key, value) in [
            ("SWITCHBOARD_SIGNAL_MESSAGES_PER_SECOND", "0"),
            ("SWITCHBOARD_ADMIN_ENABLED", "false"),
        ] {
            let _ = c.apply_env([(key.to_string(), value.to_string())]);
        }
        c
    };
    switchboard::server::start(&cfg).expect("server starts")
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "switchboard-bench-smoke-{}-{name}",
        std::process::id()
    ))
}

fn num(v: &Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} missing or not a number in {v:#}"))
}

#[test]
fn pairs_run_writes_a_sane_report() {
    let running = start_server();
    let url = format!("ws://{}/v1/signal", running.local_addr);
    let json = temp_path("pairs.json");
    let hgrm = temp_path("pairs.hgrm");
    let mut args = BenchArgs::new(&url);
    args.scenario = Scenario::Pairs;
    args.connections = 20;
    args.depth = 2;
    args.warmup = 0.5;
    args.duration = 1.5;
    args.setup_timeout = 20.0;
    args.server_pid = Some(std::process::id());
    args.json = Some(json.clone());
    args.hgrm = Some(hgrm.clone());
    let result = bench::run_report(&args);
    running.stop();
    running.join().expect("shards stop cleanly");
    let report = result.expect("the bench runs");

    let text = std::fs::read_to_string(&json).expect("the JSON report exists");
    let v: Value = serde_json::from_str(&text).expect("the report is JSON");
    let _ = std::fs::remove_file(&json);
    assert_eq!(v["scenario"], "pairs");
    assert_eq!(v["dialect"], "switchboard");
    assert_eq!(num(&v, "/errors"), 0.0, "{text}");
    assert_eq!(num(&v, "/connections_ready"), 20.0, "{text}");
    assert_eq!(num(&v, "/rooms_live"), 10.0, "{text}");
    let sent = num(&v, "/messages_sent");
    assert!(sent > 0.0, "{text}");
    assert_eq!(
        sent,
        num(&v, "/deliveries_expected"),
        "pairs: one receiver per message"
    );
    assert_eq!(sent, num(&v, "/messages_received"), "{text}");
    assert_eq!(num(&v, "/undelivered"), 0.0);
    assert_eq!(num(&v, "/unexpected"), 0.0);
    // Each side of each pair received the offer or answer and 8 candidates.
    assert_eq!(num(&v, "/negotiation_latency_us/count"), 20.0 * 9.0);
    let count = num(&v, "/latency_us/count");
    assert_eq!(count, sent);
    let (p50, p99, max) = (
        num(&v, "/latency_us/p50"),
        num(&v, "/latency_us/p99"),
        num(&v, "/latency_us/max"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{p50} {p99} {max}");
    assert!(num(&v, "/msgs_per_s") > 0.0);
    // The "server" is this process, so its CPU is known (and includes the client's).
    assert!(v["server_cpu_us_per_msg"].is_number(), "{text}");
    assert_eq!(report.messages_sent as f64, sent);

    let h = std::fs::read_to_string(&hgrm).expect("the .hgrm file exists");
    let _ = std::fs::remove_file(&hgrm);
    assert!(h.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
    assert!(h.contains("#[Max     ="));
}

#[test]
fn storm_and_rooms_run() {
    let running = start_server();
    let url = format!("ws://{}/v1/signal", running.local_addr);
    let mut storm = BenchArgs::new(&url);
    storm.scenario = Scenario::Storm;
    storm.connections = 100;
    storm.setup_timeout = 20.0;
    let storm = bench::run_report(&storm);
    let mut rooms = BenchArgs::new(&url);
    rooms.scenario = Scenario::Rooms;
    rooms.room_size = 5;
    rooms.connections = 20;
    rooms.warmup = 0.2;
    rooms.duration = 0.8;
    rooms.rate = 2000.0;
    let rooms = bench::run_report(&rooms);
    running.stop();
    running.join().expect("shards stop cleanly");

    let storm = storm.expect("storm runs");
    assert_eq!(storm.connections_ready, 100);
    assert_eq!(storm.errors, 0, "{:?}", storm.error_samples);
    assert!(storm.connections_per_s > 0.0);
    let t = &storm.steps_us.total;
    assert!(t.count == 100 && t.p50 <= t.p99 && t.p99 <= t.max);

    let rooms = rooms.expect("rooms runs");
    assert_eq!(rooms.errors, 0, "{:?}", rooms.error_samples);
    assert_eq!(rooms.rooms_live, 4);
    assert!(rooms.messages_sent > 0);
    assert_eq!(rooms.deliveries_expected, rooms.messages_sent * 4);
    assert_eq!(rooms.messages_received, rooms.deliveries_expected);
}

/// A WebSocket echo server for the `echo` dialect: one blocking thread per connection, which
/// answers the upgrade and sends every frame back unmasked (what perf/echo's servers do,
/// without their speed). Returns the address and a stop function.
fn start_echo_server() -> (std::net::SocketAddr, impl FnOnce()) {
    use base64::Engine as _;
    use sha1::Digest as _;
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn serve(stream: std::net::TcpStream) -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        let mut out = stream.try_clone()?;
        let mut input = BufReader::new(stream);
        let mut key = String::new();
        loop {
            let mut line = String::new();
            if input.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("sec-websocket-key") {
                    key = value.trim().to_owned();
                }
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut hash = sha1::Sha1::new();
        hash.update(key.as_bytes());
        hash.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
        let accept = base64::engine::general_purpose::STANDARD.encode(hash.finalize());
        write!(
            out,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )?;
        loop {
            let mut head = [0u8; 2];
            // The bench leaves by closing the socket: the end of the stream ends the thread.
            input.read_exact(&mut head)?;
            let field_bytes = match head[1] & 0x7f {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            let mut field = [0u8; 8];
            input.read_exact(&mut field[..field_bytes])?;
            let payload_bytes = match field_bytes {
                0 => usize::from(head[1] & 0x7f),
                2 => usize::from(u16::from_be_bytes([field[0], field[1]])),
                _ => u64::from_be_bytes(field) as usize,
            };
            let mut mask = [0u8; 4];
            input.read_exact(&mut mask)?;
            let mut frame = vec![head[0], head[1] & 0x7f];
            frame.extend_from_slice(&field[..field_bytes]);
            let start = frame.len();
            frame.resize(start + payload_bytes, 0);
            input.read_exact(&mut frame[start..])?;
            for (i, b) in frame[start..].iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
            out.write_all(&frame)?;
        }
    }

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let acceptor = std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stopping.load(Ordering::Acquire) {
                return;
            }
            if let Ok(stream) = stream {
                std::thread::spawn(move || serve(stream));
            }
        }
    });
    let stop_fn = move || {
        stop.store(true, Ordering::Release);
        // Wakes the acceptor, which then sees the flag.
        let _ = std::net::TcpStream::connect(addr);
        acceptor.join().expect("the acceptor stops");
    };
    (addr, stop_fn)
}

#[test]
fn echo_dialect_counts_each_message_back_at_its_sender() {
    let (addr, stop) = start_echo_server();
    let mut args = BenchArgs::new(&format!("ws://{addr}/"));
    args.dialect = bench::Dialect::Echo;
    args.scenario = Scenario::Pairs;
    args.connections = 20;
    args.depth = 2;
    args.warmup = 0.3;
    args.duration = 1.0;
    args.setup_timeout = 20.0;
    let report = bench::run_report(&args);
    stop();
    let r = report.expect("the bench runs");
    assert_eq!(r.errors, 0, "{:?}", r.error_samples);
    assert_eq!(r.connections_ready, 20);
    assert_eq!(r.rooms_live, 10);
    assert!(r.messages_sent > 0);
    // One receiver per message, the sender itself, and every message came back.
    assert_eq!(r.deliveries_expected, r.messages_sent);
    assert_eq!(r.messages_received, r.messages_sent);
    assert_eq!(r.unexpected, 0);
    // An echo server has nothing to relay an offer to: no negotiation.
    assert_eq!(r.negotiation_latency_us.count, 0);
}
