//! Arbitrary datagrams fed to the nat-check client core, from the server's
//! primary or alternate address, interleaved with timeouts. Nothing may
//! panic and time must move forward.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::proto::stun::{
    NatCheck, NatCheckConfig, TransactionId, NAT_CHECK_REQUEST_BYTES_MAX,
};

fuzz_target!(|data: &[u8]| {
    let server = "192.0.2.1:3478".parse().expect("address");
    let alternate = "192.0.2.2:3479".parse().expect("address");
    // Fixed ids let the fuzzer learn them and reach every test.
    let mut next_id = 0u8;
    let mut check = NatCheck::new(NatCheckConfig::new(server), || {
        next_id = next_id.wrapping_add(1);
        TransactionId([next_id; 12])
    });
    let mut now_ms = 0u64;
    let mut out = [0u8; NAT_CHECK_REQUEST_BYTES_MAX];
    // Each chunk starts with a control byte: low bit set means a timeout,
    // else the rest of the chunk (up to a 0xff separator) is a datagram.
    for chunk in data.split(|byte| *byte == 0xff) {
        while check.poll_transmit(now_ms, &mut out).is_some() {}
        if check.poll_report().is_some() {
            return;
        }
        let Some((&control, datagram)) = chunk.split_first() else {
            continue;
        };
        if control & 1 == 1 {
            let deadline = check
                .poll_timeout()
                .expect("a running check has a deadline");
            assert!(deadline >= now_ms);
            now_ms = deadline;
            check.handle_timeout(now_ms);
        } else {
            let from = if control & 2 == 0 { server } else { alternate };
            check.handle_input(now_ms, from, datagram);
        }
    }
});
