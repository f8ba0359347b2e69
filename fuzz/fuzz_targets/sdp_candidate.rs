//! Feeds arbitrary bytes to the trickle candidate parser. An accepted candidate must write
//! back to text that parses to the same candidate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::proto::sdp::{parse_candidate, write_candidate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(candidate) = parse_candidate(text) else {
        return;
    };
    let _ = (
        candidate.generation(),
        candidate.network_id(),
        candidate.tcp_type(),
    );
    let mut out = Vec::with_capacity(text.len() + 16);
    write_candidate(&mut out, &candidate);
    let written = std::str::from_utf8(&out).expect("writer output is UTF-8");
    assert_eq!(parse_candidate(written), Ok(candidate));
});
