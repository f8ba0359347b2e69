//! What a run prints and writes: the summary table, the JSON report, HdrHistogram's
//! percentile-distribution text (`.hgrm`) and an SVG latency-by-percentile plot.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::dialect::Dialect;
use super::engine::{Outcome, Scenario};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// 50th percentile.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        if h.is_empty() {
            return Percentiles {
                count: 0,
                min: 0.0,
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        Percentiles {
            count: h.len(),
            min: us(h.min()),
            mean: h.mean() / 1000.0,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

/// Latency of each connection step (storm and idle).
#[derive(Debug, Clone, Serialize)]
pub struct StepLatencies {
    /// TCP connect.
    pub connect: Percentiles,
    /// Upgrade request written → 101 read.
    pub upgrade: Percentiles,
    /// 101 → the server's greeting (welcome, IdAssigned, OPEN).
    pub welcome: Percentiles,
    /// Greeting → in the room (joined; gst: session started).
    pub join: Percentiles,
    /// Connect start → in the room.
    pub total: Percentiles,
}

/// The machine-readable result of a run (`--json`). Every count is of the measured window
/// unless its name says otherwise.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Format version of this report.
    pub report_version: u32,
    /// The scenario.
    pub scenario: Scenario,
    /// The server's dialect.
    pub dialect: Dialect,
    /// The URL driven.
    pub target: String,
    /// Clients opened.
    pub connections: u64,
    /// Members per room (2 for pairs).
    pub room_size: u64,
    /// Rooms that finished set-up and carried traffic.
    pub rooms_live: u64,
    /// App payload per message, bytes.
    pub payload_bytes: u64,
    /// Offered messages per second (0: closed loop).
    pub rate: f64,
    /// Messages in flight per room in closed-loop mode.
    pub depth: u64,
    /// Warm-up, seconds.
    pub warmup_s: f64,
    /// Requested measuring time, seconds.
    pub duration_s: f64,
    /// Measured window as it happened, seconds.
    pub window_s: f64,
    /// Set-up time (connect, join, negotiate), seconds.
    pub setup_s: f64,
    /// Messages sent with a (scheduled) send time inside the window.
    pub messages_sent: u64,
    /// Deliveries those should cause (sent × other members).
    pub deliveries_expected: u64,
    /// Deliveries of those that arrived (during the window or the drain after it).
    pub messages_received: u64,
    /// Deliveries that arrived within the window (whenever sent): the server's work there.
    pub deliveries_in_window: u64,
    /// Expected deliveries that never arrived.
    pub undelivered: u64,
    /// Relayed frames nobody was waiting for.
    pub unexpected: u64,
    /// Sends refused because a client's outbound queue was full (open loop beyond capacity).
    pub refused_sends: u64,
    /// Deliveries per second in the window.
    pub msgs_per_s: f64,
    /// Steady-state latency, send (scheduled send in open loop) → receipt.
    pub latency_us: Percentiles,
    /// Offer, answer and candidate latency during set-up.
    pub negotiation_latency_us: Percentiles,
    /// Connection step latencies.
    pub steps_us: StepLatencies,
    /// Clients that reached their room.
    pub connections_ready: u64,
    /// Clients that never did.
    pub connections_failed: u64,
    /// Storm: clients ready per second of set-up.
    pub connections_per_s: f64,
    /// Errors (server error frames, failed or dropped connections).
    pub errors: u64,
    /// Connection attempts repeated after a failure during set-up.
    pub reconnects: u64,
    /// The first distinct error messages.
    pub error_samples: Vec<String>,
    /// This process's CPU time in the window, µs.
    pub client_cpu_us: u64,
    /// Client CPU per delivery, µs.
    pub client_cpu_us_per_msg: Option<f64>,
    /// The server's process id, when given.
    pub server_pid: Option<u32>,
    /// The server's CPU time in the window, µs.
    pub server_cpu_us: Option<u64>,
    /// Server CPU per delivered (relayed) message, µs; storm: per connection.
    pub server_cpu_us_per_msg: Option<f64>,
    /// Server resident memory before any client connected, KiB.
    pub server_rss_before_kib: Option<u64>,
    /// Server resident memory once all clients were in their rooms, KiB.
    pub server_rss_connected_kib: Option<u64>,
    /// Server resident memory at the end of the idle hold, KiB.
    pub server_rss_after_kib: Option<u64>,
    /// (connected − before) / ready sessions, KiB.
    pub server_rss_per_session_kib: Option<f64>,
    /// (after hold − before) / ready sessions, KiB.
    pub server_rss_per_session_after_kib: Option<f64>,
    /// RLIMIT_NOFILE in force.
    pub nofile_limit: u64,
}

/// The run's parameters that the report repeats.
#[derive(Debug, Clone)]
pub(crate) struct Echo {
    pub(crate) scenario: Scenario,
    pub(crate) dialect: Dialect,
    pub(crate) target: String,
    pub(crate) connections: u64,
    pub(crate) room_size: u64,
    pub(crate) payload_bytes: u64,
    pub(crate) rate: f64,
    pub(crate) depth: u64,
    pub(crate) warmup_s: f64,
    pub(crate) duration_s: f64,
    pub(crate) server_pid: Option<u32>,
}

pub(crate) fn build(e: &Echo, o: &Outcome) -> Report {
    let window_s = o.window_ns as f64 / 1e9;
    let per = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
    let storm = e.scenario == Scenario::Storm;
    let work = if storm {
        o.connections_ready
    } else {
        o.delivered_in_window
    };
    let rss_per = |v: Option<u64>| match (o.rss_before_kib, v) {
        (Some(b), Some(a)) if o.connections_ready > 0 => {
            Some((a as f64 - b as f64) / o.connections_ready as f64)
        }
        _ => None,
    };
    Report {
        report_version: 1,
        scenario: e.scenario,
        dialect: e.dialect,
        target: e.target.clone(),
        connections: e.connections,
        room_size: e.room_size,
        rooms_live: o.groups_live,
        payload_bytes: e.payload_bytes,
        rate: e.rate,
        depth: e.depth,
        warmup_s: e.warmup_s,
        duration_s: e.duration_s,
        window_s,
        setup_s: o.setup_ns as f64 / 1e9,
        messages_sent: o.sent,
        deliveries_expected: o.expected,
        messages_received: o.received,
        deliveries_in_window: o.delivered_in_window,
        undelivered: o.expected.saturating_sub(o.received),
        unexpected: o.unexpected,
        refused_sends: o.refused_sends,
        msgs_per_s: if window_s > 0.0 {
            o.delivered_in_window as f64 / window_s
        } else {
            0.0
        },
        latency_us: Percentiles::of(&o.latency),
        negotiation_latency_us: Percentiles::of(&o.negotiation),
        steps_us: StepLatencies {
            connect: Percentiles::of(&o.steps.connect),
            upgrade: Percentiles::of(&o.steps.upgrade),
            welcome: Percentiles::of(&o.steps.hello),
            join: Percentiles::of(&o.steps.join),
            total: Percentiles::of(&o.steps.total),
        },
        connections_ready: o.connections_ready,
        connections_failed: o.connections_failed,
        connections_per_s: if o.setup_ns > 0 {
            o.connections_ready as f64 / (o.setup_ns as f64 / 1e9)
        } else {
            0.0
        },
        errors: o.errors,
        reconnects: o.reconnects,
        error_samples: o.error_samples.clone(),
        client_cpu_us: o.client_cpu_us,
        client_cpu_us_per_msg: per(o.client_cpu_us, work),
        server_pid: e.server_pid,
        server_cpu_us: o.server_cpu_us,
        server_cpu_us_per_msg: o.server_cpu_us.and_then(|c| per(c, work)),
        server_rss_before_kib: o.rss_before_kib,
        server_rss_connected_kib: o.rss_connected_kib,
        server_rss_after_kib: o.rss_after_kib,
        server_rss_per_session_kib: rss_per(o.rss_connected_kib),
        server_rss_per_session_after_kib: rss_per(o.rss_after_kib),
        nofile_limit: o.nofile_limit,
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

/// The human summary.
pub(crate) fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "switchboard bench: {:?} against {} ({}), {} connections, room size {}, payload {} B, {}",
        r.scenario,
        r.target,
        r.dialect.as_str(),
        r.connections,
        r.room_size,
        r.payload_bytes,
        if r.rate > 0.0 {
            format!("open loop at {:.0} msgs/s", r.rate)
        } else {
            format!("closed loop, depth {}", r.depth)
        }
    );
    let _ = writeln!(
        s,
        "set-up {:.2} s ({} ready, {} failed), window {:.2} s",
        r.setup_s, r.connections_ready, r.connections_failed, r.window_s
    );
    let lat = if r.scenario == Scenario::Storm || r.scenario == Scenario::Idle {
        &r.steps_us.total
    } else {
        &r.latency_us
    };
    let rate = if r.scenario == Scenario::Storm {
        r.connections_per_s
    } else {
        r.msgs_per_s
    };
    let _ = writeln!(
        s,
        "{:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>10} {:>12} {:>12}",
        if r.scenario == Scenario::Storm {
            "conns/s"
        } else {
            "msgs/s"
        },
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "errors",
        "reconnects",
        "client µs/op",
        "server µs/op"
    );
    let _ = writeln!(
        s,
        "{:>12.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>10} {:>12} {:>12}",
        rate,
        lat.p50,
        lat.p90,
        lat.p99,
        lat.p999,
        lat.max,
        r.errors,
        r.reconnects,
        opt(r.client_cpu_us_per_msg),
        opt(r.server_cpu_us_per_msg)
    );
    if matches!(r.scenario, Scenario::Pairs | Scenario::Rooms) {
        let _ = writeln!(
            s,
            "sent {} (expected deliveries {}), received {}, undelivered {}, unexpected {}, \
             refused {}; negotiation p50 {:.1} µs p99 {:.1} µs over {} messages",
            r.messages_sent,
            r.deliveries_expected,
            r.messages_received,
            r.undelivered,
            r.unexpected,
            r.refused_sends,
            r.negotiation_latency_us.p50,
            r.negotiation_latency_us.p99,
            r.negotiation_latency_us.count
        );
    } else {
        let st = &r.steps_us;
        let _ = writeln!(
            s,
            "steps p50/p99 µs: connect {:.0}/{:.0}, upgrade {:.0}/{:.0}, welcome {:.0}/{:.0}, \
             join {:.0}/{:.0}",
            st.connect.p50,
            st.connect.p99,
            st.upgrade.p50,
            st.upgrade.p99,
            st.welcome.p50,
            st.welcome.p99,
            st.join.p50,
            st.join.p99
        );
    }
    if let Some(b) = r.server_rss_before_kib {
        let _ = writeln!(
            s,
            "server RSS: before {b} KiB, connected {} KiB, after {} KiB; per session {} KiB \
             (after hold {} KiB)",
            r.server_rss_connected_kib
                .map_or_else(|| "-".into(), |v| v.to_string()),
            r.server_rss_after_kib
                .map_or_else(|| "-".into(), |v| v.to_string()),
            opt(r.server_rss_per_session_kib),
            opt(r.server_rss_per_session_after_kib)
        );
    }
    for e in &r.error_samples {
        let _ = writeln!(s, "error: {e}");
    }
    s
}

/// HdrHistogram's percentile distribution text (values in microseconds), as written by
/// `outputPercentileDistribution(out, 1000.0)` and read by HdrHistogram's plotter.
pub(crate) fn hgrm(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let value = h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{value:>12.3} {q:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(s, "{value:>12.3} {q:>1.12} {total:>10}");
            }
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    let sub_buckets = 1u64 << (2.0 * 10f64.powi(i32::from(h.sigfig()))).log2().ceil() as u32;
    let _ = writeln!(
        s,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets
    );
    s
}

/// A labelled line of (1/(1-percentile), latency µs) points.
pub(crate) type Series = (String, Vec<(f64, f64)>);

/// Reads the (1/(1-percentile), value µs) points of an `.hgrm` file.
pub(crate) fn parse_hgrm(text: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let value: f64 = f.next()?.parse().ok()?;
            let q: f64 = f.next()?.parse().ok()?;
            (q < 1.0).then(|| (1.0 / (1.0 - q), value))
        })
        .collect()
}

/// The points of a histogram as [`parse_hgrm`] returns them.
pub(crate) fn points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    parse_hgrm(&hgrm(h))
}

/// Writes an SVG plot of latency (µs) against percentile for each labelled series.
pub(crate) fn plot(path: &str, title: &str, series: &[Series]) -> Result<(), String> {
    use plotters::prelude::*;
    let x_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(x, _)| x))
        .fold(10.0f64, f64::max)
        .min(1e7);
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
        .fold(1.0f64, f64::max)
        * 1.05;
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| format!("{path}: {e}");
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0f64..x_max).log_scale(), 0.0f64..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 1.0 / x);
            if p < 99.0 {
                format!("{p:.0}%")
            } else {
                let digits = (x.log10().round() as usize).saturating_sub(2);
                format!("{p:.digits$}%")
            }
        })
        .draw()
        .map_err(|e| err(&e))?;
    for (n, (label, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(n).to_rgba();
        chart
            .draw_series(LineSeries::new(
                pts.iter().copied().filter(|&(x, _)| x <= x_max),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_round_trips_through_the_parser() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let text = hgrm(&h);
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
        assert!(text.contains("#[Total count") || text.contains("Total count    ="));
        assert!(text.contains("SubBuckets     =         2048"), "{text}");
        let pts = parse_hgrm(&text);
        assert!(pts.len() > 20);
        assert!(pts.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let p50 = pts.iter().find(|p| p.0 >= 2.0).unwrap().1;
        assert!((4900.0..5100.0).contains(&p50), "{p50}");
    }
}
