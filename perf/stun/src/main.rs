//! `stun-perf`: the STUN Binding benchmark of `perf/stun/run.sh`.
//!
//! ```text
//! stun-perf load --server IP:PORT [--outstanding 256] [--duration-s 10] [--warmup-s 1]
//!                [--requests-max N] [--rate PER_S] [--timeout-ms 1000] [--batch 64]
//!                [--server-pid PID]
//!                [--label NAME] [--round N] [--bind 127.0.0.1:0]
//! stun-perf responder --listen IP:PORT [--batch 64]
//! stun-perf probe --server IP:PORT [--timeout-ms 5000]
//! stun-perf report --results FILE --preamble FILE
//! ```
//!
//! `load` prints one `key=value` line; `report` turns a file of them into Markdown.

mod load;
mod report;
mod responder;
mod sys;
mod wire;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;

/// Socket buffers of the client and the reference responder (what switchboard's config
/// ships, `udp_rcvbuf_bytes`), so neither side drops for want of buffer.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

struct Flags(HashMap<String, String>);

impl Flags {
    fn parse(args: &[String]) -> Result<Flags, String> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let key = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --flag, got {flag:?}"))?;
            let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            map.insert(key.to_string(), value.clone());
        }
        Ok(Flags(map))
    }

    fn get<T: std::str::FromStr>(&mut self, key: &str, default: Option<T>) -> Result<T, String> {
        match self.0.remove(key) {
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{key} {v}: not a valid value")),
            None => default.ok_or_else(|| format!("--{key} is required")),
        }
    }

    fn opt<T: std::str::FromStr>(&mut self, key: &str) -> Result<Option<T>, String> {
        self.0
            .remove(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("--{key} {v}: not a valid value"))
            })
            .transpose()
    }

    fn done(self) -> Result<(), String> {
        match self.0.keys().next() {
            Some(k) => Err(format!("unknown flag --{k}")),
            None => Ok(()),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stun-perf: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let Some((command, rest)) = args.split_first() else {
        return Err(
            "usage: stun-perf load|responder|probe|report [--flags] (see src/main.rs)".into(),
        );
    };
    let mut f = Flags::parse(rest)?;
    let localhost = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
    match command.as_str() {
        "load" => {
            let a = load::LoadArgs {
                server: f.get("server", None)?,
                bind: f.get("bind", Some(localhost))?,
                outstanding: f.get("outstanding", Some(256))?,
                batch_max: f.get("batch", Some(64))?,
                warmup_s: f.get("warmup-s", Some(1.0))?,
                duration_s: f.get("duration-s", Some(10.0))?,
                requests_max: f.get("requests-max", Some(u64::MAX))?,
                rate_per_s: f.opt("rate")?,
                timeout_ms: f.get("timeout-ms", Some(1000))?,
                server_pid: f.opt("server-pid")?,
                label: f.get("label", Some("server".to_string()))?,
                round: f.get("round", Some(1))?,
                socket_buffer_bytes: SOCKET_BUFFER_BYTES,
            };
            f.done()?;
            if a.outstanding == 0 || a.batch_max == 0 || a.timeout_ms == 0 {
                return Err("--outstanding, --batch and --timeout-ms must be > 0".into());
            }
            if a.rate_per_s.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
                return Err("--rate must be > 0".into());
            }
            if !(a.duration_s > 0.0 && a.duration_s <= 3600.0 && a.warmup_s >= 0.0) {
                return Err("--duration-s must be in (0, 3600] and --warmup-s >= 0".into());
            }
            let line = load::run(&a).map_err(|e| format!("load against {}: {e}", a.server))?;
            println!("{line}");
            Ok(())
        }
        "responder" => {
            let listen = f.get("listen", None)?;
            let batch = f.get("batch", Some(64usize))?;
            f.done()?;
            responder::run(listen, batch.max(1), SOCKET_BUFFER_BYTES)
                .map_err(|e| format!("responder on {listen}: {e}"))
        }
        "probe" => {
            let server = f.get("server", None)?;
            let timeout_ms = f.get("timeout-ms", Some(5000u64))?;
            f.done()?;
            let (len, mapped) = load::probe(server, timeout_ms).map_err(|e| e.to_string())?;
            match mapped {
                Some(m) => println!("answer_bytes={len} mapped={m}"),
                None => println!("answer_bytes={len} mapped=none"),
            }
            Ok(())
        }
        "report" => {
            let results: String = f.get("results", None)?;
            let preamble: String = f.get("preamble", None)?;
            f.done()?;
            let text = std::fs::read_to_string(&results).map_err(|e| format!("{results}: {e}"))?;
            let pre = std::fs::read_to_string(&preamble).map_err(|e| format!("{preamble}: {e}"))?;
            print!("{}", report::render(&text, &pre)?);
            Ok(())
        }
        other => Err(format!(
            "unknown command {other:?}: load, responder, probe or report"
        )),
    }
}
