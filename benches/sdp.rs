//! SDP parse and write speed: ours against the `sdp` crate (webrtc-rs), `webrtc-sdp`
//! (Mozilla) and str0m's `SdpOffer`, one criterion group per input so the reports sit side
//! by side.
//!
//! Run with `cargo bench --bench sdp`.

use std::hint::black_box;
use std::io::Cursor;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switchboard::proto::sdp::{validate, Sdp, SdpKind, SdpLimits};

const INPUTS: &[(&str, &str)] = &[
    (
        "chromium-dc-offer",
        include_str!("../tests/vectors/sdp/chromium-dc-offer.sdp"),
    ),
    (
        "chromium-av-offer",
        include_str!("../tests/vectors/sdp/chromium-av-offer.sdp"),
    ),
];

fn parsers(c: &mut Criterion) {
    for (name, text) in INPUTS {
        let mut group = c.benchmark_group(*name);
        group.throughput(Throughput::Bytes(text.len() as u64));

        group.bench_function(BenchmarkId::new("parse", "switchboard"), |b| {
            b.iter(|| Sdp::parse(black_box(text)).unwrap())
        });
        group.bench_function(BenchmarkId::new("parse", "sdp"), |b| {
            b.iter(|| {
                let mut reader = Cursor::new(black_box(text).as_bytes());
                sdp::SessionDescription::unmarshal(&mut reader).unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("parse", "webrtc-sdp"), |b| {
            b.iter(|| webrtc_sdp::parse_sdp(black_box(text), false).unwrap())
        });
        group.bench_function(BenchmarkId::new("parse", "str0m"), |b| {
            b.iter(|| str0m::change::SdpOffer::from_sdp_string(black_box(text)).unwrap())
        });

        // The relay's whole check: limits, parse, credentials and setup.
        let limits = SdpLimits::default();
        group.bench_function(BenchmarkId::new("validate", "switchboard"), |b| {
            b.iter(|| validate(black_box(text), SdpKind::Offer, &limits).unwrap())
        });

        // Writing starts from an already parsed description in every library. Ours copies the
        // checked lines (`write_to`) or writes them from their typed form (`write_typed_to`).
        let ours = Sdp::parse(text).unwrap();
        let mut out = Vec::with_capacity(2 * text.len());
        group.bench_function(BenchmarkId::new("build", "switchboard"), |b| {
            b.iter(|| {
                out.clear();
                black_box(&ours).write_to(&mut out)
            })
        });
        group.bench_function(BenchmarkId::new("build", "switchboard-typed"), |b| {
            b.iter(|| {
                out.clear();
                black_box(&ours).write_typed_to(&mut out)
            })
        });
        let mut reader = Cursor::new(text.as_bytes());
        let theirs = sdp::SessionDescription::unmarshal(&mut reader).unwrap();
        group.bench_function(BenchmarkId::new("build", "sdp"), |b| {
            b.iter(|| black_box(&theirs).marshal())
        });
        let mozilla = webrtc_sdp::parse_sdp(text, false).unwrap();
        group.bench_function(BenchmarkId::new("build", "webrtc-sdp"), |b| {
            b.iter(|| black_box(&mozilla).to_string())
        });
        let str0m_offer = str0m::change::SdpOffer::from_sdp_string(text).unwrap();
        group.bench_function(BenchmarkId::new("build", "str0m"), |b| {
            b.iter(|| black_box(&str0m_offer).to_sdp_string())
        });
        group.finish();
    }
}

criterion_group!(benches, parsers);
criterion_main!(benches);
