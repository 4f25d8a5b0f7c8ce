//! The CAMPAIGN benchmark (issue 4): clicks(cid, id, campaign, window) arrive in batches;
//! count clicks per (id, campaign) and keep the ads with fewer than 100 clicks.
//!
//! Three implementations on the same clicks, in one run of this binary, each in a child
//! process of its own so its peak memory can be read:
//! - bloomc: the query as a `.bl` program, run by the runtime (generic rows);
//! - typed differential dataflow written by hand (`count_total` over typed tuples);
//! - a plain Rust HashMap loop, the floor.
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
/// same data: (cid, id, campaign, window).
fn clicks(n: u64, ads: i64, campaigns: i64) -> Vec<Vec<Row>> {
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
    (0..feed.ticks()).map(|t| feed.batch(t, 0, 0, 1, &mut errors)).collect()
}

fn int(v: &Value) -> i64 {
    if let Value::Int(i) = v {
        *i
    } else {
        0
    }
}

const PROGRAM: &str = "module Campaign {
  input click(cid: int, id: int, campaign: int, window: int);
  output poor(id: int, campaign: int);
  table clicks(cid: int, id: int, campaign: int, window: int);
  clicks <= click;
  poor <= from clicks c group by c.id, c.campaign having count(*) < 100 select c.id, c.campaign;
}";

/// Returns (groups below 100 at the end, seconds).
fn bloomc(batches: Vec<Vec<Row>>) -> (usize, f64) {
    let c = bloomc_compiler::compile("campaign.bl", PROGRAM.as_bytes(), &[]);
    let p = c.program.expect("program");
    let input = p.collections.iter().find(|c| c.name == "click").map(|c| c.id).expect("click");
    let rows: Vec<Row> = batches.into_iter().flatten().collect();
    let mut node = plan(&p, &[(input, Vec::new(), 1)]).expect("plan");
    node.feeds = vec![Feed { input, source: Source::Rows { rows, batch: BATCH as usize } }];
    let start = Instant::now();
    let result = run(&p, &node, &RunOptions::default()).expect("run");
    let secs = start.elapsed().as_secs_f64();
    (result.final_contents("poor").len(), secs)
}

fn typed(batches: Vec<Vec<Row>>) -> (usize, f64) {
    let data: Vec<Vec<(i64, i64, i64, i64)>> =
        batches.iter().map(|b| b.iter().map(|r| (int(&r[0]), int(&r[1]), int(&r[2]), int(&r[3]))).collect()).collect();
    let start = Instant::now();
    let result = timely::execute(timely::Config::thread(), move |worker| {
        let poor = std::rc::Rc::new(std::cell::RefCell::new(0isize));
        let seen = poor.clone();
        let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, clicks) = scope.new_collection::<(i64, i64, i64, i64), isize>();
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
    (result.max(0) as usize, start.elapsed().as_secs_f64())
}

fn hashmap(batches: Vec<Vec<Row>>) -> (usize, f64) {
    let data: Vec<Vec<(i64, i64)>> =
        batches.iter().map(|b| b.iter().map(|r| (int(&r[1]), int(&r[2]))).collect()).collect();
    let start = Instant::now();
    let mut counts: HashMap<(i64, i64), u64> = HashMap::new();
    for batch in &data {
        for k in batch {
            *counts.entry(*k).or_default() += 1;
        }
    }
    let poor = counts.values().filter(|n| **n < 100).count();
    (poor, start.elapsed().as_secs_f64())
}

fn peak_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let clicks_n: u64 = arg("--clicks").and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    if let (Some(which), Some(groups)) = (arg("--child"), arg("--groups")) {
        // Child: one implementation; prints "poor secs peak_kb".
        let groups: i64 = groups.parse().unwrap_or(1000);
        let batches = clicks(clicks_n, groups / 10, 10);
        let base = peak_kb();
        let (poor, secs) = match which.as_str() {
            "bloomc" => bloomc(batches),
            "typed" => typed(batches),
            _ => hashmap(batches),
        };
        println!("{poor} {secs} {}", peak_kb().saturating_sub(base));
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
        for which in ["hashmap", "typed", "bloomc"] {
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
        let agree = rows.windows(2).all(|w| w[0].1 == w[1].1);
        let bloomc_rate = rows.get(2).map_or(f64::NAN, |r| clicks_n as f64 / r.2);
        println!(
            "{groups:>9} ratios: bloomc/typed {:.3}x, bloomc/HashMap {:.3}x, typed/HashMap {:.3}x; results {}",
            bloomc_rate / typed_rate,
            bloomc_rate / floor,
            typed_rate / floor,
            if agree { "agree" } else { "DISAGREE" }
        );
    }
}
