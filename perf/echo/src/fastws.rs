//! The fastwebsockets echo: the same job as the raw echo, done the way a Rust server would
//! do it with the fastest WebSocket framing measured here (crates.io `fastwebsockets`,
//! upgrade through hyper, tokio). One current-thread runtime, so it uses one core like the
//! other servers of the comparison.
//!
//! Unlike the raw echo it is a real WebSocket endpoint: fragments are reassembled
//! (`FragmentCollector`), text is checked for UTF-8, pings are answered and close handshakes
//! completed by the library. Text and binary messages go back as they came.
//!
//! Tasks are not wrapped in `tokio::task::unconstrained`: tokio's cooperative budget makes a
//! task yield only after 128 ready operations in a row, which a ping-pong with a few
//! messages in flight never reaches, so the default is what a real server would run.

use std::io;

use fastwebsockets::upgrade::{self, UpgradeFut};
use fastwebsockets::{FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::signal::unix::{signal, SignalKind};

/// Serves `listener` until SIGINT or SIGTERM.
pub fn run(listener: std::net::TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = terminate.recv() => return Ok(()),
                _ = interrupt.recv() => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        // As the raw echo and switchboard do: a small echo must not wait for
                        // the acknowledgement of the previous one.
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(serve_http(stream));
                    }
                    // Out of descriptors or a connection reset before accept: the listener
                    // is fine, the next accept may succeed.
                    Err(e) => eprintln!("echo-perf fastws: accept: {e}"),
                },
            }
        }
    })
}

/// Serves one connection's HTTP/1.1 until its upgrade request is answered.
async fn serve_http(stream: TcpStream) {
    let served = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service_fn(answer_upgrade))
        .with_upgrades();
    // A client that goes away before or during the upgrade ends only its own connection.
    let _ = served.await;
}

/// Answers the upgrade and starts the echo on the upgraded stream.
async fn answer_upgrade(
    mut request: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, upgraded) = upgrade::upgrade(&mut request)?;
    tokio::spawn(async move {
        // Clients of the bench leave without a close frame: the end of the stream is the
        // normal way out, not worth a line.
        let _ = echo(upgraded).await;
    });
    Ok(response)
}

async fn echo(upgraded: UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(upgraded.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}
