//! `bloomc explore` end to end: the report of the word count with and without its seal, a
//! counterexample with exit code 3 when the labels' coordination is left out, replay by id,
//! exhaustive search, and refusals.

mod common;
use common::bloomc;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const SMALL: [&str; 6] = ["--set", "batches=2", "--set", "words_per_batch=2", "--set", "vocabulary=2"];

fn explore(extra: &[&str]) -> std::process::Output {
    let mut args = vec!["explore", "examples/wordcount.bl"];
    args.extend(SMALL);
    args.extend(extra);
    bloomc(&args)
}

#[test]
fn the_sealed_word_count_is_the_same_in_every_schedule_and_differs_without_its_seal() {
    let out = explore(&["--schedules", "60"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn a_label_contradicted_by_a_schedule_exits_three_with_a_replayable_counterexample() {
    let out = explore(&["--schedules", "60", "--coordination", "none"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("error: `count.counts` is labelled Async, but schedule "), "{report}");
    assert!(
        report.contains("verdicts: 3 Seal or Async labels checked, 2 unsound, 0 replica disagreements"),
        "{report}"
    );
    // The schedule's id replays the same trace.
    let id = report.split("(replay with --replay ").nth(1).and_then(|r| r.split(')').next()).expect("an id");
    let replayed = explore(&["--coordination", "none", "--replay", id]);
    assert_eq!(replayed.status.code(), Some(0), "{}", text(&replayed.stderr));
    let trace = text(&replayed.stdout);
    let first_step = report.lines().find(|l| l.starts_with("  count")).expect("a step of count");
    assert!(trace.contains(first_step), "{first_step}\n---\n{trace}");
}

#[test]
fn exhaustive_search_says_when_it_tried_every_schedule() {
    let out = bloomc(&["explore", "runtime/tests/verdicts/class4_protected_read_with_own_batching.bl", "--exhaustive"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains(", exhaustive)"), "{report}");
    assert!(report.contains("m.tally  Run    differs"), "{report}");
}

#[test]
fn bad_replay_ids_and_bounds_are_usage_errors() {
    let out = explore(&["--replay", "zz9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`zz9` is not a schedule id"), "{}", text(&out.stderr));
    let out = explore(&["--schedules", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("must be at least 1"), "{}", text(&out.stderr));
}

#[test]
fn a_read_protected_by_a_seal_waits_for_its_partition_in_a_run() {
    let out = bloomc(&["run", "runtime/tests/verdicts/class6_protected_read_is_held.bl"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("coordination auto (seal r.click on (id), hold r.request on (id))"),
        "{}",
        text(&out.stderr)
    );
    // Every answer is final: id 1 has two clicks, so it is never reported poor.
    assert_eq!(text(&out.stdout), "-- r.response: 2 facts emitted\nr.response(0, 0)\nr.response(2, 2)\n");
}
