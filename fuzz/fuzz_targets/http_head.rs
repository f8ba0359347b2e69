//! Request-head parsing and upgrade validation on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::proto::http::{parse_head, write_error, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        head_bytes_max: 4096,
    };
    match parse_head(data, limits) {
        Ok(Some((req, len))) => {
            assert!(len <= data.len());
            if let Err(e) = req.upgrade() {
                let mut out = Vec::new();
                write_error(&mut out, &e, "fuzz");
                assert!(out.starts_with(b"HTTP/1.1 "));
            }
        }
        Ok(None) => assert!(data.len() < 4096),
        Err(e) => assert!(matches!(e.status(), 400 | 405 | 426 | 431)),
    }
});
