//! Signaling frames on arbitrary bytes: the parser alone, then a router relaying them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::proto::signal::{Config, ConnToken, Limits, Parser, Router, Sink};

struct Count(usize);

impl Sink for Count {
    fn send_text(&mut self, _conn: ConnToken, parts: &[&[u8]]) {
        let mut all = Vec::new();
        for p in parts {
            all.extend_from_slice(p);
        }
        // Whatever the input, what the router sends is UTF-8 (it began as valid text).
        assert!(std::str::from_utf8(&all).is_ok());
        self.0 += 1;
    }

    fn close(&mut self, _conn: ConnToken, _code: u16, _reason: &str) {}
}

fuzz_target!(|data: &[u8]| {
    // The WebSocket layer only hands the router valid UTF-8 text.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut p = Parser::new();
    let _ = p.parse(text.as_bytes());
    let mut r = Router::new(Config {
        node: 0,
        shard: 0,
        shards: 2,
        limits: Limits::default(),
        ice_servers_json: "[]".into(),
        heartbeat_ms: 1000,
        secret: [0; 32],
        room_hash_seeds: [1, 2, 3, 4],
        cluster: false,
        turn: None,
    });
    let mut sink = Count(0);
    let a = r.open(0, &mut sink).unwrap();
    let _b = r.open(1, &mut sink).unwrap();
    r.handle_text(a, text.as_bytes(), 0, &mut sink);
    r.close(a, &mut sink);
});
