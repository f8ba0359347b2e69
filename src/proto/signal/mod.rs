//! Signaling protocol v1: client frame parsing and the per-shard router.
//!
//! The wire protocol is specified in `docs/protocol.md`. [`router`] documents how a shard
//! drives the router; [`json`] how frames are parsed without touching the relayed bytes.

pub mod cluster;
pub mod error;
pub mod id;
pub mod json;
pub mod router;

pub use error::{ErrorCode, FrameError};
pub use id::SessionId;
pub use json::{ClientFrame, Kind, Parser};
pub use router::{
    room_hasher, room_owner, Batch, Config, ConnToken, Counters, Limits, Record, Router, Sink,
    Span, TurnConfig,
};
