//! Round trips of the rewriter (`bloomc rewrite`, `compiler/src/rewrite/`): for every example
//! (adtrack under each query), every `--coordination`, and random networks, the rewritten
//! text passes `bloomc check` with no more warnings than the original, rewriting it again
//! inserts nothing, and running it with `--coordination none` applies the same coordination
//! and gives the same results as running the original with the coordination: the same facts
//! on every stream the analysis labels deterministic, as many seal keys released, and no
//! replica disagreement where the original has none.

mod common;

#[path = "../runtime/tests/programs/mod.rs"]
#[allow(dead_code)]
mod programs;

use common::bloomc;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sets(args: &[(&str, &str)]) -> Vec<String> {
    args.iter().flat_map(|(k, v)| ["--set".to_string(), format!("{k}={v}")]).collect()
}

fn run(file: &str, extra: &[String]) -> std::process::Output {
    let mut args: Vec<&str> = vec![file];
    args.extend(extra.iter().map(String::as_str));
    // Every fact, to compare: a network run prints a few per output by default.
    if file == "run" {
        args.extend(["--show", "all"]);
    }
    bloomc(&args)
}

/// The streams `analyze` labels deterministic (Seal or Async).
fn deterministic(file: &str, extra: &[String]) -> BTreeSet<String> {
    let out = run("analyze", &[&[file.to_string()][..], extra].concat());
    text(&out.stdout)
        .lines()
        .take_while(|l| !l.starts_with("coordination:"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (name, label) = (words.next()?, words.next()?);
            (label.starts_with("Seal") || label == "Async").then(|| name.to_string())
        })
        .collect()
}

/// The fact lines of a run's output on `streams` (all of them when `None`).
fn facts(stdout: &str, streams: Option<&BTreeSet<String>>) -> BTreeSet<String> {
    stdout
        .lines()
        .filter(|l| l.ends_with(')') && !l.starts_with("--"))
        .filter(|l| streams.is_none_or(|s| l.split_once('(').is_some_and(|(n, _)| s.contains(n))))
        .map(str::to_string)
        .collect()
}

/// The count in "seals: N seal keys released", if sealing.
fn released(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|l| l.strip_prefix("seals: ")).and_then(|l| l.split(' ').next()).map(str::to_string)
}

fn disagreements(stdout: &str) -> usize {
    stdout.lines().filter(|l| l.contains(".disagreement(")).count()
}

fn warnings(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.starts_with("[W")).count()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rewrite");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

/// One round trip: `file` with `rewrite_sets` (the program's configuration) rewritten for
/// `coordination`, run with `run_sets` (sizes) besides.
fn round_trip(file: &str, rewrite_sets: &[(&str, &str)], run_sets: &[(&str, &str)], coordination: &str) -> bool {
    let what = format!("{file} {rewrite_sets:?} --coordination {coordination}");
    let config = sets(rewrite_sets);
    let co = ["--coordination".to_string(), coordination.to_string()];
    let rewritten = run("rewrite", &[&[file.to_string()][..], &config, &co].concat());
    let original = run("run", &[&[file.to_string()][..], &config, &sets(run_sets), &co].concat());
    if rewritten.status.code() != Some(0) {
        // Nothing to insert is an error the run gives too, in the same words.
        let err = text(&rewritten.stderr);
        let line = err.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{what}: {err}"));
        assert_eq!(original.status.code(), rewritten.status.code(), "{what}: {err}");
        assert!(text(&original.stderr).contains(line), "{what}: the run says otherwise: {}", text(&original.stderr));
        return false;
    }
    let source = text(&rewritten.stdout);
    let tag: String = config.concat().chars().filter(char::is_ascii_alphanumeric).collect();
    let name = format!("{}.{tag}.{coordination}.bl", file.replace(['/', '.'], "_"));
    let path = scratch(&name);
    std::fs::write(&path, &source).expect("write the rewritten program");
    let path = path.display().to_string();

    let check = run("check", std::slice::from_ref(&path));
    assert_eq!(
        check.status.code(),
        Some(0),
        "{what}: the rewritten text fails `check`:\n{source}\n{}",
        text(&check.stderr)
    );
    let before = run("check", &[&[file.to_string()][..], &config].concat());
    assert!(
        warnings(&text(&check.stderr)) <= warnings(&text(&before.stderr)),
        "{what}: the rewritten text has more warnings:\n{}",
        text(&check.stderr)
    );
    // Rewriting the rewritten text inserts nothing more.
    let again = run("rewrite", &[path.clone(), "--coordination".to_string(), "auto".to_string()]);
    if coordination == "auto" {
        assert_eq!(text(&again.stdout), source, "{what}: rewriting twice inserts more");
    }

    let none = ["--coordination".to_string(), "none".to_string()];
    let after = run("run", &[&[path.clone()][..], &sets(run_sets), &none].concat());
    let (o_err, a_err) = (text(&original.stderr), text(&after.stderr));
    assert_eq!(original.status.code(), after.status.code(), "{what}:\n{o_err}\n----\n{a_err}");
    let (o_out, a_out) = (text(&original.stdout), text(&after.stdout));
    if disagreements(&o_out) == 0 {
        assert_eq!(disagreements(&a_out), 0, "{what}: replicas disagree in the rewritten run");
    }
    if coordination == "auto" {
        // The same operators: the original's `auto (X)` is the rewritten text's own X.
        let chosen = |e: &str, prefix: &str| -> Option<String> {
            let line = e.lines().find(|l| l.contains(" nodes, coordination "))?;
            let rest = line.split_once(prefix)?.1;
            Some(rest.split_once("): ").map_or(rest, |(x, _)| x).to_string())
        };
        if let Some(x) = chosen(&o_err, "coordination auto (").filter(|x| x != "none chosen") {
            assert_eq!(chosen(&a_err, "the program's own: "), Some(x), "{what}:\n{a_err}");
        }
        assert_eq!(released(&o_err), released(&a_err), "{what}: seal keys released differ");
        // A deterministic stream may still miss facts in one run where it reads state that
        // is still growing (N0101, the caches' answers in adtrack): never a wrong one. So the
        // two runs' facts must agree in one of five attempts, or, on a loaded machine where
        // each run may miss some, the facts seen over the attempts must be the same.
        let streams = deterministic(file, &config);
        let shown = o_err.contains(" nodes, coordination ").then_some(&streams);
        let mut last = (Vec::new(), Vec::new());
        let (mut seen_o, mut seen_a) = (BTreeSet::new(), BTreeSet::new());
        let agree = (0..5).any(|attempt| {
            let (o, a) = if attempt == 0 {
                (facts(&o_out, shown), facts(&a_out, shown))
            } else {
                let o = run("run", &[&[file.to_string()][..], &config, &sets(run_sets), &co].concat());
                let a = run("run", &[&[path.clone()][..], &sets(run_sets), &none].concat());
                (facts(&text(&o.stdout), shown), facts(&text(&a.stdout), shown))
            };
            last = (o.difference(&a).take(5).cloned().collect(), a.difference(&o).take(5).cloned().collect());
            let same = o == a;
            seen_o.extend(o);
            seen_a.extend(a);
            same || (attempt > 0 && seen_o == seen_a)
        });
        assert!(
            agree,
            "{what}: deterministic outputs differ: only the original's run has {:?}, only the rewritten's {:?}",
            last.0, last.1
        );
    }
    true
}

const ADTRACK_RUN: [(&str, &str); 4] = [("clicks", "400"), ("requests", "30"), ("ads", "10"), ("poor", "20")];

#[test]
fn every_example_round_trips() {
    let mut rewritten = 0;
    for query in ["THRESH", "POOR", "WINDOW", "CAMPAIGN"] {
        for co in ["auto", "seal", "order"] {
            rewritten += usize::from(round_trip("examples/adtrack.bl", &[("query", query)], &ADTRACK_RUN, co));
        }
    }
    let mastered = [("query", "CAMPAIGN"), ("mastered", "true")];
    rewritten += usize::from(round_trip("examples/adtrack.bl", &mastered, &ADTRACK_RUN, "seal"));
    for file in ["campaign", "kvs", "pubsub", "wordcount"] {
        for co in ["auto", "seal", "order"] {
            rewritten += usize::from(round_trip(&format!("examples/{file}.bl"), &[], &[], co));
        }
    }
    // Every example under `auto`, adtrack under each query with `order`, and the sealed
    // queries with `seal`, at least.
    assert!(rewritten >= 15, "only {rewritten} round trips rewrote");
}

#[test]
fn random_networks_round_trip() {
    let mut rng = programs::Rng(0x5eed_0014);
    let mut rewritten = 0;
    for i in 0..24 {
        let src = programs::network(&mut rng);
        let path = scratch(&format!("random{i}.bl"));
        std::fs::write(&path, &src).expect("write");
        let file = path.display().to_string();
        if run("check", std::slice::from_ref(&file)).status.code() != Some(0) {
            continue;
        }
        for co in ["auto", "seal", "order"] {
            rewritten += usize::from(round_trip(&file, &[], &[], co));
        }
    }
    assert!(rewritten >= 24, "only {rewritten} random round trips rewrote");
}

#[test]
fn the_campaign_query_rewrites_to_a_hold_and_its_punctuations() {
    let out = bloomc(&["rewrite", "examples/adtrack.bl", "--set", "query=CAMPAIGN"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn a_seal_argument_becomes_a_declaration_in_place_of_the_declared_one() {
    let out = bloomc(&[
        "rewrite",
        "examples/adtrack.bl",
        "--set",
        "query=CAMPAIGN",
        "--seal",
        "report.click=id,campaign",
        "--coordination",
        "seal",
    ]);
    let source = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(source.contains("    report.click sealed on (id, campaign);\n"), "{source}");
    assert!(!source.contains("report.click sealed on (campaign);"), "{source}");
    assert!(source.contains("  hold report.click until sealed on (id, campaign);\n"), "{source}");
    assert!(source.contains("  punctuate adserver.click on (id, campaign) -> report.click;\n"), "{source}");
}

#[test]
fn rewrite_refuses_what_it_cannot_print() {
    let out = bloomc(&["rewrite", "examples/adtrack.bl", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("prints source text"), "{}", text(&out.stderr));
}

#[test]
fn the_rewritten_text_runs_across_processes_as_written() {
    // Every node process rewrites the program for the `--coordination` the launcher gives
    // it (`none` here): the order the text carries sequences the replicas.
    let out = bloomc(&["rewrite", "examples/adtrack.bl", "--set", "query=POOR"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let path = scratch("poor_processes.bl");
    std::fs::write(&path, &out.stdout).expect("write");
    let file = path.display().to_string();
    let mut args = vec!["run", file.as_str(), "--processes", "--coordination", "none", "--show", "all"];
    let small = sets(&ADTRACK_RUN);
    args.extend(small.iter().map(String::as_str));
    let run = bloomc(&args);
    let err = text(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("started node ").count(), 11, "{err}");
    assert!(err.contains("coordination none inserted (the program's own: order at report): quiescent"), "{err}");
    assert_eq!(disagreements(&text(&run.stdout)), 0, "replicas disagreed behind the written order");
}
