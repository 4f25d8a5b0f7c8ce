//! Networks across processes: `bloomc run --processes` (one `bloomc node` per instance, the
//! launcher as coordinator, facts sent straight from node to node), `bloomc run --cluster`
//! with nodes started by hand, the coordinator's and a node's data listener's refusals (bad
//! token, unknown node, garbage and oversized frames), a killed node, no loss when
//! connections drop, and the launcher's `--batch` reaching its nodes. Loopback only; each
//! child is waited for with a time limit (`finish`), though two tests read a child's stderr
//! line by line before that, which a hung child would block.

// A test fails by panicking: indexing a JSON report or a list that lacks the entry is
// such a failure.
#![allow(clippy::indexing_slicing)]

mod common;

use common::PIPE;

use bloomc_runtime::wire::{encode, Hello, PeerWelcome, Welcome, DEFAULT_MAX_FRAME, TOKEN_VAR};
use common::bloomc;
use common::procs::{finish, scratch, spawn};
use std::io::{BufRead, Read, Write};
use std::process::{Child, Command};
use std::time::Duration;

/// A source that never runs out (within the test's patience), for the killed-node test.
const ENDLESS: &str = "module Src { input feed_in(n: int); output out(n: int); out <= feed_in; }
module Sink { input got(n: int); table seen(n: int); output all(n: int); seen <= got; all <= seen; }
system S {
  node src: Src;
  node sink: Sink;
  feed src.feed_in from generate(rows: 100000000, seed: 1, batch: 1) { n: row() };
  src.out -> sink.got any;
}";

fn sorted_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn adtrack_runs_one_process_per_node_with_each_strategy() {
    let dir = scratch("processes-adtrack", &[]);
    for strategy in ["none", "order", "seal"] {
        let query = if strategy == "seal" { "CAMPAIGN" } else { "POOR" };
        let summary = dir.join(format!("{strategy}.json")).display().to_string();
        let child = spawn(
            &[
                "run",
                "examples/adtrack.bl",
                "--processes",
                "--set",
                &format!("query={query}"),
                "--coordination",
                strategy,
                "--summary-json",
                &summary,
            ],
            &[],
        );
        let (code, out, err) = finish(child, Duration::from_secs(240));
        assert_eq!(code, Some(0), "{strategy}: {err}");
        // One process per node instance, each started and named.
        assert_eq!(err.matches("started node ").count(), 11, "{err}");
        assert!(err.contains("quiescent"), "{err}");
        assert!(out.contains("-- analyst.result"), "{out}");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("JSON");
        assert_eq!(v["strategy"], strategy);
        assert!(v["answers"].as_u64().is_some_and(|n| n > 0), "{v}");
        let disagreements = v["replica_disagreements"].as_u64().expect("adtrack measures disagreement");
        if strategy == "none" {
            // The analysis's verdict is stated: POOR's responses are order-sensitive.
            assert!(err.contains("W0100") && err.contains("`analyst.disagreement` is Diverge"), "{err}");
        } else {
            assert_eq!(disagreements, 0, "{strategy}: replicas disagreed");
        }
    }
}

#[test]
fn no_message_is_lost_or_doubled_when_connections_drop() {
    let dir = scratch("processes-pipe", &[("pipe.bl", PIPE)]);
    let file = dir.join("pipe.bl").display().to_string();
    let (code, expected, err) = finish(spawn(&["run", &file, "--show", "all"], &[]), Duration::from_secs(60));
    assert_eq!(code, Some(0), "{err}");
    // Every 3rd data frame's connection, and every 3rd control request's, is dropped before
    // the answer is read: the sender reconnects and sends again what was not acknowledged,
    // the receiver drops what it already has, and the coordinator answers a resent request
    // from its record.
    let json = dir.join("drop.json").display().to_string();
    let args = ["run", &file, "--processes", "--summary-json", &json, "--show", "all"];
    let (code, out, err) = finish(spawn(&args, &[("BLOOMC_DROP_CONNECTION_EVERY", "3")]), Duration::from_secs(120));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(sorted_lines(&out), sorted_lines(&expected));
    assert!(out.contains("-- sink.all: 300 facts emitted"), "{out}");
    // Each fact crossed the wire exactly once (each source sends its 300).
    assert!(err.contains("sink: ") && err.contains("600 facts in (600 by message)"), "{err}");
    assert!(err.contains("fault injection: dropped the connection to node `sink`"), "no connection was dropped: {err}");
    // No relay: the sink got its frames from the two sources themselves, one per tick of each
    // (30 ticks of 10 rows), however often a frame was sent again.
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("summary")).expect("JSON");
    assert_eq!(v["per_node"]["sink"]["frames_from"], serde_json::json!({"src[0]": 30, "src[1]": 30}), "{v}");
    assert_eq!(v["per_node"]["src[0]"]["frames_from"], serde_json::json!({}), "{v}");
}

/// A hello for a node of `PIPE` in cluster `lab`, as a node process with `session` sends it.
fn pipe_hello(token: &str, node: &str, session: u64) -> Hello {
    Hello {
        cluster: "lab".to_string(),
        token: token.to_string(),
        node: node.to_string(),
        // As the coordinator digests it: the sources, then the feed options and the
        // coordination the program is rewritten for (the defaults here).
        program: bloomc_runtime::wire::digest(
            PIPE.as_bytes(),
            &[
                ("--batch".to_string(), "1000".to_string()),
                ("--skip-bad-rows".to_string(), "false".to_string()),
                ("--coordination".to_string(), "auto".to_string()),
            ],
        ),
        session,
        listen: "127.0.0.1:9".to_string(),
    }
}

fn refused(answer: Vec<u8>) -> String {
    match bloomc_runtime::wire::decode::<Welcome>(&answer, DEFAULT_MAX_FRAME) {
        Ok(Welcome::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Starts a coordinator for `PIPE` with `--cluster` on a free port; returns it, its stderr (past its
/// first line) and the port.
fn pipe_coordinator(name: &str) -> (Child, std::io::BufReader<std::process::ChildStderr>, u16, String, String) {
    let dir = scratch(name, &[("pipe.bl", PIPE)]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let cluster = dir.join("cluster.toml");
    std::fs::write(&cluster, format!("cluster = \"lab\"\ncoordinator = \"127.0.0.1:{port}\"\ntoken = \"s3cret\"\n"))
        .expect("write");
    let (file, cluster) = (dir.join("pipe.bl").display().to_string(), cluster.display().to_string());
    let mut coordinator = spawn(&["run", &file, "--cluster", &cluster], &[]);
    // Wait until it listens.
    let mut coordinator_err = std::io::BufReader::new(coordinator.stderr.take().expect("stderr"));
    let mut line = String::new();
    coordinator_err.read_line(&mut line).expect("the coordinator speaks");
    assert!(line.contains("waiting for 3 nodes"), "{line}");
    (coordinator, coordinator_err, port, file, cluster)
}

#[test]
fn a_second_process_for_an_admitted_node_is_refused() {
    let (mut coordinator, _err, port, _, _) = pipe_coordinator("processes-session");
    let body = encode(&pipe_hello("s3cret", "sink", 1), DEFAULT_MAX_FRAME).expect("encode");
    let welcome = bloomc_runtime::wire::decode::<Welcome>(&poke(port, &frame(&body)), DEFAULT_MAX_FRAME);
    assert!(matches!(welcome, Ok(Welcome::Accepted { .. })), "{welcome:?}");
    // The same session may come back (a reconnection); another one may not (it would run
    // the node's feed a second time).
    assert!(matches!(
        bloomc_runtime::wire::decode::<Welcome>(&poke(port, &frame(&body)), DEFAULT_MAX_FRAME),
        Ok(Welcome::Accepted { .. })
    ));
    let other = encode(&pipe_hello("s3cret", "sink", 2), DEFAULT_MAX_FRAME).expect("encode");
    assert!(refused(poke(port, &frame(&other))).contains("node `sink` is already run by another process"));
    let _ = coordinator.kill();
    let _ = coordinator.wait();
}

/// Starts `nodes` of `file` by hand with `cluster` and the test's token, and waits for each
/// to succeed.
fn run_by_hand(file: &str, cluster: &str, nodes: &[&str]) {
    let children: Vec<Child> = nodes
        .iter()
        .map(|n| spawn(&["node", file, "--name", n, "--cluster", cluster], &[(TOKEN_VAR, "s3cret")]))
        .collect();
    for child in children {
        let (code, _, err) = finish(child, Duration::from_secs(60));
        assert_eq!(code, Some(0), "{err}");
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// Sends `bytes` to a listener and returns what it answers before closing (the body of its
/// first frame, if any).
fn poke(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let _ = s.write_all(bytes);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer.get(4..).map(<[u8]>::to_vec).unwrap_or_default()
}

#[test]
fn the_coordinator_refuses_strangers_and_bad_frames_and_runs_nodes_started_by_hand() {
    let (coordinator, mut coordinator_err, port, file, cluster) = pipe_coordinator("processes-coordinator");
    let hello = |token: &str, node: &str| pipe_hello(token, node, 1);
    let body = encode(&hello("wrong", "sink"), DEFAULT_MAX_FRAME).expect("encode");
    assert_eq!(refused(poke(port, &frame(&body))), "bad token");
    let body = encode(&hello("s3cret", "mallory"), DEFAULT_MAX_FRAME).expect("encode");
    assert!(refused(poke(port, &frame(&body))).contains("unknown node `mallory`"));
    let garbage = refused(poke(port, &frame(b"\xff\xff\xff\xff\xff garbage")));
    assert!(garbage.contains("malformed frame"), "{garbage}");
    let oversized = refused(poke(port, &(u32::MAX).to_be_bytes()));
    assert!(oversized.contains("bad first frame"), "{oversized}");
    // The coordinator still runs: the real nodes, started by hand with the token from the environment.
    run_by_hand(&file, &cluster, &["src[0]", "src[1]", "sink"]);
    let mut rest = String::new();
    coordinator_err.read_to_string(&mut rest).expect("coordinator stderr");
    let (code, out, _) = finish(coordinator, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{rest}");
    assert!(out.contains("-- sink.all: 300 facts emitted"), "{out}");
    for why in ["bad token", "unknown node `mallory`", "malformed frame", "bad first frame"] {
        assert!(rest.contains("refused a connection from 127.0.0.1") && rest.contains(why), "{why}: {rest}");
    }
}

#[test]
fn a_nodes_data_listener_refuses_strangers_and_takes_its_peers() {
    let dir = scratch("processes-data", &[("pipe.bl", PIPE)]);
    let free = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let (port, data) = (free(), free());
    let cluster = dir.join("cluster.toml");
    let text = format!(
        "cluster = \"lab\"\ncoordinator = \"127.0.0.1:{port}\"\ntoken = \"s3cret\"\n[nodes]\n\"sink\" = \"127.0.0.1:{data}\"\n"
    );
    std::fs::write(&cluster, text).expect("write");
    let (file, cluster) = (dir.join("pipe.bl").display().to_string(), cluster.display().to_string());
    let mut coordinator = spawn(&["run", &file, "--cluster", &cluster], &[]);
    let mut line = String::new();
    let mut coordinator_err = std::io::BufReader::new(coordinator.stderr.take().expect("stderr"));
    coordinator_err.read_line(&mut line).expect("the coordinator speaks");
    let mut sink = spawn(&["node", &file, "--name", "sink", "--cluster", &cluster], &[(TOKEN_VAR, "s3cret")]);
    let mut sink_err = std::io::BufReader::new(sink.stderr.take().expect("stderr"));
    line.clear();
    sink_err.read_line(&mut line).expect("the sink speaks");
    assert!(line.contains(&format!("node sink: listening for data on 127.0.0.1:{data}")), "{line}");
    // The sink's own listener checks a peer as the coordinator checks a node.
    let hello = |token: &str, node: &str| encode(&pipe_hello(token, node, 1), DEFAULT_MAX_FRAME).expect("encode");
    let peer_refused = |answer: Vec<u8>| match bloomc_runtime::wire::decode::<PeerWelcome>(&answer, DEFAULT_MAX_FRAME) {
        Ok(PeerWelcome::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(peer_refused(poke(data, &frame(&hello("wrong", "src[0]")))), "bad token");
    assert!(peer_refused(poke(data, &frame(&hello("s3cret", "mallory")))).contains("unknown node `mallory`"));
    assert!(peer_refused(poke(data, &frame(b"\xff\xff\xff\xff\xff garbage"))).contains("malformed frame"));
    run_by_hand(&file, &cluster, &["src[0]", "src[1]"]);
    let mut rest = String::new();
    sink_err.read_to_string(&mut rest).expect("sink stderr");
    let (code, _, _) = finish(sink, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{rest}");
    for why in ["bad token", "unknown node `mallory`", "malformed frame"] {
        assert!(rest.contains("node sink: refused a connection from 127.0.0.1") && rest.contains(why), "{why}: {rest}");
    }
    let (code, out, _) = finish(coordinator, Duration::from_secs(60));
    assert_eq!(code, Some(0));
    assert!(out.contains("-- sink.all: 300 facts emitted"), "{out}");
}

#[test]
fn a_killed_node_is_named_and_fails_the_run() {
    let dir = scratch("processes-kill", &[("endless.bl", ENDLESS)]);
    let file = dir.join("endless.bl").display().to_string();
    let mut launcher = spawn(&["run", &file, "--processes"], &[]);
    let mut err = std::io::BufReader::new(launcher.stderr.take().expect("stderr"));
    let mut pid = None;
    let mut line = String::new();
    while pid.is_none() && err.read_line(&mut line).is_ok_and(|n| n > 0) {
        pid = line.strip_prefix("started node src (pid ").and_then(|r| r.trim().strip_suffix(')')).map(str::to_string);
        line.clear();
    }
    let pid = pid.expect("the launcher names the source's pid");
    std::thread::sleep(Duration::from_millis(500));
    let killed = Command::new("kill").args(["-9", &pid]).status().expect("kill runs");
    assert!(killed.success());
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = err.read_to_string(&mut rest);
        rest
    });
    let (code, _, _) = finish(launcher, Duration::from_secs(60));
    let rest = rest.join().unwrap_or_default();
    assert_eq!(code, Some(2), "{rest}");
    assert!(rest.contains("node `src` exited (signal: 9"), "{rest}");
    // The surviving node heard why the run ended, said so, and failed.
    assert!(rest.contains("[sink] error: the coordinator stopped the run: node `src` exited (signal: 9"), "{rest}");
}

#[test]
fn cluster_files_and_node_names_are_checked() {
    let dir = scratch("processes-bad", &[("pipe.bl", PIPE), ("bad.toml", "cluster = \"x\"\nport = 3\n")]);
    let file = dir.join("pipe.bl").display().to_string();
    let bad = dir.join("bad.toml").display().to_string();
    let out = bloomc(&["node", &file, "--name", "sink", "--cluster", &bad]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(dir.join("ok.toml"), "cluster = \"x\"\ncoordinator = \"127.0.0.1:9\"\ntoken = \"t\"\n")
        .expect("write");
    let ok = dir.join("ok.toml").display().to_string();
    let out = bloomc(&["node", &file, "--name", "nobody", "--cluster", &ok]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no node `nobody`") && err.contains("src[0], src[1], sink"), "{err}");
    let one = bloomc(&["run", "examples/kvs.bl", "--processes"]);
    assert_eq!(one.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&one.stderr).contains("this program runs on one node"));
}

#[test]
fn node_processes_take_the_launchers_batch_for_file_feeds() {
    // With `--batch 3` the source reads the file's 10 rows in 4 ticks, in one process and in
    // one process per node alike (a node that read the file in one batch would run 1 tick).
    let dir = scratch("processes-batch", &[("n.csv", "n\n0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n")]);
    let csv = dir.join("n.csv").display().to_string();
    let program = format!(
        "module Src {{ input feed_in(n: int); output out(n: int); out <= feed_in; }}
module Sink {{ input got(n: int); output now(n: int); now <= got; }}
system S {{ node src: Src; node sink: Sink; feed src.feed_in from file \"{csv}\"; src.out -> sink.got any; }}"
    );
    std::fs::write(dir.join("batch.bl"), program).expect("write");
    let file = dir.join("batch.bl").display().to_string();
    for (i, extra) in [None, Some("--processes")].into_iter().enumerate() {
        let json = dir.join(format!("run{i}.json")).display().to_string();
        let mut args = vec!["run", &file, "--batch", "3", "--allow", "nondeterminism", "--summary-json", &json];
        args.extend(extra);
        let (code, out, err) = finish(spawn(&args, &[]), Duration::from_secs(60));
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("-- sink.now: 10 facts emitted"), "{out}");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).expect("summary")).expect("JSON");
        assert_eq!(v["per_node"]["src"]["ticks"].as_u64(), Some(4), "{extra:?}: {v}");
    }
}

/// A source relays its feed to two tallies, which count per key and send the counts to a
/// consumer sealed on the key: the tallies receive messages and compute their output.
const RELAYED: &str = "module Source { input gen(k: int, v: int); output out(k: int, v: int); out <= gen; }
module Tally {
  input gen(k: int, v: int);
  output total(k: int, n: int);
  table all(k: int, v: int);
  all <= gen;
  total <= from all a group by a.k select a.k, count(*) as n;
}
module Best {
  input total(k: int, n: int);
  output best(k: int, n: int);
  table seen(k: int, n: int);
  seen <= total;
  best <= from seen s group by s.k select s.k, max(s.n) as n;
}
system S {
  node source: Source;
  node tally: Tally * 2;
  node best: Best;
  feed source.gen from generate(rows: 40, seed: 3, batch: 4, rate: 200) { k: row() / 10, v: row() };
  source.out -> tally.gen broadcast;
  tally.total -> best.total broadcast;
  best.total sealed on (k);
}";

#[test]
fn a_producer_that_receives_messages_punctuates_across_processes_once_its_senders_ended() {
    let dir = scratch("processes-relayed", &[("relayed.bl", RELAYED)]);
    let file = dir.join("relayed.bl").display().to_string();
    let (code, out, err) =
        finish(spawn(&["run", &file, "--processes", "--coordination", "seal"], &[]), Duration::from_secs(120));
    assert_eq!(code, Some(0), "{err}");
    // Every maximum the consumer ever emitted is the final count: it took each key whole.
    let facts: Vec<&str> = out.lines().filter(|l| l.starts_with("best.best(")).collect();
    assert_eq!(facts, ["best.best(0, 10)", "best.best(1, 10)", "best.best(2, 10)", "best.best(3, 10)"], "{out}");
    assert!(err.contains("4 seal keys released, 0 facts late") && err.contains("0 facts still held"), "{err}");
}
