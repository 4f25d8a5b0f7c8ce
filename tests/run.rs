//! `bloomc run` end to end: the one-node examples run to quiescence, print their outputs,
//! and give identical results for any worker count; what cannot run yet says so.

// A test fails by panicking: indexing a JSON report or a list that lacks the entry is
// such a failure.
#![allow(clippy::indexing_slicing)]

use std::process::Command;

mod common;
use common::bloomc;

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
fn campaign_takes_the_fold_path_and_agrees_across_worker_counts() {
    let args = ["run", "examples/campaign.bl", "--set", "clicks=20000", "--set", "threshold=200"];
    let one = bloomc(&args);
    assert_eq!(one.status.code(), Some(0), "{}", String::from_utf8_lossy(&one.stderr));
    let stdout = String::from_utf8_lossy(&one.stdout).into_owned();
    assert!(stdout.contains("-- poor: ") && stdout.contains("poor("), "{stdout}");
    let two = bloomc(&[&args[..], &["--workers", "2"]].concat());
    assert_eq!(two.status.code(), Some(0));
    assert_eq!(stdout, String::from_utf8_lossy(&two.stdout), "campaign: -w 1 and -w 2 differ");
}

#[test]
fn per_tick_output_shows_when_facts_appear() {
    let out = bloomc(&["run", "examples/pubsub.bl", "--per-tick"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("-- response at tick 0:"));
}

#[test]
fn multi_node_examples_run_to_quiescence_and_print_their_results() {
    for (example, result) in
        [("examples/adtrack.bl", "-- analyst.result: "), ("examples/wordcount.bl", "-- commit.db: ")]
    {
        let out = bloomc(&["run", example]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{example}: {err}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(result), "{example}: {stdout}");
        assert!(err.contains(": quiescent") && err.contains("0 facts undelivered"), "{example}: {err}");
    }
    let adtrack = bloomc(&["run", "examples/adtrack.bl", "--set", "query=POOR"]);
    let err = String::from_utf8_lossy(&adtrack.stderr);
    for node in ["adserver[4]:", "report[2]:", "cache[1]:", "analyst:"] {
        assert!(err.contains(node), "no summary for {node}: {err}");
    }
}

#[test]
fn auto_coordination_applies_what_the_analysis_chose() {
    // adtrack: THRESH is confluent, POOR needs its replicas ordered, CAMPAIGN has a seal.
    for (query, chosen) in [
        ("THRESH", "coordination auto (none chosen): quiescent"),
        ("POOR", "coordination auto (order at report): quiescent"),
        // CAMPAIGN's requests name an ad, not a campaign: each waits until every campaign
        // is sealed, so every answer is final.
        (
            "CAMPAIGN",
            "coordination auto (seal report.click on (campaign), hold report.request until click is sealed): quiescent",
        ),
    ] {
        let out = bloomc(&["run", "examples/adtrack.bl", "--set", &format!("query={query}")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{query}: {err}");
        assert!(err.contains(chosen), "{query}: {err}");
    }
    // Word count: the seal on the tweets reaches `count` through the splitters, so the counts
    // are released per batch once complete: one count per (word, batch), the final one.
    let counts = |args: &[&str]| -> (usize, usize) {
        let out = bloomc(&[&["run", "examples/wordcount.bl", "--show", "all"][..], args].concat());
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let facts: Vec<&str> = stdout.lines().filter(|l| l.starts_with("commit.db(")).collect();
        let keys: std::collections::BTreeSet<String> =
            facts.iter().map(|f| f.rsplit_once(", ").map_or(String::new(), |(k, _)| k.to_string())).collect();
        (facts.len(), keys.len())
    };
    let (facts, keys) = counts(&[]);
    assert_eq!(facts, keys, "a sealed word count commits each (word, batch) once");
    let (facts, keys) = counts(&["--set", "seal_batch=false"]);
    assert!(facts > keys, "without the seal, counts grow batch by batch ({facts} facts, {keys} keys)");
}

/// The round trip of the language reference (section 11.2): three clients ask 30 questions
/// each; requests are partitioned over two servers, and answers go back by `reply(asker)`.
const ROUND_TRIP: &str = "module Client {
  input ask(qid: int);
  input answer(asker: int, qid: int, val: string);
  output request(asker: int, qid: int);
  output result(qid: int, val: string);
  request <= from ask a select instance() as asker, a.qid;
  result <= from answer a where a.asker == instance() select a.qid, a.val;
}
module Server {
  input request(asker: int, qid: int);
  output answer(asker: int, qid: int, val: string);
  output seen(asker: int, qid: int);
  answer <= from request r select r.asker, r.qid, \"v\" + str(r.qid);
  seen <= request;
}
module Tap {
  input seen(asker: int, qid: int);
  output all(asker: int, qid: int);
  all <= seen;
}
system RoundTrip {
  node client: Client * 3;
  node server: Server * 2;
  node tap: Tap * 2;
  feed client.ask from generate(rows: 30, seed: 1, batch: 5) { qid: row() };
  client.request -> server.request partition(qid);
  server.answer -> client.answer reply(asker);
  server.seen -> tap.seen any;
}";

#[test]
fn wires_deliver_by_partition_reply_and_any() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("round_trip");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("round_trip.bl");
    std::fs::write(&file, ROUND_TRIP).expect("program written");
    let out = bloomc(&["run", &file.display().to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // reply(asker): every client gets exactly its own 30 answers.
    for i in 0..3 {
        assert!(stdout.contains(&format!("-- client[{i}].result: 30 facts emitted")), "client {i}: {stdout}");
    }
    // any: each of the 90 requests reaches exactly one tap.
    let taps: usize = (0..2)
        .map(|i| {
            let head = format!("-- tap[{i}].all: ");
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&head))
                .and_then(|r| r.split(' ').next()?.parse().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(taps, 90, "{stdout}");
    assert!(err.contains("0 replies to no instance"), "{err}");
}

#[test]
fn adtrack_runs_with_its_replicas_sequenced() {
    for query in ["POOR", "CAMPAIGN"] {
        let out =
            bloomc(&["run", "examples/adtrack.bl", "--set", &format!("query={query}"), "--coordination", "order"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{query}: {err}");
        assert!(err.contains("coordination order (replicated groups sequenced): quiescent"), "{query}: {err}");
    }
    // The analyst asks every replica the same questions: ordered, they never disagree.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("summary");
    std::fs::create_dir_all(&dir).expect("temp dir");
    for strategy in ["order", "none"] {
        let path = dir.join(format!("{strategy}.json"));
        let path_text = path.display().to_string();
        let args = ["run", "examples/adtrack.bl", "--set", "query=POOR", "--coordination", strategy];
        let out = bloomc(&[&args[..], &["--summary-json", &path_text]].concat());
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(&path).expect("summary written");
        let v: serde_json::Value = serde_json::from_str(&text).expect("summary is JSON");
        assert_eq!(v["strategy"], strategy);
        assert_eq!(v["query"], "POOR");
        assert_eq!(v["quiescent"], true);
        assert!(v["records_processed"].as_u64().is_some_and(|n| n >= 20_000), "{text}");
        // Records over time end at the total, and never go down.
        let over: Vec<u64> = v["records_over_time"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p[1].as_u64()).collect())
            .unwrap_or_default();
        assert_eq!(over.last().copied(), v["records_processed"].as_u64(), "{text}");
        assert!(over.windows(2).all(|w| w[0] <= w[1]));
        assert!(v["answers"].as_u64().is_some_and(|n| n > 0), "{text}");
        assert_eq!(v["per_node"].as_object().map(|m| m.len()), Some(11), "{text}");
        let disagreements = v["replica_disagreements"].as_u64().expect("adtrack measures disagreement");
        if strategy == "order" {
            assert_eq!(disagreements, 0, "ordered replicas disagreed: {text}");
        }
    }
    let one = bloomc(&["run", "examples/kvs.bl", "--coordination", "order"]);
    assert_eq!(one.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&one.stderr).contains("applies to networks"));
}

#[test]
fn adtrack_enforces_its_seals_shared_and_independent() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("seal");
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (query, mastered) in [("CAMPAIGN", "false"), ("CAMPAIGN", "true"), ("WINDOW", "false")] {
        let path = dir.join(format!("{query}-{mastered}.json")).display().to_string();
        let out = bloomc(&[
            "run",
            "examples/adtrack.bl",
            "--set",
            &format!("query={query}"),
            "--set",
            &format!("mastered={mastered}"),
            "--coordination",
            "seal",
            "--summary-json",
            &path,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{query} {mastered}: {err}");
        assert!(err.contains("0 facts late") && err.contains("0 facts still held at the end"), "{err}");
        assert!(!err.contains("seals: 0 seal keys released"), "{err}");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("summary")).expect("summary is JSON");
        assert_eq!(v["strategy"], "seal");
        assert_eq!(v["replica_disagreements"], 0, "sealed replicas disagreed ({query}, mastered={mastered})");
        // Every released key's wait is measured (three replicas release each campaign).
        let waits = &v["seal_wait_ms"];
        assert!(waits["keys"].as_u64().is_some_and(|n| n >= 3), "{waits}");
        assert!(waits["p50"].as_f64().is_some_and(|m| m >= 0.0) && waits["max"].as_f64() >= waits["p50"].as_f64());
    }
    // POOR declares no seal: nothing to enforce, said clearly.
    let poor = bloomc(&["run", "examples/adtrack.bl", "--set", "query=POOR", "--coordination", "seal"]);
    assert_eq!(poor.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&poor.stderr).contains("declares no seal"));
}

#[test]
fn a_network_stopped_by_max_ticks_counts_what_it_did_not_deliver() {
    // After one tick each, an analyst's question is either undelivered, or answered after
    // the analyst's only tick: either way something is undelivered, however the threads run.
    let out = bloomc(&["run", "examples/adtrack.bl", "--max-ticks", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stopped at --max-ticks"), "{err}");
    // "(N by message)" and "N facts sent" per node, "N facts undelivered" for the network.
    let numbers = |suffix: &str| -> Vec<u64> {
        err.split([',', '(', ')'])
            .filter_map(|part| part.trim().strip_suffix(suffix).and_then(|n| n.trim().parse().ok()))
            .collect()
    };
    let undelivered: u64 = numbers(" facts undelivered").iter().sum();
    assert!(undelivered > 0, "facts sent to stopped nodes are counted: {err}");
    let sent: u64 = numbers(" facts sent").iter().sum();
    let delivered: u64 = numbers(" by message").iter().sum();
    assert!(sent > 0, "{err}");
    assert_eq!(sent, delivered + undelivered, "every fact sent is delivered or counted: {err}");
}

#[test]
fn network_runs_refuse_one_node_options_clearly() {
    let out = bloomc(&["run", "examples/adtrack.bl", "--workers", "2"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--workers above 1") && err.contains("several nodes"), "{err}");
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

const COUNT: &str =
    "module Count { input click(cid: int, id: int); output hot(id: int, n: int); table clicks(cid: int, id: int);
  clicks <= click; hot <= from clicks c group by c.id having count(*) >= 2 select c.id, count(*) as n; }";

fn scratch(name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("count.bl"), COUNT).expect("write");
    for (f, text) in files {
        std::fs::write(dir.join(f), text).expect("write");
    }
    dir
}

#[test]
fn csv_input_with_a_bad_row_stops_and_names_file_line_and_column() {
    let dir = scratch("run_csv", &[("clicks.csv", "cid,id\n1,10\n2,10\n3,x\n")]);
    let bl = dir.join("count.bl");
    let csv = dir.join("clicks.csv");
    let out = bloomc(&["run", bl.to_str().expect("utf-8"), "--input", &format!("click={}", csv.display())]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("clicks.csv:4:2: column `id`: `x` is not an int") && err.contains("--skip-bad-rows"), "{err}");

    let skip = bloomc(&[
        "run",
        bl.to_str().expect("utf-8"),
        "--input",
        &format!("click={}", csv.display()),
        "--skip-bad-rows",
    ]);
    assert_eq!(skip.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&skip.stdout).contains("hot(10, 2)"));
    assert!(String::from_utf8_lossy(&skip.stderr).contains("1 bad input rows skipped"));
}

#[test]
fn json_lines_input_and_csv_output_file() {
    let dir = scratch("run_jsonl", &[("clicks.jsonl", "{\"cid\": 1, \"id\": 5}\n{\"cid\": 2, \"id\": 5}\n[3, 5]\n")]);
    let out_csv = dir.join("hot.csv");
    let out = bloomc(&[
        "run",
        dir.join("count.bl").to_str().expect("utf-8"),
        "--input",
        &format!("click={}", dir.join("clicks.jsonl").display()),
        "--output",
        &format!("hot={}", out_csv.display()),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(out_csv).expect("written"), "5,3\n");
}

#[test]
fn batches_split_a_file_into_ticks() {
    let dir = scratch("run_batch", &[("clicks.csv", "1,10\n2,10\n3,11\n4,11\n5,11\n")]);
    let out = bloomc(&[
        "run",
        dir.join("count.bl").to_str().expect("utf-8"),
        "--input",
        &format!("click={}", dir.join("clicks.csv").display()),
        "--batch",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // With two rows a tick, ad 11 is seen with 2 clicks before it reaches 3: the analysis
    // warns that `hot` depends on batching (OW{id}), and here is why.
    assert!(stdout.contains("hot(11, 2)") && stdout.contains("hot(11, 3)"), "{stdout}");
    // Three ticks of input, then one quiet tick shows the state has settled.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("4 ticks (quiescent)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Sealed on `id`, each ad's clicks enter together in the tick of its last one: the
    // facts of one batch, and the warning is gone.
    let sealed = bloomc(&[
        "run",
        dir.join("count.bl").to_str().expect("utf-8"),
        "--input",
        &format!("click={}", dir.join("clicks.csv").display()),
        "--batch",
        "2",
        "--seal",
        "click=id",
    ]);
    assert_eq!(sealed.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&sealed.stdout);
    assert!(
        stdout.contains("hot(10, 2)") && stdout.contains("hot(11, 3)") && !stdout.contains("hot(11, 2)"),
        "{stdout}"
    );
    assert!(!String::from_utf8_lossy(&sealed.stderr).contains("W0100"));
}

/// Two free loopback ports (bound and released; a race with other programs is unlikely).
fn free_ports() -> (u16, u16) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let b = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    (a.local_addr().expect("addr").port(), b.local_addr().expect("addr").port())
}

fn facts(stdout: &[u8]) -> Vec<String> {
    // Timely prints its own connection messages on stdout; keep only bloomc's output lines.
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with("response(") || l.starts_with("-- "))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_node_spans_two_processes_with_timely_cluster_flags() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("run_cluster");
    std::fs::create_dir_all(&dir).expect("dir");
    let (a, b) = free_ports();
    let hosts = dir.join("hosts.txt");
    std::fs::write(&hosts, format!("127.0.0.1:{a}\n127.0.0.1:{b}\n")).expect("hosts");
    let hosts = hosts.to_str().expect("utf-8").to_string();
    let spawn = |p: &str| {
        Command::new(env!("CARGO_BIN_EXE_bloomc"))
            .args(["run", "examples/pubsub.bl", "--", "-n", "2", "-p", p, "-h", &hosts])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let mut p1 = spawn("1");
    let mut p0 = spawn("0");
    // Bounded: both must finish within a minute, or the test kills them and fails.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if p0.try_wait().expect("wait").is_some() && p1.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let finished = p0.try_wait().expect("wait").is_some() && p1.try_wait().expect("wait").is_some();
    if !finished {
        let _ = p0.kill();
        let _ = p1.kill();
    }
    let out0 = p0.wait_with_output().expect("output");
    let out1 = p1.wait_with_output().expect("output");
    assert!(finished, "the two processes did not finish within a minute");
    assert_eq!(out0.status.code(), Some(0), "{}", String::from_utf8_lossy(&out0.stderr));
    assert_eq!(out1.status.code(), Some(0), "{}", String::from_utf8_lossy(&out1.stderr));
    let single = bloomc(&["run", "examples/pubsub.bl"]);
    assert_eq!(facts(&out0.stdout), facts(&single.stdout), "two processes and one give different outputs");
    assert!(facts(&out1.stdout).is_empty(), "only process 0 prints the outputs");
}

#[test]
fn dump_plan_shows_each_rules_operators() {
    for example in ["kvs", "pubsub", "campaign"] {
        let out = bloomc(&["dump", "plan", &format!("examples/{example}.bl")]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        insta::assert_snapshot!(format!("plan_{example}"), String::from_utf8_lossy(&out.stdout));
    }
}

/// Two rules that join `b` on the same column share its arrangement; one on another column
/// does not, nor does a rule of a recursive component (its own scope).
#[test]
fn dump_plan_shows_which_joins_share_an_arrangement() {
    let src = "module M {
  input a(k: int, v: int); input b(k: int, w: int);
  output o1(k: int, v: int, w: int); output o2(k: int, w: int); output o3(v: int, w: int);
  scratch r(k: int, w: int);
  o1 <= from a x, b y where x.k == y.k select x.k, x.v, y.w;
  o2 <= from a x, b y where x.v == y.k select x.k, y.w;
  o3 <= from a x, b y where x.k == y.w select x.v, y.k;
  r <= b; r <= from r x, b y where x.w == y.k select x.k, y.w;
}
system S { node m: M; feed m.a from generate(rows: 10) { k: row() % 3, v: row() }; feed m.b from generate(rows: 10) { k: row() % 4, w: row() % 3 }; }";
    let dir = scratch("shared", &[("shared.bl", src)]);
    let out = bloomc(&["dump", "plan", &dir.join("shared.bl").display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let rule =
        |target: &str| text.lines().find(|l| l.contains(&format!(" {target} <=: scan"))).unwrap_or("").to_string();
    for target in ["o1", "o2"] {
        assert!(rule(target).contains("join b on (k) (arranged by key, shared by 2 joins)"), "{text}");
    }
    assert!(rule("o3").contains("join b on (w) (arranged by key) ->"), "{text}");
    let recursive = text.lines().find(|l| l.contains(" r <=: scan r ")).unwrap_or("");
    assert!(recursive.contains("join b on (k) (arranged by key) ->"), "{text}");
}

#[test]
fn dump_plan_shows_the_coordination_the_rewriter_inserts() {
    let text = |args: &[&str]| String::from_utf8_lossy(&bloomc(args).stdout).to_string();
    let shared = text(&["dump", "plan", "examples/adtrack.bl"]);
    assert!(shared.starts_with("coordination: seal report.click on (campaign): producers adserver[0]"), "{shared}");
    assert!(shared.contains("0 keys have one producer (independent seal)"), "{shared}");
    assert!(
        shared.contains(
            "report[0], report[1], report[2] hold each `request` fact until every partition of `click` is sealed"
        ),
        "{shared}"
    );
    let mastered = text(&["dump", "plan", "examples/adtrack.bl", "--set", "mastered=true"]);
    assert!(mastered.contains("several (shared seal)") && !mastered.contains(", 0 keys have one"), "{mastered}");
    assert!(mastered.contains(" 0 several (shared seal)"), "{mastered}");
    let poor = text(&["dump", "plan", "examples/adtrack.bl", "--set", "query=POOR"]);
    assert!(poor.starts_with("coordination: a sequencer before report[0], report[1], report[2]"), "{poor}");
}

#[test]
fn a_feed_with_a_rate_is_paced() {
    let src = "module M { input i(n: int); output o(n: int); o <= i; }
system S { node m: M; feed m.i from generate(rows: 100, seed: 1, batch: 10, rate: 200) { n: row() }; }";
    let dir = scratch("rate", &[("rate.bl", src)]);
    let file = dir.join("rate.bl").display().to_string();
    let json = dir.join("rate.json").display().to_string();
    let out = bloomc(&["run", &file, "--summary-json", &json]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // The last batch (rows 90..99) is due 90 / 200 s after the node starts: a lower bound on
    // the run's own time (not the process's start-up), whatever the machine's speed.
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("summary")).expect("JSON");
    assert!(v["elapsed_s"].as_f64().is_some_and(|s| s >= 0.45), "{v}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("-- o: 100 facts emitted"));
    let plan = bloomc(&["dump", "plan", &file]);
    assert!(String::from_utf8_lossy(&plan.stdout).contains("10 per tick, seed 1, at most 200 rows/s"));
    std::fs::write(dir.join("zero.bl"), src.replace("rate: 200", "rate: 0")).expect("write");
    let zero = bloomc(&["check", &dir.join("zero.bl").display().to_string()]);
    assert_eq!(zero.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&zero.stderr).contains("`rate` must be a positive int, found 0"));
}

#[test]
fn latency_pairs_questions_with_their_first_answers() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("latency");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("run.json").display().to_string();
    let out = bloomc(&[
        "run",
        "examples/adtrack.bl",
        "--latency",
        "request=result",
        "--summary-json",
        &path,
        "--set",
        "rate=1000000",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("latency request -> result: ") && err.contains("questions answered"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("summary")).expect("JSON");
    let l = &v["answer_latency_ms"];
    let (answered, unanswered) = (l["keys"].as_u64().unwrap_or(0), l["unanswered"].as_u64().unwrap_or(999));
    // The analyst asks 200 questions; each is answered or counted as unanswered.
    assert_eq!(answered + unanswered, 200, "{l}");
    assert!(answered > 0 && l["mean"].as_f64().is_some_and(|m| m > 0.0), "{l}");
    let bad = bloomc(&["run", "examples/adtrack.bl", "--latency", "nothing=result"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no node has both an output `nothing`"));
    let one = bloomc(&["run", "examples/kvs.bl", "--latency", "a=b"]);
    assert_eq!(one.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&one.stderr).contains("this program runs on one node"));
}

#[test]
fn a_short_circuit_skips_its_aggregates_and_later_ones_keep_their_values() {
    // b = 0, 5, .., 45: count 10, max 45, sum 225. The left of each `or` is false at
    // `count(*) > 50`, so `max` is never evaluated and `sum` must still be 225.
    let src = "module M { input i(a: int, b: int); table t(a: int, b: int); output lo(a: int); output hi(a: int);
  t <= i;
  lo <= from t p group by p.a having (count(*) > 50 and max(p.b) > 1) or sum(p.b) < 100 select p.a;
  hi <= from t p group by p.a having (count(*) > 50 and max(p.b) > 1) or sum(p.b) > 200 select p.a;
}
system S { node m: M; feed m.i from generate(rows: 10, seed: 1, batch: 10) { a: 1, b: row() * 5 }; }";
    let dir = scratch("short-circuit", &[("sc.bl", src)]);
    let out = bloomc(&["run", &dir.join("sc.bl").display().to_string(), "--allow", "nondeterminism"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("-- lo: 0 facts emitted") && text.contains("-- hi: 1 facts emitted\nhi(1)"), "{text}");
}

#[test]
fn a_keyed_input_rejects_repeated_keys_counts_them_and_agrees_across_workers() {
    // cid = row() % 7 over 20 rows: rows 0..6 bring the 7 keys, the 13 others repeat one.
    // Only the first fact of each key counts: id 0 gets cids 0, 2, 4, 6 and id 1 cids 1, 3, 5.
    let src = "module M { input click(cid: int, id: int) key (cid); table clicks(cid: int, id: int);
  output hot(id: int, n: int);
  clicks <= click;
  hot <= from clicks c group by c.id select c.id, count(*);
}
system S { node m: M; feed m.click from generate(rows: 20, seed: 1, batch: 3) { cid: row() % 7, id: row() % 2 }; }";
    let dir = scratch("keyed", &[("keyed.bl", src)]);
    let bl = dir.join("keyed.bl").display().to_string();
    for workers in ["1", "2"] {
        let json = dir.join(format!("summary-{workers}.json"));
        let out = bloomc(&[
            "run",
            &bl,
            "--allow",
            "nondeterminism",
            "-w",
            workers,
            "--summary-json",
            &json.display().to_string(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("hot(0, 4)") && text.contains("hot(1, 3)"), "{workers} workers: {text}");
        assert!(!text.contains("hot(0, 5)") && !text.contains("hot(1, 4)"), "{workers} workers: {text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(
                "input `click` rejected 13 facts whose key (cid) an earlier fact of the run had; the first: (0, 1)"
            ) && err.contains(" 7 facts in,"),
            "{workers} workers: {err}"
        );
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).expect("summary")).expect("json");
        assert_eq!(summary["per_node"]["m"]["rejected_keys"], 13, "{summary}");
    }
    // A file's repeated key is rejected the same way.
    std::fs::write(dir.join("clicks.csv"), "cid,id\n1,10\n2,10\n1,11\n").expect("write");
    let src_file =
        src.replace("feed m.click from generate(rows: 20, seed: 1, batch: 3) { cid: row() % 7, id: row() % 2 };", "");
    assert!(!src_file.contains("generate"), "the file's run has no generator");
    std::fs::write(dir.join("file.bl"), src_file).expect("write");
    let csv = dir.join("clicks.csv").display().to_string();
    let out = bloomc(&["run", &dir.join("file.bl").display().to_string(), "--input", &format!("click={csv}")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hot(10, 2)") && !text.contains("hot(11"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("rejected 1 facts whose key (cid)"), "{out:?}");
}

#[test]
fn a_network_prints_a_short_report_unless_asked_for_everything() {
    let short = bloomc(&["run", "examples/adtrack.bl"]);
    assert_eq!(short.status.code(), Some(0), "{}", String::from_utf8_lossy(&short.stderr));
    let out = String::from_utf8_lossy(&short.stdout).into_owned();
    let err = String::from_utf8_lossy(&short.stderr).into_owned();
    // Each printed output: its count, its first five facts, how many more.
    let results = out.lines().filter(|l| l.starts_with("analyst.result(")).count();
    assert_eq!(results, 5, "{out}");
    assert!(out.contains("-- analyst.result: 4800 facts emitted"), "{out}");
    assert!(out.contains("... and 4795 more facts of analyst.result (`--show all` prints them"), "{out}");
    // The coordination the analysis chose, and why.
    assert!(err.contains("coordination: seal at `report` on (campaign): `click` is sealed on (campaign)"), "{err}");
    // `--show all` prints every fact, `--show N` the first N; `--output` writes them all.
    let all = bloomc(&["run", "examples/adtrack.bl", "--show", "all"]);
    let all = String::from_utf8_lossy(&all.stdout).into_owned();
    assert_eq!(all.lines().filter(|l| l.starts_with("analyst.result(")).count(), 4800);
    let two = bloomc(&["run", "examples/adtrack.bl", "--show", "2"]);
    assert_eq!(String::from_utf8_lossy(&two.stdout).lines().filter(|l| l.starts_with("analyst.result(")).count(), 2);
    let dir = common::procs::scratch("run-network-output", &[]);
    let csv = dir.join("result.csv").display().to_string();
    let written = bloomc(&["run", "examples/adtrack.bl", "--output", &format!("analyst.result={csv}")]);
    assert_eq!(written.status.code(), Some(0), "{}", String::from_utf8_lossy(&written.stderr));
    assert!(!String::from_utf8_lossy(&written.stdout).contains("analyst.result"));
    assert_eq!(std::fs::read_to_string(&csv).expect("the CSV file").lines().count(), 4800);
    // Names that print nothing, and counts that are not counts, are refused.
    let bad = bloomc(&["run", "examples/adtrack.bl", "--output", "report.result=x.csv"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no node prints an output `report.result`"));
    let bad = bloomc(&["run", "examples/adtrack.bl", "--show", "some"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected `all` or a number of facts"));
}
