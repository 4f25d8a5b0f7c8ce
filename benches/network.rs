//! The ad-tracking network's throughput end to end, in clicks per second (issue 15): the
//! network of `examples/adtrack.bl` with the CAMPAIGN query, 3 reporting replicas, 2 caches
//! and an analyst, `A` ad servers of `N` clicks each (5 x 200,000 by default) at an
//! unbounded rate, under the coordination strategies `none`, `order` and `seal`, run
//! - `one process`: every node a thread of this process (`bloomc_runtime::network::network`);
//! - `processes`: every node its own process (`bloomc run --processes`, on loopback);
//! - `dfir`: the same dataflow on Hydro's DFIR (`dfir_rs` 0.16, `network/dfir.rs`), every
//!   node a DFIR graph on its own thread, connected by channels (built with the root crate's
//!   `hydro` feature; without it the row says so).
//!
//! What is timed: from the start of the network (before its node threads are spawned; or,
//! across processes, each node's own start once it joined the coordinator), after compile
//! and plan, to the last tick of the last replica; clicks per second are the clicks fed
//! (`A x N`) over that time. Every replica counts every click, so the replicas process
//! three times as many records. For
//! `processes` the whole command's wall time (compile, process start, end of run, output
//! written) is printed too.
//!
//! The answer checked: each replica's final verdict on every (ad, campaign) group, poor
//! (fewer than `poor` clicks) or not, with `poor` set to the mean clicks per group (so about
//! half end poor and a lost or doubled click shows), and each replica's clicks in. The
//! bench adds one output to the `Report` module for that (`verdict`, the replica's `hits`
//! and `fine`); nothing wires it. Every run of every implementation must agree before any
//! figure is printed; a disagreement prints none and exits 1.
//!
//! Bud's figure (about 80,000 clicks/s on one node for the same count) is quoted from the
//! issue, not measured here: Bud is Ruby and is not installable on this machine.
//!
//! `cargo bench --bench network [--features hydro] -- [--clicks N] [--adservers A]
//! [--rounds R] [--strategies none,order,seal]` (all three by default; `order` across
//! processes through the embedded ordering service); rounds are interleaved and the best of
//! each implementation is reported.

// The benchmark indexes the JSON report of the runs it starts: a missing entry is a failed
// run, and panicking says so.
#![allow(clippy::indexing_slicing)]

#[cfg(feature = "hydro")]
#[path = "network/dfir.rs"]
mod dfir;

use bloomc_compiler::ir::Program;
use bloomc_compiler::rewrite::Strategy as Coordination;
use bloomc_compiler::{compile_with, Options};
use bloomc_runtime::network::{network, NetworkOptions};
use bloomc_runtime::plan::{plan_network, NodePlan};
use bloomc_runtime::report::NodeReport;
use bloomc_runtime::value::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Bud's throughput on one node, quoted (issue 15), not measured in this run.
const BUD_QUOTED: f64 = 80_000.0;
/// The program's defaults, which the bench does not change.
const ADS: u64 = 40;
const CAMPAIGNS: u64 = 8;
const REQUESTS: u64 = 200;
const REPLICAS: usize = 3;

/// Per (ad, campaign) group: poor at the end (fewer than `poor` clicks) or not.
type Verdicts = BTreeMap<(i64, i64), bool>;

struct Setup {
    adservers: u32,
    clicks: u64,
    rounds: usize,
    strategies: Vec<(&'static str, Coordination)>,
}

impl Setup {
    fn total(&self) -> u64 {
        u64::from(self.adservers) * self.clicks
    }
    /// The threshold: the mean clicks per (ad, campaign) group.
    fn poor(&self) -> u64 {
        (self.total() / (ADS * CAMPAIGNS)).max(1)
    }
}

/// One run: the seconds timed, the command's wall time (across processes), and per replica
/// its verdicts and the clicks it took in.
struct Outcome {
    seconds: f64,
    wall_s: Option<f64>,
    verdicts: Vec<Verdicts>,
    clicks_in: Vec<u64>,
}

fn setup() -> Result<Setup, String> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let number = |name: &str, default: u64| -> Result<u64, String> {
        arg(name).map_or(Ok(default), |s| s.parse().map_err(|_| format!("{name}: not a number: {s}")))
    };
    let mut strategies = Vec::new();
    for s in arg("--strategies").unwrap_or_else(|| "none,order,seal".to_string()).split(',') {
        strategies.push(match s {
            "none" => ("none", Coordination::None),
            "order" => ("order", Coordination::Order),
            "seal" => ("seal", Coordination::Seal),
            _ => return Err(format!("--strategies: `{s}` is not none, order or seal")),
        });
    }
    Ok(Setup {
        adservers: u32::try_from(number("--adservers", 5)?).map_err(|e| e.to_string())?.max(1),
        clicks: number("--clicks", 200_000)?.max(1),
        rounds: (number("--rounds", 3)? as usize).max(1),
        strategies,
    })
}

/// `examples/adtrack.bl` with one more output in `Report`: the replica's verdict per group.
fn source() -> Result<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/adtrack.bl");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let anchor = "  clicks <= click;\n";
    if !text.contains(anchor) {
        return Err("examples/adtrack.bl: no `clicks <= click;` in Report".to_string());
    }
    let verdict = "  output verdict(id: int, bucket: int, poor: int);\n  \
                   verdict <= from hits h select h.id, h.bucket, 1 as poor;\n  \
                   verdict <= from fine f select f.id, f.bucket, 0 as poor;\n";
    Ok(text.replacen(anchor, &format!("{anchor}{verdict}"), 1))
}

fn sets(s: &Setup) -> Vec<(String, String)> {
    [
        ("query", "CAMPAIGN".to_string()),
        ("adservers", s.adservers.to_string()),
        ("clicks", s.clicks.to_string()),
        ("rate", "1000000000".to_string()),
        ("poor", s.poor().to_string()),
        ("requests", REQUESTS.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn compiled(s: &Setup, text: &str, coordination: Coordination) -> Result<(Program, Vec<NodePlan>), String> {
    let options = Options { overrides: sets(s), ..Options::default() };
    let c = compile_with("adtrack.bl", text.as_bytes(), &options);
    let p = c.program.as_ref().ok_or("adtrack does not compile")?;
    let p = bloomc_compiler::rewrite::rewrite(p, c.analysis.as_ref(), coordination)?;
    let plans = plan_network(&p, &[])?;
    Ok((p, plans))
}

/// The verdicts from every fact a replica's `verdict` output emitted, `(id, bucket, poor)`:
/// a group is fine once it reached the threshold (which it never leaves, clicks only
/// growing), poor if it was seen and never fine. So the answer does not depend on the
/// ticks in which the clicks arrived.
fn verdicts(facts: impl IntoIterator<Item = (i64, i64, i64)>) -> Verdicts {
    let mut out = Verdicts::new();
    for (id, bucket, poor) in facts {
        let v = out.entry((id, bucket)).or_insert(true);
        *v = *v && poor == 1;
    }
    out
}

/// An integer field of a row (`i64::MIN` for anything else), here and in `dfir.rs`.
fn int(v: Option<&Value>) -> i64 {
    if let Some(Value::Int(i)) = v {
        *i
    } else {
        i64::MIN
    }
}

/// The network in this process.
fn one_process(s: &Setup, text: &str, coordination: Coordination) -> Result<Outcome, String> {
    let (p, plans) = compiled(s, text, coordination)?;
    let r = network(&p, &plans, &NetworkOptions { max_ticks: 1_000_000 })?;
    let mut replicas: Vec<&NodeReport> = r.nodes.iter().filter(|n| n.group == "report").collect();
    replicas.sort_by_key(|n| n.instance);
    let seconds = replicas.iter().filter_map(|n| n.timeline.last()).map(|(t, _)| *t).fold(0.0, f64::max);
    let facts = |n: &NodeReport| -> Vec<(i64, i64, i64)> {
        n.result.all_facts("verdict").iter().map(|r| (int(r.first()), int(r.get(1)), int(r.get(2)))).collect()
    };
    Ok(Outcome {
        seconds,
        wall_s: None,
        verdicts: replicas.iter().map(|n| verdicts(facts(n))).collect(),
        clicks_in: replicas.iter().map(|n| n.result.facts_in.saturating_sub(REQUESTS)).collect(),
    })
}

/// The network across processes: `bloomc run --processes`, its summary and the replicas'
/// `verdict` facts written to CSV files.
fn processes(s: &Setup, file: &Path, coordination: &str) -> Result<Outcome, String> {
    let dir = file.parent().ok_or("no scratch directory")?;
    let json = dir.join("summary.json");
    let csv = |i: usize| dir.join(format!("verdict-{i}.csv"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bloomc"));
    cmd.arg("run").arg(file).arg("--processes");
    for (k, v) in sets(s) {
        cmd.args(["--set", &format!("{k}={v}")]);
    }
    cmd.args(["--coordination", coordination, "--max-ticks", "1000000", "--summary-json"]).arg(&json);
    for i in 0..REPLICAS {
        cmd.arg("--output").arg(format!("report[{i}].verdict={}", csv(i).display()));
    }
    let started = Instant::now();
    let out = cmd.output().map_err(|e| format!("cannot start bloomc: {e}"))?;
    let wall_s = started.elapsed().as_secs_f64();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        return Err(format!("bloomc run --processes ({coordination}) failed: {}", tail.join(" | ")));
    }
    let text = std::fs::read_to_string(&json).map_err(|e| format!("{}: {e}", json.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))?;
    let seconds = v["records_over_time_by_group"]["report"]
        .as_array()
        .and_then(|a| a.last())
        .and_then(|p| p[0].as_f64())
        .ok_or("the summary has no records over time for the replicas")?;
    let mut outcome = Outcome { seconds, wall_s: Some(wall_s), verdicts: Vec::new(), clicks_in: Vec::new() };
    for i in 0..REPLICAS {
        let facts_in = v["per_node"][format!("report[{i}]")]["facts_in"].as_u64().unwrap_or(0);
        outcome.clicks_in.push(facts_in.saturating_sub(REQUESTS));
        let path = csv(i);
        let rows = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let field = |f: Option<&str>| f.and_then(|x| x.trim().parse::<i64>().ok()).unwrap_or(i64::MIN);
        let facts = rows.lines().map(|l| {
            let mut f = l.split(',');
            (field(f.next()), field(f.next()), field(f.next()))
        });
        outcome.verdicts.push(verdicts(facts));
    }
    Ok(outcome)
}

/// Hydro's DFIR: the same ad servers' and analyst's feeds (their plans' generators, in
/// their nodes' threads), every replica counting every click.
#[cfg(feature = "hydro")]
fn hydro(s: &Setup, text: &str) -> Result<Outcome, String> {
    let (p, plans) = compiled(s, text, Coordination::None)?;
    let group = |plan: &NodePlan| {
        p.system.iter().flat_map(|x| x.groups.iter()).find(|g| Some(g.id) == plan.group).map(|g| g.name.clone())
    };
    let feeds = |name: &str| -> Vec<(bloomc_runtime::feed::Feed, u32)> {
        plans
            .iter()
            .filter(|plan| group(plan).as_deref() == Some(name))
            .filter_map(|plan| plan.feeds.first().map(|f| (f.clone(), plan.instance)))
            .collect()
    };
    let analyst = feeds("analyst").into_iter().next().ok_or("no analyst feed")?;
    let r = dfir::network(feeds("adserver"), analyst, REPLICAS, s.poor());
    eprintln!("dfir: the analyst received {} answers", r.answers);
    Ok(Outcome {
        seconds: r.seconds,
        wall_s: None,
        verdicts: r.counts.iter().map(|c| c.iter().map(|(g, n)| (*g, *n < s.poor())).collect()).collect(),
        clicks_in: r.counts.iter().map(|c| c.values().sum()).collect(),
    })
}

#[cfg(not(feature = "hydro"))]
fn hydro(_: &Setup, _: &str) -> Result<Outcome, String> {
    Err("not built".to_string())
}

/// Every replica of every run agrees with the first, and took in every click.
fn check(s: &Setup, rows: &[(String, Vec<Outcome>)]) -> Result<(), String> {
    let reference = rows.first().and_then(|(_, v)| v.first()).and_then(|o| o.verdicts.first()).ok_or("no runs")?;
    for (name, o) in rows.iter().flat_map(|(n, v)| v.iter().map(move |o| (n, o))) {
        if o.verdicts.len() != REPLICAS {
            return Err(format!("{name}: {} replicas reported, not {REPLICAS}", o.verdicts.len()));
        }
        if let Some(v) = o.verdicts.iter().find(|v| *v != reference) {
            let differ = reference.iter().filter(|(g, p)| v.get(g) != Some(p)).count();
            return Err(format!("{name}: a replica's verdicts differ from the first run's on {differ} groups"));
        }
        if let Some(n) = o.clicks_in.iter().find(|n| **n != s.total()) {
            return Err(format!("{name}: a replica took in {n} clicks, not {}", s.total()));
        }
    }
    Ok(())
}

/// Per implementation (and strategy), its runs: interleaved rounds.
fn measure(s: &Setup, text: &str, file: &Path) -> Result<Vec<(String, Vec<Outcome>)>, String> {
    let mut rows: Vec<(String, Vec<Outcome>)> = Vec::new();
    let mut push = |name: String, o: Outcome| match rows.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => v.push(o),
        None => rows.push((name, vec![o])),
    };
    for round in 0..s.rounds {
        for (name, coordination) in &s.strategies {
            eprintln!("round {}: {name}, one process ...", round + 1);
            push(format!("one process, {name}"), one_process(s, text, *coordination)?);
            eprintln!("round {}: {name}, processes ...", round + 1);
            push(format!("processes, {name}"), processes(s, file, name)?);
        }
        if cfg!(feature = "hydro") {
            eprintln!("round {}: dfir ...", round + 1);
            push("dfir".to_string(), hydro(s, text)?);
        }
    }
    Ok(rows)
}

fn print(s: &Setup, rows: &[(String, Vec<Outcome>)]) {
    let best = |v: &[Outcome]| v.iter().map(|o| o.seconds).fold(f64::INFINITY, f64::min);
    let rate = |name: &str| rows.iter().find(|(n, _)| n == name).map_or(f64::NAN, |(_, v)| s.total() as f64 / best(v));
    println!(
        "{:>24} {:>12} {:>9} {:>10} {:>9} {:>9} {:>13}",
        "implementation", "clicks/s", "seconds", "command s", "vs Bud*", "vs DFIR", "vs one proc"
    );
    for (name, v) in rows {
        let r = s.total() as f64 / best(v);
        let wall = v.iter().filter_map(|o| o.wall_s).fold(f64::INFINITY, f64::min);
        let wall = if wall.is_finite() { format!("{wall:.3}") } else { "-".to_string() };
        let vs = |other: f64| if other.is_nan() { "-".to_string() } else { format!("{:.3}x", r / other) };
        let one = match name.strip_prefix("processes, ") {
            Some(strategy) => vs(rate(&format!("one process, {strategy}"))),
            None if name.starts_with("one process") => "1.000x".to_string(),
            None => "-".to_string(),
        };
        println!(
            "{name:>24} {r:>12.0} {:>9.3} {wall:>10} {:>8.3}x {:>9} {one:>13}",
            best(v),
            r / BUD_QUOTED,
            vs(rate("dfir")),
        );
    }
    println!(
        "{:>24} {BUD_QUOTED:>12.0}   (quoted in issue 15, not measured here: Bud is Ruby, not installable here)",
        "Bud*"
    );
    if !cfg!(feature = "hydro") {
        println!("(Hydro DFIR not built: add `--features hydro` to run it)");
    }
}

fn main() -> Result<(), String> {
    let s = setup()?;
    let text = source()?;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("network");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join("adtrack-verdict.bl");
    std::fs::write(&file, &text).map_err(|e| format!("{}: {e}", file.display()))?;
    let rows = measure(&s, &text, &file)?;
    if let Err(e) = check(&s, &rows) {
        println!("results DISAGREE: {e}; no figures");
        std::process::exit(1);
    }
    let reference = rows.first().and_then(|(_, v)| v.first()).and_then(|o| o.verdicts.first());
    let groups = reference.map_or(0, BTreeMap::len);
    let poor = reference.map_or(0, |v| v.values().filter(|p| **p).count());
    println!(
        "adtrack, CAMPAIGN: {} ad servers x {} clicks = {} clicks, {REPLICAS} replicas, 2 caches, 1 analyst ({REQUESTS} questions), unbounded rate; poor = {} clicks per (ad, campaign); best of {} interleaved rounds",
        s.adservers, s.clicks, s.total(), s.poor(), s.rounds
    );
    println!("timed: from the network's start to the last replica's last tick; clicks/s = clicks fed / that time");
    println!(
        "checked: every replica of every run took in {} clicks and gave the same verdicts on {groups} groups ({poor} poor)",
        s.total()
    );
    print(&s, &rows);
    Ok(())
}
