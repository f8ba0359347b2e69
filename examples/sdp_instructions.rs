//! Parses, validates or writes one SDP file a given number of times, for counting
//! instructions under callgrind, which are stable where wall-clock time on a shared machine
//! is not. Run it twice with different counts and divide the difference by the difference in
//! counts, so that start-up and reading the file cancel out:
//!
//! ```sh
//! cargo build --release --example sdp_instructions
//! for n in 1 1001; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \
//!     target/release/examples/sdp_instructions parse tests/vectors/sdp/chromium-dc-offer.sdp $n
//! done
//! ```
//!
//! The `summary:` lines of the two output files give the totals.

use std::hint::black_box;

use switchboard::proto::sdp::{parse_candidate, validate, Sdp, SdpKind, SdpLimits};

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: sdp_instructions parse|validate|candidates|build FILE COUNT";
    let work = args.next().expect(usage);
    let path = args.next().expect(usage);
    let count: u32 = args.next().and_then(|n| n.parse().ok()).expect(usage);
    let text = std::fs::read_to_string(&path).expect("the SDP file is readable");
    let limits = SdpLimits::default();
    let parsed = Sdp::parse(&text).expect("the SDP file parses");
    let mut out = Vec::with_capacity(2 * text.len());
    let candidates: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("a=candidate:"))
        .collect();
    for _ in 0..count {
        match work.as_str() {
            "parse" => {
                black_box(Sdp::parse(black_box(&text)).is_ok());
            }
            "validate" => {
                black_box(validate(black_box(&text), SdpKind::Offer, &limits).is_ok());
            }
            // Every `a=candidate` line of the file, as trickle candidates.
            "candidates" => {
                for line in &candidates {
                    black_box(parse_candidate(black_box(line)).is_ok());
                }
            }
            "build" => {
                out.clear();
                black_box(&parsed).write_to(&mut out);
                black_box(&out);
            }
            _ => panic!("{usage}"),
        }
    }
}
