//! The WebSocket decoder on arbitrary bytes: any split of the input into reads, any limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::proto::ws::{Decoded, Decoder, Limits};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // The first byte picks small or large limits, the second the read size.
    let limits = if data[0] & 1 == 0 {
        Limits {
            frame_bytes_max: 125,
            message_bytes_max: 300,
        }
    } else {
        Limits {
            frame_bytes_max: 1 << 16,
            message_bytes_max: 1 << 20,
        }
    };
    let chunk = usize::from(data[1]).max(1);
    let input = &data[2..];
    let mut dec = Decoder::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Decoded::Message { consumed, .. }) | Ok(Decoded::Fragment { consumed }) => {
                    assert!(consumed > 0 && consumed <= buf.len());
                    buf.drain(..consumed);
                }
                Ok(Decoded::Incomplete { needed }) => {
                    assert!(needed > 0);
                    break;
                }
                Err(e) => {
                    assert!(matches!(e.close_code(), 1002 | 1007 | 1009));
                    return;
                }
            }
        }
    }
});
