//! Networks of nodes in one process, rewritten for a coordination: with `Strategy::Order`, every replica of a
//! replicated group processes the same batches in the same order, so replicas agree tick by
//! tick even on a nonmonotone query; without it, they still reach the same final state.

use bloomc_compiler::compile;
use bloomc_compiler::rewrite::{rewrite, Strategy as Coordination};
use bloomc_runtime::network::{network, NetworkOptions};
use bloomc_runtime::plan::plan_network;
use bloomc_runtime::report::NetworkResult;
use bloomc_runtime::value::Row;
use std::collections::{BTreeMap, BTreeSet};

/// Three producers at different batch sizes broadcast to three replicas, which report the
/// keys seen fewer than 4 times so far (nonmonotone: a key enters, then leaves). About 4
/// facts a key, so some keys end below 4 however the facts fall into ticks.
const REPLICAS: &str = "module Producer {
  input gen(k: int, n: int);
  output fact(k: int, n: int);
  fact <= gen;
}
module Replica {
  input fact(k: int, n: int);
  output rare(k: int);
  table seen(k: int, n: int);
  seen <= fact;
  rare <= from seen s group by s.k having count(*) < 4 select s.k;
}
#[allow(nondeterminism)]
system S {
  node producer: Producer * 3;
  node replica: Replica * 3 replicated;
  feed producer.gen from generate(rows: 40, seed: 5, batch: 3) { k: uniform(0, 30), n: instance() * 100 + row() };
  producer.fact -> replica.fact broadcast;
}";

fn run_program(src: &str, coordination: Coordination) -> NetworkResult {
    let c = compile("network.bl", src.as_bytes(), &[]);
    assert!(!c.has_errors(), "the test program compiles");
    let p = rewrite(c.program.as_ref().expect("IR"), c.analysis.as_ref(), coordination).expect("rewrites");
    let plans = plan_network(&p, &[]).expect("plans");
    network(&p, &plans, &NetworkOptions { max_ticks: 10_000 }).expect("runs")
}

fn run(coordination: Coordination) -> NetworkResult {
    run_program(REPLICAS, coordination)
}

fn all_equal<T: PartialEq>(items: &[T]) -> bool {
    items.iter().all(|x| items.first() == Some(x))
}

fn replica_histories(r: &NetworkResult) -> Vec<BTreeMap<u64, BTreeSet<Row>>> {
    r.nodes.iter().filter(|n| n.group == "replica").map(|n| n.result.by_tick("rare")).collect()
}

#[test]
fn ordered_replicas_agree_tick_by_tick() {
    for _ in 0..5 {
        let r = run(Coordination::Order);
        assert!(r.quiescent);
        let h = replica_histories(&r);
        assert_eq!(h.len(), 3);
        assert!(h.first().is_some_and(|x| !x.is_empty()), "the replicas report something");
        assert!(all_equal(&h), "ordered replicas diverged: {h:?}");
        let ticks: Vec<u64> = r.nodes.iter().filter(|n| n.group == "replica").map(|n| n.result.ticks).collect();
        assert!(all_equal(&ticks), "ordered replicas ran different ticks: {ticks:?}");
    }
}

#[test]
fn uncoordinated_replicas_reach_the_same_final_state() {
    let r = run(Coordination::None);
    assert!(r.quiescent);
    let finals: Vec<BTreeSet<Row>> =
        r.nodes.iter().filter(|n| n.group == "replica").map(|n| n.result.final_contents("rare")).collect();
    assert!(all_equal(&finals), "{finals:?}");
    let ordered = run(Coordination::Order);
    let ordered_final = ordered.nodes.iter().find(|n| n.group == "replica").map(|n| n.result.final_contents("rare"));
    assert_eq!(finals.first().cloned(), ordered_final, "coordination changes no final state");
    // Every replica saw every producer's facts; its timeline of records processed grows to
    // them, one point per tick.
    for n in r.nodes.iter().filter(|n| n.group == "replica") {
        assert_eq!(n.timeline.len() as u64, n.result.ticks, "{}", n.name);
        let grows =
            n.timeline.windows(2).all(|w| w.first().zip(w.last()).is_some_and(|(a, b)| a.0 <= b.0 && a.1 <= b.1));
        assert!(grows, "{}: {:?}", n.name, n.timeline);
        assert_eq!(n.timeline.last().map(|(_, facts)| *facts), Some(n.result.facts_in), "{}", n.name);
        assert_eq!(n.messages_in, 120, "{}", n.name);
    }
}

/// Three producers copy generated feeds whose key runs 0, 1, 2, ... over time; the sealed
/// consumer counts facts per key. With the seal enforced, a key's facts arrive in one tick
/// once every producer has sealed it, so each key's count is only ever its final count.
/// The producers pace their batches (20 ms apart), so without the seal a key's facts arrive
/// over several ticks of the counter however fast it runs.
const SEALED: &str = "module Producer {
  input gen(k: int, n: int);
  output fact(k: int, n: int);
  fact <= gen;
}
module Counter {
  input fact(k: int, n: int);
  output count(k: int, c: int);
  table seen(k: int, n: int);
  seen <= fact;
  count <= from seen s group by s.k select s.k, count(*) as c;
}
system S {
  node producer: Producer * 3;
  node counter: Counter * 2;
  feed producer.gen from generate(rows: 60, seed: 3, batch: 4, rate: 200) { k: row() / 10, n: instance() * 1000 + row() };
  producer.fact -> counter.fact broadcast;
  counter.fact sealed on (k);
}";

fn run_sealed(coordination: Coordination) -> NetworkResult {
    run_program(SEALED, coordination)
}

#[test]
fn a_sealed_input_releases_each_key_once_complete() {
    let r = run_sealed(Coordination::Seal);
    assert!(r.quiescent);
    for n in r.nodes.iter().filter(|n| n.group == "counter") {
        // Six keys of 10 rows per producer: every count ever emitted is the final 30.
        let facts = n.result.all_facts("count");
        assert_eq!(facts.len(), 6, "{}: {facts:?}", n.name);
        assert!(facts.iter().all(|f| f.get(1) == Some(&bloomc_runtime::value::Value::Int(30))), "{facts:?}");
        assert_eq!((n.partitions_released, n.late, n.held), (6, 0, 0), "{}", n.name);
    }
    // Without the seal, counts grow batch by batch: intermediate counts are emitted.
    let loose = run_sealed(Coordination::None);
    let counter = loose.nodes.iter().find(|n| n.group == "counter").expect("a counter");
    assert!(counter.result.all_facts("count").len() > 6, "unsealed counts should pass through intermediate values");
}

/// Producers that count their feed's rows per key (not a copy of it: each key's count
/// grows over three ticks) broadcast the counts to a consumer that keeps the largest it
/// has seen per key. The producers are paced, so the consumer ticks between their batches.
const COUNTED: &str = "module Tally {
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
  node tally: Tally * 2;
  node best: Best;
  feed tally.gen from generate(rows: 40, seed: 3, batch: 4, rate: 200) { k: row() / 10, v: row() };
  tally.total -> best.total broadcast;
  best.total sealed on (k);
}";

#[test]
fn a_producer_that_is_no_copy_punctuates_at_the_end_of_its_stream() {
    let r = run_program(COUNTED, Coordination::Seal);
    assert!(r.quiescent);
    let best = r.nodes.iter().find(|n| n.group == "best").expect("the consumer");
    // Four keys of ten rows per producer: every maximum ever emitted is the final 10.
    let facts = best.result.all_facts("best");
    assert_eq!(facts.len(), 4, "{facts:?}");
    assert!(facts.iter().all(|f| f.get(1) == Some(&bloomc_runtime::value::Value::Int(10))), "{facts:?}");
    assert_eq!((best.partitions_released, best.late, best.held), (4, 0, 0));
    // Without the seal, the maximum grows with the counts.
    let loose = run_program(COUNTED, Coordination::None);
    let best = loose.nodes.iter().find(|n| n.group == "best").expect("the consumer");
    assert!(best.result.all_facts("best").len() > 4, "unsealed maxima should pass through intermediate counts");
}

/// COUNTED with its feed relayed by a source node: the producers receive messages.
fn relayed() -> String {
    COUNTED
        .replace("node tally: Tally * 2;", "node tally: Tally * 2;\n  node source: Source;")
        .replace("feed tally.gen from", "source.out -> tally.gen broadcast;\n  feed source.gen from")
        .replace(
            "module Best {",
            "module Source {\n  input gen(k: int, v: int);\n  output out(k: int, v: int);\n  out <= gen;\n}\nmodule Best {",
        )
}

#[test]
fn a_producer_that_receives_messages_punctuates_once_its_senders_ended() {
    let r = run_program(&relayed(), Coordination::Seal);
    assert!(r.quiescent);
    let best = r.nodes.iter().find(|n| n.group == "best").expect("the consumer");
    // The tallies hear the source's end after its last fact, settle, punctuate: every
    // maximum ever emitted is the final 10.
    let facts = best.result.all_facts("best");
    assert_eq!(facts.len(), 4, "{facts:?}");
    assert!(facts.iter().all(|f| f.get(1) == Some(&bloomc_runtime::value::Value::Int(10))), "{facts:?}");
    assert_eq!((best.partitions_released, best.late, best.held), (4, 0, 0));
    let loose = run_program(&relayed(), Coordination::None);
    let best = loose.nodes.iter().find(|n| n.group == "best").expect("the consumer");
    assert!(best.result.all_facts("best").len() > 4, "unsealed maxima should pass through intermediate counts");
}

#[test]
fn a_producer_on_a_cycle_of_wires_that_is_no_copy_cannot_punctuate() {
    // The consumer's maxima go back to the tallies: they may always receive more.
    let cyclic = COUNTED
        .replace(
            "  input gen(k: int, v: int);\n  output total",
            "  input gen(k: int, v: int);\n  input back(k: int, n: int);\n  output total",
        )
        .replace("  best.total sealed on (k);", "  best.best -> tally.back broadcast;\n  best.total sealed on (k);");
    let c = compile("network.bl", cyclic.as_bytes(), &[]);
    assert!(!c.has_errors(), "the test program compiles");
    let p = rewrite(c.program.as_ref().expect("IR"), c.analysis.as_ref(), Coordination::Seal).expect("rewrites");
    let plans = plan_network(&p, &[]).expect("plans");
    let err = network(&p, &plans, &NetworkOptions { max_ticks: 10_000 }).expect_err("refused");
    assert!(err.contains("producer `tally.total`") && err.contains("is on a cycle of wires"), "{err}");
}
