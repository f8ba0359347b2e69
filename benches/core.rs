//! Micro-benchmarks of the cores on the hot path: WebSocket frame parse + unmask, signal
//! JSON parse, session lookup, same-shard relay, and cross-shard ring batches.
//!
//! Run: `cargo bench --bench core`. Seed targets: lookup < 50 ns, relay < 100 ns.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use switchboard::proto::signal::{
    Batch, Config, ConnToken, Limits, Parser, Router, SessionId, Sink,
};
use switchboard::proto::ws::{self, Decoded, Decoder};

/// Appends frames like the shard's send queue does, and forgets them now and then.
struct VecSink(Vec<u8>);

impl Sink for VecSink {
    fn send_text(&mut self, _conn: ConnToken, parts: &[&[u8]]) {
        if self.0.len() > 1 << 20 {
            self.0.clear();
        }
        ws::write_frame(&mut self.0, ws::OpCode::Text, parts);
    }

    fn close(&mut self, _conn: ConnToken, code: u16, reason: &str) {
        ws::write_close(&mut self.0, Some(code), reason);
    }
}

const CANDIDATE: &str = r#"{"type":"ice-candidate","target":"TARGET_ID__","candidate":{"candidate":"candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 192.168.1.20 rport 46154 generation 0 ufrag EsAw network-cost 999","sdpMid":"0","sdpMLineIndex":0}}"#;

fn offer_json() -> String {
    let mut sdp = String::from("v=0\\r\\no=- 4611731400430051336 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\na=group:BUNDLE 0 1\\r\\na=extmap-allow-mixed\\r\\na=msid-semantic: WMS stream\\r\\n");
    for mid in 0..2 {
        sdp.push_str(&format!("m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\\r\\nc=IN IP4 0.0.0.0\\r\\na=rtcp:9 IN IP4 0.0.0.0\\r\\na=ice-ufrag:EsAw\\r\\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\\r\\na=ice-options:trickle\\r\\na=fingerprint:sha-256 DA:7B:57:DC:28:CE:04:4F:31:79:85:C4:31:67:EB:27:58:29:ED:77:2A:0D:24:AE:ED:AD:30:BC:BD:F1:9C:02\\r\\na=setup:actpass\\r\\na=mid:{mid}\\r\\na=sendrecv\\r\\na=rtcp-mux\\r\\na=rtpmap:111 opus/48000/2\\r\\na=rtcp-fb:111 transport-cc\\r\\na=fmtp:111 minptime=10;useinbandfec=1\\r\\na=rtpmap:63 red/48000/2\\r\\na=fmtp:63 111/111\\r\\n"));
    }
    format!(r#"{{"type":"offer","target":"TARGET_ID__","sdp":"{sdp}"}}"#)
}

fn masked(payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![0x81];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let mut body = payload.to_vec();
    ws::unmask(&mut body, mask);
    out.extend_from_slice(&body);
    out
}

fn router(shard: u8, shards: u8) -> Router {
    Router::new(Config {
        node: 0,
        shard,
        shards,
        limits: Limits::default(),
        ice_servers_json: "[]".into(),
        heartbeat_ms: 25_000,
        secret: [1; 32],
        room_hash_seeds: [1, 2, 3, 4],
        cluster: false,
        turn: None,
    })
}

fn ws_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws_parse_unmask");
    let limits = ws::Limits {
        frame_bytes_max: 1 << 20,
        message_bytes_max: 1 << 20,
    };
    for (name, payload) in [
        ("ice_candidate_250B", CANDIDATE.as_bytes().to_vec()),
        ("binary_16KiB", vec![b'a'; 16 * 1024]),
    ] {
        let frame = masked(&payload);
        g.throughput(Throughput::Bytes(payload.len() as u64));
        let mut dec = Decoder::new(limits);
        let mut buf = frame.clone();
        g.bench_function(name, |b| {
            b.iter(|| {
                // Unmasking in place twice restores the frame, so no copy is needed per
                // iteration; the decode result is consumed either way.
                buf.copy_from_slice(&frame);
                match dec.decode(black_box(&mut buf)) {
                    Ok(Decoded::Message { consumed, .. }) => consumed,
                    _ => unreachable!(),
                }
            })
        });
    }
    g.finish();
}

fn json_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("signal_json_parse");
    let offer = offer_json();
    for (name, text) in [
        ("ice_candidate", CANDIDATE.to_string()),
        ("offer_2KB", offer),
    ] {
        let mut p = Parser::new();
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(format!("{name}_{}B", text.len()), |b| {
            b.iter(|| p.parse(black_box(text.as_bytes())).map(|f| f.kind).unwrap())
        });
    }
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let mut r = router(0, 1);
    let mut sink = VecSink(Vec::new());
    let ids: Vec<SessionId> = (0..10_000).map(|i| r.open(i, &mut sink).unwrap()).collect();
    let texts: Vec<[u8; 11]> = ids.iter().map(|id| id.encode()).collect();
    let mut i = 0usize;
    c.bench_function("session_lookup_from_text", |b| {
        b.iter(|| {
            i = (i + 7919) % texts.len();
            let id = SessionId::parse(black_box(&texts[i])).unwrap();
            r.lookup(id)
        })
    });
}

fn relay(c: &mut Criterion) {
    let mut g = c.benchmark_group("relay_same_shard");
    let mut r = router(0, 1);
    let mut sink = VecSink(Vec::with_capacity(2 << 20));
    let a = r.open(0, &mut sink).unwrap();
    let b = r.open(1, &mut sink).unwrap();
    let text = CANDIDATE.replace("TARGET_ID__", &b.to_string());
    g.bench_function("ice_candidate_validated_to_queued", |bn| {
        bn.iter(|| r.relay_validated(a, b, black_box(text.as_bytes()), &mut sink))
    });
    g.bench_function("ice_candidate_with_json_validation", |bn| {
        bn.iter(|| r.handle_text(a, black_box(text.as_bytes()), 0, &mut sink))
    });
    let offer = offer_json().replace("TARGET_ID__", &b.to_string());
    g.bench_function("offer_2KB_with_json_validation", |bn| {
        bn.iter(|| r.handle_text(a, black_box(offer.as_bytes()), 0, &mut sink))
    });
    g.finish();
}

fn cross_shard(c: &mut Criterion) {
    let mut g = c.benchmark_group("cross_shard_ring");
    let (_wakers, mut links) = switchboard::shard::ring::mesh(2, 1024, 1 << 26).unwrap();
    let mut l1 = links.pop().unwrap();
    let mut l0 = links.pop().unwrap();
    let mut r0 = router(0, 2);
    let mut r1 = router(1, 2);
    let mut sink = VecSink(Vec::with_capacity(2 << 20));
    let a = r0.open(0, &mut sink).unwrap();
    let b = r1.open(0, &mut sink).unwrap();
    let text = CANDIDATE.replace("TARGET_ID__", &b.to_string());
    for batch in [1u64, 16, 64] {
        g.throughput(Throughput::Elements(batch));
        g.bench_function(format!("relay_push_pop_deliver_batch_{batch}"), |bn| {
            bn.iter_batched(
                || (),
                |()| {
                    for _ in 0..batch {
                        r0.relay_validated(a, b, text.as_bytes(), &mut sink);
                    }
                    let out: Batch = r0.take_batch(1).unwrap();
                    l0.send(1, out);
                    let mut cursor = 0;
                    let got = l1.pop_any(&mut cursor).unwrap();
                    r1.handle_batch(&got, 0, &mut sink);
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, ws_parse, json_parse, lookup, relay, cross_shard);
criterion_main!(benches);
