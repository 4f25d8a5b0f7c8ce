//! Seals on fed inputs at run time (`runtime/src/fed.rs`): a seal on an input fed by a
//! generator or a file describes the feed, so `bloomc run` delivers each key's rows together
//! in the tick of the key's last row, as the analysis and `bloomc explore` assume. Without
//! the seal the same programs emit partial counts.

mod common;
use common::bloomc;

fn run(args: &[&str]) -> (Vec<String>, String) {
    let out = bloomc(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    let facts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("counts(") || l.contains("db(") || l.starts_with("answer("))
        .map(str::to_string)
        .collect();
    (facts, stderr)
}

#[test]
fn a_sealed_generated_feed_delivers_each_key_in_one_tick() {
    let file = "tests/fed/count_sealed_feed.bl";
    let (sealed, _) = run(&["run", file]);
    assert_eq!(sealed, ["counts(\"a\", 0, 6)", "counts(\"a\", 1, 6)"]);
    // The same answer on two workers, each holding its share of every key.
    let (two, _) = run(&["run", file, "--workers", "2"]);
    assert_eq!(two, sealed);
    // Without the seal, batches of 4 rows split each key: partial counts are emitted too.
    let (unsealed, stderr) = run(&["run", file, "--set", "seal_it=false"]);
    assert!(unsealed.contains(&"counts(\"a\", 0, 4)".to_string()), "{unsealed:?}");
    assert!(stderr.contains("W0100"), "the analysis warns without the seal: {stderr}");
    // `--seal` seals the feed for one run, at run time as in the analysis.
    let (flag, _) = run(&["run", file, "--set", "seal_it=false", "--seal", "c.w=batch"]);
    assert_eq!(flag, sealed);
}

#[test]
fn a_sealed_file_feed_waits_for_the_last_row_of_each_key() {
    // Rows of batch 0 are on lines 1, 3 and 5: with 2 rows a tick they span three ticks.
    let args = ["run", "tests/fed/count_module.bl", "--input", "w=tests/fed/words.csv", "--batch", "2"];
    let (unsealed, _) = run(&args);
    assert_eq!(unsealed, ["counts(\"a\", 0, 1)", "counts(\"a\", 1, 1)"]);
    let (sealed, _) = run(&[&args[..], &["--seal", "w=batch"]].concat());
    assert_eq!(sealed, ["counts(\"a\", 0, 3)", "counts(\"a\", 1, 2)"]);
}

#[test]
fn a_network_stores_only_final_counts_from_a_sealed_feed() {
    let file = "tests/fed/count_network.bl";
    let (db, _) = run(&["run", file]);
    assert_eq!(db.len(), 4, "{db:?}");
    assert!(db.iter().all(|l| l.ends_with(", 10)")), "{db:?}");
    let plan = bloomc(&["dump", "plan", file]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("feed w sealed on (batch): each key's rows are delivered together"), "{text}");
    // Without the declaration the store keeps whatever count came first; `--seal` gives the
    // network the seal for one run (the rewritten program declares it).
    let source = std::fs::read_to_string(file).expect("read").replace("  c.w sealed on (batch);", "");
    let dir = common::procs::scratch("fed-network-seal-flag", &[("unsealed.bl", &source)]);
    let path = dir.join("unsealed.bl").display().to_string();
    let (loose, _) = run(&["run", &path]);
    assert!(!loose.iter().all(|l| l.ends_with(", 10)")), "{loose:?}");
    let (flag, _) = run(&["run", &path, "--seal", "c.w=batch"]);
    assert_eq!(flag, db);
}

#[test]
fn explore_agrees_that_the_sealed_feed_is_deterministic() {
    let out = bloomc(&["explore", "tests/fed/count_sealed_feed.bl", "--schedules", "50"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("c.counts  Async  same in every schedule"), "{stdout}");
}

#[test]
fn a_read_protected_by_a_sealed_feed_waits_for_its_partition() {
    let file = "tests/fed/tally_held_ask.bl";
    // Each question is about an item whose 4 votes arrive over 4 ticks: held until its
    // item's last vote, it is answered once, with the final count (unheld, it read nothing).
    let (answers, _) = run(&["run", file]);
    assert_eq!(answers, ["answer(0, 0, 4)", "answer(1, 1, 4)"]);
    let (two, _) = run(&["run", file, "--workers", "2"]);
    assert_eq!(two, answers);
    let analyze = bloomc(&["analyze", file]);
    let text = String::from_utf8_lossy(&analyze.stdout);
    assert!(text.contains("and hold each `ask` fact per (item) until that partition of `vote` is sealed"), "{text}");
    let explore = bloomc(&["explore", file, "--schedules", "50"]);
    let text = String::from_utf8_lossy(&explore.stdout);
    assert_eq!(explore.status.code(), Some(0), "{text}");
    assert!(text.contains("t.answer  Async  same in every schedule"), "{text}");
}

#[test]
fn a_networks_read_held_by_a_sealed_feed_is_a_hold_item_of_the_rewritten_program() {
    let file = "tests/fed/tally_held_ask_network.bl";
    let rewritten = bloomc(&["rewrite", file]);
    let text = String::from_utf8_lossy(&rewritten.stdout).into_owned();
    assert!(text.contains("hold t.ask on (item) until t.vote sealed;"), "{text}");
    let answers = |args: &[&str]| -> Vec<String> {
        let out = bloomc(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(".answer(")).map(str::to_string).collect()
    };
    let held = answers(&["run", file]);
    let want = ["t[0].answer(0, 0, 4)", "t[0].answer(1, 1, 4)", "t[1].answer(0, 0, 4)", "t[1].answer(1, 1, 4)"];
    assert_eq!(held, want);
    // Without the hold (nothing inserted), the questions read the first tick's counts.
    assert_ne!(answers(&["run", file, "--coordination", "none"]), want);
    // The rewritten text runs with the hold it states.
    let dir = common::procs::scratch("fed-rewritten", &[("rewritten.bl", &text)]);
    let path = dir.join("rewritten.bl").display().to_string();
    assert_eq!(answers(&["run", &path, "--coordination", "none"]), want);
    let check = bloomc(&["check", &path]);
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stderr));
}
