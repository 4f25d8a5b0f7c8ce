//! The paper's experiment (Section VIII-B, Figures 12–14), as far as bloomc runs it today:
//! the ad-tracking network (`examples/adtrack.bl`) with the CAMPAIGN query, 5 and 10 ad
//! servers and 3 reporting replicas, run in one process with each strategy: `none`,
//! `order` (the replicas sequenced), `seal` (campaigns served by every ad server, so a
//! campaign is released when all have sealed it) and `independent seal` (each ad server
//! masters its own campaigns, `mastered=true`, so one seal releases a campaign). The `none`
//! baseline runs on both workloads.
//!
//! For every run it records the records processed over time by the reporting replicas (the
//! sum of their facts in, sampled after every tick), the elapsed time, the questions on
//! which the replicas disagreed, how long each campaign waited for its seal, and the mean
//! time from an analyst's question to its first answer; it writes `docs/experiment/records.csv` and one plot per
//! ad-server count, `docs/experiment/records_5.svg` and `records_10.svg`, and prints a table.
//! Run with `cargo bench --bench experiment` (`-- --clicks N` sets the clicks per ad server).
//! With `-- --processes [--link-delay-ms D]` it runs the experiment with every node its own
//! process instead (`experiment/processes.rs`).

// The benchmark indexes the JSON reports of the runs it starts: a missing entry is a
// failed run, and panicking says so.
#![allow(clippy::indexing_slicing)]

#[path = "experiment/processes.rs"]
mod processes;
#[path = "../runtime/tests/zk_server/mod.rs"]
#[allow(dead_code)]
mod zk_server;

use bloomc_compiler::rewrite::Strategy as Coordination;
use bloomc_compiler::{compile_with, Options};
use bloomc_runtime::network::{network, NetworkOptions};
use bloomc_runtime::plan::plan_network;
use bloomc_runtime::report::{answer_latencies, records_over_time, NetworkResult};
use plotters::prelude::*;
use std::fmt::Write;
use std::path::Path;

struct Run {
    strategy: &'static str,
    adservers: u32,
    /// (seconds, records processed by the replicas so far).
    records: Vec<(f64, u64)>,
    elapsed_s: f64,
    disagreements: usize,
    /// With seals: per released campaign, seconds from its first click at a replica to its
    /// release there.
    waits: Vec<f64>,
    /// The analyst's questions: seconds from each to its first answer.
    answers: Vec<f64>,
}

fn run(
    adservers: u32,
    clicks: u64,
    (rate, ask_rate): (u64, u64),
    mastered: bool,
    coordination: Coordination,
) -> Result<NetworkResult, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/adtrack.bl");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let sets = [
        ("query", "CAMPAIGN".to_string()),
        ("adservers", adservers.to_string()),
        ("clicks", clicks.to_string()),
        ("mastered", mastered.to_string()),
        ("rate", rate.to_string()),
        ("ask_rate", ask_rate.to_string()),
    ];
    let options =
        Options { overrides: sets.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(), ..Options::default() };
    let c = compile_with("examples/adtrack.bl", &bytes, &options);
    let p = c.program.as_ref().ok_or("adtrack does not compile")?;
    let p = bloomc_compiler::rewrite::rewrite(p, c.analysis.as_ref(), coordination)?;
    let plans = plan_network(&p, &[])?;
    network(&p, &plans, &NetworkOptions { max_ticks: 1_000_000 })
}

/// The replicas' records processed over time.
fn records(r: &NetworkResult) -> Vec<(f64, u64)> {
    records_over_time(r.nodes.iter().filter(|n| n.group == "report"))
}

/// Every released campaign's seal wait, and every analyst question's time to its first
/// answer (seconds).
fn waits_and_answers(r: &NetworkResult) -> (Vec<f64>, Vec<f64>) {
    let waits = r.nodes.iter().flat_map(|n| n.seal_waits.iter().copied()).collect();
    let answers = r
        .nodes
        .iter()
        .filter(|n| n.group == "analyst")
        .flat_map(|n| answer_latencies(n, "request", "result").0)
        .collect();
    (waits, answers)
}

fn plot(runs: &[Run], adservers: u32, file: &Path) -> Result<(), String> {
    let series: Vec<(String, Vec<(f64, u64)>)> =
        runs.iter().filter(|r| r.adservers == adservers).map(|r| (r.strategy.to_string(), r.records.clone())).collect();
    plot_series(&series, &format!("CAMPAIGN, {adservers} ad servers, 3 replicas"), file)
}

/// Records processed over time, one line per (name, series).
fn plot_series(series: &[(String, Vec<(f64, u64)>)], title: &str, file: &Path) -> Result<(), String> {
    let t_max = series.iter().flat_map(|(_, s)| s.iter().map(|(t, _)| *t)).fold(0.0f64, f64::max).max(0.001);
    let y_max = series.iter().flat_map(|(_, s)| s.iter().map(|(_, n)| *n)).max().unwrap_or(1).max(1);
    let root = SVGBackend::new(file, (720, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max * 1.05, 0u64..y_max + y_max / 20)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("elapsed (s)")
        .y_desc("records processed by the replicas")
        .draw()
        .map_err(|e| e.to_string())?;
    for (k, (name, s)) in series.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        chart
            .draw_series(LineSeries::new(s.iter().copied(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().border_style(BLACK).draw().map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn mean_ms(waits: &[f64]) -> f64 {
    waits.iter().sum::<f64>() * 1000.0 / waits.len().max(1) as f64
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let clicks: u64 = args
        .iter()
        .position(|a| a == "--clicks")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    // Clicks per second per ad server; unbounded unless given, so throughput is the system's.
    let rate: u64 = args
        .iter()
        .position(|a| a == "--rate")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000_000);
    if args.iter().any(|a| a == "--processes") {
        let link_delay_ms = args
            .iter()
            .position(|a| a == "--link-delay-ms")
            .and_then(|i| args.get(i + 1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let setup = processes::Setup { clicks, rate, link_delay_ms };
        return processes::main(&setup, plot_series);
    }
    let mut runs = Vec::new();
    for adservers in [5u32, 10] {
        let strategies = [
            ("none", false, Coordination::None),
            ("order", false, Coordination::Order),
            ("seal", false, Coordination::Seal),
            ("none, mastered", true, Coordination::None),
            ("independent seal", true, Coordination::Seal),
        ];
        for (strategy, mastered, coordination) in strategies {
            let r = run(adservers, clicks, (rate, 1_000_000), mastered, coordination)?;
            let disagreements = r
                .nodes
                .iter()
                .filter(|n| n.group == "analyst")
                .map(|n| n.result.final_contents("disagreement").len())
                .sum();
            let (waits, answers) = waits_and_answers(&r);
            runs.push(Run {
                strategy,
                adservers,
                records: records(&r),
                elapsed_s: r.elapsed_s,
                disagreements,
                waits,
                answers,
            });
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/experiment");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut csv = String::from("strategy,adservers,seconds,records\n");
    for r in &runs {
        for (t, n) in &r.records {
            let _ = writeln!(csv, "{},{},{t:.4},{n}", r.strategy, r.adservers);
        }
    }
    let csv_path = dir.join("records.csv");
    std::fs::write(&csv_path, csv).map_err(|e| format!("{}: {e}", csv_path.display()))?;
    for adservers in [5u32, 10] {
        plot(&runs, adservers, &dir.join(format!("records_{adservers}.svg")))?;
    }
    println!("CAMPAIGN, 3 replicas, {clicks} clicks per ad server (at most {rate}/s each), one process");
    println!(
        "{:>9} {:>17} {:>10} {:>8} {:>11} {:>13} {:>12} {:>8} {:>9}",
        "adservers",
        "strategy",
        "records",
        "seconds",
        "records/s",
        "disagreements",
        "seal wait ms",
        "answered",
        "answer ms"
    );
    for r in &runs {
        let total = r.records.last().map_or(0, |(_, n)| *n);
        let ms = |v: &[f64]| if v.is_empty() { "-".to_string() } else { format!("{:.1}", mean_ms(v)) };
        println!(
            "{:>9} {:>17} {total:>10} {:>8.2} {:>11.0} {:>13} {:>12} {:>8} {:>9}",
            r.adservers,
            r.strategy,
            r.elapsed_s,
            total as f64 / r.elapsed_s.max(1e-9),
            r.disagreements,
            ms(&r.waits),
            r.answers.len(),
            ms(&r.answers)
        );
    }
    for adservers in [5u32, 10] {
        let throughput = |s: &str| {
            runs.iter()
                .find(|r| r.adservers == adservers && r.strategy == s)
                .map_or(f64::NAN, |r| r.records.last().map_or(0, |(_, n)| *n) as f64 / r.elapsed_s.max(1e-9))
        };
        println!(
            "{adservers:>9} ad servers: throughput against none: order {:.3}x, seal {:.3}x, independent seal {:.3}x (against none, mastered)",
            throughput("order") / throughput("none"),
            throughput("seal") / throughput("none"),
            throughput("independent seal") / throughput("none, mastered")
        );
        let wait = |s: &str| {
            runs.iter().find(|r| r.adservers == adservers && r.strategy == s).map_or(f64::NAN, |r| mean_ms(&r.waits))
        };
        println!(
            "{adservers:>9} ad servers: a campaign waits {:.1} ms for its seal with independent seals, {:.1} ms with shared seals ({:.2}x)",
            wait("independent seal"),
            wait("seal"),
            wait("independent seal") / wait("seal")
        );
    }
    // Paced: clicks at 10,000/s per ad server and 100 questions/s, so questions and campaign
    // releases interleave; the latency of answers under shared and independent seals.
    let paced_clicks = clicks.min(20_000);
    println!("paced: {paced_clicks} clicks per ad server at 10000/s each, 200 questions at 100/s");
    for adservers in [5u32, 10] {
        for (strategy, mastered) in [("seal", false), ("independent seal", true)] {
            let r = run(adservers, paced_clicks, (10_000, 100), mastered, Coordination::Seal)?;
            let (waits, answers) = waits_and_answers(&r);
            println!(
                "{adservers:>9} ad servers, {strategy:>16}: {} of 200 questions answered, {:.1} ms to the first answer on average; a campaign waits {:.1} ms for its seal",
                answers.len(),
                mean_ms(&answers),
                mean_ms(&waits)
            );
        }
    }
    println!("wrote {} and records_5.svg, records_10.svg beside it", csv_path.display());
    Ok(())
}
