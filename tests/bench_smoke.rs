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
