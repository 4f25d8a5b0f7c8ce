//! `bloomc run` end to end: the one-node examples run to quiescence, print their outputs,
//! and give identical results for any worker count; what cannot run yet says so.

use std::process::{Command, Output};

fn bloomc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bloomc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("bloomc runs")
}

#[test]
fn one_node_examples_run_and_agree_across_worker_counts() {
    for example in ["examples/kvs.bl", "examples/pubsub.bl"] {
        let one = bloomc(&["run", example]);
        assert_eq!(one.status.code(), Some(0), "{}", String::from_utf8_lossy(&one.stderr));
        let stdout = String::from_utf8_lossy(&one.stdout).into_owned();
        assert!(stdout.contains("-- response: ") && stdout.contains("response("), "{stdout}");
        assert!(String::from_utf8_lossy(&one.stderr).contains("(quiescent)"));
        let two = bloomc(&["run", example, "--workers", "2"]);
        assert_eq!(two.status.code(), Some(0));
        assert_eq!(stdout, String::from_utf8_lossy(&two.stdout), "{example}: -w 1 and -w 2 differ");
    }
}

#[test]
fn per_tick_output_shows_when_facts_appear() {
    let out = bloomc(&["run", "examples/pubsub.bl", "--per-tick"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("-- response at tick 0:"));
}

#[test]
fn multi_node_systems_are_refused_clearly() {
    let out = bloomc(&["run", "examples/adtrack.bl"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has 4 node groups") && err.contains("not built yet"), "{err}");
}

#[test]
fn a_node_that_never_settles_stops_at_max_ticks_and_says_so() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("run_forever");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("count.bl");
    std::fs::write(
        &path,
        "module M { input a(k: int); output o(k: int); table t(k: int); t <= a; t <+ from t x where x.k < 1000000 select x.k + 1; o <= t; }
         system S { node m: M; feed m.a from generate(rows: 1) { k: 0 }; }",
    )
    .expect("write");
    let out = bloomc(&["run", path.to_str().expect("utf-8"), "--max-ticks", "20"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("20 ticks (stopped at --max-ticks)"));
}
