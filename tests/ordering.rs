//! The ordering service across processes: `--coordination order` with every node its own
//! process, ordered by the embedded service (the coordinator) and by a real Apache ZooKeeper
//! server (`runtime/tests/zk_server`, started on a loopback port for the test), with 0
//! replica disagreements either way; and `--order-service` refused where it would order
//! nothing. Loopback only; every process is waited for with a time limit.

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
