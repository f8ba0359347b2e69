//! Proves that parsing, validating and walking a description allocates nothing, and that
//! writing one allocates nothing when the caller reserved room.
//!
//! A counting global allocator can only be installed per test binary, hence this file.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use switchboard::proto::sdp::{parse_candidate, validate, Sdp, SdpKind, SdpLimits};

/// Counts allocations made by the current thread, so that other tests running in parallel
/// in this binary do not disturb the count.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`. The counter is a
// const-initialised thread-local `Cell` without destructor, so touching it never allocates
// or re-enters the allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` through `alloc` or `realloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as ours, passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations_during(work: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    work();
    ALLOCATIONS.with(Cell::get) - before
}

const CORPUS: &[(&str, &str, Option<SdpKind>)] = &[
    (
        "rfc8866-example",
        include_str!("vectors/sdp/rfc8866-example.sdp"),
        None,
    ),
    (
        "rfc8829-offer-a1",
        include_str!("vectors/sdp/rfc8829-offer-a1.sdp"),
        Some(SdpKind::Offer),
    ),
    (
        "rfc8829-answer-a1",
        include_str!("vectors/sdp/rfc8829-answer-a1.sdp"),
        Some(SdpKind::Answer),
    ),
    (
        "rfc8829-offer-b1",
        include_str!("vectors/sdp/rfc8829-offer-b1.sdp"),
        Some(SdpKind::Offer),
    ),
    (
        "chromium-dc-offer",
        include_str!("vectors/sdp/chromium-dc-offer.sdp"),
        Some(SdpKind::Offer),
    ),
    (
        "chromium-dc-answer",
        include_str!("vectors/sdp/chromium-dc-answer.sdp"),
        Some(SdpKind::Answer),
    ),
    (
        "chromium-av-offer",
        include_str!("vectors/sdp/chromium-av-offer.sdp"),
        Some(SdpKind::Offer),
    ),
    (
        "chromium-av-answer",
        include_str!("vectors/sdp/chromium-av-answer.sdp"),
        Some(SdpKind::Answer),
    ),
    (
        "aiortc-offer",
        include_str!("vectors/sdp/aiortc-offer.sdp"),
        Some(SdpKind::Offer),
    ),
    (
        "aiortc-answer",
        include_str!("vectors/sdp/aiortc-answer.sdp"),
        Some(SdpKind::Answer),
    ),
    (
        "node-datachannel-offer",
        include_str!("vectors/sdp/node-datachannel-offer.sdp"),
        Some(SdpKind::Offer),
    ),
    (
        "node-datachannel-answer",
        include_str!("vectors/sdp/node-datachannel-answer.sdp"),
        Some(SdpKind::Answer),
    ),
];

#[test]
fn parse_validate_and_walk_allocate_nothing() {
    let limits = SdpLimits::default();
    for (name, text, kind) in CORPUS {
        let count = allocations_during(|| {
            let sdp = Sdp::parse(text).unwrap();
            let mut attributes = 0;
            for (_, _line) in sdp.lines() {}
            for section in sdp.media() {
                attributes += section.attributes().count();
                for candidate in section.candidates() {
                    let _ = (candidate.generation(), candidate.network_cost());
                }
                let _ = (section.mid(), section.ice_ufrag(), section.fingerprint());
            }
            assert!(attributes > 0 || *name == "rfc8866-example");
            if let Some(kind) = kind {
                validate(text, *kind, &limits).unwrap();
            }
        });
        assert_eq!(count, 0, "{name}: parse, validate and walk allocated");
    }
}

#[test]
fn write_into_reserved_buffer_allocates_nothing() {
    let mut out = Vec::with_capacity(64 * 1024);
    for (name, text, _) in CORPUS {
        let sdp = Sdp::parse(text).unwrap();
        let count = allocations_during(|| {
            out.clear();
            sdp.write_to(&mut out);
        });
        assert_eq!(count, 0, "{name}: write_to allocated");
        assert_eq!(out, text.as_bytes(), "{name}");
        let count = allocations_during(|| {
            out.clear();
            sdp.write_typed_to(&mut out);
        });
        assert_eq!(count, 0, "{name}: write_typed_to allocated");
        assert_eq!(out, text.as_bytes(), "{name}");
    }
}

#[test]
fn parse_candidate_allocates_nothing() {
    let line = "candidate:2543964205 1 udp 2122260223 127.0.0.1 57526 typ host generation 0 \
                network-id 1 network-cost 50";
    let count = allocations_during(|| {
        let candidate = parse_candidate(line).unwrap();
        assert_eq!(candidate.network_cost(), Some(50));
    });
    assert_eq!(count, 0);
}

#[test]
fn the_counter_counts() {
    let count = allocations_during(|| drop(std::hint::black_box(vec![1u8; 16])));
    assert_eq!(count, 1);
}
