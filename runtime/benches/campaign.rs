//! The CAMPAIGN benchmark (issue 4): clicks(cid, id, campaign, window) arrive in batches;
//! count clicks per (id, campaign) and keep the ads with fewer than 100 clicks.
//!
//! Three implementations on the same clicks, in one run of this binary, each in a child
//! process of its own so its peak memory can be read (from when its input is ready):
//! - bloomc: the query as a `.bl` program, run by the runtime (generic rows), whose `click`
//!   input declares `key (cid)`: a click id arrives once, and the runtime checks it (a fact
//!   repeating an earlier one's key is rejected), so a click counts once without a set of
//!   the clicks seen;
//! - typed differential dataflow written by hand (`count_total` over typed tuples);
//! - a plain Rust HashMap loop, the floor.
//!
//! The last two count clicks as a bag, as the issue states them: they trust that a click
//! comes once, where bloomc checks it. Without the key, bloomc's `clicks` table is a set: a
//! click repeated counts once, so every distinct click is kept. That program (bloomc-set)
//! runs too, against the same two baselines with set semantics (typed-set: `distinct`
//! before `count_total`; hashset: a HashSet of the clicks seen).
//! Every implementation reports how many (id, campaign) groups end below 100, and the
//! parent checks they agree before printing throughputs and ratios.
//!
//! `cargo bench -p bloomc-runtime --bench campaign` runs 10M clicks at 1k and at 1M groups;
//! `-- --clicks N` changes the size.

use bloomc_runtime::plan::{plan, Feed, Source};
use bloomc_runtime::run::{run, RunOptions};
use bloomc_runtime::value::{Row, Value};
use differential_dataflow::input::Input;
use differential_dataflow::operators::count::CountTotal;
use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;

const BATCH: u64 = 100_000;

/// The clicks, generated once by bloomc's own generator so every implementation sees the
/// same data: (cid, id, campaign, window), in one vector (batches of `BATCH` by position),
/// so no implementation copies them before it starts.
fn clicks(n: u64, ads: i64, campaigns: i64) -> Vec<Row> {
    let src = format!(
        "module G {{ input click(cid: int, id: int, campaign: int, window: int); output o(cid: int); o <= from click c select c.cid; }}
         system S {{ node g: G; feed g.click from generate(rows: {n}, seed: 1, batch: {BATCH}) {{
           cid: row(), id: uniform(0, {ads}), campaign: uniform(0, {campaigns}), window: row() / 1000 }}; }}"
    );
    let c = bloomc_compiler::compile("gen.bl", src.as_bytes(), &[]);
    let p = c.program.expect("generator program");
    let node = plan(&p, &[]).expect("plan");
    let feed: &Feed = node.feeds.first().expect("feed");
    let mut errors = 0;
    let mut out = Vec::with_capacity(n as usize);
    for t in 0..feed.ticks() {
        out.extend(feed.batch(t, 0, 0, 1, &mut errors));
    }
    out
}

/// A generated click as a typed tuple (cid, id, campaign, window).
fn typed_click(r: &Row) -> (i64, i64, i64, i64) {
    let col = |i: usize| r.get(i).map_or(0, int);
    (col(0), col(1), col(2), col(3))
}

/// The clicks as typed tuples in batches of `BATCH` (the generic rows are freed first).
fn typed_batches(rows: Vec<Row>) -> Vec<Vec<(i64, i64, i64, i64)>> {
    let batches = rows.chunks(BATCH as usize).map(|b| b.iter().map(typed_click).collect()).collect();
    drop(rows);
    batches
}

fn int(v: &Value) -> i64 {
    if let Value::Int(i) = v {
        *i
    } else {
        0
    }
}

/// The query; `KEY` is replaced by the key declaration or nothing.
const PROGRAM: &str = "module Campaign {
  input click(cid: int, id: int, campaign: int, window: int) KEY;
  output poor(id: int, campaign: int);
  table clicks(cid: int, id: int, campaign: int, window: int);
  clicks <= click;
  poor <= from clicks c group by c.id, c.campaign having count(*) < 100 select c.id, c.campaign;
}";

/// Returns (groups below 100 at the end, seconds).
fn bloomc(rows: Vec<Row>, keyed: bool) -> (usize, f64, u64) {
    let program = PROGRAM.replace("KEY", if keyed { "key (cid)" } else { "" });
    let c = bloomc_compiler::compile("campaign.bl", program.as_bytes(), &[]);
    let p = c.program.expect("program");
    let input = p.collections.iter().find(|c| c.name == "click").map(|c| c.id).expect("click");
    let mut node = plan(&p, &[(input, Vec::new(), 1)]).expect("plan");
    node.feeds = vec![Feed { input, source: Source::Rows { rows: std::sync::Arc::new(rows), batch: BATCH as usize } }];
    let base = start_measuring();
    let start = Instant::now();
    let result = run(&p, &node, &RunOptions::default()).expect("run");
    let secs = start.elapsed().as_secs_f64();
    (result.final_contents("poor").len(), secs, extra_kb(base))
}

/// Typed differential dataflow; with `set`, clicks are made distinct before counting, as a
/// Bloom table is a set (the same semantics as bloomc), otherwise counted as a bag.
fn typed(rows: Vec<Row>, set: bool) -> (usize, f64, u64) {
    let data: Vec<Vec<(i64, i64, i64, i64)>> = typed_batches(rows);
    let base = start_measuring();
    let start = Instant::now();
    let result = timely::execute(timely::Config::thread(), move |worker| {
        let poor = std::rc::Rc::new(std::cell::RefCell::new(0isize));
        let seen = poor.clone();
        let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, clicks) = scope.new_collection::<(i64, i64, i64, i64), isize>();
            let clicks = if set { clicks.distinct() } else { clicks };
            let (probe, _) = clicks
                .map(|(_, id, campaign, _)| (id, campaign))
                .count_total()
                .filter(|(_, n)| *n < 100)
                .map(|(k, _)| k)
                .inspect(move |(_, _, d)| *seen.borrow_mut() += d)
                .probe();
            (input, probe)
        });
        for (t, batch) in data.iter().enumerate() {
            for row in batch {
                input.insert(*row);
            }
            input.advance_to(t as u64 + 1);
            input.flush();
            worker.step_while(|| probe.less_than(input.time()));
        }
        let n = *poor.borrow();
        n
    })
    .expect("timely")
    .join()
    .into_iter()
    .map(|r| r.expect("worker"))
    .sum::<isize>();
    let secs = start.elapsed().as_secs_f64();
    (result.max(0) as usize, secs, extra_kb(base))
}

/// The floor: a HashMap of counts; with `set`, a HashSet of the clicks seen first, so a
/// repeated click counts once (the same semantics as bloomc).
fn hashmap(rows: Vec<Row>, set: bool) -> (usize, f64, u64) {
    let data: Vec<Vec<(i64, i64, i64, i64)>> = typed_batches(rows);
    let base = start_measuring();
    let start = Instant::now();
    let mut counts: HashMap<(i64, i64), u64> = HashMap::new();
    let mut seen: std::collections::HashSet<(i64, i64, i64, i64)> = std::collections::HashSet::new();
    for batch in &data {
        for click in batch {
            if !set || seen.insert(*click) {
                *counts.entry((click.1, click.2)).or_default() += 1;
            }
        }
    }
    let poor = counts.values().filter(|n| **n < 100).count();
    let secs = start.elapsed().as_secs_f64();
    (poor, secs, extra_kb(base))
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// Called once an implementation has its input ready, just before it starts: resets the
/// peak resident memory to the current (Linux: `5` to `/proc/self/clear_refs`), so the
/// peak an implementation reaches is its own, not its input's preparation; returns the
/// resident memory now.
fn start_measuring() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_kb("VmRSS:")
}

/// The peak resident memory since `start_measuring`, above what was resident then.
fn extra_kb(base: u64) -> u64 {
    status_kb("VmHWM:").saturating_sub(base)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let clicks_n: u64 = arg("--clicks").and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    if let (Some(which), Some(groups)) = (arg("--child"), arg("--groups")) {
        // Child: one implementation; prints "poor secs peak_kb".
        let groups: i64 = groups.parse().unwrap_or(1000);
        let rows = clicks(clicks_n, groups / 10, 10);
        let (poor, secs, kb) = match which.as_str() {
            "bloomc" => bloomc(rows, true),
            "bloomc-set" => bloomc(rows, false),
            "typed" => typed(rows, false),
            "typed-set" => typed(rows, true),
            "hashset" => hashmap(rows, true),
            _ => hashmap(rows, false),
        };
        println!("{poor} {secs} {kb}");
        return;
    }
    let me = args.first().cloned().unwrap_or_default();
    println!("CAMPAIGN: {clicks_n} clicks in batches of {BATCH}; count per (id, campaign), keep those below 100");
    println!(
        "{:>9} {:>10} {:>14} {:>10} {:>12} {:>14} {:>12}",
        "groups", "impl", "clicks/s", "seconds", "poor groups", "extra peak MB", "vs HashMap"
    );
    for groups in [1_000u64, 1_000_000] {
        let mut rows = Vec::new();
        for which in ["hashmap", "typed", "bloomc", "hashset", "typed-set", "bloomc-set"] {
            let out = Command::new(&me)
                .args(["--child", which, "--groups", &groups.to_string(), "--clicks", &clicks_n.to_string()])
                .output()
                .expect("child runs");
            let text = String::from_utf8_lossy(&out.stdout);
            let f: Vec<&str> = text.split_whitespace().collect();
            let (poor, secs, kb): (usize, f64, u64) = (
                f.first().and_then(|s| s.parse().ok()).unwrap_or(0),
                f.get(1).and_then(|s| s.parse().ok()).unwrap_or(f64::NAN),
                f.get(2).and_then(|s| s.parse().ok()).unwrap_or(0),
            );
            rows.push((which, poor, secs, kb));
        }
        let floor = rows.first().map_or(f64::NAN, |r| clicks_n as f64 / r.2);
        let typed_rate = rows.get(1).map_or(f64::NAN, |r| clicks_n as f64 / r.2);
        for (which, poor, secs, kb) in &rows {
            let rate = clicks_n as f64 / secs;
            println!(
                "{groups:>9} {which:>10} {rate:>14.0} {secs:>10.2} {poor:>12} {:>14.1} {:>11.3}x",
                *kb as f64 / 1024.0,
                rate / floor
            );
        }
        let agree = rows.iter().all(|r| rows.first().is_some_and(|f| f.1 == r.1));
        let rate = |i: usize| rows.get(i).map_or(f64::NAN, |r| clicks_n as f64 / r.2);
        let bloomc_rate = rate(2);
        println!(
            "{groups:>9} ratios (bag baselines, as the issue states them; bloomc with `key (cid)`): bloomc/typed {:.3}x, bloomc/HashMap {:.3}x, typed/HashMap {:.3}x",
            bloomc_rate / typed_rate,
            bloomc_rate / floor,
            typed_rate / floor,
        );
        println!(
            "{groups:>9} ratios (set baselines, bloomc without a key): bloomc-set/typed-set {:.3}x, bloomc-set/HashSet {:.3}x; results {}",
            rate(5) / rate(4),
            rate(5) / rate(3),
            if agree { "agree" } else { "DISAGREE" }
        );
    }
}
