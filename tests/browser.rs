//! The end-to-end suite in `tests/e2e/` (Chromium, aiortc and node-datachannel against the
//! built `switchboard` binary, the browser client and the demo page), run inside a
//! loopback-only network namespace so its ports and traffic never leave this test.
//!
//! Needs root (for `unshare -n`), Debian `chromium`, Node with `npm ci` done in `tests/e2e`,
//! and `pip install -r tests/e2e/requirements.txt`; `.ci/run` installs them. A missing tool
//! fails this test with a hint; it never skips.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The whole suite, browser launch included; each case has its own, smaller bound.
const SUITE_TIMEOUT_S: u64 = 600;

fn require(cmd: &str, args: &[&str], hint: &str) {
    match Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("`{cmd} {}` failed ({s}); {hint}", args.join(" ")),
        Err(e) => panic!("cannot run `{cmd}`: {e}; {hint}"),
    }
}

#[test]
fn e2e_suite_with_real_webrtc_clients() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let e2e = root.join("tests/e2e");
    require("node", &["--version"], "install Node.js 20 or later");
    require("unshare", &["--version"], "install util-linux");
    require("ip", &["-V"], "install iproute2");
    require(
        "/usr/bin/chromium",
        &["--version"],
        "apt-get install chromium",
    );
    for module in ["playwright-core", "node-datachannel", "ws"] {
        assert!(
            e2e.join("node_modules").join(module).is_dir(),
            "tests/e2e/node_modules/{module} is missing: run `npm ci` in tests/e2e"
        );
    }
    require(
        "python3",
        &["-c", "import aiortc"],
        "pip install -r tests/e2e/requirements.txt",
    );

    let started = Instant::now();
    let mut child = Command::new("unshare")
        .args([
            "-n",
            "sh",
            "-c",
            "ip link set lo up && exec node tests/e2e/run.mjs",
        ])
        .current_dir(root)
        .env("SWITCHBOARD_BIN", env!("CARGO_BIN_EXE_switchboard"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout can end the browsers and peers it started.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `unshare -n` (needs root): {e}"));

    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let tx2 = tx.clone();
    let readers = [
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        }),
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("[stderr] {line}"));
            }
        }),
    ];

    let deadline = started + Duration::from_secs(SUITE_TIMEOUT_S);
    let mut output = Vec::new();
    let status = loop {
        while let Ok(line) = rx.try_recv() {
            println!("{line}");
            output.push(line);
        }
        if let Some(status) = child.try_wait().expect("wait for the e2e suite") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for r in readers {
        let _ = r.join();
    }
    while let Ok(line) = rx.try_recv() {
        println!("{line}");
        output.push(line);
    }
    eprintln!("e2e suite took {:.1} s", started.elapsed().as_secs_f64());

    let summary = output
        .iter()
        .rev()
        .find(|l| l.ends_with(" failed") && l.contains(" passed, "));
    let Some(status) = status else {
        panic!("the e2e suite did not finish within {SUITE_TIMEOUT_S} s; output above");
    };
    assert!(
        status.success(),
        "the e2e suite failed ({status}): {}",
        summary.map_or("no summary line", String::as_str)
    );
    let summary = summary.expect("the e2e suite printed its `N passed, N failed` line");
    assert!(
        summary.ends_with(" 0 failed") && !summary.starts_with("0 passed"),
        "e2e: {summary}"
    );
}
