//! The io_uring driver.

use std::net::TcpListener;

use super::{Core, Shared};

/// io_uring sizes.
#[derive(Debug, Clone, Copy)]
pub struct UringConfig {
    /// Submission queue entries.
    pub entries: u32,
    /// Provided receive buffers.
    pub buffers: u16,
}

/// Checks that io_uring can start here.
///
/// # Errors
/// Why not, as a sentence for the log.
pub fn probe(entries: u32) -> Result<(), String> {
    let _ = entries;
    Err("the io_uring driver is not built yet".into())
}

/// Runs the shard on io_uring.
///
/// # Errors
/// Always, until the driver lands.
pub fn run(
    core: &mut Core,
    listener: TcpListener,
    shared: &Shared,
    drain_timeout_ms: u64,
    cfg: UringConfig,
) -> std::io::Result<()> {
    let _ = (core, listener, shared, drain_timeout_ms, cfg);
    Err(std::io::Error::other("io_uring driver not built"))
}
