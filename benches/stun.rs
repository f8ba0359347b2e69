//! STUN hot path: parsing a Binding request and answering it.
//!
//! Run with `cargo bench --bench stun`. The answer to a bare request is the
//! 32-byte XOR-MAPPED-ADDRESS response the shard sends most.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switchboard::proto::stun::{
    encode_binding_request, BindingRequest, Responder, ResponderConfig, Response, StunMessage,
    TransactionId, RESPONSE_BYTES_MAX,
};

fn request(fingerprint: bool) -> Vec<u8> {
    let mut out = [0u8; 64];
    let len = encode_binding_request(
        &mut out,
        &BindingRequest {
            transaction_id: TransactionId([0x5a; 12]),
            fingerprint,
            ..BindingRequest::default()
        },
    )
    .expect("a bare request fits in 64 bytes");
    out[..len].to_vec()
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("stun_parse");
    group.throughput(Throughput::Elements(1));
    for (name, fingerprint) in [
        ("binding_request", false),
        ("binding_request_fingerprint", true),
    ] {
        let bytes = request(fingerprint);
        group.bench_function(name, |b| {
            b.iter(|| {
                let message = StunMessage::parse(black_box(&bytes)).expect("valid request");
                black_box(message.transaction_id())
            })
        });
    }
    group.finish();
}

fn bench_respond(c: &mut Criterion) {
    let responder = Responder::new(ResponderConfig::default());
    let source: SocketAddr = "198.51.100.7:40000".parse().expect("address");
    let local: SocketAddr = "192.0.2.1:3478".parse().expect("address");
    let mut out = [0u8; RESPONSE_BYTES_MAX];
    let mut group = c.benchmark_group("stun_respond");
    group.throughput(Throughput::Elements(1));
    for (name, fingerprint) in [
        ("binding_request", false),
        ("binding_request_fingerprint", true),
    ] {
        let bytes = request(fingerprint);
        group.bench_function(name, |b| {
            b.iter(|| {
                let response = responder.respond(black_box(&bytes), source, local, &mut out);
                let Response::Send(reply) = response else {
                    panic!("a valid request is answered");
                };
                black_box(reply.len)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse, bench_respond);
criterion_main!(benches);
