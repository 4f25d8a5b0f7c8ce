//! Crash and restart across processes (`bloomc run --processes --restart`): node processes
//! are killed with SIGKILL at set points of a run, several per run and of every kind (ad
//! servers, reporting replicas, caches, the analyst); the launcher starts each again, it
//! recovers from its journal by replay, its peers send it what it did not acknowledge, and
//! the run ends with exactly the facts of an uninterrupted run, and 0 replica disagreements
//! under seal and order, whether the embedded ordering service (`bloomc sequencer`, killed
//! too) or ZooKeeper orders the batches. The kill times are drawn from a seed (printed with every failure;
//! `BLOOMC_CRASH_SEED=N` runs it again). Loopback only; every process is waited for with a
//! time limit.

mod common;
#[path = "../runtime/tests/zk_server/mod.rs"]
mod zk_server;

use common::procs::{finish, spawn};
use std::io::{BufRead, Read};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A run of `args` whose nodes named in `kills` (or `sequencer`, the embedded ordering
/// service) are killed `after` their first start, in order; returns (exit code, stdout, stderr, how many kills hit a live node process).
fn run_with_kills(args: &[&str], kills: &[(&str, Duration)]) -> (Option<i32>, String, String, usize) {
    let mut child = spawn(args, &[]);
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let err = child.stderr.take().expect("stderr");
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        })
    };
    let mut out = child.stdout.take().expect("stdout");
    let drained = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    // The process's latest pid, from the launcher's own lines (not the nodes' forwarded ones).
    let pid = |node: &str| -> Option<String> {
        let what = if node == "sequencer" { node.to_string() } else { format!("node {node}") };
        let lines = lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().rev().find_map(|l| {
            let rest = l.strip_prefix("started ").or_else(|| l.strip_prefix("restarted "))?;
            let pid = rest.strip_prefix(what.as_str())?.strip_prefix(" (pid ")?.strip_suffix(')')?;
            Some(pid.to_string())
        })
    };
    let start = Instant::now();
    let mut hit = 0;
    for (node, after) in kills {
        while start.elapsed() < *after {
            std::thread::sleep(Duration::from_millis(10));
        }
        let Some(p) = pid(node) else { continue };
        if Command::new("kill").args(["-9", &p]).status().is_ok_and(|s| s.success()) {
            hit += 1;
        }
    }
    let (code, _, _) = finish(child, Duration::from_secs(240));
    let _ = reader.join();
    let err = lines.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
    (code, drained.join().unwrap_or_default(), err, hit)
}

/// The run's seed: `BLOOMC_CRASH_SEED`, or the clock's.
fn seed() -> u64 {
    std::env::var("BLOOMC_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    })
}

/// Kill times: the first near `from`, each next 500 to 1,100 ms later (a xorshift of `seed`).
fn times(seed: u64, from: u64, n: usize) -> Vec<Duration> {
    let mut x = seed | 1;
    let mut t = from;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += 500 + x % 600;
            Duration::from_millis(t - 500)
        })
        .collect()
}

fn sorted(text: &str) -> Vec<&str> {
    let mut v: Vec<&str> = text.lines().collect();
    v.sort_unstable();
    v
}

#[test]
fn killed_nodes_of_every_kind_come_back_and_the_run_gives_the_uninterrupted_facts() {
    // CAMPAIGN under `auto` (a seal on click, requests held until it is sealed): its outputs
    // are the same in every schedule, so a run with crashes must print exactly these.
    let base = ["run", "examples/adtrack.bl", "--set", "query=CAMPAIGN", "--set", "clicks=8000", "--show", "all"];
    let (code, expected, err) = finish(spawn(&base, &[]), Duration::from_secs(120));
    assert_eq!(code, Some(0), "{err}");
    let seed = seed();
    let plans =
        [["report[1]", "adserver[3]", "cache[0]", "report[1]"], ["analyst", "report[0]", "adserver[0]", "cache[1]"]];
    for (i, nodes) in plans.iter().enumerate() {
        let at = times(seed.wrapping_add(i as u64), 1000, nodes.len());
        let kills: Vec<(&str, Duration)> = nodes.iter().copied().zip(at).collect();
        let kills = &kills;
        let mut args = base.to_vec();
        args.extend(["--processes", "--restart"]);
        let (code, out, err, hit) = run_with_kills(&args, kills);
        eprintln!("seed {seed}: killed {hit} of {kills:?}");
        assert_eq!(code, Some(0), "seed {seed}, {kills:?}: {err}");
        // Most kills land in the run (a node that finished its part may exit first only
        // if the run is nearly over).
        assert!(hit >= 2, "seed {seed}: only {hit} of the kills hit a running node: {err}");
        assert!(err.matches("\nrestarted node ").count() >= hit, "{err}");
        assert!(err.contains("recovering from its journal"), "{err}");
        assert_eq!(
            sorted(&out),
            sorted(&expected),
            "seed {seed}, {kills:?}: the facts differ from an uninterrupted run"
        );
        assert!(out.contains("-- analyst.disagreement: 0 facts emitted"), "{out}");
    }
}

/// POOR (order-sensitive) ordered by `service` across processes, with `kills`: the replicas
/// must agree and take the same batches.
fn ordered_with_kills(service: &str, victims: &[&str]) {
    let args = [
        "run",
        "examples/adtrack.bl",
        "--set",
        "query=POOR",
        "--set",
        "clicks=8000",
        "--coordination",
        "order",
        "--order-service",
        service,
        "--processes",
        "--restart",
    ];
    let seed = seed();
    let at = times(seed, 1000, victims.len());
    let kills: Vec<(&str, Duration)> = victims.iter().copied().zip(at).collect();
    let (code, out, err, hit) = run_with_kills(&args, &kills);
    eprintln!("seed {seed}: killed {hit} of {kills:?}");
    assert_eq!(code, Some(0), "seed {seed}, {kills:?}: {err}");
    assert!(hit >= 2, "seed {seed}: only {hit} of the kills hit a running process: {err}");
    assert!(out.contains("-- analyst.disagreement: 0 facts emitted"), "{out}");
    // Every replica took every batch, once: the same ticks and facts in at each.
    let facts = |r: &str| -> Option<String> {
        let line = err.lines().find(|l| l.starts_with(&format!("{r}: ")))?;
        Some(line.split(", ").take(2).collect::<Vec<_>>().join(", ").replacen(r, "", 1))
    };
    let first = facts("report[0]");
    assert!(first.is_some(), "{err}");
    assert_eq!(facts("report[1]"), first, "seed {seed}, {kills:?}: {err}");
    assert_eq!(facts("report[2]"), first, "seed {seed}, {kills:?}: {err}");
}

#[test]
fn ordered_replicas_and_the_sequencer_that_crash_still_agree() {
    ordered_with_kills("embedded", &["report[2]", "sequencer", "adserver[1]", "sequencer", "report[0]"]);
}

#[test]
fn replicas_ordered_by_zookeeper_that_crash_still_agree() {
    let Some(zk) = zk_server::server() else { return };
    ordered_with_kills(&format!("zookeeper://{}", zk.addr()), &["report[1]", "adserver[2]", "report[0]"]);
}

#[test]
fn restart_is_refused_where_nothing_could_come_back() {
    let out = common::bloomc(&["run", "examples/adtrack.bl", "--restart"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("add `--processes`"));
}
