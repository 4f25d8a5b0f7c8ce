//! The ordering service across processes: `--coordination order` with every node its own
//! process, ordered by the embedded service (the coordinator) and by a real Apache ZooKeeper
//! server (`runtime/tests/zk_server`, started on a loopback port for the test), with 0
//! replica disagreements either way; and `--order-service` refused where it would order
//! nothing. Loopback only; every process is waited for with a time limit.

// A test fails by panicking: indexing a JSON report or a list that lacks the entry is
// such a failure.
#![allow(clippy::indexing_slicing)]

mod common;
#[path = "../runtime/tests/zk_server/mod.rs"]
mod zk_server;

use common::procs::{finish, scratch, spawn};
use std::time::Duration;

/// Runs POOR (order-sensitive) ordered across processes with `service`; returns the summary.
fn ordered(name: &str, service: &str) -> serde_json::Value {
    let dir = scratch(name, &[]);
    let json = dir.join("summary.json").display().to_string();
    let args = [
        "run",
        "examples/adtrack.bl",
        "--processes",
        "--set",
        "query=POOR",
        "--coordination",
        "order",
        "--order-service",
        service,
        "--summary-json",
        &json,
    ];
    let (code, _, err) = finish(spawn(&args, &[]), Duration::from_secs(240));
    assert_eq!(code, Some(0), "{service}: {err}");
    assert!(err.contains("quiescent"), "{err}");
    serde_json::from_str(&std::fs::read_to_string(&json).expect("summary")).expect("JSON")
}

#[test]
fn replicas_agree_when_zookeeper_orders_their_batches() {
    let Some(zk) = zk_server::server() else { return };
    let v = ordered("ordering-zookeeper", &format!("zookeeper://{}", zk.addr()));
    assert_eq!(v["replica_disagreements"], 0, "{v}");
    assert!(v["answers"].as_u64().is_some_and(|n| n > 0), "{v}");
    // Every replica took every batch: the three report the same ticks and facts in.
    let ticks: Vec<&serde_json::Value> = (0..3).map(|i| &v["per_node"][format!("report[{i}]")]["ticks"]).collect();
    assert!(ticks.iter().all(|t| *t == ticks[0]) && ticks[0].as_u64().is_some_and(|t| t > 0), "{v}");
}

#[test]
fn replicas_agree_when_the_embedded_service_orders_their_batches() {
    let v = ordered("ordering-embedded", "embedded");
    assert_eq!(v["replica_disagreements"], 0, "{v}");
    let ticks: Vec<&serde_json::Value> = (0..3).map(|i| &v["per_node"][format!("report[{i}]")]["ticks"]).collect();
    assert!(ticks.iter().all(|t| *t == ticks[0]), "{v}");
}

#[test]
fn an_order_service_that_would_order_nothing_is_refused() {
    let cases: [(&[&str], &str); 4] = [
        (&["--order-service", "zookeeper://127.0.0.1:2181"], "add `--processes`"),
        (
            &["--processes", "--coordination", "none", "--order-service", "embedded"],
            "this run sequences no replicated group",
        ),
        (&["--processes", "--order-service", "zookeeper://nowhere"], "expected `embedded` or `zookeeper://HOST:PORT`"),
        (&["--link-delay-ms", "5"], "add `--processes`"),
    ];
    for (extra, why) in cases {
        let mut args = vec!["run", "examples/adtrack.bl", "--set", "query=POOR"];
        args.extend_from_slice(extra);
        let (code, _, err) = finish(spawn(&args, &[]), Duration::from_secs(60));
        assert_eq!(code, Some(2), "{extra:?}: {err}");
        assert!(err.contains(why), "{extra:?}: {err}");
    }
}

/// Two sources broadcasting to two replicas, ordered.
const REPLICATED: &str = "module Src { input feed_in(n: int); output out(n: int); out <= feed_in; }
module Sink { input got(n: int); table seen(n: int); output all(n: int); seen <= got; all <= seen; }
system S {
  node src: Src * 2;
  node sink: Sink * 2 replicated;
  feed src.feed_in from generate(rows: 200, seed: 1, batch: 10) { n: row() };
  src.out -> sink.got broadcast;
}";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[test]
fn a_coordinator_of_nodes_started_by_hand_starts_the_sequencer_where_the_cluster_file_says() {
    let dir = scratch("ordering-by-hand", &[("replicated.bl", REPLICATED)]);
    let (port, sequencer) = (free_port(), free_port());
    let cluster = dir.join("cluster.toml");
    std::fs::write(
        &cluster,
        format!(
            "cluster = \"lab\"\ncoordinator = \"127.0.0.1:{port}\"\ntoken = \"s3cret\"\nsequencer = \"127.0.0.1:{sequencer}\"\n"
        ),
    )
    .expect("write");
    let (file, cluster) = (dir.join("replicated.bl").display().to_string(), cluster.display().to_string());
    let coordinator = spawn(&["run", &file, "--cluster", &cluster, "--coordination", "order"], &[]);
    // The sequencer listens where the file says and refuses a stranger.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let hello = bloomc_runtime::wire::Hello {
        cluster: "lab".to_string(),
        token: "wrong".to_string(),
        node: "sink[0]".to_string(),
        program: 0,
        session: 1,
        listen: String::new(),
    };
    let body = bloomc_runtime::wire::encode(&hello, 4096).expect("encode");
    let mut framed = (body.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&body);
    let answer = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", sequencer)) {
            use std::io::{Read, Write};
            s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            let _ = s.write_all(&framed);
            let mut answer = Vec::new();
            let _ = s.read_to_end(&mut answer);
            break answer;
        }
        assert!(std::time::Instant::now() < deadline, "the sequencer never listened on {sequencer}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let refusal =
        bloomc_runtime::wire::decode::<bloomc_runtime::wire::Welcome>(answer.get(4..).unwrap_or_default(), 4096);
    assert!(matches!(&refusal, Ok(bloomc_runtime::wire::Welcome::Refused(r)) if r == "bad token"), "{refusal:?}");
    let nodes: Vec<_> = ["src[0]", "src[1]", "sink[0]", "sink[1]"]
        .iter()
        .map(|n| {
            spawn(
                &["node", &file, "--name", n, "--cluster", &cluster, "--coordination", "order"],
                &[("BLOOMC_CLUSTER_TOKEN", "s3cret")],
            )
        })
        .collect();
    let mut reports = Vec::new();
    for node in nodes {
        let (code, _, err) = finish(node, Duration::from_secs(60));
        assert_eq!(code, Some(0), "{err}");
        reports.push(err);
    }
    let (code, out, err) = finish(coordinator, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("started sequencer") && err.contains("refused a connection"), "{err}");
    for r in ["sink[0]", "sink[1]"] {
        assert!(out.contains(&format!("-- {r}.all: 200 facts emitted")), "{out}\n{err}");
    }
    // Both replicas took every batch: the same ticks and facts in.
    let line = |r: &str| err.lines().find(|l| l.starts_with(&format!("{r}: "))).map(|l| l.replacen(r, "", 1));
    let ticks = |r: &str| line(r).map(|l| l.split(", ").take(2).collect::<Vec<_>>().join(", "));
    assert!(ticks("sink[0]").is_some(), "{err}");
    assert_eq!(ticks("sink[0]"), ticks("sink[1]"), "{err}");
}
