//! The Autobahn|Testsuite case set (cases 1–11; 12–13 are permessage-deflate, not offered)
//! run by kosoku against `/v1/echo`, on both drivers. Every case must end OK, NON-STRICT or
//! INFORMATIONAL, and its close behaviour OK or INFORMATIONAL.
//!
//! kosoku is installed by `.ci/run` (`pip install kosoku==0.1.0`); without it this test
//! fails, it does not skip.

mod common;

use std::process::Command;

use common::{config, Server, DRIVERS};

#[test]
fn autobahn_cases_pass_on_both_drivers() {
    let kosoku = std::env::var("KOSOKU").unwrap_or_else(|_| "kosoku".into());
    for driver in DRIVERS {
        let mut cfg = config(driver, 2);
        cfg.server.echo_endpoint = true;
        let server = Server::start(&cfg);
        let out = std::env::temp_dir().join(format!(
            "switchboard-autobahn-{}-{:?}",
            std::process::id(),
            driver
        ));
        let _ = std::fs::remove_dir_all(&out);
        let status = Command::new(&kosoku)
            .args(["-p", "2", "-x", "12.*", "-x", "13.*", "-o"])
            .arg(&out)
            .arg(format!("{}/v1/echo", server.addr))
            .status()
            .unwrap_or_else(|e| panic!("cannot run {kosoku} (pip install kosoku==0.1.0): {e}"));
        let index = std::fs::read_to_string(out.join("index.json"))
            .unwrap_or_else(|e| panic!("kosoku ({status}) wrote no index.json: {e}"));
        let report: serde_json::Value = serde_json::from_str(&index).expect("index.json is JSON");
        let agents = report.as_object().expect("agents");
        assert_eq!(agents.len(), 1, "one agent under test");
        let (agent, cases) = agents.iter().next().unwrap();
        assert_eq!(
            agent, "switchboard",
            "the agent is named after our Server header"
        );
        let cases = cases.as_object().unwrap();
        assert!(cases.len() >= 300, "only {} cases ran", cases.len());
        let mut failed = Vec::new();
        for (id, c) in cases {
            let behavior = c["behavior"].as_str().unwrap_or("?");
            let close = c["behaviorClose"].as_str().unwrap_or("?");
            let ok = matches!(behavior, "OK" | "NON-STRICT" | "INFORMATIONAL")
                && matches!(close, "OK" | "INFORMATIONAL");
            if !ok {
                failed.push(format!("{id}: {behavior}/{close}"));
            }
        }
        eprintln!(
            "{driver:?}: {} Autobahn cases, {} failed",
            cases.len(),
            failed.len()
        );
        assert!(failed.is_empty(), "{driver:?}: failed cases: {failed:?}");
        drop(server);
        let _ = std::fs::remove_dir_all(&out);
    }
}
