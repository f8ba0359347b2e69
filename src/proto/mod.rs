//! Sans-IO protocol cores: they take bytes and `now`, and give back bytes, events and
//! deadlines. Nothing here touches a socket, a clock or a thread, and nothing is `unsafe`.
#![forbid(unsafe_code)]

pub mod auth;
pub mod http;
pub mod sdp;
pub mod signal;
pub mod stun;
pub mod turn_rest;
pub mod ws;
