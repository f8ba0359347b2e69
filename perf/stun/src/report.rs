//! Turns the `key=value` lines of several load runs into the Markdown results file: medians
//! per server over the rounds, ratios within each round, and the goals of issue 5.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Servers whose label starts with this are ours; "coturn" and "minimal" are the peers.
const OURS_PREFIX: &str = "switchboard";
const COTURN: &str = "coturn";
const MINIMAL: &str = "minimal";

/// Goals of issue 5.
const VS_COTURN_MIN: f64 = 2.5;
const VS_MINIMAL_MIN: f64 = 0.95;
/// A bare 20-byte request answered with XOR-MAPPED-ADDRESS only (RFC 8489 §14.2).
const ANSWER_BYTES_RFC_MIN: f64 = 32.0;

type Run = BTreeMap<String, String>;

fn parse_line(line: &str) -> Option<Run> {
    let run: Run = line
        .split_ascii_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    run.contains_key("label").then_some(run)
}

fn num(run: &Run, key: &str) -> f64 {
    run.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Builds the report. `preamble` is Markdown put before the tables (date, machine, command).
pub fn render(results: &str, preamble: &str) -> Result<String, String> {
    let runs: Vec<Run> = results.lines().filter_map(parse_line).collect();
    if runs.is_empty() {
        return Err("no results to report (no line with label=)".into());
    }
    let scenario_of = |r: &Run| {
        r.get("scenario")
            .cloned()
            .unwrap_or_else(|| "closed".into())
    };
    let mut scenarios: Vec<String> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    for r in &runs {
        if !scenarios.contains(&scenario_of(r)) {
            scenarios.push(scenario_of(r));
        }
        if !labels.contains(&r["label"]) {
            labels.push(r["label"].clone());
        }
    }
    let mut md = String::new();
    md.push_str(preamble);
    let mut goals = String::from(
        "\n## Goals (issue 5)\n\n| scenario | server | goal | measured | met |\n|---|---|---|---|---|\n",
    );
    for sc in &scenarios {
        let of = |label: &str| -> Vec<&Run> {
            runs.iter()
                .filter(|r| r["label"] == label && &scenario_of(r) == sc)
                .collect()
        };
        let med =
            |label: &str, key: &str| median(of(label).into_iter().map(|r| num(r, key)).collect());
        let sum = |label: &str, key: &str| of(label).into_iter().map(|r| num(r, key)).sum::<f64>();
        let offered = runs
            .iter()
            .find(|r| &scenario_of(r) == sc)
            .and_then(|r| r.get("offered_per_s").cloned())
            .unwrap_or_else(|| "max".into());
        let outstanding = runs
            .iter()
            .find(|r| &scenario_of(r) == sc)
            .map_or(f64::NAN, |r| num(r, "outstanding"));
        let _ = writeln!(
            md,
            "\n## Scenario `{sc}`: {} with at most {outstanding:.0} requests outstanding\n",
            if offered == "max" {
                "closed loop, as fast as answers come".to_string()
            } else {
                format!("open loop at {offered} requests/s offered to every server")
            }
        );
        md.push_str(
            "| server | rounds | responses/s | server CPU | **responses per server core-s** | \
             per round | drops | late | p50 µs | p99 µs | p99.9 µs | answer bytes | bytes out / in | \
             client CPU |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for l in labels.iter().filter(|l| !of(l).is_empty()) {
            let per_round: Vec<String> = of(l)
                .into_iter()
                .map(|r| format!("{:.0}k", num(r, "responses_per_core_s") / 1e3))
                .collect();
            let _ = writeln!(
                md,
                "| {l} | {} | {:.0} | {:.0} % | **{:.0}** | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {:.3} | {:.0} % |",
                of(l).len(),
                med(l, "responses_per_s"),
                med(l, "server_cpu_pct"),
                med(l, "responses_per_core_s"),
                per_round.join(", "),
                sum(l, "drops"),
                sum(l, "late"),
                med(l, "p50_us"),
                med(l, "p99_us"),
                med(l, "p999_us"),
                answer_sizes(of(l).into_iter()),
                med(l, "amplification"),
                med(l, "client_cpu_pct"),
            );
        }
        // Ratios within a round (the servers of one round ran back to back), then the median.
        let ratio = |ours: &str, peer: &str| -> f64 {
            let mut v = Vec::new();
            for r in of(ours) {
                let round = &r["round"];
                if let Some(p) = of(peer).into_iter().find(|p| &p["round"] == round) {
                    v.push(num(r, "responses_per_core_s") / num(p, "responses_per_core_s"));
                }
            }
            median(v)
        };
        let yes = |b: bool| if b { "yes" } else { "**no**" };
        let coturn_amplification = med(COTURN, "amplification");
        for l in labels
            .iter()
            .filter(|l| l.starts_with(OURS_PREFIX) && !of(l).is_empty())
        {
            let vs_coturn = ratio(l, COTURN);
            let vs_minimal = ratio(l, MINIMAL);
            let drops = sum(l, "drops");
            let amplification = med(l, "amplification");
            let answer_max = of(l)
                .into_iter()
                .map(|r| num(r, "answer_bytes_max"))
                .fold(0.0, f64::max);
            let _ = writeln!(
                goals,
                "| {sc} | {l} | ≥ {VS_COTURN_MIN}× coturn per server core-s | {vs_coturn:.2}× | {} |",
                if vs_coturn.is_nan() { "n/a" } else { yes(vs_coturn >= VS_COTURN_MIN) }
            );
            let _ = writeln!(
                goals,
                "| {sc} | {l} | ≥ {:.0} % of the minimal responder | {:.1} % | {} |",
                VS_MINIMAL_MIN * 100.0,
                vs_minimal * 100.0,
                if vs_minimal.is_nan() {
                    "n/a"
                } else {
                    yes(vs_minimal >= VS_MINIMAL_MIN)
                }
            );
            let _ = writeln!(
                goals,
                "| {sc} | {l} | zero drops at {outstanding:.0} outstanding | {drops:.0} | {} |",
                yes(drops == 0.0)
            );
            let _ = writeln!(
                goals,
                "| {sc} | {l} | amplification at the RFC minimum (32/20 = 1.6) | {amplification:.3} \
                 (largest answer {answer_max:.0} B; coturn {coturn_amplification:.3}) | {} |",
                yes(answer_max <= ANSWER_BYTES_RFC_MIN && (amplification - 1.6).abs() < 0.001)
            );
        }
    }
    md.push_str(
        "\nMedians over the rounds; drops and late answers are summed over all rounds. \
         \"per round\" is responses per server core-second in each round, in order. Ratios \
         below are taken within each round (servers of a round ran back to back), then the \
         median over rounds.\n",
    );
    md.push_str(&goals);
    md.push_str("\n## Raw runs\n\n```\n");
    for line in results.lines().filter(|l| parse_line(l).is_some()) {
        md.push_str(line);
        md.push('\n');
    }
    md.push_str("```\n");
    Ok(md)
}

fn answer_sizes<'a>(runs: impl Iterator<Item = &'a Run>) -> String {
    let (mut lo, mut hi) = (f64::INFINITY, 0f64);
    for r in runs {
        lo = lo.min(num(r, "answer_bytes_min"));
        hi = hi.max(num(r, "answer_bytes_max"));
    }
    if lo == hi {
        format!("{lo:.0}")
    } else {
        format!("{lo:.0}–{hi:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_come_from_the_same_round() {
        let results = "\
label=minimal round=1 responses_per_core_s=1000 drops=0 amplification=1.600 answer_bytes_min=32 answer_bytes_max=32 outstanding=256
label=switchboard-epoll round=1 responses_per_core_s=960 drops=0 amplification=1.600 answer_bytes_min=32 answer_bytes_max=32 outstanding=256
label=coturn round=1 responses_per_core_s=300 drops=2 amplification=4.000 answer_bytes_min=80 answer_bytes_max=80 outstanding=256
label=minimal round=2 responses_per_core_s=500 drops=0 amplification=1.600 answer_bytes_min=32 answer_bytes_max=32 outstanding=256
label=switchboard-epoll round=2 responses_per_core_s=450 drops=0 amplification=1.600 answer_bytes_min=32 answer_bytes_max=32 outstanding=256
label=coturn round=2 responses_per_core_s=200 drops=0 amplification=4.000 answer_bytes_min=80 answer_bytes_max=80 outstanding=256
";
        let md = render(results, "# t\n").unwrap();
        // Per-round ratios vs coturn: 3.2 and 2.25, median 2.725.
        assert!(md.contains("| 2.73× | yes |"), "{md}");
        assert!(md.contains("Scenario `closed`"), "{md}");
        // vs minimal: 96 % and 90 %, median 93 %.
        assert!(md.contains("| 93.0 % | **no** |"), "{md}");
        assert!(
            md.contains("| zero drops at 256 outstanding | 0 | yes |"),
            "{md}"
        );
    }
}
