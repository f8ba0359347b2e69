//! switchboard: a thread-per-core WebRTC signaling, STUN and relay appliance.
//!
//! [`proto`] holds the sans-IO protocol cores; [`shard`] the per-core loops and drivers,
//! the only code with `unsafe`; [`server`] configuration and start-up.
#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod bench;
pub mod natcheck;
pub mod proto;
pub mod server;
pub mod shard;
